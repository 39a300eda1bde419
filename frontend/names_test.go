package frontend

import "testing"

// The name sent to a backend: a Murder backend gets the client's name, a
// personal-namespace backend (Dovecot) the user's own folder in its own
// spelling, and nothing for names it cannot hold.
func TestBackendNative(t *testing.T) {
	dovecot := &Backend{Server: "dove", Separator: '.', Personal: true}
	cyrus := &Backend{Server: "cy", Separator: '/'}
	tests := []struct {
		b        *Backend
		user     string
		client   string
		internal string
		want     string
		wantErr  bool
	}{
		{cyrus, "alice", "Projects/Murder", "user.alice.Projects.Murder", "Projects/Murder", false},
		{cyrus, "bob", "Other Users/alice/Projects", "user.alice.Projects", "Other Users/alice/Projects", false},
		{dovecot, "carol", "INBOX", "user.carol", "INBOX", false},
		{dovecot, "carol", "Projects/Dovecot", "user.carol.Projects.Dovecot", "Projects.Dovecot", false},
		{dovecot, "carol", "dotted.name", "user.carol.dotted^name", "", true},
		{dovecot, "bob", "Other Users/carol/Sent", "user.carol.Sent", "", true},
		{dovecot, "carol", "Shared Folders/x", "x", "", true},
	}
	for _, tc := range tests {
		got, err := tc.b.native(tc.user, tc.client, tc.internal)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s.native(%q) = %q, %v; want %q, error %v", tc.b.Server, tc.client, got, err, tc.want, tc.wantErr)
		}
		if err != nil || !tc.b.Personal {
			continue
		}
		back, err := tc.b.fromNative(nil, tc.user, got)
		if err != nil || back != tc.internal {
			t.Errorf("%s.fromNative(%q) = %q, %v; want %q", tc.b.Server, got, back, err, tc.internal)
		}
	}
}

func TestReferralURL(t *testing.T) {
	tests := []struct{ host, name, want string }{
		{"127.0.0.1:12243", "INBOX", "imap://;AUTH=*@127.0.0.1:12243/INBOX"},
		{"127.0.0.1:12143", "Shared Folders/shared", "imap://;AUTH=*@127.0.0.1:12143/Shared%20Folders/shared"},
		{"127.0.0.1:12143", "Other Users/alice/Projects", "imap://;AUTH=*@127.0.0.1:12143/Other%20Users/alice/Projects"},
		{"h", `a"b%c?d#e`, "imap://;AUTH=*@h/a%22b%25c%3Fd%23e"},
		// modified UTF-7 in the client name, UTF-8 in the URL (RFC 5092)
		{"h", "Entw&APw-rfe", "imap://;AUTH=*@h/Entw%C3%BCrfe"},
	}
	for _, tc := range tests {
		if got := referralURL(tc.host, tc.name); got != tc.want {
			t.Errorf("referralURL(%q, %q) = %q, want %q", tc.host, tc.name, got, tc.want)
		}
	}
}
