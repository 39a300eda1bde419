package wiring

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
	"github.com/imapfront/imapfront/router"
)

func testMaster(t *testing.T) (*mupdatetest.Server, mupdatec.Dialer) {
	t.Helper()
	m := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"u": "p"}, UpdateInterval: -1})
	addr, err := m.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, mupdatec.Dialer{Addr: addr, Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", "u", "p"), nil }}
}

// In FIND mode a name the finder has cached as missing is looked up again
// after the front end's own change (Sync) and on doubt (Confirm), so a
// mailbox just made is found at once.
func TestFindModeSyncAndConfirmRefind(t *testing.T) {
	m, dial := testMaster(t)
	db := NewDatabase(DatabaseOptions{Master: dial, Find: true, FindCacheTTL: time.Hour, ConfirmTTL: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Set(mupdatec.Entry{Name: "user.alice", Location: "be!default", ACL: "alice\tlrswipkxtean\t"})
	if _, err := db.Directory.Resolve(ctx, "alice", "New"); err == nil {
		t.Fatal("a missing name resolved")
	}
	m.Set(mupdatec.Entry{Name: "user.alice.New", Location: "be!default", ACL: "alice\tlrswipkxtean\t"})
	if _, err := db.Directory.Resolve(ctx, "alice", "New"); err == nil {
		t.Fatal("the cached miss was not what the finder answered (the test proves nothing)")
	}
	if err := db.Sync(ctx, "user.alice.New"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Directory.Resolve(ctx, "alice", "New"); err != nil {
		t.Fatalf("after Sync of the name: %v", err)
	}
	m.Set(mupdatec.Entry{Name: "user.alice.Other", Location: "be!default", ACL: "alice\tlrswipkxtean\t"})
	db.Directory.Resolve(ctx, "alice", "Other") // cached as missing? it exists: found
	m.Delete("user.alice.Other")
	if _, err := db.Directory.Resolve(ctx, "alice", "Other"); err != nil {
		t.Fatal("the cached hit went away before a confirmation (the test proves nothing)")
	}
	if !db.Confirm(ctx, "user.alice.Other") {
		t.Fatal("a doubt was not confirmed with the master")
	}
	if _, err := db.Directory.Resolve(ctx, "alice", "Other"); err == nil {
		t.Fatal("after a confirmation the deleted name still resolves")
	}
}

// The front end built on a Database takes its directory, MUPDATE writer,
// hooks and admins from it.
func TestNewServerFillsTheDatabaseFields(t *testing.T) {
	_, dial := testMaster(t)
	db := NewDatabase(DatabaseOptions{Master: dial, Policy: router.Policy{Admins: []string{"cyrus"}}})
	var o frontend.Options
	db.Fill(&o)
	if o.Directory == nil || o.MailboxDB == nil || o.Sync == nil || o.Confirm == nil || len(o.Admins) != 1 || o.Admins[0] != "cyrus" {
		t.Fatalf("filled options: %+v", o)
	}
}
