package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// DatabaseOptions describe where a front end's mailbox database comes
// from.
type DatabaseOptions struct {
	// Master dials and logs in to the MUPDATE master (or a slave).
	Master mupdatec.Dialer
	// Find selects FIND mode: no replica, each name looked up on demand
	// through a cache of FindCacheSize answers kept FindCacheTTL (router's
	// defaults when 0).
	Find          bool
	FindCacheSize int
	FindCacheTTL  time.Duration
	// ConfirmTTL is how long a name confirmed with the master is not asked
	// about again (router.ReadThroughOptions.TTL).
	ConfirmTTL time.Duration
	// Namespace and Policy are the router's (defaults when zero).
	Namespace *router.Namespace
	Policy    router.Policy
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
	// Observe sees each doubt's outcome (metrics.Metrics.ReadThrough).
	Observe func(result string, d time.Duration)
}

// Database is the mailbox-database side of a front end, assembled the one
// way the daemon, the demo, the integration tests and the benchmarks use:
// an UPDATE replica with its follower (or FIND mode's finder), the
// consistency hooks, and the MUPDATE writer for front-mode backends.
type Database struct {
	// Replica and Follower are set in UPDATE mode, Finder in FIND mode.
	Replica  *router.Replica
	Follower *mupdatec.Follower
	Finder   *router.Finder
	// Directory is what the session resolves names in.
	Directory frontend.Directory
	// Writer writes MUPDATE for front-mode backends.
	Writer *mupdatec.Writer
	// Consistency are the Sync and Confirm hooks.
	Consistency

	master mupdatec.Dialer
	admins []string
	logger *slog.Logger
	// moved, once a server is built on the database, hears of every
	// mailbox streamed as active (frontend.Server.MailboxMoved).
	moved atomic.Pointer[func(internal, server string)]
}

// movingSink is the replica's sink that also tells the front end of
// entries streamed as active, so that sessions idling on a mailbox that
// moved to another backend hear of it at once.
type movingSink struct {
	ReplicaSink
	d *Database
}

// Put upserts an entry and reports an active one to the front end.
func (s movingSink) Put(name string, reserved bool, location, acl string) {
	s.ReplicaSink.Put(name, reserved, location, acl)
	if f := s.d.moved.Load(); f != nil && !reserved {
		server, _, _ := strings.Cut(location, "!")
		(*f)(name, server)
	}
}

// NewDatabase assembles a Database; Run starts it.
func NewDatabase(o DatabaseOptions) *Database {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ropts := router.Options{Namespace: o.Namespace, Policy: o.Policy, Logger: logger.With("component", "router")}
	d := &Database{Writer: &mupdatec.Writer{Dial: o.Master.Dial}, master: o.Master, admins: o.Policy.Admins, logger: logger}
	cons := ConsistencyOptions{TTL: o.ConfirmTTL, Observe: o.Observe}
	if o.Find {
		d.Finder = router.NewFinder(FindLookup(o.Master.Dial), router.FinderOptions{Options: ropts, Size: o.FindCacheSize, TTL: o.FindCacheTTL})
		d.Directory = frontend.FinderDirectory{F: d.Finder, Logger: logger.With("component", "router")}
		d.Consistency = ForFinder(d.Finder, cons)
		return d
	}
	d.Replica = router.NewReplica(ropts)
	d.Follower = mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: o.Master.Addr, Conn: o.Master.Options, Auth: o.Master.Auth,
		Sink: movingSink{ReplicaSink{R: d.Replica}, d}, Logger: logger.With("component", "follower"),
	})
	d.Directory = frontend.ReplicaDirectory{R: d.Replica}
	d.Consistency = ForFollower(d.Follower, cons)
	return d
}

// Fill sets the mailbox-database fields of a front end's options:
// Directory, MailboxDB, Sync, Confirm, and Admins from the router's policy
// (the admins are configured once, for rights and for authorization
// identities alike).
func (d *Database) Fill(o *frontend.Options) {
	o.Directory, o.MailboxDB, o.Sync, o.Confirm = d.Directory, d.Writer, d.Sync, d.Confirm
	o.Admins = d.admins
}

// Run keeps the database current until ctx ends: the follower's loop in
// UPDATE mode; FIND mode has nothing to run and waits.
func (d *Database) Run(ctx context.Context) error {
	if d.Follower == nil {
		<-ctx.Done()
		return nil
	}
	return d.Follower.Run(ctx)
}

// WaitReady waits for the first full load (UPDATE mode) or ctx.
func (d *Database) WaitReady(ctx context.Context) error {
	if d.Follower == nil {
		return nil
	}
	return d.Follower.WaitReady(ctx)
}

// Ready reports what /readyz answers: nil once the replica is loaded, in
// FIND mode once the master accepts a login.
func (d *Database) Ready(ctx context.Context) error {
	if d.Follower != nil {
		select {
		case <-d.Follower.Ready():
			return nil
		default:
			return errors.New("no mailbox database loaded from MUPDATE yet")
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.master.Dial(rctx)
	if err != nil {
		return fmt.Errorf("FIND mode: MUPDATE master unreachable: %w", err)
	}
	c.Logout(rctx)
	c.Close()
	return nil
}

// Current reports whether the database can be trusted for a definite
// answer: the follower is streaming (UPDATE mode), or always (FIND mode
// asks the master each time).
func (d *Database) Current() bool {
	return d.Follower == nil || d.Follower.Status().State == mupdatec.StateStreaming
}

// RegisterMetrics registers the database's gauges: the follower's state
// and the replica's size, or FIND mode's cache.
func (d *Database) RegisterMetrics(reg prometheus.Registerer) {
	if d.Finder != nil {
		metrics.RegisterFinder(reg, d.Finder.Len)
		return
	}
	metrics.RegisterFollower(reg, func() metrics.FollowerInfo {
		st := d.Follower.Status()
		return metrics.FollowerInfo{State: st.State.String(), Reconnects: st.Reconnects, Entries: d.Replica.Len(), CurrentAt: st.CurrentAt}
	})
}
