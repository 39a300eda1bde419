package mupdatec_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"go.uber.org/goleak"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	loc1 = "127.0.0.1:12143!default"
	loc2 = "127.0.0.1:12243!default"
	acl  = "alice\tlrswipkxtecdan\t"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T, opts mupdatetest.Options) (*mupdatetest.Server, string) {
	t.Helper()
	if opts.Users == nil {
		opts.Users = map[string]string{"mupdateuser": "mupdatepw", "alice": "alicepw"}
		opts.Admins = []string{"mupdateuser"}
	}
	if opts.UpdateInterval == 0 {
		opts.UpdateInterval = -1
	}
	s := mupdatetest.NewServer(opts)
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, addr
}

func dialAuth(t *testing.T, addr string) *mupdatec.Conn {
	t.Helper()
	ctx := testCtx(t)
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantServerError(t *testing.T, err error, status, text string) {
	t.Helper()
	var se *mupdatec.ServerError
	if !errors.As(err, &se) || se.Status != status || se.Text != text {
		t.Fatalf("got %v, want %s %q", err, status, text)
	}
}

func TestBanner(t *testing.T) {
	_, addr := newServer(t, mupdatetest.Options{ServerName: "mupdate-master"})
	c, err := mupdatec.Dial(testCtx(t), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Banner()
	if !b.Master || b.ServerName != "mupdate-master" || !b.HasMechanism("plain") || !b.HasMechanism("LOGIN") ||
		!b.PartialUpdate || b.StartTLS {
		t.Fatalf("banner %+v", b)
	}
	_, addr = newServer(t, mupdatetest.Options{ServerName: "127.0.0.1:11143", MasterURL: "mupdate://127.0.0.1:13905"})
	s, err := mupdatec.Dial(testCtx(t), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b := s.Banner(); b.Master || b.MasterURL != "mupdate://127.0.0.1:13905" || b.ServerName != "127.0.0.1:11143" {
		t.Fatalf("slave banner %+v", b)
	}
}

func TestAuthenticate(t *testing.T) {
	srv, addr := newServer(t, mupdatetest.Options{})
	ctx := testCtx(t)
	try := func(client sasl.Client) error {
		c, err := mupdatec.Dial(ctx, addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Authenticate(ctx, client)
	}
	if err := try(sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
	if err := try(sasl.NewLoginClient("mupdateuser", "mupdatepw")); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	wantServerError(t, try(sasl.NewPlainClient("", "mupdateuser", "wrong")), "NO", "undefined error!")
	wantServerError(t, try(sasl.NewPlainClient("", "alice", "alicepw")), "NO", "undefined error!") // not an admin
	srv.RefuseLogins(true)
	wantServerError(t, try(sasl.NewPlainClient("", "mupdateuser", "mupdatepw")), "NO", "undefined error!")
	srv.RefuseLogins(false)

	// Commands before login, and a second login.
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantServerError(t, c.Noop(ctx), "BAD", "Please login first")
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatal(err)
	}
	wantServerError(t, c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")), "BAD", "already authenticated")
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
}

// failingClient fails at its first challenge, so the client cancels.
type failingClient struct{}

func (failingClient) Start() (string, []byte, error) { return "PLAIN", nil, nil }
func (failingClient) Next([]byte) ([]byte, error)    { return nil, errors.New("no") }

func TestAuthenticateCancel(t *testing.T) {
	_, addr := newServer(t, mupdatetest.Options{})
	ctx := testCtx(t)
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantServerError(t, c.Authenticate(ctx, failingClient{}), "NO", "Client canceled authentication")
}

func TestCommands(t *testing.T) {
	srv, addr := newServer(t, mupdatetest.Options{})
	c := dialAuth(t, addr)
	ctx := testCtx(t)

	if _, ok, err := c.Find(ctx, "user.nosuch"); err != nil || ok {
		t.Fatalf("find missing: %v %v", ok, err)
	}
	if err := c.Reserve(ctx, "user.alice.wiretest", loc1); err != nil {
		t.Fatal(err)
	}
	if err := c.Reserve(ctx, "user.alice.wiretest", loc1); err != nil {
		t.Fatal(err) // idempotent
	}
	wantServerError(t, c.Reserve(ctx, "user.alice.wiretest", loc2), "NO", "mailbox already exists")
	e, ok, err := c.Find(ctx, "user.alice.wiretest")
	if err != nil || !ok || !e.Reserved || e.Location != loc1 || e.ACL != "" {
		t.Fatalf("find reserved: %+v %v %v", e, ok, err)
	}
	if err := c.Activate(ctx, "user.alice.wiretest", loc1, acl+"bob\tlr\t"); err != nil {
		t.Fatal(err)
	}
	e, ok, err = c.Find(ctx, "user.alice.wiretest")
	if err != nil || !ok || e.Reserved || e.ACL != acl+"bob\tlr\t" || e.Server() != "127.0.0.1:12143" || e.Partition() != "default" {
		t.Fatalf("find active: %+v %v %v", e, ok, err)
	}
	wantServerError(t, c.Deactivate(ctx, "user.alice.wiretest", loc2), "NO", "mailbox not currently active")
	if err := c.Deactivate(ctx, "user.alice.wiretest", loc1); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := c.Find(ctx, "user.alice.wiretest"); !e.Reserved {
		t.Fatalf("not reserved after DEACTIVATE: %+v", e)
	}
	if err := c.Delete(ctx, "user.alice.wiretest"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Find(ctx, "user.alice.wiretest"); ok {
		t.Fatal("still there after DELETE")
	}

	// LIST takes a location prefix, not a name prefix.
	srv.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	srv.Set(mupdatec.Entry{Name: "user.bob", Location: loc2, ACL: "bob\tlrswipkxtecdan\t"})
	srv.Set(mupdatec.Entry{Name: "user.bob.new", Location: loc2, Reserved: true})
	srv.Set(mupdatec.Entry{Name: "shared", Location: "127.0.0.1:12143!", ACL: ""})
	all, err := c.List(ctx, "")
	if err != nil || len(all) != 4 {
		t.Fatalf("list: %v %v", all, err)
	}
	bobs, err := c.List(ctx, "127.0.0.1:12243")
	if err != nil || len(bobs) != 2 || bobs[0].Name != "user.bob" || !bobs[1].Reserved {
		t.Fatalf("list prefix: %+v %v", bobs, err)
	}
	if none, err := c.List(ctx, "user.bob"); err != nil || len(none) != 0 {
		t.Fatalf("list by name prefix: %v %v", none, err)
	}
	if e, _, _ := c.Find(ctx, "shared"); e.Partition() != "" || e.Server() != "127.0.0.1:12143" {
		t.Fatalf("empty partition: %+v", e)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(ctx); !errors.Is(err, mupdatec.ErrClosed) && !errors.Is(err, mupdatec.ErrConnLost) {
		t.Fatalf("noop after logout: %v", err)
	}
}

func TestPipelining(t *testing.T) {
	srv, addr := newServer(t, mupdatetest.Options{})
	for i := range 50 {
		srv.Set(mupdatec.Entry{Name: fmt.Sprintf("user.u%d", i), Location: loc1, ACL: fmt.Sprintf("u%d\tlrs\t", i)})
	}
	c := dialAuth(t, addr)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, ok, err := c.Find(ctx, fmt.Sprintf("user.u%d", i))
			if err != nil || !ok || e.ACL != fmt.Sprintf("u%d\tlrs\t", i) {
				errs <- fmt.Errorf("find %d: %+v %v %v", i, e, ok, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConnectionLoss(t *testing.T) {
	srv, addr := newServer(t, mupdatetest.Options{})
	c := dialAuth(t, addr)
	ctx := testCtx(t)
	srv.DropAll()
	<-c.Done()
	if err := c.Noop(ctx); !errors.Is(err, mupdatec.ErrConnLost) {
		t.Fatalf("after drop: %v", err)
	}
	c2 := dialAuth(t, addr)
	c2.Close()
	if err := c2.Noop(ctx); !errors.Is(err, mupdatec.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestSafeWrites(t *testing.T) {
	srv, addr := newServer(t, mupdatetest.Options{})
	c := dialAuth(t, addr)
	ctx := testCtx(t)
	srv.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	srv.Set(mupdatec.Entry{Name: "user.alice.res", Location: loc1, Reserved: true})

	if err := c.SafeDelete(ctx, "user.nosuch.crash"); !errors.Is(err, mupdatec.ErrNotFound) {
		t.Fatalf("SafeDelete missing: %v", err)
	}
	if err := c.SafeDeactivate(ctx, "user.nosuch.crash", loc1); !errors.Is(err, mupdatec.ErrNotFound) {
		t.Fatalf("SafeDeactivate missing: %v", err)
	}
	if err := c.SafeDeactivate(ctx, "user.alice.res", loc1); !errors.Is(err, mupdatec.ErrNotActive) {
		t.Fatalf("SafeDeactivate reserved: %v", err)
	}
	if err := c.SafeReserve(ctx, "user.alice", loc1); !errors.Is(err, mupdatec.ErrExists) {
		t.Fatalf("SafeReserve over active: %v", err)
	}
	if e, _ := srv.Lookup("user.alice"); e.Reserved || e.ACL != acl {
		t.Fatalf("active entry demoted: %+v", e)
	}
	if err := c.SafeReserve(ctx, "user.alice.res", loc2); !errors.Is(err, mupdatec.ErrExists) {
		t.Fatalf("SafeReserve elsewhere: %v", err)
	}
	if err := c.SafeReserve(ctx, "user.alice.res", loc1); err != nil {
		t.Fatalf("SafeReserve same: %v", err)
	}
	if err := c.SafeReserve(ctx, "user.alice.new", loc1); err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(ctx, "user.alice.new", loc1, acl); err != nil {
		t.Fatal(err)
	}
	if err := c.SafeDeactivate(ctx, "user.alice.new", loc1); err != nil {
		t.Fatal(err)
	}
	if err := c.SafeDelete(ctx, "user.alice.new"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Crashes(); n != 0 {
		t.Fatalf("%d crashes", n)
	}
	// The raw command does crash the simulated master, as it does Cyrus.
	if err := c.Delete(ctx, "user.nosuch.crash"); !errors.Is(err, mupdatec.ErrConnLost) {
		t.Fatalf("raw DELETE of a missing name: %v", err)
	}
	if srv.Crashes() != 1 {
		t.Fatal("no crash")
	}
}

func TestUpdateStream(t *testing.T) {
	srv, addr := newServer(t, mupdatetest.Options{})
	srv.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	srv.Set(mupdatec.Entry{Name: "user.bob", Location: loc2, ACL: "bob\tlrswipkxtecdan\t"})
	srv.Set(mupdatec.Entry{Name: "user.bob.res", Location: loc2, Reserved: true})
	c := dialAuth(t, addr)
	ctx := testCtx(t)
	var mu sync.Mutex
	var got []string
	err := c.Update(ctx, []string{"127.0.0.1:12243"}, func(u *mupdatec.Update) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%d %s %v", u.Kind, u.Entry.Name, u.Entry.Reserved))
	})
	if err != nil {
		t.Fatal(err)
	}
	w := dialAuth(t, addr)
	if err := w.Activate(ctx, "user.bob.res", loc2, "bob\tlrs\t"); err != nil {
		t.Fatal(err)
	}
	if err := w.Activate(ctx, "user.alice.x", loc1, acl); err != nil { // other server: filtered
		t.Fatal(err)
	}
	if err := w.Delete(ctx, "user.bob"); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Find(ctx, "user.bob")
	wantServerError(t, err, "BAD", "not legal when streaming")
	mu.Lock()
	want := []string{"1 user.bob false", "1 user.bob.res true", "2  false", "3 user.bob.res false", "4 user.bob false"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	mu.Unlock()
	wantServerError(t, w.Update(ctx, []string{""}, func(*mupdatec.Update) {}), "BAD", "Badly formed arguments")
}

// script plays a canned Cyrus server on one end of a pipe: "S: " lines are
// sent, "C: " lines must be what the client sends.
func script(t *testing.T, steps []string) net.Conn {
	client, server := net.Pipe()
	done := make(chan struct{})
	t.Cleanup(func() { client.Close(); server.Close(); <-done })
	go func() {
		defer close(done)
		defer server.Close()
		r := bufio.NewReader(server)
		for _, st := range steps {
			if s, ok := strings.CutPrefix(st, "S: "); ok {
				if _, err := server.Write([]byte(s)); err != nil {
					t.Errorf("write %q: %v", s, err)
					return
				}
				continue
			}
			want := strings.TrimPrefix(st, "C: ")
			got := make([]byte, len(want))
			if _, err := ioReadFull(r, got); err != nil || string(got) != want {
				t.Errorf("client sent %q (%v), want %q", got, err, want)
				return
			}
		}
	}()
	return client
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

const cyrusBanner = "* AUTH \"PLAIN\" \"LOGIN\"\r\n* COMPRESS \"DEFLATE\"\r\n* PARTIAL-UPDATE\r\n" +
	"* OK MUPDATE \"mupdate-master\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\"\r\n"

func TestCannedCyrus(t *testing.T) {
	ctx := testCtx(t)
	nc := script(t, []string{
		"S: " + cyrusBanner,
		"C: A1 AUTHENTICATE \"PLAIN\" {32+}\r\nAG11cGRhdGV1c2VyAG11cGRhdGVwdw==\r\n",
		"S: A1 OK \"Authenticated\"\r\n",
		"C: A2 FIND \"user.alice\"\r\n",
		"S: A2 MAILBOX {10+}\r\nuser.alice {23+}\r\n127.0.0.1:12143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\nA2 OK \"Search completed\"\r\n",
		"C: A3 ACTIVATE \"user.alice.Stream1\" \"127.0.0.1:12143!default\" {21+}\r\nalice\tlrswipkxtecdan\t\r\n",
		"S: A3 OK \"done\"\r\n",
		"C: A4 AUTHENTICATE \"LOGIN\" {16+}\r\nbXVwZGF0ZXVzZXI=\r\n",
		"S: UGFzc3dvcmQ6\r\n",
		"C: bXVwZGF0ZXB3\r\n",
		"S: A4 BAD \"already authenticated\"\r\n",
		"C: A5 NOOP\r\n",
		"S: * BYE \"shutting down\"\r\n",
	})
	c, err := mupdatec.NewConn(ctx, nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b := c.Banner(); !b.Master || b.Version != "3.6.1-Debian-3.6.1-4+deb12u5" || !slices.Equal(b.Compress, []string{"DEFLATE"}) {
		t.Fatalf("banner %+v", b)
	}
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatal(err)
	}
	e, ok, err := c.Find(ctx, "user.alice")
	if err != nil || !ok || e != (mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl}) {
		t.Fatalf("find: %+v %v %v", e, ok, err)
	}
	if err := c.Activate(ctx, "user.alice.Stream1", loc1, acl); err != nil {
		t.Fatal(err)
	}
	wantServerError(t, c.Authenticate(ctx, sasl.NewLoginClient("mupdateuser", "mupdatepw")), "BAD", "already authenticated")
	err = c.Noop(ctx)
	if !errors.Is(err, mupdatec.ErrBye) || !errors.Is(err, mupdatec.ErrConnLost) {
		t.Fatalf("BYE: %v", err)
	}
}

func TestCannedCancelAndEmptyContinuation(t *testing.T) {
	ctx := testCtx(t)
	nc := script(t, []string{
		"S: " + cyrusBanner,
		"C: A1 AUTHENTICATE \"PLAIN\"\r\n",
		"S: \r\n",
		"C: *\r\n",
		"S: A1 NO Client canceled authentication\r\n",
	})
	c, err := mupdatec.NewConn(ctx, nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantServerError(t, c.Authenticate(ctx, failingClient{}), "NO", "Client canceled authentication")
}

func TestCannedMalformed(t *testing.T) {
	ctx := testCtx(t)
	nc := script(t, []string{
		"S: " + cyrusBanner,
		"C: A1 NOOP\r\n",
		"S: A1 MAILBOX {99999999+}\r\n",
	})
	c, err := mupdatec.NewConn(ctx, nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Noop(ctx); !errors.Is(err, mupdatec.ErrProtocol) || !errors.Is(err, mupdatec.ErrConnLost) {
		t.Fatalf("malformed: %v", err)
	}
}

func selfSigned(t *testing.T) (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func TestTLS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv, addr := newServer(t, mupdatetest.Options{TLSConfig: serverTLS})
	ctx := testCtx(t)
	c, err := mupdatec.Dial(ctx, addr, &mupdatec.Options{TLS: mupdatec.TLSStartTLS, TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok || c.Banner().StartTLS {
		t.Fatalf("STARTTLS: tls=%v banner %+v", ok, c.Banner())
	}
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatal(err)
	}

	// Implicit TLS.
	l, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	c2, err := mupdatec.Dial(ctx, l.Addr().String(), &mupdatec.Options{TLS: mupdatec.TLSImplicit, TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatal(err)
	}

	// STARTTLS asked of a server without it.
	_, plain := newServer(t, mupdatetest.Options{})
	if _, err := mupdatec.Dial(ctx, plain, &mupdatec.Options{TLS: mupdatec.TLSStartTLS, TLSConfig: clientTLS}); !errors.Is(err, mupdatec.ErrNoStartTLS) {
		t.Fatalf("no STARTTLS: %v", err)
	}
}

// TestBlockedWrite: a peer that stops reading cannot hang a command past
// its context; the connection is then broken.
func TestBlockedWrite(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go server.Write([]byte(cyrusBanner)) // and never read
	c, err := mupdatec.NewConn(testCtx(t), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Noop(ctx); !errors.Is(err, mupdatec.ErrConnLost) {
		t.Fatalf("blocked write: %v", err)
	}
	<-c.Done()
}

// FuzzConnReplies: whatever the server sends after the banner, commands
// end with a result or an error and nothing panics.
func FuzzConnReplies(f *testing.F) {
	f.Add([]byte("A1 MAILBOX {10+}\r\nuser.alice {23+}\r\n127.0.0.1:12143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\nA1 OK \"Search completed\"\r\n"))
	f.Add([]byte("VXNlcm5hbWU6\r\nA1 OK \"x\"\r\n"))
	f.Add([]byte("* BYE \"x\"\r\n"))
	f.Add([]byte("A1 NO Client canceled authentication\r\nA2 OK \"streaming starts\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		go func() {
			server.Write([]byte(cyrusBanner))
			server.Write(data)
			server.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := mupdatec.NewConn(ctx, client, &mupdatec.Options{MaxLine: 1024, MaxLiteral: 1024})
		if err != nil {
			client.Close()
			return
		}
		defer c.Close()
		c.Find(ctx, "user.alice")
		c.Update(ctx, nil, func(*mupdatec.Update) {})
	})
}
