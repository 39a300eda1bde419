package demo

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func start(t *testing.T) *Murder {
	t.Helper()
	m, err := Start(Options{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func login(t *testing.T, m *Murder, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(m.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func listNames(t *testing.T, c *imapclient.Client) []string {
	t.Helper()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A stock IMAP client logs in through the front end, lists the aggregated
// namespace and reads mail from each user's backend.
func TestDemoWithStockClient(t *testing.T) {
	m := start(t)
	alice := login(t, m, "alice", "alicepw")
	names := listNames(t, alice)
	for _, want := range []string{"INBOX", "Sent", "Projects", "Projects/Murder"} {
		if !contains(names, want) {
			t.Errorf("alice's LIST lacks %q: %q", want, names)
		}
	}
	sel, err := alice.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 2 {
		t.Fatalf("SELECT INBOX: %v, %+v", err, sel)
	}
	msgs, err := alice.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "Your mailbox lives on backend 1" {
		t.Fatalf("FETCH: %v %+v", err, msgs)
	}

	bob := login(t, m, "bob", "bobpw")
	names = listNames(t, bob)
	if !contains(names, "Other Users/alice/Projects") || contains(names, "Other Users/alice/Sent") {
		t.Errorf("bob's LIST must show alice's shared Projects and nothing else of hers: %q", names)
	}
	sel, err = bob.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 2 {
		t.Fatalf("bob SELECT INBOX: %v, %+v", err, sel)
	}
	c, err := imapclient.DialInsecure(m.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "bobpw").Wait(); err == nil {
		t.Fatal("login with another user's password succeeded")
	}
}

// CREATE, RENAME and DELETE through the front end keep the MUPDATE
// master true, and the client sees each change at once.
func TestDemoCreateRenameDelete(t *testing.T) {
	m := start(t)
	alice := login(t, m, "alice", "alicepw")
	if err := alice.Create("Projects/New", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	e, ok := m.Master.Lookup("user.alice.Projects.New")
	if !ok || e.Reserved || e.Location != m.BE1+"!default" || !strings.Contains(e.ACL, "bob\tlrs\t") {
		t.Fatalf("master entry after CREATE: %+v %v (want active on %s, ACL inherited from Projects)", e, ok, m.BE1)
	}
	if !contains(listNames(t, alice), "Projects/New") {
		t.Fatal("LIST right after CREATE lacks the new mailbox")
	}
	if err := alice.Create("Projects/New", nil).Wait(); err == nil {
		t.Fatal("second CREATE of the same name succeeded")
	}
	if err := alice.Rename("Projects/New", "Projects/Renamed", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	if _, ok := m.Master.Lookup("user.alice.Projects.New"); ok {
		t.Fatal("old name still in the master after RENAME")
	}
	if e, ok := m.Master.Lookup("user.alice.Projects.Renamed"); !ok || e.Reserved {
		t.Fatalf("new name after RENAME: %+v %v", e, ok)
	}
	if _, err := alice.Select("Projects/Renamed", nil).Wait(); err != nil {
		t.Fatalf("SELECT renamed: %v", err)
	}
	if err := alice.Delete("Projects/Renamed").Wait(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if _, ok := m.Master.Lookup("user.alice.Projects.Renamed"); ok {
		t.Fatal("entry still in the master after DELETE")
	}
	if contains(listNames(t, alice), "Projects/Renamed") {
		t.Fatal("LIST right after DELETE still shows the mailbox")
	}
}

// A CREATE the backend refuses leaves no reservation behind.
func TestDemoRefusedCreateLeavesNoReservation(t *testing.T) {
	m := start(t)
	// The folder exists on the backend but not in MUPDATE: the backend
	// refuses the CREATE.
	if err := m.Backends[m.BE1].AddUser("alice", "alicepw", "Sent", "Projects", "Projects/Murder", "Stray"); err != nil {
		t.Fatal(err)
	}
	alice := login(t, m, "alice", "alicepw")
	if err := alice.Create("Stray", nil).Wait(); err == nil {
		t.Fatal("CREATE of a name the backend has succeeded")
	}
	if e, ok := m.Master.Lookup("user.alice.Stray"); ok {
		t.Fatalf("reservation left behind: %+v", e)
	}
}

// Two sessions creating the same name at once: exactly one wins.
func TestDemoConcurrentCreate(t *testing.T) {
	m := start(t)
	const n = 4
	clients := make([]*imapclient.Client, n)
	for i := range clients {
		clients[i] = login(t, m, "alice", "alicepw")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Create("Race", nil).Wait()
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d CREATEs succeeded, want exactly 1: %v", wins, errs)
	}
	if e, ok := m.Master.Lookup("user.alice.Race"); !ok || e.Reserved {
		t.Fatalf("master entry: %+v %v", e, ok)
	}
}

// A new user (no mailbox in MUPDATE yet) gets the configured default
// backend for a first mailbox.
func TestDemoNewUserPlacement(t *testing.T) {
	m := start(t)
	if err := m.Backends[m.BE1].AddUser("carol", "carolpw"); err != nil {
		t.Fatal(err)
	}
	carol := login(t, m, "carol", "carolpw")
	if err := carol.Create("Notes", nil).Wait(); err != nil {
		t.Fatalf("CREATE for a new user: %v", err)
	}
	e, ok := m.Master.Lookup("user.carol.Notes")
	if !ok || e.Location != m.BE1+"!default" || e.ACL != "carol\tlrswipkxtean\t" {
		t.Fatalf("master entry: %+v %v (want on the default backend %s, owned by carol)", e, ok, m.BE1)
	}
}

// The demo serves metrics that follow its sessions.
func TestDemoMetrics(t *testing.T) {
	m, err := Start(Options{Seed: true, MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := login(t, m, "alice", "alicepw")
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + m.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`imapfront_authentications_total{mechanism="LOGIN",result="ok"} 1`,
		`imapfront_replica_mailboxes 7`,
		`imapfront_mupdate_state{state="streaming"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("demo metrics lack %s", want)
		}
	}
}

// With the MUPDATE master gone, sessions go on with the last replica.
func TestDemoMasterDownKeepsServing(t *testing.T) {
	m := start(t)
	m.Master.RefuseLogins(true)
	m.Master.DropAll()
	alice := login(t, m, "alice", "alicepw")
	if _, err := alice.Select("Projects/Murder", nil).Wait(); err != nil {
		t.Fatalf("SELECT with the master down: %v", err)
	}
	if names := listNames(t, alice); !contains(names, "Sent") {
		t.Fatalf("LIST with the master down: %q", names)
	}
}
