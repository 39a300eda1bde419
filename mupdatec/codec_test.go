package mupdatec

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Canned server byte streams from interop/cyrus-murder.md section 3.
var cannedStreams = []string{
	"* AUTH \"PLAIN\" \"LOGIN\"\r\n* COMPRESS \"DEFLATE\"\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"mupdate-master\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\"\r\n",
	"* AUTH \"PLAIN\"\r\n* STARTTLS\r\n* OK MUPDATE \"127.0.0.1:11143\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"mupdate://127.0.0.1:13905\"\r\n",
	"F1 MAILBOX {10+}\r\nuser.alice {23+}\r\n127.0.0.1:12143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\nF1 OK \"Search completed\"\r\n",
	"F6 RESERVE {19+}\r\nuser.alice.wiretest {23+}\r\n127.0.0.1:12143!default\r\nF6 OK \"Search completed\"\r\n",
	"U01 MAILBOX {6+}\r\nshared {23+}\r\n127.0.0.1:12143!default {41+}\r\nanyone\tlrs\talice\tlrswipkxtecd\tbob\tlrswip\t\r\nU01 OK \"streaming starts\"\r\nU01 DELETE {18+}\r\nuser.alice.Stream1\r\nN1 OK \"Noop done\"\r\n",
	"A1 MAILBOX {7+}\r\nuser.x1 {15+}\r\n127.0.0.1:12243 {0+}\r\n\r\n",
	"\r\nA01 OK \"Authenticated\"\r\n",
	"VXNlcm5hbWU6\r\nUGFzc3dvcmQ6\r\nA01 OK \"Authenticated\"\r\n",
	"A01 NO Client canceled authentication\r\nA01 NO \"undefined error!\"\r\nN1 BAD \"Please login first\"\r\n",
	"* BAD \"Need command\"\r\nB11 NO Unknown COMPRESS algorithm: FOO\r\nR1 BAD \"read-only session\"\r\n",
	"* BYE \"idle timeout\"\r\n",
}

func decodeAll(t testing.TB, s string) ([]Response, error) {
	d := NewDecoder(strings.NewReader(s), 0, 0)
	var out []Response
	for {
		var r Response
		if err := d.ReadResponse(&r); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		r.Args = append([]string(nil), r.Args...)
		if len(r.Args) == 0 {
			r.Args = nil
		}
		out = append(out, r)
	}
}

func TestDecodeBanner(t *testing.T) {
	got, err := decodeAll(t, cannedStreams[0])
	if err != nil {
		t.Fatal(err)
	}
	want := []Response{
		{Tag: "*", Kind: RespAuth, Args: []string{"PLAIN", "LOGIN"}},
		{Tag: "*", Kind: RespCompress, Args: []string{"DEFLATE"}},
		{Tag: "*", Kind: RespPartialUpdate},
		{Tag: "*", Kind: RespBanner, Args: []string{"mupdate-master", "Cyrus IMAP", "3.6.1-Debian-3.6.1-4+deb12u5", "(master)"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeReplies(t *testing.T) {
	tests := []struct {
		in   string
		want []Response
	}{
		{cannedStreams[2], []Response{
			{Tag: "F1", Kind: RespMailbox, Name: "user.alice", Location: "127.0.0.1:12143!default", ACL: "alice\tlrswipkxtecdan\t"},
			{Tag: "F1", Kind: RespOK, Text: "Search completed"},
		}},
		{cannedStreams[3], []Response{
			{Tag: "F6", Kind: RespReserve, Name: "user.alice.wiretest", Location: "127.0.0.1:12143!default"},
			{Tag: "F6", Kind: RespOK, Text: "Search completed"},
		}},
		{cannedStreams[5], []Response{
			{Tag: "A1", Kind: RespMailbox, Name: "user.x1", Location: "127.0.0.1:12243", ACL: ""},
		}},
		{cannedStreams[6], []Response{
			{Kind: RespContinuation},
			{Tag: "A01", Kind: RespOK, Text: "Authenticated"},
		}},
		{cannedStreams[8], []Response{
			{Tag: "A01", Kind: RespNO, Text: "Client canceled authentication"},
			{Tag: "A01", Kind: RespNO, Text: "undefined error!"},
			{Tag: "N1", Kind: RespBAD, Text: "Please login first"},
		}},
		{cannedStreams[10], []Response{{Tag: "*", Kind: RespBye, Text: "idle timeout"}}},
		{"T1 OK \"a \\\"b\\\\\"\r\n", []Response{{Tag: "T1", Kind: RespOK, Text: "a \"b\\"}}},
		{"T1 MAILBOX user.a loc \"\"\n", []Response{{Tag: "T1", Kind: RespMailbox, Name: "user.a", Location: "loc"}}},
	}
	for _, tt := range tests {
		got, err := decodeAll(t, tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\ngot  %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, in := range []string{
		"F1 MAILBOX {10+}\r\nuser",
		"F1 MAILBOX {x+}\r\n",
		"F1 MAILBOX {99999999999+}\r\n",
		"F1 MAILBOX \"a\r\n",
		"F1 MAILBOX \"a\" \"b\"\r\n",
		"F1 FROB\r\n",
		" F1 OK\r\n",
		"F1 DELETE \"a\" junk\r\n",
		"F1 MAILBOX {3+} x\r\n",
	} {
		_, err := decodeAll(t, in)
		if err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestDecodeBounds(t *testing.T) {
	d := NewDecoder(strings.NewReader("T1 OK \""+strings.Repeat("x", 200)+"\"\r\n"), 100, 10)
	var r Response
	if err := d.ReadResponse(&r); !errors.Is(err, ErrProtocol) {
		t.Fatalf("long line: %v", err)
	}
	d = NewDecoder(strings.NewReader("T1 DELETE {11+}\r\nhello world\r\n"), 100, 10)
	if err := d.ReadResponse(&r); !errors.Is(err, ErrProtocol) {
		t.Fatalf("long literal: %v", err)
	}
	// Long lines across the bufio buffer are accepted up to the bound.
	long := strings.Repeat("y", 100000)
	d = NewDecoder(strings.NewReader("T1 DELETE \""+long+"\"\r\n"), 200000, 0)
	if err := d.ReadResponse(&r); err != nil || r.Name != long {
		t.Fatalf("long name: %v", err)
	}
	// Literals larger than the buffer.
	d = NewDecoder(strings.NewReader("T1 DELETE {100000+}\r\n"+long+"\r\n"), 0, 200000)
	if err := d.ReadResponse(&r); err != nil || r.Name != long {
		t.Fatalf("big literal: %v", err)
	}
}

func TestEncoder(t *testing.T) {
	var b bytes.Buffer
	e := NewEncoder(&b)
	e.Command("X1", "ACTIVATE", "user.alice.Stream1", "127.0.0.1:12143!default", "alice\tlrswipkxtecdan\t")
	e.Command("A01", "AUTHENTICATE", "PLAIN")
	e.Command("B1", "FIND", "quo\"te", "")
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "X1 ACTIVATE \"user.alice.Stream1\" \"127.0.0.1:12143!default\" {21+}\r\nalice\tlrswipkxtecdan\t\r\n" +
		"A01 AUTHENTICATE \"PLAIN\"\r\n" +
		"B1 FIND {6+}\r\nquo\"te \"\"\r\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
}

func TestReadCommand(t *testing.T) {
	in := "F13 FIND {8+}\r\nuser.bob\r\nb7 noop\r\nB9 FIND user.alice\r\n\r\nB6\r\nF12 FIND {10}\r\nuser.alice\r\n"
	d := NewDecoder(strings.NewReader(in), 0, 0)
	syncs := 0
	d.SyncLiteral = func() error { syncs++; return nil }
	var c Command
	check := func(wantErr error, tag, name string, atom bool, args ...string) {
		t.Helper()
		err := d.ReadCommand(&c)
		if err != wantErr {
			t.Fatalf("err %v want %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if c.Tag != tag || c.Name != name || c.AtomArg != atom || strings.Join(c.Args, "|") != strings.Join(args, "|") {
			t.Fatalf("got %+v", c)
		}
	}
	check(nil, "F13", "FIND", false, "user.bob")
	check(nil, "b7", "NOOP", false)
	check(nil, "B9", "FIND", true)
	check(ErrNeedCommand, "", "", false)
	check(ErrNeedCommand, "", "", false)
	check(nil, "F12", "FIND", false, "user.alice")
	if syncs != 1 {
		t.Fatalf("sync literals: %d", syncs)
	}
	check(io.EOF, "", "", false)
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range cannedStreams {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data), 1024, 1024)
		var r Response
		for i := 0; i < 1000; i++ {
			if d.ReadResponse(&r) != nil {
				return
			}
		}
	})
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"A01 AUTHENTICATE \"PLAIN\" {32+}\r\nAG11cGRhdGV1c2VyAG11cGRhdGVwdw==\r\n",
		"X1 ACTIVATE {18+}\r\nuser.alice.Stream1 {23+}\r\n127.0.0.1:12143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\n",
		"F12 FIND {10}\r\nuser.alice\r\n", "B9 FIND user.alice\r\n", "\r\n", "U01 UPDATE \"127.0.0.1:12243\"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data), 1024, 1024)
		var c Command
		for i := 0; i < 1000; i++ {
			if err := d.ReadCommand(&c); err != nil && err != ErrNeedCommand {
				return
			}
		}
	})
}

func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("user.alice", "127.0.0.1:12143!default", "alice\tlrs\t")
	f.Add("", "a\"b\\c", "\r\n{5}")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var buf bytes.Buffer
		e := NewEncoder(&buf)
		e.Command("T1", "ACTIVATE", a, b, c)
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		d := NewDecoder(&buf, 0, 0)
		var cmd Command
		if err := d.ReadCommand(&cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.AtomArg || !reflect.DeepEqual(cmd.Args, []string{a, b, c}) {
			t.Fatalf("round trip: %q", cmd.Args)
		}
	})
}
