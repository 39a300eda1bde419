package frontend

import (
	"testing"
)

// FuzzCommandParsing feeds arbitrary command lines to the parsers the
// session uses on client input: none may panic, and a parsed command keeps
// its tag and name consistent with the line.
func FuzzCommandParsing(f *testing.F) {
	for _, s := range []string{
		"a1 LOGIN alice alicepw",
		`a2 LOGIN "al\"ice" {5}` + "\r\nabcde",
		`a3 LIST "" "*"`,
		`a4 LIST (SUBSCRIBED REMOTE) "" ("INBOX" "Sent") RETURN (CHILDREN)`,
		`a5 STATUS "Other Users/alice/Projects" (MESSAGES UIDNEXT)`,
		"a6 APPEND INBOX (\\Seen) \"02-Jan-2026 03:04:05 +0000\" {12+}",
		"a7 UID MOVE 1:*,5 \"Shared Folders/shared\"",
		`* 3 FETCH (UID 17 FLAGS (\Seen) INTERNALDATE "02-Jan-2026 03:04:05 +0000" BODY[] {3}` + "\r\nabc)",
		"a8 ID NIL", "a9 ENABLE CONDSTORE QRESYNC", "+", "", "a", "a ", "a {", "a (((", `a "`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := parseCommandLine(line)
		if err == nil && (cmd.tag == "" || cmd.name == "") {
			t.Fatalf("parsed %q with empty tag or name", line)
		}
		literalAt(line)
		p := &argParser{b: line}
		for i := 0; i < 64 && p.more(); i++ {
			start := p.i
			switch i % 5 {
			case 0:
				p.astring()
			case 1:
				p.list()
			case 2:
				p.skipValue()
			case 3:
				p.str()
			default:
				p.sp()
			}
			if p.i < start || p.i > len(line) {
				t.Fatalf("parser position %d out of range after %d", p.i, start)
			}
			if p.i == start {
				p.i++
			}
		}
		parseFetchedMsg(line)
		parseAppendUID(string(line))
	})
}
