package frontend

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/imapfront/imapfront/frontend/backend"
)

// fakeBackend is a minimal scripted IMAP server on loopback: it greets
// with caps, logs in anyone (AUTHENTICATE), answers LOGOUT, and hands
// every other command line to handle, which writes the answer (the
// connection's reader is there for literals). A handle that returns false
// ends the connection.
type fakeBackend struct {
	ln     net.Listener
	caps   string
	handle func(br *bufio.Reader, w *bufio.Writer, tag, verb, line string) bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startFakeBackend(t *testing.T, caps string, handle func(br *bufio.Reader, w *bufio.Writer, tag, verb, line string) bool) *fakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{ln: ln, caps: caps, handle: handle, conns: map[net.Conn]struct{}{}}
	fb.wg.Add(1)
	go func() {
		defer fb.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			fb.mu.Lock()
			fb.conns[nc] = struct{}{}
			fb.mu.Unlock()
			fb.wg.Add(1)
			go func() {
				defer fb.wg.Done()
				fb.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		fb.mu.Lock()
		for nc := range fb.conns {
			nc.Close()
		}
		fb.mu.Unlock()
		fb.wg.Wait()
	})
	return fb
}

func (fb *fakeBackend) addr() string { return fb.ln.Addr().String() }

func (fb *fakeBackend) serve(nc net.Conn) {
	defer nc.Close()
	w := bufio.NewWriter(nc)
	w.WriteString("* OK [CAPABILITY " + fb.caps + "] fake backend ready\r\n")
	w.Flush()
	br := bufio.NewReader(nc)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		l = strings.TrimRight(l, "\r\n")
		tag, rest, _ := strings.Cut(l, " ")
		verb, _, _ := strings.Cut(strings.ToUpper(rest), " ")
		switch verb {
		case "AUTHENTICATE":
			w.WriteString(tag + " OK [CAPABILITY " + fb.caps + "] Logged in\r\n")
		case "LOGOUT":
			w.WriteString("* BYE bye\r\n" + tag + " OK LOGOUT completed\r\n")
			w.Flush()
			return
		default:
			if !fb.handle(br, w, tag, verb, l) {
				w.Flush()
				return
			}
		}
		if w.Flush() != nil {
			return
		}
	}
}

// recordingBackend is a fake backend that records every command line.
type recordingBackend struct {
	*fakeBackend
	mu    sync.Mutex
	lines []string
}

func startRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	r := &recordingBackend{}
	r.fakeBackend = startFakeBackend(t, "IMAP4rev1 ID AUTH=PLAIN SASL-IR LITERAL+", func(_ *bufio.Reader, w *bufio.Writer, tag, verb, line string) bool {
		r.mu.Lock()
		r.lines = append(r.lines, line)
		r.mu.Unlock()
		if verb == "ID" {
			w.WriteString("* ID NIL\r\n")
		}
		w.WriteString(tag + " OK done\r\n")
		return true
	})
	return r
}

// ids returns the arguments of the ID commands received.
func (r *recordingBackend) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		_, rest, _ := strings.Cut(l, " ")
		if len(rest) > 3 && strings.EqualFold(rest[:3], "ID ") {
			out = append(out, rest[3:])
		}
	}
	return out
}

// TestClientIDNotForwarded: a backend without ForwardClient hears nothing
// of the client's ID; one with it hears the client's fields without any
// x- field, and the client's address as imapfront sees it.
func TestClientIDNotForwarded(t *testing.T) {
	const clientID = `("name" "Evil" "x-originating-ip" "10.9.9.9" "X-Originating-Port" "1" "x-connected-ip" "10.0.0.1" ` +
		`"x-proxy-ttl" "3" "x-session-id" "forged" "x-foo" "bar" "version" "1.0")`
	for _, forward := range []bool{false, true} {
		rec := startRecordingBackend(t)
		f := newFixture(t, func(o *Options) {
			o.Backends["be-a"] = &Backend{Server: "be-a", Dial: backend.Options{Addr: rec.addr()}, Separator: '/', ForwardClient: forward}
		})
		c := f.dial(t)
		c.OK("i1", "ID "+clientID)
		c.OK("i2", "LOGIN alice alicepw")
		c.OK("i3", "LOGOUT")
		ids := rec.ids()
		if !forward {
			if len(ids) != 0 {
				t.Errorf("without forward_client the backend was sent ID %q", ids)
			}
			continue
		}
		if len(ids) != 1 {
			t.Fatalf("with forward_client: IDs sent %q, want one", ids)
		}
		id := strings.ToLower(ids[0])
		for _, bad := range []string{"10.9.9.9", "forged", "x-foo", `"1"`, "10.0.0.1", `"x-proxy-ttl" "3"`} {
			if strings.Contains(id, bad) {
				t.Errorf("forwarded ID %s carries the client's %s", ids[0], bad)
			}
		}
		for _, want := range []string{`"name" "evil"`, `"version" "1.0"`, `"x-originating-ip" "127.0.0.1"`, `"x-connected-ip" "127.0.0.1"`, `"x-proxy-ttl" "2"`} {
			if !strings.Contains(id, want) {
				t.Errorf("forwarded ID %s lacks %s", ids[0], want)
			}
		}
	}
}
