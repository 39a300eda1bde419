//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/mupdatec"
)

// Tests of package mupdatec against the real Cyrus 3.6.1 MUPDATE master.
// Entries written here have names of their own (zz-imapfront-it-mupdatec.*)
// so the seeded mailboxes are never touched.

func mcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mcAdmin(env itenv.Env) func() (sasl.Client, error) {
	return func() (sasl.Client, error) { return sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass), nil }
}

func mcAdminConn(t *testing.T, env itenv.Env) *mupdatec.Conn {
	t.Helper()
	ctx := mcCtx(t)
	c, err := mupdatec.Dial(ctx, env.MUPDATE, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass)); err != nil {
		t.Fatal(err)
	}
	return c
}

// mcName returns a fresh entry name that no seeded mailbox uses.
func mcName(t *testing.T) string {
	return fmt.Sprintf("zz-imapfront-it-mupdatec.%s.%d", t.Name(), time.Now().UnixNano())
}

// mcSink is a map Sink safe to read from the test goroutine.
type mcSink struct {
	mu sync.Mutex
	m  map[string]mupdatec.Entry
}

type mcLoader struct {
	s *mcSink
	m map[string]mupdatec.Entry
}

func (s *mcSink) StartResync() mupdatec.Loader {
	return &mcLoader{s: s, m: map[string]mupdatec.Entry{}}
}
func (s *mcSink) Put(name string, reserved bool, location, acl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = mupdatec.Entry{Name: name, Reserved: reserved, Location: location, ACL: acl}
}
func (s *mcSink) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
}
func (s *mcSink) get(name string) (mupdatec.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[name]
	return e, ok
}
func (s *mcSink) snapshot() map[string]mupdatec.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}
func (l *mcLoader) Put(name string, reserved bool, location, acl string) {
	l.m[name] = mupdatec.Entry{Name: name, Reserved: reserved, Location: location, ACL: acl}
}
func (l *mcLoader) Commit() {
	l.s.mu.Lock()
	l.s.m = l.m
	l.s.mu.Unlock()
}
func (l *mcLoader) Discard() {}

func mcFollower(t *testing.T, env itenv.Env) (*mupdatec.Follower, *mcSink) {
	t.Helper()
	sink := &mcSink{m: map[string]mupdatec.Entry{}}
	f := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: env.MUPDATE, Auth: mcAdmin(env), Sink: sink,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follower.Run: %v", err)
		}
	})
	if err := f.WaitReady(mcCtx(t)); err != nil {
		t.Fatalf("follower never loaded: %v (status %+v)", err, f.Status())
	}
	return f, sink
}

func mcList(t *testing.T, c *mupdatec.Conn) map[string]mupdatec.Entry {
	t.Helper()
	all, err := c.List(mcCtx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]mupdatec.Entry{}
	for _, e := range all {
		m[e.Name] = e
	}
	return m
}

func TestMUPDATEClientAuthenticate(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	try := func(client sasl.Client) (mupdatec.Banner, error) {
		c, err := mupdatec.Dial(ctx, env.MUPDATE, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Banner(), c.Authenticate(ctx, client)
	}
	b, err := try(sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass))
	if err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
	if !b.Master || b.ServerName != "mupdate-master" || b.Implementation != "Cyrus IMAP" || !b.HasMechanism("PLAIN") {
		t.Errorf("banner %+v", b)
	}
	if _, err := try(sasl.NewLoginClient(env.MUPDATEUser, env.MUPDATEPass)); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	var se *mupdatec.ServerError
	if _, err := try(sasl.NewPlainClient("", env.MUPDATEUser, "wrong")); !errors.As(err, &se) || se.Status != "NO" {
		t.Fatalf("wrong password: %v", err)
	}
	alice := env.MustUser(t, "alice")
	if _, err := try(sasl.NewPlainClient("", alice.Name, alice.Password)); !errors.As(err, &se) || se.Text != "undefined error!" {
		t.Fatalf("non-admin: %v", err)
	}
}

// TestMUPDATEClientGSSAPI: mupdatec's Authenticate with imapfront's GSSAPI
// initiator against the GSSAPI-only master (bare base64 continuations, an
// empty first answer).
func TestMUPDATEClientGSSAPI(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	c, err := mupdatec.Dial(ctx, env.MUPDATEGSSAPI, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := gssInitiator(t, env, "mupdateuser").NewClient("mupdate/"+env.MUPDATEGSSAPIHost, "")
	if err := c.Authenticate(ctx, client); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
}

func TestMUPDATEClientDumpEqualsList(t *testing.T) {
	env := itenv.Load(t)
	c := mcAdminConn(t, env)
	f, sink := mcFollower(t, env)
	if err := f.Sync(mcCtx(t)); err != nil {
		t.Fatal(err)
	}
	got, want := sink.snapshot(), mcList(t, c)
	if len(want) == 0 {
		t.Fatal("the master lists nothing; the harness seeds mailboxes")
	}
	if !maps.Equal(got, want) {
		t.Fatalf("UPDATE dump differs from LIST:\n%v\n%v", got, want)
	}
	if _, ok := want["user.alice"]; !ok {
		t.Errorf("user.alice not listed")
	}
}

func TestMUPDATEClientWriteSeenAfterSync(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	c := mcAdminConn(t, env)
	f, sink := mcFollower(t, env)
	name := mcName(t)
	loc := env.CyrusBE1 + "!default"
	acl := "mupdateuser\tlrswipkxtecda\t"
	t.Cleanup(func() { c.SafeDelete(context.Background(), name) })

	if err := c.SafeReserve(ctx, name, loc); err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(ctx, name, loc, acl); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e, ok := sink.get(name); !ok || e.Reserved || e.ACL != acl || e.Location != loc {
		t.Fatalf("after ACTIVATE and Sync: %+v %v", e, ok)
	}
	// The guards refuse what would demote or crash the master.
	if err := c.SafeReserve(ctx, name, loc); !errors.Is(err, mupdatec.ErrExists) {
		t.Fatalf("SafeReserve over an active entry: %v", err)
	}
	if err := c.SafeDeactivate(ctx, name, loc); err != nil {
		t.Fatal(err)
	}
	if err := c.SafeDeactivate(ctx, name, loc); !errors.Is(err, mupdatec.ErrNotActive) {
		t.Fatalf("SafeDeactivate of a reserved entry: %v", err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e, ok := sink.get(name); !ok || !e.Reserved {
		t.Fatalf("after DEACTIVATE and Sync: %+v %v", e, ok)
	}
	if err := c.SafeDelete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := c.SafeDelete(ctx, name); !errors.Is(err, mupdatec.ErrNotFound) {
		t.Fatalf("SafeDelete of a missing entry: %v", err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.get(name); ok {
		t.Fatal("still in the replica after DELETE and Sync")
	}
	if st := f.Status(); st.Reconnects != 0 {
		t.Fatalf("the stream broke (the master crashed?): %+v", st)
	}
}

func TestMUPDATEClientSlaveIsReadOnly(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	c, err := mupdatec.Dial(ctx, env.CyrusFEMUPDATE, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b := c.Banner(); b.Master || b.MasterURL == "" {
		t.Fatalf("slave banner %+v", b)
	}
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", env.CyrusAdminUser, env.CyrusAdminPass)); err != nil {
		t.Fatal(err)
	}
	var se *mupdatec.ServerError
	err = c.Reserve(ctx, mcName(t), env.CyrusBE1+"!default")
	if !errors.As(err, &se) || se.Status != "BAD" || se.Text != "read-only session" {
		t.Fatalf("write to the slave: %v", err)
	}
}

// TestMUPDATEClientFollowerSurvivesKill kills the master's mupdate process
// (what a crash looks like): the Follower reconnects, reloads, and misses
// nothing written after the restart.
func TestMUPDATEClientFollowerSurvivesKill(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	f, sink := mcFollower(t, env)
	witness := mcAdminConn(t, env)
	if _, err := env.KillMUPDATE(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Every connection to the dead process drops, the follower's too.
	select {
	case <-witness.Done():
	case <-ctx.Done():
		t.Fatal("the connection survived the kill")
	}
	// The Cyrus master starts a new mupdate for the next connection; Sync
	// waits for the follower's new stream.
	c := mcAdminConn(t, env)
	name := mcName(t)
	loc := env.CyrusBE2 + "!default"
	t.Cleanup(func() { c.SafeDelete(context.Background(), name) })
	if err := c.Activate(ctx, name, loc, "mupdateuser\tlrs\t"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.get(name); !ok {
		t.Fatalf("write after the restart missing: %+v", f.Status())
	}
	if got, want := sink.snapshot(), mcList(t, c); !maps.Equal(got, want) {
		t.Fatalf("replica differs from LIST after the reconnect")
	}
	if st := f.Status(); st.State != mupdatec.StateStreaming || st.Reconnects < 1 {
		t.Fatalf("status %+v", st)
	}
}

// TestMUPDATECtlWriteSeenByFollower: changes written with the mupdatectl
// binary reach a Follower by Sync.
func TestMUPDATECtlWriteSeenByFollower(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	bin := filepath.Join(t.TempDir(), "mupdatectl")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/imapfront/imapfront/cmd/mupdatectl").CombinedOutput(); err != nil {
		t.Fatalf("build mupdatectl: %v\n%s", err, out)
	}
	ctl := func(args ...string) (int, string) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-server", env.MUPDATE, "-user", env.MUPDATEUser}, args...)...)
		cmd.Env = append(os.Environ(), "MUPDATE_PASSWORD="+env.MUPDATEPass)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	f, sink := mcFollower(t, env)
	name := mcName(t)
	loc := env.CyrusBE1 + "!default"
	t.Cleanup(func() { ctl("delete", name) })
	if code, out := ctl("activate", name, loc, "mupdateuser:lrs"); code != 0 {
		t.Fatalf("activate: %d %s", code, out)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e, ok := sink.get(name); !ok || e.ACL != "mupdateuser\tlrs\t" || e.Location != loc {
		t.Fatalf("after activate: %+v %v", e, ok)
	}
	if code, out := ctl("find", name); code != 0 || !strings.HasPrefix(out, "MAILBOX\t"+name+"\t"+loc) {
		t.Fatalf("find: %d %q", code, out)
	}
	if code, out := ctl("delete", name); code != 0 {
		t.Fatalf("delete: %d %s", code, out)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.get(name); ok {
		t.Fatal("still in the replica after delete")
	}
	// Guarded: a second delete is refused without crashing the master.
	if code, _ := ctl("delete", name); code != 1 {
		t.Fatalf("delete of a missing entry: exit %d", code)
	}
	if code, _ := ctl("find", name); code != 1 {
		t.Fatalf("find of a missing entry: exit %d", code)
	}
	if st := f.Status(); st.Reconnects != 0 {
		t.Fatalf("the master's stream broke: %+v", st)
	}
}

// TestMUPDATECtlSyncDovecot: mupdatectl sync puts Dovecot users' real
// mailboxes into the master; the master's LIST for Dovecot's location then
// equals Dovecot's mailboxes, and a second run changes nothing.
func TestMUPDATECtlSyncDovecot(t *testing.T) {
	env := itenv.Load(t)
	ctx := mcCtx(t)
	bin := filepath.Join(t.TempDir(), "mupdatectl")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/imapfront/imapfront/cmd/mupdatectl").CombinedOutput(); err != nil {
		t.Fatalf("build mupdatectl: %v\n%s", err, out)
	}
	loc := env.Dovecot + "!default"
	c := mcAdminConn(t, env)
	cleanup := func() {
		all, _ := c.List(context.Background(), loc)
		for _, e := range all {
			if e.Location == loc {
				c.SafeDelete(context.Background(), e.Name)
			}
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	users := []string{"carol", "dave"}
	sync := func(extra ...string) (int, string, string) {
		args := append([]string{"-server", env.MUPDATE, "-user", env.MUPDATEUser, "sync",
			"-backend", env.Dovecot, "-backend-tls", "starttls", "-backend-ca", env.DovecotCA,
			"-location", loc, "-proxy-user", env.DovecotMasterUser}, extra...)
		cmd := exec.CommandContext(ctx, bin, append(args, users...)...)
		cmd.Env = append(os.Environ(), "MUPDATE_PASSWORD="+env.MUPDATEPass, "MUPDATECTL_BACKEND_PASSWORD="+env.DovecotMasterPass)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stdout.String(), stderr.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, stdout.String(), stderr.String()
	}
	if code, out, errOut := sync("-dry-run"); code != 0 || !strings.Contains(out, "would ACTIVATE\tuser.carol\t") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errOut)
	}
	if all, _ := c.List(ctx, loc); len(all) != 0 {
		t.Fatalf("the dry run wrote %v", all)
	}
	code, out, errOut := sync()
	if code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errOut)
	}
	got := map[string]bool{}
	all, err := c.List(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		got[e.Name] = true
	}
	want := map[string]bool{"user.carol": true, "user.dave": true}
	for _, f := range itenv.SeededFolders("carol") {
		want["user.carol."+strings.ReplaceAll(f, "/", ".")] = true
	}
	if !maps.Equal(got, want) {
		t.Fatalf("master's LIST for Dovecot:\n got %v\nwant %v\nsync said:\n%s", got, want, out)
	}
	code, out, errOut = sync()
	if code != 0 || out != "" || !strings.Contains(errOut, "0 activated, 0 deleted") {
		t.Fatalf("second sync: %d %q %q", code, out, errOut)
	}
}
