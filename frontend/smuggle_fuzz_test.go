package frontend

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzSmuggling holds the property that makes the front end a front end:
// whatever bytes a logged-in client sends, every command the backend
// receives is one that imapfront parsed and dispatched (or one of its own),
// so no client framing (quoted braces, literals, overlong lines, bare CRs)
// can get a command past it.
func FuzzSmuggling(f *testing.F) {
	for _, s := range []string{
		"a SELECT INBOX \"{20}\r\ns1 CREATE Smuggled\r\n\r\n",
		"a SELECT INBOX \"{20+}\r\ns1 CREATE Smuggled\r\n\r\n",
		"b STATUS Rec (MESSAGES) {5+}\r\nx CREATE Y\r\n",
		"c APPEND Rec {5+}\r\nhello\r\nd APPEND Rec (\\Seen) {3+}\r\nabc {3+}\r\ndef\r\n",
		"e FETCH 1 (BODY[HEADER.FIELDS (\"{3}\")])\r\nf CREATE Z\r\n",
		"g SEARCH CHARSET UTF-8 TEXT {4+}\r\nz\r\nh\r\n",
		"i UID STORE 1 +FLAGS (\\Seen \"{2+}\r\nj CREATE Q\r\n",
		"k APPEND Rec CATENATE (TEXT {3+}\r\nabc URL \"/Other;UIDVALIDITY=1/;UID=1\")\r\n",
		"l SELECT {3+}\r\nRec\r\nm COPY 1 {5+}\r\nOther\r\n",
		"n IDLE\r\nDONE\r\no NOOP\r\n",
		"p LOGIN x " + string(make([]byte, 300)) + "\r\n",
		"q SELECT \"a\rb\"\r\nr CREATE \"x\ry\"\r\n",
	} {
		f.Add([]byte(s))
	}
	fx, rb, dl := recordingFixture(f, true, func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler) // the fuzz target's F cannot log
		o.MaxLine = 256
		o.AppendLimit = 4096
		o.BackendTimeout = 2 * time.Second
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		rb.mu.Lock()
		rb.commands = nil
		rb.mu.Unlock()
		dl.mu.Lock()
		dl.cmds = nil
		dl.mu.Unlock()
		nc, err := net.Dial("tcp", fx.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, "l0 LOGIN alice alicepw\r\ns0 SELECT Rec\r\n")
		nc.Write(input)
		io.WriteString(nc, "\r\nz0 LOGOUT\r\n")
		nc.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, nc); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("session did not end within 10 s on %q", input)
			}
		}
		checkOnlyParsedCommands(t, input, rb, dl)
	})
}
