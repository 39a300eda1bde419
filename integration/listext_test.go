//go:build integration

package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapfront/imapfront/integration/itenv"
)

// TestListExtendedCyrus and TestListExtendedDovecot: through imapfront, a
// subscribed mailbox that was deleted comes back \NonExistent under
// LIST (SUBSCRIBED), and LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" gives an
// existing parent of a subscribed child CHILDINFO ("SUBSCRIBED") without
// calling it \Noselect or \NonExistent (RFC 5258 sections 3.1 and 3.5).
func TestListExtendedCyrus(t *testing.T) {
	env := itenv.Load(t)
	listExtended(t, env, "alice", env.CyrusBE1, plain)
}

func TestListExtendedDovecot(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	listExtended(t, env, "carol", env.Dovecot, startTLS)
}

func listExtended(t *testing.T, env itenv.Env, user, home string, tr transport) {
	f := startFront(t, env, feOptions{})
	u := env.MustUser(t, user)
	rc := rawDial(t, f.addr)
	rc.ExchangeOK("x1", "LOGIN "+user+" "+u.Password)
	base := fmt.Sprintf("ListExt%d", time.Now().UnixNano())
	parent, kid, gone := base, base+"/Kid", base+"Gone"
	rc.ExchangeOK("x2", "CREATE "+parent)
	rc.ExchangeOK("x3", "CREATE "+kid)
	rc.ExchangeOK("x4", "CREATE "+gone)
	t.Cleanup(func() {
		for _, mb := range []string{kid, gone} {
			rc.Exchange("z1", "UNSUBSCRIBE "+mb)
		}
		rc.Exchange("z2", "DELETE "+kid)
		rc.Exchange("z3", "DELETE "+parent)
		rc.Exchange("z4", "DELETE "+gone)
	})
	rc.ExchangeOK("x5", "SUBSCRIBE "+kid)
	rc.ExchangeOK("x6", "SUBSCRIBE "+gone)
	rc.ExchangeOK("x7", "DELETE "+gone)
	if direct := directSubscribed(t, env, user, u.Password, home, tr, base); !direct[gone] {
		// The backend dropped the subscription with the mailbox; keep it
		// as a client whose subscription outlived the mailbox would.
		t.Logf("%s unsubscribed %s on DELETE; subscribing to the deleted name", home, gone)
		rc.ExchangeOK("x8", "SUBSCRIBE "+gone)
	}

	subs := rc.ExchangeOK("x9", `LIST (SUBSCRIBED) "" "*"`)
	line := findListLine(subs, gone)
	if line == "" || !strings.Contains(line, `\NonExistent`) || !strings.Contains(line, `\Subscribed`) {
		t.Errorf(`LIST (SUBSCRIBED) "" "*": %s should be \NonExistent \Subscribed: %q`, gone, subs)
	}
	if line := findListLine(subs, kid); line == "" || strings.Contains(line, `\NonExistent`) {
		t.Errorf(`LIST (SUBSCRIBED) "" "*": %s should be listed as existing: %q`, kid, subs)
	}
	if findListLine(subs, parent) != "" {
		t.Errorf(`LIST (SUBSCRIBED) "" "*" lists the unsubscribed %s: %q`, parent, subs)
	}

	rec := rc.ExchangeOK("x10", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)
	line = findListLine(rec, parent)
	if !strings.HasSuffix(line, `("CHILDINFO" ("SUBSCRIBED"))`) {
		t.Errorf(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%%": %s should carry CHILDINFO ("SUBSCRIBED"): %q`, parent, rec)
	}
	if strings.Contains(line, `\Noselect`) || strings.Contains(line, `\NonExistent`) || strings.Contains(line, `\Subscribed`) {
		t.Errorf(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%%": the existing, unsubscribed %s: %q`, parent, line)
	}
	if findListLine(rec, kid) != "" {
		t.Errorf(`"%%" must not reach %s: %q`, kid, rec)
	}

	// What the backend answers itself, for the record.
	direct := dialIMAP(t, env, home, tr)
	if err := direct.Login(user, u.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	dl, err := direct.List("", "%", &imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true}).Collect()
	if err != nil {
		t.Logf("%s LIST (SUBSCRIBED RECURSIVEMATCH): %v", home, err)
	}
	for _, d := range dl {
		if strings.HasPrefix(d.Mailbox, base) {
			t.Logf("%s itself: %s %v childinfo %+v", home, d.Mailbox, d.Attrs, d.ChildInfo)
		}
	}
	rc.ExchangeOK("x11", "UNSUBSCRIBE "+gone)
	if l := findListLine(rc.ExchangeOK("x12", `LIST (SUBSCRIBED) "" "*"`), gone); l != "" {
		t.Errorf("after UNSUBSCRIBE: %q", l)
	}
}

// findListLine returns the LIST response for the client name, or "".
func findListLine(lines []string, name string) string {
	for _, l := range lines {
		if !strings.HasPrefix(l, "* LIST ") {
			continue
		}
		rest := l
		if i := strings.LastIndex(rest, ` ("CHILDINFO"`); i >= 0 {
			rest = rest[:i]
		}
		if strings.HasSuffix(rest, ` `+name) || strings.HasSuffix(rest, ` "`+name+`"`) {
			return l
		}
	}
	return ""
}

// directSubscribed returns the subscribed names under prefix that the
// backend lists itself (LIST (SUBSCRIBED), translated to "/").
func directSubscribed(t *testing.T, env itenv.Env, user, pass, addr string, tr transport, prefix string) map[string]bool {
	t.Helper()
	c := dialIMAP(t, env, addr, tr)
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	l, err := c.List("", prefix+"*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range l {
		name := d.Mailbox
		if d.Delim != 0 && d.Delim != '/' {
			name = strings.ReplaceAll(name, string(d.Delim), "/")
		}
		if slices.Contains(d.Attrs, imap.MailboxAttrSubscribed) {
			out[name] = true
		}
	}
	return out
}
