package imapwire_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/imapfront/imapfront/imapwire"
)

// A session loop: LOGIN is parsed by the front end, other commands are
// parsed and re-encoded toward a backend (never copied byte for byte), and
// errors map to BAD, NO [TOOBIG] or the end of the session.
func Example() {
	client := "a1 LOGIN alice \"secret pw\"\r\n" +
		"a2 APPEND INBOX {5+}\r\nhello\r\n" +
		"a3 LOGIN (\r\n" +
		"a4 APPEND INBOX {99999}\r\n" +
		"a5 NOOP\r\n"
	w := imapwire.NewWriter(lf{os.Stdout}) // lf: CRLF shown as LF for the example

	r := imapwire.NewReader(bufio.NewReader(strings.NewReader(client)), imapwire.Options{
		MaxLiteral:    1000,                                             // APPENDLIMIT
		OnSyncLiteral: func(int64) error { return w.Continue("Ready") }, // "+ Ready"
	})
	var backend bytes.Buffer
	bw := bufio.NewWriter(&backend)
	for {
		cmd, err := r.ReadCommand()
		if err == nil {
			switch cmd.Name {
			case "LOGIN":
				var user, pass string
				if r.ExpectSP() && r.ExpectAString(&user) && r.ExpectSP() && r.ExpectAString(&pass) && r.ExpectCRLF() {
					w.StatusResponse(cmd.Tag, imapwire.OK, "", "Logged in as "+user)
					continue
				}
				err = r.Err()
			case "APPEND":
				var mbox string
				if r.ExpectSP() && r.ExpectMailbox(&mbox) && r.ExpectSP() {
					var lit imapwire.Literal
					var data io.Reader
					if lit, data, err = r.LiteralReader(); err == nil {
						cw := imapwire.NewCommandWriter(bw, cmd.Tag, cmd.Name).SP().AString(mbox).SP()
						cw.LiteralPlus = true // the backend has LITERAL+
						if cw.Announce(lit.Size, lit.Binary) == nil && cw.LiteralData(data, lit.Size) == nil && r.ExpectCRLF() && cw.End() == nil {
							w.StatusResponse(cmd.Tag, imapwire.OK, "", "relayed")
							continue
						}
					}
				}
				if err == nil {
					err = r.Err()
				}
			default:
				var args []imapwire.Value
				if args, err = r.Args(); err == nil {
					imapwire.NewCommandWriter(bw, cmd.Tag, cmd.Name).Values(args).End()
					w.StatusResponse(cmd.Tag, imapwire.OK, "", "relayed")
					continue
				}
			}
		}
		var se *imapwire.SyntaxError
		var tb *imapwire.TooBigError
		switch {
		case imapwire.Fatal(err):
			fmt.Println("end of session:", err)
			fmt.Printf("backend got %q\n", backend.String())
			return
		case errors.As(err, &se):
			w.StatusResponse(se.Tag, imapwire.BAD, "CLIENTBUG", "Syntax error: "+se.Msg)
		case errors.As(err, &tb):
			w.StatusResponse(tb.Tag, imapwire.NO, "TOOBIG", "Message too big")
		}
	}
	// Output:
	// a1 OK Logged in as alice
	// a2 OK relayed
	// a3 BAD [CLIENTBUG] Syntax error: expected astring
	// a4 NO [TOOBIG] Message too big
	// a5 OK relayed
	// end of session: EOF
	// backend got "a2 APPEND INBOX {5+}\r\nhello\r\na5 NOOP\r\n"
}

// lf writes CRLF as LF, so that the example's output compares.
type lf struct{ w io.Writer }

func (l lf) Write(p []byte) (int, error) {
	_, err := l.w.Write(bytes.ReplaceAll(p, []byte("\r\n"), []byte("\n")))
	return len(p), err
}
