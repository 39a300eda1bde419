//go:build integration

package integration

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapfront/imapfront/integration/itenv"
)

// Tests of how imapfront reads client commands (the imapwire codec)
// against the real backends: literal mailbox names everywhere, no command
// smuggled past the front end, MULTIAPPEND kept atomic, and an APPEND cut
// by the client stores nothing.

// codecUser is a user of each kind of backend: alice on Cyrus be1, carol
// on Dovecot (front mode).
type codecUser struct {
	name, pass string
	// direct logs in to the user's backend without imapfront.
	direct func(t *testing.T) *imapclient.Client
}

func codecUsers(t *testing.T, env itenv.Env) []codecUser {
	alice, carol := env.MustUser(t, "alice"), env.MustUser(t, "carol")
	login := func(u itenv.User) func(t *testing.T) *imapclient.Client {
		return func(t *testing.T) *imapclient.Client {
			b, _ := env.Backend(u.Home)
			c := dialIMAP(t, env, u.Home, transportFor(b))
			if err := c.Login(u.Name, u.Password).Wait(); err != nil {
				t.Fatalf("LOGIN %s on %s directly: %v", u.Name, u.Home, err)
			}
			return c
		}
	}
	return []codecUser{
		{alice.Name, alice.Password, login(alice)},
		{carol.Name, carol.Password, login(carol)},
	}
}

// sendLiteral sends line, which ends in a synchronising literal {n},
// waits for the continuation and sends rest (the literal's data and the
// rest of the command).
func (c *rawClient) sendLiteral(line, rest string) {
	c.T.Helper()
	fmt.Fprintf(c.Conn, "%s\r\n", line)
	l, err := c.R.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "+") {
		c.T.Fatalf("%s: got %q (%v), want a continuation", line, l, err)
	}
	io.WriteString(c.Conn, rest)
}

func lit(s string) string { return "{" + strconv.Itoa(len(s)) + "}" }

func TestCodecLiteralMailboxNames(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	for _, u := range codecUsers(t, env) {
		t.Run(u.name, func(t *testing.T) {
			box := fmt.Sprintf("Lit%d", time.Now().UnixNano())
			moved := box + "Moved"
			c := rawDial(t, f.addr)
			c.ExchangeOK("l", "LOGIN "+u.name+" "+u.pass)
			steps := []struct{ tag, before, name, after string }{
				{"c1", "CREATE ", box, ""},
				{"c2", "STATUS ", box, " (MESSAGES)"},
				{"c3", "SUBSCRIBE ", box, ""},
				{"c4", "UNSUBSCRIBE ", box, ""},
				{"c5", "SELECT ", "INBOX", ""},
				{"c6", "COPY 1 ", box, ""},
				{"c7", "UNSELECT", "", ""},
				{"c8", "RENAME ", box, " " + moved},
				{"c9", "EXAMINE ", moved, ""},
			}
			for _, s := range steps {
				if s.name == "" {
					c.ExchangeOK(s.tag, s.before)
					continue
				}
				c.sendLiteral(s.tag+" "+s.before+lit(s.name), s.name+s.after+"\r\n")
				if l := last(c.Lines(s.tag)); !strings.HasPrefix(l, s.tag+" OK") {
					t.Fatalf("%s %s%s %s%s: %q", s.tag, s.before, lit(s.name), s.name, s.after, l)
				}
			}
			c.ExchangeOK("u", "UNSELECT")
			msg := "Subject: literal name\r\n\r\nhello\r\n"
			c.sendLiteral("a1 APPEND "+lit(moved), moved+" "+lit(msg)+"\r\n")
			l, _ := c.R.ReadString('\n')
			if !strings.HasPrefix(l, "+") {
				t.Fatalf("APPEND: %q", l)
			}
			io.WriteString(c.Conn, msg+"\r\n")
			if l := last(c.Lines("a1")); !strings.HasPrefix(l, "a1 OK") {
				t.Fatalf("APPEND with a literal mailbox name: %q", l)
			}
			d := u.direct(t)
			st, err := d.Status(moved, &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || st.NumMessages == nil || *st.NumMessages != 2 {
				t.Fatalf("on the backend, %s: %+v %v (want the copied and the appended message)", moved, st, err)
			}
			c.sendLiteral("d1 DELETE "+lit(moved), moved+"\r\n")
			if l := last(c.Lines("d1")); !strings.HasPrefix(l, "d1 OK") {
				t.Fatalf("DELETE with a literal name: %q", l)
			}
		})
	}
}

// The measured attack: a quoted "{20}" followed by a command. A client
// that waits for "+" gets BAD and sends nothing; one that sends the bytes
// anyway, with "{20+}", has them discarded. Nothing is created on either
// backend.
func TestCodecSmugglingCreatesNothing(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	for _, u := range codecUsers(t, env) {
		t.Run(u.name, func(t *testing.T) {
			name := fmt.Sprintf("Smuggled%d", time.Now().UnixNano()%1e9)
			c := rawDial(t, f.addr)
			c.ExchangeOK("l", "LOGIN "+u.name+" "+u.pass)
			smuggled := "s1 CREATE " + name + "\r\n"
			fmt.Fprintf(c.Conn, "a SELECT INBOX \"{%d}\r\n", len(smuggled))
			if l, _ := c.R.ReadString('\n'); !strings.HasPrefix(l, "a BAD") {
				t.Fatalf(`a SELECT INBOX "{%d}: got %q, want a tagged BAD (and no "+")`, len(smuggled), l)
			}
			fmt.Fprintf(c.Conn, "b SELECT INBOX \"{%d+}\r\n%s\r\n", len(smuggled), smuggled)
			if l, _ := c.R.ReadString('\n'); !strings.HasPrefix(l, "b BAD") {
				t.Fatalf("got %q", l)
			}
			c.ExchangeOK("n", "NOOP")
			d := u.direct(t)
			boxes, err := d.List("", name+"*", nil).Collect()
			if err != nil {
				t.Fatal(err)
			}
			if len(boxes) != 0 {
				t.Fatalf("the backend has %v: a command was smuggled past imapfront", boxes)
			}
		})
	}
}

// MULTIAPPEND (RFC 3502) of three messages lands as one command; cut by
// the client after the second message, it stores none of them.
func TestCodecMultiappendAtomic(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	for _, u := range codecUsers(t, env) {
		t.Run(u.name, func(t *testing.T) {
			box := fmt.Sprintf("Multi%d", time.Now().UnixNano())
			c := rawDial(t, f.addr)
			c.ExchangeOK("l", "LOGIN "+u.name+" "+u.pass)
			c.ExchangeOK("c", "CREATE "+box)
			t.Cleanup(func() { c.Exchange("z", "DELETE "+box) })
			msgs := make([]string, 3)
			for i := range msgs {
				msgs[i] = fmt.Sprintf("Subject: multi %d\r\n\r\nmessage %d\r\n", i, i)
			}
			// Three messages, LITERAL+ toward imapfront.
			cmd := "a APPEND " + box
			for _, m := range msgs {
				cmd += fmt.Sprintf(" (\\Seen) {%d+}\r\n%s", len(m), m)
			}
			io.WriteString(c.Conn, cmd+"\r\n")
			if l := last(c.Lines("a")); !strings.HasPrefix(l, "a OK") {
				t.Fatalf("MULTIAPPEND: %q", l)
			}
			d := u.direct(t)
			st, err := d.Status(box, &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || *st.NumMessages != 3 {
				t.Fatalf("on the backend: %v messages, %v (want 3)", st, err)
			}
			// Cut after two messages: the client goes away mid-command.
			cut := rawDial(t, f.addr)
			cut.ExchangeOK("l", "LOGIN "+u.name+" "+u.pass)
			partial := "b APPEND " + box
			for _, m := range msgs[:2] {
				partial += fmt.Sprintf(" {%d+}\r\n%s", len(m), m)
			}
			io.WriteString(cut.Conn, partial)
			cutAndWait(t, cut)
			st, err = d.Status(box, &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || *st.NumMessages != 3 {
				t.Fatalf("after a cut MULTIAPPEND the backend has %v messages (%v), want the 3 from before", st, err)
			}
		})
	}
}

// A client that disappears in the middle of an APPEND literal: imapfront
// closes that backend connection (no LOGOUT into the open literal), so the
// backend stores nothing.
func TestCodecCutAppendStoresNothing(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	for _, u := range codecUsers(t, env) {
		t.Run(u.name, func(t *testing.T) {
			subject := fmt.Sprintf("cut-append-%d", time.Now().UnixNano())
			msg := "Subject: " + subject + "\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n"
			c := rawDial(t, f.addr)
			c.ExchangeOK("l", "LOGIN "+u.name+" "+u.pass)
			c.ExchangeOK("s", "SELECT INBOX")
			c.sendLiteral("a APPEND INBOX "+lit(msg), msg[:len(msg)/2])
			cutAndWait(t, c)
			d := u.direct(t)
			if _, err := d.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			found, err := d.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if n := len(found.AllSeqNums()); n != 0 {
				t.Fatalf("the backend stored %d message(s) of an APPEND the client cut", n)
			}
		})
	}
}

// cutAndWait ends the client's side mid-command (a FIN, as a client that
// crashed) and waits for imapfront to close the session, which it does
// only after closing the backend connection that held the partial
// command.
func cutAndWait(t *testing.T, c *rawClient) {
	t.Helper()
	c.Conn.(*net.TCPConn).CloseWrite()
	c.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c.R); err != nil {
		t.Fatalf("imapfront did not end the session: %v", err)
	}
}
