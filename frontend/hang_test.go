package frontend

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

// hangingBackend logs anyone in, then never answers SELECT.
func hangingBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				nc.Write([]byte("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] hanging test server\r\n"))
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					tag, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
					switch {
					case strings.HasPrefix(strings.ToUpper(rest), "AUTHENTICATE"):
						nc.Write([]byte(tag + " OK [CAPABILITY IMAP4rev1 LITERAL+ UNSELECT] logged in\r\n"))
					case strings.HasPrefix(strings.ToUpper(rest), "SELECT"):
						// never answer
					default:
						nc.Write([]byte(tag + " OK done\r\n"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A backend that stops answering gives the client a clear NO, not a hang.
func TestHungBackendTimesOut(t *testing.T) {
	addr := hangingBackend(t)
	f := newFixture(t, func(o *Options) {
		o.BackendTimeout = 300 * time.Millisecond
		o.Backends["be-h"] = &Backend{Server: "be-h", Dial: backend.Options{Addr: addr}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'}
	})
	f.replica.Put("user.alice.Stuck", false, "be-h!default", "alice\tlrswipkxtean\t")
	c := f.dial(t)
	c.OK("h1", "LOGIN alice alicepw")
	start := time.Now()
	c.Expect("h2", "SELECT Stuck", "NO [UNAVAILABLE]")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the answer took %v", d)
	}
	c.OK("h3", "SELECT INBOX") // the session goes on
}
