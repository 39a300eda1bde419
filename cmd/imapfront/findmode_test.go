package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/imapfront/imapfront/mupdatec"
)

// TestDaemonFindMode: with [mupdate] mode = "find" the daemon keeps no
// replica and looks each name up in the master; a mailbox the master
// learns of is reachable at once; /readyz follows the master's
// reachability and the metrics show the mode.
func TestDaemonFindMode(t *testing.T) {
	lab := newOpsLab(t)
	cfg := lab.config(t, "", lab.a, lab.b)
	cfg.MUPDATE.Mode = "find"
	d := startDaemon(t, cfg)

	c, _ := dialFrom(t, "127.0.0.1", d.addr, "PROXY TCP4 192.0.2.9 127.0.0.1 5000 143\r\n")
	if l := c.do("a", "LOGIN alice alicepw"); !strings.HasPrefix(l, "a OK") {
		t.Fatal(l)
	}
	if l := c.do("b", "SELECT Elsewhere"); !strings.HasPrefix(l, "b OK") {
		t.Fatalf("FIND-mode SELECT of a mailbox on the second backend: %s", l)
	}
	if err := lab.b.Create("alice", "Later"); err != nil {
		t.Fatal(err)
	}
	lab.master.Set(mupdatec.Entry{Name: "user.alice.Later", Location: lab.b.Addr() + "!default", ACL: "alice\tlrswipkxtean\t"})
	if l := c.do("c", "SELECT Later"); !strings.HasPrefix(l, "c OK") {
		t.Fatalf("FIND-mode SELECT of a mailbox the master just got: %s", l)
	}
	m := scrapeMetrics(t, d.metrics)
	for _, want := range []string{`imapfront_mupdate_mode{mode="find"} 1`, `imapfront_find_cache_entries `} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "imapfront_replica_mailboxes") {
		t.Error("FIND mode reports a replica")
	}
	ready := func() int {
		resp, err := http.Get("http://" + d.metrics + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := ready(); s != http.StatusOK {
		t.Fatalf("/readyz with the master up: %d", s)
	}
	lab.master.RefuseLogins(true)
	if s := ready(); s != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the master refusing logins: %d, want 503", s)
	}
}
