package auth

import (
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// RateOptions configure a RateLimiter. Zero values take the defaults.
type RateOptions struct {
	// PerIP and PerUser are the sustained failed-login rates allowed for
	// one client address and one user name (default 1 every 6 s each).
	PerIP, PerUser rate.Limit
	// BurstIP and BurstUser are the failures allowed at once (default 10).
	BurstIP, BurstUser int
	// Size bounds the number of addresses and users tracked (default 100,000).
	Size int
	// TTL forgets an address or user idle for this long (default 1 h).
	TTL time.Duration
}

// RateLimiter limits failed logins per client address and per user with
// token buckets kept in expirable LRUs (bounded memory whatever clients
// send). A failure takes a token; while either bucket is empty, logins
// from that address or for that user are refused before the password is
// checked, with the same answer as a wrong password. One RateLimiter per
// process: each LRU runs a cleanup goroutine for the life of the process.
type RateLimiter struct {
	opts  RateOptions
	ips   *expirable.LRU[string, *rate.Limiter]
	users *expirable.LRU[string, *rate.Limiter]
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
	if o.Size == 0 {
		o.Size = 100000
	}
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	return &RateLimiter{
		opts:  o,
		ips:   expirable.NewLRU[string, *rate.Limiter](o.Size, nil, o.TTL),
		users: expirable.NewLRU[string, *rate.Limiter](o.Size, nil, o.TTL),
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

// Blocked reports whether a login from ip for user must be refused now.
func (r *RateLimiter) Blocked(ip, user string) bool {
	now := time.Now()
	if l, ok := r.ips.Peek(ip); ok && l.TokensAt(now) < 1 {
		return true
	}
	if l, ok := r.users.Peek(user); ok && l.TokensAt(now) < 1 {
		return true
	}
	return false
}

// Failed records a failed login from ip for user.
func (r *RateLimiter) Failed(ip, user string) {
	now := time.Now()
	bucket(r.ips, ip, r.opts.PerIP, r.opts.BurstIP).AllowN(now, 1)
	if user != "" {
		bucket(r.users, user, r.opts.PerUser, r.opts.BurstUser).AllowN(now, 1)
	}
}
