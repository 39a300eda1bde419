//go:build integration

package integration

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/internal/imaptest"
)

// Hardening checks against the real servers (issue 16): what Dovecot is
// told about the client comes from imapfront only, and a cross-backend
// COPY between the Cyrus backends streams with bounded memory.

// TestFrontendDovecotNeverSeesClientSentOrigin: a client that claims
// another address and session in its ID (x-originating-ip, x-session-id)
// does not get them into Dovecot's log, with or without forward_client:
// Dovecot logs imapfront's view of the client (forward_client) or
// imapfront's own address (without).
func TestFrontendDovecotNeverSeesClientSentOrigin(t *testing.T) {
	env := itenv.Load(t)
	if env.DovecotLog == "" {
		t.Fatal("IMAPFRONT_IT_DOVECOT_LOG is empty: cannot check Dovecot's log")
	}
	ensureDovecotInMUPDATE(t, env)
	carol := env.MustUser(t, "carol")
	const forgedIP = "203.0.113.9"
	for _, tc := range []struct {
		forward bool
		rip     string
	}{
		{forward: true, rip: "rip=127.0.0.2, lip=127.0.0.1"},
		{forward: false, rip: "rip=127.0.0.1, lip=127.0.0.1"},
	} {
		t.Run(fmt.Sprintf("forward_client=%v", tc.forward), func(t *testing.T) {
			f := startFront(t, env, feOptions{forwardClient: tc.forward})
			forgedSession := fmt.Sprintf("forged%d", time.Now().UnixNano())
			before, err := os.ReadFile(env.DovecotLog)
			if err != nil {
				t.Fatal(err)
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
			conn, err := d.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(time.Minute))
			rc := &rawClient{&imaptest.Client{T: t, Conn: conn, R: bufio.NewReader(conn), Timeout: 2 * time.Minute}}
			rc.R.ReadString('\n')
			rc.ExchangeOK("i1", fmt.Sprintf(`ID ("name" "forger" "x-originating-ip" %q "x-originating-port" "4242" "x-session-id" %q "X-Connected-IP" "198.51.100.1")`, forgedIP, forgedSession))
			rc.ExchangeOK("i2", "LOGIN carol "+carol.Password)
			rc.ExchangeOK("i3", "SELECT INBOX") // a Dovecot session exists now
			waitDovecotLog(t, env, before, func(l string) bool {
				if strings.Contains(l, forgedIP) || strings.Contains(l, forgedSession) || strings.Contains(l, "198.51.100.1") {
					t.Fatalf("Dovecot logged what the client claimed: %s", l)
				}
				return strings.Contains(l, "Login: user=<carol>") && strings.Contains(l, tc.rip)
			}, "a login of carol with "+tc.rip)
		})
	}
}

// waitDovecotLog waits up to 15 s for a line that Dovecot logged after
// before (its log's content earlier) for which match is true; what says
// what was looked for.
func waitDovecotLog(t *testing.T, env itenv.Env, before []byte, match func(line string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		log, err := os.ReadFile(env.DovecotLog)
		if err != nil {
			t.Fatal(err)
		}
		if len(log) < len(before) {
			t.Fatal("Dovecot's log shrank during the test")
		}
		for _, l := range strings.Split(string(log[len(before):]), "\n") {
			if match(l) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot's log has no %s within 15 s", what)
		}
		<-tick.C
	}
}

// synthBody writes message i of size bytes: a header naming it, then
// filler lines that depend on i.
func synthBody(w io.Writer, i, size int) {
	head := fmt.Sprintf("From: copy@imapfront.test\r\nSubject: copy %d\r\nMessage-ID: <copy-%d@imapfront.test>\r\n\r\n", i, i)
	io.WriteString(w, head)
	line := []byte(strings.Repeat(strconv.Itoa(i%10), 76) + "\r\n")
	left := size - len(head)
	for left > 0 {
		n, _ := w.Write(line[:min(left, len(line))])
		left -= n
	}
}

func synthDigest(i, size int) [32]byte {
	h := sha256.New()
	synthBody(h, i, size)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// TestFrontendCrossCopyBoundedMemory: COPY of 200 messages of 5 MB from
// be1 to be2 through imapfront allocates (so grows) less than 16 MB in
// imapfront's process, and the copies are byte-identical with their flags
// and internal dates. IMAPFRONT_IT_XCOPY_MESSAGES changes the count.
func TestFrontendCrossCopyBoundedMemory(t *testing.T) {
	env := itenv.Load(t)
	n, size := 200, 5<<20
	if s := os.Getenv(itenv.Prefix + "XCOPY_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("%sXCOPY_MESSAGES=%q", itenv.Prefix, s)
		}
	}
	alice := env.MustUser(t, "alice")
	stamp := time.Now().UnixNano()
	dst := bobDropForAlice(t, env, fmt.Sprintf("CopyDrop%d", stamp))
	direct := dialIMAP(t, env, env.CyrusBE1, plain)
	if err := direct.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("CopySrc%d", stamp)
	if err := direct.Create(src, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Delete(src).Wait() })
	base := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	flagsOf := func(i int) []imap.Flag {
		if i%2 == 0 {
			return []imap.Flag{imap.FlagSeen}
		}
		return []imap.Flag{imap.FlagFlagged, "$Copied"}
	}
	seedStart := time.Now()
	for i := 1; i <= n; i++ {
		app := direct.Append(src, int64(size), &imap.AppendOptions{Flags: flagsOf(i), Time: base.Add(time.Duration(i) * time.Minute)})
		synthBody(app, i, size)
		app.Close()
		if _, err := app.Wait(); err != nil {
			t.Fatalf("seeding message %d: %v", i, err)
		}
	}
	t.Logf("seeded %d x %d bytes on be1 in %v", n, size, time.Since(seedStart))

	f := startFront(t, env, feOptions{})
	rc := rawDial(t, f.addr)
	rc.Conn.SetDeadline(time.Now().Add(15 * time.Minute))
	rc.ExchangeOK("c1", "LOGIN alice "+alice.Password)
	rc.ExchangeOK("c2", "SELECT "+src)
	clientDst := "Other Users/bob/" + strings.TrimPrefix(dst, "user/bob/")
	rc.ExchangeOK("c3", `STATUS "`+clientDst+`" (MESSAGES)`) // be2's connection is up

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rssBefore := vmRSS(t)
	start := time.Now()
	lines := rc.Exchange("c4", fmt.Sprintf(`COPY 1:%d "%s"`, n, clientDst))
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	rssAfter := vmRSS(t)
	done := last(lines)
	if !strings.HasPrefix(done, "c4 OK [COPYUID ") {
		t.Fatalf("COPY: %q", lines)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("COPY of %d x %d bytes be1 -> be2 in %v: %d bytes allocated, heap in use %d -> %d, RSS %d -> %d kB",
		n, size, took, alloc, before.HeapInuse, after.HeapInuse, rssBefore, rssAfter)
	if alloc > 16<<20 {
		t.Errorf("imapfront allocated %d bytes copying %d messages of %d bytes (bound: 16 MB)", alloc, n, size)
	}

	check := dialIMAP(t, env, env.CyrusBE2, plain)
	if err := check.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := check.Select(clientDst, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		got, err := check.Fetch(imap.SeqSetNum(uint32(i)), &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(got) != 1 || len(got[0].BodySection) != 1 {
			t.Fatalf("FETCH %d in target: %v (%d answers)", i, err, len(got))
		}
		m := got[0]
		if sha256.Sum256(m.BodySection[0].Bytes) != synthDigest(i, size) {
			t.Errorf("message %d: body differs", i)
		}
		if want := base.Add(time.Duration(i) * time.Minute); !m.InternalDate.Equal(want) {
			t.Errorf("message %d: internal date %v, want %v", i, m.InternalDate, want)
		}
		for _, fl := range flagsOf(i) {
			has := false
			for _, x := range m.Flags {
				has = has || strings.EqualFold(string(x), string(fl))
			}
			if !has {
				t.Errorf("message %d: flags %v lack %s", i, m.Flags, fl)
			}
		}
	}
}

// bobDropForAlice creates user/bob/<name> on be2 as the Cyrus admin, lets
// alice write to it, and deletes it when the test ends; it returns the
// mailbox's name on be2.
func bobDropForAlice(t *testing.T, env itenv.Env, name string) string {
	t.Helper()
	admin := dialIMAP(t, env, env.CyrusBE2, plain)
	if err := admin.Login(env.CyrusAdminUser, env.CyrusAdminPass).Wait(); err != nil {
		t.Fatal(err)
	}
	dst := "user/bob/" + name
	if err := admin.Create(dst, nil).Wait(); err != nil {
		t.Fatalf("admin CREATE %s on be2: %v", dst, err)
	}
	t.Cleanup(func() { admin.Delete(dst).Wait() })
	if err := admin.SetACL(dst, "alice", imap.RightModificationReplace, imap.RightSet("lrswipkxte")).Wait(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// vmRSS returns the process's resident set size in kB (Linux).
func vmRSS(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}
