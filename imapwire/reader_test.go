package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func newTestReader(in string, opts Options) *Reader {
	return NewReader(bufio.NewReaderSize(strings.NewReader(in), 64), opts)
}

func TestReadCommandTable(t *testing.T) {
	tests := []struct {
		in       string
		tag      string
		name     string
		wantErr  any // nil, *SyntaxError, *LineTooLongError
		errTag   string
		nextName string // the command read after this one, if any
	}{
		{in: "a001 login smith sesame\r\n", tag: "a001", name: "LOGIN"},
		{in: "A1 NOOP\r\n", tag: "A1", name: "NOOP"},
		{in: "A1 NOOP\n", tag: "A1", name: "NOOP"},
		{in: "x.y-1 uid fetch 1:* FLAGS\r\n", tag: "x.y-1", name: "UID"},
		{in: "\r\nA2 NOOP\r\n", wantErr: &SyntaxError{}, nextName: "NOOP"},
		{in: "* NOOP\r\nA2 NOOP\r\n", wantErr: &SyntaxError{}, nextName: "NOOP"},
		{in: "A1\r\nA2 NOOP\r\n", wantErr: &SyntaxError{}, errTag: "A1", nextName: "NOOP"},
		{in: "A1 (x)\r\nA2 NOOP\r\n", wantErr: &SyntaxError{}, errTag: "A1", nextName: "NOOP"},
		{in: "A+1 NOOP\r\nA2 NOOP\r\n", wantErr: &SyntaxError{}, nextName: "NOOP"},
		// A bad command announcing a non-synchronising literal: the
		// literal and its continuation line are skipped.
		{in: "A1 (x) {3+}\r\nabc more\r\nA2 NOOP\r\n", wantErr: &SyntaxError{}, errTag: "A1", nextName: "NOOP"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := newTestReader(tt.in, Options{})
			cmd, err := r.ReadCommand()
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("ReadCommand: %v", err)
				}
				if cmd.Tag != tt.tag || cmd.Name != tt.name {
					t.Fatalf("got %q %q, want %q %q", cmd.Tag, cmd.Name, tt.tag, tt.name)
				}
			case *SyntaxError:
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want SyntaxError", err)
				}
				if se.Tag != tt.errTag {
					t.Fatalf("tag = %q, want %q", se.Tag, tt.errTag)
				}
				_ = want
			}
			if tt.nextName != "" {
				cmd, err := r.ReadCommand()
				if err != nil || cmd.Name != tt.nextName {
					t.Fatalf("next: %v, %v", cmd, err)
				}
			}
		})
	}
}

func TestParseLogin(t *testing.T) {
	in := "a1 LOGIN {5}\r\nalice \"pa\\\"ss\\\\w\"\r\na2 LOGIN bob {3+}\r\nx y\r\n"
	var conts []int64
	r := newTestReader(in, Options{OnSyncLiteral: func(n int64) error { conts = append(conts, n); return nil }})
	cmd, err := r.ReadCommand()
	if err != nil || cmd.Name != "LOGIN" {
		t.Fatal(cmd, err)
	}
	var user, pass string
	if !r.ExpectSP() || !r.ExpectAString(&user) || !r.ExpectSP() || !r.ExpectAString(&pass) || !r.ExpectCRLF() {
		t.Fatal(r.Err())
	}
	if user != "alice" || pass != `pa"ss\w` {
		t.Fatalf("got %q %q", user, pass)
	}
	if len(conts) != 1 || conts[0] != 5 {
		t.Fatalf("continuations %v", conts)
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if !r.ExpectSP() || !r.ExpectAString(&user) || !r.ExpectSP() || !r.ExpectAString(&pass) || !r.ExpectCRLF() {
		t.Fatal(r.Err())
	}
	if user != "bob" || pass != "x y" || len(conts) != 1 {
		t.Fatalf("got %q %q %v", user, pass, conts)
	}
	if _, err := r.ReadCommand(); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v", err)
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"a STATUS INBOX (MESSAGES UNSEEN)\r\n", "INBOX (MESSAGES UNSEEN)"},
		{"a LIST \"\" %\r\n", `"" %`},
		{"a LIST \"\" \"*\"\r\n", `"" "*"`},
		{"a ID (\"name\" \"x\" \"version\" NIL)\r\n", `("name" "x" "version" NIL)`},
		{"a ID NIL\r\n", `NIL`},
		{"a APPEND saved-messages (\\Seen) {3+}\r\nabc\r\n", `saved-messages (\Seen) {abc}`},
		{"a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)])\r\n", `FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)])`},
		{"a CAPABILITY\r\n", ``},
		{"a ENABLE CONDSTORE QRESYNC\r\n", `CONDSTORE QRESYNC`},
		{"a X ((((a))))\r\n", `((((a))))`},
		{"a X ~{2+}\r\n\x00b ()\r\n", "{\x00b} ()"},
	}
	for _, tt := range tests {
		r := newTestReader(tt.in, Options{})
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		args, err := r.Args()
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := formatValues(args); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func formatValues(vs []Value) string {
	var parts []string
	for _, v := range vs {
		switch v.Kind {
		case KindAtom:
			parts = append(parts, v.Str)
		case KindQuoted:
			parts = append(parts, `"`+v.Str+`"`)
		case KindLiteral:
			parts = append(parts, "{"+v.Str+"}")
		case KindNIL:
			parts = append(parts, "NIL")
		case KindList:
			parts = append(parts, "("+formatValues(v.List)+")")
		}
	}
	return strings.Join(parts, " ")
}

func TestArgsErrorsResync(t *testing.T) {
	bad := []string{
		"a X \"unterminated\r\n",
		"a X \"bad \\escape\"\r\n",
		"a X (a b\r\n",
		"a X a)\r\n",
		"a X {3}x\r\n",
		"a X {99999999999999999999}\r\n",
		"a X  a\r\n",
		"a X a \r\n",
		"a X " + strings.Repeat("(", 40) + strings.Repeat(")", 40) + "\r\n",
	}
	for _, in := range bad {
		r := newTestReader(in+"b NOOP\r\n", Options{})
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		_, err := r.Args()
		var se *SyntaxError
		if !errors.As(err, &se) || se.Tag != "a" || Fatal(err) {
			t.Errorf("%q: err = %v, want SyntaxError with tag a", in, err)
			continue
		}
		cmd, err := r.ReadCommand()
		if err != nil || cmd.Tag != "b" {
			t.Errorf("%q: not resynchronised: %v %v", in, cmd, err)
		}
	}
}

func TestLineTooLong(t *testing.T) {
	long := "a1 LOGIN " + strings.Repeat("x", 300) + "\r\n"
	r := newTestReader(long+"a2 NOOP\r\n", Options{MaxLine: 100})
	_, err := r.ReadCommand()
	var le *LineTooLongError
	if !errors.As(err, &le) || le.Tag != "a1" || Fatal(err) {
		t.Fatalf("err = %v", err)
	}
	cmd, err := r.ReadCommand()
	if err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}

	// An overlong line ending in a non-synchronising literal: the literal
	// and the rest of the command are skipped too.
	long = "a1 APPEND " + strings.Repeat("x", 300) + " {5+}\r\nhello more {2+}\r\nab\r\n"
	r = newTestReader(long+"a2 NOOP\r\n", Options{MaxLine: 100})
	if _, err = r.ReadCommand(); !errors.As(err, &le) {
		t.Fatalf("err = %v", err)
	}
	if cmd, err = r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}

	// A continuation line (after a literal) that is too long.
	in := "a1 LOGIN {3+}\r\nabc " + strings.Repeat("y", 300) + "\r\na2 NOOP\r\n"
	r = newTestReader(in, Options{MaxLine: 100})
	if _, err = r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	var s string
	if !r.ExpectSP() || !r.ExpectAString(&s) {
		t.Fatal(r.Err())
	}
	if r.ExpectSP() || !errors.As(r.Err(), &le) || le.Tag != "a1" {
		t.Fatalf("err = %v", r.Err())
	}
	if cmd, err = r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestBufferedLiteralLimit(t *testing.T) {
	// Synchronising: refused without reading; no continuation sent.
	called := false
	r := newTestReader("a1 LOGIN {200}\r\na2 NOOP\r\n", Options{MaxBufferedLiteral: 100,
		OnSyncLiteral: func(int64) error { called = true; return nil }})
	r.ReadCommand()
	var s string
	r.ExpectSP()
	r.ExpectAString(&s)
	var tb *TooBigError
	if !errors.As(r.Err(), &tb) || !tb.Buffered || tb.Unrecoverable || called {
		t.Fatalf("err = %v, called %v", r.Err(), called)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
	// Non-synchronising: discarded.
	in := "a1 LOGIN {200+}\r\n" + strings.Repeat("z", 200) + " pw\r\na2 NOOP\r\n"
	r = newTestReader(in, Options{MaxBufferedLiteral: 100})
	r.ReadCommand()
	r.ExpectSP()
	r.ExpectAString(&s)
	if !errors.As(r.Err(), &tb) || tb.Unrecoverable {
		t.Fatalf("err = %v", r.Err())
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
	// The cap is per command, over all its literals.
	in = "a1 X {60+}\r\n" + strings.Repeat("z", 60) + " {60+}\r\n" + strings.Repeat("z", 60) + "\r\na2 NOOP\r\n"
	r = newTestReader(in, Options{MaxBufferedLiteral: 100})
	r.ReadCommand()
	if _, err := r.Args(); !errors.As(err, &tb) {
		t.Fatalf("err = %v", err)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestSyncLiteralRefusedByHook(t *testing.T) {
	refuse := errors.New("no thanks")
	r := newTestReader("a1 LOGIN {5}\r\na2 NOOP\r\n", Options{OnSyncLiteral: func(int64) error { return refuse }})
	r.ReadCommand()
	var s string
	r.ExpectSP()
	if r.ExpectAString(&s) {
		t.Fatal("accepted")
	}
	var ae *AbortedError
	if !errors.As(r.Err(), &ae) || !errors.Is(r.Err(), refuse) || Fatal(r.Err()) {
		t.Fatalf("err = %v", r.Err())
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestLiteralReaderAppend(t *testing.T) {
	msg := strings.Repeat("From: a\r\n\r\nbody\r\n", 100)
	in := "A003 APPEND saved-messages (\\Seen) \"05-jan-1999 20:55:23 +0000\" {" + strconv.Itoa(len(msg)) + "}\r\n" + msg + "\r\nA004 NOOP\r\n"
	conts := 0
	r := newTestReader(in, Options{OnSyncLiteral: func(int64) error { conts++; return nil }})
	cmd, _ := r.ReadCommand()
	if cmd.Name != "APPEND" {
		t.Fatal(cmd)
	}
	var mbox, date string
	var flags []string
	ok := r.ExpectSP() && r.ExpectMailbox(&mbox) && r.ExpectSP() &&
		r.ExpectList(func() error {
			var f string
			if r.ExpectFlag(&f) {
				flags = append(flags, f)
			}
			return nil
		}) && r.ExpectSP() && r.ExpectString(&date) && r.ExpectSP()
	if !ok {
		t.Fatal(r.Err())
	}
	lit, lr, err := r.LiteralReader()
	if err != nil {
		t.Fatal(err)
	}
	if r.ExpectCRLF() || !errors.Is(r.Err(), ErrLiteralPending) {
		t.Fatalf("parse during literal: %v", r.Err())
	}
	r.err = nil
	var got bytes.Buffer
	if _, err := io.Copy(&got, lr); err != nil {
		t.Fatal(err)
	}
	if !r.ExpectCRLF() {
		t.Fatal(r.Err())
	}
	if got.String() != msg || lit.Size != int64(len(msg)) || conts != 1 || mbox != "saved-messages" ||
		len(flags) != 1 || flags[0] != `\Seen` || date != "05-jan-1999 20:55:23 +0000" {
		t.Fatalf("got %d %v %d %q %v %q", got.Len(), lit, conts, mbox, flags, date)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "A004" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestLiteralReaderTooBig(t *testing.T) {
	// RFC 7889: a synchronising literal over APPENDLIMIT is refused before
	// the client sends it.
	r := newTestReader("a1 APPEND INBOX {1000}\r\na2 NOOP\r\n", Options{MaxLiteral: 100})
	r.ReadCommand()
	var m string
	r.ExpectSP()
	r.ExpectMailbox(&m)
	r.ExpectSP()
	_, _, err := r.LiteralReader()
	var tb *TooBigError
	if !errors.As(err, &tb) || tb.Buffered || tb.Unrecoverable || tb.Tag != "a1" {
		t.Fatalf("err = %v", err)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
	// Non-synchronising within MaxDiscard: discarded, session goes on.
	in := "a1 APPEND INBOX {150+}\r\n" + strings.Repeat("q", 150) + "\r\na2 NOOP\r\n"
	r = newTestReader(in, Options{MaxLiteral: 100, MaxDiscard: 200})
	r.ReadCommand()
	r.ExpectSP()
	r.ExpectMailbox(&m)
	r.ExpectSP()
	if _, _, err = r.LiteralReader(); !errors.As(err, &tb) || Fatal(err) {
		t.Fatalf("err = %v", err)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
	// Non-synchronising over MaxDiscard: fatal.
	r = newTestReader("a1 APPEND INBOX {5000000000+}\r\n", Options{MaxLiteral: 100})
	r.ReadCommand()
	r.ExpectSP()
	r.ExpectMailbox(&m)
	r.ExpectSP()
	if _, _, err = r.LiteralReader(); !errors.As(err, &tb) || !tb.Unrecoverable || !Fatal(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestAbandonedLiteralSkipped(t *testing.T) {
	in := "a1 APPEND INBOX {10+}\r\n0123456789 {3+}\r\nabc\r\na2 NOOP\r\n"
	r := newTestReader(in, Options{})
	r.ReadCommand()
	var m string
	r.ExpectSP()
	r.ExpectMailbox(&m)
	r.ExpectSP()
	_, lr, err := r.LiteralReader()
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, lr, 4)
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestRestAndNumbers(t *testing.T) {
	r := newTestReader("a1 SEARCH 4294967295 1:*,3 UNSEEN {3+}\r\nabc\r\n", Options{})
	r.ReadCommand()
	var n uint32
	var set string
	if !r.ExpectSP() || !r.ExpectNumber(&n) || !r.ExpectSP() || !r.ExpectSequenceSet(&set) {
		t.Fatal(r.Err())
	}
	if n != 4294967295 || set != "1:*,3" {
		t.Fatal(n, set)
	}
	if rest := r.Rest(); rest != " UNSEEN " {
		t.Fatalf("rest %q", rest)
	}
	r = newTestReader("a1 X 4294967296\r\n", Options{})
	r.ReadCommand()
	r.ExpectSP()
	if r.ExpectNumber(&n) {
		t.Fatal("overflow accepted")
	}
}

func TestNString(t *testing.T) {
	r := newTestReader("a1 X NIL \"v\" nil\r\n", Options{})
	r.ReadCommand()
	var s string
	var isNil bool
	r.ExpectSP()
	r.ExpectNString(&s, &isNil)
	if !isNil {
		t.Fatal("NIL")
	}
	r.ExpectSP()
	r.ExpectNString(&s, &isNil)
	if isNil || s != "v" {
		t.Fatal(s)
	}
	r.ExpectSP()
	if !r.ExpectNString(&s, &isNil) || !isNil || !r.ExpectCRLF() {
		t.Fatal(r.Err())
	}
}
