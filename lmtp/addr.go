package lmtp

import (
	"errors"
	"strings"
)

// ErrBadAddress reports a recipient address that cannot name a mailbox.
var ErrBadAddress = errors.New("lmtp: bad recipient address")

// maxLocalPart bounds the local part (RFC 5321 section 4.5.3.1.1 says 64
// octets; Cyrus accepts longer folder details, so allow more, but bounded).
const maxLocalPart = 255

// Recipient is a parsed RCPT TO address: user+detail@domain.
type Recipient struct {
	// User is the mailbox owner's user id, lower-cased (Cyrus
	// lmtp_downcase_rcpt).
	User string
	// Detail is the folder after '+' ("" for none), as given: a client
	// name in the owner's namespace ("Team", "Team/Sub").
	Detail string
	// Domain is the part after '@' ("" for a bare local part), lower-cased.
	Domain string
}

// ParseRecipient parses an RCPT TO address (without the angle brackets,
// as go-smtp hands it over): "user@domain", "user+folder@domain" or a bare
// "user". Quoted local parts, source routes, control characters and
// characters that cannot be in a Cyrus user id are refused with
// ErrBadAddress: a recipient this parser accepts is safe to put in a
// mailbox name and on the backend's wire.
func ParseRecipient(addr string) (Recipient, error) {
	local, domain := addr, ""
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain = addr[:i], addr[i+1:]
		if domain == "" || !validDomain(domain) {
			return Recipient{}, ErrBadAddress
		}
	}
	if local == "" || len(local) > maxLocalPart {
		return Recipient{}, ErrBadAddress
	}
	user, detail, _ := strings.Cut(local, "+")
	if !validUser(user) || !validDetail(detail) {
		return Recipient{}, ErrBadAddress
	}
	return Recipient{User: strings.ToLower(user), Detail: detail, Domain: strings.ToLower(domain)}, nil
}

// String re-encodes the recipient for a backend's RCPT TO, without the
// detail when folder is false.
func (r Recipient) String() string { return r.address(true) }

func (r Recipient) address(folder bool) string {
	s := r.User
	if folder && r.Detail != "" {
		s += "+" + r.Detail
	}
	if r.Domain != "" {
		s += "@" + r.Domain
	}
	return s
}

// validUser accepts the characters of a Cyrus user id that an address's
// dot-atom may carry: letters, digits and "-_.=" (no '+', the detail
// separator; no '@', '!', '/', '%', '*', whitespace or control bytes).
func validUser(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '=':
		default:
			return false
		}
	}
	return true
}

// validDetail accepts a folder name: printable ASCII without the list
// wildcards, quotes or backslash; '/' separates levels (no empty level).
func validDetail(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == '/' || s[len(s)-1] == '/' || strings.Contains(s, "//") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"\%*<>@`, c) >= 0 {
			return false
		}
	}
	return true
}

// validDomain accepts a dot-separated host name or a bracketed address
// literal of printable characters.
func validDomain(s string) bool {
	if len(s) > 255 {
		return false
	}
	if s[0] == '[' {
		if len(s) < 3 || s[len(s)-1] != ']' {
			return false
		}
		for i := 1; i < len(s)-1; i++ {
			c := s[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':' || c == 'I' || c == 'P' || c == 'v' || c == '6') {
				return false
			}
		}
		return true
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
