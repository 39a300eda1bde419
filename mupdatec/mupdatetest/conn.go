package mupdatetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imapfront/imapfront/mupdatec"
)

type conn struct {
	s   *Server
	nc  net.Conn
	dec *mupdatec.Decoder

	wmu sync.Mutex
	enc *mupdatec.Encoder

	authed bool
	tls    bool

	qmu       sync.Mutex
	streamTag string   // set while streaming
	servers   []string // PARTIAL-UPDATE filter
	q         []string // queued names

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.setup(nc)
	return c
}

func (c *conn) setup(nc net.Conn) {
	c.dec = mupdatec.NewDecoder(nc, 0, 0)
	c.enc = mupdatec.NewEncoder(nc)
	c.dec.SyncLiteral = func() error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.enc.Atom("+ go ahead").CRLF().Flush()
	}
}

func (c *conn) banner() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	e := c.enc
	e.Atom(`* AUTH "PLAIN" "LOGIN"`).CRLF()
	if c.s.opts.TLSConfig != nil && !c.tls {
		e.Atom("* STARTTLS").CRLF()
	}
	e.Atom("* PARTIAL-UPDATE").CRLF()
	last := "(master)"
	if c.s.opts.MasterURL != "" {
		last = c.s.opts.MasterURL
	}
	e.Atom("* OK MUPDATE ").Quoted(c.s.opts.ServerName).SP().Quoted("imapfront mupdatetest").SP().
		Quoted("1").SP().Quoted(last).CRLF()
	return e.Flush()
}

// reply writes a tagged status with quoted text.
func (c *conn) reply(tag, status, text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.enc.Atom(tag).SP().Atom(status).SP().Quoted(text).CRLF()
	return c.enc.Flush()
}

// replyRaw writes a tagged status with unquoted text (Cyrus does for some).
func (c *conn) replyRaw(tag, status, text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.enc.Atom(tag).SP().Atom(status).SP().Atom(text).CRLF()
	return c.enc.Flush()
}

// writeEntry writes one MAILBOX or RESERVE line (caller holds wmu).
func (c *conn) writeEntry(tag string, e mupdatec.Entry) {
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
	}()
	if c.banner() != nil {
		return
	}
	var cmd mupdatec.Command
	for {
		err := c.dec.ReadCommand(&cmd)
		if errors.Is(err, mupdatec.ErrNeedCommand) {
			if c.replyRaw("*", "BAD", `"Need command"`) != nil {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		if !c.handle(&cmd) {
			return
		}
	}
}

func argErr(cmd *mupdatec.Command, min, max int) string {
	switch {
	case cmd.AtomArg || len(cmd.Args) > max:
		return "Extra arguments"
	case len(cmd.Args) < min:
		return "Missing arguments"
	}
	return ""
}

var writes = map[string]bool{"RESERVE": true, "ACTIVATE": true, "DEACTIVATE": true, "DELETE": true}

// handle runs one command; false ends the connection.
func (c *conn) handle(cmd *mupdatec.Command) bool {
	c.qmu.Lock()
	streaming := c.streamTag != ""
	c.qmu.Unlock()
	tag := cmd.Tag
	switch cmd.Name {
	case "LOGOUT":
		c.reply(tag, "OK", "bye-bye")
		return false
	case "NOOP":
		if !c.authed {
			return c.reply(tag, "BAD", "Please login first") == nil
		}
		if msg := argErr(cmd, 0, 0); msg != "" {
			return c.reply(tag, "BAD", msg) == nil
		}
		if streaming {
			c.flush()
		}
		return c.reply(tag, "OK", "Noop done") == nil
	case "AUTHENTICATE":
		return c.authenticate(cmd)
	case "STARTTLS":
		if c.s.opts.TLSConfig == nil || c.tls || c.authed {
			return c.reply(tag, "BAD", "Unrecognized command") == nil
		}
		return c.startTLS(tag)
	case "COMPRESS":
		alg := ""
		if len(cmd.Args) > 0 {
			alg = cmd.Args[0]
		}
		return c.replyRaw(tag, "NO", "Unknown COMPRESS algorithm: "+alg) == nil
	case "FIND", "LIST", "UPDATE", "RESERVE", "ACTIVATE", "DEACTIVATE", "DELETE":
	default:
		return c.reply(tag, "BAD", "Unrecognized command") == nil
	}
	if !c.authed {
		return c.reply(tag, "BAD", "Please login first") == nil
	}
	if streaming {
		return c.reply(tag, "BAD", "not legal when streaming") == nil
	}
	if writes[cmd.Name] && c.s.opts.MasterURL != "" {
		return c.reply(tag, "BAD", "read-only session") == nil
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

func (c *conn) find(cmd *mupdatec.Command) bool {
	if msg := argErr(cmd, 1, 1); msg != "" {
		return c.reply(cmd.Tag, "BAD", msg) == nil
	}
	e, ok := c.s.Lookup(cmd.Args[0])
	c.wmu.Lock()
	if ok {
		c.writeEntry(cmd.Tag, e)
	}
	c.wmu.Unlock()
	return c.reply(cmd.Tag, "OK", "Search completed") == nil
}

type named struct {
	name string
	e    *entry
}

// snapshot returns the entries kept by keep, sorted by name, sharing the
// immutable *entry values.
func (s *Server) snapshot(keep func(*entry) bool) []named {
	out := make([]named, 0, len(s.entries))
	for name, e := range s.entries {
		if keep(e) {
			out = append(out, named{name, e})
		}
	}
	slices.SortFunc(out, func(a, b named) int { return strings.Compare(a.name, b.name) })
	return out
}

func (c *conn) writeAll(tag string, list []named) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, n := range list {
		c.writeEntry(tag, toEntry(n.name, n.e))
		if c.enc.Err() != nil {
			return c.enc.Err()
		}
	}
	return nil
}

func (c *conn) list(cmd *mupdatec.Command) bool {
	if msg := argErr(cmd, 0, 1); msg != "" {
		return c.reply(cmd.Tag, "BAD", msg) == nil
	}
	prefix := ""
	if len(cmd.Args) == 1 {
		prefix = cmd.Args[0]
	}
	c.s.mu.Lock()
	list := c.s.snapshot(func(e *entry) bool { return strings.HasPrefix(e.location, prefix) })
	c.s.mu.Unlock()
	if c.writeAll(cmd.Tag, list) != nil {
		return false
	}
	return c.reply(cmd.Tag, "OK", "list complete") == nil
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
		return c.reply(cmd.Tag, "BAD", "Extra arguments") == nil
	}
	if len(cmd.Args) > 30 {
		return c.reply(cmd.Tag, "BAD", "Too many servers") == nil
	}
	for _, a := range cmd.Args {
		if a == "" {
			return c.reply(cmd.Tag, "BAD", "Badly formed arguments") == nil
		}
	}
	servers := slices.Clone(cmd.Args)
	// Snapshot and start queuing atomically: every later change is queued.
	c.s.mu.Lock()
	c.qmu.Lock()
	c.servers = servers
	c.streamTag = cmd.Tag
	c.qmu.Unlock()
	list := c.s.snapshot(func(e *entry) bool { return c.wants(e.location) })
	c.s.mu.Unlock()
	if c.writeAll(cmd.Tag, list) != nil {
		return false
	}
	if c.reply(cmd.Tag, "OK", "streaming starts") != nil {
		return false
	}
	if iv := c.s.opts.UpdateInterval; iv > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			t := time.NewTicker(iv)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					c.flush()
				case <-c.ctx.Done():
					return
				}
			}
		}()
	}
	return true
}

// queue records a change of name for this stream (called with s.mu held).
func (c *conn) queue(name, location string) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.streamTag != "" && c.wants(location) {
		c.q = append(c.q, name)
	}
}

// flush sends each queued name as it is now: MAILBOX, RESERVE or DELETE.
func (c *conn) flush() {
	c.qmu.Lock()
	q, tag := c.q, c.streamTag
	c.q = nil
	c.qmu.Unlock()
	if len(q) == 0 {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, name := range q {
		e, ok := c.s.Lookup(name)
		if ok {
			c.writeEntry(tag, e)
		} else {
			c.enc.Atom(tag).Atom(" DELETE ").Literal(name).CRLF()
		}
	}
	c.enc.Flush()
}

func (c *conn) write(cmd *mupdatec.Command) bool {
	min := map[string]int{"RESERVE": 2, "ACTIVATE": 3, "DEACTIVATE": 2, "DELETE": 1}[cmd.Name]
	if msg := argErr(cmd, min, min); msg != "" {
		return c.reply(cmd.Tag, "BAD", msg) == nil
	}
	s := c.s
	a := cmd.Args
	name := a[0]
	s.mu.Lock()
	old, exists := s.entries[name]
	var status, text, crash string
	switch cmd.Name {
	case "RESERVE":
		switch {
		case exists && old.location != a[1]:
			status, text = "NO", "mailbox already exists"
		default:
			// Cyrus 3.6: over an active entry at the same location this
			// demotes it to a reservation and loses its ACL.
			s.setLocked(name, &entry{reserved: true, location: a[1]})
			status, text = "OK", "done"
		}
	case "ACTIVATE":
		s.setLocked(name, &entry{location: a[1], acl: a[2]})
		status, text = "OK", "done"
	case "DEACTIVATE":
		switch {
		case !exists:
			crash = "DEACTIVATE of a missing entry"
		case old.location != a[1]:
			status, text = "NO", "mailbox not currently active"
		case old.reserved:
			crash = "DEACTIVATE of a reserved entry"
		default:
			s.setLocked(name, &entry{reserved: true, location: old.location})
			status, text = "OK", "done"
		}
	case "DELETE":
		if !exists {
			crash = "DELETE of a missing entry"
		} else {
			s.deleteLocked(name)
			status, text = "OK", "done"
		}
	}
	s.mu.Unlock()
	if crash != "" {
		if !s.opts.NoCrash {
			s.crash(crash)
			return false
		}
		status, text = "NO", "mailbox not currently active"
		if cmd.Name == "DELETE" || !exists {
			status, text = "NO", "mailbox not found"
		}
	}
	return c.reply(cmd.Tag, status, text) == nil
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
		return nil, false, true // a quoted or garbled answer: login fails
	}
	if b == nil {
		b = []byte{}
	}
	return b, false, true
}

func (c *conn) authenticate(cmd *mupdatec.Command) bool {
	tag := cmd.Tag
	if c.authed {
		return c.reply(tag, "BAD", "already authenticated") == nil
	}
	if msg := argErr(cmd, 1, 2); msg != "" {
		return c.reply(tag, "BAD", msg) == nil
	}
	var ir []byte
	if len(cmd.Args) == 2 {
		b, err := base64.StdEncoding.DecodeString(cmd.Args[1])
		if err != nil {
			return c.fail(tag)
		}
		ir = b
	}
	var user, pass string
	switch strings.ToUpper(cmd.Args[0]) {
	case "PLAIN":
		if ir == nil {
			resp, cancelled, ok := c.challenge(nil)
			if !ok {
				return false
			}
			if cancelled {
				return c.replyRaw(tag, "NO", "Client canceled authentication") == nil
			}
			ir = resp
		}
		parts := bytes.Split(ir, []byte{0})
		if len(parts) != 3 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
			return c.fail(tag)
		}
		user, pass = string(parts[1]), string(parts[2])
	case "LOGIN":
		if ir == nil {
			resp, cancelled, ok := c.challenge([]byte("Username:"))
			if !ok {
				return false
			}
			if cancelled {
				return c.replyRaw(tag, "NO", "Client canceled authentication") == nil
			}
			ir = resp
		}
		user = string(ir)
		resp, cancelled, ok := c.challenge([]byte("Password:"))
		if !ok {
			return false
		}
		if cancelled {
			return c.replyRaw(tag, "NO", "Client canceled authentication") == nil
		}
		pass = string(resp)
	default:
		return c.fail(tag)
	}
	if !c.s.checkLogin(user, pass) {
		return c.fail(tag)
	}
	c.authed = true
	return c.reply(tag, "OK", "Authenticated") == nil
}

// fail answers a failed login after the failed-login pause.
func (c *conn) fail(tag string) bool {
	c.s.pause(c.ctx)
	return c.reply(tag, "NO", "undefined error!") == nil
}

func (c *conn) startTLS(tag string) bool {
	if c.reply(tag, "OK", "Begin TLS negotiation now") != nil {
		return false
	}
	tc := tls.Server(c.nc, c.s.opts.TLSConfig)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return false
	}
	c.s.mu.Lock()
	c.nc = tc
	c.s.mu.Unlock()
	c.tls = true
	c.setup(tc)
	return c.banner() == nil
}
