//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/lmtp"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/wiring"
)

// Tests of the LMTP proxy (package lmtp) against the real backends' LMTP
// services: Cyrus lmtpd on be1 and be2 (AUTH PLAIN as the Cyrus admin,
// lmtp_admins) and Dovecot's lmtp (no login), recipients resolved through
// a replica of the real Cyrus MUPDATE master, swaks as the MTA.

// protoAddrs reads a "server=host:port ..." variable of run.sh (LMTP,
// POP3, SIEVE): each backend's service by MUPDATE server name.
func protoAddrs(t *testing.T, name string) map[string]string {
	t.Helper()
	v := os.Getenv(itenv.Prefix + name)
	if v == "" {
		t.Fatalf("%s%s is not set: start the lab with integration/run.sh up (it runs the backends' %s services)", itenv.Prefix, name, name)
	}
	out := map[string]string{}
	for _, f := range strings.Fields(v) {
		server, addr, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("%s%s: %q is not server=host:port", itenv.Prefix, name, f)
		}
		out[server] = addr
	}
	return out
}

// startLMTPProxy serves the LMTP proxy on 127.0.0.1 in front of the lab's
// LMTP services, resolving through dir.
func startLMTPProxy(t *testing.T, env itenv.Env, dir lmtp.Directory) string {
	t.Helper()
	addrs := protoAddrs(t, "LMTP")
	srv := lmtp.New(lmtp.Options{
		Hostname:  "imapfront-it",
		Directory: dir,
		Backends: map[string]*lmtp.Backend{
			env.CyrusBE1: {Addr: addrs[env.CyrusBE1], User: env.CyrusAdminUser, Password: env.CyrusAdminPass, Timeout: 20 * time.Second},
			env.CyrusBE2: {Addr: addrs[env.CyrusBE2], User: env.CyrusAdminUser, Password: env.CyrusAdminPass, Timeout: 20 * time.Second},
			env.Dovecot:  {Addr: addrs[env.Dovecot], Timeout: 20 * time.Second},
		},
		Logger: feLogger(t).With("test", t.Name()),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// setACLDirect sets (rights != "") or deletes an ACL entry on a Cyrus
// backend as the admin; the backend updates the MUPDATE master itself.
func setACLDirect(t *testing.T, env itenv.Env, addr, mailbox, id, rights string) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(env.CyrusAdminUser, env.CyrusAdminPass).Wait(); err != nil {
		t.Fatal(err)
	}
	// SETACL with no rights removes the entry (RFC 4314 section 3.1).
	if err := c.SetACL(mailbox, imap.RightsIdentifier(id), imap.RightModificationReplace, imap.RightSet(rights)).Wait(); err != nil {
		t.Fatalf("SETACL/DELETEACL %s %s %q on %s: %v", mailbox, id, rights, addr, err)
	}
}

// expungeDirect removes, on u's home backend, the messages of mailbox
// whose Message-ID is mid (the lab's INBOXes must keep their seeded count).
func expungeDirect(t *testing.T, env itenv.Env, u itenv.User, mailbox, mid string) {
	t.Helper()
	c := directLogin(t, env, u)
	defer c.Close()
	name := backendName(home(t, env, u), mailbox)
	if _, err := c.Select(name, nil).Wait(); err != nil {
		t.Errorf("cleanup: SELECT %s on %s: %v", name, u.Home, err)
		return
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: mid}}}, nil).Wait()
	if err != nil || len(found.AllUIDs()) == 0 {
		return
	}
	uids := imap.UIDSetNum(found.AllUIDs()...)
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Errorf("cleanup: STORE \\Deleted in %s on %s: %v", name, u.Home, err)
	}
	if err := c.UIDExpunge(uids).Close(); err != nil {
		t.Errorf("cleanup: UID EXPUNGE in %s on %s: %v", name, u.Home, err)
	}
}

// traceHeader matches the header lines a delivering server prepends.
var traceHeader = regexp.MustCompile(`(?i)^(Return-Path|Received|Delivered-To|X-Sieve|X-Cyrus-Session-Id):|^[ \t]`)

// checkDelivered asserts that got is msg with only trace header lines
// (Return-Path, Received, Delivered-To; Cyrus's X-Sieve and
// X-Cyrus-Session-Id) prepended by the backend.
func checkDelivered(t *testing.T, who string, got, msg []byte) {
	t.Helper()
	prefix, ok := bytes.CutSuffix(got, msg)
	if !ok {
		t.Errorf("%s: the delivered message is not the one sent, byte for byte:\n%q\nwant suffix\n%q", who, got, msg)
		return
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(prefix), "\r\n"), "\r\n") {
		if line != "" && !traceHeader.MatchString(line) {
			t.Errorf("%s: the backend prepended %q, not a trace header", who, line)
		}
	}
}

// TestLMTPProxyRealBackends: swaks delivers one message, through the LMTP
// proxy, to alice (Cyrus be1), bob+Team (Cyrus be2, a folder anyone may
// post to) and carol (Dovecot), plus an unknown user. The unknown user gets
// 550 5.1.1 at RCPT; after the data each of the three gets its own
// backend's reply, in RCPT order; each mailbox then holds the message byte
// for byte, below the backend's trace headers.
func TestLMTPProxyRealBackends(t *testing.T) {
	env := itenv.Load(t)
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Fatalf("swaks (Debian package swaks): %v", err)
	}
	ensureDovecotInMUPDATE(t, env)
	setACLDirect(t, env, env.CyrusBE2, "user/bob/Team", "anyone", "p")
	t.Cleanup(func() { setACLDirect(t, env, env.CyrusBE2, "user/bob/Team", "anyone", "") })
	f := startFront(t, env, feOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.follower.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.replica.Rights("anonymous", "user.bob.Team").Has(router.RightPost) {
		t.Fatalf("the replica does not show anyone p on user.bob.Team after SETACL and Sync")
	}
	addr := startLMTPProxy(t, env, lmtp.ReplicaDirectory{
		R:       f.replica,
		Current: func() bool { return f.follower.Status().State == mupdatec.StateStreaming },
		Confirm: f.follower.Sync,
	})

	id := runID()
	mid := fmt.Sprintf("<lmtp-%s@imapfront.test>", id)
	msg := []byte(fmt.Sprintf("Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nFrom: MTA test <mta@imapfront.test>\r\n"+
		"To: alice@imapfront.test, bob+Team@imapfront.test, carol@imapfront.test\r\nSubject: LMTP fan-out %s\r\n"+
		"Message-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Grüße through the LMTP proxy.\r\n.a line that starts with a dot\r\n%s\r\n", id, mid, strings.Repeat("long line ", 60)))
	dataFile := filepath.Join(t.TempDir(), "msg.eml")
	// swaks ends the data with CRLF itself (it sends the file line by line).
	if err := os.WriteFile(dataFile, bytes.TrimSuffix(msg, []byte("\r\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	users := map[string]itenv.User{}
	for _, u := range env.Users {
		users[u.Name] = u
	}
	t.Cleanup(func() {
		expungeDirect(t, env, users["alice"], "INBOX", mid)
		expungeDirect(t, env, users["bob"], "Team", mid)
		expungeDirect(t, env, users["carol"], "INBOX", mid)
	})
	host, port := hostPort(t, addr)
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	cmd := exec.CommandContext(sctx, swaks, "--protocol", "LMTP", "--server", host, "--port", port,
		"--from", "mta@imapfront.test",
		"--to", "alice@imapfront.test,nosuch-"+id+"@imapfront.test,bob+Team@imapfront.test,carol@imapfront.test",
		"--data", "@"+dataFile)
	out, _ := cmd.CombinedOutput() // swaks exits non-zero when a recipient is refused
	transcript := string(out)
	if !regexp.MustCompile(`(?m)^ -> RCPT TO:<nosuch-` + id + `@imapfront.test>\r?\n<\*\* +550 5\.1\.1 `).MatchString(transcript) {
		t.Errorf("unknown user not refused with 550 5.1.1 at RCPT:\n%s", transcript)
	}
	// After the final dot: one reply per accepted recipient, in RCPT order.
	_, after, ok := strings.Cut(transcript, "\n -> .\r\n")
	if !ok {
		_, after, ok = strings.Cut(transcript, "\n -> .\n")
	}
	if !ok {
		t.Fatalf("no end of data in the swaks transcript:\n%s", transcript)
	}
	var replies []string
	for _, line := range strings.Split(after, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "<-  ") || strings.HasPrefix(line, "<** ") {
			replies = append(replies, strings.TrimSpace(line[4:]))
		}
	}
	if len(replies) < 3 {
		t.Fatalf("%d replies after the data, want 3 (then QUIT's):\n%s", len(replies), transcript)
	}
	t.Logf("per-recipient replies after the data: %q", replies[:3])
	for i, r := range replies[:3] {
		if !strings.HasPrefix(r, "250 ") {
			t.Errorf("recipient %d: %q, want 250", i, r)
		}
	}
	// The backends' own texts come through: Cyrus's name their instance
	// (SESSIONID=<cyrus-be1-...>), Dovecot's ends in "Saved".
	for i, want := range []string{"<alice@imapfront.test> ", "<bob+Team@imapfront.test> ", "<carol@imapfront.test> "} {
		if !strings.Contains(replies[i], want) {
			t.Errorf("reply %d %q is not for %s: not in RCPT order", i, replies[i], want)
		}
	}
	if !strings.Contains(replies[0], "cyrus-be1") || !strings.Contains(replies[1], "cyrus-be2") || !strings.HasSuffix(replies[2], "Saved") {
		t.Errorf("replies are not be1's, be2's and Dovecot's own: %q", replies[:3])
	}
	for _, c := range []struct{ user, mailbox string }{{"alice", "INBOX"}, {"bob", "Team"}, {"carol", "INBOX"}} {
		got := findDirect(t, env, users[c.user], c.mailbox, mid)
		if len(got) != 1 {
			t.Errorf("%s's %s holds %d copies of the message, want 1", c.user, c.mailbox, len(got))
			continue
		}
		checkDelivered(t, c.user+"/"+c.mailbox, got[0].Body, msg)
	}
	if t.Failed() {
		t.Logf("swaks transcript:\n%s", transcript)
	}
}

// TestLMTPProxyMasterDownDefers: an imapfront started while the MUPDATE
// master cannot be reached has no replica; every recipient, known or not,
// gets 451 (the MTA retries) and nothing bounces.
func TestLMTPProxyMasterDownDefers(t *testing.T) {
	env := itenv.Load(t)
	// A master address nothing listens on (the port was just freed).
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	replica := router.NewReplica(router.Options{})
	follower := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: deadAddr, Sink: wiring.ReplicaSink{R: replica}, Logger: feLogger(t),
		Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass), nil },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); follower.Run(ctx) }()
	defer func() { cancel(); <-done }()
	addr := startLMTPProxy(t, env, lmtp.ReplicaDirectory{
		R:       replica,
		Current: func() bool { return follower.Status().State == mupdatec.StateStreaming },
		Confirm: follower.Sync,
	})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	lc := smtp.NewClientLMTP(conn)
	defer lc.Close()
	if err := lc.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	if err := lc.Mail("mta@imapfront.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@imapfront.test", "bob+Team@imapfront.test", "carol@imapfront.test", "nosuch@imapfront.test"} {
		err := lc.Rcpt(r, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 451 {
			t.Errorf("RCPT %s with the master down: %v, want 451", r, err)
		}
	}
}
