package mupdated_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/imapfront/imapfront/mupdatec"
)

// FuzzSession feeds arbitrary bytes to an authenticated session. The
// server must end the connection when the client does (no hang, no
// crash), answer only well-formed responses, and leave every other
// connection (a follower's UPDATE stream here) working.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"A FIND \"user.a\"\r\n",
		"A RESERVE \"user.a\" \"h!p\"\r\nB ACTIVATE \"user.a\" \"h!p\" \"x\\tlr\\t\"\r\nC DELETE \"user.a\"\r\n",
		"D DELETE \"user.nosuch\"\r\nE DEACTIVATE \"user.nosuch\" \"h!p\"\r\n",
		"U UPDATE\r\nN NOOP\r\nF FIND \"x\"\r\n",
		"U UPDATE \"h\" \"\"\r\n",
		"L LIST {3}\r\nabc\r\nL2 LIST {2+}\r\nh!\r\n",
		"A AUTHENTICATE \"LOGIN\"\r\n*\r\n",
		"A STARTTLS\r\nB COMPRESS \"DEFLATE\"\r\n\r\n \r\nX\r\n",
		"A FIND {999999999}\r\n",
		"A FIND \"unterminated\r\n",
		"A ACTIVATE {1+}\r\n\x00 {0+}\r\n {0}\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	st := newStore(f)
	_, addr := startServer(f, st, nil)
	fol, _ := follow(f, addr)
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + admin + "\x00" + adminP))
	login := "A0 AUTHENTICATE \"PLAIN\" \"" + ir + "\"\r\n"
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			io.WriteString(nc, login)
			nc.Write(data)
			nc.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("session did not end after the client's EOF: %v", err)
		}
		out = bytes.ReplaceAll(out, []byte("+ go ahead\r\n"), nil)
		dec := mupdatec.NewDecoder(bytes.NewReader(out), 0, 0)
		var r mupdatec.Response
		for {
			err := dec.ReadResponse(&r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("malformed output: %v\n%q", err, out)
			}
			if r.Tag == "*" && r.Kind != mupdatec.RespBAD && r.Kind != mupdatec.RespBye &&
				r.Kind != mupdatec.RespAuth && r.Kind != mupdatec.RespPartialUpdate && r.Kind != mupdatec.RespBanner {
				t.Fatalf("unexpected untagged %v in %q", r.Kind, out)
			}
		}
		if err := fol.Sync(ctxT(t)); err != nil {
			t.Fatalf("the other stream broke: %v", err)
		}
	})
}
