package imapwire

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestSyncLiteralOverConnection plays a client that waits for "+" before
// sending each synchronising literal, against a server loop that relays
// APPEND and answers LOGIN itself, over a synchronous pipe: the reader must
// never wait for data the client only sends after a continuation.
func TestSyncLiteralOverConnection(t *testing.T) {
	srvConn, cliConn := net.Pipe()
	defer cliConn.Close()
	deadline := time.Now().Add(10 * time.Second)
	srvConn.SetDeadline(deadline)
	cliConn.SetDeadline(deadline)

	var relayed bytes.Buffer
	done := make(chan error, 1)
	go func() {
		defer srvConn.Close()
		w := NewWriter(srvConn)
		r := NewReader(bufio.NewReader(srvConn), Options{
			MaxLiteral:    1000,
			OnSyncLiteral: func(int64) error { return w.Continue("Ready for literal data") },
		})
		for {
			cmd, err := r.ReadCommand()
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
			switch cmd.Name {
			case "LOGIN":
				var u, p string
				if r.ExpectSP() && r.ExpectAString(&u) && r.ExpectSP() && r.ExpectAString(&p) && r.ExpectCRLF() {
					w.StatusResponse(cmd.Tag, OK, "", "Logged in as "+u)
				} else {
					w.StatusResponse(cmd.Tag, BAD, "", "syntax")
				}
			case "APPEND":
				var one bytes.Buffer
				bw := bufio.NewWriter(&one)
				var mbox string
				var err error
				if r.ExpectSP() && r.ExpectMailbox(&mbox) && r.ExpectSP() {
					cw := NewCommandWriter(bw, cmd.Tag, cmd.Name).SP().AString(mbox).SP()
					cw.Continue = func() error { return nil } // the backend says "+" at once
					var lit Literal
					var data io.Reader
					if lit, data, err = r.OpenLiteral(func(l Literal) error { return cw.Announce(l.Size, l.Binary) }); err == nil {
						err = cw.LiteralData(data, lit.Size)
						if err == nil && r.ExpectCRLF() {
							err = cw.End()
						}
					}
				}
				if err == nil {
					err = r.Err()
				}
				if _, ok := err.(*TooBigError); ok {
					w.StatusResponse(cmd.Tag, NO, "TOOBIG", "Message too big")
				} else if err != nil {
					done <- err
					return
				} else {
					relayed.Write(one.Bytes())
					w.StatusResponse(cmd.Tag, OK, "", "APPEND completed")
				}
			case "LOGOUT":
				w.StatusResponse("*", BYE, "", "")
				w.StatusResponse(cmd.Tag, OK, "", "")
				r.ExpectCRLF()
				done <- nil
				return
			default:
				w.StatusResponse(cmd.Tag, BAD, "", "Unknown command")
			}
		}
	}()

	br := bufio.NewReader(cliConn)
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(cliConn, s); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want string) {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil || line != want+"\r\n" {
			t.Fatalf("got %q %v, want %q", line, err, want)
		}
	}
	send("a1 LOGIN {5}\r\n")
	expect("+ Ready for literal data")
	send("alice {7}\r\n")
	expect("+ Ready for literal data")
	send("alicepw\r\n")
	expect("a1 OK Logged in as alice")
	send("a2 APPEND INBOX {5}\r\n")
	expect("+ Ready for literal data")
	send("hello\r\n")
	expect("a2 OK APPEND completed")
	send("a3 APPEND INBOX {5000}\r\n") // over the limit: no "+", NO at once
	expect("a3 NO [TOOBIG] Message too big")
	send("a4 FROB\r\n")
	expect("a4 BAD Unknown command")
	send("a5 LOGOUT\r\n")
	expect("* BYE Logging out")
	expect("a5 OK Completed")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if relayed.String() != "a2 APPEND INBOX {5}\r\nhello\r\n" {
		t.Fatalf("relayed %q", relayed.String())
	}
}
