package mupdatetest

import (
	"bufio"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imapfront/imapfront/mupdatec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	loc1 = "127.0.0.1:12143!default"
	loc2 = "127.0.0.1:12243!default"
)

// wire is a raw client for transcript tests: C sends bytes, S expects the
// exact next bytes from the server.
type wire struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialWire(t *testing.T, s *Server) *wire {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &wire{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (w *wire) C(s string) *wire {
	w.t.Helper()
	if _, err := w.nc.Write([]byte(s)); err != nil {
		w.t.Fatal(err)
	}
	return w
}

func (w *wire) S(want string) *wire {
	w.t.Helper()
	got := make([]byte, len(want))
	n := 0
	for n < len(want) {
		m, err := w.r.Read(got[n:])
		n += m
		if err != nil {
			w.t.Fatalf("read: %v after %q, want %q", err, got[:n], want)
		}
	}
	if string(got) != want {
		w.t.Fatalf("server sent %q\nwant        %q", got, want)
	}
	return w
}

func (w *wire) EOF() {
	w.t.Helper()
	if b, err := w.r.ReadByte(); err == nil {
		w.t.Fatalf("unexpected byte %q, want EOF", b)
	}
}

const banner = "* AUTH \"PLAIN\" \"LOGIN\"\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"mupdate-master\" \"imapfront mupdatetest\" \"1\" \"(master)\"\r\n"

// plainIR is base64("\0mupdateuser\0mupdatepw").
const plainIR = "AG11cGRhdGV1c2VyAG11cGRhdGVwdw=="

func newTestServer(t *testing.T) *Server {
	s := NewServer(Options{
		Users:          map[string]string{"mupdateuser": "mupdatepw", "alice": "alicepw"},
		Admins:         []string{"mupdateuser"},
		UpdateInterval: -1,
	})
	if _, err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func login(t *testing.T, s *Server) *wire {
	return dialWire(t, s).S(banner).C("A01 AUTHENTICATE \"PLAIN\" {32+}\r\n" + plainIR + "\r\n").S("A01 OK \"Authenticated\"\r\n")
}

func TestAuthTranscript(t *testing.T) {
	s := newTestServer(t)
	dialWire(t, s).S(banner).
		C("N1 NOOP\r\n").S("N1 BAD \"Please login first\"\r\n").
		C("A01 AUTHENTICATE PLAIN " + plainIR + "\r\n").S("A01 BAD \"Extra arguments\"\r\n").
		C("A02 AUTHENTICATE \"PLAIN\"\r\n").S("\r\n").C("*\r\n").S("A02 NO Client canceled authentication\r\n").
		C("A03 AUTHENTICATE \"PLAIN\"\r\n").S("\r\n").C("\"" + plainIR + "\"\r\n").S("A03 NO \"undefined error!\"\r\n").
		C("A04 AUTHENTICATE \"LOGIN\"\r\n").S("VXNlcm5hbWU6\r\n").C("bXVwZGF0ZXVzZXI=\r\n").
		S("UGFzc3dvcmQ6\r\n").C("bXVwZGF0ZXB3\r\n").S("A04 OK \"Authenticated\"\r\n").
		C("B5 AUTHENTICATE \"PLAIN\" \"x\"\r\n").S("B5 BAD \"already authenticated\"\r\n").
		C("Q1 LOGOUT\r\n").S("Q1 OK \"bye-bye\"\r\n").EOF()
	// alice is a user but not an admin.
	dialWire(t, s).S(banner).C("A1 AUTHENTICATE \"PLAIN\" \"AGFsaWNlAGFsaWNlcHc=\"\r\n").S("A1 NO \"undefined error!\"\r\n")
	s.RefuseLogins(true)
	dialWire(t, s).S(banner).C("A1 AUTHENTICATE \"PLAIN\" \"" + plainIR + "\"\r\n").S("A1 NO \"undefined error!\"\r\n")
}

func TestCommandTranscript(t *testing.T) {
	s := newTestServer(t)
	s.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: "alice\tlrswipkxtecdan\t"})
	login(t, s).
		C("F1 FIND \"user.alice\"\r\n").
		S("F1 MAILBOX {10+}\r\nuser.alice {23+}\r\n" + loc1 + " {21+}\r\nalice\tlrswipkxtecdan\t\r\nF1 OK \"Search completed\"\r\n").
		C("F4 FIND \"user.nosuch\"\r\n").S("F4 OK \"Search completed\"\r\n").
		C("F12 FIND {10}\r\n").S("+ go ahead\r\n").C("user.alice\r\n").S("F12 MAILBOX {10+}\r\n").
		S("user.alice {23+}\r\n" + loc1 + " {21+}\r\nalice\tlrswipkxtecdan\t\r\nF12 OK \"Search completed\"\r\n").
		C("B1 FROB\r\n").S("B1 BAD \"Unrecognized command\"\r\n").
		C("B2 FIND\r\n").S("B2 BAD \"Missing arguments\"\r\n").
		C("B3 FIND \"a\" \"b\"\r\n").S("B3 BAD \"Extra arguments\"\r\n").
		C("B4 NOOP extra\r\n").S("B4 BAD \"Extra arguments\"\r\n").
		C("B9 FIND user.alice\r\n").S("B9 BAD \"Extra arguments\"\r\n").
		C("\r\n").S("* BAD \"Need command\"\r\n").
		C("B6\r\n").S("* BAD \"Need command\"\r\n").
		C("b7 noop\r\n").S("b7 OK \"Noop done\"\r\n").
		C("B11 COMPRESS \"FOO\"\r\n").S("B11 NO Unknown COMPRESS algorithm: FOO\r\n").
		C("R1 RESERVE \"user.alice.wiretest\" \"" + loc1 + "\"\r\n").S("R1 OK \"done\"\r\n").
		C("R2 RESERVE \"user.alice.wiretest\" \"" + loc1 + "\"\r\n").S("R2 OK \"done\"\r\n").
		C("R3 RESERVE \"user.alice.wiretest\" \"" + loc2 + "\"\r\n").S("R3 NO \"mailbox already exists\"\r\n").
		C("F6 FIND \"user.alice.wiretest\"\r\n").
		S("F6 RESERVE {19+}\r\nuser.alice.wiretest {23+}\r\n" + loc1 + "\r\nF6 OK \"Search completed\"\r\n").
		C("A2 ACTIVATE \"user.alice.wiretest\" \"" + loc1 + "\" {21+}\r\nalice\tlrswipkxtecdan\t\r\n").S("A2 OK \"done\"\r\n").
		C("X2 DEACTIVATE \"user.alice.wiretest\" \"" + loc2 + "\"\r\n").S("X2 NO \"mailbox not currently active\"\r\n").
		C("X1 DEACTIVATE \"user.alice.wiretest\" \"" + loc1 + "\"\r\n").S("X1 OK \"done\"\r\n").
		C("D1 DELETE \"user.alice.wiretest\"\r\n").S("D1 OK \"done\"\r\n").
		C("A3 ACTIVATE \"user.bob.x\" \"127.0.0.1:12243\" \"\"\r\n").S("A3 OK \"done\"\r\n").
		C("L2 LIST \"127.0.0.1:12243\"\r\n").S("L2 MAILBOX {10+}\r\nuser.bob.x {15+}\r\n127.0.0.1:12243 {0+}\r\n\r\nL2 OK \"list complete\"\r\n").
		C("L3 LIST \"user.bob\"\r\n").S("L3 OK \"list complete\"\r\n").
		// RESERVE over an active entry at the same location demotes it (Cyrus 3.6).
		C("R7 RESERVE \"user.alice\" \"" + loc1 + "\"\r\n").S("R7 OK \"done\"\r\n")
	if e, _ := s.Lookup("user.alice"); !e.Reserved || e.ACL != "" {
		t.Fatalf("not demoted: %+v", e)
	}
}

func TestStreamTranscript(t *testing.T) {
	s := newTestServer(t)
	s.Set(mupdatec.Entry{Name: "shared", Location: loc1, ACL: "anyone\tlrs\t"})
	s.Set(mupdatec.Entry{Name: "user.bob.res", Location: loc2, Reserved: true})
	u := login(t, s).C("U01 UPDATE \"\"\r\n").S("U01 BAD \"Badly formed arguments\"\r\n").
		C("U01 UPDATE\r\n").
		S("U01 MAILBOX {6+}\r\nshared {23+}\r\n" + loc1 + " {11+}\r\nanyone\tlrs\t\r\n").
		S("U01 RESERVE {12+}\r\nuser.bob.res {23+}\r\n" + loc2 + "\r\n").
		S("U01 OK \"streaming starts\"\r\n").
		C("F1 FIND \"shared\"\r\n").S("F1 BAD \"not legal when streaming\"\r\n").
		C("U02 UPDATE\r\n").S("U02 BAD \"not legal when streaming\"\r\n")
	w := login(t, s)
	w.C("R1 RESERVE \"user.alice.s\" \"" + loc1 + "\"\r\n").S("R1 OK \"done\"\r\n").
		C("A1 ACTIVATE \"user.alice.s\" \"" + loc1 + "\" \"\"\r\n").S("A1 OK \"done\"\r\n").
		C("D1 DELETE \"shared\"\r\n").S("D1 OK \"done\"\r\n")
	// Flushed at NOOP as the current state: RESERVE then ACTIVATE gives two
	// identical MAILBOX lines.
	mb := "U01 MAILBOX {12+}\r\nuser.alice.s {23+}\r\n" + loc1 + " {0+}\r\n\r\n"
	u.C("N1 NOOP\r\n").S(mb + mb + "U01 DELETE {6+}\r\nshared\r\nN1 OK \"Noop done\"\r\n").
		C("N2 NOOP\r\n").S("N2 OK \"Noop done\"\r\n")
	// PARTIAL-UPDATE: only the listed servers.
	p := login(t, s).C("U1 UPDATE \"127.0.0.1:12243\"\r\n").
		S("U1 RESERVE {12+}\r\nuser.bob.res {23+}\r\n" + loc2 + "\r\nU1 OK \"streaming starts\"\r\n")
	s.Set(mupdatec.Entry{Name: "user.alice.t", Location: loc1})
	s.Delete("user.bob.res")
	p.C("N1 NOOP\r\n").S("U1 DELETE {12+}\r\nuser.bob.res\r\nN1 OK \"Noop done\"\r\n")
}

func TestTimedFlush(t *testing.T) {
	s := NewServer(Options{Users: map[string]string{"mupdateuser": "mupdatepw"}, UpdateInterval: 10 * time.Millisecond})
	if _, err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := login(t, s).C("U01 UPDATE\r\n").S("U01 OK \"streaming starts\"\r\n")
	s.Set(mupdatec.Entry{Name: "a", Location: "b", Reserved: true})
	u.S("U01 RESERVE {1+}\r\na {1+}\r\nb\r\n") // without NOOP
}

func TestCrashAndDrop(t *testing.T) {
	s := newTestServer(t)
	s.Set(mupdatec.Entry{Name: "user.r", Location: loc1, Reserved: true})
	u := login(t, s).C("U01 UPDATE\r\n").S("U01 RESERVE {6+}\r\nuser.r {23+}\r\n" + loc1 + "\r\nU01 OK \"streaming starts\"\r\n")
	for _, cmd := range []string{
		"DELETE \"user.nosuch.crash\"",
		"DEACTIVATE \"user.nosuch.crash\" \"" + loc1 + "\"",
		"DEACTIVATE \"user.r\" \"" + loc1 + "\"",
	} {
		login(t, s).C("X1 " + cmd + "\r\n").EOF()
	}
	u.EOF() // every connection dropped, streams included
	if s.Crashes() != 3 {
		t.Fatalf("crashes %d", s.Crashes())
	}
	w := login(t, s)
	s.DropAll()
	w.EOF()

	n := NewServer(Options{Users: map[string]string{"mupdateuser": "mupdatepw"}, NoCrash: true, UpdateInterval: -1})
	if _, err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	login(t, n).C("X1 DELETE \"user.nosuch\"\r\n").S("X1 NO \"mailbox not found\"\r\n")
}

func TestSlave(t *testing.T) {
	s := NewServer(Options{ServerName: "127.0.0.1:11143", MasterURL: "mupdate://127.0.0.1:13905",
		Users: map[string]string{"cyrus": "cyruspw"}, UpdateInterval: -1})
	if _, err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dialWire(t, s).S("* AUTH \"PLAIN\" \"LOGIN\"\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"127.0.0.1:11143\" \"imapfront mupdatetest\" \"1\" \"mupdate://127.0.0.1:13905\"\r\n").
		C("A1 AUTHENTICATE \"PLAIN\" \"AGN5cnVzAGN5cnVzcHc=\"\r\n").S("A1 OK \"Authenticated\"\r\n").
		C("R1 RESERVE \"a\" \"b\"\r\n").S("R1 BAD \"read-only session\"\r\n")
}
