package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// seedCommands are client commands from RFC 3501/9051 examples and the
// interop transcripts (shared/interop).
var seedCommands = []string{
	"a001 login mrc secret\r\n",
	"A001 LOGIN SMITH SESAME\r\n",
	"a001 CAPABILITY\r\n",
	"A142 SELECT INBOX\r\n",
	"A932 EXAMINE blurdybloop\r\n",
	"A003 CREATE owatagusiam/\r\n",
	"A683 DELETE blurdybloop\r\n",
	"A683 RENAME blurdybloop sarasoop\r\n",
	"A101 LIST \"\" \"\"\r\n",
	"A102 LIST #news.comp.mail.misc \"\"\r\n",
	"A202 LIST ~/Mail/ %\r\n",
	"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
	"A003 APPEND saved-messages (\\Seen) {310}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n" + strings.Repeat("x", 243) + "\r\n",
	"A003 APPEND saved-messages (\\Seen) \"05-jan-1999 20:55:23 +0000\" {5+}\r\nhello\r\n",
	"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
	"A999 UID FETCH 4827313:4828442 FLAGS\r\n",
	"A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
	"A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
	"A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n",
	"A003 COPY 2:4 MEETING\r\n",
	"a UID MOVE 42:69 foo\r\n",
	"a002 IDLE\r\nDONE\r\n",
	"a2 ID (\"name\" \"prog\" \"version\" \"1.0\")\r\n",
	"a3 ENABLE CONDSTORE UTF8=ACCEPT\r\n",
	"A01 AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=\r\n",
	"A02 AUTHENTICATE \"PLAIN\" {32+}\r\nAG11cGRhdGV1c2VyAG11cGRhdGVwdw==\r\n",
	"a7 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UIDNEXT))\r\n",
	"r7 SELECT \"Shared Folders/shared\"\r\n",
	"a SETACL INBOX bob lrs\r\n",
	"a GETQUOTAROOT INBOX\r\n",
	"a SETMETADATA INBOX (/private/comment {3}\r\nabc)\r\n",
	"a APPEND INBOX ~{3+}\r\n\x00\x01\x02\r\n",
	"a1 X {5+} more\r\n",
	"* BAD\r\n",
	"a (\r\n",
	"a X ((((((((((((((((((((((((((((((((((((((x\r\n",
	"a X {999999999999999999999+}\r\n",
	"a X \"\\\r\n",
}

// FuzzReader feeds arbitrary client input through every way of consuming
// commands: it must never panic, always make progress, and a relayed
// command without literals must come out byte for byte.
func FuzzReader(f *testing.F) {
	for _, s := range seedCommands {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 16), Options{
			MaxLine: 128, MaxBufferedLiteral: 256, MaxLiteral: 512, MaxDiscard: 1024,
			OnSyncLiteral: func(n int64) error {
				if n%7 == 3 {
					return errors.New("refused")
				}
				return nil
			},
		})
		for i := 0; i < len(data)+2; i++ {
			cmd, err := r.ReadCommand()
			if err != nil {
				if Fatal(err) {
					return
				}
				continue
			}
			switch (mode + uint8(i)) % 4 {
			case 0, 1:
				// Parse, re-encode, parse again: the same arguments, and
				// exactly one command.
				args, err := r.Args()
				if err != nil {
					continue
				}
				var out bytes.Buffer
				bw := bufio.NewWriter(&out)
				cw := NewCommandWriter(bw, cmd.Tag, cmd.Name)
				cw.LiteralPlus = mode%2 == 0
				cw.Continue = func() error { return nil }
				if err := cw.Values(args).End(); err != nil {
					t.Fatal(err)
				}
				checkReencoded(t, out.Bytes(), cmd, args)
			case 2:
				var m string
				if r.SP() && r.AString(&m) && r.SP() {
					if _, lr, err := r.LiteralReader(); err == nil {
						io.Copy(io.Discard, lr)
						r.ExpectCRLF()
					}
				}
			case 3:
				_ = r.Rest()
				_ = cmd.String()
			}
		}
		t.Fatalf("no progress: more commands than input bytes")
	})
}

// FuzzAStringRoundTrip checks that AString's output reads back unchanged.
func FuzzAStringRoundTrip(f *testing.F) {
	for _, s := range []string{"INBOX", "Sent Items", `a"b`, "", "NIL", "x\r\ny", "caf\xc3\xa9", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // NUL is never valid in an IMAP string
		}
		in := "t X " + AString(s) + "\r\n"
		r := NewReader(bufio.NewReader(strings.NewReader(in)), Options{MaxLine: 1 << 20, MaxBufferedLiteral: 1 << 20})
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		var got string
		if !r.ExpectSP() || !r.ExpectAString(&got) || !r.ExpectCRLF() {
			t.Fatalf("%q -> %q: %v", s, AString(s), r.Err())
		}
		if got != s {
			t.Fatalf("%q -> %q", s, got)
		}
	})
}

// checkReencoded parses a re-encoded command and checks it reads back as
// one command with the same tag, name and arguments, and nothing after it.
func checkReencoded(t *testing.T, wire []byte, cmd *Command, args []Value) {
	t.Helper()
	r := NewReader(bufio.NewReader(bytes.NewReader(wire)), Options{MaxLine: 1 << 20, MaxBufferedLiteral: 1 << 20})
	got, err := r.ReadCommand()
	if err != nil {
		t.Fatalf("re-encoded %q does not parse: %v", wire, err)
	}
	again, err := r.Args()
	if err != nil {
		t.Fatalf("re-encoded %q: arguments do not parse: %v", wire, err)
	}
	if got.Tag != cmd.Tag || got.Name != cmd.Name || formatStrings(again) != formatStrings(args) {
		t.Fatalf("re-encoded %q reads back as %s %s %s, want %s %s %s", wire, got.Tag, got.Name, formatValues(again), cmd.Tag, cmd.Name, formatValues(args))
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("re-encoded %q holds more than one command (%v)", wire, err)
	}
}

// formatStrings is formatValues with quoted strings and literals alike: a
// string that cannot be quoted (8-bit, not UTF-8) is re-encoded as a
// literal, and is still the same string.
func formatStrings(vs []Value) string {
	norm := make([]Value, len(vs))
	for i, v := range vs {
		if v.Kind == KindQuoted {
			v.Kind = KindLiteral
		}
		if v.Kind == KindList {
			v.List = []Value{{Kind: KindAtom, Str: formatStrings(v.List)}}
		}
		norm[i] = v
	}
	return formatValues(norm)
}
