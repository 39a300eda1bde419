// Package mover moves mailboxes of an IMAP Murder between any two IMAP
// backends (Cyrus ↔ Cyrus, Cyrus ↔ Dovecot, …) while they stay in use,
// and keeps the MUPDATE master true throughout.
//
// A move of one mailbox goes:
//
//  1. copy online, repeatedly, while the source serves: every message with
//     its flags, keywords and internal date (APPEND), the UID map from
//     APPENDUID; later rounds copy what is new, expunge what was expunged
//     and carry flag changes (by UID);
//  2. freeze: the MUPDATE entry is DEACTIVATEd (FIND-guarded, so never a
//     command that crashes a Cyrus 3.6 master), which front ends see as a
//     reservation ("being moved");
//  3. final delta, then verify: the same number of messages, and for each
//     message the same size, SHA-256 of its bytes, flags, keywords and
//     internal date;
//  4. switch: ACTIVATE at the destination with the source's ACL (every
//     front end's replica follows); on a Cyrus destination the backend's
//     own ACL is then made equal to it and checked;
//  5. what was written to the source between the verification and the
//     switch is carried over, then the source is deleted (unless
//     KeepSource).
//
// Until the switch the source is authoritative and intact: a failure
// before it re-activates the source entry (rollback), and a rerun finds
// the partial copy, matches it to the source by digest and resumes. A
// rerun after the switch carries over what the source still has that the
// destination lacks and finishes the deletion.
//
// Cyrus backends that update MUPDATE themselves (SelfMode) get the
// destination mailbox with LOCALCREATE and lose the source with
// LOCALDELETE (as the backend's admin), which do not touch MUPDATE, so no
// backend ever writes an entry for the mailbox before the switch. A Cyrus
// backend restarted meanwhile runs ctl_mboxlist -m, which deletes local
// mailboxes that MUPDATE places elsewhere: before the switch that is the
// destination's partial copy (the next run copies again), after it the
// source (which was to be deleted anyway).
package mover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// Backend is one IMAP backend of the Murder.
type Backend struct {
	// Server is the backend's name in MUPDATE locations.
	Server string
	// Dial says how to reach it.
	Dial backend.Options
	// ProxyUser and ProxyPassword log in as any user (SASL PLAIN with the
	// user as authorization identity); on a Cyrus backend the proxy user
	// is also an admin (for LOCALCREATE, LOCALDELETE and shared mailboxes).
	ProxyUser, ProxyPassword string
	// Separator is the backend's hierarchy separator ('/' or '.').
	Separator byte
	// Personal is set for backends with only a personal namespace
	// (Dovecot's default): shared mailboxes cannot live there.
	Personal bool
	// SelfMode is set for Cyrus Murder backends, which write MUPDATE
	// themselves.
	SelfMode bool
}

// Step names a point of a move, for Options.Hook.
type Step string

// The steps after which Options.Hook is called.
const (
	StepCopied   Step = "copied"   // online copy rounds done
	StepFrozen   Step = "frozen"   // source entry deactivated
	StepDelta    Step = "delta"    // final delta copied, not verified yet
	StepVerified Step = "verified" // final delta copied and verified
	StepSwitched Step = "switched" // ACTIVATE at the destination done
	StepDeleted  Step = "deleted"  // source deleted
)

// ErrAbandon, returned (wrapped) by Options.Hook, makes Run stop at once
// without any rollback, as if the process had been killed there.
var ErrAbandon = errors.New("mover: abandoned")

// Options configure a Mover.
type Options struct {
	// Master returns an authenticated connection to the MUPDATE master.
	Master func(ctx context.Context) (*mupdatec.Conn, error)
	// Backends are the Murder's backends, by Server.
	Backends map[string]*Backend
	// KeepSource leaves the source mailboxes in place after the switch.
	KeepSource bool
	// DiscardStrays lets a copy round expunge destination messages that
	// are not copies of source messages (left by an earlier run for
	// messages the source expunged since, or mail nobody should have put
	// there); without it such a move stops with a *StraysError.
	DiscardStrays bool
	// Rounds bounds the online copy rounds before the freeze (default 3);
	// rounds stop early once a round finds nothing to do.
	Rounds int
	// Grace is how long to wait after the switches before the sources are
	// finished (late writes carried over, then deleted), so that every
	// front end's replica has followed the switch (Cyrus's master sends
	// changes in batches, every 5 s).
	Grace time.Duration
	// Logger receives one line per step; nil discards.
	Logger *slog.Logger
	// Progress, if set, is called after each copied message.
	Progress func(Progress)
	// Hook, if set, is called after each step of each mailbox; an error
	// fails the move there (tests inject failures with it).
	Hook func(step Step, mailbox string) error
}

// Progress reports a running move.
type Progress struct {
	Mailbox        string
	Messages       int   // messages copied so far (all mailboxes)
	Bytes          int64 // bytes copied so far
	TotalMessages  int   // messages of the plan at planning time
	TotalBytes     int64
	Elapsed        time.Duration
	CurrentMessage int // of Mailbox
}

// Mover moves mailboxes. It is safe for use by one goroutine at a time.
type Mover struct {
	opts  Options
	log   *slog.Logger
	done  Progress
	start time.Time
	total Progress
}

// New returns a Mover.
func New(opts Options) *Mover {
	if opts.Rounds <= 0 {
		opts.Rounds = 3
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mover{opts: opts, log: log}
}

// State is where a mailbox of a plan stands.
type State string

// States of a planned mailbox.
const (
	StateActive   State = "active at source" // normal: copy, freeze, verify, switch
	StateFrozen   State = "frozen"           // an earlier run froze it: resume from the freeze
	StateSwitched State = "switched"         // already at the destination: only the source's leftovers remain
)

// Mailbox is one mailbox of a plan.
type Mailbox struct {
	Name string // internal name
	// DestName is its name at the destination: Name, or the new name of
	// a renaming move (Request.NewName).
	DestName string
	State    State    // at planning time
	Source   *Backend // nil for a switched mailbox without leftover
	// SourceLocation is the MUPDATE location it is moved from.
	SourceLocation string
	// ACL is the ACL carried to the destination (Cyrus form).
	ACL string
	// Messages and Bytes are the source's at planning time.
	Messages int
	Bytes    int64

	snapshot []*msg // the source as verified (set by the freeze step)
	uidMap   map[uint32]uint32
}

// Plan is what a Run will do.
type Plan struct {
	Dest         *Backend
	DestLocation string
	// User is set for a whole-account move (subscriptions are copied).
	User      string
	Mailboxes []*Mailbox
}

// Request names what to move where.
type Request struct {
	// Names are internal mailbox names, each moved with its children.
	Names []string
	// User, if set, moves the whole account user.<User>.
	User string
	// To is SERVER or SERVER!PARTITION (default partition "default").
	To string
	// NewName, if set, renames the one mailbox of Names (and its
	// children) to NewName while moving it (RENAME across servers). The
	// owner stays the same; KeepSource is refused.
	NewName string
}

// Plan looks the request up in the master and on the backends.
func (m *Mover) Plan(ctx context.Context, req Request) (*Plan, error) {
	server, part, _ := strings.Cut(req.To, "!")
	if part == "" {
		part = "default"
	}
	dest := m.opts.Backends[server]
	if dest == nil {
		return nil, fmt.Errorf("mover: destination %q is not a configured backend", server)
	}
	p := &Plan{Dest: dest, DestLocation: server + "!" + part, User: req.User}
	if req.NewName != "" {
		if len(req.Names) != 1 || req.User != "" || m.opts.KeepSource {
			return nil, errors.New("mover: a renaming move takes one mailbox, no -user, no KeepSource")
		}
		o1, _ := router.SplitInternal(req.Names[0])
		o2, _ := router.SplitInternal(req.NewName)
		if o1 == "" || o1 != o2 || req.NewName == req.Names[0] || strings.HasPrefix(req.NewName, req.Names[0]+".") {
			return nil, fmt.Errorf("mover: cannot rename %s to %s while moving (same owner, not into itself)", req.Names[0], req.NewName)
		}
	}
	roots := slices.Clone(req.Names)
	if req.User != "" {
		roots = append(roots, "user."+strings.ReplaceAll(router.EncodeUTF7(req.User), ".", "^"))
	}
	if len(roots) == 0 {
		return nil, errors.New("mover: nothing to move")
	}
	mc, err := m.opts.Master(ctx)
	if err != nil {
		return nil, fmt.Errorf("mover: MUPDATE master: %w", err)
	}
	defer mc.Close()
	var entries []mupdatec.Entry
	if err := mc.ListFunc(ctx, "", func(e mupdatec.Entry) {
		for _, r := range roots {
			if e.Name == r || strings.HasPrefix(e.Name, r+".") {
				entries = append(entries, e)
				return
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("mover: MUPDATE LIST: %w", err)
	}
	for _, r := range roots {
		if !slices.ContainsFunc(entries, func(e mupdatec.Entry) bool { return e.Name == r }) {
			return nil, fmt.Errorf("mover: %s: no such mailbox in the MUPDATE master", r)
		}
	}
	slices.SortFunc(entries, func(a, b mupdatec.Entry) int { return strings.Compare(a.Name, b.Name) })
	entries = slices.CompactFunc(entries, func(a, b mupdatec.Entry) bool { return a.Name == b.Name })
	destOf := func(name string) string {
		if req.NewName == "" {
			return name
		}
		return req.NewName + strings.TrimPrefix(name, req.Names[0])
	}
	for _, e := range entries {
		if owner, _ := router.SplitInternal(e.Name); owner == "" {
			// A Cyrus admin may not APPEND to a shared mailbox without an
			// ACL entry, and a SETACL before the switch would make the
			// destination backend activate it there: not done yet.
			return nil, fmt.Errorf("mover: %s: moving shared mailboxes is not supported (only users' mailboxes)", e.Name)
		}
		mb := &Mailbox{Name: e.Name, DestName: destOf(e.Name), SourceLocation: e.Location, ACL: e.ACL}
		src := m.opts.Backends[e.Server()]
		if mb.DestName != mb.Name {
			de, ok, err := mc.Find(ctx, mb.DestName)
			if err != nil {
				return nil, fmt.Errorf("mover: MUPDATE FIND: %w", err)
			}
			switch {
			case !ok, de.Reserved && de.Location == p.DestLocation:
				// Free, or reserved by an earlier run of this rename.
			case !de.Reserved && de.Location == p.DestLocation && e.Reserved && src != nil:
				// Switched by an earlier run: the old entry and data remain.
				mb.State, mb.Source = StateSwitched, src
				p.Mailboxes = append(p.Mailboxes, mb)
				continue
			default:
				return nil, fmt.Errorf("mover: %s already exists (%s at %s)", mb.DestName, map[bool]string{true: "reserved", false: "active"}[de.Reserved], de.Location)
			}
		}
		switch {
		case e.Location == p.DestLocation && !e.Reserved:
			mb.State = StateSwitched
			if err := m.findLeftover(ctx, p, mb); err != nil {
				return nil, err
			}
		case e.Server() == server:
			return nil, fmt.Errorf("mover: %s is reserved at %s (a CREATE or another move in progress); not touched", e.Name, e.Location)
		case src == nil:
			return nil, fmt.Errorf("mover: %s lives on %s, which is not a configured backend", e.Name, e.Server())
		case e.Reserved:
			mb.State, mb.Source = StateFrozen, src
			if err := m.recoverACL(ctx, mb); err != nil {
				return nil, err
			}
		default:
			mb.State, mb.Source = StateActive, src
		}
		if mb.Source != nil {
			if err := checkNameable(mb.Source, mb.Name); err != nil {
				return nil, err
			}
			if err := checkNameable(dest, mb.DestName); err != nil {
				return nil, err
			}
			if err := m.measure(ctx, mb); err != nil {
				if !isNo(err) || mb.State != StateActive || mb.DestName != mb.Name || !m.repairable(ctx, p, mb) {
					return nil, err
				}
			}
		}
		p.Mailboxes = append(p.Mailboxes, mb)
	}
	return p, nil
}

// checkNameable refuses a mailbox the backend cannot hold.
func checkNameable(b *Backend, name string) error {
	if _, _, err := native(b, name); err != nil {
		return fmt.Errorf("mover: %s cannot live on %s: %w", name, b.Server, err)
	}
	return nil
}

// native returns the user to log in as ("" = the backend's admin) and the
// backend-native name of the internal name.
func native(b *Backend, internal string) (user, name string, err error) {
	owner, _ := router.SplitInternal(internal)
	if owner == "" {
		if b.Personal {
			return "", "", fmt.Errorf("shared mailboxes need a backend with a shared namespace: %w", router.ErrNotInPersonalNamespace)
		}
		return "", adminName(internal), nil
	}
	name, err = router.PersonalName(owner, internal, b.Separator)
	return owner, name, err
}

// adminName is the name a Cyrus admin uses for an internal name
// (unixhierarchysep): user.alice.a^b is user/alice/a.b.
func adminName(internal string) string {
	var b strings.Builder
	for i := 0; i < len(internal); i++ {
		switch c := internal[i]; c {
		case '.':
			b.WriteByte('/')
		case '^':
			b.WriteByte('.')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// repairable handles an entry that points at a source which no longer has
// the mailbox while the destination has it: a run killed right after a
// Cyrus source's delete rewrote the entry (see Run). The mailbox is then
// switched already; Run's final check puts the entry back, with the
// destination's ACL (or the owner's default rights).
func (m *Mover) repairable(ctx context.Context, p *Plan, mb *Mailbox) bool {
	user, name, err := native(p.Dest, mb.DestName)
	if err != nil {
		return false
	}
	c, err := m.dial(ctx, p.Dest, user)
	if err != nil {
		return false
	}
	defer c.close()
	if ok, err := c.exists(ctx, name); err != nil || !ok {
		return false
	}
	mb.State, mb.Source = StateSwitched, nil
	if acl, err := c.getACL(ctx, name); err == nil && len(acl) > 0 && c.c.Has("ACL") {
		mb.ACL = acl.String()
	} else if mb.ACL == "" {
		owner, _ := router.SplitInternal(mb.Name)
		mb.ACL = router.EncodeUTF7(owner) + "\tlrswipkxtecdan\t"
	}
	m.log.Warn("the master points at a source without the mailbox, the destination has it: treated as switched", "mailbox", mb.Name, "source", mb.SourceLocation)
	return true
}

// measure counts the source's messages and bytes.
func (m *Mover) measure(ctx context.Context, mb *Mailbox) error {
	user, name, _ := native(mb.Source, mb.Name)
	c, err := m.dial(ctx, mb.Source, user)
	if err != nil {
		return err
	}
	defer c.close()
	_, exists, err := c.selectBox(ctx, name, true)
	if err != nil {
		return fmt.Errorf("mover: %s on %s: %w", mb.Name, mb.Source.Server, err)
	}
	msgs, err := c.fetchMeta(ctx, exists)
	if err != nil {
		return err
	}
	mb.Messages = len(msgs)
	for _, x := range msgs {
		mb.Bytes += x.size
	}
	return nil
}

// recoverACL finds the ACL of a mailbox frozen by an interrupted run (a
// reservation has none): the source backend's own ACL where it has ACLs,
// else the owner's default rights.
func (m *Mover) recoverACL(ctx context.Context, mb *Mailbox) error {
	user, name, err := native(mb.Source, mb.Name)
	if err != nil {
		return err
	}
	c, err := m.dial(ctx, mb.Source, user)
	if err != nil {
		return err
	}
	defer c.close()
	if c.c.Has("ACL") {
		acl, err := c.getACL(ctx, name)
		if err == nil && len(acl) > 0 {
			mb.ACL = acl.String()
			return nil
		}
	}
	owner, _ := router.SplitInternal(mb.Name)
	if owner == "" {
		return fmt.Errorf("mover: %s is frozen and its ACL cannot be recovered from %s", mb.Name, mb.Source.Server)
	}
	mb.ACL = router.EncodeUTF7(owner) + "\tlrswipkxtecdan\t"
	m.log.Warn("frozen mailbox: ACL not recoverable from the source backend, owner's default rights used", "mailbox", mb.Name, "acl", mb.ACL)
	return nil
}

// findLeftover looks for a copy of a switched mailbox on the other
// backends (a run interrupted after the switch).
func (m *Mover) findLeftover(ctx context.Context, p *Plan, mb *Mailbox) error {
	servers := make([]string, 0, len(m.opts.Backends))
	for s := range m.opts.Backends {
		servers = append(servers, s)
	}
	slices.Sort(servers)
	for _, s := range servers {
		b := m.opts.Backends[s]
		if b == p.Dest {
			continue
		}
		user, name, err := native(b, mb.Name)
		if err != nil {
			continue
		}
		c, err := m.dial(ctx, b, user)
		if err != nil {
			m.log.Warn("leftover check: backend unreachable", "backend", s, "err", err)
			continue
		}
		ok, err := c.exists(ctx, name)
		if ok && err == nil && strings.EqualFold(name, "INBOX") && b.Personal {
			// Such servers make an empty INBOX for anyone: only one with
			// messages is a leftover.
			_, n, serr := c.selectBox(ctx, name, true)
			ok = serr == nil && n > 0
		}
		c.close()
		if ok {
			mb.Source = b
			mb.SourceLocation = s + "!" + p.DestLocation[strings.IndexByte(p.DestLocation, '!')+1:]
			return nil
		}
	}
	return nil
}

// Report is what a Run did.
type Report struct {
	Moved    []string // switched to the destination in this run
	Deleted  []string // sources deleted
	Messages int
	Bytes    int64
	// Elapsed is the time the run took, Grace not counted.
	Elapsed time.Duration
	// MaxFreeze is the longest time a mailbox stayed frozen.
	MaxFreeze time.Duration
}

// Run carries out the plan. It stops at the first mailbox that fails
// (after rolling it back) and returns what was done so far.
func (m *Mover) Run(ctx context.Context, p *Plan) (*Report, error) {
	m.start = time.Now()
	m.done = Progress{}
	m.total = Progress{}
	for _, mb := range p.Mailboxes {
		if mb.State != StateSwitched {
			m.total.TotalMessages += mb.Messages
			m.total.TotalBytes += mb.Bytes
		}
	}
	rep := &Report{}
	mc, err := m.opts.Master(ctx)
	if err != nil {
		return rep, fmt.Errorf("mover: MUPDATE master: %w", err)
	}
	defer mc.Close()
	for _, mb := range p.Mailboxes {
		if mb.State == StateSwitched {
			continue
		}
		frozeFor, err := m.moveOne(ctx, mc, p, mb)
		rep.MaxFreeze = max(rep.MaxFreeze, frozeFor)
		if err != nil {
			rep.Messages, rep.Bytes, rep.Elapsed = m.done.Messages, m.done.Bytes, time.Since(m.start)
			return rep, fmt.Errorf("mover: %s: %w", mb.Name, err)
		}
		rep.Moved = append(rep.Moved, mb.Name)
	}
	if p.User != "" {
		if err := m.copySubscriptions(ctx, p); err != nil {
			return rep, err
		}
	}
	if m.opts.Grace > 0 && len(rep.Moved) > 0 {
		m.log.Info("waiting for the front ends to follow the switch", "grace", m.opts.Grace)
		t := time.NewTimer(m.opts.Grace)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return rep, ctx.Err()
		}
		m.start = m.start.Add(m.opts.Grace) // not part of Elapsed
	}
	// Sources last, children before their parents.
	for i := len(p.Mailboxes) - 1; i >= 0; i-- {
		mb := p.Mailboxes[i]
		if mb.Source == nil {
			continue
		}
		if err := m.finishSource(ctx, mc, p, mb); err != nil {
			return rep, fmt.Errorf("mover: %s: %w", mb.Name, err)
		}
		if !m.opts.KeepSource {
			rep.Deleted = append(rep.Deleted, mb.Name)
		}
	}
	// Deleting a Cyrus mailbox that has METADATA makes that backend write
	// the name back into the master at itself (measured on 3.6: ACTIVATE
	// at "server!" with no ACL), undoing the switch; deleting a user's
	// INBOX may do it for the children. Every switched entry is checked
	// after all deletions and restored.
	for _, mb := range p.Mailboxes {
		if err := m.reassert(ctx, mc, p, mb); err != nil {
			return rep, fmt.Errorf("mover: %s: %w", mb.Name, err)
		}
	}
	rep.Messages, rep.Bytes, rep.Elapsed = m.done.Messages, m.done.Bytes, time.Since(m.start)
	return rep, nil
}

func (m *Mover) hook(step Step, name string) error {
	m.log.Info("move step", "mailbox", name, "step", string(step))
	if m.opts.Hook == nil {
		return nil
	}
	return m.opts.Hook(step, name)
}

// moveOne copies, freezes, verifies and switches one mailbox.
func (m *Mover) moveOne(ctx context.Context, mc *mupdatec.Conn, p *Plan, mb *Mailbox) (frozeFor time.Duration, err error) {
	srcUser, srcName, _ := native(mb.Source, mb.Name)
	dstUser, dstName, _ := native(p.Dest, mb.DestName)
	s, err := m.dial(ctx, mb.Source, srcUser)
	if err != nil {
		return 0, err
	}
	defer s.close()
	d, err := m.dial(ctx, p.Dest, dstUser)
	if err != nil {
		return 0, err
	}
	defer d.close()
	if !d.c.Has("UIDPLUS") {
		return 0, fmt.Errorf("destination %s lacks UIDPLUS", p.Dest.Server)
	}
	if mb.DestName != mb.Name {
		// The new name is held for this move from the start.
		if err := mc.SafeReserve(ctx, mb.DestName, p.DestLocation); err != nil {
			return 0, fmt.Errorf("reserving the new name: %w", err)
		}
		defer func() {
			// A failure before the freeze releases the new name (after
			// it, rollback does).
			if err != nil && mb.State == StateActive && !errors.Is(err, ErrAbandon) {
				m.releaseNewName(mc, mb)
			}
		}()
	}
	if err := m.createDest(ctx, p.Dest, d, mb.DestName, dstName); err != nil {
		return 0, err
	}
	sy := &syncer{m: m, s: s, d: d, srcName: srcName, dstName: dstName, mb: mb}

	if mb.State == StateActive {
		for round := 0; round < m.opts.Rounds; round++ {
			n, err := sy.round(ctx)
			if err != nil {
				return 0, err
			}
			if n == 0 && round > 0 {
				break
			}
		}
		if err := m.hook(StepCopied, mb.Name); err != nil {
			return 0, err
		}
		if err := mc.SafeDeactivate(ctx, mb.Name, mb.SourceLocation); err != nil {
			return 0, fmt.Errorf("freeze: %w", err)
		}
		mb.State = StateFrozen
	}
	frozeAt := time.Now()
	defer func() {
		frozeFor = time.Since(frozeAt)
		if err != nil && !errors.Is(err, ErrAbandon) {
			if rerr := m.rollback(mc, mb); rerr != nil {
				err = fmt.Errorf("%w (and the rollback failed: %v; rerun the move)", err, rerr)
			}
		}
	}()
	if err := m.hook(StepFrozen, mb.Name); err != nil {
		return 0, err
	}
	// Final delta and verification; a write that slipped in (a session
	// that had the mailbox selected before the freeze) gets another
	// delta, a few times at most.
	var snap []*msg
	for attempt := 1; ; attempt++ {
		if _, err := sy.round(ctx); err != nil {
			return 0, err
		}
		if err := m.hook(StepDelta, mb.Name); err != nil {
			return 0, err
		}
		snap, err = sy.verify(ctx)
		var ve *VerifyError
		if err == nil {
			break
		}
		if !errors.As(err, &ve) || attempt == 3 {
			return 0, err
		}
		m.log.Warn("verification failed, another final delta", "mailbox", mb.Name, "err", err)
	}
	mb.snapshot = snap
	if err := m.hook(StepVerified, mb.Name); err != nil {
		return 0, err
	}
	// Switch only from our own freeze: a source backend that re-activated
	// its entry meanwhile (ctl_mboxlist -m at a restart, a SETACL) may
	// have taken writes we did not verify.
	e, ok, err := mc.Find(ctx, mb.Name)
	if err != nil {
		return 0, err
	}
	if !ok || !e.Reserved || e.Location != mb.SourceLocation {
		return 0, fmt.Errorf("the source entry changed during the freeze (now %+v); nothing switched, rerun the move", e)
	}
	if err := mc.Activate(ctx, mb.DestName, p.DestLocation, mb.ACL); err != nil {
		return 0, fmt.Errorf("switch: %w", err)
	}
	mb.State = StateSwitched
	m.log.Info("switched", "mailbox", mb.Name, "to", p.DestLocation, "frozen", time.Since(frozeAt))
	if err := m.hook(StepSwitched, mb.Name); err != nil {
		return 0, err
	}
	if err := m.destACL(ctx, mc, p, d, mb, dstName); err != nil {
		return 0, err
	}
	// METADATA (RFC 5464: comments, SPECIAL-USE as /private/specialuse on
	// Cyrus) after the switch: a SETMETADATA on a Cyrus backend ACTIVATEs
	// the mailbox there (measured), so before the switch it would be one.
	m.copyMetadata(ctx, s, d, srcName, dstName, mb.Name)
	return 0, nil
}

// rollback undoes a freeze: the source entry is active again with its ACL.
func (m *Mover) rollback(mc *mupdatec.Conn, mb *Mailbox) error {
	if mb.State != StateFrozen {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc, done, err := m.live(ctx, mc)
	if err != nil {
		return err
	}
	defer done()
	e, ok, err := mc.Find(ctx, mb.Name)
	if err != nil {
		return err
	}
	if ok && e.Reserved && e.Location == mb.SourceLocation {
		if err := mc.Activate(ctx, mb.Name, mb.SourceLocation, mb.ACL); err != nil {
			return err
		}
	}
	mb.State = StateActive
	if mb.DestName != mb.Name {
		return m.releaseNewName(mc, mb)
	}
	m.log.Warn("move rolled back: source active again", "mailbox", mb.Name, "location", mb.SourceLocation)
	return nil
}

// live returns mc, or a new connection to the master if mc has failed
// (the master restarted: undoing a freeze must not depend on the old
// connection), with the func that closes what it opened.
func (m *Mover) live(ctx context.Context, mc *mupdatec.Conn) (*mupdatec.Conn, func(), error) {
	if mc.Err() == nil {
		return mc, func() {}, nil
	}
	c, err := m.opts.Master(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close() }, nil
}

// releaseNewName deletes the reservation of a renaming move's new name
// (the partial copy stays for a rerun).
func (m *Mover) releaseNewName(mc *mupdatec.Conn, mb *Mailbox) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc, done, err := m.live(ctx, mc)
	if err != nil {
		return err
	}
	defer done()
	e, ok, err := mc.Find(ctx, mb.DestName)
	if err != nil || !ok || !e.Reserved {
		return err
	}
	if err := mc.SafeDelete(ctx, mb.DestName); err != nil && !errors.Is(err, mupdatec.ErrNotFound) {
		return err
	}
	return nil
}

// createDest makes the destination mailbox if it does not exist.
func (m *Mover) createDest(ctx context.Context, b *Backend, d *conn, internal, name string) error {
	ok, err := d.exists(ctx, name)
	if err != nil || ok {
		return err
	}
	if b.SelfMode {
		// LOCALCREATE: the Cyrus backend creates it without telling
		// MUPDATE, where the source stays authoritative until the switch.
		a, err := m.dial(ctx, b, "")
		if err != nil {
			return err
		}
		defer a.close()
		_, err = a.exec(ctx, "LOCALCREATE "+quote(adminName(internal)))
		return err
	}
	_, err = d.exec(ctx, "CREATE "+quote(name))
	return err
}

// destACL makes a Cyrus destination's own ACL equal to the carried ACL,
// after the switch (on Cyrus each SETACL re-activates the entry at the
// backend), and checks the master's entry.
func (m *Mover) destACL(ctx context.Context, mc *mupdatec.Conn, p *Plan, d *conn, mb *Mailbox, dstName string) error {
	want, err := router.ParseACL(mb.ACL)
	if err != nil {
		return fmt.Errorf("source ACL: %w", err)
	}
	if p.Dest.SelfMode && d.c.Has("ACL") {
		c := d
		if owner, _ := router.SplitInternal(mb.Name); owner == "" {
			// A shared mailbox: its ACL is set by the admin connection.
			a, err := m.dial(ctx, p.Dest, "")
			if err != nil {
				return err
			}
			defer a.close()
			c = a
		}
		have, err := c.getACL(ctx, dstName)
		if err != nil {
			return err
		}
		wantM, haveM := aclMap(want), aclMap(have)
		for id := range haveM { // removals first: never more rights than the source gave
			if _, ok := wantM[id]; !ok {
				if _, err := c.exec(ctx, "DELETEACL "+quote(dstName)+" "+quote(id)); err != nil {
					return err
				}
			}
		}
		for id, r := range wantM {
			if haveM[id] != r {
				if _, err := c.exec(ctx, "SETACL "+quote(dstName)+" "+quote(id)+" "+quote(r)); err != nil {
					return err
				}
			}
		}
		have, err = c.getACL(ctx, dstName)
		if err != nil {
			return err
		}
		if !maps.Equal(aclMap(have), wantM) {
			return fmt.Errorf("verify: ACL on %s is %q, want %q", p.Dest.Server, have.String(), mb.ACL)
		}
	}
	e, ok, err := mc.Find(ctx, mb.DestName)
	if err != nil {
		return err
	}
	if !ok || e.Reserved || e.Location != p.DestLocation {
		return fmt.Errorf("verify: master entry after the switch is %+v", e)
	}
	got, _ := router.ParseACL(e.ACL)
	if !maps.Equal(aclMap(got), aclMap(want)) {
		return fmt.Errorf("verify: master ACL after the switch is %q, want %q", e.ACL, mb.ACL)
	}
	return nil
}

func aclMap(a router.ACL) map[string]string {
	out := make(map[string]string, len(a))
	for _, e := range a {
		id := e.ID
		if e.Negative {
			id = "-" + id
		}
		out[id] = e.Rights.String()
	}
	return out
}

// finishSource carries over what reached the source after it was verified
// and deletes it (unless KeepSource).
func (m *Mover) finishSource(ctx context.Context, mc *mupdatec.Conn, p *Plan, mb *Mailbox) error {
	e, ok, err := mc.Find(ctx, mb.DestName)
	if err != nil {
		return err
	}
	if !ok || e.Reserved || e.Location != p.DestLocation {
		return fmt.Errorf("not deleting the source: the master says %+v, not active at %s", e, p.DestLocation)
	}
	srcUser, srcName, _ := native(mb.Source, mb.Name)
	dstUser, dstName, _ := native(p.Dest, mb.DestName)
	s, err := m.dial(ctx, mb.Source, srcUser)
	if err != nil {
		return err
	}
	defer s.close()
	d, err := m.dial(ctx, p.Dest, dstUser)
	if err != nil {
		return err
	}
	defer d.close()
	sy := &syncer{m: m, s: s, d: d, srcName: srcName, dstName: dstName, mb: mb}
	if err := sy.carryOver(ctx); err != nil {
		return fmt.Errorf("carrying over late writes: %w", err)
	}
	if m.opts.KeepSource {
		return nil
	}
	s.unselect(ctx)
	if mb.Source.SelfMode {
		a, err := m.dial(ctx, mb.Source, "")
		if err != nil {
			return err
		}
		defer a.close()
		if _, err := a.exec(ctx, "LOCALDELETE "+quote(adminName(mb.Name))); err != nil {
			return err
		}
	} else if strings.EqualFold(srcName, "INBOX") {
		// INBOX cannot be deleted on such servers: empty it.
		_, n, err := s.selectBox(ctx, srcName, false)
		if err != nil {
			return err
		}
		msgs, err := s.fetchMeta(ctx, n)
		if err != nil {
			return err
		}
		uids := make([]uint32, len(msgs))
		for i, x := range msgs {
			uids[i] = x.uid
		}
		if err := s.expunge(ctx, uids); err != nil {
			return err
		}
	} else if _, err := s.exec(ctx, "DELETE "+quote(srcName)); err != nil {
		return err
	}
	if err := m.reassert(ctx, mc, p, mb); err != nil {
		return err
	}
	if mb.DestName != mb.Name {
		// The old name's entry (frozen: a reservation at the source) goes
		// after its data, so that a Cyrus source restarted in between
		// (ctl_mboxlist -m) finds nothing to push back.
		// (By server: a Cyrus source's delete may have rewritten the
		// entry as "server!" with no partition.)
		if e, ok, err := mc.Find(ctx, mb.Name); err != nil {
			return err
		} else if ok && e.Server() == mb.Source.Server {
			if err := mc.SafeDelete(ctx, mb.Name); err != nil && !errors.Is(err, mupdatec.ErrNotFound) {
				return err
			}
		}
	}
	return m.hook(StepDeleted, mb.Name)
}

// reassert makes sure the master still has mb active at the destination
// with its ACL, and puts it back if a source backend changed it.
func (m *Mover) reassert(ctx context.Context, mc *mupdatec.Conn, p *Plan, mb *Mailbox) error {
	e, ok, err := mc.Find(ctx, mb.DestName)
	if err != nil {
		return err
	}
	if ok && !e.Reserved && e.Location == p.DestLocation {
		return nil
	}
	m.log.Warn("the master's entry changed after the source was deleted: switch restored", "mailbox", mb.DestName, "found", e.Location, "reserved", e.Reserved, "present", ok)
	return mc.Activate(ctx, mb.DestName, p.DestLocation, mb.ACL)
}

// copySubscriptions subscribes the user, on the destination, to what the
// user was subscribed to on the source INBOX's backend.
func (m *Mover) copySubscriptions(ctx context.Context, p *Plan) error {
	var inbox *Mailbox
	for _, mb := range p.Mailboxes {
		if owner, path := router.SplitInternal(mb.Name); owner == p.User && path == "" {
			inbox = mb
		}
	}
	if inbox == nil || inbox.Source == nil {
		return nil
	}
	s, err := m.dial(ctx, inbox.Source, p.User)
	if err != nil {
		return err
	}
	defer s.close()
	subs, err := s.list(ctx, "LSUB", "*")
	if err != nil {
		return err
	}
	d, err := m.dial(ctx, p.Dest, p.User)
	if err != nil {
		return err
	}
	defer d.close()
	for _, name := range subs {
		internal, err := toInternal(inbox.Source, p.User, name)
		if err != nil {
			m.log.Warn("subscription not carried (name not understood)", "name", name, "err", err)
			continue
		}
		dn, err := fromInternal(p.Dest, p.User, internal)
		if err != nil {
			m.log.Warn("subscription not carried (no name on the destination)", "mailbox", internal, "err", err)
			continue
		}
		if _, err := d.exec(ctx, "SUBSCRIBE "+quote(dn)); err != nil {
			return err
		}
	}
	return nil
}

// toInternal and fromInternal translate a user's names on a backend.
func toInternal(b *Backend, user, name string) (string, error) {
	if b.Personal {
		return router.FromPersonalName(user, name, b.Separator)
	}
	ns, err := router.NewNamespace(router.DefaultOtherUsersPrefix, router.DefaultSharedPrefix, b.Separator)
	if err != nil {
		return "", err
	}
	return ns.ToInternal(user, name)
}

func fromInternal(b *Backend, user, internal string) (string, error) {
	if b.Personal {
		return router.PersonalName(user, internal, b.Separator)
	}
	ns, err := router.NewNamespace(router.DefaultOtherUsersPrefix, router.DefaultSharedPrefix, b.Separator)
	if err != nil {
		return "", err
	}
	return ns.ToClient(user, internal)
}

// ErrTooLarge is returned by Rename when the mailbox holds more than the
// bound: such moves are for the admin tool (mupdatectl move).
var ErrTooLarge = errors.New("mover: mailbox too large to move while the client waits")

// Rename is RENAME across servers for a front end (the client waits for
// the answer): it moves the internal name from (with its children) to the
// internal name to on server, if they hold at most maxBytes (0: no bound),
// deleting the source. It returns ErrTooLarge (nothing done) above the
// bound, a *StraysError or *VerifyError (the source active again) or
// another error.
func (m *Mover) Rename(ctx context.Context, from, to, server string, maxBytes int64) error {
	p, err := m.Plan(ctx, Request{Names: []string{from}, NewName: to, To: server})
	if err != nil {
		return err
	}
	var total int64
	for _, mb := range p.Mailboxes {
		total += mb.Bytes
	}
	if maxBytes > 0 && total > maxBytes {
		return fmt.Errorf("%w: %d bytes, the bound is %d", ErrTooLarge, total, maxBytes)
	}
	_, err = m.Run(ctx, p)
	return err
}
