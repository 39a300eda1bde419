package imapwire

import (
	"bufio"
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestAStringForms(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Sent Items", `"Sent Items"`},
		{"", `""`},
		{"NIL", `"NIL"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"a]b", "a]b"},
		{"a%b", `"a%b"`},
		{"line\r\nbreak", "{11}\r\nline\r\nbreak"},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
		{"bad\xff", "{4}\r\nbad\xff"},
	}
	for _, tt := range tests {
		if got := AString(tt.in); got != tt.want {
			t.Errorf("AString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestQuoteRoundTrip checks that what the Writer quotes, the Reader reads
// back unchanged.
func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", "two words", `q"uote`, `back\slash`, "", "NIL", "a\r\nb", "x]y"} {
		in := "t X " + AString(s) + "\r\n"
		r := NewReader(bufio.NewReader(strings.NewReader(in)), Options{})
		r.ReadCommand()
		var got string
		if !r.ExpectSP() || !r.ExpectAString(&got) || !r.ExpectCRLF() {
			t.Fatalf("%q: %v", s, r.Err())
		}
		if got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	}
}

func TestWriterResponses(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.StatusResponse("a1", NO, "TOOBIG", "Message too big\r\nevil")
	w.StatusResponse("", OK, "", "IMAP4rev1 ready")
	w.StatusResponse("a2", BAD, "", "")
	w.Continue("")
	w.Untagged("CAPABILITY IMAP4rev1 IDLE")
	w.Encode(func(e *Encoder) {
		s := "Sent Items"
		e.Raw("* LIST (").Raw(`\HasNoChildren`).Raw(") ").String("/").SP().AString(s).CRLF()
		e.Raw("* ID ").NString(nil).CRLF()
		e.Raw("* 3 EXISTS").SP().Number(7).CRLF()
	})
	want := "a1 NO [TOOBIG] Message too big  evil\r\n" +
		"* OK IMAP4rev1 ready\r\n" +
		"a2 BAD Invalid command\r\n" +
		"+ Ready\r\n" +
		"* CAPABILITY IMAP4rev1 IDLE\r\n" +
		"* LIST (\\HasNoChildren) \"/\" \"Sent Items\"\r\n" +
		"* ID NIL\r\n" +
		"* 3 EXISTS 7\r\n"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}
}

func TestWriterConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				w.Encode(func(e *Encoder) { e.Raw("* ").Number(uint64(i)).Raw(" EXISTS").CRLF() })
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\r\n"), "\r\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "* ") || !strings.HasSuffix(l, " EXISTS") {
			t.Fatalf("torn line %q", l)
		}
	}
}
