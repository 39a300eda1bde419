package lmtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/imapfront/imapfront/connlimit"
	"github.com/imapfront/imapfront/router"
)

// Options configure a Server.
type Options struct {
	// Hostname is the name in the greeting and in LHLO to backends.
	Hostname string
	// Directory resolves mailboxes; required.
	Directory Directory
	// Namespace translates user and folder to internal names; nil means
	// router.DefaultNamespace().
	Namespace *router.Namespace
	// Backends are the backends' LMTP services by MUPDATE server name.
	Backends map[string]*Backend
	// MaxMessageBytes bounds a message (announced as SIZE); 0 means 64 MiB.
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT TO per transaction; 0 means 1000.
	MaxRecipients int
	// SpoolThreshold is the size above which a message for several
	// backends is held in a temporary file rather than in memory; 0 means
	// 1 MiB. A message for one backend is streamed, never held.
	SpoolThreshold int64
	// SpoolDir is where temporary files go ("" means os.TempDir()).
	SpoolDir string
	// IdleTimeout bounds the wait for a client command; 0 means 5 minutes.
	IdleTimeout time.Duration
	// LookupTimeout bounds one recipient's resolution, including the
	// confirmation with the master; 0 means 10 seconds. A lookup that
	// times out defers the recipient.
	LookupTimeout time.Duration
	// Logger logs sessions (never message contents).
	Logger *slog.Logger
	// Metrics records deliveries; nil records nothing.
	Metrics *Metrics
	// MaxConnections and MaxConnectionsPerIP cap the MTA connections
	// served at once, in all and from one address (0: no cap); one over
	// gets 421 and is closed.
	MaxConnections, MaxConnectionsPerIP int
}

// Server is the LMTP proxy. Serve it on any number of listeners (TCP and
// Unix sockets).
type Server struct {
	opts Options
	smtp *smtp.Server
	log  *slog.Logger

	mu        sync.Mutex
	listeners []net.Listener
	closed    bool
	limit     *connlimit.Limiter
}

// New returns a Server for opts.
func New(opts Options) *Server {
	if opts.Namespace == nil {
		opts.Namespace = router.DefaultNamespace()
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 64 << 20
	}
	if opts.MaxRecipients == 0 {
		opts.MaxRecipients = 1000
	}
	if opts.SpoolThreshold == 0 {
		opts.SpoolThreshold = 1 << 20
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.LookupTimeout == 0 {
		opts.LookupTimeout = 10 * time.Second
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, limit: connlimit.New(opts.MaxConnections, opts.MaxConnectionsPerIP)}
	ss := smtp.NewServer(smtp.BackendFunc(s.newSession))
	ss.LMTP = true
	ss.Domain = opts.Hostname
	ss.MaxMessageBytes = opts.MaxMessageBytes
	ss.MaxRecipients = opts.MaxRecipients
	ss.ReadTimeout = opts.IdleTimeout
	ss.WriteTimeout = opts.IdleTimeout
	ss.ErrorLog = errorLog{log}
	s.smtp = ss
	return s
}

// Serve accepts LMTP connections on l until Close or Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if !s.track(l) {
		l.Close()
		return nil
	}
	return s.smtp.Serve(s.limit.Listener(l, refuser("421 4.3.2 Too many connections, try again later")))
}

// refuser writes line to a connection over the caps before it is closed.
func refuser(line string) func(net.Conn) {
	return func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(line + "\r\n"))
	}
}

// track remembers l, so that a Close racing with Serve still closes it
// (go-smtp closes only the listeners Serve has registered).
func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners = append(s.listeners, l)
	return true
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
}

// Close closes the listeners and every session at once.
func (s *Server) Close() error {
	err := s.smtp.Close()
	s.closeListeners()
	return err
}

// Shutdown closes the listeners and waits, up to ctx, for sessions to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	return s.smtp.Shutdown(ctx)
}

type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (e errorLog) Println(v ...any) { e.l.Warn(strings.TrimSpace(fmt.Sprintln(v...))) }

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s.opts.Metrics.session(1)
	return &session{
		srv: s, ctx: ctx, cancel: cancel, txns: map[string]*txn{},
		log: s.log.With("remote", c.Conn().RemoteAddr().String()),
	}, nil
}

// session is one LMTP client connection.
type session struct {
	srv    *Server
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	from     string
	mailOpts *smtp.MailOptions
	hasFrom  bool
	rcpts    []rcpt
	txns     map[string]*txn // by backend server, kept across transactions
	order    []*txn          // txns of the current transaction, in first-RCPT order
}

// rcpt is one accepted recipient.
type rcpt struct {
	to   string // as the client gave it (the status key)
	addr string // as sent to the backend
	t    *txn
}

// txn is the session's connection to one backend.
type txn struct {
	server string
	c      *smtp.Client
	mailed bool            // MAIL FROM sent in the current transaction
	sent   map[string]bool // backend addresses sent in this transaction
	broken bool
}

// The replies a proxy gives of its own.
var (
	errBadAddress = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errUnknown    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox unknown"}
	errDirectory  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "Mailbox database not available, try again later"}
	errBusy       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Mailbox is being created or moved, try again later"}
	errNoBackend  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 5}, Message: "Mailbox server not configured for delivery"}
	errBackend    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "Mailbox server unavailable, try again later"}
	errLost       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection to the mailbox server lost, try again later"}
)

// Mail starts a transaction; backends are contacted at the first RCPT
// that needs them.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.from, s.hasFrom = from, true
	s.mailOpts = &smtp.MailOptions{}
	if opts != nil {
		// Only what describes the message; AUTH= and the rest are the
		// client's word about itself.
		s.mailOpts.Size, s.mailOpts.Body, s.mailOpts.UTF8 = opts.Size, opts.Body, opts.UTF8
	}
	return nil
}

// Rcpt resolves the recipient and passes it on to its backend.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	r, err := ParseRecipient(to)
	if err != nil {
		s.srv.opts.Metrics.rcpt("bad_address")
		return errBadAddress
	}
	server, addr, err := s.route(r)
	if err != nil {
		se := errDirectory
		errors.As(err, &se)
		s.srv.opts.Metrics.rcpt(resultOf(se))
		if se != errUnknown {
			s.log.Warn("recipient deferred", "err", err)
		}
		return se
	}
	t, err := s.open(server)
	if err != nil {
		s.srv.opts.Metrics.rcpt("backend_unavailable")
		s.log.Warn("recipient deferred: backend", "backend", server, "err", err)
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return relayed(se)
		}
		return errBackend
	}
	if !t.sent[addr] {
		if err := t.c.Rcpt(addr, nil); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				s.srv.opts.Metrics.rcpt("backend_refused")
				return relayed(se)
			}
			t.broken = true
			s.srv.opts.Metrics.rcpt("backend_unavailable")
			s.log.Warn("recipient deferred: backend", "backend", server, "err", err)
			return errLost
		}
		t.sent[addr] = true
	}
	if len(s.order) == 0 || !containsTxn(s.order, t) {
		s.order = append(s.order, t)
	}
	s.rcpts = append(s.rcpts, rcpt{to: to, addr: addr, t: t})
	s.srv.opts.Metrics.rcpt("accepted")
	return nil
}

func containsTxn(ts []*txn, t *txn) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func resultOf(se *smtp.SMTPError) string {
	switch se {
	case errUnknown:
		return "unknown"
	case errNoBackend:
		return "no_backend"
	}
	return "deferred"
}

// route resolves r to a backend server and the address to give it, as
// Cyrus does: user+folder goes to the folder if it exists and anyone may
// post to it ('p'), else to the user's INBOX (without the detail, so the
// backend cannot decide otherwise).
func (s *session) route(r Recipient) (server, addr string, err error) {
	ns := s.srv.opts.Namespace
	dir := s.srv.opts.Directory
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.opts.LookupTimeout)
	defer cancel()
	inbox, err := ns.ToInternal(r.User, "INBOX")
	if err != nil {
		return "", "", errUnknown
	}
	if r.Detail != "" {
		folder, ferr := ns.ToInternal(r.User, r.Detail)
		if owner, _ := router.SplitInternal(folder); ferr == nil && owner == r.User && folder != inbox {
			t, err := dir.Mailbox(ctx, folder)
			switch {
			case err == nil && t.Post && !t.Reserved:
				return s.checkServer(t.Server, r.address(true))
			case err != nil && !errors.Is(err, ErrNoMailbox):
				return "", "", fmt.Errorf("%w (%v)", errDirectory, err)
			}
		}
	}
	t, err := dir.Mailbox(ctx, inbox)
	switch {
	case errors.Is(err, ErrNoMailbox):
		return "", "", errUnknown
	case err != nil:
		return "", "", fmt.Errorf("%w (%v)", errDirectory, err)
	case t.Reserved:
		return "", "", errBusy
	}
	return s.checkServer(t.Server, r.address(false))
}

func (s *session) checkServer(server, addr string) (string, string, error) {
	if s.srv.opts.Backends[server] == nil {
		return "", "", fmt.Errorf("%w (server %q)", errNoBackend, server)
	}
	return server, addr, nil
}

// open returns the backend's connection with MAIL FROM sent.
func (s *session) open(server string) (*txn, error) {
	t := s.txns[server]
	if t != nil && t.broken {
		t.c.Close()
		delete(s.txns, server)
		t = nil
	}
	if t == nil {
		c, err := s.srv.opts.Backends[server].dial(s.ctx, s.srv.opts.Hostname)
		s.srv.opts.Metrics.dial(server, err)
		if err != nil {
			return nil, err
		}
		t = &txn{server: server, c: c}
		s.txns[server] = t
	}
	if !t.mailed {
		if err := t.c.Mail(s.from, s.mailOpts); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				t.c.Reset()
				return nil, se
			}
			t.broken = true
			return nil, fmt.Errorf("%w: MAIL FROM: %v", errUnavailable, err)
		}
		t.mailed = true
		t.sent = map[string]bool{}
	}
	return t, nil
}

// Data is SMTP's DATA; an LMTP server calls LMTPData instead.
func (s *session) Data(r io.Reader) error {
	return errors.New("lmtp: DATA without LMTP")
}

// LMTPData relays the message to every backend with recipients and sets
// each recipient's status from its backend's reply, in RCPT order.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	results := make(map[*txn]txnResult, len(s.order))
	var src func() io.Reader
	if len(s.order) == 1 {
		src = func() io.Reader { return r }
	} else {
		sp := newSpool(s.srv.opts.SpoolThreshold, s.srv.opts.SpoolDir)
		defer sp.Close()
		if _, err := io.Copy(sp, r); err != nil {
			// Too big or a broken client: no backend got anything.
			s.abortAll()
			return err
		}
		if sp.OnDisk() {
			s.srv.opts.Metrics.spooled()
		}
		src = sp.Reader
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var clientErr error
	for _, t := range s.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, cerr := s.send(t, src())
			mu.Lock()
			results[t] = res
			if cerr != nil {
				clientErr = cerr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if clientErr != nil {
		// The client's message did not arrive whole (size, broken
		// connection): every backend transaction was abandoned.
		s.abortAll()
		return clientErr
	}
	for _, rc := range s.rcpts {
		res := results[rc.t]
		var err error
		switch {
		case res.err != nil:
			err = res.err
		case res.ok[rc.addr] != nil:
			err = res.ok[rc.addr]
		case res.fail[rc.addr] != nil:
			err = res.fail[rc.addr]
		default:
			err = errLost
		}
		s.srv.opts.Metrics.delivery(rc.t.server, err)
		status.SetStatus(rc.to, err)
	}
	return nil
}

// txnResult is one backend's answer to DATA.
type txnResult struct {
	err  error                      // for every recipient of the backend
	ok   map[string]*smtp.SMTPError // the backend's 250 replies (code 250)
	fail map[string]*smtp.SMTPError
}

// send runs DATA on one backend. A non-nil second result is a failure to
// read the client's message: the backend's transaction is then abandoned
// by closing its connection before the final dot.
func (s *session) send(t *txn, body io.Reader) (txnResult, error) {
	t.mailed = false
	w, err := t.c.Data()
	if err != nil {
		io.Copy(io.Discard, body)
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return txnResult{err: relayed(se)}, nil
		}
		t.broken = true
		return txnResult{err: errLost}, nil
	}
	cr := &countingReader{r: body}
	if _, err := io.Copy(w, cr); err != nil {
		t.broken = true
		t.c.Close()
		if cr.err != nil {
			return txnResult{err: errLost}, cr.err
		}
		io.Copy(io.Discard, body)
		return txnResult{err: errLost}, nil
	}
	resp, err := w.CloseWithLMTPResponse()
	res := txnResult{ok: map[string]*smtp.SMTPError{}, fail: map[string]*smtp.SMTPError{}}
	for addr, r := range resp {
		res.ok[addr] = okReply(r.StatusText)
	}
	var lerr smtp.LMTPDataError
	if errors.As(err, &lerr) {
		for addr, se := range lerr {
			res.fail[addr] = relayed(se)
		}
	} else if err != nil {
		t.broken = true
		s.log.Warn("backend lost during DATA", "backend", t.server, "err", err)
	}
	return res, nil
}

// okReply turns a backend's 250 text ("2.1.5 Success ...") into the
// status go-smtp writes, so the MTA sees the backend's own words (its
// queue or session id); go-smtp puts "<rcpt> " before the text, so a
// leading "<rcpt>" of the backend's (Dovecot's) is dropped.
func okReply(text string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK"}
	code, rest, _ := strings.Cut(text, " ")
	var a, b, c int
	if n, err := fmt.Sscanf(code, "%d.%d.%d", &a, &b, &c); err == nil && n == 3 && a == 2 && b < 1000 && c < 1000 && b >= 0 && c >= 0 {
		e.EnhancedCode = smtp.EnhancedCode{a, b, c}
		text = rest
	}
	if strings.HasPrefix(text, "<") {
		if _, after, ok := strings.Cut(text, "> "); ok {
			text = after
		}
	}
	if text = strings.Map(printable, text); text != "" {
		e.Message = text
	}
	return e
}

// relayed returns a backend's refusal as the MTA gets it: its code and
// text on one line (a multi-line reply's lines joined, control characters
// dropped, so a backend cannot add lines to the proxy's reply), and 451
// for anything that is not a 4xx or 5xx.
func relayed(se *smtp.SMTPError) *smtp.SMTPError {
	if se.Code < 400 || se.Code > 599 {
		return errLost
	}
	msg := strings.Map(printable, strings.ReplaceAll(se.Message, "\n", " "))
	return &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: msg}
}

// printable drops control characters from a relayed reply text.
func printable(r rune) rune {
	if r < ' ' || r == 0x7f {
		return -1
	}
	return r
}

// countingReader remembers the reader's own error, to tell a client
// failure from a backend one in io.Copy.
type countingReader struct {
	r   io.Reader
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// abortAll drops every backend connection of the current transaction.
func (s *session) abortAll() {
	for _, t := range s.order {
		t.broken = true
	}
}

// Reset ends the transaction; backend connections stay for the next one.
func (s *session) Reset() {
	for server, t := range s.txns {
		if t.broken {
			t.c.Close()
			delete(s.txns, server)
			continue
		}
		if t.mailed {
			if err := t.c.Reset(); err != nil {
				t.c.Close()
				delete(s.txns, server)
				continue
			}
			t.mailed = false
		}
	}
	s.from, s.hasFrom, s.mailOpts, s.rcpts, s.order = "", false, nil, nil, nil
}

// Logout closes the backend connections.
func (s *session) Logout() error {
	for _, t := range s.txns {
		if !t.broken {
			t.c.Quit()
		}
		t.c.Close()
	}
	s.txns = nil
	s.cancel()
	s.srv.opts.Metrics.session(-1)
	return nil
}
