package mupdated_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/mupdatec"
)

// rawConn is a client speaking bytes, for wire-level tests.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads lines and compares them with want, one per line.
func (c *rawConn) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading (want %q): %v", w, err)
		}
		if got := strings.TrimSuffix(line, "\r\n"); got != w {
			c.t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func (c *rawConn) login() {
	c.t.Helper()
	c.expect(`* AUTH "PLAIN" "LOGIN"`, "* PARTIAL-UPDATE", `* OK MUPDATE "mupdated" "imapfront mupdated" "1" "(master)"`)
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + admin + "\x00" + adminP))
	c.send("A01 AUTHENTICATE \"PLAIN\" {" + strconv.Itoa(len(ir)) + "+}\r\n" + ir + "\r\n")
	c.expect(`A01 OK "Authenticated"`)
}

// The exchanges of interop/cyrus-murder.md, byte for byte, except the
// commands that crash Cyrus.
func TestWireLikeCyrus(t *testing.T) {
	_, addr := startServer(t, newStore(t), nil)
	c := rawDial(t, addr)
	c.login()
	c.send("R1 RESERVE \"user.alice.wiretest\" \"127.0.0.1:12143!default\"\r\n")
	c.expect(`R1 OK "done"`)
	c.send("F6 FIND \"user.alice.wiretest\"\r\n")
	c.expect("F6 RESERVE {19+}", "user.alice.wiretest {23+}", "127.0.0.1:12143!default", `F6 OK "Search completed"`)
	c.send("A2 ACTIVATE {19+}\r\nuser.alice.wiretest {23+}\r\n127.0.0.1:12143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\n")
	c.expect(`A2 OK "done"`)
	c.send("F1 FIND {19}\r\n")
	c.expect("+ go ahead")
	c.send("user.alice.wiretest\r\n")
	c.expect("F1 MAILBOX {19+}", "user.alice.wiretest {23+}", "127.0.0.1:12143!default {21+}",
		"alice\tlrswipkxtecdan\t", `F1 OK "Search completed"`)
	c.send("F4 FIND \"user.nosuch\"\r\n")
	c.expect(`F4 OK "Search completed"`)
	// Pipelined: answers in order, each complete.
	c.send("B1 FROB\r\nB2 FIND\r\nB3 FIND \"a\" \"b\"\r\nB4 NOOP extra\r\nB9 FIND user.alice\r\n\r\nB6\r\nb7 noop\r\n" +
		"B10 STARTTLS\r\nB11 COMPRESS \"FOO\"\r\nU1 UPDATE \"\"\r\n")
	c.expect(`B1 BAD "Unrecognized command"`, `B2 BAD "Missing arguments"`, `B3 BAD "Extra arguments"`,
		`B4 BAD "Extra arguments"`, `B9 BAD "Extra arguments"`, `* BAD "Need command"`, `* BAD "Need command"`,
		`b7 OK "Noop done"`, `B10 BAD "Unrecognized command"`, `B11 NO Unknown COMPRESS algorithm: FOO`,
		`U1 BAD "Badly formed arguments"`)
	// What crashes Cyrus 3.6.1 is a NO here.
	c.send("D1 DELETE \"user.nosuch.crash\"\r\nX1 DEACTIVATE \"user.nosuch.crash\" \"127.0.0.1:12143!default\"\r\n" +
		"X2 DEACTIVATE \"user.alice.wiretest\" \"127.0.0.1:12143!default\"\r\n" +
		"X3 DEACTIVATE \"user.alice.wiretest\" \"127.0.0.1:12143!default\"\r\n")
	c.expect(`D1 NO "mailbox not found"`, `X1 NO "mailbox not found"`, `X2 OK "done"`, `X3 NO "mailbox not currently active"`)
	c.send("L1 LIST \"127.0.0.1:12143\"\r\n")
	c.expect("L1 RESERVE {19+}", "user.alice.wiretest {23+}", "127.0.0.1:12143!default", `L1 OK "list complete"`)
	c.send("U01 UPDATE\r\n")
	c.expect("U01 RESERVE {19+}", "user.alice.wiretest {23+}", "127.0.0.1:12143!default", `U01 OK "streaming starts"`)
	c.send("F9 FIND \"x\"\r\n")
	c.expect(`F9 BAD "not legal when streaming"`)
	// A change by another client arrives on the stream before the
	// NOOP's answer.
	c2 := rawDial(t, addr)
	c2.login()
	c2.send("D2 DELETE \"user.alice.wiretest\"\r\n")
	c2.expect(`D2 OK "done"`)
	c.send("N1 NOOP\r\n")
	c.expect("U01 DELETE {19+}", "user.alice.wiretest", `N1 OK "Noop done"`)
	c.send("Q1 LOGOUT\r\n")
	c.expect(`Q1 OK "bye-bye"`)
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed after LOGOUT: %v", err)
	}
}

// Broken framing is a BYE, never a hang or a crash.
func TestWireBadFraming(t *testing.T) {
	_, addr := startServer(t, newStore(t), nil)
	c := rawDial(t, addr)
	c.login()
	c.send("F1 FIND {99999999999}\r\n")
	c.expect(`* BYE "protocol error"`)
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed: %v", err)
	}
	_ = mupdatec.DefaultMaxLiteral
}
