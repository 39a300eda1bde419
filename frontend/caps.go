package frontend

import (
	"sort"
	"strconv"
	"strings"
)

// ownCaps are the capabilities the front end implements itself, whatever
// the backends do.
var ownCaps = []string{"IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "CHILDREN", "UNSELECT", "MAILBOX-REFERRALS", "LIST-EXTENDED", "LIST-STATUS"}

// relayCaps are extensions the front end relays untouched; each is shown
// only when every backend whose capabilities are known has it.
var relayCaps = map[string]bool{
	"UIDPLUS": true, "MOVE": true, "CONDSTORE": true, "QRESYNC": true, "ESEARCH": true,
	"SEARCHRES": true, "SORT": true, "SORT=DISPLAY": true, "THREAD=REFERENCES": true,
	"THREAD=ORDEREDSUBJECT": true, "THREAD=REFS": true, "WITHIN": true, "BINARY": true,
	"ACL": true, "RIGHTS=KXTE": true, "RIGHTS=TEKX": true, "QUOTA": true, "METADATA": true,
	"SPECIAL-USE": true, "STATUS=SIZE": true, "ESORT": true, "PREVIEW": true, "SAVEDATE": true,
	"UTF8=ACCEPT": true, "OBJECTID": true, "MULTIAPPEND": true, "CATENATE": true,
}

// preAuthCaps returns the capabilities shown before login.
func (sess *session) preAuthCaps() string {
	caps := []string{"IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "MAILBOX-REFERRALS"}
	if sess.s.live().LoginReferrals {
		caps = append(caps, "LOGIN-REFERRALS")
	}
	if sess.s.opts.TLSConfig != nil && !sess.tls {
		caps = append(caps, "STARTTLS")
	}
	if sess.canAuthPlain() {
		caps = append(caps, "AUTH=PLAIN", "AUTH=LOGIN")
	} else {
		caps = append(caps, "LOGINDISABLED")
	}
	if sess.s.opts.GSSAPI != nil {
		// No password travels: offered with or without TLS.
		caps = append(caps, "AUTH=GSSAPI")
	}
	return strings.Join(caps, " ")
}

// postAuthCaps returns the capabilities shown after login: the front end's
// own plus the relayed extensions every known backend offers.
func (sess *session) postAuthCaps() string {
	caps := append([]string(nil), ownCaps...)
	caps = append(caps, sess.s.commonBackendCaps()...)
	if sess.s.live().LoginReferrals {
		caps = append(caps, "LOGIN-REFERRALS")
	}
	if !sess.compressed {
		caps = append(caps, "COMPRESS=DEFLATE")
	}
	caps = append(caps, "APPENDLIMIT="+strconv.FormatInt(sess.s.opts.AppendLimit, 10))
	return strings.Join(caps, " ")
}

// learnCaps records a backend's post-login capabilities.
func (s *Server) learnCaps(server string, caps map[string]bool) {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if s.backendCaps == nil {
		s.backendCaps = make(map[string]map[string]bool)
	}
	s.backendCaps[server] = caps
}

// commonBackendCaps returns the relayable capabilities that every backend
// seen so far has, in a stable order.
func (s *Server) commonBackendCaps() []string {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if len(s.backendCaps) == 0 {
		return nil
	}
	var out []string
	for c := range relayCaps {
		all := true
		for _, caps := range s.backendCaps {
			if !caps[c] {
				all = false
				break
			}
		}
		if all {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}
