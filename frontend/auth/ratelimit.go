package auth

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// RateOptions configure a RateLimiter. Zero values take the defaults.
type RateOptions struct {
	// PerIP and PerUser are the sustained failed-login rates allowed for
	// one client address, and for one user (from one address, and from
	// all addresses together); default 1 every 6 s each.
	PerIP, PerUser rate.Limit
	// BurstIP and BurstUser are the failures allowed at once (default 10).
	BurstIP, BurstUser int
	// MaxDelay caps the pause before each login for a user whose failures
	// from all addresses together exceed the budget (default 15 s).
	MaxDelay time.Duration
	// Size bounds the number of addresses, users and (user, address) pairs
	// tracked, each (default 100,000).
	Size int
	// TTL forgets an address or user idle for this long (default 1 h).
	TTL time.Duration
	// Now returns the current time; nil means time.Now (tests inject a
	// clock).
	Now func() time.Time
	// Sleep waits d or until ctx is done, returning ctx's error then; nil
	// means a timer (tests inject a fake).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Default pause cap of RateOptions.MaxDelay.
const DefaultMaxUserDelay = 15 * time.Second

// ErrRateLimited is returned by Admit for a login that is refused.
var ErrRateLimited = errors.New("auth: too many failed logins")

// RateLimiter limits failed logins with token buckets kept in expirable
// LRUs (bounded memory whatever clients send). A failure takes a token
// from three buckets: the client address's, the (user, address) pair's
// and the user's. While the address's or the pair's bucket is empty,
// logins from that address (for that user) are refused before the
// password is checked, with the same answer as a wrong password. The
// user's bucket never refuses: while it is empty every login for that
// user is slowed (up to MaxDelay), as Dovecot's auth penalty does, so
// that failures from elsewhere cannot lock a user out — a correct password
// from an address without failures always gets in. One RateLimiter per
// process: each LRU runs a cleanup goroutine for the life of the process.
type RateLimiter struct {
	opts    RateOptions
	ips     *expirable.LRU[string, *rate.Limiter]
	userIPs *expirable.LRU[string, *rate.Limiter]
	users   *expirable.LRU[string, *rate.Limiter]
}

// NewRateLimiter returns a RateLimiter.
func NewRateLimiter(o RateOptions) *RateLimiter {
	if o.PerIP == 0 {
		o.PerIP = rate.Every(6 * time.Second)
	}
	if o.PerUser == 0 {
		o.PerUser = rate.Every(6 * time.Second)
	}
	if o.BurstIP == 0 {
		o.BurstIP = 10
	}
	if o.BurstUser == 0 {
		o.BurstUser = 10
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = DefaultMaxUserDelay
	}
	if o.Size == 0 {
		o.Size = 100000
	}
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &RateLimiter{
		opts:    o,
		ips:     expirable.NewLRU[string, *rate.Limiter](o.Size, nil, o.TTL),
		userIPs: expirable.NewLRU[string, *rate.Limiter](o.Size, nil, o.TTL),
		users:   expirable.NewLRU[string, *rate.Limiter](o.Size, nil, o.TTL),
	}
}

func bucket(c *expirable.LRU[string, *rate.Limiter], key string, r rate.Limit, burst int) *rate.Limiter {
	if l, ok := c.Get(key); ok {
		return l
	}
	l := rate.NewLimiter(r, burst)
	c.Add(key, l)
	return l
}

// pairKey is the key of the (user, address) bucket; NUL cannot occur in
// a user name that reaches the limiter.
func pairKey(ip, user string) string { return user + "\x00" + ip }

// Blocked reports whether a login from ip for user must be refused now:
// the address, or this user from this address, has used up its failures.
// Failures for user from other addresses never block it (see Delay).
func (r *RateLimiter) Blocked(ip, user string) bool {
	now := r.opts.Now()
	if l, ok := r.ips.Peek(ip); ok && l.TokensAt(now) < 1 {
		return true
	}
	if l, ok := r.userIPs.Peek(pairKey(ip, user)); ok && l.TokensAt(now) < 1 {
		return true
	}
	return false
}

// Delay returns how long a login for user is to be slowed now: 0 while
// the user's failures from all addresses are within the budget, then the
// time until the budget has a token again, at most MaxDelay.
func (r *RateLimiter) Delay(user string) time.Duration {
	if r.opts.PerUser == rate.Inf {
		return 0
	}
	l, ok := r.users.Peek(user)
	if !ok {
		return 0
	}
	tokens := l.TokensAt(r.opts.Now())
	if tokens >= 1 {
		return 0
	}
	d := time.Duration((1 - tokens) / float64(r.opts.PerUser) * float64(time.Second))
	return min(d, r.opts.MaxDelay)
}

// Admit is what a login calls before checking the password: it returns
// ErrRateLimited when Blocked, else waits Delay(user) (or until ctx is
// done, returning ctx's error) and returns nil.
func (r *RateLimiter) Admit(ctx context.Context, ip, user string) error {
	if r.Blocked(ip, user) {
		return ErrRateLimited
	}
	return sleep(ctx, r.Delay(user), r.opts.Sleep)
}

// Failed records a failed login from ip for user.
func (r *RateLimiter) Failed(ip, user string) {
	now := r.opts.Now()
	bucket(r.ips, ip, r.opts.PerIP, r.opts.BurstIP).AllowN(now, 1)
	if user == "" {
		return
	}
	bucket(r.userIPs, pairKey(ip, user), r.opts.PerUser, r.opts.BurstUser).AllowN(now, 1)
	if r.opts.PerUser == rate.Inf {
		return
	}
	// The user's bucket goes into debt (longer delays) down to -BurstUser:
	// a flood keeps the delay at its cap, and it ends once the flood has
	// stopped for twice the burst's refill.
	l := bucket(r.users, user, r.opts.PerUser, r.opts.BurstUser)
	if l.TokensAt(now) > -float64(r.opts.BurstUser) {
		l.ReserveN(now, 1)
	}
}
