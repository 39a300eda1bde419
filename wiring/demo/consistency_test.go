package demo

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/imapfront/imapfront/internal/imaptest"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// startLagging starts a demo whose master, like Cyrus's, sends its streams
// nothing until they ask (NOOP): the replica only learns of other writers'
// changes when imapfront confirms a doubt.
func startLagging(t *testing.T, mutate func(*Options)) *Murder {
	t.Helper()
	opts := Options{Seed: true, MasterUpdateInterval: -1}
	if mutate != nil {
		mutate(&opts)
	}
	m, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func code(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

// Another writer (another front end, an admin on the backend) creates a
// mailbox; SELECT through imapfront at once finds it, as through Cyrus's
// own front end.
func TestCreatedElsewhereIsSelectableAtOnce(t *testing.T) {
	m := startLagging(t, nil)
	alice := login(t, m, "alice", "alicepw")
	if err := m.Backends[m.BE1].Create("alice", "Fresh"); err != nil {
		t.Fatal(err)
	}
	m.Master.Set(mupdatec.Entry{Name: "user.alice.Fresh", Location: m.BE1 + "!default", ACL: "alice\tlrswipkxtean\t"})
	if _, err := alice.Select("Fresh", nil).Wait(); err != nil {
		t.Fatalf("SELECT of a mailbox another writer just created: %v", err)
	}
}

// Another writer deletes a mailbox; CREATE of that name through imapfront
// at once succeeds instead of ALREADYEXISTS from the stale replica.
func TestDeletedElsewhereCanBeCreatedAtOnce(t *testing.T) {
	m := startLagging(t, nil)
	alice := login(t, m, "alice", "alicepw")
	if err := m.Backends[m.BE1].Delete("alice", "Sent"); err != nil {
		t.Fatal(err)
	}
	m.Master.Delete("user.alice.Sent")
	if err := alice.Create("Sent", nil).Wait(); err != nil {
		t.Fatalf("CREATE of a mailbox another writer just deleted: %v", err)
	}
	if e, ok := m.Master.Lookup("user.alice.Sent"); !ok || e.Reserved {
		t.Fatalf("master after CREATE: %+v %v", e, ok)
	}
	// A name that really exists is still refused, after the master said so.
	err := alice.Create("Projects", nil).Wait()
	if code(err) != imap.ResponseCodeAlreadyExists {
		t.Fatalf("CREATE of an existing mailbox: %v, want NO [ALREADYEXISTS]", err)
	}
}

// A client polling a missing name costs the master one round trip per
// confirm TTL, not one per command: the second doubt is answered from the
// negative cache (seen in the metrics).
func TestPollingMissingNameIsCached(t *testing.T) {
	m := startLagging(t, func(o *Options) { o.MetricsListen = "127.0.0.1:0" })
	alice := login(t, m, "alice", "alicepw")
	for range 3 {
		if _, err := alice.Select("Missing", nil).Wait(); code(err) != imap.ResponseCodeNonExistent {
			t.Fatalf("SELECT Missing: %v, want NO [NONEXISTENT]", err)
		}
	}
	body := scrape(t, m)
	if got := metric(body, `imapfront_readthrough_total{result="asked"}`); got != "1" {
		t.Errorf("asked = %q, want 1\n%s", got, body)
	}
	if got := metric(body, `imapfront_readthrough_total{result="cached"}`); got != "2" {
		t.Errorf("cached = %q, want 2", got)
	}
}

// With the master down, a miss is answered from the replica at once, not
// after a sync timeout per command.
func TestMasterDownMissAnsweredAtOnce(t *testing.T) {
	m := startLagging(t, nil)
	alice := login(t, m, "alice", "alicepw")
	m.Master.RefuseLogins(true)
	m.Master.DropAll()
	deadline := time.Now().Add(10 * time.Second)
	for m.Follower.Status().State == mupdatec.StateStreaming {
		if time.Now().After(deadline) {
			t.Fatal("follower still streaming after the master dropped it")
		}
		time.Sleep(5 * time.Millisecond) // polling the follower's state: it has no event to wait on
	}
	start := time.Now()
	_, err := alice.Select("Missing", nil).Wait()
	if code(err) != imap.ResponseCodeNonExistent {
		t.Fatalf("SELECT Missing with the master down: %v, want NO [NONEXISTENT]", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a miss with the master down took %v: it waited for the master", d)
	}
}

// aliceNames returns alice's mailboxes as the master has them and as her
// backend has them, in the backend's spelling.
func aliceNames(t *testing.T, m *Murder) (master, backend []string) {
	t.Helper()
	for _, e := range m.Master.Entries() {
		owner, path := router.SplitInternal(e.Name)
		if owner != "alice" {
			continue
		}
		if e.Reserved {
			t.Errorf("reservation left in the master: %s", e.Name)
		}
		if path == "" {
			master = append(master, "INBOX")
		} else {
			master = append(master, strings.ReplaceAll(path, ".", "/"))
		}
	}
	slices.Sort(master)
	return master, m.Backends[m.BE1].Mailboxes("alice")
}

// A backend whose RENAME leaves children behind: MUPDATE follows what the
// backend did, not what RENAME should have done, and LIST, STATUS and
// DELETE agree.
func TestFrontRenameFollowsWhatTheBackendDid(t *testing.T) {
	for _, flat := range []bool{false, true} {
		name := map[bool]string{false: "RFC9051", true: "children-left-behind"}[flat]
		t.Run(name, func(t *testing.T) {
			m := startLagging(t, func(o *Options) { o.FlatRename = flat })
			alice := login(t, m, "alice", "alicepw")
			for _, n := range []string{"RX", "RX/Child"} {
				if err := alice.Create(n, nil).Wait(); err != nil {
					t.Fatalf("CREATE %s: %v", n, err)
				}
			}
			if err := alice.Rename("RX", "RY", nil).Wait(); err != nil {
				t.Fatalf("RENAME: %v", err)
			}
			master, be := aliceNames(t, m)
			if !slices.Equal(master, be) {
				t.Fatalf("after RENAME the master has %q, the backend %q", master, be)
			}
			child := "RY/Child"
			if flat {
				child = "RX/Child"
			}
			if !contains(be, child) {
				t.Fatalf("backend lacks %s: %q", child, be)
			}
			if !contains(listNames(t, alice), child) {
				t.Fatalf("LIST lacks %s", child)
			}
			if _, err := alice.Status(child, &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
				t.Fatalf("STATUS %s: %v", child, err)
			}
			if err := alice.Delete(child).Wait(); err != nil {
				t.Fatalf("DELETE %s: %v", child, err)
			}
			if err := alice.Delete("RY").Wait(); err != nil {
				t.Fatalf("DELETE RY: %v", err)
			}
			master, be = aliceNames(t, m)
			if !slices.Equal(master, be) {
				t.Fatalf("after DELETE the master has %q, the backend %q", master, be)
			}
		})
	}
}

// RENAME INBOX moves its messages and leaves INBOX (RFC 9051); on a
// backend that moves INBOX away instead, MUPDATE says so too.
func TestFrontRenameInbox(t *testing.T) {
	for _, flat := range []bool{false, true} {
		name := map[bool]string{false: "RFC9051", true: "inbox-moved-away"}[flat]
		t.Run(name, func(t *testing.T) {
			m := startLagging(t, func(o *Options) { o.FlatRename = flat })
			alice := login(t, m, "alice", "alicepw")
			// Spelled as another user's name: still her INBOX.
			if err := alice.Rename("Other Users/alice", "Old", nil).Wait(); err != nil {
				t.Fatalf("RENAME INBOX: %v", err)
			}
			master, be := aliceNames(t, m)
			if !slices.Equal(master, be) {
				t.Fatalf("after RENAME INBOX the master has %q, the backend %q", master, be)
			}
			if !contains(be, "Old") || contains(be, "INBOX") == flat {
				t.Fatalf("backend after RENAME INBOX: %q", be)
			}
			st, err := alice.Status("Old", &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || st.NumMessages == nil || *st.NumMessages != 2 {
				t.Fatalf("STATUS Old: %+v %v, want INBOX's 2 messages", st, err)
			}
		})
	}
}

// Every spelling of the user's own INBOX is refused for DELETE; "." and
// ".." levels are refused for CREATE and RENAME.
func TestInboxAndDotGuards(t *testing.T) {
	m := startLagging(t, nil)
	alice := login(t, m, "alice", "alicepw")
	for _, n := range []string{"INBOX", "inbox", "Other Users/alice"} {
		if err := alice.Delete(n).Wait(); code(err) != imap.ResponseCodeCannot {
			t.Errorf("DELETE %q: %v, want NO [CANNOT]", n, err)
		}
	}
	if _, ok := m.Master.Lookup("user.alice"); !ok {
		t.Fatal("alice's INBOX is gone from the master")
	}
	for _, n := range []string{"Other Users/alice", "inbox"} {
		if err := alice.Create(n, nil).Wait(); code(err) != imap.ResponseCodeAlreadyExists {
			t.Errorf("CREATE %q: %v, want NO [ALREADYEXISTS]", n, err)
		}
	}
	for _, n := range []string{".", "..", "a/./b", "Projects/.."} {
		if err := alice.Create(n, nil).Wait(); code(err) != imap.ResponseCodeCannot {
			t.Errorf("CREATE %q: %v, want NO [CANNOT]", n, err)
		}
		if err := alice.Rename("Sent", n, nil).Wait(); code(err) != imap.ResponseCodeCannot {
			t.Errorf("RENAME Sent %q: %v, want NO [CANNOT]", n, err)
		}
	}
}

func scrape(t *testing.T, m *Murder) string {
	t.Helper()
	resp, err := http.Get("http://" + m.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func metric(body, series string) string {
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` (\S+)$`)
	if mm := re.FindStringSubmatch(body); mm != nil {
		return mm[1]
	}
	return ""
}

// RENAME to a name whose parent lives on the other backend moves the
// mailbox there when moves are on: its messages arrive intact, MUPDATE
// says where it is, the source is gone; without moves it is refused.
func TestRenameAcrossServers(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[on], func(t *testing.T) {
			m := startLagging(t, func(o *Options) { o.RenameAcrossServers = on })
			be2 := m.Backends[m.BE2]
			if err := be2.AddUser("alice", "alicepw", "Elsewhere"); err != nil {
				t.Fatal(err)
			}
			m.Master.Set(mupdatec.Entry{Name: "user.alice.Elsewhere", Location: m.BE2 + "!default", ACL: "alice\tlrswipkxtean\t"})
			alice := login(t, m, "alice", "alicepw")
			err := alice.Rename("Projects/Murder", "Elsewhere/Murder", nil).Wait()
			if !on {
				if code(err) != imap.ResponseCodeCannot {
					t.Fatalf("RENAME across servers with moves off: %v, want NO [CANNOT]", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RENAME across servers: %v", err)
			}
			e, ok := m.Master.Lookup("user.alice.Elsewhere.Murder")
			if !ok || e.Reserved || e.Location != m.BE2+"!default" {
				t.Fatalf("master entry of the new name: %+v %v, want active on %s", e, ok, m.BE2)
			}
			if _, ok := m.Master.Lookup("user.alice.Projects.Murder"); ok {
				t.Fatal("the old name is still in the master")
			}
			if contains(m.Backends[m.BE1].Mailboxes("alice"), "Projects/Murder") {
				t.Fatal("the source is still on be1")
			}
			st, err := alice.Status("Elsewhere/Murder", &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
				t.Fatalf("STATUS of the moved mailbox: %+v %v, want its 1 message", st, err)
			}
		})
	}
}

// A session idling on a mailbox that moves to the other backend is told at
// once (BYE [UNAVAILABLE], RFC 2180 section 3) instead of idling on a copy
// that gets no more mail; a new session selects it where it is now.
func TestIdleSessionToldOfMove(t *testing.T) {
	m, err := Start(Options{Seed: true}) // the master streams every second
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c, _ := imaptest.Dial(t, m.Addr)
	c.OK("a", "LOGIN alice alicepw")
	c.OK("b", "SELECT Projects/Murder")
	c.Send("c IDLE")
	if l := c.Line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	// The move's switch, as the mover makes it: the mailbox is on be2 and
	// active there in the master.
	if err := m.Backends[m.BE2].AddUser("alice", "alicepw", "Projects/Murder"); err != nil {
		t.Fatal(err)
	}
	m.Master.Set(mupdatec.Entry{Name: "user.alice.Projects.Murder", Location: m.BE2 + "!default", ACL: "alice\tlrswipkxtean\t"})
	for {
		l := c.Line() // each read waits at most 10 s: the stream flushes within 1 s
		if strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
			break
		}
	}
	alice := login(t, m, "alice", "alicepw")
	if _, err := alice.Select("Projects/Murder", nil).Wait(); err != nil {
		t.Fatalf("SELECT after the move: %v", err)
	}
}
