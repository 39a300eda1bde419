package mupdatec

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
)

// Connection errors. Check them with errors.Is.
var (
	// ErrClosed: Close was called on the connection.
	ErrClosed = errors.New("mupdatec: connection closed")
	// ErrConnLost: the connection broke (EOF, read error, BYE, protocol
	// error). Every pending command fails with an error wrapping it.
	ErrConnLost = errors.New("mupdatec: connection lost")
	// ErrBye: the server sent * BYE (wrapped together with ErrConnLost).
	ErrBye = errors.New("mupdatec: server said BYE")
	// ErrNoStartTLS: STARTTLS was asked for but the banner does not offer it.
	ErrNoStartTLS = errors.New("mupdatec: server does not offer STARTTLS")
)

// ServerError is a tagged NO or BAD reply.
type ServerError struct {
	Command string // command name, e.g. "RESERVE"
	Status  string // "NO" or "BAD"
	Text    string // the server's text, e.g. "mailbox already exists"
}

// Error returns "mupdatec: COMMAND: STATUS text".
func (e *ServerError) Error() string {
	return fmt.Sprintf("mupdatec: %s: %s %s", e.Command, e.Status, e.Text)
}

// TLSMode selects how a connection is secured.
type TLSMode int

// TLS modes.
const (
	TLSNone     TLSMode = iota // plain TCP
	TLSImplicit                // TLS from the first byte
	TLSStartTLS                // plain TCP, then STARTTLS before anything else
)

// Options configure a connection. The zero value is a plain connection.
type Options struct {
	TLS       TLSMode
	TLSConfig *tls.Config // required for TLSImplicit and TLSStartTLS (ServerName defaults to the host of addr)
	// DialContext dials the TCP connection; nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	MaxLine     int          // 0 = DefaultMaxLine
	MaxLiteral  int          // 0 = DefaultMaxLiteral
	Logger      *slog.Logger // nil = discard
}

// Banner is the capability banner the server sends on connect.
type Banner struct {
	Mechanisms     []string // * AUTH
	StartTLS       bool     // * STARTTLS
	Compress       []string // * COMPRESS
	PartialUpdate  bool     // * PARTIAL-UPDATE
	ServerName     string   // 1st string of * OK MUPDATE
	Implementation string   // 2nd string, e.g. "Cyrus IMAP"
	Version        string   // 3rd string
	// Master is true when the last string is "(master)"; a slave sends
	// its master's URL instead (MasterURL).
	Master    bool
	MasterURL string
}

// HasMechanism reports whether the banner offers the SASL mechanism.
func (b *Banner) HasMechanism(mech string) bool {
	for _, m := range b.Mechanisms {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// Entry is one mailbox of the MUPDATE database.
type Entry struct {
	Name     string // internal name, e.g. "user.alice.Sent"
	Reserved bool   // RESERVE (being created or moved) rather than MAILBOX
	Location string // "server!partition"
	ACL      string // "id\trights\t..." (empty for a reservation)
}

// Server returns the server part of the location (before the first '!').
func (e Entry) Server() string {
	if i := strings.IndexByte(e.Location, '!'); i >= 0 {
		return e.Location[:i]
	}
	return e.Location
}

// Partition returns the partition part of the location (may be empty).
func (e Entry) Partition() string {
	if i := strings.IndexByte(e.Location, '!'); i >= 0 {
		return e.Location[i+1:]
	}
	return ""
}

// UpdateKind says what an Update is.
type UpdateKind uint8

// Kinds of Update.
const (
	UpdateDump     UpdateKind = iota + 1 // an entry of the initial dump
	UpdateDumpDone                       // the dump is complete; streaming starts
	UpdatePut                            // streamed current state of Entry.Name
	UpdateDelete                         // streamed: Entry.Name is gone
)

// An Update is one event of an UPDATE command.
type Update struct {
	Kind  UpdateKind
	Entry Entry
}

type result struct {
	status *Response // final tagged reply (copied)
	err    error
}

type pending struct {
	name   string
	onData func(*Response) // tagged MAILBOX/RESERVE/DELETE, in the reader goroutine
	cont   chan string     // AUTHENTICATE continuations
	done   chan result
	// stream keeps the tag registered after the OK (UPDATE).
	stream bool
	// dataMu makes abandoning wait for a running onData call, so that
	// a callback never runs after its command returned.
	dataMu    sync.Mutex
	abandoned bool
}

// data calls onData unless the command was abandoned.
func (p *pending) data(r *Response) {
	if p.onData == nil {
		return
	}
	p.dataMu.Lock()
	if !p.abandoned {
		p.onData(r)
	}
	p.dataMu.Unlock()
}

func (p *pending) abandon() {
	p.dataMu.Lock()
	p.abandoned = true
	p.dataMu.Unlock()
}

// Conn is one MUPDATE connection. Its methods are safe for concurrent use;
// commands are pipelined and replies routed by tag.
type Conn struct {
	nc     net.Conn
	dec    *Decoder
	banner Banner
	log    *slog.Logger

	wmu sync.Mutex
	enc *Encoder

	mu      sync.Mutex
	pending map[string]*pending
	authing *pending
	err     error // set once when the connection ends
	closed  bool

	tagSeq    atomic.Uint64
	authMu    sync.Mutex
	readerEnd chan struct{}
}

// Dial connects to addr, reads the banner and, per opts, sets up TLS. The
// connection is not authenticated yet.
func Dial(ctx context.Context, addr string, opts *Options) (*Conn, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	dial := o.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mupdatec: dial %s: %w", addr, err)
	}
	if o.TLS != TLSNone {
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{}
		} else {
			o.TLSConfig = o.TLSConfig.Clone()
		}
		if o.TLSConfig.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				o.TLSConfig.ServerName = host
			}
		}
	}
	if o.TLS == TLSImplicit {
		tc := tls.Client(nc, o.TLSConfig)
		if err := handshake(ctx, tc); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c, err := newConn(ctx, nc, &o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// NewConn wraps an established connection (plain or TLS): it reads the
// banner and starts the reader. STARTTLS in opts is honoured.
func NewConn(ctx context.Context, nc net.Conn, opts *Options) (*Conn, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	return newConn(ctx, nc, &o)
}

func handshake(ctx context.Context, tc *tls.Conn) error {
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("mupdatec: TLS handshake: %w", err)
	}
	return nil
}

func newConn(ctx context.Context, nc net.Conn, o *Options) (*Conn, error) {
	c := &Conn{
		nc:        nc,
		log:       o.Logger,
		pending:   make(map[string]*pending),
		readerEnd: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.dec = NewDecoder(nc, o.MaxLine, o.MaxLiteral)
	c.enc = NewEncoder(nc)
	// Read the banner (and do STARTTLS) synchronously, before the reader runs.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	err := c.readBanner()
	if err == nil && o.TLS == TLSStartTLS {
		err = c.startTLS(ctx, o)
	}
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	go c.reader()
	return c, nil
}

func (c *Conn) readBanner() error {
	c.banner = Banner{}
	var r Response
	for {
		if err := c.dec.ReadResponse(&r); err != nil {
			return fmt.Errorf("%w: reading banner: %w", ErrConnLost, err)
		}
		switch r.Kind {
		case RespAuth:
			c.banner.Mechanisms = append([]string(nil), r.Args...)
		case RespStartTLS:
			c.banner.StartTLS = true
		case RespCompress:
			c.banner.Compress = append([]string(nil), r.Args...)
		case RespPartialUpdate:
			c.banner.PartialUpdate = true
		case RespBanner:
			a := r.Args
			get := func(i int) string {
				if i < len(a) {
					return a[i]
				}
				return ""
			}
			c.banner.ServerName, c.banner.Implementation, c.banner.Version = get(0), get(1), get(2)
			if len(a) >= 4 {
				last := a[len(a)-1]
				if last == "(master)" {
					c.banner.Master = true
				} else {
					c.banner.MasterURL = last
				}
			}
			return nil
		case RespBye, RespNO, RespBAD:
			return fmt.Errorf("%w: %w: %s", ErrConnLost, ErrBye, r.Text)
		default:
			if r.Tag != "*" {
				return fmt.Errorf("%w: unexpected %s in banner", ErrProtocol, r.Kind)
			}
		}
	}
}

func (c *Conn) startTLS(ctx context.Context, o *Options) error {
	if !c.banner.StartTLS {
		return ErrNoStartTLS
	}
	c.enc.Command("S01", "STARTTLS")
	if err := c.enc.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	var r Response
	for {
		if err := c.dec.ReadResponse(&r); err != nil {
			return fmt.Errorf("%w: STARTTLS: %w", ErrConnLost, err)
		}
		if r.Tag == "S01" {
			break
		}
	}
	if r.Kind != RespOK {
		return &ServerError{Command: "STARTTLS", Status: r.Kind.String(), Text: r.Text}
	}
	if c.dec.Reader().Buffered() > 0 {
		return fmt.Errorf("%w: data after STARTTLS reply", ErrProtocol)
	}
	tc := tls.Client(c.nc, o.TLSConfig)
	if err := handshake(ctx, tc); err != nil {
		return err
	}
	c.nc = tc
	c.dec = NewDecoder(tc, o.MaxLine, o.MaxLiteral)
	c.enc = NewEncoder(tc)
	return c.readBanner()
}

// Banner returns the server's capability banner (after STARTTLS, the
// banner sent over TLS).
func (c *Conn) Banner() Banner { return c.banner }

// TLSConnectionState returns the TLS state and true if the connection
// uses TLS.
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Done is closed when the connection has ended (Close, loss, BYE).
func (c *Conn) Done() <-chan struct{} { return c.readerEnd }

// Err returns why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection at once; pending commands fail with
// ErrClosed. It waits for the reader goroutine to end, so it must not be
// called from an Update or ListFunc callback.
func (c *Conn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.err == nil {
			c.err = ErrClosed
		}
	}
	c.mu.Unlock()
	err := c.nc.Close()
	<-c.readerEnd
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (c *Conn) reader() {
	defer close(c.readerEnd)
	var r Response
	var err error
	for {
		if err = c.dec.ReadResponse(&r); err != nil {
			break
		}
		if err = c.dispatch(&r); err != nil {
			break
		}
	}
	c.fail(err)
}

// fail ends the connection with err and fails every pending command.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		switch {
		case errors.Is(err, ErrConnLost):
		case err == io.EOF:
			err = fmt.Errorf("%w: closed by server", ErrConnLost)
		default:
			err = fmt.Errorf("%w: %w", ErrConnLost, err)
		}
		c.err = err
	}
	err = c.err
	pend := c.pending
	c.pending = map[string]*pending{}
	c.authing = nil
	c.mu.Unlock()
	c.nc.Close()
	for _, p := range pend {
		p.done <- result{err: err}
	}
	if !errors.Is(err, ErrClosed) {
		c.log.Debug("mupdate connection ended", "err", err)
	}
}

func (c *Conn) dispatch(r *Response) error {
	switch r.Kind {
	case RespContinuation:
		c.mu.Lock()
		p := c.authing
		c.mu.Unlock()
		if p == nil {
			return fmt.Errorf("%w: unexpected continuation line", ErrProtocol)
		}
		select {
		case p.cont <- r.Text:
		default:
			return fmt.Errorf("%w: unexpected continuation line", ErrProtocol)
		}
		return nil
	case RespBye:
		return fmt.Errorf("%w: %w: %s", ErrConnLost, ErrBye, r.Text)
	}
	if r.Tag == "*" {
		c.log.Debug("mupdate: ignoring untagged response", "kind", r.Kind.String(), "text", r.Text)
		return nil
	}
	c.mu.Lock()
	p := c.pending[r.Tag]
	c.mu.Unlock()
	if p == nil {
		c.log.Warn("mupdate: reply with unknown tag", "tag", r.Tag, "kind", r.Kind.String())
		return nil
	}
	switch r.Kind {
	case RespMailbox, RespReserve, RespDelete:
		p.data(r)
		return nil
	}
	// OK, NO, BAD: the command is complete.
	if p.stream && r.Kind == RespOK {
		p.data(r)
		st := *r
		p.done <- result{status: &st}
		return nil
	}
	c.mu.Lock()
	delete(c.pending, r.Tag)
	if c.authing == p {
		c.authing = nil
	}
	c.mu.Unlock()
	st := *r
	st.Args = nil
	p.done <- result{status: &st}
	return nil
}

func (c *Conn) newTag(prefix string) string {
	return prefix + strconv.FormatUint(c.tagSeq.Add(1), 10)
}

// send registers p under a fresh tag and writes the command built by
// write. If ctx ends while the write is blocked (a peer that stopped
// reading), the connection is broken: a half-written command cannot be
// taken back.
func (c *Conn) send(ctx context.Context, p *pending, prefix string, write func(e *Encoder, tag string)) (string, error) {
	tag := c.newTag(prefix)
	p.done = make(chan result, 2)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return "", err
	}
	c.pending[tag] = p
	c.mu.Unlock()
	if err := c.write(ctx, func(e *Encoder) { write(e, tag) }); err != nil {
		return "", err
	}
	return tag, nil
}

// write runs fn on the encoder and flushes, under the write lock.
func (c *Conn) write(ctx context.Context, fn func(e *Encoder)) error {
	c.wmu.Lock()
	stop := context.AfterFunc(ctx, func() { c.nc.SetWriteDeadline(time.Unix(1, 0)) })
	fn(c.enc)
	err := c.enc.Flush()
	stop()
	c.wmu.Unlock()
	if err != nil {
		c.nc.Close() // the reader fails every pending command
		<-c.readerEnd
		return c.Err()
	}
	return nil
}

// wait waits for the tagged reply of p.
func (c *Conn) wait(ctx context.Context, p *pending) error {
	select {
	case res := <-p.done:
		if res.err != nil {
			return res.err
		}
		if res.status.Kind != RespOK {
			return &ServerError{Command: p.name, Status: res.status.Kind.String(), Text: res.status.Text}
		}
		return nil
	case <-ctx.Done():
		p.abandon()
		return ctx.Err()
	}
}

// do runs one simple command.
func (c *Conn) do(ctx context.Context, name string, onData func(*Response), args ...string) error {
	p := &pending{name: name, onData: onData}
	if _, err := c.send(ctx, p, "A", func(e *Encoder, tag string) { e.Command(tag, name, args...) }); err != nil {
		return err
	}
	return c.wait(ctx, p)
}

func entryOf(r *Response) Entry {
	return Entry{Name: r.Name, Reserved: r.Kind == RespReserve, Location: r.Location, ACL: r.ACL}
}

// Authenticate runs AUTHENTICATE with the SASL client. The initial
// response, if any, goes as a {n+} literal (as Cyrus's own clients do);
// continuations are bare base64 lines both ways; a failing SASL step
// cancels with "*". A wrong password gives a *ServerError (Cyrus: NO
// "undefined error!", after its failedloginpause).
func (c *Conn) Authenticate(ctx context.Context, client sasl.Client) error {
	mech, ir, err := client.Start()
	if err != nil {
		return fmt.Errorf("mupdatec: SASL start: %w", err)
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	p := &pending{name: "AUTHENTICATE", cont: make(chan string, 1)}
	c.mu.Lock()
	c.authing = p
	c.mu.Unlock()
	_, err = c.send(ctx, p, "A", func(e *Encoder, tag string) {
		e.Atom(tag).Atom(" AUTHENTICATE ").Quoted(mech)
		if ir != nil {
			e.SP().Literal(base64.StdEncoding.EncodeToString(ir))
		}
		e.CRLF()
	})
	if err != nil {
		c.mu.Lock()
		if c.authing == p {
			c.authing = nil
		}
		c.mu.Unlock()
		return err
	}
	for {
		select {
		case res := <-p.done:
			if res.err != nil {
				return res.err
			}
			if res.status.Kind != RespOK {
				return &ServerError{Command: p.name, Status: res.status.Kind.String(), Text: res.status.Text}
			}
			return nil
		case ch := <-p.cont:
			line := "*"
			chal, err := base64.StdEncoding.DecodeString(ch)
			if err == nil {
				var resp []byte
				if resp, err = client.Next(chal); err == nil {
					line = base64.StdEncoding.EncodeToString(resp)
				}
			}
			if err != nil {
				c.log.Debug("mupdate: cancelling authentication", "err", err)
			}
			// On failure the reader fails p, which ends this loop.
			c.write(ctx, func(e *Encoder) { e.Atom(line).CRLF() })
		case <-ctx.Done():
			// The exchange cannot be resumed; the connection is unusable.
			c.nc.Close()
			return ctx.Err()
		}
	}
}

// Noop sends NOOP. On a streaming (UPDATE) connection the master first
// flushes its pending changes, so when Noop returns every change committed
// before it has been delivered to the UPDATE handler.
func (c *Conn) Noop(ctx context.Context) error {
	return c.do(ctx, "NOOP", nil)
}

// Find looks name up; ok is false if the master has no such entry.
func (c *Conn) Find(ctx context.Context, name string) (e Entry, ok bool, err error) {
	err = c.do(ctx, "FIND", func(r *Response) {
		if r.Kind != RespDelete && r.Name == name {
			e, ok = entryOf(r), true
		}
	}, name)
	if err != nil {
		return Entry{}, false, err
	}
	return e, ok, nil
}

// List returns every entry whose location starts with locationPrefix
// ("" = all). The prefix is a prefix of the LOCATION, not of the name.
func (c *Conn) List(ctx context.Context, locationPrefix string) ([]Entry, error) {
	var out []Entry
	err := c.ListFunc(ctx, locationPrefix, func(e Entry) { out = append(out, e) })
	return out, err
}

// ListFunc is List calling fn for each entry as it arrives (from the
// reader goroutine: fn must not wait for a reply on c). fn is not called
// after ListFunc returns.
func (c *Conn) ListFunc(ctx context.Context, locationPrefix string, fn func(Entry)) error {
	var args []string
	if locationPrefix != "" {
		args = []string{locationPrefix}
	}
	return c.do(ctx, "LIST", func(r *Response) {
		if r.Kind != RespDelete {
			fn(entryOf(r))
		}
	}, args...)
}

// Reserve sends RESERVE. Beware: on Cyrus 3.6, RESERVE of an active entry
// at the same location silently demotes it; use SafeReserve.
func (c *Conn) Reserve(ctx context.Context, name, location string) error {
	return c.do(ctx, "RESERVE", nil, name, location)
}

// Activate sends ACTIVATE (creates, updates or moves the entry).
func (c *Conn) Activate(ctx context.Context, name, location, acl string) error {
	return c.do(ctx, "ACTIVATE", nil, name, location, acl)
}

// Deactivate sends DEACTIVATE. Beware: Cyrus 3.6 crashes on a missing or
// reserved entry; use SafeDeactivate.
func (c *Conn) Deactivate(ctx context.Context, name, location string) error {
	return c.do(ctx, "DEACTIVATE", nil, name, location)
}

// Delete sends DELETE. Beware: Cyrus 3.6 crashes on a missing entry; use
// SafeDelete.
func (c *Conn) Delete(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", nil, name)
}

// Logout sends LOGOUT, waits for the reply and closes the connection.
func (c *Conn) Logout(ctx context.Context) error {
	err := c.do(ctx, "LOGOUT", nil)
	c.Close()
	return err
}

// Update sends UPDATE [servers...] and calls fn for the initial dump
// (UpdateDump, then UpdateDumpDone) and for every later streamed change
// (UpdatePut, UpdateDelete). fn runs in the reader goroutine, in wire
// order, so it must not wait for a reply on c. Update returns when the
// dump is complete; the stream goes on until the connection ends (see Done
// and Err); if ctx ends before the dump is complete, the connection is
// closed. While streaming, only Noop and Logout are legal on c (Cyrus
// answers anything else with BAD "not legal when streaming").
func (c *Conn) Update(ctx context.Context, servers []string, fn func(*Update)) error {
	var u Update
	p := &pending{name: "UPDATE", stream: true}
	streaming := false
	p.onData = func(r *Response) {
		switch r.Kind {
		case RespOK:
			streaming = true
			u = Update{Kind: UpdateDumpDone}
		case RespDelete:
			u = Update{Kind: UpdateDelete, Entry: Entry{Name: r.Name}}
		default:
			u = Update{Kind: UpdateDump, Entry: entryOf(r)}
			if streaming {
				u.Kind = UpdatePut
			}
		}
		fn(&u)
	}
	if _, err := c.send(ctx, p, "U", func(e *Encoder, tag string) { e.Command(tag, "UPDATE", servers...) }); err != nil {
		return err
	}
	if err := c.wait(ctx, p); err != nil {
		var se *ServerError
		if errors.As(err, &se) {
			return err
		}
		if ctx.Err() != nil {
			// Stop the stream: the connection cannot be reused.
			c.nc.Close()
		}
		return err
	}
	return nil
}
