package connlimit

import (
	"bufio"
	"net"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	l := New(3, 2)
	if !l.Acquire("a") || !l.Acquire("a") {
		t.Fatal("first two from a refused")
	}
	if l.Acquire("a") {
		t.Fatal("third from a admitted (per-IP cap 2)")
	}
	if !l.Acquire("b") {
		t.Fatal("b refused")
	}
	if l.Acquire("c") {
		t.Fatal("fourth in all admitted (cap 3)")
	}
	l.Release("a")
	if !l.Acquire("c") {
		t.Fatal("c refused after a release")
	}
	if New(0, 0) != nil || !(*Limiter)(nil).Acquire("x") {
		t.Fatal("no caps must admit everything")
	}
}

func TestListenerRefusesAndReleases(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(0, 1).Listener(raw, func(c net.Conn) { c.Write([]byte("busy\r\n")) })
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c1, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	s1 := <-accepted
	c2, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(c2).ReadString('\n'); line != "busy\r\n" {
		t.Fatalf("second connection from the same address got %q, want the refusal", line)
	}
	s1.Close()
	c3, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	select {
	case s3 := <-accepted:
		s3.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection after the first closed was not admitted")
	}
}
