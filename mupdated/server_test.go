package mupdated_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/gssapi/gssapitest"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdated"
)

const (
	loc1 = "127.0.0.1:12143!default"
	loc2 = "127.0.0.1:12243!default"
	acl  = "alice\tlrswipkxtecdan\t"
)

func wantServerError(t *testing.T, err error, status, text string) {
	t.Helper()
	var se *mupdatec.ServerError
	if !errors.As(err, &se) || se.Status != status || se.Text != text {
		t.Fatalf("got %v, want %s %q", err, status, text)
	}
}

func TestBannerAndLogin(t *testing.T) {
	_, addr := startServer(t, newStore(t), nil)
	ctx := ctxT(t)
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Banner()
	if !b.Master || !b.PartialUpdate || !b.HasMechanism("PLAIN") || !b.HasMechanism("LOGIN") || b.StartTLS {
		t.Fatalf("banner %+v", b)
	}
	wantServerError(t, c.Noop(ctx), "BAD", "Please login first")
	wantServerError(t, c.Authenticate(ctx, sasl.NewPlainClient("", admin, "wrong")), "NO", "undefined error!")
	wantServerError(t, c.Authenticate(ctx, sasl.NewPlainClient("", "nobody", adminP)), "NO", "undefined error!")
	// An admin may not log in as somebody else.
	wantServerError(t, c.Authenticate(ctx, sasl.NewPlainClient("alice", admin, adminP)), "NO", "undefined error!")
	if err := c.Authenticate(ctx, sasl.NewLoginClient(admin, adminP)); err != nil {
		t.Fatal(err)
	}
	wantServerError(t, c.Authenticate(ctx, sasl.NewPlainClient("", admin, adminP)), "BAD", "already authenticated")
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNoPlaintextLogin(t *testing.T) {
	_, addr := startServer(t, newStore(t), func(o *mupdated.Options) { o.AllowPlaintext = false })
	ctx := ctxT(t)
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b := c.Banner(); len(b.Mechanisms) != 0 {
		t.Fatalf("mechanisms offered without TLS: %v", b.Mechanisms)
	}
	wantServerError(t, c.Authenticate(ctx, sasl.NewPlainClient("", admin, adminP)), "NO", "undefined error!")
}

// The write commands follow Cyrus's answers, except that what crashes
// Cyrus is a NO here, and RESERVE never demotes an active entry.
func TestWrites(t *testing.T) {
	st := newStore(t)
	_, addr := startServer(t, st, nil)
	_, sink := follow(t, addr)
	c := dial(t, addr)
	ctx := ctxT(t)
	const name = "user.alice.wiretest"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	find := func() (mupdatec.Entry, bool) {
		t.Helper()
		e, ok, err := c.Find(ctx, name)
		must(err)
		return e, ok
	}
	wantServerError(t, c.Delete(ctx, name), "NO", "mailbox not found")
	wantServerError(t, c.Deactivate(ctx, name, loc1), "NO", "mailbox not found")
	must(c.Reserve(ctx, name, loc1))
	must(c.Reserve(ctx, name, loc1)) // same reservation: idempotent
	wantServerError(t, c.Reserve(ctx, name, loc2), "NO", "mailbox already exists")
	if e, ok := find(); !ok || !e.Reserved || e.Location != loc1 {
		t.Fatalf("after RESERVE: %+v %v", e, ok)
	}
	wantServerError(t, c.Deactivate(ctx, name, loc1), "NO", "mailbox not currently active")
	must(c.Activate(ctx, name, loc1, acl))
	if e, ok := find(); !ok || e.Reserved || e.Location != loc1 || e.ACL != acl {
		t.Fatalf("after ACTIVATE: %+v %v", e, ok)
	}
	// Cyrus demotes the entry here and loses its ACL; mupdated refuses.
	wantServerError(t, c.Reserve(ctx, name, loc1), "NO", "mailbox already exists")
	wantServerError(t, c.Deactivate(ctx, name, loc2), "NO", "mailbox not currently active")
	must(c.Activate(ctx, name, loc2, "bob\tlr\t")) // ACTIVATE moves
	must(c.Deactivate(ctx, name, loc2))
	if e, ok := find(); !ok || !e.Reserved || e.Location != loc2 || e.ACL != "" {
		t.Fatalf("after DEACTIVATE: %+v %v", e, ok)
	}
	must(c.Delete(ctx, name))
	if _, ok := find(); ok {
		t.Fatal("entry still there after DELETE")
	}
	wantServerError(t, c.Delete(ctx, name), "NO", "mailbox not found")
	// An empty ACL and odd bytes survive the round trip.
	odd := "user.alice.\x01\"quoted\" \\ é"
	must(c.Activate(ctx, odd, "h!", ""))
	if e, ok, err := c.Find(ctx, odd); err != nil || !ok || e.Location != "h!" || e.ACL != "" || e.Reserved {
		t.Fatalf("odd entry: %+v %v %v", e, ok, err)
	}
	// The stream stayed up through all of it and carries the result.
	f2, sink2 := follow(t, addr)
	must(f2.Sync(ctx))
	if d := diff(sink2.snapshot(), contents(t, st)); d != "" {
		t.Fatalf("second follower differs from the store:\n%s", d)
	}
	_ = sink
}

func TestFindListUpdate(t *testing.T) {
	st := newStore(t)
	_, addr := startServer(t, st, nil)
	c := dial(t, addr)
	ctx := ctxT(t)
	for i := range 5 {
		loc := loc1
		if i%2 == 1 {
			loc = loc2
		}
		if err := c.Activate(ctx, fmt.Sprintf("user.u%d", i), loc, acl); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reserve(ctx, "user.r", loc2); err != nil {
		t.Fatal(err)
	}
	all, err := c.List(ctx, "")
	if err != nil || len(all) != 6 {
		t.Fatalf("LIST: %d entries, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Name >= all[i].Name {
			t.Fatalf("LIST not sorted: %v", all)
		}
	}
	two, err := c.List(ctx, "127.0.0.1:12243")
	if err != nil || len(two) != 3 {
		t.Fatalf("LIST prefix: %v %v", two, err)
	}
	if none, err := c.List(ctx, "user."); err != nil || len(none) != 0 {
		t.Fatalf("LIST of a name prefix (it is a location prefix): %v %v", none, err)
	}

	// A full follower and one for 127.0.0.1:12243 only.
	fAll, sinkAll := follow(t, addr)
	fTwo, sinkTwo := follow(t, addr, "127.0.0.1:12243")
	if len(sinkAll.snapshot()) != 6 || len(sinkTwo.snapshot()) != 3 {
		t.Fatalf("dumps: %d and %d entries", len(sinkAll.snapshot()), len(sinkTwo.snapshot()))
	}
	// Changes through a second server on the same store reach both.
	_, addr2 := startServer(t, st, nil)
	c2 := dial(t, addr2)
	if err := c2.Activate(ctx, "user.u1", loc1, acl); err != nil { // moves out of 12243
		t.Fatal(err)
	}
	if err := c2.Delete(ctx, "user.u3"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Activate(ctx, "user.new", loc2, acl); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*mupdatec.Follower{fAll, fTwo} {
		if err := f.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := contents(t, st)
	if d := diff(sinkAll.snapshot(), want); d != "" {
		t.Fatalf("full replica differs:\n%s", d)
	}
	wantTwo := map[string]mupdatec.Entry{}
	for k, e := range want {
		if e.Server() == "127.0.0.1:12243" {
			wantTwo[k] = e
		}
	}
	if d := diff(sinkTwo.snapshot(), wantTwo); d != "" {
		t.Fatalf("partial replica differs:\n%s", d)
	}
}

// NOOP on a stream returns only once every change committed before it
// (through any server) has been sent: no waiting or polling needed.
func TestNoopBarrier(t *testing.T) {
	st := newStore(t)
	_, addr := startServer(t, st, nil)
	_, addr2 := startServer(t, st, nil)
	f, sink := follow(t, addr)
	w := dial(t, addr2)
	ctx := ctxT(t)
	for i := range 50 {
		name := fmt.Sprintf("user.b%d", i)
		if err := w.Activate(ctx, name, loc1, acl); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := sink.snapshot()[name]; !ok {
			t.Fatalf("%s not in the replica after Sync", name)
		}
	}
	// A NOOP when no change at all happened under the prefix still
	// returns (progress notification).
	if _, err := etcdCli.Put(ctx, "/elsewhere", "x"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentReserve(t *testing.T) {
	st := newStore(t)
	_, addr := startServer(t, st, nil)
	_, addr2 := startServer(t, st, nil)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[string]int{}
	for i := range 8 {
		a := addr
		if i%2 == 1 {
			a = addr2
		}
		c := dial(t, a)
		loc := fmt.Sprintf("host%d!p", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				err := c.Reserve(ctx, fmt.Sprintf("user.race%d", j), loc)
				var se *mupdatec.ServerError
				switch {
				case err == nil:
					mu.Lock()
					won[fmt.Sprintf("user.race%d", j)]++
					mu.Unlock()
				case errors.As(err, &se) && se.Text == "mailbox already exists":
				default:
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for j := range 20 {
		if n := won[fmt.Sprintf("user.race%d", j)]; n != 1 {
			t.Errorf("user.race%d reserved by %d clients", j, n)
		}
	}
}

// A stream whose etcd watch ends gets BYE, and the follower redoes
// UPDATE and is current again.
func TestStreamLostGivesBye(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{member.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	st := mupdated.NewEtcdStore(cli, "/test/"+t.Name()+"/")
	_, addr := startServer(t, st, nil)
	ctx := ctxT(t)
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", admin, adminP)); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, nil, func(*mupdatec.Update) {}); err != nil {
		t.Fatal(err)
	}
	cli.Close() // the server's etcd connection is gone
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("stream not ended")
	}
	if !errors.Is(c.Err(), mupdatec.ErrBye) {
		t.Fatalf("stream ended with %v, want BYE", c.Err())
	}
}

// A watch from a compacted revision ends with ErrStreamLost.
func TestWatchCompacted(t *testing.T) {
	st := newStore(t)
	ctx := ctxT(t)
	if err := st.Activate(ctx, "a", loc1, acl); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Activate(ctx, "b", loc1, acl); err != nil {
		t.Fatal(err)
	}
	rev2, _ := st.Revision(ctx)
	if _, err := etcdCli.Compact(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	w, err := st.Watch(ctx, rev-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range w.Events() {
	}
	if !errors.Is(w.Err(), mupdated.ErrStreamLost) {
		t.Fatalf("watch ended with %v", w.Err())
	}
}

func TestCloseSaysBye(t *testing.T) {
	s, addr := startServer(t, newStore(t), nil)
	ctx := ctxT(t)
	c := dial(t, addr)
	if err := c.Update(ctx, nil, func(*mupdatec.Update) {}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	<-c.Done()
	if !errors.Is(c.Err(), mupdatec.ErrBye) {
		t.Fatalf("got %v, want BYE", c.Err())
	}
	_ = context.Background
}

// Over a network client, Scan uses RangeStream (one snapshot, linear);
// over the in-process client it falls back to pages. Both give the same
// sorted entries and a revision a watch can start from.
func TestScanStreamAndPages(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{member.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	prefix := "/test/" + t.Name() + "/"
	net := mupdated.NewEtcdStore(cli, prefix)
	inproc := mupdated.NewEtcdStore(etcdCli, prefix)
	ctx := ctxT(t)
	for _, st := range []*mupdated.EtcdStore{net, inproc} {
		if _, err := st.Scan(ctx, func(mupdatec.Entry) error { return nil }); err != nil {
			t.Fatalf("scan of an empty prefix: %v", err)
		}
	}
	const n = 25
	for i := range n {
		if err := net.Activate(ctx, fmt.Sprintf("user.s%02d", i), loc1, acl); err != nil {
			t.Fatal(err)
		}
	}
	var revs []int64
	for _, st := range []*mupdated.EtcdStore{net, inproc} {
		var names []string
		rev, err := st.Scan(ctx, func(e mupdatec.Entry) error { names = append(names, e.Name); return nil })
		if err != nil || len(names) != n {
			t.Fatalf("scan: %d entries, %v", len(names), err)
		}
		for i := range names {
			if names[i] != fmt.Sprintf("user.s%02d", i) {
				t.Fatalf("scan order: %v", names)
			}
		}
		revs = append(revs, rev)
	}
	if revs[0] != revs[1] || revs[0] == 0 {
		t.Fatalf("revisions %v", revs)
	}
	if !net.UsesRangeStream() || inproc.UsesRangeStream() {
		t.Fatalf("RangeStream used: network %v, in-process %v", net.UsesRangeStream(), inproc.UsesRangeStream())
	}
}

// AUTHENTICATE GSSAPI (tickets forged by gssapitest's in-process KDC):
// offered without TLS, only the Kerberos admins get in, as themselves.
func TestGSSAPILogin(t *testing.T) {
	kdc, err := gssapitest.NewKDC("IMAPFRONT.TEST", "mupdate/localhost")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := gssapi.NewAcceptor(gssapi.AcceptorOptions{Keytab: kdc.Keytab})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, newStore(t), func(o *mupdated.Options) {
		o.AllowPlaintext = false
		o.GSSAPI, o.KerberosAdmins = acc, []string{"mupdateuser"}
	})
	ctx := ctxT(t)
	login := func(user, authzid string) (*mupdatec.Conn, error) {
		c, err := mupdatec.Dial(ctx, addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if m := c.Banner().Mechanisms; len(m) != 1 || m[0] != "GSSAPI" {
			t.Fatalf("mechanisms without TLS: %v", m)
		}
		return c, c.Authenticate(ctx, kdc.Client(user, "mupdate/localhost", authzid))
	}
	c, err := login("mupdateuser", "")
	if err != nil {
		t.Fatalf("GSSAPI login of a Kerberos admin: %v", err)
	}
	if err := c.Activate(ctx, "user.krb", loc1, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := login("alice", ""); err == nil {
		t.Fatal("a Kerberos user who is no admin got in")
	}
	if _, err := login("mupdateuser", "alice"); err == nil {
		t.Fatal("an admin got in as somebody else")
	}
	// PLAIN is not offered without TLS here, and refused.
	pc, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	wantServerError(t, pc.Authenticate(ctx, sasl.NewPlainClient("", admin, adminP)), "NO", "undefined error!")
}
