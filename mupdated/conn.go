package mupdated

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/mupdatec"
)

// writeTimeout bounds one burst of writes to a client.
const writeTimeout = time.Minute

// progressRetry is how often a NOOP barrier asks again for a watch
// progress mark while it waits.
const progressRetry = 250 * time.Millisecond

// conn is one client connection.
type conn struct {
	s  *Server
	nc net.Conn

	dec *mupdatec.Decoder
	wmu sync.Mutex
	enc *mupdatec.Encoder

	authed bool
	tls    bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// streaming state (set by UPDATE)
	watch     Watch
	servers   []string
	streamTag string
	streamEnd chan struct{} // closed when the forwarder stops
	revMu     sync.Mutex
	rev       int64         // every change up to rev has been written
	revCh     chan struct{} // closed when rev grows
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.setup(nc)
	return c
}

func (c *conn) setup(nc net.Conn) {
	c.dec = mupdatec.NewDecoder(nc, 0, c.s.opts.MaxLiteral)
	c.enc = mupdatec.NewEncoder(nc)
	c.dec.SyncLiteral = func() error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.deadline()
		return c.enc.Atom("+ go ahead").CRLF().Flush()
	}
}

// deadline arms the write deadline of a burst (caller holds wmu).
func (c *conn) deadline() { c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)) }

// shutdown says BYE and closes the connection (server closing).
func (c *conn) shutdown() {
	c.cancel()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.bye("server shutting down")
	c.nc.Close()
}

// bye writes * BYE (best effort).
func (c *conn) bye(text string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.enc.Atom("* BYE ").Quoted(text).CRLF().Flush()
}

func (c *conn) banner() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.deadline()
	e := c.enc
	var mechs []string
	if c.s.opts.GSSAPI != nil {
		mechs = append(mechs, "GSSAPI")
	}
	if c.tls || c.s.opts.AllowPlaintext {
		mechs = append(mechs, "PLAIN", "LOGIN")
	}
	if len(mechs) > 0 {
		e.Atom("* AUTH")
		for _, m := range mechs {
			e.SP().Quoted(m)
		}
		e.CRLF()
	}
	if c.s.opts.TLSConfig != nil && !c.tls {
		e.Atom("* STARTTLS").CRLF()
	}
	e.Atom("* PARTIAL-UPDATE").CRLF()
	e.Atom("* OK MUPDATE ").Quoted(c.s.opts.ServerName).SP().Quoted("imapfront mupdated").SP().
		Quoted("1").SP().Quoted("(master)").CRLF()
	return e.Flush()
}

// reply writes a tagged status with quoted text.
func (c *conn) reply(tag, status, text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.deadline()
	c.enc.Atom(tag).SP().Atom(status).SP().Quoted(text).CRLF()
	return c.enc.Flush()
}

// replyRaw writes a tagged status with unquoted text (as Cyrus does for
// a few replies).
func (c *conn) replyRaw(tag, status, text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.deadline()
	c.enc.Atom(tag).SP().Atom(status).SP().Atom(text).CRLF()
	return c.enc.Flush()
}

// writeEntry writes one MAILBOX or RESERVE line (caller holds wmu).
func (c *conn) writeEntry(tag string, e *mupdatec.Entry) {
	if e.Reserved {
		c.enc.Atom(tag).Atom(" RESERVE ").Literal(e.Name).SP().Literal(e.Location).CRLF()
		return
	}
	c.enc.Atom(tag).Atom(" MAILBOX ").Literal(e.Name).SP().Literal(e.Location).SP().Literal(e.ACL).CRLF()
}

func (c *conn) serve() {
	defer func() {
		c.cancel()
		c.nc.Close()
		c.wg.Wait()
		if c.watch != nil {
			c.watch.Close()
			c.s.streams.Add(-1)
		}
	}()
	if c.banner() != nil {
		return
	}
	var cmd mupdatec.Command
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
		err := c.dec.ReadCommand(&cmd)
		if errors.Is(err, mupdatec.ErrNeedCommand) {
			if c.replyRaw("*", "BAD", `"Need command"`) != nil {
				return
			}
			continue
		}
		if err != nil {
			if errors.Is(err, mupdatec.ErrProtocol) {
				// The framing is lost (bad literal, overlong line):
				// say why and end the connection.
				c.bye("protocol error")
			}
			return
		}
		if !c.handle(&cmd) {
			return
		}
	}
}

// argErr checks the argument count the way Cyrus words it.
func argErr(cmd *mupdatec.Command, min, max int) string {
	switch {
	case cmd.AtomArg || len(cmd.Args) > max:
		return "Extra arguments"
	case len(cmd.Args) < min:
		return "Missing arguments"
	}
	return ""
}

// handle runs one command; false ends the connection.
func (c *conn) handle(cmd *mupdatec.Command) bool {
	tag := cmd.Tag
	streaming := c.watch != nil
	switch cmd.Name {
	case "LOGOUT":
		c.s.count(cmd.Name, "OK")
		c.reply(tag, "OK", "bye-bye")
		return false
	case "NOOP":
		if !c.authed {
			return c.answer(cmd, "BAD", "Please login first")
		}
		if msg := argErr(cmd, 0, 0); msg != "" {
			return c.answer(cmd, "BAD", msg)
		}
		if streaming {
			return c.noopStream(cmd)
		}
		return c.answer(cmd, "OK", "Noop done")
	case "AUTHENTICATE":
		return c.authenticate(cmd)
	case "STARTTLS":
		if c.s.opts.TLSConfig == nil || c.tls || c.authed || streaming {
			return c.answer(cmd, "BAD", "Unrecognized command")
		}
		return c.startTLS(tag)
	case "COMPRESS":
		alg := ""
		if len(cmd.Args) > 0 {
			alg = cmd.Args[0]
		}
		c.s.count(cmd.Name, "NO")
		return c.replyRaw(tag, "NO", "Unknown COMPRESS algorithm: "+quoteSafe(alg)) == nil
	case "FIND", "LIST", "UPDATE", "RESERVE", "ACTIVATE", "DEACTIVATE", "DELETE":
	default:
		c.s.count("other", "BAD")
		return c.reply(tag, "BAD", "Unrecognized command") == nil
	}
	if !c.authed {
		return c.answer(cmd, "BAD", "Please login first")
	}
	if streaming {
		return c.answer(cmd, "BAD", "not legal when streaming")
	}
	switch cmd.Name {
	case "FIND":
		return c.find(cmd)
	case "LIST":
		return c.list(cmd)
	case "UPDATE":
		return c.update(cmd)
	default:
		return c.write(cmd)
	}
}

// quoteSafe keeps only printable ASCII of client text echoed in an
// unquoted reply, so that a client cannot end the line or fake a reply.
func quoteSafe(s string) string {
	b := []byte(s)
	b = slices.DeleteFunc(b, func(c byte) bool { return c < 0x20 || c > 0x7e })
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// answer counts and writes a tagged reply.
func (c *conn) answer(cmd *mupdatec.Command, status, text string) bool {
	c.s.count(cmd.Name, status)
	return c.reply(cmd.Tag, status, text) == nil
}

// opCtx bounds one store operation.
func (c *conn) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.s.opts.OpTimeout)
}

// storeFailed answers a failed store operation.
func (c *conn) storeFailed(cmd *mupdatec.Command, err error) bool {
	if c.ctx.Err() != nil {
		return false
	}
	c.s.storeErr.Add(1)
	c.s.log.Warn("mupdated: store operation failed", "cmd", cmd.Name, "err", err)
	return c.answer(cmd, "NO", "mailbox database unavailable")
}

func (c *conn) find(cmd *mupdatec.Command) bool {
	if msg := argErr(cmd, 1, 1); msg != "" {
		return c.answer(cmd, "BAD", msg)
	}
	ctx, cancel := c.opCtx()
	e, ok, err := c.s.opts.Store.Find(ctx, cmd.Args[0])
	cancel()
	if err != nil {
		return c.storeFailed(cmd, err)
	}
	if ok {
		c.wmu.Lock()
		c.writeEntry(cmd.Tag, &e)
		c.wmu.Unlock()
	}
	return c.answer(cmd, "OK", "Search completed")
}

// errWrite marks a failed write to the client during a scan.
var errWrite = errors.New("mupdated: write to client failed")

// dump writes every entry kept by keep with the tag and returns the
// snapshot's revision.
func (c *conn) dump(ctx context.Context, tag string, keep func(*mupdatec.Entry) bool) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.deadline()
	n := 0
	rev, err := c.s.opts.Store.Scan(ctx, func(e mupdatec.Entry) error {
		if !keep(&e) {
			return nil
		}
		c.writeEntry(tag, &e)
		if n++; n%1000 == 0 {
			if c.enc.Err() != nil {
				return errWrite
			}
			c.deadline()
		}
		return nil
	})
	c.s.dumped.Add(int64(n))
	if err == nil && c.enc.Err() != nil {
		err = errWrite
	}
	return rev, err
}

func (c *conn) list(cmd *mupdatec.Command) bool {
	if msg := argErr(cmd, 0, 1); msg != "" {
		return c.answer(cmd, "BAD", msg)
	}
	prefix := ""
	if len(cmd.Args) == 1 {
		prefix = cmd.Args[0]
	}
	// A dump may take long: bound it by the connection, not OpTimeout.
	_, err := c.dump(c.ctx, cmd.Tag, func(e *mupdatec.Entry) bool { return strings.HasPrefix(e.Location, prefix) })
	if errors.Is(err, errWrite) {
		return false
	}
	if err != nil {
		// Entries may have been sent already: the client's view of this
		// LIST is incomplete, which the NO tells it.
		return c.storeFailed(cmd, err)
	}
	return c.answer(cmd, "OK", "list complete")
}

// serverOf returns the server part of a location.
func serverOf(loc string) string {
	if i := strings.IndexByte(loc, '!'); i >= 0 {
		return loc[:i]
	}
	return loc
}

func (c *conn) wants(location string) bool {
	return len(c.servers) == 0 || slices.Contains(c.servers, serverOf(location))
}

func (c *conn) update(cmd *mupdatec.Command) bool {
	if cmd.AtomArg {
		return c.answer(cmd, "BAD", "Extra arguments")
	}
	if len(cmd.Args) > 30 {
		return c.answer(cmd, "BAD", "Too many servers")
	}
	for _, a := range cmd.Args {
		if a == "" {
			return c.answer(cmd, "BAD", "Badly formed arguments")
		}
	}
	c.servers = slices.Clone(cmd.Args)
	rev, err := c.dump(c.ctx, cmd.Tag, func(e *mupdatec.Entry) bool { return c.wants(e.Location) })
	if errors.Is(err, errWrite) {
		return false
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return false
		}
		// The client has part of a dump it must not use: end the
		// connection so that it starts again.
		c.s.storeErr.Add(1)
		c.s.log.Warn("mupdated: UPDATE dump failed", "err", err)
		c.bye("mailbox database unavailable")
		return false
	}
	w, err := c.s.opts.Store.Watch(c.ctx, rev)
	if err != nil {
		c.s.storeErr.Add(1)
		c.bye("mailbox database unavailable")
		return false
	}
	c.watch = w
	c.s.streams.Add(1)
	c.streamTag = cmd.Tag
	c.rev = rev
	c.revCh = make(chan struct{})
	c.streamEnd = make(chan struct{})
	if !c.answer(cmd, "OK", "streaming starts") {
		return false
	}
	c.wg.Add(1)
	go c.forward()
	return true
}

// forward writes the watch's changes to the stream until it ends, and
// checks every StreamCheck that the store still answers.
func (c *conn) forward() {
	defer c.wg.Done()
	defer close(c.streamEnd)
	ch := c.watch.Events()
	var tick <-chan time.Time
	if iv := c.s.opts.StreamCheck; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	why := "mailbox database stream lost; redo UPDATE"
	for {
		var ev Event
		var ok bool
		select {
		case ev, ok = <-ch:
		case <-tick:
			ctx, cancel := c.opCtx()
			_, err := c.s.opts.Store.Revision(ctx)
			cancel()
			if err != nil && c.ctx.Err() == nil {
				c.s.log.Warn("mupdated: store check of an UPDATE stream failed", "err", err)
				why = "mailbox database unavailable; redo UPDATE"
				ok = false
				break
			}
			continue
		}
		if !ok {
			break
		}
		if !c.send(ev, len(ch) == 0) {
			c.nc.Close()
			return
		}
	}
	if c.ctx.Err() != nil {
		return
	}
	c.s.lost.Add(1)
	c.s.log.Warn("mupdated: UPDATE stream ended; client must resync", "err", c.watch.Err())
	c.bye(why)
	c.nc.Close()
}

// send writes one change (flushing if asked) and advances the stream's
// revision; false if the client cannot be written to.
func (c *conn) send(ev Event, flush bool) bool {
	c.wmu.Lock()
	c.deadline()
	switch ev.Kind {
	case EventPut:
		switch {
		case c.wants(ev.Entry.Location):
			c.writeEntry(c.streamTag, &ev.Entry)
			c.s.streamed.Add(1)
		case ev.PrevOK && c.wants(ev.Prev.Location):
			// Moved away from the servers this stream follows.
			c.enc.Atom(c.streamTag).Atom(" DELETE ").Literal(ev.Entry.Name).CRLF()
			c.s.streamed.Add(1)
		}
	case EventDelete:
		if len(c.servers) == 0 || !ev.PrevOK || c.wants(ev.Prev.Location) {
			c.enc.Atom(c.streamTag).Atom(" DELETE ").Literal(ev.Entry.Name).CRLF()
			c.s.streamed.Add(1)
		}
	}
	err := c.enc.Err()
	if flush {
		err = c.enc.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return false
	}
	c.revMu.Lock()
	if ev.Rev > c.rev {
		c.rev = ev.Rev
		close(c.revCh)
		c.revCh = make(chan struct{})
	}
	c.revMu.Unlock()
	return true
}

// noopStream answers NOOP on a stream once every change committed before
// it has been written (a sync barrier, as Cyrus flushes at NOOP).
func (c *conn) noopStream(cmd *mupdatec.Command) bool {
	ctx, cancel := c.opCtx()
	defer cancel()
	if err := c.barrier(ctx); err != nil {
		if c.ctx.Err() != nil {
			return false
		}
		c.s.barrierTO.Add(1)
		c.s.log.Warn("mupdated: NOOP barrier failed; ending stream", "err", err)
		c.s.count(cmd.Name, "BYE")
		c.bye("mailbox database unavailable; redo UPDATE")
		return false
	}
	return c.answer(cmd, "OK", "Noop done")
}

func (c *conn) barrier(ctx context.Context) error {
	target, err := c.s.opts.Store.Revision(ctx)
	if err != nil {
		return err
	}
	for {
		c.revMu.Lock()
		rev, ch := c.rev, c.revCh
		c.revMu.Unlock()
		if rev >= target {
			return nil
		}
		if err := c.watch.RequestProgress(ctx); err != nil {
			return err
		}
		t := time.NewTimer(progressRetry)
		select {
		case <-ch:
		case <-t.C:
		case <-c.streamEnd:
			t.Stop()
			return ErrStreamLost
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// write runs RESERVE, ACTIVATE, DEACTIVATE or DELETE.
func (c *conn) write(cmd *mupdatec.Command) bool {
	n := map[string]int{"RESERVE": 2, "ACTIVATE": 3, "DEACTIVATE": 2, "DELETE": 1}[cmd.Name]
	if msg := argErr(cmd, n, n); msg != "" {
		return c.answer(cmd, "BAD", msg)
	}
	a := cmd.Args
	st := c.s.opts.Store
	ctx, cancel := c.opCtx()
	defer cancel()
	var err error
	switch cmd.Name {
	case "RESERVE":
		err = st.Reserve(ctx, a[0], a[1])
	case "ACTIVATE":
		err = st.Activate(ctx, a[0], a[1], a[2])
	case "DEACTIVATE":
		err = st.Deactivate(ctx, a[0], a[1])
	case "DELETE":
		err = st.Delete(ctx, a[0])
	}
	switch {
	case err == nil:
		return c.answer(cmd, "OK", "done")
	case errors.Is(err, mupdatec.ErrExists):
		return c.answer(cmd, "NO", "mailbox already exists")
	case errors.Is(err, mupdatec.ErrNotFound):
		return c.answer(cmd, "NO", "mailbox not found")
	case errors.Is(err, mupdatec.ErrNotActive):
		return c.answer(cmd, "NO", "mailbox not currently active")
	}
	return c.storeFailed(cmd, err)
}

// readLine reads one raw continuation answer.
func (c *conn) readLine() (string, bool) {
	if !c.dec.ReadLine() {
		return "", false
	}
	return c.dec.Rest(), true
}

// challenge sends a bare base64 continuation and reads the raw answer;
// cancelled is true for "*".
func (c *conn) challenge(data []byte) (resp []byte, cancelled, ok bool) {
	c.wmu.Lock()
	c.deadline()
	c.enc.Atom(base64.StdEncoding.EncodeToString(data)).CRLF()
	err := c.enc.Flush()
	c.wmu.Unlock()
	if err != nil {
		return nil, false, false
	}
	line, ok := c.readLine()
	if !ok {
		return nil, false, false
	}
	if line == "*" {
		return nil, true, true
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, false, true // a quoted or garbled answer: the login fails
	}
	if b == nil {
		b = []byte{}
	}
	return b, false, true
}

// errRefused ends a SASL exchange whose credentials are not an admin's.
var errRefused = errors.New("mupdated: not an admin or wrong password")

// authenticate runs PLAIN or LOGIN (frontend/auth's SASL servers) with
// Cyrus's framing: bare base64 continuations both ways, "*" cancels.
func (c *conn) authenticate(cmd *mupdatec.Command) bool {
	tag := cmd.Tag
	if c.authed {
		return c.answer(cmd, "BAD", "already authenticated")
	}
	if msg := argErr(cmd, 1, 2); msg != "" {
		return c.answer(cmd, "BAD", msg)
	}
	gss := strings.EqualFold(cmd.Args[0], "GSSAPI")
	if gss && c.s.opts.GSSAPI == nil || !gss && !c.tls && !c.s.opts.AllowPlaintext {
		return c.fail(tag)
	}
	var resp []byte
	if len(cmd.Args) == 2 {
		b, err := base64.StdEncoding.DecodeString(cmd.Args[1])
		if err != nil {
			return c.fail(tag)
		}
		resp = b
	}
	var user string
	var srv sasl.Server
	var err error
	if gss {
		srv = c.s.opts.GSSAPI.NewServer(func(r gssapi.Result) error {
			if r.Authzid != "" && r.Authzid != r.User {
				return errRefused
			}
			if !c.s.kerberosAdmin(r.User) {
				return errRefused
			}
			user = r.User
			return nil
		})
	} else {
		srv, err = c.plainServer(&user, cmd.Args[0])
	}
	if err != nil {
		return c.fail(tag)
	}
	return c.saslExchange(cmd, srv, resp, &user)
}

// plainServer returns the PLAIN or LOGIN server checking the admins.
func (c *conn) plainServer(user *string, mech string) (sasl.Server, error) {
	return auth.NewServer(mech, func(cr auth.Credentials) error {
		// An admin logs in as itself: no authorization identity of another.
		if cr.Authzid != "" && cr.Authzid != cr.Authcid {
			return errRefused
		}
		if !c.s.checkLogin(cr.Authcid, cr.Password) {
			return errRefused
		}
		*user = cr.Authcid
		return nil
	})
}

// saslExchange runs srv with Cyrus's framing, starting from resp (the
// initial response, or nil).
func (c *conn) saslExchange(cmd *mupdatec.Command, srv sasl.Server, resp []byte, user *string) bool {
	tag := cmd.Tag
	for {
		chal, done, err := srv.Next(resp)
		if err != nil {
			c.s.log.Info("mupdated: authentication failed", "mech", quoteSafe(cmd.Args[0]),
				"remote", c.nc.RemoteAddr().String(), "err", err)
			return c.fail(tag)
		}
		if done {
			break
		}
		r, cancelled, ok := c.challenge(chal)
		if !ok {
			return false
		}
		if cancelled {
			c.s.count(cmd.Name, "NO")
			return c.replyRaw(tag, "NO", "Client canceled authentication") == nil
		}
		resp = r
	}
	c.authed = true
	c.s.log.Debug("mupdated: authenticated", "user", *user, "mech", quoteSafe(cmd.Args[0]), "remote", c.nc.RemoteAddr().String())
	return c.answer(cmd, "OK", "Authenticated")
}

// fail answers a failed login after the failed-login pause.
func (c *conn) fail(tag string) bool {
	c.s.authFail.Add(1)
	c.s.count("AUTHENTICATE", "NO")
	c.s.pause(c.ctx)
	return c.reply(tag, "NO", "undefined error!") == nil
}

func (c *conn) startTLS(tag string) bool {
	if c.dec.Reader().Buffered() > 0 {
		// Bytes pipelined after STARTTLS would be read as if they had
		// come through TLS: refuse them.
		c.s.count("STARTTLS", "BAD")
		c.reply(tag, "BAD", "data after STARTTLS")
		return false
	}
	c.s.count("STARTTLS", "OK")
	if c.reply(tag, "OK", "Begin TLS negotiation now") != nil {
		return false
	}
	tc := tls.Server(c.nc, c.s.opts.TLSConfig)
	hctx, cancel := context.WithTimeout(c.ctx, c.s.opts.OpTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return false
	}
	c.s.mu.Lock()
	c.nc = tc
	c.s.mu.Unlock()
	c.tls = true
	c.setup(tc)
	return c.banner() == nil
}
