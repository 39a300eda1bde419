package mover

import "testing"

// The mover parses what backends answer: FETCH responses, UID sets of
// APPENDUID, the items before a literal. Hostile or broken answers give
// errors, never a panic or an unbounded expansion.
func FuzzParseFetch(f *testing.F) {
	for _, s := range []string{
		`* 1 FETCH (UID 7 FLAGS (\Seen $Label1) INTERNALDATE " 1-Feb-2021 09:00:00 +0000" RFC822.SIZE 18)`,
		`* 2 FETCH (FLAGS () UID 9)`,
		`* 3 FETCH (UID 4294967296)`,
		`* 4 FETCH (INTERNALDATE "32-Feb-2021 09:00:00 +0000")`,
		`* 5 FETCH (X-GM-LABELS ("a" b) UID 1 MODSEQ (12))`,
		`* 6 FETCH (UID 1 FLAGS (\Seen`,
		`* 7 EXPUNGE`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok, err := parseFetch([]byte(s))
		if ok && (m == nil || err != nil) {
			t.Fatalf("ok with %v, %v", m, err)
		}
		headUID([]byte(s))
	})
}

func FuzzParseUIDSet(f *testing.F) {
	for _, s := range []string{"1", "4:6,9", "9:4", "1:4294967295", "1,,2", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		uids, err := parseUIDSet(s)
		if err == nil && len(uids) > maxUIDSet {
			t.Fatalf("%q expanded to %d UIDs", s, len(uids))
		}
	})
}
