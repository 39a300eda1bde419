//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdated/lincheck"
)

// Tests of mupdated (issue 21) with the real Cyrus servers: the lab's second
// Murder (backend be3, front end fe3) has a 3-member mupdated cluster behind
// HAProxy as its MUPDATE master (run.sh, "mupdated" blocks).

// mdEnv is the mupdated part of the lab's environment.
type mdEnv struct {
	itenv.Env
	HA                   string   // HAProxy: the one address the Murder uses
	Members, Metrics     []string // each member's MUPDATE and /readyz address
	PIDFiles, Configs    []string
	Bin                  string
	BE3, FE3, FE3MUPDATE string
}

func loadMD(t *testing.T) mdEnv {
	t.Helper()
	env := itenv.Load(t)
	var missing []string
	get := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	e := mdEnv{Env: env,
		HA:         get("IMAPFRONT_IT_MUPDATED"),
		Members:    strings.Fields(get("IMAPFRONT_IT_MUPDATED_MEMBERS")),
		Metrics:    strings.Fields(get("IMAPFRONT_IT_MUPDATED_METRICS")),
		PIDFiles:   strings.Fields(get("IMAPFRONT_IT_MUPDATED_PIDFILES")),
		Configs:    strings.Fields(get("IMAPFRONT_IT_MUPDATED_CONFIGS")),
		Bin:        get("IMAPFRONT_IT_MUPDATED_BIN"),
		BE3:        get("IMAPFRONT_IT_CYRUS_BE3"),
		FE3:        get("IMAPFRONT_IT_CYRUS_FE3"),
		FE3MUPDATE: get("IMAPFRONT_IT_CYRUS_FE3_MUPDATE"),
	}
	if len(missing) > 0 {
		t.Fatalf("the lab has no mupdated (old run.sh?): missing %s", strings.Join(missing, " "))
	}
	return e
}

func mdCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mdDial connects to addr as the MUPDATE admin. Through HAProxy a
// connection may land on a member that just died: retried, bounded.
func mdDial(t *testing.T, e mdEnv, addr string) *mupdatec.Conn {
	t.Helper()
	return mdDialAs(t, addr, e.MUPDATEUser, e.MUPDATEPass)
}

func mdDialAs(t *testing.T, addr, user, pass string) *mupdatec.Conn {
	t.Helper()
	ctx := mdCtx(t)
	var last error
	for range 50 {
		c, err := mupdatec.Dial(ctx, addr, nil)
		if err == nil {
			err = c.Authenticate(ctx, sasl.NewPlainClient("", user, pass))
			if err == nil {
				t.Cleanup(func() { c.Close() })
				return c
			}
			c.Close()
		}
		last = err
		select {
		case <-time.After(100 * time.Millisecond): // retry interval of a failed dial
		case <-ctx.Done():
		}
	}
	t.Fatalf("MUPDATE %s: %v", addr, last)
	return nil
}

// waitSink is a map Sink that signals every change.
type waitSink struct {
	mcSink
	mu      sync.Mutex
	changed chan struct{}
}

func newWaitSink() *waitSink {
	return &waitSink{mcSink: mcSink{m: map[string]mupdatec.Entry{}}, changed: make(chan struct{})}
}

func (s *waitSink) signal() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}
func (s *waitSink) StartResync() mupdatec.Loader {
	return &waitLoader{mcLoader{s: &s.mcSink, m: map[string]mupdatec.Entry{}}, s}
}
func (s *waitSink) Put(name string, reserved bool, location, acl string) {
	s.mcSink.Put(name, reserved, location, acl)
	s.signal()
}
func (s *waitSink) Delete(name string) {
	s.mcSink.Delete(name)
	s.signal()
}

type waitLoader struct {
	mcLoader
	w *waitSink
}

func (l *waitLoader) Commit() {
	l.mcLoader.Commit()
	l.w.signal()
}

// until waits, on the sink's changes, for cond to hold (30 s at most).
func (s *waitSink) until(t *testing.T, what string, cond func(map[string]mupdatec.Entry) bool) {
	t.Helper()
	s.untilWithin(t, 30*time.Second, what, cond)
}

func (s *waitSink) untilWithin(t *testing.T, d time.Duration, what string, cond func(map[string]mupdatec.Entry) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s.snapshot()) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("never saw %s", what)
		}
	}
}

// mdFollow runs a follower of addr (user/pass) and waits for its dump.
func mdFollow(t *testing.T, addr, user, pass string) (*mupdatec.Follower, *waitSink) {
	t.Helper()
	sink := newWaitSink()
	f := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: addr, Sink: sink,
		Auth:       func() (sasl.Client, error) { return sasl.NewPlainClient("", user, pass), nil },
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := f.WaitReady(mdCtx(t)); err != nil {
		t.Fatalf("follower of %s: %v", addr, err)
	}
	return f, sink
}

// startIMAPFront runs the imapfront binary (built by run.sh) with a TOML
// configuration whose MUPDATE master is mupdated (through HAProxy) and
// whose one backend is be3; it returns the IMAP address once /readyz says
// the replica is loaded.
func startIMAPFront(t *testing.T, e mdEnv) string {
	t.Helper()
	bin := os.Getenv("IMAPFRONT_IT_IMAPFRONT_BIN")
	if bin == "" {
		t.Fatal("IMAPFRONT_IT_IMAPFRONT_BIN is not set (old run.sh?)")
	}
	dir := t.TempDir()
	addr, maddr := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`hostname = "imapfront-it-mupdated"
[listen]
imap = %q
allow_plaintext = true
[auth]
method = "backend"
admins = [%q]
[mupdate]
server = %q
user = %q
password = %q
[metrics]
listen = %q
[placement]
default_backend = %q
[[backend]]
server = %q
tls = "none"
proxy_user = %q
proxy_password = %q
separator = "/"
`, addr, e.CyrusAdminUser, e.HA, e.MUPDATEUser, e.MUPDATEPass, maddr, e.BE3, e.BE3, e.CyrusAdminUser, e.CyrusAdminPass)
	if err := os.WriteFile(dir+"/imapfront.toml", []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", dir+"/imapfront.toml")
	logf, err := os.Create(dir + "/imapfront.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for readyz(maddr) != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(dir + "/imapfront.log")
			t.Fatalf("imapfront on mupdated not ready after 30 s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of the readiness probe
	}
	return addr
}

func imapLogin(t *testing.T, e mdEnv, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c := dialIMAP(t, e.Env, addr, plain)
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("LOGIN %s at %s: %v", user, addr, err)
	}
	return c
}

// mdEnsureAlice gives alice an INBOX on be3 (the second Murder's only
// backend), created by the Cyrus admin, which be3 puts into mupdated.
func mdEnsureAlice(t *testing.T, e mdEnv) {
	t.Helper()
	c := mdDial(t, e, e.HA)
	if _, ok, err := c.Find(mdCtx(t), "user.alice"); err != nil {
		t.Fatal(err)
	} else if ok {
		return
	}
	adm := imapLogin(t, e, e.BE3, e.CyrusAdminUser, e.CyrusAdminPass)
	if err := adm.Create("user/alice", nil).Wait(); err != nil {
		t.Fatalf("CREATE user/alice on be3: %v", err)
	}
	if ent, ok, err := c.Find(mdCtx(t), "user.alice"); err != nil || !ok || ent.Server() != e.BE3 {
		t.Fatalf("be3's CREATE did not land in mupdated: %+v %v %v", ent, ok, err)
	}
}

// findOnEveryMember checks that every member answers FIND name alike.
func findOnEveryMember(t *testing.T, e mdEnv, name string, want bool) mupdatec.Entry {
	t.Helper()
	var first mupdatec.Entry
	for i, m := range e.Members {
		ent, ok, err := mdDial(t, e, m).Find(mdCtx(t), name)
		if err != nil {
			t.Fatalf("FIND %s on member %d: %v", name, i+1, err)
		}
		if ok != want {
			t.Fatalf("FIND %s on member %d: present=%v, want %v", name, i+1, ok, want)
		}
		if i == 0 {
			first = ent
		} else if ent != first {
			t.Fatalf("members disagree on %s: %+v vs %+v", name, first, ent)
		}
	}
	return first
}

func listHas(t *testing.T, c *imapclient.Client, name string) bool {
	t.Helper()
	boxes, err := c.List("", name, nil).Collect()
	if err != nil {
		t.Fatalf("LIST %s: %v", name, err)
	}
	return len(boxes) == 1
}

// CREATE, RENAME and DELETE through Cyrus's own front end and through
// imapfront land in etcd (every member answers the same) and reach every
// front end (fe3's MUPDATE slave, imapfront's replica).
func TestMupdatedCyrusMurder(t *testing.T) {
	e := loadMD(t)
	alice := e.MustUser(t, "alice")
	mdEnsureAlice(t, e)
	// fe3's slave must be current with mupdated: after the member its
	// stream was on died (an earlier run of the kill tests on this lab),
	// Cyrus's slave reconnects only after 30-40 s and resyncs without
	// telling the clients of its own streams. Write a fresh entry and wait
	// until the slave's FIND has it (5 s on a fresh lab: the slave batches).
	probe := "zz-imapfront-it-mupdated.probe." + strconv.FormatInt(time.Now().UnixNano(), 36)
	pc := mdDial(t, e, e.HA)
	if err := pc.Activate(mdCtx(t), probe, "zz!p", "x\tlr\t"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Delete(context.Background(), probe) })
	sc := mdDialAs(t, e.FE3MUPDATE, e.CyrusAdminUser, e.CyrusAdminPass)
	if !eventually(90*time.Second, func() bool {
		_, ok, err := sc.Find(mdCtx(t), probe)
		return err == nil && ok
	}) {
		t.Fatal("fe3's MUPDATE slave never caught up with mupdated")
	}
	_, slave := mdFollow(t, e.FE3MUPDATE, e.CyrusAdminUser, e.CyrusAdminPass)
	fe := imapLogin(t, e, e.FE3, "alice", alice.Password)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	viaFE, renamed := "MdFe"+suffix, "MdFeRenamed"+suffix
	if err := fe.Create(viaFE, nil).Wait(); err != nil {
		t.Fatalf("CREATE through Cyrus's front end: %v", err)
	}
	ent := findOnEveryMember(t, e, "user.alice."+viaFE, true)
	if ent.Reserved || ent.Server() != e.BE3 || !strings.Contains(ent.ACL, "alice\t") {
		t.Fatalf("entry after CREATE: %+v", ent)
	}
	if !listHas(t, fe, viaFE) { // fe3 NOOP-syncs its slave after a proxied CREATE
		t.Fatalf("Cyrus front end's LIST lacks %s", viaFE)
	}
	if err := fe.Rename(viaFE, renamed, nil).Wait(); err != nil {
		t.Fatalf("RENAME through Cyrus's front end: %v", err)
	}
	findOnEveryMember(t, e, "user.alice."+viaFE, false)
	if ent := findOnEveryMember(t, e, "user.alice."+renamed, true); ent.Server() != e.BE3 {
		t.Fatalf("renamed entry: %+v", ent)
	}

	// imapfront (the daemon) on the same mupdated sees fe3's work and
	// writes its own.
	ic := imapLogin(t, e, startIMAPFront(t, e), "alice", alice.Password)
	if !listHas(t, ic, renamed) {
		t.Fatalf("imapfront's LIST lacks %s", renamed)
	}
	viaIF := "MdIf" + suffix
	if err := ic.Create(viaIF, nil).Wait(); err != nil {
		t.Fatalf("CREATE through imapfront: %v", err)
	}
	findOnEveryMember(t, e, "user.alice."+viaIF, true)
	slave.until(t, viaIF+" on fe3's slave", func(m map[string]mupdatec.Entry) bool {
		ent, ok := m["user.alice."+viaIF]
		return ok && !ent.Reserved
	})
	if !listHas(t, fe, viaIF) {
		t.Fatalf("Cyrus front end's LIST lacks %s created through imapfront", viaIF)
	}
	if err := ic.Rename(viaIF, viaIF+"R", nil).Wait(); err != nil {
		t.Fatalf("RENAME through imapfront: %v", err)
	}
	findOnEveryMember(t, e, "user.alice."+viaIF, false)
	findOnEveryMember(t, e, "user.alice."+viaIF+"R", true)
	for _, del := range []struct {
		c    *imapclient.Client
		name string
	}{{ic, viaIF + "R"}, {fe, renamed}} {
		if err := del.c.Delete(del.name).Wait(); err != nil {
			t.Fatalf("DELETE %s: %v", del.name, err)
		}
		findOnEveryMember(t, e, "user.alice."+del.name, false)
		slave.until(t, del.name+" gone from fe3's slave", func(m map[string]mupdatec.Entry) bool {
			_, ok := m["user.alice."+del.name]
			return !ok
		})
	}
	if !eventually(15*time.Second, func() bool { return !listHas(t, ic, renamed) && !listHas(t, fe, viaIF+"R") }) {
		t.Fatal("deleted mailboxes still in imapfront's or Cyrus's LIST")
	}
}

// DELETE and DEACTIVATE of missing names (which crash Cyrus's master) are
// NO on every member, and every stream carries on.
func TestMupdatedNoCrash(t *testing.T) {
	e := loadMD(t)
	_, sink := mdFollow(t, e.HA, e.MUPDATEUser, e.MUPDATEPass)
	_, slave := mdFollow(t, e.FE3MUPDATE, e.CyrusAdminUser, e.CyrusAdminPass)
	for _, m := range e.Members {
		c := mdDial(t, e, m)
		ctx := mdCtx(t)
		var se *mupdatec.ServerError
		if err := c.Delete(ctx, "user.nosuch.crash"); !errors.As(err, &se) || se.Status != "NO" {
			t.Fatalf("DELETE of a missing name on %s: %v", m, err)
		}
		if err := c.Deactivate(ctx, "user.nosuch.crash", e.BE3+"!default"); !errors.As(err, &se) || se.Status != "NO" {
			t.Fatalf("DEACTIVATE of a missing name on %s: %v", m, err)
		}
	}
	name := "zz-imapfront-it-mupdated.nocrash." + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := mdDial(t, e, e.HA)
	if err := c.Activate(mdCtx(t), name, "zz!p", "x\tlr\t"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), name) })
	for _, s := range []*waitSink{sink, slave} {
		s.until(t, name+" on a stream after the NOs", func(m map[string]mupdatec.Entry) bool { _, ok := m[name]; return ok })
	}
}

func readyz(addr string) error {
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + addr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// killMember SIGKILLs member i (0-based) and waits for its exit.
func killMember(t *testing.T, e mdEnv, i int) {
	t.Helper()
	b, err := os.ReadFile(e.PIDFiles[i])
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "mupdated" {
		t.Fatalf("pid %d of member %d is not mupdated (%q)", pid, i+1, comm)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The member's MUPDATE port closes when the process is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", e.Members[i], time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("member %d still accepts connections after SIGKILL", i+1)
		}
		time.Sleep(50 * time.Millisecond) // poll interval: the kernel closes the socket with the process
	}
}

// waitFailover waits until every member but the dead ones is ready: after
// a member is lost, if it led the cluster, the others elect a new leader
// (a write already on its way to the dead leader waits op_timeout and gets
// NO "mailbox database unavailable": etcd does not retry a lost proposal).
func waitFailover(t *testing.T, e mdEnv, dead ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := range e.Members {
		if slices.Contains(dead, i) {
			continue
		}
		for readyz(e.Metrics[i]) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("member %d not ready 30 s after member(s) %v died", i+1, dead)
			}
			time.Sleep(100 * time.Millisecond) // poll interval of the readiness probe
		}
	}
}

// restartMember starts member i again from its configuration (the lab's
// pidfile gets the new pid, so run.sh down stops it) and waits until it
// is ready (it has caught up with the cluster).
func restartMember(t *testing.T, e mdEnv, i int) {
	t.Helper()
	logf, err := os.OpenFile(strings.TrimSuffix(e.Configs[i], "mupdated.toml")+"mupdated.log", os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(e.Bin, "-config", e.Configs[i])
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := os.WriteFile(e.PIDFiles[i], []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for readyz(e.Metrics[i]) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("member %d not ready 60 s after restart", i+1)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of the readiness probe
	}
}

// One member (with its etcd member) killed, then restarted, then another:
// once the survivors have a leader, the Murder keeps creating mailboxes
// through Cyrus and HAProxy, imapfront and a follower keep up, and every
// member ends with the same entries.
func TestMupdatedMemberKilled(t *testing.T) {
	e := loadMD(t)
	alice := e.MustUser(t, "alice")
	mdEnsureAlice(t, e)
	fol, sink := mdFollow(t, e.HA, e.MUPDATEUser, e.MUPDATEPass)
	ic := imapLogin(t, e, startIMAPFront(t, e), "alice", alice.Password)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	for _, i := range []int{0, 1} {
		killMember(t, e, i)
		waitFailover(t, e, i)
		fe := imapLogin(t, e, e.FE3, "alice", alice.Password)
		name := fmt.Sprintf("MdKill%d%s", i+1, suffix)
		if err := fe.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE through Cyrus with member %d down: %v", i+1, err)
		}
		t.Cleanup(func() {
			c := imapLogin(t, e, e.FE3, "alice", alice.Password)
			c.Delete(name).Wait()
		})
		// imapfront's follower (through HAProxy) reconnects within a second
		// if its member died. (Cyrus's own front end would lag here: its
		// slave retries only after 20-40 s.)
		if !eventually(15*time.Second, func() bool { return listHas(t, ic, name) }) {
			t.Fatalf("%s never in imapfront's LIST with member %d down", name, i+1)
		}
		sink.until(t, name+" on the follower", func(m map[string]mupdatec.Entry) bool { _, ok := m["user.alice."+name]; return ok })
		restartMember(t, e, i)
		findOnEveryMember(t, e, "user.alice."+name, true)
	}
	if err := fol.Sync(mdCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := mcList(t, mdDial(t, e, e.HA))
	got := sink.snapshot()
	if len(got) != len(want) {
		t.Fatalf("follower has %d entries, the cluster %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("follower's %s = %+v, cluster's %+v", k, got[k], v)
		}
	}
	for i, m := range e.Members {
		if l := mcList(t, mdDial(t, e, m)); len(l) != len(want) {
			t.Fatalf("member %d lists %d entries, want %d", i+1, len(l), len(want))
		}
	}
}

// Several clients run at least 1,000 RESERVE/ACTIVATE/DEACTIVATE/DELETE/FIND
// on overlapping names, each connected to one member directly, while member
// 1 (with its etcd member) is killed and restarted, then member 2. The
// recorded history, closed by a FIND of every name at the end, is
// linearizable (porcupine, against lincheck's model of the MUPDATE states):
// so every acknowledged write is in the final database and no failed one
// is. A follower through HAProxy ends equal to every member.
func TestMupdatedLinearizableWithKills(t *testing.T) {
	e := loadMD(t)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var names []string
	for i := range 4 {
		names = append(names, fmt.Sprintf("zz-imapfront-it-mupdated.lin.%s.n%d", run, i))
	}
	t.Cleanup(func() {
		c := mdDial(t, e, e.HA)
		for _, n := range names {
			c.Delete(context.Background(), n)
		}
	})
	fol, sink := mdFollow(t, e.HA, e.MUPDATEUser, e.MUPDATEPass)
	w := lincheck.Workload{
		Names: names, Locations: []string{"zzlin-a!p", "zzlin-b!p"}, ACLs: []string{"x\tlr\t", "y\tlrs\t"},
		Clients: 6, OpTimeout: 8 * time.Second, Seed: uint64(time.Now().UnixNano()),
		Dial: func(ctx context.Context, client, attempt int) (*mupdatec.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			c, err := mupdatec.Dial(dctx, e.Members[(client+attempt)%len(e.Members)], nil)
			if err != nil {
				return nil, err
			}
			if err := c.Authenticate(dctx, sasl.NewPlainClient("", e.MUPDATEUser, e.MUPDATEPass)); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	rec := lincheck.NewRecorder()
	ctx := mdCtx(t)
	var done bool
	var doneMu sync.Mutex
	more := func(n int) bool {
		doneMu.Lock()
		defer doneMu.Unlock()
		return n < 1000 || !done
	}
	workDone := make(chan struct{})
	go func() { defer close(workDone); w.Run(ctx, rec, more) }()
	step := func(n int, what string, f func()) {
		if err := rec.Wait(ctx, n); err != nil {
			t.Fatalf("workload stalled before %d operations: %v", n, err)
		}
		start := time.Now()
		f()
		t.Logf("%s after %d operations (%v)", what, rec.Len(), time.Since(start).Round(time.Millisecond))
	}
	step(150, "member 1 killed", func() { killMember(t, e, 0) })
	step(350, "member 1 restarted", func() { restartMember(t, e, 0) })
	step(550, "member 2 killed", func() { killMember(t, e, 1) })
	step(750, "member 2 restarted", func() { restartMember(t, e, 1) })
	doneMu.Lock()
	done = true
	doneMu.Unlock()
	<-workDone
	// Close the history: the final state of every name, read on every member.
	final := map[string]mupdatec.Entry{}
	for _, m := range e.Members {
		c := mdDial(t, e, m)
		for _, n := range names {
			call := rec.Now()
			ent, ok, err := c.Find(ctx, n)
			ret := rec.Now()
			if err != nil {
				t.Fatalf("final FIND %s on %s: %v", n, m, err)
			}
			rec.Add(100, lincheck.Input{Op: lincheck.Find, Name: n}, call, lincheck.Output{Status: lincheck.OK, Found: ok, Entry: ent}, ret)
			if ok {
				final[n] = ent
			}
		}
	}
	counts := rec.Counts()
	t.Logf("%d operations: %d OK, %d NO, %d unknown (seed %d)", rec.Len(), counts[lincheck.OK], counts[lincheck.NO],
		counts[lincheck.Unknown], w.Seed)
	if res := rec.Check(time.Minute); res != porcupine.Ok {
		t.Fatalf("history is %s (seed %d)", res, w.Seed)
	}
	if counts[lincheck.OK] < 500 || counts[lincheck.NO] == 0 {
		t.Fatalf("counts %v: the workload did too little to mean anything", counts)
	}
	if err := fol.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := sink.snapshot()
	for _, n := range names {
		want, wok := final[n]
		have, hok := got[n]
		if wok != hok || want != have {
			t.Fatalf("follower's %s = %+v (%v), members' %+v (%v)", n, have, hok, want, wok)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// mupdated import copies the real Cyrus master's database (UPDATE dump);
// a single-member mupdated on the result lists exactly what Cyrus lists.
func TestMupdatedImportFromCyrus(t *testing.T) {
	e := loadMD(t)
	dir := t.TempDir()
	pw := dir + "/pw"
	if err := os.WriteFile(pw, []byte(e.MUPDATEPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	etcdFlags := []string{"-data", dir + "/data", "-etcd-client-url", "http://" + freeAddr(t), "-etcd-peer-url", "http://" + freeAddr(t)}
	want := mcList(t, mdDial(t, e, e.MUPDATE))
	out, err := exec.Command(e.Bin, append([]string{"import", "-from", e.MUPDATE, "-user", e.MUPDATEUser,
		"-password-file", pw}, etcdFlags...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mupdated import: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("imported %d entries", len(want))) {
		t.Logf("import: %s (Cyrus lists %d; a concurrent test may have changed it)", out, len(want))
	}
	listen := freeAddr(t)
	cmd := exec.Command(e.Bin, append([]string{"-listen", listen, "-metrics", "", "-admin", e.MUPDATEUser + ":" + e.MUPDATEPass}, etcdFlags...)...)
	var logb strings.Builder
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	var c *mupdatec.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cc, err := mupdatec.Dial(ctx, listen, nil)
		cancel()
		if err == nil {
			c = cc
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("imported mupdated did not start: %v\n%s", err, logb.String())
		}
		time.Sleep(100 * time.Millisecond) // poll interval while the member starts
	}
	defer c.Close()
	if err := c.Authenticate(mdCtx(t), sasl.NewPlainClient("", e.MUPDATEUser, e.MUPDATEPass)); err != nil {
		t.Fatal(err)
	}
	got := mcList(t, c)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: Cyrus %+v, imported %+v", k, v, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("imported %d entries, Cyrus has %d", len(got), len(want))
	}
}

// AUTHENTICATE GSSAPI to mupdated with a ticket from the lab's MIT KDC
// (service keytab mupdate/localhost), as Cyrus's GSSAPI master is used.
func TestMupdatedGSSAPI(t *testing.T) {
	e := loadMD(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	conf := fmt.Sprintf(`listen = %q
metrics = ""
allow_plaintext = false
[gssapi]
keytab = %q
admins = ["mupdateuser"]
[embed]
dir = %q
client_url = "http://%s"
peer_url = "http://%s"
`, listen, e.KRB5ServicesKeytab, dir+"/data", freeAddr(t), freeAddr(t))
	if err := os.WriteFile(dir+"/mupdated.toml", []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.Bin, "-config", dir+"/mupdated.toml")
	var logb strings.Builder
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	ctx := mdCtx(t)
	var c *mupdatec.Conn
	if !eventually(30*time.Second, func() bool {
		cc, err := mupdatec.Dial(ctx, listen, nil)
		c = cc
		return err == nil
	}) {
		t.Fatalf("mupdated with GSSAPI did not start:\n%s", logb.String())
	}
	defer c.Close()
	if m := c.Banner().Mechanisms; len(m) != 1 || m[0] != "GSSAPI" {
		t.Fatalf("banner mechanisms %v, want GSSAPI only", m)
	}
	if err := c.Authenticate(ctx, gssInitiator(t, e.Env, "mupdateuser").NewClient("mupdate/localhost", "")); err != nil {
		t.Fatalf("GSSAPI login: %v\n%s", err, logb.String())
	}
	if err := c.Activate(ctx, "user.krbtest", "zz!p", "x\tlr\t"); err != nil {
		t.Fatal(err)
	}
	other, err := mupdatec.Dial(ctx, listen, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Authenticate(ctx, gssInitiator(t, e.Env, "alice").NewClient("mupdate/localhost", "")); err == nil {
		t.Fatal("alice (no admin) logged in with GSSAPI")
	}
}
