package frontend

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// panicCatcher counts "panic in session" log records.
type panicCatcher struct {
	n    atomic.Int64
	mu   sync.Mutex
	last string
}

func (p *panicCatcher) Write(b []byte) (int, error) {
	if strings.Contains(string(b), "panic in session") {
		p.n.Add(1)
		p.mu.Lock()
		p.last = string(b)
		p.mu.Unlock()
	}
	return len(b), nil
}

// FuzzSessionInput sends arbitrary bytes to a live session (logged in
// first, so selected-state code is reached too): the session may answer
// BAD, NO or BYE, but must never panic or hang.
func FuzzSessionInput(f *testing.F) {
	for _, s := range []string{
		"a SELECT INBOX\r\nb FETCH 1:* (BODY.PEEK[])\r\nc IDLE\r\nDONE\r\n",
		"a APPEND INBOX {5+}\r\nhello\r\nb APPEND INBOX {3}\r\nabc\r\n",
		"a LIST \"\" \"*\" RETURN (STATUS (MESSAGES))\r\nb RLIST \"\" \"%\"\r\nc SELECT Archive\r\n",
		"a UID MOVE 1 Archive\r\nb COPY 1 Nosuch\r\nc STATUS {3}\r\nabc\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\nb ENABLE CONDSTORE\r\nc ID NIL\r\nd NAMESPACE\r\n",
		"a CREATE \"x/\"\r\nb RENAME INBOX Old\r\nc DELETE INBOX\r\n\r\n* \r\n{999999999999}\r\n",
		"a SELECT INBOX\r\nb UID\r\nc FETCH 1 (BODY[]<0.5>)\r\nd CLOSE\r\ne LOGOUT\r\n",
	} {
		f.Add([]byte(s))
	}
	catcher := &panicCatcher{}
	fx := newFixture(f, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(catcher, nil))
		// go-imap's memory server can wait forever on some malformed
		// commands (an APPEND whose literal swallowed the line end); the
		// front end then gives up after BackendTimeout, as it would on
		// a hung real backend.
		o.BackendTimeout = 2 * time.Second
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		nc, err := net.Dial("tcp", fx.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, "l LOGIN alice alicepw\r\n")
		nc.Write(input)
		io.WriteString(nc, "\r\nz LOGOUT\r\n")
		nc.(*net.TCPConn).CloseWrite()
		// The session may end with a reset (it closes with input unread
		// after BYE); only a timeout is a hang.
		if _, err := io.Copy(io.Discard, nc); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("session did not end within 10 s: %v", err)
			}
		}
		if catcher.n.Load() > 0 {
			catcher.mu.Lock()
			defer catcher.mu.Unlock()
			t.Fatalf("session panicked on %q:\n%s", input, catcher.last)
		}
	})
}
