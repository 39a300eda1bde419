package backend_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/internal/memback"
)

const testMsg = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nbody line\r\n"

func startBackend(t *testing.T) *memback.Server {
	t.Helper()
	s, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddUser("alice", "alicepw", "Sent"); err != nil {
		t.Fatal(err)
	}
	if err := s.Append("alice", "INBOX", []byte(testMsg), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(t *testing.T, addr string, login backend.Login) *backend.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := backend.Dial(ctx, backend.Options{Addr: addr}, login)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProxyLoginAndRelayFetch(t *testing.T) {
	s := startBackend(t)
	c := dial(t, s.Addr(), backend.Login{User: "alice", ProxyUser: "proxy", ProxyPassword: "proxypw"})
	if !c.Has("IMAP4rev1") {
		t.Fatalf("capabilities after login lack IMAP4rev1: %v", c.Caps())
	}

	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	c.Writer().WriteString("a1 SELECT INBOX\r\n")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _, err := c.Relay(w, "a1", nil, nil)
	if err != nil || st != backend.OK {
		t.Fatalf("SELECT: %v %v\n%s", st, err, out.String())
	}
	if !strings.Contains(out.String(), "* 1 EXISTS\r\n") || !strings.HasSuffix(out.String(), "a1 OK [READ-WRITE] SELECT completed\r\n") {
		t.Fatalf("SELECT relay:\n%s", out.String())
	}

	out.Reset()
	c.Writer().WriteString("a2 FETCH 1 BODY.PEEK[]\r\n")
	c.Flush()
	st, _, err = c.Relay(w, "a2", nil, nil)
	if err != nil || st != backend.OK {
		t.Fatalf("FETCH: %v %v", st, err)
	}
	want := "* 1 FETCH (UID 1 BODY[] {" + itoa(len(testMsg)) + "}\r\n" + testMsg + ")\r\n"
	if !strings.HasPrefix(out.String(), want) {
		t.Fatalf("FETCH relay:\n%q\nwant prefix\n%q", out.String(), want)
	}
}

func TestUserLoginAndBadPassword(t *testing.T) {
	s := startBackend(t)
	dial(t, s.Addr(), backend.Login{User: "alice", Password: "alicepw"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := backend.Dial(ctx, backend.Options{Addr: s.Addr()}, backend.Login{User: "alice", Password: "wrong"})
	var be *backend.Error
	if !errors.As(err, &be) || be.Status != backend.NO {
		t.Fatalf("wrong password: got %v, want a backend NO", err)
	}
	_, err = backend.Dial(ctx, backend.Options{Addr: s.Addr()}, backend.Login{User: "alice", ProxyUser: "proxy", ProxyPassword: "nope"})
	if !errors.As(err, &be) || be.Status != backend.NO {
		t.Fatalf("wrong proxy password: got %v, want a backend NO", err)
	}
}

func TestExecCollectsUntagged(t *testing.T) {
	s := startBackend(t)
	c := dial(t, s.Addr(), backend.Login{User: "alice", Password: "alicepw"})
	resp, err := c.Exec(context.Background(), `STATUS INBOX (MESSAGES)`)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Untagged) != 1 || string(resp.Untagged[0]) != "* STATUS INBOX (MESSAGES 1)" {
		t.Fatalf("untagged = %q", resp.Untagged)
	}
	_, err = c.Exec(context.Background(), `STATUS Nosuch (MESSAGES)`)
	var be *backend.Error
	if !errors.As(err, &be) || be.Status != backend.NO {
		t.Fatalf("STATUS of a missing mailbox: %v", err)
	}
}

func TestDeadBackendIsReported(t *testing.T) {
	s := startBackend(t)
	c := dial(t, s.Addr(), backend.Login{User: "alice", Password: "alicepw"})
	s.Close()
	c.Writer().WriteString("a1 NOOP\r\n")
	c.Flush()
	_, _, err := c.Relay(bufio.NewWriter(&bytes.Buffer{}), "a1", nil, nil)
	if err == nil {
		t.Fatal("relay on a closed backend succeeded")
	}
	if !c.Dead() {
		t.Fatal("connection not marked dead")
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
