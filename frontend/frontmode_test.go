package frontend

import (
	"context"
	"strings"
	"testing"
)

// refusingDB is a MailboxDB that fails the test when written: the
// command was to be refused before MUPDATE.
type refusingDB struct{ t *testing.T }

func (d refusingDB) Reserve(context.Context, string, string) error {
	d.t.Error("MUPDATE RESERVE")
	return nil
}
func (d refusingDB) Activate(context.Context, string, string, string) error {
	d.t.Error("MUPDATE ACTIVATE")
	return nil
}
func (d refusingDB) Delete(context.Context, string) error { d.t.Error("MUPDATE DELETE"); return nil }
func (d refusingDB) DeleteReservation(context.Context, string, string) error {
	d.t.Error("MUPDATE DELETE of a reservation")
	return nil
}

// On a front-mode backend imapfront checks the rights itself: bob may
// read alice's Shared (lrs) but not rename it (x), and nothing reaches
// MUPDATE.
func TestFrontRenameNeedsDeleteRight(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MailboxDB = refusingDB{t}
		for _, b := range o.Backends {
			b.FrontMode = true
		}
	})
	f.replica.Put("user.alice.Shared", false, "be-a!default", "alice\tlrswipkxtean\tbob\tlrs\t")
	c := f.dial(t)
	c.Do("a", "LOGIN bob bobpw")
	_, st := c.Do("b", `RENAME "Other Users/alice/Shared" "Other Users/alice/Mine"`)
	if !strings.HasPrefix(st, "b NO [NOPERM]") {
		t.Fatalf("RENAME without x: %q, want b NO [NOPERM]", st)
	}
}
