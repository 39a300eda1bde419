package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
)

func TestMoveCommand(t *testing.T) {
	var bes [2]*memback.Server
	for i := range bes {
		be, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		be.AddUser("alice", "alicepw", "Sent")
		bes[i] = be
	}
	for i := range 3 {
		bes[0].Append("alice", "Sent", []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i)), []imap.Flag{imap.FlagSeen}, time.Now())
	}
	srv, addr := newMaster(t, -1)
	srv.Set(mupdatec.Entry{Name: "user.alice", Location: "m1!default", ACL: "alice\tlrswipkxtecdan\t"})
	srv.Set(mupdatec.Entry{Name: "user.alice.Sent", Location: "m1!default", ACL: "alice\tlrswipkxtecdan\t"})
	spec := func(name string, be *memback.Server) string {
		return name + ",addr=" + be.Addr() + ",tls=none,proxy-user=proxy,namespace=personal,mode=front"
	}
	move := func(args ...string) (int, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var o, e bytes.Buffer
		env := envOf(map[string]string{"MUPDATE_SERVER": addr, "MUPDATE_PASSWORD": "mupdatepw", "MUPDATECTL_BACKEND_PASSWORD": "proxypw"})
		code := run(ctx, append([]string{"move", "-grace", "0"}, args...), env, noPrompt, &o, &e)
		return code, o.String(), e.String()
	}
	code, out, errs := move("-dry-run", "-backend", spec("m1", bes[0]), "-backend", spec("m2", bes[1]), "-to", "m2", "user.alice.Sent")
	if code != exitOK || !strings.Contains(out, "MOVE\tuser.alice.Sent\tm1!default\tm2!default\t3 messages") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errs)
	}
	if e, _ := srv.Lookup("user.alice.Sent"); e.Location != "m1!default" {
		t.Fatalf("dry run changed the master: %+v", e)
	}
	if code, _, errs := move("-backend", spec("m1", bes[0]), "-to", "m3", "user.alice.Sent"); code != exitUsage || !strings.Contains(errs, "not one of the backends") {
		t.Errorf("unknown destination: %d %s", code, errs)
	}

	// The whole account, backends from an imapfront configuration file.
	cfg := fmt.Sprintf(`hostname = "x"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[[backend]]
server = "m1"
address = %q
tls = "none"
proxy_user = "proxy"
proxy_password = "proxypw"
namespace = "personal"
mupdate_mode = "front"
[[backend]]
server = "m2"
address = %q
tls = "none"
proxy_user = "proxy"
proxy_password = "proxypw"
namespace = "personal"
mupdate_mode = "front"
`, addr, bes[0].Addr(), bes[1].Addr())
	path := filepath.Join(t.TempDir(), "imapfront.toml")
	os.WriteFile(path, []byte(cfg), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	code = run(ctx, []string{"move", "-grace", "0", "-config", path, "-user", "alice", "-to", "m2"}, envOf(nil), noPrompt, &o, &e)
	if code != exitOK || !strings.Contains(e.String(), "done: 2 mailboxes switched, 2 sources deleted, 3 messages") {
		t.Fatalf("move: %d\n%s%s", code, o.String(), e.String())
	}
	for _, n := range []string{"user.alice", "user.alice.Sent"} {
		if e, _ := srv.Lookup(n); e.Location != "m2!default" || e.Reserved {
			t.Errorf("%s: %+v", n, e)
		}
	}
}
