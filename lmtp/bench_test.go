package lmtp_test

import (
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// BenchmarkDeliverTwoBackends measures one LMTP transaction with a 10 KB
// message to alice (be1, with AUTH) and bob (be2) over one MTA connection.
func BenchmarkDeliverTwoBackends(b *testing.B) {
	l := newLab(b, nil)
	body := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n", 140)
	conn, err := net.Dial("tcp", l.addr)
	if err != nil {
		b.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.SendMail("s@example.org", []string{"alice@example.org", "bob@example.org"}, strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
