package mover

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/router"
)

// msg is what the mover knows of one message: its UID on one side, its
// flags (without \Recent, sorted, system flags in canonical case), its
// internal date, its size, and (once read) the SHA-256 of its bytes.
type msg struct {
	uid    uint32
	flags  []string
	date   time.Time
	rawDay string // INTERNALDATE as the server wrote it, for APPEND
	size   int64
	sum    [32]byte
	hasSum bool
}

// conn is one logged-in IMAP connection to a backend, acting as one user
// (or as the backend's admin) on backend-native mailbox names.
type conn struct {
	b *Backend
	c *backend.Conn
	// modseq is the selected mailbox's HIGHESTMODSEQ (CONDSTORE), 0 if none.
	modseq uint64
}

func (m *Mover) dial(ctx context.Context, b *Backend, user string) (*conn, error) {
	login := backend.Login{User: user, ProxyUser: b.ProxyUser, ProxyPassword: b.ProxyPassword}
	if user == "" { // the backend's admin itself (Cyrus LOCALCREATE, shared mailboxes)
		login = backend.Login{User: b.ProxyUser, Password: b.ProxyPassword}
	}
	c, err := backend.Dial(ctx, b.Dial, login)
	if err != nil {
		return nil, err // names the backend's address
	}
	return &conn{b: b, c: c}, nil
}

func (c *conn) close() { c.c.Logout() }

func (c *conn) exec(ctx context.Context, cmd string) (*backend.Response, error) {
	r, err := c.c.Exec(ctx, cmd)
	if err != nil {
		return r, fmt.Errorf("backend %s: %s: %w", c.b.Server, strings.SplitN(cmd, " ", 2)[0], err)
	}
	return r, nil
}

// isNo reports whether err is a NO or BAD from a backend (the connection is usable).
func isNo(err error) bool {
	var be *backend.Error
	return errors.As(err, &be)
}

// selectBox selects (or examines) name and returns its UIDVALIDITY and
// EXISTS count. On a server with CONDSTORE (RFC 7162) it asks for mod-
// sequences and records the mailbox's HIGHESTMODSEQ in c.modseq (0 when
// the server gave none).
func (c *conn) selectBox(ctx context.Context, name string, readOnly bool) (uidValidity string, exists uint32, err error) {
	verb := "SELECT "
	if readOnly {
		verb = "EXAMINE "
	}
	cmd := verb + imapwire.AString(name)
	if c.c.Has("CONDSTORE") {
		cmd += " (CONDSTORE)"
	}
	c.modseq = 0
	r, err := c.exec(ctx, cmd)
	if err != nil {
		return "", 0, err
	}
	for _, l := range r.Untagged {
		s := string(l)
		if i := strings.Index(strings.ToUpper(s), "[HIGHESTMODSEQ "); i >= 0 {
			f := strings.FieldsFunc(s[i+len("[HIGHESTMODSEQ "):], func(r rune) bool { return r == ']' || r == ' ' })
			if len(f) > 0 {
				c.modseq, _ = strconv.ParseUint(f[0], 10, 64)
			}
		}
		if i := strings.Index(strings.ToUpper(s), "[UIDVALIDITY "); i >= 0 {
			f := strings.FieldsFunc(s[i+len("[UIDVALIDITY "):], func(r rune) bool { return r == ']' || r == ' ' })
			if len(f) > 0 {
				uidValidity = f[0]
			}
		}
		if f := strings.Fields(s); len(f) == 3 && strings.EqualFold(f[2], "EXISTS") {
			n, _ := strconv.ParseUint(f[1], 10, 32)
			exists = uint32(n)
		}
	}
	return uidValidity, exists, nil
}

// unselect leaves the selected mailbox without expunging.
func (c *conn) unselect(ctx context.Context) {
	if c.c.Has("UNSELECT") {
		c.c.Exec(ctx, "UNSELECT")
	}
}

// fetchMeta returns every message of the selected mailbox (exists
// messages) in UID order.
func (c *conn) fetchMeta(ctx context.Context, exists uint32) ([]*msg, error) {
	if exists == 0 {
		return nil, nil
	}
	var out []*msg
	var perr error
	_, err := c.c.ExecEach(ctx, "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)", 1<<20, func(l []byte) {
		m, ok, err := parseFetch(l)
		if err != nil && perr == nil {
			perr = err
		}
		if ok && m.uid != 0 {
			out = append(out, m)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("backend %s: UID FETCH: %w", c.b.Server, err)
	}
	if perr != nil {
		return nil, fmt.Errorf("backend %s: %w", c.b.Server, perr)
	}
	slices.SortFunc(out, func(a, b *msg) int { return int(a.uid) - int(b.uid) })
	// A server may send unsolicited FETCH (flag changes) for the same UID.
	out = slices.CompactFunc(out, func(a, b *msg) bool { return a.uid == b.uid })
	return out, nil
}

// changedSince returns the messages of the selected mailbox whose
// mod-sequence is above modseq (CONDSTORE's CHANGEDSINCE: new messages and
// flag changes) and the UIDs it holds now (for expunges), in UID order.
func (c *conn) changedSince(ctx context.Context, modseq uint64) (changed []*msg, uids []uint32, err error) {
	r, err := c.exec(ctx, "UID SEARCH ALL")
	if err != nil {
		return nil, nil, err
	}
	for _, l := range r.Untagged {
		f := strings.Fields(string(l))
		if len(f) < 2 || f[0] != "*" || !strings.EqualFold(f[1], "SEARCH") {
			continue
		}
		for _, w := range f[2:] {
			n, err := strconv.ParseUint(w, 10, 32)
			if err != nil {
				return nil, nil, fmt.Errorf("backend %s: UID SEARCH: %q", c.b.Server, w)
			}
			uids = append(uids, uint32(n))
		}
	}
	slices.Sort(uids)
	if len(uids) == 0 {
		return nil, nil, nil
	}
	var perr error
	_, err = c.c.ExecEach(ctx, "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE) (CHANGEDSINCE "+strconv.FormatUint(modseq, 10)+")", 1<<20, func(l []byte) {
		m, ok, err := parseFetch(l)
		if err != nil && perr == nil {
			perr = err
		}
		if ok && m.uid != 0 {
			changed = append(changed, m)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("backend %s: UID FETCH CHANGEDSINCE: %w", c.b.Server, err)
	}
	if perr != nil {
		return nil, nil, fmt.Errorf("backend %s: %w", c.b.Server, perr)
	}
	return changed, uids, nil
}

// errGone means a message was expunged before it could be read.
var errGone = errors.New("message expunged meanwhile")

// body streams the message uid of the selected mailbox to fn.
func (c *conn) body(ctx context.Context, uid uint32, fn func(size int64, r io.Reader) error) error {
	err := c.c.FetchBody(ctx, "UID FETCH "+strconv.FormatUint(uint64(uid), 10)+" BODY.PEEK[]", fn, func([]byte) {})
	if errors.Is(err, backend.ErrNoBody) {
		return errGone
	}
	return err
}

// digest reads message uid and returns the SHA-256 of its bytes and its size.
func (c *conn) digest(ctx context.Context, uid uint32) ([32]byte, int64, error) {
	h := sha256.New()
	var n int64
	err := c.body(ctx, uid, func(size int64, r io.Reader) error {
		var err error
		n, err = io.Copy(h, r)
		return err
	})
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

// appendFrom appends size bytes read from r to name with flags and date
// and returns the UID the backend gave it (APPENDUID, RFC 4315).
func (c *conn) appendFrom(ctx context.Context, name string, flags []string, date string, size int64, r io.Reader) (uint32, error) {
	prefix := "APPEND " + imapwire.AString(name) + " (" + strings.Join(flags, " ") + ")"
	if date != "" {
		prefix += " " + imapwire.Quote(date)
	}
	resp, err := c.c.ExecLiteralFrom(ctx, prefix, size, r)
	if err != nil {
		return 0, fmt.Errorf("backend %s: APPEND: %w", c.b.Server, err)
	}
	_, uid, ok := imapwire.ParseAppendUID(resp.Text)
	if !ok {
		return 0, fmt.Errorf("backend %s: APPEND gave no APPENDUID (UIDPLUS is required at the destination)", c.b.Server)
	}
	return uid, nil
}

// setFlags replaces the flags of message uid.
func (c *conn) setFlags(ctx context.Context, uid uint32, flags []string) error {
	_, err := c.exec(ctx, "UID STORE "+strconv.FormatUint(uint64(uid), 10)+" FLAGS.SILENT ("+strings.Join(flags, " ")+")")
	return err
}

// expunge removes the messages uids of the selected mailbox (UIDPLUS).
func (c *conn) expunge(ctx context.Context, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	set := imapwire.FormatUIDs(uids)
	if _, err := c.exec(ctx, "UID STORE "+set+` +FLAGS.SILENT (\Deleted)`); err != nil {
		return err
	}
	_, err := c.exec(ctx, "UID EXPUNGE "+set)
	return err
}

// getACL returns the ACL of name (RFC 4314 GETACL) as a Cyrus ACL string.
func (c *conn) getACL(ctx context.Context, name string) (router.ACL, error) {
	r, err := c.exec(ctx, "GETACL "+imapwire.AString(name))
	if err != nil {
		return nil, err
	}
	for _, l := range r.Untagged {
		_, pairs, ok, err := imapwire.ParseACL(l)
		if !ok {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backend %s: bad ACL response", c.b.Server)
		}
		var acl router.ACL
		for _, p := range pairs {
			rights, err := router.ParseRights(p.Rights)
			if err != nil {
				return nil, fmt.Errorf("backend %s: ACL: %w", c.b.Server, err)
			}
			e := router.ACLEntry{ID: p.ID, Rights: rights}
			if strings.HasPrefix(p.ID, "-") {
				e.ID, e.Negative = p.ID[1:], true
			}
			acl = append(acl, e)
		}
		return acl, nil
	}
	return nil, nil
}

// list returns the backend-native names matching pattern that can be
// selected, with the separator the backend reported.
func (c *conn) list(ctx context.Context, verb, pattern string) ([]string, error) {
	r, err := c.exec(ctx, verb+` "" `+imapwire.AString(pattern))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range r.Untagged {
		name, attrs, ok := imapwire.ParseList(l, strings.TrimSpace(verb))
		if !ok {
			continue
		}
		if verb == "LIST" && (imapwire.HasAttr(attrs, `\Noselect`) || imapwire.HasAttr(attrs, `\NonExistent`)) {
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

// exists reports whether the backend has the mailbox name.
func (c *conn) exists(ctx context.Context, name string) (bool, error) {
	names, err := c.list(ctx, "LIST", name)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(names, func(n string) bool {
		return n == name || (strings.EqualFold(n, "INBOX") && strings.EqualFold(name, "INBOX"))
	}), nil
}

// parseFetch parses "* n FETCH (UID u FLAGS (...) INTERNALDATE "..."
// RFC822.SIZE s)" in any order, skipping other items. ok is false for
// other responses; err reports a FETCH that does not parse.
func parseFetch(l []byte) (*msg, bool, error) {
	p := imapwire.NewScanner(l)
	if w, err := p.Atom(); err != nil || w != "*" || p.SP() != nil {
		return nil, false, nil
	}
	if _, err := p.Atom(); err != nil || p.SP() != nil {
		return nil, false, nil
	}
	if w, err := p.Atom(); err != nil || !strings.EqualFold(w, "FETCH") || p.SP() != nil || !p.Special('(') {
		return nil, false, nil
	}
	m := &msg{}
	bad := func(what string) (*msg, bool, error) {
		return nil, false, fmt.Errorf("unparsable FETCH response (%s): %.100q", what, l)
	}
	for !p.Special(')') {
		if !p.More() {
			return bad("unterminated")
		}
		p.Special(' ')
		key, err := p.Atom()
		if err != nil || p.SP() != nil {
			return bad("item")
		}
		switch strings.ToUpper(key) {
		case "UID":
			v, err := p.Atom()
			n, perr := strconv.ParseUint(v, 10, 32)
			if err != nil || perr != nil {
				return bad("UID")
			}
			m.uid = uint32(n)
		case "FLAGS":
			fl, err := p.List()
			if err != nil {
				return bad("FLAGS")
			}
			m.flags = normFlags(fl)
		case "INTERNALDATE":
			s, err := p.String()
			if err != nil {
				return bad("INTERNALDATE")
			}
			t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", strings.TrimSpace(s))
			if err != nil {
				return bad("INTERNALDATE")
			}
			m.date, m.rawDay = t, s
		case "RFC822.SIZE":
			v, err := p.Atom()
			n, perr := strconv.ParseInt(v, 10, 64)
			if err != nil || perr != nil {
				return bad("RFC822.SIZE")
			}
			m.size = n
		default:
			if p.SkipValue() != nil {
				return bad(key)
			}
		}
	}
	return m, true, nil
}

// normFlags drops \Recent, writes system flags in RFC 3501 case and sorts.
func normFlags(fl []string) []string {
	system := []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}
	out := make([]string, 0, len(fl))
	for _, f := range fl {
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		for _, s := range system {
			if strings.EqualFold(f, s) {
				f = s
			}
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// digestOf is a message's SHA-256 and size.
type digestOf struct {
	sum  [32]byte
	size int64
}

// errNoUID means a server's FETCH answer did not give the UID before the body.
var errNoUID = errors.New("FETCH answer without the UID before BODY[]")

// digests reads every message of the selected mailbox (exists messages)
// in one FETCH and returns their digests by UID; memory holds one
// message's buffer at a time, not the messages.
func (c *conn) digests(ctx context.Context, exists uint32) (map[uint32]digestOf, error) {
	out := make(map[uint32]digestOf, exists)
	if exists == 0 {
		return out, nil
	}
	err := c.c.FetchLiterals(ctx, "UID FETCH 1:* (UID BODY.PEEK[])", func(head []byte, size int64, r io.Reader) error {
		uid := headUID(head)
		if uid == 0 {
			return errNoUID
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		var d digestOf
		copy(d.sum[:], h.Sum(nil))
		d.size = n
		out[uint32(uid)] = d
		return nil
	}, func([]byte) {})
	if errors.Is(err, errNoUID) {
		// Message by message instead.
		metas, merr := c.fetchMeta(ctx, exists)
		if merr != nil {
			return nil, merr
		}
		for _, m := range metas {
			sum, n, err := c.digest(ctx, m.uid)
			if errors.Is(err, errGone) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[m.uid] = digestOf{sum, n}
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backend %s: UID FETCH BODY.PEEK[]: %w", c.b.Server, err)
	}
	return out, nil
}

// headUID returns the UID item of the first line of a FETCH response up
// to its literal ("* 5 FETCH (UID 12 BODY[] "), or 0.
func headUID(head []byte) uint32 {
	f := strings.Fields(strings.ToUpper(string(head)))
	for i := 0; i+1 < len(f); i++ {
		if strings.TrimPrefix(f[i], "(") == "UID" {
			if u, err := strconv.ParseUint(f[i+1], 10, 32); err == nil {
				return uint32(u)
			}
		}
	}
	return 0
}

// maxUIDSet bounds what parseUIDSet expands (an APPENDUID answers one
// batch of at most batchMessages).
const maxUIDSet = 1 << 16

// parseUIDSet expands an IMAP UID set ("4:6,9").
func parseUIDSet(s string) ([]uint32, error) {
	var out []uint32
	for _, r := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(r, ":")
		lo, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return nil, err
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 32); err != nil {
				return nil, err
			}
		}
		if hi < lo {
			lo, hi = hi, lo
		}
		if hi-lo >= maxUIDSet || len(out)+int(hi-lo) >= maxUIDSet {
			return nil, errors.New("UID set too long")
		}
		for u := lo; u <= hi; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// getMetadata returns the mailbox's METADATA entries that have a value,
// leaving out servers' own (…/vendor/…), which are not the user's to copy.
func (c *conn) getMetadata(ctx context.Context, name string) (map[string]string, error) {
	r, err := c.exec(ctx, "GETMETADATA "+imapwire.AString(name)+" (DEPTH infinity) (/private /shared)")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range r.Untagged {
		p := imapwire.NewScanner(l)
		if w, _ := p.Atom(); w != "*" || p.SP() != nil {
			continue
		}
		if w, _ := p.Atom(); !strings.EqualFold(w, "METADATA") || p.SP() != nil {
			continue
		}
		if _, err := p.AString(); err != nil || p.SP() != nil || !p.Special('(') {
			return nil, fmt.Errorf("backend %s: bad METADATA response", c.b.Server)
		}
		for !p.Special(')') {
			if !p.More() {
				return nil, fmt.Errorf("backend %s: bad METADATA response", c.b.Server)
			}
			p.Special(' ')
			entry, err := p.AString()
			if err != nil || p.SP() != nil {
				return nil, fmt.Errorf("backend %s: bad METADATA response", c.b.Server)
			}
			v, ok, err := p.NString()
			if err != nil {
				return nil, fmt.Errorf("backend %s: bad METADATA response", c.b.Server)
			}
			if ok && !strings.Contains(strings.ToLower(entry), "/vendor/") {
				out[strings.ToLower(entry)] = v
			}
		}
	}
	return out, nil
}
