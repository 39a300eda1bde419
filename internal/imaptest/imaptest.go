// Package imaptest is the transcript-style IMAP client of the tests: it
// sends command lines as a client would (C:) and reads the server's lines
// (S:), with a deadline on every read so that a test never hangs. The
// frontend's hermetic tests and the integration tests against real
// servers both use it.
package imaptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// Client is one IMAP connection seen line by line. Conn and R are there
// for tests that need the bytes themselves (literals, half-closes,
// compression layers).
type Client struct {
	T    testing.TB
	Conn net.Conn
	R    *bufio.Reader
	// Timeout bounds each read (10 s when 0).
	Timeout time.Duration
}

// New wraps nc; r, if not nil, is the reader to read responses from (a
// decompressing one, say), else a bufio.Reader on nc.
func New(t testing.TB, nc net.Conn, r *bufio.Reader) *Client {
	if r == nil {
		r = bufio.NewReader(nc)
	}
	return &Client{T: t, Conn: nc, R: r}
}

// Dial connects to addr, closes the connection when the test ends, and
// returns the client with the greeting read.
func Dial(t testing.TB, addr string) (*Client, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := New(t, nc, nil)
	return c, c.Line()
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 10 * time.Second
}

// Line reads one response line without its CRLF; a read error fails the
// test.
func (c *Client) Line() string {
	c.T.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout()))
	l, err := c.R.ReadString('\n')
	if err != nil {
		c.T.Fatalf("reading: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Send writes one line (C:) and its CRLF.
func (c *Client) Send(line string) {
	c.T.Helper()
	if _, err := io.WriteString(c.Conn, line+"\r\n"); err != nil {
		c.T.Fatal(err)
	}
}

// Do sends "tag cmd" and returns the untagged lines and the tagged one.
func (c *Client) Do(tag, cmd string) (untagged []string, tagged string) {
	c.T.Helper()
	c.Send(tag + " " + cmd)
	return c.Until(tag)
}

// Until reads up to the line tagged tag: the untagged lines and it.
func (c *Client) Until(tag string) (untagged []string, tagged string) {
	c.T.Helper()
	for {
		l := c.Line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

// OK is Do that fails the test unless the answer is OK; it returns the
// untagged lines.
func (c *Client) OK(tag, cmd string) []string {
	c.T.Helper()
	u, done := c.Do(tag, cmd)
	if !strings.HasPrefix(done, tag+" OK") {
		c.T.Fatalf("%s %s: got %q (untagged %q)", tag, cmd, done, u)
	}
	return u
}

// Expect is Do that fails the test unless the tagged line starts with
// "tag prefix"; it returns the untagged lines.
func (c *Client) Expect(tag, cmd, prefix string) []string {
	c.T.Helper()
	u, done := c.Do(tag, cmd)
	if !strings.HasPrefix(done, tag+" "+prefix) {
		c.T.Fatalf("%s %s: got %q, want prefix %q", tag, cmd, done, tag+" "+prefix)
	}
	return u
}

// Transcript runs a command that must succeed and compares every
// untagged line with want, as an RFC example reads.
func (c *Client) Transcript(tag, cmd string, want ...string) {
	c.T.Helper()
	got := c.OK(tag, cmd)
	if !slices.Equal(got, want) {
		c.T.Errorf("C: %s %s\ngot:\n  %s\nwant:\n  %s", tag, cmd, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Exchange sends "tag cmd" and returns every line up to and including the
// tagged one; when the server closes the connection first the last line
// is "EOF" (tests of BYE and cut connections read it without failing).
func (c *Client) Exchange(tag, cmd string) []string {
	c.T.Helper()
	fmt.Fprintf(c.Conn, "%s %s\r\n", tag, cmd)
	return c.Lines(tag)
}

// Lines reads every line up to and including the one tagged tag ("EOF"
// last if the connection ends first).
func (c *Client) Lines(tag string) []string {
	var lines []string
	for {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout()))
		l, err := c.R.ReadString('\n')
		if err != nil {
			return append(lines, "EOF")
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

// ExchangeOK is Exchange that fails the test unless the answer is OK.
func (c *Client) ExchangeOK(tag, cmd string) []string {
	c.T.Helper()
	lines := c.Exchange(tag, cmd)
	if !strings.HasPrefix(lines[len(lines)-1], tag+" OK") {
		c.T.Fatalf("%s: %q", cmd, lines)
	}
	return lines
}
