package imapwire

import (
	"slices"
	"testing"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		line, verb, name string
		attrs            []string
		ok               bool
	}{
		{`* LIST (\HasNoChildren) "." "Projects.Dovecot"`, "LIST", "Projects.Dovecot", []string{`\HasNoChildren`}, true},
		{`* LIST () NIL INBOX`, "LIST", "INBOX", []string{}, true},
		{`* LSUB () "/" "Other Users/bob/Team"`, "LSUB", "Other Users/bob/Team", []string{}, true},
		{`* LSUB () "/" x`, "LIST", "", nil, false},
		{`* LIST (\Noselect) "/"`, "LIST", "", nil, false},
		{`a OK done`, "LIST", "", nil, false},
	} {
		name, attrs, ok := ParseList([]byte(tc.line), tc.verb)
		if ok != tc.ok || name != tc.name || ok && !slices.Equal(attrs, tc.attrs) && len(attrs)+len(tc.attrs) > 0 {
			t.Errorf("ParseList(%q) = %q %q %v", tc.line, name, attrs, ok)
		}
	}
}

func TestParseACL(t *testing.T) {
	box, pairs, ok, err := ParseACL([]byte(`* ACL Projects bob lr carol lrwstipekxacd`))
	if !ok || err != nil || box != "Projects" || !slices.Equal(pairs, []ACLPair{{"bob", "lr"}, {"carol", "lrwstipekxacd"}}) {
		t.Fatalf("ParseACL = %q %v %v %v", box, pairs, ok, err)
	}
	if _, _, ok, err := ParseACL([]byte(`* ACL Projects bob`)); !ok || err == nil {
		t.Fatalf("a truncated ACL response: ok=%v err=%v, want an error", ok, err)
	}
	if _, _, ok, _ := ParseACL([]byte(`* MYRIGHTS Projects lr`)); ok {
		t.Fatal("MYRIGHTS taken for ACL")
	}
}

func TestParseAppendUIDAndFormatUIDs(t *testing.T) {
	for text, want := range map[string]uint32{
		"[APPENDUID 38505 3955] APPEND completed": 3955,
		"[appenduid 1 7:9] done":                  7,
		"[APPENDUID 1 0] bad":                     0,
		"[COPYUID 1 2 3] no":                      0,
	} {
		_, uid, ok := ParseAppendUID(text)
		if uid != want || ok != (want != 0) {
			t.Errorf("ParseAppendUID(%q) = %d %v, want %d", text, uid, ok, want)
		}
	}
	if got := FormatUIDs([]uint32{7, 1, 2, 3, 3, 9, 10}); got != "1:3,7,9:10" {
		t.Errorf("FormatUIDs = %q", got)
	}
}
