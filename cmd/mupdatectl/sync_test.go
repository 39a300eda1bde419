package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
)

const dloc = "127.0.0.1:14143!default"

func syncCtl(t *testing.T, addr string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	env := envOf(map[string]string{"MUPDATE_SERVER": addr, "MUPDATE_PASSWORD": "mupdatepw", "MUPDATECTL_BACKEND_PASSWORD": "proxypw"})
	code := run(ctx, args, env, noPrompt, &o, &e)
	return code, o.String(), e.String()
}

func TestSync(t *testing.T) {
	be, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	be.AddUser("alice", "alicepw", "Sent", "Projects/Murder")
	be.AddUser("bob", "bobpw")
	srv, addr := newMaster(t, -1)
	srv.Delete("user.bob")
	srv.Delete("user.bob.res")
	owner := "alice\tlrswipkxtecdan\t"
	srv.Set(mupdatec.Entry{Name: "user.alice", Location: dloc, ACL: owner + "bob\tlr\t"}) // unchanged, ACL kept
	srv.Set(mupdatec.Entry{Name: "user.alice.Old", Location: dloc, ACL: owner})           // gone from the backend
	srv.Set(mupdatec.Entry{Name: "user.alice.Res", Location: dloc, Reserved: true})       // a CREATE in progress
	srv.Set(mupdatec.Entry{Name: "user.carol.X", Location: dloc, ACL: "carol\tlrs\t"})    // not a synced user
	before := srv.Entries()

	usersFile := filepath.Join(t.TempDir(), "users")
	os.WriteFile(usersFile, []byte("# users\nalice\n\nbob\n"), 0o600)
	args := []string{"sync", "-backend", be.Addr(), "-location", dloc, "-proxy-user", "proxy", "-users", usersFile}

	want := "ACTIVATE\tuser.alice.Sent\t" + dloc + "\talice:lrswipkxtecdan\n" +
		"ACTIVATE\tuser.alice.Projects\t" + dloc + "\talice:lrswipkxtecdan\n" +
		"ACTIVATE\tuser.alice.Projects.Murder\t" + dloc + "\talice:lrswipkxtecdan\n" +
		"DELETE\tuser.alice.Old\n" +
		"SKIP\tuser.alice.Res\treserved, not on the backend\n" +
		"ACTIVATE\tuser.bob\t" + dloc + "\tbob:lrswipkxtecdan\n"
	sorted := func(s string) string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		slices.Sort(l)
		return strings.Join(l, "\n")
	}
	code, out, errOut := syncCtl(t, addr, append([]string{"sync", "-dry-run"}, args[1:]...)...)
	wouldWant := strings.ReplaceAll(strings.ReplaceAll(want, "ACTIVATE", "would ACTIVATE"), "DELETE", "would DELETE")
	if code != 0 || sorted(out) != sorted(wouldWant) {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, errOut)
	}
	if after := srv.Entries(); len(after) != len(before) {
		t.Fatalf("dry run wrote: %v", after)
	}

	code, out, errOut = syncCtl(t, addr, args...)
	if code != 0 || sorted(out) != sorted(want) {
		t.Fatalf("sync: %d\n%s\n%s", code, out, errOut)
	}
	for _, name := range []string{"user.alice.Sent", "user.alice.Projects.Murder", "user.bob", "user.carol.X"} {
		if e, ok := srv.Lookup(name); !ok || e.Reserved || e.Location != dloc {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
	if e, _ := srv.Lookup("user.alice"); e.ACL != owner+"bob\tlr\t" {
		t.Errorf("existing ACL changed: %q", e.ACL)
	}
	if _, ok := srv.Lookup("user.alice.Old"); ok {
		t.Error("user.alice.Old not deleted")
	}
	// A second run changes nothing.
	code, out, errOut = syncCtl(t, addr, args...)
	if code != 0 || out != "SKIP\tuser.alice.Res\treserved, not on the backend\n" || !strings.Contains(errOut, "0 activated, 0 deleted") {
		t.Fatalf("second sync: %d %q %q", code, out, errOut)
	}
	// An entry of the user at another location is a conflict, left alone.
	srv.Set(mupdatec.Entry{Name: "user.bob", Location: "127.0.0.1:12243!default", ACL: "bob\tlrs\t"})
	code, out, _ = syncCtl(t, addr, "sync", "-backend", be.Addr(), "-location", dloc, "-proxy-user", "proxy", "bob")
	if code != 1 || out != "CONFLICT\tuser.bob\tis at 127.0.0.1:12243!default\n" {
		t.Fatalf("conflict: %d %q", code, out)
	}
	// A user the backend does not know fails that user only.
	code, _, errOut = syncCtl(t, addr, "sync", "-backend", be.Addr(), "-location", dloc, "-proxy-user", "proxy", "nosuch")
	if code != 1 || !strings.Contains(errOut, "1 users failed") {
		t.Fatalf("unknown user: %d %q", code, errOut)
	}
	if srv.Crashes() != 0 {
		t.Fatal("master crashed")
	}
	// Usage errors.
	if code, _, _ := syncCtl(t, addr, "sync", "-backend", be.Addr(), "alice"); code != 2 {
		t.Fatalf("missing flags: %d", code)
	}
}
