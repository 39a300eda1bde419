// Package backend is imapfront's connection to one IMAP backend server.
//
// A Conn is a raw IMAP client connection: it reads the greeting, upgrades to
// TLS, logs in (with proxy credentials as SASL PLAIN with an authorization
// identity, or with the user's own credentials), and then relays commands
// and responses byte for byte. Literals in responses are streamed, never
// held whole, so a large FETCH costs a buffer, not the message.
//
// go-imap's imapclient is not used for the relay: it closes the connection
// on unknown responses and re-encodes names, while a front end must pass
// through whatever the backend says.
package backend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
)

// TLSMode says how a Conn protects its connection to a backend.
type TLSMode string

// TLS modes for a backend.
const (
	TLSNone     TLSMode = "none"     // plain TCP (only for loopback or trusted networks)
	TLSStartTLS TLSMode = "starttls" // STARTTLS after the greeting
	TLSImplicit TLSMode = "tls"      // TLS from the first byte (IMAPS)
)

// Options describe how to reach and log in to one backend.
type Options struct {
	// Addr is host:port to dial.
	Addr string
	// TLS selects plain, STARTTLS or implicit TLS.
	TLS TLSMode
	// TLSConfig verifies the backend; nil means the system roots with
	// ServerName taken from Addr.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting, TLS and login; 0 means 30 s.
	DialTimeout time.Duration
	// MaxLine bounds one response line (not counting literals); 0 means 1 MiB.
	MaxLine int
	// ReadTimeout fails a read that gets no byte from the backend for this
	// long (a hung backend), except during IDLE; 0 means no limit.
	ReadTimeout time.Duration
}

// Login is how a Conn authenticates.
type Login struct {
	// User is the user the session acts as.
	User string
	// Password is the user's own password, used when ProxyUser is empty.
	Password string
	// ProxyUser and ProxyPassword, when set, log in with SASL PLAIN as
	// authcid=ProxyUser, authzid=User (Cyrus proxyservers, Dovecot master user).
	ProxyUser, ProxyPassword string
	// SASL, when set, is used instead of PLAIN (for example GSSAPI).
	SASL sasl.Client
	// ID, if set, is the argument of an ID command (RFC 2971) sent before
	// logging in, when the server offers ID: where a proxy tells Dovecot
	// the client's address (x-originating-ip), which it logs at login.
	ID string
}

// Status is the result word of a tagged response.
type Status string

// Tagged response results.
const (
	OK  Status = "OK"
	NO  Status = "NO"
	BAD Status = "BAD"
)

// ErrBye is returned when the backend ends the connection with BYE.
var ErrBye = errors.New("backend: connection closed by server (BYE)")

// A Error is a tagged NO or BAD from the backend.
type Error struct {
	Status Status
	// Text is the rest of the response line after the status word,
	// response code included, e.g. "[AUTHENTICATIONFAILED] Authentication failed.".
	Text string
}

func (e *Error) Error() string { return "backend: " + string(e.Status) + " " + e.Text }

// Code returns the response code of the error ("AUTHENTICATIONFAILED"), or "".
func (e *Error) Code() string {
	if !strings.HasPrefix(e.Text, "[") {
		return ""
	}
	end := strings.IndexAny(e.Text, " ]")
	if end < 0 {
		return ""
	}
	return strings.ToUpper(e.Text[1:end])
}

// Conn is one connection to a backend. It is not safe for concurrent use:
// one session drives it.
type Conn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	opts  Options
	caps  map[string]bool
	seq   atomic.Uint64
	dead  atomic.Bool
	greet string
	// user is the user the connection acts as (Login.User).
	user string
	// armed is set while relaying, when ReadTimeout applies (Exec and
	// Dial use their contexts' deadlines instead); idling turns it off
	// while the backend may rightly stay silent (IDLE).
	armed, idling atomic.Bool
}

// deadlineReader arms the read deadline before each read from the
// network, so a backend that stops answering fails the read instead of
// hanging the session.
type deadlineReader struct{ c *Conn }

func (r deadlineReader) Read(p []byte) (int, error) {
	if d := r.c.opts.ReadTimeout; d > 0 && r.c.armed.Load() && !r.c.idling.Load() {
		_ = r.c.nc.SetReadDeadline(time.Now().Add(d))
	}
	return r.c.nc.Read(p)
}

// SetIdling turns the read timeout off (during IDLE) or back on.
func (c *Conn) SetIdling(on bool) {
	c.idling.Store(on)
	if on {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// Dial connects to a backend, reads its greeting, sets up TLS and logs in.
func Dial(ctx context.Context, opts Options, login Login) (*Conn, error) {
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 30 * time.Second
	}
	if opts.MaxLine == 0 {
		opts.MaxLine = 1 << 20
	}
	if opts.TLS == "" {
		opts.TLS = TLSNone
	}
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", opts.Addr, err)
	}
	c := &Conn{opts: opts, user: login.User}
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if opts.TLS == TLSImplicit {
		tc := tls.Client(nc, c.tlsConfig())
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("backend %s: TLS: %w", opts.Addr, err)
		}
		nc = tc
	}
	c.setConn(nc)
	if err := c.setup(dctx, login); err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("backend %s: %w", opts.Addr, err)
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *Conn) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if c.opts.TLSConfig != nil {
		cfg = c.opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(c.opts.Addr)
		if err != nil {
			host = c.opts.Addr
		}
		cfg.ServerName = host
	}
	return cfg
}

func (c *Conn) setConn(nc net.Conn) {
	c.nc = nc
	c.br = bufio.NewReaderSize(deadlineReader{c}, 32<<10)
	c.bw = bufio.NewWriterSize(nc, 16<<10)
}

func (c *Conn) setup(ctx context.Context, login Login) error {
	line, err := c.readLine()
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	c.greet = string(line)
	switch {
	case hasPrefixFold(line, "* OK"):
	case hasPrefixFold(line, "* PREAUTH"):
		return errors.New("greeting: PREAUTH is not supported")
	default:
		return fmt.Errorf("greeting: %q", truncate(line))
	}
	c.caps = parseCapCode(line)
	if c.caps == nil {
		if err := c.Capability(); err != nil {
			return err
		}
	}
	if c.opts.TLS == TLSStartTLS {
		if !c.caps["STARTTLS"] {
			return errors.New("STARTTLS required by configuration but not offered")
		}
		if _, err := c.Exec(ctx, "STARTTLS"); err != nil {
			return err
		}
		if c.br.Buffered() > 0 {
			return errors.New("STARTTLS: unexpected data after OK")
		}
		tc := tls.Client(c.nc, c.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		c.setConn(tc)
		if err := c.Capability(); err != nil {
			return err
		}
	}
	if login.ID != "" && c.caps["ID"] {
		if _, err := c.Exec(ctx, "ID "+login.ID); err != nil {
			var be *Error
			if !errors.As(err, &be) {
				return err
			}
		}
	}
	client := login.SASL
	if client == nil {
		if login.ProxyUser != "" {
			client = sasl.NewPlainClient(login.User, login.ProxyUser, login.ProxyPassword)
		} else {
			client = sasl.NewPlainClient("", login.User, login.Password)
		}
	}
	return c.authenticate(ctx, client)
}

// authenticate runs AUTHENTICATE with the SASL client, using SASL-IR when
// the backend offers it.
func (c *Conn) authenticate(ctx context.Context, client sasl.Client) error {
	mech, ir, err := client.Start()
	if err != nil {
		return err
	}
	tag := c.nextTag()
	cmd := tag + " AUTHENTICATE " + mech
	if ir != nil && c.caps["SASL-IR"] {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		cmd += " " + enc
		ir = nil
	}
	if err := c.writeLine(cmd); err != nil {
		return err
	}
	sentIR := ir == nil
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("+")):
			var resp []byte
			if !sentIR {
				resp, sentIR = ir, true
			} else {
				chal, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(line[1:])))
				if derr != nil {
					_ = c.writeLine("*")
					return fmt.Errorf("AUTHENTICATE: bad challenge: %w", derr)
				}
				resp, err = client.Next(chal)
				if err != nil {
					_ = c.writeLine("*")
					continue
				}
			}
			if err := c.writeLine(base64.StdEncoding.EncodeToString(resp)); err != nil {
				return err
			}
		case bytes.HasPrefix(line, []byte(tag+" ")):
			st, text := splitStatus(line[len(tag)+1:])
			if st != OK {
				return &Error{Status: st, Text: text}
			}
			if caps := parseCapCode(line); caps != nil {
				c.caps = caps
			} else {
				return c.Capability()
			}
			return nil
		case hasPrefixFold(line, "* BYE"):
			return ErrBye
		case hasPrefixFold(line, "* CAPABILITY "):
			c.caps = parseCaps(line[len("* CAPABILITY "):])
		}
	}
}

// User returns the user the connection logged in as (Login.User: the
// authorization identity of a proxy login).
func (c *Conn) User() string { return c.user }

// Greeting returns the backend's greeting line.
func (c *Conn) Greeting() string { return c.greet }

// Caps returns the backend's current capabilities (upper case).
func (c *Conn) Caps() map[string]bool { return c.caps }

// Has reports whether the backend advertised capability name.
func (c *Conn) Has(name string) bool { return c.caps[strings.ToUpper(name)] }

// Capability asks the backend for its capabilities and records them.
func (c *Conn) Capability() error {
	resp, err := c.Exec(context.Background(), "CAPABILITY")
	if err != nil {
		return err
	}
	for _, l := range resp.Untagged {
		if hasPrefixFold(l, "* CAPABILITY ") {
			c.caps = parseCaps(l[len("* CAPABILITY "):])
		}
	}
	return nil
}

// Dead reports whether the connection failed; a dead Conn must be closed.
func (c *Conn) Dead() bool { return c.dead.Load() }

// Close closes the connection without LOGOUT.
func (c *Conn) Close() error {
	c.dead.Store(true)
	return c.nc.Close()
}

// Logout sends LOGOUT, waits briefly for the answer and closes.
func (c *Conn) Logout() error {
	_ = c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Exec(context.Background(), "LOGOUT")
	c.Close()
	if errors.Is(err, ErrBye) {
		err = nil
	}
	return err
}

func (c *Conn) nextTag() string {
	return "X" + strconv.FormatUint(c.seq.Add(1), 10)
}

// Response is the collected answer to a command imapfront itself sent.
type Response struct {
	// Untagged holds each untagged response, literals inlined, without CRLF.
	Untagged [][]byte
	// Status and Text are from the tagged completion.
	Status Status
	Text   string
}

// Exec sends "TAG cmd" (cmd without tag and CRLF; it must not contain
// literals that need a continuation) and collects the responses. A tagged NO
// or BAD is returned as *Error along with the response. Literals in
// untagged responses are kept up to 1 MiB each.
func (c *Conn) Exec(ctx context.Context, cmd string) (*Response, error) {
	return c.ExecMax(ctx, cmd, 1<<20)
}

// ExecMax is Exec with a bound on each literal in the responses.
func (c *Conn) ExecMax(ctx context.Context, cmd string, maxLiteral int64) (*Response, error) {
	tag, done, err := c.send(ctx, cmd)
	defer done()
	if err != nil {
		return nil, err
	}
	return c.collect(tag, maxLiteral, cmd == "LOGOUT")
}

// send writes "TAG cmd" under ctx's deadline, if any, and returns the tag
// and a func that lifts the deadline once the answer is read.
func (c *Conn) send(ctx context.Context, cmd string) (string, func(), error) {
	done := func() {}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
		done = func() { c.nc.SetDeadline(time.Time{}) }
	}
	tag := c.nextTag()
	return tag, done, c.writeLine(tag + " " + cmd)
}

// collect reads responses until the tagged completion of tag. A BYE ends
// the connection (ErrBye) unless expected, as after LOGOUT.
func (c *Conn) collect(tag string, maxLiteral int64, byeExpected bool) (*Response, error) {
	var untagged [][]byte
	resp, err := c.collectEach(tag, maxLiteral, byeExpected, func(r []byte) { untagged = append(untagged, r) })
	if resp != nil {
		resp.Untagged = untagged
	}
	return resp, err
}

// collectEach is collect handing each untagged response to each instead
// of keeping them (Response.Untagged stays empty).
func (c *Conn) collectEach(tag string, maxLiteral int64, byeExpected bool, each func(r []byte)) (*Response, error) {
	for {
		r, err := c.readResponse(maxLiteral)
		if err != nil {
			return nil, err
		}
		if resp, done, err := c.tagged(r, tag, byeExpected); done {
			return resp, err
		}
		if len(r) > 0 && r[0] == '*' {
			each(r)
		}
	}
}

// tagged handles r if it ends the command tagged tag (the completion, or an
// unexpected BYE): done is true and resp, err are the command's result.
func (c *Conn) tagged(r []byte, tag string, byeExpected bool) (resp *Response, done bool, err error) {
	if bytes.HasPrefix(r, []byte(tag+" ")) {
		resp := &Response{}
		resp.Status, resp.Text = splitStatus(r[len(tag)+1:])
		if resp.Status != OK {
			return resp, true, &Error{Status: resp.Status, Text: resp.Text}
		}
		return resp, true, nil
	}
	if hasPrefixFold(r, "* BYE") && !byeExpected {
		c.dead.Store(true)
		return nil, true, ErrBye
	}
	return nil, false, nil
}

// readResponse reads one whole response with literals inlined.
func (c *Conn) readResponse(maxLit int64) ([]byte, error) {
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	return c.finishResponse(line, maxLit)
}

// finishResponse reads the rest of the response whose first line is
// line: the literals it announces, inlined, and the lines after them.
func (c *Conn) finishResponse(line []byte, maxLit int64) ([]byte, error) {
	var out []byte
	for {
		out = append(out, line...)
		n, ok := literalSize(line)
		if !ok {
			return out, nil
		}
		if n > maxLit {
			c.dead.Store(true)
			return nil, fmt.Errorf("backend literal of %d bytes exceeds %d", n, maxLit)
		}
		out = append(out, '\r', '\n')
		start := len(out)
		out = append(out, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, out[start:]); err != nil {
			c.dead.Store(true)
			return nil, err
		}
		var err error
		if line, err = c.readLine(); err != nil {
			return nil, err
		}
	}
}

// readLine reads one line without its CRLF. The result is a copy.
func (c *Conn) readLine() ([]byte, error) {
	l, err := c.readSlice()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), trimCRLF(l)...), nil
}

// readSlice reads one line including CRLF into the reader's buffer (valid
// until the next read), joining lines longer than the buffer up to MaxLine.
func (c *Conn) readSlice() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		c.dead.Store(true)
		return nil, err
	}
	buf := append([]byte(nil), l...)
	for {
		l, err = c.br.ReadSlice('\n')
		buf = append(buf, l...)
		if len(buf) > c.opts.MaxLine {
			c.dead.Store(true)
			return nil, fmt.Errorf("backend response line longer than %d bytes", c.opts.MaxLine)
		}
		if err == nil {
			return buf, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			c.dead.Store(true)
			return nil, err
		}
	}
}

func (c *Conn) writeLine(s string) error {
	c.bw.WriteString(s)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		c.dead.Store(true)
		return err
	}
	return nil
}

// Writer returns the buffered writer toward the backend, for relaying a
// client command verbatim; call Flush when the command is written.
func (c *Conn) Writer() *bufio.Writer { return c.bw }

// Flush sends what was written to Writer.
func (c *Conn) Flush() error {
	if err := c.bw.Flush(); err != nil {
		c.dead.Store(true)
		return err
	}
	return nil
}

// SetDeadline sets the read and write deadline of the connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// WaitContinuation reads responses until a continuation request ("+ ...")
// arrives, relaying untagged responses to dst; each read is bounded by
// Options.ReadTimeout. It returns an *Error if the
// backend answers the command with tag instead.
func (c *Conn) WaitContinuation(dst *bufio.Writer, tag string) error {
	if c.opts.ReadTimeout > 0 {
		c.armed.Store(true)
		defer func() {
			c.armed.Store(false)
			_ = c.nc.SetReadDeadline(time.Time{})
		}()
	}
	for {
		l, err := c.readSlice()
		if err != nil {
			return err
		}
		if l[0] == '+' {
			return nil
		}
		if bytes.HasPrefix(l, []byte(tag+" ")) {
			st, text := splitStatus(trimCRLF(l[len(tag)+1:]))
			return &Error{Status: st, Text: text}
		}
		if err := c.relayRest(dst, l, nil); err != nil {
			return err
		}
	}
}

// A Rewriter may replace an untagged response line before it is relayed
// (for example to translate mailbox names). It gets one response without
// literals and returns the bytes to send, CRLF included; returning the
// input unchanged is the common case.
type Rewriter func(line []byte) []byte

// Relay copies the backend's responses to dst until the tagged completion
// of tag, which is relayed too, and returns its status and text. Literals
// are streamed. dst is flushed whenever the backend has nothing buffered,
// so untagged data (IDLE's EXISTS) reaches the client at once. rw, if not
// nil, sees every untagged response that carries no literal.
//
// onCont, if not nil, is called for a continuation request; it decides what
// to do (IDLE relays it and returns nil).
func (c *Conn) Relay(dst *bufio.Writer, tag string, rw Rewriter, onCont func(line []byte) error) (Status, string, error) {
	st, text, _, err := c.relay(dst, tag, rw, onCont, false)
	return st, text, err
}

// RelayHold is Relay without writing the tagged completion: it returns
// the completion line (CRLF included) for the caller to send when it is
// ready (after syncing the directory, say).
func (c *Conn) RelayHold(dst *bufio.Writer, tag string, rw Rewriter) (Status, string, []byte, error) {
	return c.relay(dst, tag, rw, nil, true)
}

func (c *Conn) relay(dst *bufio.Writer, tag string, rw Rewriter, onCont func(line []byte) error, hold bool) (Status, string, []byte, error) {
	if c.opts.ReadTimeout > 0 {
		c.armed.Store(true)
		defer func() {
			c.armed.Store(false)
			_ = c.nc.SetReadDeadline(time.Time{})
		}()
	}
	tagb := []byte(tag + " ")
	for {
		if c.br.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return "", "", nil, &ClientError{err}
			}
		}
		l, err := c.readSlice()
		if err != nil {
			c.dead.Store(true)
			return "", "", nil, err
		}
		if bytes.HasPrefix(l, tagb) {
			st, text := splitStatus(trimCRLF(l[len(tagb):]))
			if hold {
				return st, text, append([]byte(nil), l...), nil
			}
			if _, err := dst.Write(l); err != nil {
				return "", "", nil, &ClientError{err}
			}
			if err := dst.Flush(); err != nil {
				return "", "", nil, &ClientError{err}
			}
			return st, text, nil, nil
		}
		if l[0] == '+' && onCont != nil {
			if err := onCont(l); err != nil {
				return "", "", nil, err
			}
			continue
		}
		if hasPrefixFold(l, "* BYE") {
			c.dead.Store(true)
			return "", "", nil, ErrBye
		}
		if err := c.relayRest(dst, l, rw); err != nil {
			return "", "", nil, err
		}
	}
}

// ClientError wraps a failure to write to the client during a relay, so the
// session can tell a dead client from a dead backend.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return "writing to client: " + e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

// copyLiteral streams n bytes from the backend to dst straight out of the
// read buffer, without allocating. Write errors are *ClientError.
func (c *Conn) copyLiteral(dst io.Writer, n int64) error {
	for n > 0 {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				c.dead.Store(true)
				return err
			}
		}
		chunk := int64(c.br.Buffered())
		if chunk > n {
			chunk = n
		}
		b, _ := c.br.Peek(int(chunk))
		if _, err := dst.Write(b); err != nil {
			return &ClientError{err}
		}
		c.br.Discard(int(chunk))
		n -= chunk
	}
	return nil
}

// relayRest writes the response whose first line is l to dst, streaming
// any literals and following continuation lines.
func (c *Conn) relayRest(dst *bufio.Writer, l []byte, rw Rewriter) error {
	for {
		n, lit := literalSize(trimCRLF(l))
		if !lit && rw != nil {
			l = rw(l)
		}
		if _, err := dst.Write(l); err != nil {
			return &ClientError{err}
		}
		if !lit {
			return nil
		}
		if err := c.copyLiteral(dst, n); err != nil {
			return err
		}
		var err error
		l, err = c.readSlice()
		if err != nil {
			return err
		}
	}
}

// Discard reads and drops responses until the tagged completion of tag.
func (c *Conn) Discard(tag string) (Status, string, error) {
	return c.Relay(bufio.NewWriter(io.Discard), tag, nil, nil)
}

// Tag returns a new tag for a command imapfront sends on its own.
func (c *Conn) Tag() string { return c.nextTag() }

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// literalSize reports whether line ends with a literal announcement
// {n}, {n+} or ~{n} and returns n.
func literalSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	digits := line[i+1 : len(line)-1]
	digits = bytes.TrimSuffix(digits, []byte("+"))
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

func splitStatus(b []byte) (Status, string) {
	word, rest, _ := bytes.Cut(b, []byte(" "))
	return Status(strings.ToUpper(string(word))), string(rest)
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && strings.EqualFold(string(b[:len(p)]), p)
}

// parseCapCode returns the capabilities in a [CAPABILITY ...] response code
// in line, or nil.
func parseCapCode(line []byte) map[string]bool {
	i := bytes.Index(bytes.ToUpper(line), []byte("[CAPABILITY "))
	if i < 0 {
		return nil
	}
	rest := line[i+len("[CAPABILITY "):]
	j := bytes.IndexByte(rest, ']')
	if j < 0 {
		return nil
	}
	return parseCaps(rest[:j])
}

func parseCaps(b []byte) map[string]bool {
	caps := make(map[string]bool)
	for _, f := range strings.Fields(string(b)) {
		caps[strings.ToUpper(f)] = true
	}
	return caps
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// ExecLiteral sends "TAG prefix {n}" followed by lit as the command's last
// argument (LITERAL+ when the backend has it, else after its "+") and
// collects the responses like Exec.
func (c *Conn) ExecLiteral(ctx context.Context, prefix string, lit []byte) (*Response, error) {
	return c.ExecLiteralFrom(ctx, prefix, int64(len(lit)), bytes.NewReader(lit))
}
