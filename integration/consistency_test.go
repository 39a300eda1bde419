//go:build integration

package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapfront/imapfront/integration/itenv"
)

// The replica is a cache, never a stale authority (issue 15). The Cyrus
// master sends its streams changes in batches (about every 5 s), so a
// change made by another writer — directly on a backend, through Cyrus's
// own front end — is not in imapfront's replica yet when the client's
// next command arrives. imapfront must confirm with the master before it
// answers NONEXISTENT or ALREADYEXISTS, as Cyrus's own front end does.

func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

// CREATE X directly on be1, then SELECT X through imapfront at once.
func TestConsistencyCreatedOnBackendSelectableAtOnce(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	c := f.login(t, "alice", alice.Password)
	direct := directLogin(t, env, alice)
	name := fmt.Sprintf("ItFresh%d", time.Now().UnixNano())
	if err := direct.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE on be1 directly: %v", err)
	}
	t.Cleanup(func() { direct.Delete(name).Wait() })
	if _, err := c.Select(name, nil).Wait(); err != nil {
		t.Fatalf("SELECT through imapfront right after CREATE on be1: %v", err)
	}
}

// X exists; DELETE X directly on be1, then CREATE X through imapfront at
// once: created, not ALREADYEXISTS from the stale replica.
func TestConsistencyDeletedOnBackendCreatableAtOnce(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	c := f.login(t, "alice", alice.Password)
	name := fmt.Sprintf("ItGone%d", time.Now().UnixNano())
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE through imapfront: %v", err)
	}
	t.Cleanup(func() { c.Delete(name).Wait() })
	if _, ok := f.replica.Resolve("alice", name); ok != nil {
		t.Fatalf("the replica lacks %s after imapfront's own CREATE: %v", name, ok)
	}
	direct := directLogin(t, env, alice)
	if err := direct.Delete(name).Wait(); err != nil {
		t.Fatalf("DELETE on be1 directly: %v", err)
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE through imapfront right after DELETE on be1: %v", err)
	}
	if _, err := c.Select(name, nil).Wait(); err != nil {
		t.Fatalf("SELECT of the re-created mailbox: %v", err)
	}
	// And a name that does exist is still refused, after the master said so.
	if err := c.Create("Sent", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Fatalf("CREATE Sent: %v, want NO [ALREADYEXISTS]", err)
	}
}

// The change comes through Cyrus's own front end.
func TestConsistencyChangedThroughCyrusFrontEnd(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	c := f.login(t, "alice", alice.Password)
	fe := dialIMAP(t, env, env.CyrusFE, plain)
	if err := fe.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ItViaFE%d", time.Now().UnixNano())
	if err := fe.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE through Cyrus's front end: %v", err)
	}
	t.Cleanup(func() { c.Delete(name).Wait() })
	if _, err := c.Select(name, nil).Wait(); err != nil {
		t.Fatalf("SELECT through imapfront right after CREATE through Cyrus's front end: %v", err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := fe.Delete(name).Wait(); err != nil {
		t.Fatalf("DELETE through Cyrus's front end: %v", err)
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE through imapfront right after DELETE through Cyrus's front end: %v", err)
	}
}

// DELETE of one's own INBOX spelled as another user's name is refused, on
// Cyrus and on Dovecot, and the INBOX is still there.
func TestConsistencyOwnInboxByOtherName(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	for _, user := range []string{"alice", "carol"} {
		u := env.MustUser(t, user)
		c := f.login(t, user, u.Password)
		for _, name := range []string{"Other Users/" + user, "inbox"} {
			if err := c.Delete(name).Wait(); imapCode(err) != imap.ResponseCodeCannot {
				t.Errorf("%s: DELETE %q: %v, want NO [CANNOT]", user, name, err)
			}
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Errorf("%s: SELECT INBOX afterwards: %v", user, err)
		}
		for _, name := range []string{"..", "a/./b"} {
			if err := c.Create(name, nil).Wait(); imapCode(err) != imap.ResponseCodeCannot {
				t.Errorf("%s: CREATE %q: %v, want NO [CANNOT]", user, name, err)
			}
		}
	}
}

// FIND mode against the real Cyrus master: no replica, names looked up on
// demand; a mailbox created on be1 directly is selectable at once, and one
// deleted there can be created at once.
func TestConsistencyFindMode(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{find: true})
	alice := env.MustUser(t, "alice")
	c := f.login(t, "alice", alice.Password)
	for _, name := range []string{"INBOX", "Sent", "Other Users/bob/Team"} {
		if _, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("FIND mode SELECT %s: %v", name, err)
		}
	}
	if _, err := c.Select("Missing", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Fatalf("FIND mode SELECT Missing: %v, want NO [NONEXISTENT]", err)
	}
	direct := directLogin(t, env, alice)
	name := fmt.Sprintf("ItFind%d", time.Now().UnixNano())
	if err := direct.Create(name, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Delete(name).Wait() })
	if _, err := c.Select(name, nil).Wait(); err != nil {
		t.Fatalf("FIND mode SELECT right after CREATE on be1: %v", err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Delete(name).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("FIND mode CREATE right after DELETE on be1: %v", err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil || len(boxes) == 0 {
		t.Fatalf("FIND mode LIST: %v %v", boxes, err)
	}
}

// SETACL on a front-mode backend (Dovecot) reaches MUPDATE: once carol
// lets bob read her Projects, bob's LIST through imapfront shows it; once
// she takes it back, it is gone.
func TestConsistencyDovecotSetACL(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	carol := f.login(t, "carol", env.MustUser(t, "carol").Password)
	bob := f.login(t, "bob", env.MustUser(t, "bob").Password)
	const shared = "Other Users/carol/Projects"
	bobSees := func() bool {
		t.Helper()
		boxes, err := bob.List("", "Other Users/carol/*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range boxes {
			if b.Mailbox == shared {
				return true
			}
		}
		return false
	}
	t.Cleanup(func() { carol.SetACL("Projects", "bob", imap.RightModificationReplace, nil).Wait() })
	if err := carol.SetACL("Projects", "bob", imap.RightModificationReplace, nil).Wait(); err != nil {
		t.Fatalf("SETACL Projects bob \"\" through imapfront: %v", err)
	}
	if bobSees() {
		t.Fatalf("bob sees %s before carol shared it", shared)
	}
	if err := carol.SetACL("Projects", "bob", imap.RightModificationReplace, imap.RightSet("lr")).Wait(); err != nil {
		t.Fatalf("SETACL Projects bob lr through imapfront: %v", err)
	}
	e, ok, err := mcAdminConn(t, env).Find(mcCtx(t), "user.carol.Projects")
	if err != nil || !ok || !strings.Contains(e.ACL, "bob\tlr\t") {
		t.Fatalf("master entry after SETACL: %+v %v %v, want bob lr in its ACL", e, ok, err)
	}
	if !bobSees() {
		t.Fatalf("bob's LIST right after carol's SETACL lacks %s", shared)
	}
	if err := carol.SetACL("Projects", "bob", imap.RightModificationReplace, nil).Wait(); err != nil {
		t.Fatalf("SETACL removing bob: %v", err)
	}
	if bobSees() {
		t.Fatalf("bob still sees %s after carol took it back", shared)
	}
}
