package frontend

import (
	"bufio"
	"compress/flate"
	"io"
	"strings"
	"testing"
)

func TestCompressDeflate(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("c1", "LOGIN alice alicepw")
	u := c.OK("c2", "CAPABILITY")
	if !strings.Contains(u[0], "COMPRESS=DEFLATE") {
		t.Fatalf("COMPRESS=DEFLATE not advertised: %q", u)
	}
	c.Expect("c3", "COMPRESS GZIP", "BAD")
	c.OK("c4", "COMPRESS DEFLATE")
	// From here on both directions are raw DEFLATE.
	fw, _ := flate.NewWriter(c.Conn, flate.BestSpeed)
	br := bufio.NewReader(flate.NewReader(c.R))
	send := func(s string) {
		io.WriteString(fw, s+"\r\n")
		fw.Flush()
	}
	until := func(tag string) (lines []string) {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading compressed: %v", err)
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if strings.HasPrefix(l, tag+" ") {
				return lines
			}
		}
	}
	send("c5 SELECT INBOX")
	if l := until("c5"); !strings.HasPrefix(l[len(l)-1], "c5 OK") {
		t.Fatalf("SELECT over DEFLATE: %q", l)
	}
	send("c6 FETCH 1 (BODY.PEEK[])")
	l := until("c6")
	if !strings.HasPrefix(l[len(l)-1], "c6 OK") || !strings.Contains(strings.Join(l, "\n"), "first message") {
		t.Fatalf("FETCH over DEFLATE: %q", l)
	}
	send("c7 COMPRESS DEFLATE")
	if l := until("c7"); !strings.HasPrefix(l[len(l)-1], "c7 NO [COMPRESSIONACTIVE]") {
		t.Fatalf("second COMPRESS: %q", l)
	}
}
