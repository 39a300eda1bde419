package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	loc1 = "127.0.0.1:12143!default"
	loc2 = "127.0.0.1:12243!default"
)

func newMaster(t *testing.T, interval time.Duration) (*mupdatetest.Server, string) {
	s := mupdatetest.NewServer(mupdatetest.Options{
		Users:          map[string]string{"mupdateuser": "mupdatepw", "alice": "alicepw"},
		Admins:         []string{"mupdateuser"},
		UpdateInterval: interval,
	})
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: "alice\tlrswipkxtecdan\t"})
	s.Set(mupdatec.Entry{Name: "user.bob", Location: loc2, ACL: "bob\tlrswipkxtecdan\tanyone\tlrs\t"})
	s.Set(mupdatec.Entry{Name: "user.bob.res", Location: loc2, Reserved: true})
	return s, addr
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func noPrompt(string) (string, error) { return "", errors.New("no terminal") }

func ctl(t *testing.T, addr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	env := envOf(map[string]string{"MUPDATE_SERVER": addr, "MUPDATE_PASSWORD": "mupdatepw"})
	code = run(ctx, args, env, noPrompt, &o, &e)
	return code, o.String(), e.String()
}

func TestCommands(t *testing.T) {
	srv, addr := newMaster(t, -1)
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"find", "user.alice"}, 0, "MAILBOX\tuser.alice\t" + loc1 + "\talice:lrswipkxtecdan\n", ""},
		{[]string{"find", "user.nosuch"}, 1, "", "not found"},
		{[]string{"list", "127.0.0.1:12243"}, 0, "MAILBOX\tuser.bob\t" + loc2 + "\tbob:lrswipkxtecdan anyone:lrs\nRESERVE\tuser.bob.res\t" + loc2 + "\n", ""},
		{[]string{"list", "user.bob"}, 0, "", ""},
		{[]string{"reserve", "user.alice", loc1}, 1, "", "already exists"},
		{[]string{"reserve", "user.alice.new", loc1}, 0, "reserved user.alice.new at " + loc1 + "\n", ""},
		{[]string{"activate", "user.alice.new", loc1, "alice:lrswipkxtecdan bob:lr"}, 0, "activated user.alice.new at " + loc1 + "\n", ""},
		{[]string{"find", "user.alice.new"}, 0, "MAILBOX\tuser.alice.new\t" + loc1 + "\talice:lrswipkxtecdan bob:lr\n", ""},
		{[]string{"deactivate", "user.bob.res", loc2}, 1, "", "not active"},
		{[]string{"deactivate", "user.nosuch", loc2}, 1, "", "no such mailbox"},
		{[]string{"deactivate", "user.alice.new", loc1}, 0, "deactivated user.alice.new at " + loc1 + "\n", ""},
		{[]string{"delete", "user.nosuch"}, 1, "", "no such mailbox"},
		{[]string{"delete", "user.alice.new"}, 0, "deleted user.alice.new\n", ""},
		{[]string{"frob"}, 2, "", "unknown command"},
		{[]string{"find"}, 2, "", "takes 1 argument"},
		{[]string{"-tls", "-starttls", "find", "x"}, 2, "", "exclude"},
		{[]string{"-password", "x", "find", "x"}, 2, "", "flag provided but not defined"},
		{[]string{"-user", "alice", "find", "user.alice"}, 3, "", "login as alice failed"},
	}
	for _, tt := range tests {
		code, out, errOut := ctl(t, addr, tt.args...)
		if code != tt.code || out != tt.out || !strings.Contains(errOut, tt.err) {
			t.Errorf("%q: code %d out %q err %q; want %d %q %q", tt.args, code, out, errOut, tt.code, tt.out, tt.err)
		}
	}
	if srv.Crashes() != 0 {
		t.Fatal("the master crashed")
	}
	if _, ok := srv.Lookup("user.alice.new"); ok {
		t.Fatal("user.alice.new still there")
	}
	// No password anywhere: usage error, no connection.
	var o, e bytes.Buffer
	code := run(context.Background(), []string{"-server", addr, "find", "x"}, envOf(nil), noPrompt, &o, &e)
	if code != 2 || !strings.Contains(e.String(), "MUPDATE_PASSWORD") {
		t.Fatalf("no password: %d %q", code, e.String())
	}
	// Unreachable server.
	srv.Close()
	if code, _, _ := ctl(t, addr, "find", "x"); code != 3 {
		t.Fatalf("unreachable: %d", code)
	}
}

func TestWatch(t *testing.T) {
	srv, addr := newMaster(t, 5*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		env := envOf(map[string]string{"MUPDATE_PASSWORD": "mupdatepw"})
		done <- run(ctx, []string{"-server", addr, "watch", "-dump", "127.0.0.1:12243"}, env, noPrompt, pw, &errOut)
		pw.Close()
	}()
	r := bufio.NewReader(pr)
	next := func() string {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	if l := next(); l != "MAILBOX\tuser.bob\t"+loc2+"\tbob:lrswipkxtecdan anyone:lrs\n" {
		t.Fatalf("dump line %q", l)
	}
	if l := next(); l != "RESERVE\tuser.bob.res\t"+loc2+"\n" {
		t.Fatalf("dump line %q", l)
	}
	srv.Set(mupdatec.Entry{Name: "user.alice.x", Location: loc1, ACL: "alice\tlr\t"}) // other server
	srv.Set(mupdatec.Entry{Name: "user.bob.res", Location: loc2, ACL: "bob\tlr\t"})
	if l := next(); l != "MAILBOX\tuser.bob.res\t"+loc2+"\tbob:lr\n" {
		t.Fatalf("change line %q", l)
	}
	srv.Delete("user.bob")
	if l := next(); l != "DELETE\tuser.bob\n" {
		t.Fatalf("delete line %q", l)
	}
	cancel()
	go io.Copy(io.Discard, r)
	if code := <-done; code != 0 {
		t.Fatalf("watch exit %d: %s", code, errOut.String())
	}
}
