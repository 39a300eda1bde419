//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapfront/imapfront/integration/itenv"
)

// Real mail clients through imapfront (besides the sync clients of
// clients_sync_test.go): fetchmail, curl, NeoMutt in a terminal, and
// Python's imaplib. Each failure shows the client's own output.

// inboxDirect returns every message of u's INBOX on its home backend, read
// directly, by UID.
func inboxDirect(t *testing.T, env itenv.Env, u itenv.User) []*imapclient.FetchMessageBuffer {
	t.Helper()
	c := directLogin(t, env, u)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE INBOX of %s directly: %v", u.Name, err)
	}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("FETCH INBOX of %s directly: %v", u.Name, err)
	}
	return msgs
}

// restoreFlags sets the flags of u's INBOX messages on its home backend
// back to what msgs say (clients that mark what they read as \Seen must
// leave the shared lab as they found it).
func restoreFlags(t *testing.T, env itenv.Env, u itenv.User, msgs []*imapclient.FetchMessageBuffer) {
	t.Helper()
	c := directLogin(t, env, u)
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("cleanup: SELECT INBOX of %s directly: %v", u.Name, err)
		return
	}
	for _, m := range msgs {
		err := c.Store(imap.UIDSetNum(m.UID), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: cleanFlags(m.Flags)}, nil).Close()
		if err != nil {
			t.Errorf("cleanup: restoring the flags of UID %d in the INBOX of %s: %v", m.UID, u.Name, err)
		}
	}
}

// withoutReceived removes the Received: field fetchmail puts on top of
// every message it delivers, and makes line endings LF.
func withoutReceived(msg []byte) []byte {
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	if !bytes.HasPrefix(msg, []byte("Received: ")) {
		return msg
	}
	rest := msg
	for {
		_, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return msg
		}
		rest = after
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			return rest
		}
	}
}

// TestClientsFetchmail: fetchmail fetches every INBOX message (keep,
// fetchall) through imapfront over IMAPS, verifying its certificate, into
// an MDA that writes each message to a file; the files are the backend's
// messages.
func TestClientsFetchmail(t *testing.T) {
	env := itenv.Load(t)
	f, caFile := startClientFront(t, env, fetchmailTool)
	host, port := hostPort(t, f.tlsAddr)
	for _, name := range clientUsers {
		u := env.MustUser(t, name)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "delivered")
			if err := os.Mkdir(out, 0o700); err != nil {
				t.Fatal(err)
			}
			mda := writeFile(t, filepath.Join(dir, "mda.sh"),
				"#!/bin/sh\nf=$(mktemp \""+out+"/msg.XXXXXX\") && cat >\"$f\"\n", 0o700)
			// sslcommonname: fetchmail (OpenSSL's host check) matches the
			// name it polls against DNS names only, not IP addresses.
			rc := writeFile(t, filepath.Join(dir, "fetchmailrc"), fmt.Sprintf(
				"set no syslog\nset no bouncemail\npoll %s service %s protocol IMAP auth password timeout 30\n"+
					"  user %q there with password %q\n  folder INBOX\n  ssl sslcertck sslcertfile %q sslcommonname localhost\n"+
					"  keep fetchall\n  mda %q\n",
				host, port, u.Name, u.Password, caFile, mda), 0o600)
			before := inboxDirect(t, env, u)
			// fetchmail sets \Seen on what it fetched, keep or not.
			t.Cleanup(func() { restoreFlags(t, env, u, before) })
			log := fetchmailTool.run(t, 2*time.Minute, dir, "-f", rc, "-i", filepath.Join(dir, "fetchids"), "-v", "--nodetach")
			var want, got []string
			for _, m := range before {
				want = append(want, string(withoutReceived(m.FindBodySection(&imap.FetchItemBodySection{}))))
			}
			files, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, fi := range files {
				b, err := os.ReadFile(filepath.Join(out, fi.Name()))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(withoutReceived(b)))
			}
			slices.Sort(want)
			slices.Sort(got)
			if len(want) < itenv.SeededMessages || !slices.Equal(want, got) {
				t.Fatalf("fetchmail delivered %d messages, the INBOX of %s on %s has %d (at least %d seeded); equal: %v; delivered:\n%s\nfetchmail's output:\n%s",
					len(got), u.Name, u.Home, len(want), itenv.SeededMessages, slices.Equal(want, got), strings.Join(got, "\n----\n"), log)
			}
		})
	}
}

// TestClientsCurl: curl's IMAP over IMAPS through imapfront, verifying its
// certificate: LIST, EXAMINE of a shared folder (on be1, for every user),
// FETCH by UID, and APPEND of a file with -T, which the backend then holds.
func TestClientsCurl(t *testing.T) {
	env := itenv.Load(t)
	f, caFile := startClientFront(t, env, curlTool)
	base := "imaps://" + f.tlsAddr + "/"
	for _, name := range clientUsers {
		u := env.MustUser(t, name)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// curl writes what the server sent to -o and its trace (-v) to
			// the output shown on failure.
			curl := func(url string, args ...string) (string, string) {
				t.Helper()
				out := filepath.Join(dir, fmt.Sprintf("out%d", time.Now().UnixNano()))
				args = append([]string{"-v", "-sS", "--max-time", "60", "--cacert", caFile,
					"-u", u.Name + ":" + u.Password, "-o", out, url}, args...)
				trace := curlTool.run(t, 90*time.Second, dir, args...)
				b, err := os.ReadFile(out)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				return string(b), trace
			}

			list, trace := curl(base)
			for _, want := range append([]string{"INBOX", "Shared Folders/shared"}, itenv.SeededFolders(u.Name)...) {
				if home(t, env, u).Kind == itenv.Dovecot {
					want = strings.ReplaceAll(want, ".", "/")
				}
				if !strings.Contains(list, ` "/" `+want+"\r\n") && !strings.Contains(list, ` "/" "`+want+`"`+"\r\n") {
					t.Errorf("curl %s (LIST) lacks %q:\n%s\ncurl's trace:\n%s", base, want, list, trace)
				}
			}

			// EXAMINE of a shared folder on be1: the counts be1 itself gives.
			examine, trace := curl(base, "-X", `EXAMINE "Shared Folders/shared"`)
			be1 := dialIMAP(t, env, env.CyrusBE1, plain)
			if err := be1.Login(u.Name, u.Password).Wait(); err != nil {
				t.Fatal(err)
			}
			sel, err := be1.Select("Shared Folders/shared", &imap.SelectOptions{ReadOnly: true}).Wait()
			be1.Close()
			if err != nil {
				t.Fatalf("EXAMINE \"Shared Folders/shared\" on be1 directly as %s: %v", u.Name, err)
			}
			for _, want := range []string{fmt.Sprintf("* %d EXISTS\r\n", sel.NumMessages), fmt.Sprintf("[UIDVALIDITY %d]", sel.UIDValidity)} {
				if !strings.Contains(examine, want) {
					t.Errorf("curl -X EXAMINE \"Shared Folders/shared\" lacks %q (be1 directly):\n%s\ncurl's trace:\n%s", want, examine, trace)
				}
			}

			// FETCH by UID: the last message of the INBOX, byte for byte
			// (curl asks for BODY[], which sets \Seen: put it back after).
			inbox := inboxDirect(t, env, u)
			t.Cleanup(func() { restoreFlags(t, env, u, inbox) })
			if len(inbox) == 0 {
				t.Fatalf("the INBOX of %s is empty on %s", u.Name, u.Home)
			}
			m := inbox[len(inbox)-1]
			body, trace := curl(fmt.Sprintf("%sINBOX;UID=%d", base, m.UID))
			if want := m.FindBodySection(&imap.FetchItemBodySection{}); body != string(want) {
				t.Errorf("curl %sINBOX;UID=%d returned %q, the backend has %q; curl's trace:\n%s", base, m.UID, body, want, trace)
			}

			// APPEND with -T into a folder of this run.
			top, _ := runFolders(t, env, f, u, "Clientscurl")
			msg := newTestMessage(u.Name, runID(), "uploaded by curl")
			file := writeFile(t, filepath.Join(dir, "upload.eml"), string(msg.Body), 0o600)
			_, trace = curl(base+strings.ReplaceAll(top, "/", "%2F"), "-T", file)
			got := findDirect(t, env, u, top, msg.MessageID)
			if len(got) != 1 || !bytes.Equal(got[0].Body, msg.Body) {
				t.Errorf("after curl -T into %s, %s has %d such messages there (%q), want the file; curl's trace:\n%s", top, u.Home, len(got), got, trace)
			}
		})
	}
}

// pythonScript is the path of one of the Python clients in testdata/clients.
func pythonScript(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClientsPythonIdle: a Python imaplib client IDLEs through imapfront
// (IMAPS) in a folder of each user; a message APPENDed to that folder
// directly on the backend reaches it as EXISTS.
func TestClientsPythonIdle(t *testing.T) {
	env := itenv.Load(t)
	f, caFile := startClientFront(t, env, pythonTool)
	host, port := hostPort(t, f.tlsAddr)
	script := pythonScript(t, "idle.py")
	for _, name := range clientUsers {
		u := env.MustUser(t, name)
		t.Run(name, func(t *testing.T) {
			top, _ := runFolders(t, env, f, u, "Clientsidle")
			py := pythonTool.start(t, 2*time.Minute, t.TempDir(), script, host, port, caFile, u.Name, u.Password, top)
			idling := py.waitLine(t, "IDLING ", time.Minute)
			appendDirect(t, env, u, top, newTestMessage(u.Name, runID(), "delivered during IDLE"))
			if got, want := py.waitLine(t, "EXISTS ", time.Minute), fmt.Sprintf("EXISTS %d", 1); got != want || idling != "IDLING 0" {
				t.Fatalf("Python imaplib IDLE in %s (empty, then one message APPENDed on %s): %q then %q, want IDLING 0 then %q; its output:\n%s",
					top, u.Home, idling, got, want, py.Output())
			}
			py.waitLine(t, "DONE", time.Minute)
			py.wait(t)
		})
	}
}

// TestClientsPythonReferral: a referral-aware Python imaplib client (RLIST
// first) SELECTs a mailbox on another backend than the user's home, gets
// NO [REFERRAL imap://;AUTH=*@<backend>/<mailbox>], and the URL opens that
// mailbox on that backend directly.
func TestClientsPythonReferral(t *testing.T) {
	env := itenv.Load(t)
	f, caFile := startClientFront(t, env, pythonTool)
	host, port := hostPort(t, f.tlsAddr)
	script := pythonScript(t, "referral.py")
	for _, c := range []struct{ user, mailbox, url, backend string }{
		{"alice", "Other Users/bob/Team", "Other%20Users/bob/Team", env.CyrusBE2},
		{"bob", "Shared Folders/shared", "Shared%20Folders/shared", env.CyrusBE1},
		{"carol", "Shared Folders/shared", "Shared%20Folders/shared", env.CyrusBE1},
	} {
		u := env.MustUser(t, c.user)
		t.Run(c.user, func(t *testing.T) {
			out := pythonTool.run(t, 2*time.Minute, t.TempDir(), script, host, port, caFile, u.Name, u.Password, c.mailbox)
			direct := dialIMAP(t, env, c.backend, plain)
			if err := direct.Login(u.Name, u.Password).Wait(); err != nil {
				t.Fatal(err)
			}
			st, err := direct.Status(c.mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
			direct.Close()
			if err != nil {
				t.Fatalf("STATUS %q on %s directly as %s: %v", c.mailbox, c.backend, u.Name, err)
			}
			for _, want := range []string{
				"REFERRAL imap://;AUTH=*@" + c.backend + "/" + c.url + "\n",
				fmt.Sprintf("SELECTED %s %d\n", c.mailbox, *st.NumMessages),
			} {
				if !strings.Contains(out, want) {
					t.Errorf("Python imaplib, referral-aware, SELECT %q as %s: no line %q; its output:\n%s", c.mailbox, u.Name, strings.TrimSpace(want), out)
				}
			}
		})
	}
}

// TestClientsNeoMutt: alice runs NeoMutt in a terminal against imapfront
// (IMAPS, certificate verified): it opens her INBOX (be1), changes to a
// folder of bob's on be2 that she may write to, in the same session, and
// saves (s) its message into a folder of hers on be1, where be1 then has
// it; quitting purges the original from bob's folder on be2.
func TestClientsNeoMutt(t *testing.T) {
	env := itenv.Load(t)
	alice := env.MustUser(t, "alice")
	id := runID()

	// bob's folder on be2, writable by alice, with one message.
	admin := dialIMAP(t, env, env.CyrusBE2, plain)
	if err := admin.Login(env.CyrusAdminUser, env.CyrusAdminPass).Wait(); err != nil {
		t.Fatal(err)
	}
	drop := "user/bob/Clientsmutt" + id
	if err := admin.Create(drop, nil).Wait(); err != nil {
		t.Fatalf("CREATE %s on be2 as the Cyrus admin: %v", drop, err)
	}
	t.Cleanup(func() {
		c := dialIMAP(t, env, env.CyrusBE2, plain)
		if err := c.Login(env.CyrusAdminUser, env.CyrusAdminPass).Wait(); err == nil {
			c.Delete(drop).Wait()
		}
		c.Close()
	})
	if err := admin.SetACL(drop, "alice", imap.RightModificationReplace, imap.RightSet("lrswipkxte")).Wait(); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	other := "Other Users/bob/Clientsmutt" + id // alice's name for it
	msg := newTestMessage("alice", id, "saved with NeoMutt")
	be2 := dialIMAP(t, env, env.CyrusBE2, plain)
	if err := be2.Login(alice.Name, alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	app := be2.Append(other, int64(len(msg.Body)), nil)
	app.Write(msg.Body)
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND to %q on be2 as alice: %v", other, err)
	}
	be2.Close()

	f, caFile := startClientFront(t, env, neomuttTool, tmuxTool)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.follower.Sync(ctx); err != nil { // imapfront knows the new folder and its ACL
		t.Fatal(err)
	}
	target, _ := runFolders(t, env, f, alice, "Clientsmuttsaved")

	dir := t.TempDir()
	muttrc := writeFile(t, filepath.Join(dir, "muttrc"), fmt.Sprintf(`set folder = "imaps://%s@%s/"
set spoolfile = "+INBOX"
set imap_pass = "%s"
set ssl_ca_certificates_file = "%s"
set certificate_file = "%s/certificates"
set ssl_force_tls = yes
set header_cache = ""
set message_cachedir = ""
set record = ""
set postponed = ""
set mbox_type = Maildir
set move = no
set confirmappend = no
set delete = yes
set quit = yes
set wait_key = no
set beep = no
set sort = date
set imap_check_subscribed = no
set imap_keepalive = 60
set timeout = 60
bind editor <space> noop
`, alice.Name, f.tlsAddr, alice.Password, caFile, dir), 0o600)
	term := newTerminal(t, dir, neomuttTool.path(t), "-n", "-F", muttrc)

	// The INBOX on be1: the seeded messages.
	term.waitFor(itenv.SeedSubject("alice", 1), time.Minute)
	// c: change to bob's folder on be2 in the same session.
	term.keys("c")
	term.waitFor("Open mailbox", 30*time.Second)
	term.keys("C-u")
	term.typeText("=" + other)
	term.keys("Enter")
	term.waitFor("saved with NeoMutt", time.Minute)
	// s: save the message into alice's folder on be1.
	term.keys("s")
	term.waitFor("Save to mailbox", 30*time.Second)
	term.keys("C-u")
	term.typeText("=" + target)
	term.keys("Enter")
	var got []backendMessage
	eventually(time.Minute, func() bool { got = findDirect(t, env, alice, target, msg.MessageID); return len(got) > 0 })
	if len(got) != 1 || !bytes.Equal(got[0].Body, msg.Body) {
		t.Fatalf("NeoMutt's save to %q: be1 has %d such messages (%q), want the message; the screen:\n%s", target, len(got), got, term.screen())
	}
	term.keys("q")
	term.waitExit(time.Minute)
	be2 = dialIMAP(t, env, env.CyrusBE2, plain)
	defer be2.Close()
	if err := be2.Login(alice.Name, alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := be2.Status(other, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 0 {
		t.Fatalf("after NeoMutt saved the message and quit, %q on be2: %v, %v messages, want 0 (the original purged); the screen:\n%s", other, err, st, term.screen())
	}
}
