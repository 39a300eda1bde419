//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapfront/imapfront/integration/itenv"
)

// Helpers of the real-client tests (clients_test.go): running a client
// program with a deadline, a certificate for imapfront that clients verify,
// a per-run folder tree on a user's home backend, and reading Maildirs.

// clientTool is a mail client program and the Debian package that has it
// (integration/run.sh installs the package).
type clientTool struct{ bin, pkg string }

var (
	mbsyncTool      = clientTool{"mbsync", "isync"}
	offlineimapTool = clientTool{"offlineimap", "offlineimap3"}
	fetchmailTool   = clientTool{"fetchmail", "fetchmail"}
	curlTool        = clientTool{"curl", "curl"}
	neomuttTool     = clientTool{"neomutt", "neomutt"}
	tmuxTool        = clientTool{"tmux", "tmux"}
	pythonTool      = clientTool{"python3", "python3"}
)

// path returns the program's path, or fails t naming the package to install.
func (c clientTool) path(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath(c.bin)
	if err != nil {
		t.Fatalf("%s is not installed (Debian package %s; integration/run.sh installs it): %v", c.bin, c.pkg, err)
	}
	return p
}

// run runs the program with args in dir (a temporary directory that is also
// HOME, so no user's own configuration is read) and returns its output
// (stdout and stderr). It fails t with that output when the program exits
// non-zero or outlives timeout.
func (c clientTool) run(t *testing.T, timeout time.Duration, dir string, args ...string) string {
	t.Helper()
	out, err := c.try(t, timeout, dir, nil, args...)
	if err != nil {
		t.Fatalf("%s %s: %v; its output:\n%s", c.bin, strings.Join(args, " "), err, out)
	}
	return out
}

// try is run that returns the error instead of failing; stdin, if not nil,
// is the program's input.
func (c clientTool) try(t *testing.T, timeout time.Duration, dir string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path(t), args...)
	cmd.Dir = dir
	cmd.Env = clientEnv(dir)
	cmd.WaitDelay = 5 * time.Second // a child holding the output pipe open cannot stall the test
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %v, killed (%v)", timeout, err)
	}
	return string(out), err
}

// clientEnv is the environment of a client program: HOME is its own
// directory, the locale is C.UTF-8, and no proxy is used.
func clientEnv(home string) []string {
	env := []string{"HOME=" + home, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TERM=xterm-256color", "TZ=UTC"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return env
}

// writeFile writes a file for a client (configuration, script) or fails t.
func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// frontCert makes a CA and a certificate for 127.0.0.1 and localhost signed
// by it; it returns imapfront's TLS configuration and the CA's PEM file,
// which the clients are told to trust (and nothing else).
func frontCert(t *testing.T) (*tls.Config, string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imapfront clients test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeFile(t, filepath.Join(t.TempDir(), "ca.pem"),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), 0o644)
	cert := tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile
}

// startClientFront checks that the clients a test runs are installed, then
// starts imapfront in front of the lab with STARTTLS and IMAPS (the
// certificate from frontCert) and carol's Dovecot mailboxes in MUPDATE; it
// returns the front end and the CA file clients must trust.
func startClientFront(t *testing.T, env itenv.Env, clients ...clientTool) (*feFront, string) {
	t.Helper()
	for _, c := range clients {
		c.path(t)
	}
	ensureDovecotInMUPDATE(t, env)
	cfg, caFile := frontCert(t)
	return startFront(t, env, feOptions{tls: cfg}), caFile
}

// hostPort splits addr or fails t.
func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// runID names what one run creates (folders, messages), so that runs
// against the same lab, and other engineers' tests, never meet.
func runID() string { return fmt.Sprintf("%d", time.Now().UnixNano()) }

// clientUsers are the users whose accounts the client tests use: one per
// kind of home backend.
var clientUsers = []string{"alice", "bob", "carol"}

// home returns u's home backend.
func home(t *testing.T, env itenv.Env, u itenv.User) itenv.Backend {
	t.Helper()
	b, ok := env.Backend(u.Home)
	if !ok {
		t.Fatalf("user %s: home %s is not a backend of the lab", u.Name, u.Home)
	}
	return b
}

// backendName is the backend's own name for a mailbox named name (with "/")
// through imapfront: Dovecot's hierarchy separator is ".".
func backendName(b itenv.Backend, name string) string {
	if b.Kind == itenv.Dovecot {
		return strings.ReplaceAll(name, "/", ".")
	}
	return name
}

// directLogin logs u in on its home backend directly (not through imapfront).
func directLogin(t *testing.T, env itenv.Env, u itenv.User) *imapclient.Client {
	t.Helper()
	b := home(t, env, u)
	c := dialIMAP(t, env, b.Addr, transportFor(b))
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("LOGIN %s on %s directly: %v", u.Name, b.Name, err)
	}
	return c
}

// testMessage is a message the test puts on a backend.
type testMessage struct {
	MessageID string
	Flags     []imap.Flag
	Body      []byte // CRLF line endings
}

// newTestMessage builds a message for user with a unique Message-ID; the
// body has a non-ASCII UTF-8 line and a long line, as real mail does.
func newTestMessage(user, id, subject string, flags ...imap.Flag) testMessage {
	mid := fmt.Sprintf("<clients-%s-%s@imapfront.test>", id, strings.ReplaceAll(subject, " ", "-"))
	body := fmt.Sprintf("Date: %s\r\nFrom: Client Test <clients@imapfront.test>\r\nTo: %s <%s@imapfront.test>\r\n"+
		"Subject: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\n\r\nGrüße from the real-client tests (%s).\r\n%s\r\n",
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC1123Z), user, user, subject, mid, id,
		strings.Repeat("long line ", 40))
	return testMessage{MessageID: mid, Flags: flags, Body: []byte(body)}
}

// appendDirect APPENDs msgs to mailbox (imapfront's name) on u's home
// backend directly.
func appendDirect(t *testing.T, env itenv.Env, u itenv.User, mailbox string, msgs ...testMessage) {
	t.Helper()
	c := directLogin(t, env, u)
	defer c.Close()
	name := backendName(home(t, env, u), mailbox)
	for _, m := range msgs {
		app := c.Append(name, int64(len(m.Body)), &imap.AppendOptions{Flags: m.Flags})
		if _, err := app.Write(m.Body); err != nil {
			t.Fatal(err)
		}
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Wait(); err != nil {
			t.Fatalf("APPEND to %s on %s directly: %v", name, u.Home, err)
		}
	}
}

// runFolders creates, through imapfront, a folder and a subfolder for this
// run in u's namespace (imapfront keeps MUPDATE true for Dovecot), and
// deletes them when the test ends. It returns their names (with "/").
func runFolders(t *testing.T, env itenv.Env, f *feFront, u itenv.User, prefix string) (top, sub string) {
	t.Helper()
	top = prefix + runID()
	sub = top + "/Nested"
	c := f.login(t, u.Name, u.Password)
	for _, name := range []string{top, sub} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s for %s through imapfront: %v", name, u.Name, err)
		}
	}
	t.Cleanup(func() {
		for _, name := range []string{sub, top} {
			if err := c.Delete(name).Wait(); err != nil {
				t.Errorf("cleanup: DELETE %s for %s through imapfront: %v", name, u.Name, err)
			}
		}
		c.Logout().Wait()
	})
	return top, sub
}

// backendMessage is a message as the backend has it.
type backendMessage struct {
	Flags []imap.Flag // sorted, without \Recent
	Body  []byte
}

// findDirect returns the messages in mailbox (imapfront's name) on u's home
// backend whose Message-ID is mid, read directly.
func findDirect(t *testing.T, env itenv.Env, u itenv.User, mailbox, mid string) []backendMessage {
	t.Helper()
	c := directLogin(t, env, u)
	defer c.Close()
	name := backendName(home(t, env, u), mailbox)
	if _, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE %s on %s directly: %v", name, u.Home, err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: mid}}}, nil).Wait()
	if err != nil {
		t.Fatalf("SEARCH HEADER Message-ID %s in %s on %s: %v", mid, name, u.Home, err)
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("FETCH in %s on %s: %v", name, u.Home, err)
	}
	var out []backendMessage
	for _, m := range msgs {
		out = append(out, backendMessage{Flags: cleanFlags(m.Flags), Body: m.FindBodySection(&imap.FetchItemBodySection{})})
	}
	return out
}

// cleanFlags returns flags sorted, without \Recent (a session property).
func cleanFlags(flags []imap.Flag) []imap.Flag {
	out := []imap.Flag{}
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// mdMessage is a message in a Maildir: the SHA-256 of its content without
// the header fields the client added (stripClientHeaders) and its flags
// (the letters after ":2,").
type mdMessage struct {
	SHA256, Flags string
	Path          string
}

func (m mdMessage) String() string { return m.SHA256[:12] + " :2," + m.Flags }

// maildirTree is a Maildir tree as folder name -> messages sorted by hash.
type maildirTree map[string][]mdMessage

// readMaildirs reads every Maildir under root: a directory with cur, new
// and tmp is a folder named by its path below root ("/"-separated).
func readMaildirs(t *testing.T, root string) maildirTree {
	t.Helper()
	tree := maildirTree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if _, err := os.Stat(filepath.Join(p, "cur")); err != nil {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var msgs []mdMessage
		for _, sub := range []string{"new", "cur"} {
			files, err := os.ReadDir(filepath.Join(p, sub))
			if err != nil {
				return err
			}
			for _, fi := range files {
				if fi.IsDir() {
					continue
				}
				path := filepath.Join(p, sub, fi.Name())
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(stripClientHeaders(b))
				flags := ""
				if _, info, ok := strings.Cut(fi.Name(), ":2,"); ok {
					flags = info
				}
				msgs = append(msgs, mdMessage{SHA256: hex.EncodeToString(sum[:]), Flags: flags, Path: path})
			}
		}
		slices.SortFunc(msgs, func(a, b mdMessage) int { return strings.Compare(a.String(), b.String()) })
		tree[filepath.ToSlash(rel)] = msgs
		return nil
	})
	if err != nil {
		t.Fatalf("reading the Maildirs under %s: %v", root, err)
	}
	return tree
}

// diff describes how got differs from want (empty when equal).
func (want maildirTree) diff(got maildirTree) string {
	var b strings.Builder
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		w, inW := want[n]
		g, inG := got[n]
		switch {
		case !inG:
			fmt.Fprintf(&b, "folder %q: missing (direct sync has %d messages)\n", n, len(w))
		case !inW:
			fmt.Fprintf(&b, "folder %q: not in the direct sync (has %d messages)\n", n, len(g))
		case !slices.EqualFunc(w, g, func(a, b mdMessage) bool { return a.String() == b.String() }):
			fmt.Fprintf(&b, "folder %q: direct %v, through imapfront %v\n", n, w, g)
		}
	}
	return b.String()
}

// String lists the tree, one folder a line.
func (tree maildirTree) String() string {
	var names []string
	for n := range tree {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: %v\n", n, tree[n])
	}
	return b.String()
}

// byHash returns the message of folder whose content hashes like body
// (with LF line endings, as Maildir clients store it).
func (tree maildirTree) byHash(folder string, body []byte) (mdMessage, bool) {
	sum := sha256.Sum256(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")))
	i := slices.IndexFunc(tree[folder], func(m mdMessage) bool { return m.SHA256 == hex.EncodeToString(sum[:]) })
	if i < 0 {
		return mdMessage{}, false
	}
	return tree[folder][i], true
}

// sameLines reports whether a and b are the same text up to line endings.
func sameLines(a, b []byte) bool {
	n := func(x []byte) []byte { return bytes.ReplaceAll(x, []byte("\r\n"), []byte("\n")) }
	return bytes.Equal(n(a), n(b))
}

// liveClient is a client program the test talks to while it runs: its
// output arrives line by line.
type liveClient struct {
	tool   clientTool
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan string // stdout and stderr lines; closed at EOF
	mu     sync.Mutex
	output strings.Builder
}

// start starts the program with args in dir; it is killed after timeout
// and when the test ends.
func (c clientTool) start(t *testing.T, timeout time.Duration, dir string, args ...string) *liveClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, c.path(t), args...)
	cmd.Dir = dir
	cmd.Env = clientEnv(dir)
	cmd.WaitDelay = 5 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", c.bin, err)
	}
	pw.Close()
	lc := &liveClient{tool: c, cmd: cmd, cancel: cancel, lines: make(chan string, 1024)}
	go func() {
		defer close(lc.lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lc.mu.Lock()
			lc.output.WriteString(sc.Text() + "\n")
			lc.mu.Unlock()
			lc.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return lc
}

// Output is everything the program has written so far.
func (lc *liveClient) Output() string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.output.String()
}

// waitLine returns the first line that starts with prefix, or fails t with
// the program's output when the program ends or within is over first.
func (lc *liveClient) waitLine(t *testing.T, prefix string, within time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-lc.lines:
			if !ok {
				err := lc.cmd.Wait()
				t.Fatalf("%s ended (%v) without a line %q; its output:\n%s", lc.tool.bin, err, prefix, lc.Output())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline.C:
			t.Fatalf("%s wrote no line %q within %v; its output:\n%s", lc.tool.bin, prefix, within, lc.Output())
		}
	}
}

// wait waits for the program to exit and fails t with its output unless it
// exits 0.
func (lc *liveClient) wait(t *testing.T) {
	t.Helper()
	for range lc.lines {
	}
	if err := lc.cmd.Wait(); err != nil {
		t.Fatalf("%s: %v; its output:\n%s", lc.tool.bin, err, lc.Output())
	}
}

// terminal is a tmux session on its own server socket, the terminal a
// person would run a full-screen client in.
type terminal struct {
	t    *testing.T
	sock string
	dir  string
}

// newTerminal starts command (a program and its arguments) in a detached
// 160x45 tmux session; the pane stays when the program exits, so its last
// screen can be shown. The tmux server is killed when the test ends.
func newTerminal(t *testing.T, dir string, command ...string) *terminal {
	t.Helper()
	term := &terminal{t: t, sock: filepath.Join(dir, "tmux.sock"), dir: dir}
	conf := writeFile(t, filepath.Join(dir, "tmux.conf"), "set -g remain-on-exit on\nset -g history-limit 0\n", 0o600)
	args := append([]string{"-S", term.sock, "-f", conf, "new-session", "-d", "-s", "client", "-x", "160", "-y", "45"}, command...)
	tmuxTool.run(t, 30*time.Second, dir, args...)
	t.Cleanup(func() { tmuxTool.try(t, 30*time.Second, dir, nil, "-S", term.sock, "kill-server") })
	return term
}

// tmux runs a tmux command on the terminal's server.
func (term *terminal) tmux(args ...string) string {
	term.t.Helper()
	return tmuxTool.run(term.t, 30*time.Second, term.dir, append([]string{"-S", term.sock}, args...)...)
}

// screen is the text on the terminal now.
func (term *terminal) screen() string {
	term.t.Helper()
	return term.tmux("capture-pane", "-p", "-t", "client")
}

// waitFor polls the screen until it shows text and returns the screen; it
// fails the test showing the screen when within passes first.
func (term *terminal) waitFor(text string, within time.Duration) string {
	term.t.Helper()
	var s string
	if !eventually(within, func() bool { s = term.screen(); return strings.Contains(s, text) }) {
		term.t.Fatalf("the terminal did not show %q within %v; the screen:\n%s", text, within, s)
	}
	return s
}

// keys sends tmux key names (Enter, C-u, ...); typeText sends text as typed.
func (term *terminal) keys(keys ...string) {
	term.t.Helper()
	term.tmux(append([]string{"send-keys", "-t", "client"}, keys...)...)
}

func (term *terminal) typeText(text string) {
	term.t.Helper()
	term.tmux("send-keys", "-t", "client", "-l", text)
}

// waitExit polls until the program in the terminal has exited.
func (term *terminal) waitExit(within time.Duration) {
	term.t.Helper()
	if !eventually(within, func() bool {
		return strings.TrimSpace(term.tmux("display-message", "-p", "-t", "client", "#{pane_dead}")) == "1"
	}) {
		term.t.Fatalf("the program in the terminal did not exit within %v; the screen:\n%s", within, term.screen())
	}
}

// eventually checks cond every 100 ms until it holds (true) or within has
// passed (false): waiting for what a client does, with a deadline.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
