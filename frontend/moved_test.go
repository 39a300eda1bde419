package frontend

import (
	"strings"
	"testing"
	"time"
)

// A session whose selected mailbox moves to another backend is told with
// BYE [UNAVAILABLE] at its next command; while the move only freezes the
// mailbox it goes on; a new session's SELECT reaches the new backend.
func TestSelectedMailboxMoved(t *testing.T) {
	f := newFixture(t, nil)
	must(t, f.b.Append("alice", "INBOX", []byte(msg1), nil, time.Now()))
	must(t, f.b.Append("alice", "INBOX", []byte(msg1), nil, time.Now()))
	c := f.dial(t)
	c.OK("a1", "LOGIN alice alicepw")
	if u := c.OK("a2", "SELECT INBOX"); !hasLine(u, "* 1 EXISTS") {
		t.Fatalf("SELECT on be-a: %q", u)
	}
	// Frozen (DEACTIVATE: a reservation at the same place): still served.
	f.replica.Put("user.alice", true, "be-a!default", "")
	c.OK("a3", "NOOP")
	c.OK("a4", "FETCH 1 (FLAGS)")
	// Switched to be-b.
	f.replica.Put("user.alice", false, "be-b!default", "alice\tlrswipkxtean\t")
	c.Send("a5 FETCH 1 (FLAGS)")
	if l := c.Line(); !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
		t.Fatalf("after the switch: %q, want BYE [UNAVAILABLE]", l)
	}
	c2 := f.dial(t)
	c2.OK("b1", "LOGIN alice alicepw")
	if u := c2.OK("b2", "SELECT INBOX"); !hasLine(u, "* 2 EXISTS") {
		t.Fatalf("SELECT after the move did not reach be-b: %q", u)
	}
	// Another mailbox that stayed put is not affected.
	c2.OK("b3", "SELECT Sent")
	f.replica.Put("user.alice", false, "be-a!default", "alice\tlrswipkxtean\t")
	c2.OK("b4", "NOOP")
}
