package backend_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

// A MULTIAPPEND is one command: every part "mid {n+}" with its bytes,
// one CRLF at the end; the canned server checks the framing byte for byte.
func TestExecLiteralsFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		fmt.Fprint(nc, "* OK [CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND SASL-IR AUTH=PLAIN] ready\r\n")
		line, _ := br.ReadString('\n')
		tag := strings.Fields(line)[0]
		fmt.Fprintf(nc, "%s OK [CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND] in\r\n", tag)
		// Read one command with its literals.
		var cmd strings.Builder
		lit := regexp.MustCompile(`\{(\d+)\+\}\r\n$`)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				got <- "read error: " + err.Error()
				return
			}
			cmd.WriteString(line)
			m := lit.FindStringSubmatch(line)
			if m == nil {
				break
			}
			n, _ := strconv.Atoi(m[1])
			buf := make([]byte, n)
			if _, err := io.ReadFull(br, buf); err != nil {
				got <- "read error: " + err.Error()
				return
			}
			cmd.Write(buf)
		}
		got <- cmd.String()
		tag = strings.Fields(cmd.String())[0]
		fmt.Fprintf(nc, "%s OK [APPENDUID 7 3:4] done\r\n", tag)
	}()
	c := dial(t, ln.Addr().String(), backend.Login{User: "alice", Password: "pw"})
	ctx := context.Background()
	if _, err := c.ExecLiterals(ctx, "APPEND INBOX", func(func(string, int64, io.Reader) error) error { return nil }); !errors.Is(err, backend.ErrNoParts) {
		t.Fatalf("no parts: %v", err)
	}
	resp, err := c.ExecLiterals(ctx, "APPEND INBOX", func(part func(string, int64, io.Reader) error) error {
		if err := part(`(\Seen)`, 5, strings.NewReader("hello")); err != nil {
			return err
		}
		return part(`() " 1-Feb-2021 09:00:00 +0000"`, 3, strings.NewReader("abc"))
	})
	if err != nil || resp.Text != "[APPENDUID 7 3:4] done" {
		t.Fatalf("%v %+v", err, resp)
	}
	want := `X2 APPEND INBOX (\Seen) {5+}` + "\r\nhello" + ` () " 1-Feb-2021 09:00:00 +0000" {3+}` + "\r\nabc\r\n"
	if s := <-got; s != want {
		t.Errorf("sent %q\nwant %q", s, want)
	}
}

// FetchLiterals streams each message's body with the items before it.
func TestFetchLiterals(t *testing.T) {
	s := startBackend(t)
	if err := s.Append("alice", "INBOX", []byte(testMsg+"second\r\n"), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr(), backend.Login{User: "alice", ProxyUser: "proxy", ProxyPassword: "proxypw"})
	ctx := context.Background()
	if _, err := c.Exec(ctx, "SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	var heads, bodies []string
	err := c.FetchLiterals(ctx, "UID FETCH 1:* (UID BODY.PEEK[])", func(head []byte, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		heads, bodies = append(heads, string(head)), append(bodies, string(b))
		if int64(len(b)) != size {
			t.Errorf("body of %d bytes, literal said %d", len(b), size)
		}
		return err
	}, func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || bodies[0] != testMsg || bodies[1] != testMsg+"second\r\n" || !strings.Contains(heads[1], "UID 2") {
		t.Fatalf("heads %q bodies %q", heads, bodies)
	}
	// An error from each is returned once the answer is read: the
	// connection still works.
	stop := errors.New("stop")
	err = c.FetchLiterals(ctx, "UID FETCH 1:* (UID BODY.PEEK[])", func([]byte, int64, io.Reader) error { return stop }, func([]byte) {})
	if !errors.Is(err, stop) {
		t.Fatalf("err %v", err)
	}
	if _, err := c.Exec(ctx, "NOOP"); err != nil {
		t.Fatalf("connection after an early stop: %v", err)
	}
}
