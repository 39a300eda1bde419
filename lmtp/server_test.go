package lmtp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapfront/imapfront/lmtp"
	"github.com/imapfront/imapfront/lmtp/lmtptest"
	"github.com/imapfront/imapfront/router"
)

const msg = "From: mta@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\nlast line\r\n"

type lab struct {
	t       testing.TB
	replica *router.Replica
	be      map[string]*lmtptest.Server
	srv     *lmtp.Server
	addr    string
	current atomic.Bool
	confirm func(ctx context.Context) error
	metrics *lmtp.Metrics
	reg     *prometheus.Registry
}

// newLab starts be1 (requires AUTH, as Cyrus lmtpd), be2 (no login, as
// Dovecot) and the proxy, with a replica holding alice (be1), bob (be2),
// bob's Team (be2, anyone may post), Private (be1, no posting) and
// Remote (be1, anyone may post).
func newLab(t testing.TB, mod func(*lmtp.Options)) *lab {
	t.Helper()
	l := &lab{t: t, be: map[string]*lmtptest.Server{}}
	l.current.Store(true)
	l.replica = router.NewReplica(router.Options{})
	l.replica.Put("user.alice", false, "be1!default", "alice\tlrswipkxtecdan\t")
	l.replica.Put("user.bob", false, "be2!default", "bob\tlrswipkxtecdan\t")
	l.replica.Put("user.bob.Team", false, "be2!default", "bob\tlrswipkxtecdan\tanyone\tp\t")
	l.replica.Put("user.bob.Private", false, "be1!default", "bob\tlrswipkxtecdan\t")
	l.replica.Put("user.bob.Remote", false, "be1!default", "bob\tlrswipkxtecdan\tanyone\tlp\t")
	b1, err := lmtptest.Start(lmtptest.Options{User: "cyrus", Password: "cyruspw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Close() })
	b2, err := lmtptest.Start(lmtptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	l.be["be1"], l.be["be2"] = b1, b2
	l.reg = prometheus.NewRegistry()
	l.metrics = lmtp.NewMetrics(l.reg)
	opts := lmtp.Options{
		Hostname: "front.test",
		Directory: lmtp.ReplicaDirectory{R: l.replica, Current: l.current.Load, Confirm: func(ctx context.Context) error {
			if l.confirm != nil {
				return l.confirm(ctx)
			}
			return nil
		}},
		Backends: map[string]*lmtp.Backend{
			"be1": {Addr: b1.Addr(), User: "cyrus", Password: "cyruspw", Timeout: 5 * time.Second},
			"be2": {Addr: b2.Addr(), Timeout: 5 * time.Second},
		},
		Metrics: l.metrics,
	}
	if mod != nil {
		mod(&opts)
	}
	l.srv = lmtp.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	go l.srv.Serve(ln)
	t.Cleanup(func() { l.srv.Close() })
	return l
}

// deliver sends one transaction and returns each recipient's reply code
// (RCPT refusals included) in RCPT order, and the LMTP client's error for
// the whole DATA, if any.
func (l *lab) deliver(from string, rcpts []string, body string) ([]int, error) {
	l.t.Helper()
	conn, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
	if err != nil {
		l.t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = 10*time.Second, 10*time.Second
	if err := c.Hello("mta.test"); err != nil {
		l.t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		l.t.Fatal(err)
	}
	codes := make([]int, len(rcpts))
	var accepted []string
	for i, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				l.t.Fatalf("RCPT %s: %v", r, err)
			}
			codes[i] = se.Code
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return codes, nil
	}
	w, err := c.Data()
	if err != nil {
		return codes, err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return codes, err
	}
	resp, err := w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if err != nil && !errors.As(err, &lerr) {
		return codes, err
	}
	for i, r := range rcpts {
		if codes[i] != 0 {
			continue
		}
		if se := lerr[r]; se != nil {
			codes[i] = se.Code
		} else if resp[r] != nil {
			codes[i] = 250
		}
	}
	c.Quit()
	return codes, nil
}

func bodies(s *lmtptest.Server) map[string]string {
	out := map[string]string{}
	for _, m := range s.Messages() {
		out[m.Rcpt] = string(m.Body)
	}
	return out
}

func TestFanOutPerRecipientReplies(t *testing.T) {
	l := newLab(t, nil)
	codes, err := l.deliver("sender@example.org", []string{
		"alice@example.org", "nosuch@example.org", "BOB+Team@example.org", "bob@example.org", "bob+Private@example.org", "bob+Remote@example.org",
	}, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{250, 550, 250, 250, 250, 250}
	if !equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	// One transaction per backend.
	if n := l.be["be1"].Transactions(); n != 1 {
		t.Errorf("be1 transactions %d, want 1", n)
	}
	if n := l.be["be2"].Transactions(); n != 1 {
		t.Errorf("be2 transactions %d, want 1", n)
	}
	b1, b2 := bodies(l.be["be1"]), bodies(l.be["be2"])
	// Private lacks 'p' for anyone: it goes to bob's INBOX (be2) without
	// the detail; Remote allows posting and is on be1.
	wantB1 := map[string]string{"alice@example.org": msg, "bob+Remote@example.org": msg}
	wantB2 := map[string]string{"bob+Team@example.org": msg, "bob@example.org": msg}
	if !equalMap(b1, wantB1) {
		t.Errorf("be1 got %q", keys(b1))
	}
	if !equalMap(b2, wantB2) {
		t.Errorf("be2 got %q", keys(b2))
	}
	// bob and bob+Private are the same backend recipient: one RCPT, one
	// copy in bob's INBOX, a 250 for each.
	if got := len(l.be["be2"].Messages()); got != 2 {
		t.Errorf("be2 got %d deliveries, want 2 (Team, INBOX once)", got)
	}
	if v := l.counter("imapfront_lmtp_recipients_total", "unknown"); v != 1 {
		t.Errorf("unknown recipients metric %v, want 1", v)
	}
}

// counter returns the value of the series of name whose labels include
// every given value.
func (l *lab) counter(name string, values ...string) float64 {
	l.t.Helper()
	mfs, err := l.reg.Gather()
	if err != nil {
		l.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, v := range values {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetValue() == v
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNotCurrentDefersEveryone(t *testing.T) {
	l := newLab(t, nil)
	l.current.Store(false)
	codes, err := l.deliver("s@example.org", []string{"alice@example.org", "nosuch@example.org", "bob+Team@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(codes, []int{451, 451, 451}) {
		t.Fatalf("codes %v, want all 451", codes)
	}
	if n := l.be["be1"].Connections() + l.be["be2"].Connections(); n != 0 {
		t.Errorf("%d backend connections while deferring", n)
	}
}

func TestDoubtConfirmedWithMaster(t *testing.T) {
	l := newLab(t, nil)
	// The master has carol (created by another front end); the replica
	// learns of it only when asked to sync.
	var syncs atomic.Int32
	l.confirm = func(context.Context) error {
		syncs.Add(1)
		l.replica.Put("user.carol", false, "be1!default", "carol\tlrswipkxtecdan\t")
		return nil
	}
	codes, err := l.deliver("s@example.org", []string{"carol@example.org"}, msg)
	if err != nil || !equal(codes, []int{250}) {
		t.Fatalf("codes %v err %v, want 250", codes, err)
	}
	if syncs.Load() != 1 {
		t.Errorf("%d syncs, want 1", syncs.Load())
	}
	// A master that cannot be asked: the unknown name is deferred.
	l.confirm = func(context.Context) error { return errors.New("master unreachable") }
	codes, err = l.deliver("s@example.org", []string{"dave@example.org", "alice@example.org"}, msg)
	if err != nil || !equal(codes, []int{451, 250}) {
		t.Fatalf("codes %v err %v, want [451 250]", codes, err)
	}
}

func TestBackendDownDefersItsRecipients(t *testing.T) {
	l := newLab(t, nil)
	l.be["be1"].Close()
	codes, err := l.deliver("s@example.org", []string{"alice@example.org", "bob@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(codes, []int{451, 250}) {
		t.Fatalf("codes %v, want [451 250]", codes)
	}
	if got := bodies(l.be["be2"])["bob@example.org"]; got != msg {
		t.Errorf("bob got %q", got)
	}
}

func TestBackendLoginRefusedDefers(t *testing.T) {
	l := newLab(t, func(o *lmtp.Options) { o.Backends["be1"].Password = "wrong" })
	codes, err := l.deliver("s@example.org", []string{"alice@example.org"}, msg)
	if err != nil || !equal(codes, []int{451}) {
		t.Fatalf("codes %v err %v, want [451]", codes, err)
	}
	if n := len(l.be["be1"].Messages()); n != 0 {
		t.Errorf("%d messages delivered without login", n)
	}
}

func TestBackendRepliesRelayed(t *testing.T) {
	quota := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Over quota"}
	b2, err := lmtptest.Start(lmtptest.Options{
		Rcpt: func(to string) error {
			if strings.HasPrefix(to, "bob+Team") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 2, 1}, Message: "Mailbox disabled"}
			}
			return nil
		},
		Deliver: func(to string, _ []byte) error {
			if to == "bob@example.org" {
				return quota
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	l2 := newLab(t, func(o *lmtp.Options) { o.Backends["be2"].Addr = b2.Addr() })
	codes, err := l2.deliver("s@example.org", []string{"bob@example.org", "alice@example.org", "bob+Team@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(codes, []int{452, 250, 550}) {
		t.Fatalf("codes %v, want [452 250 550]", codes)
	}
}

func TestSizeBound(t *testing.T) {
	for _, rcpts := range [][]string{{"alice@example.org"}, {"alice@example.org", "bob@example.org"}} {
		l := newLab(t, func(o *lmtp.Options) { o.MaxMessageBytes = 1000 })
		big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 100)
		codes, err := l.deliver("s@example.org", rcpts, big)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range codes {
			if c != 552 {
				t.Fatalf("%d recipients: codes %v, want 552 each", len(rcpts), codes)
			}
		}
		if n := len(l.be["be1"].Messages()) + len(l.be["be2"].Messages()); n != 0 {
			t.Errorf("%d recipients: %d truncated messages delivered", len(rcpts), n)
		}
		// The proxy is unharmed: the next message is delivered.
		codes, err = l.deliver("s@example.org", rcpts, msg)
		if err != nil || codes[0] != 250 {
			t.Fatalf("after a refused message: codes %v err %v", codes, err)
		}
	}
}

func TestSpoolToDisk(t *testing.T) {
	dir := t.TempDir()
	l := newLab(t, func(o *lmtp.Options) { o.SpoolThreshold = 100; o.SpoolDir = dir })
	body := "Subject: spooled\r\n\r\n" + strings.Repeat("a line of the body\r\n", 50)
	codes, err := l.deliver("s@example.org", []string{"alice@example.org", "bob@example.org"}, body)
	if err != nil || !equal(codes, []int{250, 250}) {
		t.Fatalf("codes %v err %v", codes, err)
	}
	if bodies(l.be["be1"])["alice@example.org"] != body || bodies(l.be["be2"])["bob@example.org"] != body {
		t.Error("spooled message not byte-identical at the backends")
	}
	if v := l.counter("imapfront_lmtp_spooled_total"); v != 1 {
		t.Errorf("spooled metric %v, want 1", v)
	}
}

func TestSecondTransactionReusesBackends(t *testing.T) {
	l := newLab(t, nil)
	conn, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	for i := 0; i < 2; i++ {
		if err := c.SendMail("s@example.org", []string{"alice@example.org"}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.be["be1"].Connections(); n != 1 {
		t.Errorf("be1 connections %d, want 1", n)
	}
	if n := l.be["be1"].Transactions(); n != 2 {
		t.Errorf("be1 transactions %d, want 2", n)
	}
}

func TestConnectionCap(t *testing.T) {
	l := newLab(t, func(o *lmtp.Options) { o.MaxConnections = 1 })
	c1, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	first := smtp.NewClientLMTP(c1)
	if err := first.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	c2, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := c2.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.3.2 ") {
		t.Fatalf("second connection got %q, want 421", buf[:n])
	}
}

// TestDetailCannotNameAnotherUsersMailbox: with an other-users prefix
// that a detail can spell ("Users/alice"), bob+Users/alice must not reach
// alice's INBOX (be1), even though anyone may post there: it goes to
// bob's INBOX (be2), without the detail.
func TestDetailCannotNameAnotherUsersMailbox(t *testing.T) {
	ns, err := router.NewNamespace("Users", "Shared", '/')
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, func(o *lmtp.Options) { o.Namespace = ns })
	l.replica.Put("user.alice", false, "be1!default", "alice\tlrswipkxtecdan\tanyone\tp\t")
	codes, err := l.deliver("s@example.org", []string{"bob+Users/alice@example.org", "bob+Shared/x@example.org"}, msg)
	if err != nil || !equal(codes, []int{250, 250}) {
		t.Fatalf("codes %v err %v", codes, err)
	}
	if n := len(l.be["be1"].Messages()); n != 0 {
		t.Fatalf("be1 (alice) got %d messages", n)
	}
	if got := bodies(l.be["be2"]); got["bob@example.org"] != msg || len(got) != 1 {
		t.Errorf("be2 got %q, want bob's INBOX once", keys(got))
	}
}

// TestBackendReplyCannotInjectLines: a backend's multi-line refusal
// reaches the MTA as one line per recipient.
func TestBackendReplyCannotInjectLines(t *testing.T) {
	b2, err := lmtptest.Start(lmtptest.Options{Rcpt: func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no\r\n250 2.0.0 fake\nsecond"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	l := newLab(t, func(o *lmtp.Options) { o.Backends["be2"].Addr = b2.Addr() })
	conn, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	read := func() string {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	read() // greeting
	fmt.Fprintf(conn, "LHLO mta\r\n")
	for l := read(); strings.HasPrefix(l, "250-"); l = read() {
	}
	fmt.Fprintf(conn, "MAIL FROM:<s@example.org>\r\n")
	read()
	fmt.Fprintf(conn, "RCPT TO:<bob@example.org>\r\nNOOP\r\n")
	if l := read(); !strings.HasPrefix(l, "550 ") || strings.Count(l, "\n") != 1 {
		t.Fatalf("RCPT reply %q", l)
	}
	if l := read(); !strings.HasPrefix(l, "250 ") {
		t.Fatalf("the next line is not NOOP's reply: %q", l)
	}
}
