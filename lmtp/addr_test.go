package lmtp

import "testing"

func TestParseRecipient(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Recipient
		ok   bool
	}{
		{"alice@example.org", Recipient{User: "alice", Domain: "example.org"}, true},
		{"Alice@Example.ORG", Recipient{User: "alice", Domain: "example.org"}, true},
		{"bob+Team@example.org", Recipient{User: "bob", Detail: "Team", Domain: "example.org"}, true},
		{"bob+Team/Sub@example.org", Recipient{User: "bob", Detail: "Team/Sub", Domain: "example.org"}, true},
		{"alice", Recipient{User: "alice"}, true},
		{"first.last@[127.0.0.1]", Recipient{User: "first.last", Domain: "[127.0.0.1]"}, true},
		{"", Recipient{}, false},
		{"@example.org", Recipient{}, false},
		{"alice@", Recipient{}, false},
		{"\"alice\"@example.org", Recipient{}, false},
		{"al ice@example.org", Recipient{}, false},
		{"alice@exa mple.org", Recipient{}, false},
		{"bob+Other Users/alice@example.org", Recipient{}, false},
		{"bob+a//b@example.org", Recipient{}, false},
		{"bob+*@example.org", Recipient{}, false},
		{".alice@example.org", Recipient{}, false},
		{"al..ice@example.org", Recipient{}, false},
		{"alice\r\nRCPT TO:<x>@example.org", Recipient{}, false},
		{"@route:alice@example.org", Recipient{}, false},
		{"alice@-bad.org", Recipient{}, false},
	} {
		got, err := ParseRecipient(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRecipient(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseRecipient(f *testing.F) {
	for _, s := range []string{"alice@example.org", "bob+Team@example.org", "x", "a+b/c@[::1]", "\"q\"@x", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecipient(s)
		if err != nil {
			return
		}
		enc := r.String()
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' {
				t.Fatalf("%q accepted with byte %q in %q", s, c, enc)
			}
		}
		r2, err := ParseRecipient(enc)
		if err != nil || r2 != r {
			t.Fatalf("%q -> %q does not re-parse: %+v %v", s, enc, r2, err)
		}
	})
}
