package backend

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
)

// cannedFetch is a FETCH answer of n messages of size bytes each, tagged t1.
func cannedFetch(n, size int) []byte {
	body := strings.Repeat("x", size-2) + "\r\n"
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, "* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", i, i, size, body)
	}
	sb.WriteString("t1 OK FETCH completed\r\n")
	return []byte(sb.String())
}

// loopback returns two ends of a TCP connection on 127.0.0.1.
func loopback(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return c1, <-acc
}

// cannedServer returns the client end of a loopback connection whose
// server answers every line it reads with data.
func cannedServer(b *testing.B, data []byte) net.Conn {
	server, client := loopback(b)
	b.Cleanup(func() { server.Close(); client.Close() })
	go func() {
		br := bufio.NewReader(server)
		for {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			if _, err := server.Write(data); err != nil {
				return
			}
		}
	}()
	return client
}

// BenchmarkRelayFetch measures Conn.Relay of a 2,000-message FETCH answer
// (10 KB each) from a loopback "backend" to a discarding client, against a
// plain io.Copy of the same bytes over loopback (BenchmarkPlainCopy).
func BenchmarkRelayFetch(b *testing.B) {
	data := cannedFetch(2000, 10<<10)
	client := cannedServer(b, data)
	c := &Conn{opts: Options{MaxLine: 1 << 20}}
	c.setConn(client)
	dst := bufio.NewWriterSize(io.Discard, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.bw.WriteString("t1 FETCH 1:* BODY.PEEK[]\r\n")
		c.Flush()
		st, _, err := c.Relay(dst, "t1", nil, nil)
		if err != nil || st != OK {
			b.Fatal(st, err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N*2000), "B/response")
}

// BenchmarkPlainCopy is the baseline: the same bytes over loopback with
// io.Copy and no parsing.
func BenchmarkPlainCopy(b *testing.B) {
	data := cannedFetch(2000, 10<<10)
	client := cannedServer(b, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		io.WriteString(client, "t1\n")
		if _, err := io.CopyN(io.Discard, client, int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
