package itenv

import (
	"fmt"
	"time"
)

// SeededMessages is the number of messages the harness appends to the INBOX
// of every user on the user's home backend (INBOXes elsewhere stay empty).
const SeededMessages = 3

// SeededFolders returns the folders, besides INBOX, that the harness creates
// for user on its home backend, named in that backend's own namespace:
// "/"-separated on Cyrus (altnamespace, unixhierarchysep), "."-separated on
// Dovecot. A user without seeded folders gets nil.
func SeededFolders(user string) []string {
	switch user {
	case "alice": // Cyrus be1; "dotted.name" is user.alice.dotted^name in MUPDATE
		return []string{"Sent", "Projects", "Projects/Murder", "dotted.name"}
	case "bob": // Cyrus be2
		return []string{"Sent", "Team"}
	case "carol": // Dovecot
		return []string{"Sent", "Projects", "Projects.Dovecot"}
	}
	return nil
}

// Share is an ACL entry the harness sets on a mailbox.
type Share struct {
	Backend string // "be1", "be2"
	Mailbox string // the Cyrus admin's name for it, e.g. "user/bob/Team" or "shared"
	Grantee string // identifier, e.g. "alice" or "anyone"
	Rights  string // RFC 4314 rights
}

// SeededShares returns the shared mailboxes and grants the harness creates on
// the Cyrus backends. Shared mailboxes (no user/ prefix) are seen by users
// as "Shared Folders/<name>"; bob's Team as "Other Users/bob/Team".
func SeededShares() []Share {
	return []Share{
		{Backend: "be1", Mailbox: "shared", Grantee: "anyone", Rights: "lrs"},
		{Backend: "be1", Mailbox: "shared/announcements", Grantee: "anyone", Rights: "lrs"},
		{Backend: "be2", Mailbox: "user/bob/Team", Grantee: "alice", Rights: "lrs"},
	}
}

// SeedMessage returns the n-th (1-based) seeded message for user, with CRLF
// line endings. Its Subject is SeedSubject(user, n).
func SeedMessage(user string, n int, date time.Time) []byte {
	return fmt.Appendf(nil, "Date: %s\r\n"+
		"From: Seeder <seed@imapfront.test>\r\n"+
		"To: %s <%s@imapfront.test>\r\n"+
		"Subject: %s\r\n"+
		"Message-ID: <seed-%s-%d@imapfront.test>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\n"+
		"\r\n"+
		"Seeded by integration/seed for %s, message %d.\r\n",
		date.Format(time.RFC1123Z), user, user, SeedSubject(user, n), user, n, user, n)
}

// SeedSubject is the Subject of the n-th seeded message of user.
func SeedSubject(user string, n int) string { return fmt.Sprintf("seed %d for %s", n, user) }
