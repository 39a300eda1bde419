package frontend

import (
	"strings"

	"github.com/imapfront/imapfront/router"
)

// referralURL builds the RFC 2193 / RFC 5092 URL of a mailbox on a backend,
// as Cyrus does: imap://;AUTH=*@host/<client name, URL-encoded>. There is
// never a user name or password in it. RFC 5092 puts the mailbox name in
// UTF-8 (not modified UTF-7) before percent-encoding it.
func referralURL(host, clientName string) string {
	name := clientName
	if u, err := router.DecodeUTF7(clientName); err == nil {
		name = u
	}
	var sb strings.Builder
	sb.WriteString("imap://;AUTH=*@")
	sb.WriteString(host)
	sb.WriteByte('/')
	sb.WriteString(encodeURLPath(name))
	return sb.String()
}

// encodeURLPath percent-encodes a mailbox name for the path of an IMAP URL
// (RFC 5092 "enc-mailbox": bchar, with "/" kept as the hierarchy
// separator).
func encodeURLPath(s string) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isBchar(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

// isBchar reports whether c may appear unencoded in an IMAP URL path:
// RFC 3986 unreserved, sub-delims except those RFC 5092 excludes, ":" "@"
// and "/".
func isBchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '\'', '(', ')', '*', '+', ',', ':', '@', '/', '&', '=':
		return true
	}
	return false
}
