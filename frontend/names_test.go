package frontend

import "testing"

func TestNativeNameOnPersonalBackend(t *testing.T) {
	dovecot := &Backend{Server: "dove", Separator: '.', Personal: true}
	cyrus := &Backend{Server: "cy", Separator: '/'}
	tests := []struct {
		b       *Backend
		user    string
		client  string
		mb      Mailbox
		want    string
		wantErr bool
	}{
		{cyrus, "alice", "Projects/Murder", Mailbox{Owner: "alice", Path: "Projects.Murder"}, "Projects/Murder", false},
		{cyrus, "bob", "Other Users/alice/Projects", Mailbox{Owner: "alice", Path: "Projects"}, "Other Users/alice/Projects", false},
		{dovecot, "carol", "INBOX", Mailbox{Owner: "carol"}, "INBOX", false},
		{dovecot, "carol", "Projects/Dovecot", Mailbox{Owner: "carol", Path: "Projects.Dovecot"}, "Projects.Dovecot", false},
		{dovecot, "carol", "dotted.name", Mailbox{Owner: "carol", Path: "dotted^name"}, "", true},
		{dovecot, "bob", "Other Users/carol/Sent", Mailbox{Owner: "carol", Path: "Sent"}, "", true},
		{dovecot, "carol", "Shared Folders/x", Mailbox{Path: "x"}, "", true},
	}
	for _, tc := range tests {
		got, err := nativeName(tc.b, tc.user, tc.client, tc.mb)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("nativeName(%s, %q) = %q, %v; want %q, error %v", tc.b.Server, tc.client, got, err, tc.want, tc.wantErr)
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
