//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapfront/imapfront/integration/itenv"
)

// The two-way Maildir check of the sync clients (mbsync, offlineimap): a
// user's folders synced through imapfront equal the same folders synced
// from the home backend directly, and a flag change and a new message made
// in the Maildir reach the backend.

// syncTLS is how a sync client reaches its server.
type syncTLS string

const (
	syncPlain    syncTLS = "plain"    // Cyrus backends on loopback
	syncStartTLS syncTLS = "starttls" // imapfront's or Dovecot's port 143 analogue
	syncIMAPS    syncTLS = "imaps"    // implicit TLS
)

// syncAccount is one account of a sync client: where the server is, how to
// log in, which folders (imapfront's "/"-separated names) to sync and where.
type syncAccount struct {
	User    itenv.User
	Addr    string
	TLS     syncTLS
	CAFile  string   // the only CA the client trusts
	Folders []string // exact folder names, "/"-separated
	Sep     string   // the server's hierarchy separator
	Root    string   // Maildir root
	State   string   // the client's state directory
	Home    string   // HOME of the client process
}

// syncClient runs one sync of an account (both ways) and returns the
// client's output; it fails the test with that output when the client
// fails.
type syncClient struct {
	tool clientTool
	sync func(t *testing.T, a syncAccount) string
	// compressed, if set, is in the client's output when COMPRESS=DEFLATE
	// is on; the check requires it through imapfront.
	compressed string
}

// twoWaySync is the check itself, for user u through imapfront's listener
// of kind tr.
func twoWaySync(t *testing.T, env itenv.Env, f *feFront, caFile string, sc syncClient, u itenv.User, tr syncTLS) {
	b := home(t, env, u)
	dir := t.TempDir()
	id := runID()
	top, sub := runFolders(t, env, f, u, "Clients"+sc.tool.bin)
	plainMsg := newTestMessage(u.Name, id, "plain")
	seenMsg := newTestMessage(u.Name, id, "seen", imap.FlagSeen)
	markedMsg := newTestMessage(u.Name, id, "flagged answered", imap.FlagFlagged, imap.FlagAnswered)
	subMsg := newTestMessage(u.Name, id, "nested", imap.FlagSeen)
	appendDirect(t, env, u, top, plainMsg, seenMsg, markedMsg)
	appendDirect(t, env, u, sub, subMsg)

	folders := []string{"INBOX", top, sub}
	for _, name := range itenv.SeededFolders(u.Name) {
		if name == "Sent" {
			continue // other tests append to Sent while they run
		}
		if b.Kind == itenv.Dovecot {
			name = strings.ReplaceAll(name, ".", "/")
		}
		folders = append(folders, name)
	}

	// The reference: the same client, directly from the backend (plain
	// IMAP on loopback, which Dovecot counts as secured).
	direct := syncAccount{User: u, Addr: b.Addr, TLS: syncPlain, Folders: folders, Sep: "/",
		Root: filepath.Join(dir, "direct", "Mail"), State: filepath.Join(dir, "direct", "state"), Home: filepath.Join(dir, "direct")}
	if b.Kind == itenv.Dovecot {
		direct.Sep = "."
	}
	front := syncAccount{User: u, Addr: f.addr, TLS: tr, CAFile: caFile, Folders: folders, Sep: "/",
		Root: filepath.Join(dir, "front", "Mail"), State: filepath.Join(dir, "front", "state"), Home: filepath.Join(dir, "front")}
	if tr == syncIMAPS {
		front.Addr = f.tlsAddr
	}
	for _, a := range []syncAccount{direct, front} {
		for _, d := range []string{a.Root, a.State} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}

	outDirect := sc.sync(t, direct)
	want := readMaildirs(t, direct.Root)
	outFront := sc.sync(t, front)
	got := readMaildirs(t, front.Root)
	if d := want.diff(got); d != "" {
		t.Fatalf("%s through imapfront (%s) differs from %s directly from %s:\n%s\ndirect sync:\n%s\n%s output (direct):\n%s\n%s output (through imapfront):\n%s",
			sc.tool.bin, tr, sc.tool.bin, b.Name, d, want, sc.tool.bin, outDirect, sc.tool.bin, outFront)
	}
	if sc.compressed != "" && !strings.Contains(outFront, sc.compressed) {
		t.Fatalf("%s through imapfront did not turn COMPRESS=DEFLATE on (no %q in its output):\n%s", sc.tool.bin, sc.compressed, outFront)
	}
	// Not two empty trees: the folders and flags the test made are there.
	for _, c := range []struct {
		folder string
		msg    testMessage
		flags  string
	}{{top, plainMsg, ""}, {top, seenMsg, "S"}, {top, markedMsg, "FR"}, {sub, subMsg, "S"}} {
		m, ok := got.byHash(c.folder, c.msg.Body)
		if !ok || m.Flags != c.flags {
			t.Fatalf("%s through imapfront: %s in %q is %v (found %v), want flags %q; the Maildirs:\n%s\n%s output:\n%s",
				sc.tool.bin, c.msg.MessageID, c.folder, m, ok, c.flags, got, sc.tool.bin, outFront)
		}
	}
	if n := len(got["INBOX"]); n < itenv.SeededMessages {
		t.Fatalf("%s through imapfront: INBOX has %d messages, want at least %d:\n%s", sc.tool.bin, n, itenv.SeededMessages, got)
	}

	// A person flags a message and files a new one in the Maildir.
	m, _ := got.byHash(top, plainMsg.Body)
	if err := os.Rename(m.Path, m.Path+"F"); err != nil {
		t.Fatal(err)
	}
	newMsg := newTestMessage(u.Name, id, "written in the maildir")
	newPath := filepath.Join(front.Root, filepath.FromSlash(top), "new", fmt.Sprintf("%d.clients%s.localhost", time.Now().Unix(), id))
	writeFile(t, newPath, strings.ReplaceAll(string(newMsg.Body), "\r\n", "\n"), 0o600)
	outPush := sc.sync(t, front)

	flagged := findDirect(t, env, u, top, plainMsg.MessageID)
	if len(flagged) != 1 || !slices.Equal(flagged[0].Flags, []imap.Flag{imap.FlagFlagged}) {
		t.Errorf("after the second %s through imapfront, %s on %s directly: %+v, want one message flagged \\Flagged only; %s output:\n%s",
			sc.tool.bin, plainMsg.MessageID, b.Name, flagged, sc.tool.bin, outPush)
	}
	pushed := findDirect(t, env, u, top, newMsg.MessageID)
	if len(pushed) != 1 || !sameLines(stripClientHeaders(pushed[0].Body), newMsg.Body) {
		t.Errorf("after the second %s through imapfront, the message written in the Maildir on %s directly: %d messages %q, want one with the same text; %s output:\n%s",
			sc.tool.bin, b.Name, len(pushed), pushed, sc.tool.bin, outPush)
	}
}

// stripClientHeaders removes the header fields sync clients add to a
// message they store or upload to find it again: mbsync's X-TUID (random,
// also in the messages it writes to a Maildir) and offlineimap's
// X-OfflineIMAP.
func stripClientHeaders(body []byte) []byte {
	var out []string
	header := true
	for _, l := range strings.SplitAfter(string(body), "\n") {
		if header && (l == "\r\n" || l == "\n") {
			header = false
		}
		if header && (strings.HasPrefix(l, "X-TUID: ") || strings.HasPrefix(l, "X-OfflineIMAP: ")) {
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, ""))
}

// mbsync is isync's mbsync with one channel for the account's folders.
var mbsync = syncClient{tool: mbsyncTool, sync: func(t *testing.T, a syncAccount) string {
	t.Helper()
	host, port := hostPort(t, a.Addr)
	ssl := map[syncTLS]string{syncPlain: "None", syncStartTLS: "STARTTLS", syncIMAPS: "IMAPS"}[a.TLS]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "IMAPAccount acct\nHost %s\nPort %s\nUser %s\nPass %s\nSSLType %s\nTimeout 20\n",
		host, port, a.User.Name, a.User.Password, ssl)
	if a.CAFile != "" {
		fmt.Fprintf(&cfg, "SystemCertificates no\nCertificateFile %s\n", a.CAFile)
	}
	fmt.Fprintf(&cfg, "\nIMAPStore far\nAccount acct\n\nMaildirStore near\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n",
		a.Root, a.Root)
	fmt.Fprintf(&cfg, "Channel ch\nFar :far:\nNear :near:\nPatterns")
	for _, f := range a.Folders {
		fmt.Fprintf(&cfg, " %q", f)
	}
	fmt.Fprintf(&cfg, "\nCreate Near\nSync All\nExpunge None\nSyncState %s/\n", a.State)
	conf := writeFile(t, filepath.Join(a.Home, "mbsyncrc"), cfg.String(), 0o600)
	// -Dn shows the IMAP exchange (that COMPRESS is on); Timeout 20 s ends
	// a stalled connection well before the process's deadline.
	return mbsyncTool.run(t, 2*time.Minute, a.Home, "-c", conf, "-V", "-Dn", "ch")
}, compressed: "OK DEFLATE active"}

// TestClientsMbsync: mbsync (isync) syncs each user's folders to a
// Maildir through imapfront over STARTTLS and over IMAPS, verifying
// imapfront's certificate, with COMPRESS=DEFLATE on (mbsync always uses it
// when offered); the Maildir equals a direct sync from the backend, and a
// second sync pushes a flag change and a new message back.
func TestClientsMbsync(t *testing.T) {
	env := itenv.Load(t)
	f, caFile := startClientFront(t, env, mbsyncTool)
	for _, name := range clientUsers {
		u := env.MustUser(t, name)
		for _, tr := range []syncTLS{syncStartTLS, syncIMAPS} {
			t.Run(name+"/"+string(tr), func(t *testing.T) { twoWaySync(t, env, f, caFile, mbsync, u, tr) })
		}
	}
}

// offlineimap is offlineimap3 with one account for the account's folders.
var offlineimap = syncClient{tool: offlineimapTool, sync: func(t *testing.T, a syncAccount) string {
	t.Helper()
	host, port := hostPort(t, a.Addr)
	// folderfilter sees the server's names, with its separator.
	var folders []string
	for _, f := range a.Folders {
		folders = append(folders, fmt.Sprintf("%q", strings.ReplaceAll(f, "/", a.Sep)))
	}
	ssl, starttls := "no", "no"
	switch a.TLS {
	case syncIMAPS:
		ssl = "yes"
	case syncStartTLS:
		starttls = "yes"
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[general]\naccounts = acct\nmetadata = %s\nui = basic\n\n[Account acct]\nlocalrepository = near\nremoterepository = far\n\n", a.State)
	fmt.Fprintf(&cfg, "[Repository near]\ntype = Maildir\nlocalfolders = %s\nsep = /\n\n", a.Root)
	fmt.Fprintf(&cfg, "[Repository far]\ntype = IMAP\nremotehost = %s\nremoteport = %s\nremoteuser = %s\nremotepass = %s\n"+
		"ssl = %s\nstarttls = %s\nauth_mechanisms = PLAIN, LOGIN\ntimeout = 20\ncreatefolders = False\n"+
		"folderfilter = lambda name: name in [%s]\n",
		host, port, a.User.Name, a.User.Password, ssl, starttls, strings.Join(folders, ", "))
	if a.CAFile != "" {
		fmt.Fprintf(&cfg, "sslcacertfile = %s\n", a.CAFile)
	}
	conf := writeFile(t, filepath.Join(a.Home, "offlineimaprc"), cfg.String(), 0o600)
	return offlineimapTool.run(t, 2*time.Minute, a.Home, "-c", conf, "-o", "-u", "basic")
}}

// TestClientsOfflineIMAP: offlineimap3 does the same two-way check as
// mbsync (it has no COMPRESS), over IMAPS only: offlineimap 8.0.0's
// STARTTLS verifies no certificate (it ignores sslcacertfile there) and,
// with TLS 1.3, now and then waits forever for the answer to the
// CAPABILITY after the handshake (imaplib2's reader thread; Dovecot
// directly does the same), so it is not a setting to give users.
func TestClientsOfflineIMAP(t *testing.T) {
	env := itenv.Load(t)
	f, caFile := startClientFront(t, env, offlineimapTool)
	for _, name := range clientUsers {
		u := env.MustUser(t, name)
		t.Run(name+"/imaps", func(t *testing.T) { twoWaySync(t, env, f, caFile, offlineimap, u, syncIMAPS) })
	}
}
