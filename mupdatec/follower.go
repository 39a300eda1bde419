package mupdatec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
)

// Clock is the time source of a Follower (injectable for tests).
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	// Addr is the master's host:port, dialled with Conn options.
	Addr string
	Conn *Options
	// Dial, if set, replaces Addr/Conn: it returns a new connection with
	// its banner read (not authenticated).
	Dial func(ctx context.Context) (*Conn, error)
	// Auth returns a fresh SASL client for each connection; nil skips
	// AUTHENTICATE.
	Auth func() (sasl.Client, error)
	// Servers restricts the replica to these backend server names
	// (UPDATE with arguments; needs PARTIAL-UPDATE). Empty: everything.
	Servers []string
	// Sink receives the replica. Required.
	Sink Sink
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
	// Clock is the time source; nil is the real clock.
	Clock Clock
	// MinBackoff and MaxBackoff bound the jittered exponential delay
	// between reconnections (defaults 1 s and 60 s).
	MinBackoff, MaxBackoff time.Duration
	// Rand returns jitter in [0,1); nil uses math/rand/v2.
	Rand func() float64
	// KeepAlive is how often a NOOP probes an idle stream (Cyrus drops
	// streams idle for 180 min; a silent dead peer is noticed this way).
	// A probe unanswered within KeepAlive/2 ends the connection. Default
	// 5 min; negative disables. It uses real time, not Clock.
	KeepAlive time.Duration
}

// State is what a Follower is doing.
type State int

// Follower states.
const (
	StateIdle       State = iota // Run not called yet
	StateConnecting              // dialling and authenticating
	StateLoading                 // receiving the full UPDATE dump
	StateStreaming               // replica current, changes streaming in
	StateBackoff                 // waiting before reconnecting
	StateStopped                 // Run returned
)

var stateNames = [...]string{"idle", "connecting", "loading", "streaming", "backoff", "stopped"}

// String returns the state's name.
func (s State) String() string {
	if int(s) >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Status is a snapshot of a Follower's health.
type Status struct {
	State      State
	LastError  error     // why the last connection ended or failed (nil if none)
	Server     string    // server name from the banner of the current/last connection
	Reconnects int       // connections lost or failed since Run started
	Entries    int       // entries in the last full dump
	LastLoad   time.Time // when the last full dump was committed (zero before the first)
	LastChange time.Time // when the last streamed change was applied (or LastLoad)
	// CurrentAt is the last time the replica was known to be current:
	// now while streaming, else when the stream was lost (zero before the
	// first load).
	CurrentAt time.Time
}

// ErrRunning is returned by Run when the follower is already running.
var ErrRunning = errors.New("mupdatec: follower already running")

// session is one streaming connection.
type session struct {
	conn  *Conn
	ended chan struct{} // closed when the session stops streaming
}

// Follower keeps a Sink equal to the master's mailbox database: UPDATE,
// full dump into a Loader swapped in atomically, then every streamed
// change applied as an idempotent Put or Delete. On connection loss it
// waits a jittered exponential backoff, reconnects and reloads; the sink
// keeps its last state meanwhile.
type Follower struct {
	opts  FollowerOptions
	log   *slog.Logger
	clock Clock

	mu       sync.Mutex
	running  bool
	st       Status
	cur      *session
	streamCh chan struct{} // closed when the next session starts streaming
	ready    chan struct{}
	isReady  bool
}

// NewFollower returns a follower; call Run.
func NewFollower(opts FollowerOptions) *Follower {
	if opts.Sink == nil {
		panic("mupdatec: FollowerOptions.Sink is nil")
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(60*time.Second, opts.MinBackoff)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 5 * time.Minute
	}
	f := &Follower{
		opts:     opts,
		log:      opts.Logger,
		clock:    opts.Clock,
		streamCh: make(chan struct{}),
		ready:    make(chan struct{}),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.clock == nil {
		f.clock = realClock{}
	}
	return f
}

// Ready is closed once the first full dump has been committed.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// WaitReady waits for the first full dump or ctx.
func (f *Follower) WaitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status returns a snapshot of the follower's state.
func (f *Follower) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	if st.State == StateStreaming {
		st.CurrentAt = f.clock.Now()
	}
	return st
}

func (f *Follower) setState(s State) {
	f.mu.Lock()
	f.st.State = s
	f.mu.Unlock()
}

// backoff returns the delay before reconnection attempt n (0-based):
// min·2ⁿ capped at max, jittered to between half and all of it.
func (f *Follower) backoff(n int) time.Duration {
	d := f.opts.MinBackoff
	for i := 0; i < n && d < f.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, f.opts.MaxBackoff)
	half := d / 2
	return half + time.Duration(f.opts.Rand()*float64(d-half))
}

// Run follows the master until ctx is cancelled, then returns nil (it
// only returns an error if it is already running). No goroutine and no
// sink call outlive it.
func (f *Follower) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return ErrRunning
	}
	f.running = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running = false
		f.st.State = StateStopped
		f.mu.Unlock()
	}()
	attempt := 0
	for {
		streamed, err := f.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if streamed {
			attempt = 0
		}
		d := f.backoff(attempt)
		attempt++
		f.mu.Lock()
		f.st.LastError = err
		f.st.Reconnects++
		f.st.State = StateBackoff
		f.mu.Unlock()
		f.log.Warn("mupdate: follower connection ended; reconnecting", "err", err, "backoff", d)
		select {
		case <-f.clock.After(d):
		case <-ctx.Done():
			return nil
		}
	}
}

func (f *Follower) dial(ctx context.Context) (*Conn, error) {
	if f.opts.Dial == nil {
		return Dialer{Addr: f.opts.Addr, Options: f.opts.Conn, Auth: f.opts.Auth}.Dial(ctx)
	}
	conn, err := f.opts.Dial(ctx)
	if err != nil {
		return nil, err
	}
	if f.opts.Auth != nil {
		client, err := f.opts.Auth()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("mupdatec: SASL client: %w", err)
		}
		if err := conn.Authenticate(ctx, client); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// session runs one connection: dial, authenticate, dump, stream. It
// returns whether streaming was reached and why it ended.
func (f *Follower) session(ctx context.Context) (streamed bool, err error) {
	f.setState(StateConnecting)
	conn, err := f.dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	f.mu.Lock()
	f.st.Server = conn.Banner().ServerName
	f.mu.Unlock()
	f.setState(StateLoading)
	sink := f.opts.Sink
	loader := sink.StartResync()
	n := 0
	committed := false
	sess := &session{conn: conn, ended: make(chan struct{})}
	err = conn.Update(ctx, f.opts.Servers, func(u *Update) {
		e := &u.Entry
		switch u.Kind {
		case UpdateDump:
			loader.Put(e.Name, e.Reserved, e.Location, e.ACL)
			n++
		case UpdateDumpDone:
			loader.Commit()
			committed = true
			f.startStreaming(sess, n)
		case UpdatePut:
			sink.Put(e.Name, e.Reserved, e.Location, e.ACL)
			f.touch()
		case UpdateDelete:
			sink.Delete(e.Name)
			f.touch()
		}
	})
	if err != nil {
		conn.Close() // waits for the reader: no more callbacks
		if !committed {
			loader.Discard()
		} else {
			f.stopStreaming(sess)
		}
		return committed, err
	}
	err = f.stream(ctx, conn)
	conn.Close()
	f.stopStreaming(sess)
	return true, err
}

// stream waits for the end of the connection, probing it with NOOP.
func (f *Follower) stream(ctx context.Context, conn *Conn) error {
	var tick <-chan time.Time
	if f.opts.KeepAlive > 0 {
		t := time.NewTicker(f.opts.KeepAlive)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-conn.Done():
			return conn.Err()
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			pctx, cancel := context.WithTimeout(ctx, f.opts.KeepAlive/2)
			err := conn.Noop(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("mupdatec: keepalive NOOP: %w", err)
			}
		}
	}
}

func (f *Follower) startStreaming(sess *session, n int) {
	now := f.clock.Now()
	f.mu.Lock()
	f.st.State = StateStreaming
	f.st.Entries = n
	f.st.LastLoad = now
	f.st.LastChange = now
	f.cur = sess
	close(f.streamCh)
	if !f.isReady {
		f.isReady = true
		close(f.ready)
	}
	f.mu.Unlock()
	f.log.Info("mupdate: replica loaded; streaming", "entries", n, "server", sess.conn.Banner().ServerName)
}

func (f *Follower) stopStreaming(sess *session) {
	now := f.clock.Now()
	f.mu.Lock()
	if f.cur == sess {
		f.cur = nil
		f.streamCh = make(chan struct{})
		f.st.CurrentAt = now
		close(sess.ended)
	}
	f.mu.Unlock()
}

func (f *Follower) touch() {
	now := f.clock.Now()
	f.mu.Lock()
	f.st.LastChange = now
	f.mu.Unlock()
}

// Sync returns once every change the master committed before the call
// has been applied to the sink: it sends NOOP on the streaming connection
// (the master flushes its queued changes first) and waits for the reply.
// If the stream is down, it waits for the next one (whose full dump
// includes those changes). It gives up when ctx is done.
func (f *Follower) Sync(ctx context.Context) error {
	for {
		f.mu.Lock()
		sess, ch := f.cur, f.streamCh
		f.mu.Unlock()
		if sess == nil {
			select {
			case <-ch:
				// Its dump may predate the caller's write: NOOP it too.
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := sess.conn.Noop(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *ServerError
		if errors.As(err, &se) {
			return err
		}
		select {
		case <-sess.ended:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
