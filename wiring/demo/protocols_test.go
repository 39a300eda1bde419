package demo

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"
)

// TestDemoLMTPAndPOP3: mail delivered to the demo's LMTP listener lands in
// the in-memory backends (bob+Archive in bob's INBOX: Archive does not let
// anyone post, 'p'), and alice reads hers over the demo's POP3 listener.
func TestDemoLMTPAndPOP3(t *testing.T) {
	m, err := Start(Options{Seed: true, LMTPListen: "127.0.0.1:0", POP3Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	const msg = "Subject: via LMTP\r\n\r\nhello\r\n"
	conn, err := net.Dial("tcp", m.LMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	lc := smtp.NewClientLMTP(conn)
	if err := lc.SendMail("mta@example.org", []string{"alice@example.org", "bob+Archive@example.org"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("LMTP: %v", err)
	}
	lc.Quit()
	lc.Close()

	c := login(t, m, "bob", "bobpw")
	if sel, err := c.Select("Archive", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil || sel.NumMessages != 0 {
		t.Fatalf("bob's Archive: %v %+v", err, sel)
	}
	if sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil || sel.NumMessages != 3 {
		t.Fatalf("bob's INBOX: %v %+v, want 2 seeded + 1 delivered", err, sel)
	}

	pc, err := net.DialTimeout("tcp", m.POP3Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(pc)
	expect := func(prefix string) string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, prefix) {
			t.Fatalf("POP3: got %q %v, want %q", l, err, prefix)
		}
		return l
	}
	expect("+OK")
	fmt.Fprintf(pc, "USER alice\r\nPASS alicepw\r\n")
	expect("+OK")
	expect("+OK Logged in")
	fmt.Fprintf(pc, "STAT\r\n")
	expect("+OK 3 ") // two seeded, one delivered
	fmt.Fprintf(pc, "RETR 3\r\n")
	expect("+OK")
	var body strings.Builder
	for {
		l := expect("")
		if l == ".\r\n" {
			break
		}
		body.WriteString(strings.TrimPrefix(l, "."))
	}
	if body.String() != msg {
		t.Errorf("RETR 3 = %q, want %q", body.String(), msg)
	}
	fmt.Fprintf(pc, "QUIT\r\n")
	expect("+OK")
}
