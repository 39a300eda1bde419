package frontend

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Transcript tests of how the session reads commands (RFC 9051 section 2.2
// and the grammar of section 9): by the grammar, with the command
// boundaries the backend sees exactly the ones the front end parsed.

// A quoted "{20}" is a string, not a literal: the client gets BAD and no
// continuation, so a client waiting for "+" sends nothing more, and the
// backend never sees a command the front end did not parse.
func TestQuotedBraceIsNotALiteral(t *testing.T) {
	f, rb, dl := recordingFixture(t, true, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	c.Send(`a SELECT INBOX "{20}`)
	if l := c.Line(); !strings.HasPrefix(l, "a BAD") {
		t.Fatalf(`a SELECT INBOX "{20}: got %q, want a tagged BAD and no "+"`, l)
	}
	c.OK("n", "NOOP")
	// An attacker who sends the 20 bytes anyway is only sending its own
	// next command, which the front end parses and handles itself.
	input := "b SELECT INBOX \"{20}\r\ns1 CREATE Smuggled\r\n\r\n"
	io.WriteString(c.Conn, input)
	if l := c.Line(); !strings.HasPrefix(l, "b BAD") {
		t.Fatalf("got %q", l)
	}
	if _, done := c.Until("s1"); !strings.HasPrefix(done, "s1 ") {
		t.Fatalf("s1: %q", done)
	}
	if l := c.Line(); l != "* BAD Empty command line" {
		t.Fatalf("empty line: %q", l)
	}
	c.OK("z", "LOGOUT")
	checkOnlyParsedCommands(t, []byte(input), rb, dl)
	for _, cmd := range rb.Commands() {
		if cmd.tag == "a" || cmd.tag == "b" {
			t.Fatalf("the backend received the malformed command %q", cmd)
		}
	}
}

// RFC 9051: a mailbox is an astring, so a literal is a mailbox name
// wherever one is allowed.
func TestLiteralMailboxNames(t *testing.T) {
	f, rb, _ := recordingFixture(t, false, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	lit := func(tag, before, name, after string) string {
		t.Helper()
		c.Send(tag + " " + before + "{" + strconv.Itoa(len(name)) + "}")
		if l := c.Line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("%s %s{%d}: got %q, want a continuation", tag, before, len(name), l)
		}
		c.Send(name + after)
		_, done := c.Until(tag)
		return done
	}
	for _, tc := range []struct{ tag, before, name, after, want string }{
		{"1", "STATUS ", "Rec", " (MESSAGES)", "1 OK"},
		{"2", "SUBSCRIBE ", "Rec", "", "2 OK"},
		{"3", "UNSUBSCRIBE ", "Rec", "", "3 OK"},
		{"4", "CREATE ", "Rec/New", "", "4 OK"},
		{"5", "GETACL ", "Rec", "", "5 OK"},
		{"6", "SELECT ", "Rec", "", "6 OK"},
		{"7", "COPY 1 ", "Other", "", "7 OK"},
		{"8", "RENAME ", "Other", " Other2", "8 OK"},
		{"9", "DELETE ", "Rec", "", "9 OK"},
		{"10", "STATUS ", "Nosuch", " (MESSAGES)", "10 NO [NONEXISTENT]"},
	} {
		if done := lit(tc.tag, tc.before, tc.name, tc.after); !strings.HasPrefix(done, tc.want) {
			t.Fatalf("%s %s{%d} %s%s: got %q, want %q", tc.tag, tc.before, len(tc.name), tc.name, tc.after, done, tc.want)
		}
	}
	// APPEND with the mailbox and the message both as literals.
	c.Send("11 APPEND {3}")
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("APPEND {3}: got %q", l)
	}
	c.Send("Rec {5}")
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("APPEND {3} Rec {5}: got %q", l)
	}
	c.Send("hello")
	if _, done := c.Until("11"); !strings.HasPrefix(done, "11 OK") {
		t.Fatalf("APPEND with a literal mailbox name: %q", done)
	}
	got := map[string]bool{}
	for _, cmd := range rb.Commands() {
		got[cmd.tag+" "+cmd.name] = true
	}
	for _, want := range []string{"11 APPEND", "1 STATUS", "2 SUBSCRIBE", "3 UNSUBSCRIBE", "4 CREATE", "5 GETACL", "6 SELECT", "7 COPY", "8 RENAME", "9 DELETE"} {
		if !got[want] {
			t.Errorf("the backend never got %q (got %v)", want, rb.Commands())
		}
	}
}

// "~" is an ATOM-CHAR unless it starts a literal8 "~{".
func TestTildeIsAnAtomChar(t *testing.T) {
	f, _, _ := recordingFixture(t, true, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	c.OK("a", `LIST "" ~foo`)
	c.Expect("b", "SELECT ~foo", "NO [NONEXISTENT]")
}

// A line over the limit gets a tagged BAD [TOOBIG], and a non-synchronising
// literal announced at its end is discarded, never read as commands.
func TestOverlongLineTaggedAndLiteralDiscarded(t *testing.T) {
	f, rb, dl := recordingFixture(t, true, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	input := "b LOGIN " + strings.Repeat("x", 70000) + " {22+}\r\nb CREATE FromLiteral\r\n\r\n"
	io.WriteString(c.Conn, input)
	if l := c.Line(); !strings.HasPrefix(l, "b BAD [TOOBIG]") {
		t.Fatalf("overlong line: %q", l)
	}
	c.OK("n", "NOOP")
	for _, cmd := range rb.Commands() {
		if cmd.name == "CREATE" {
			t.Fatalf("the literal of an overlong line was run as a command")
		}
	}
	checkOnlyParsedCommands(t, []byte(input), rb, dl)
}

// APPENDLIMIT (RFC 7889): an APPEND over it gets NO [TOOBIG] without "+",
// and the session stays usable, in the selected state too.
func TestAppendOverLimitKeepsSession(t *testing.T) {
	f, _, _ := recordingFixture(t, true, func(o *Options) { o.AppendLimit = 1000 })
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	c.OK("s", "SELECT Rec")
	c.Send("a APPEND Rec {5000}")
	if l := c.Line(); !strings.HasPrefix(l, "a NO [TOOBIG]") {
		t.Fatalf("got %q", l)
	}
	// A non-synchronising one is sent anyway: read and thrown away (up to
	// twice the limit; beyond that the session ends with BYE).
	io.WriteString(c.Conn, "b APPEND Rec {1500+}\r\n"+strings.Repeat("y", 1500)+"\r\n")
	if l := c.Line(); !strings.HasPrefix(l, "b NO [TOOBIG]") {
		t.Fatalf("got %q", l)
	}
	c.OK("f", "FETCH 1 (FLAGS)")
	c.OK("t", "APPEND Other {5+}\r\nhello")
}

// MULTIAPPEND (RFC 3502): several messages in one command reach the
// backend as one APPEND, each literal announced to the backend (which has
// no LITERAL+ here) before the client is told to send it.
func TestMultiappendIsOneCommand(t *testing.T) {
	f, rb, _ := recordingFixture(t, false, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	if u := c.OK("c", "CAPABILITY"); !strings.Contains(u[0], " MULTIAPPEND") || !strings.Contains(u[0], " CATENATE") {
		t.Fatalf("capabilities: %q", u)
	}
	continueWith := func(s string) {
		t.Helper()
		if l := c.Line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("got %q, want a continuation", l)
		}
		c.Send(s)
	}
	c.Send(`A003 APPEND Rec (\Seen) {5}`)
	continueWith(`hello (\Answered) "05-Jan-2026 20:55:23 +0000" {5}`)
	continueWith("world")
	if _, done := c.Until("A003"); !strings.HasPrefix(done, "A003 OK") {
		t.Fatalf("MULTIAPPEND: %q", done)
	}
	if m := rb.Messages(); len(m) != 2 || string(m[0]) != "hello" || string(m[1]) != "world" {
		t.Fatalf("the backend stored %q", m)
	}
	appends := 0
	for _, cmd := range rb.Commands() {
		if cmd.name == "APPEND" {
			appends++
		}
	}
	if appends != 1 {
		t.Fatalf("the backend got %d APPEND commands, want 1", appends)
	}
}

// CATENATE (RFC 4469): URL and TEXT parts are relayed as one APPEND; a URL
// naming a mailbox on another backend gets NO [BADURL].
func TestCatenate(t *testing.T) {
	f, rb, _ := recordingFixture(t, true, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	c.Send(`A004 APPEND Rec CATENATE (URL "/Other;UIDVALIDITY=1/;UID=1" TEXT {5}`)
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("got %q", l)
	}
	c.Send("again)")
	if _, done := c.Until("A004"); !strings.HasPrefix(done, "A004 OK") {
		t.Fatalf("CATENATE: %q", done)
	}
	m := rb.Messages()
	if len(m) != 1 || string(m[0]) != "</Other;UIDVALIDITY=1/;UID=1>again" {
		t.Fatalf("the backend got %q", m)
	}
	c.Expect("A005", `APPEND Rec CATENATE (URL "/Away;UIDVALIDITY=1/;UID=1")`, "NO [BADURL")
	c.OK("A006", "NOOP")
}

// A client that disappears in the middle of an APPEND literal makes the
// front end close that backend connection: nothing more is written into
// the open literal (no LOGOUT), so the backend stores nothing.
func TestCutAppendStoresNothing(t *testing.T) {
	f, rb, _ := recordingFixture(t, false, nil)
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	c.OK("s", "SELECT Rec")
	c.Send("a APPEND Rec {100}")
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("got %q", l)
	}
	io.WriteString(c.Conn, strings.Repeat("z", 50))
	c.Conn.(*net.TCPConn).CloseWrite()
	c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.R); err != nil {
		t.Fatalf("the session did not end: %v", err)
	}
	select {
	case <-rb.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend connection was not closed")
	}
	if m := rb.Messages(); len(m) != 0 {
		t.Fatalf("the backend stored %q", m)
	}
	p := rb.Partial()
	if len(p) != 1 || len(p[0]) > 50 || len(bytes.Trim(p[0], "z")) != 0 {
		t.Fatalf("the backend's open literal got %q, want at most the client's 50 bytes and nothing else", p)
	}
}

// One SASL loop: "=" is an empty initial response (RFC 4959), for LOGIN
// the user name, so the next challenge is the password's.
func TestAuthenticateEmptyInitialResponse(t *testing.T) {
	f, _, _ := recordingFixture(t, true, nil)
	c := f.dial(t)
	c.Send("a AUTHENTICATE LOGIN =")
	if l := c.Line(); l != "+ UGFzc3dvcmQ6" {
		t.Fatalf("got %q, want the Password: challenge", l)
	}
	c.Send("*")
	if l := c.Line(); !strings.HasPrefix(l, "a BAD") {
		t.Fatalf("cancel: %q", l)
	}
	// A response over the limit is BAD [TOOBIG], not an internal error.
	c.Send("b AUTHENTICATE PLAIN")
	if l := c.Line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("got %q", l)
	}
	c.Send(strings.Repeat("A", 70000))
	if l := c.Line(); !strings.HasPrefix(l, "b BAD [TOOBIG]") {
		t.Fatalf("long response: %q", l)
	}
	c.OK("c", "LOGIN alice alicepw")
}

// Every wait on a backend is bounded: one that never sends "+" for a
// literal's announcement fails the command with NO [UNAVAILABLE] after the
// backend timeout (the client, waiting for its own "+", sent nothing), and
// the session goes on.
func TestBackendContinuationWaitIsBounded(t *testing.T) {
	f, rb, _ := recordingFixture(t, false, func(o *Options) { o.BackendTimeout = 300 * time.Millisecond })
	c := f.dial(t)
	c.OK("l", "LOGIN alice alicepw")
	rb.stallLiterals.Store(true)
	c.Send("a APPEND Rec {5}")
	if l := c.Line(); !strings.HasPrefix(l, "a NO [UNAVAILABLE]") {
		t.Fatalf("APPEND to a backend that never answers the literal: %q", l)
	}
	rb.stallLiterals.Store(false)
	c.OK("b", "APPEND Rec {5+}\r\nhello")
}
