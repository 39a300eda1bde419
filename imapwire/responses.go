package imapwire

import (
	"slices"
	"strconv"
	"strings"
)

// Readers of the backend responses a proxy or tool needs to understand,
// by RFC 3501/9051 grammar, on the lines collected by a backend client
// (literals inlined).

// ParseList reads "* LIST (attrs) sep name" (or LSUB, as verb says) and
// returns the mailbox name and its attributes; ok is false for any other
// line or one that does not parse.
func ParseList(line []byte, verb string) (name string, attrs []string, ok bool) {
	p := NewScanner(line)
	if w, err := p.Atom(); err != nil || w != "*" || p.SP() != nil {
		return "", nil, false
	}
	if w, err := p.Atom(); err != nil || !strings.EqualFold(w, verb) || p.SP() != nil {
		return "", nil, false
	}
	attrs, err := p.List()
	if err != nil || p.SP() != nil {
		return "", nil, false
	}
	if _, _, err := p.NString(); err != nil || p.SP() != nil {
		return "", nil, false
	}
	name, err = p.AString()
	return name, attrs, err == nil
}

// HasAttr reports whether attrs holds a (name attributes are
// case-insensitive).
func HasAttr(attrs []string, a string) bool {
	return slices.ContainsFunc(attrs, func(x string) bool { return strings.EqualFold(x, a) })
}

// ACLPair is one identifier and its rights in an ACL response.
type ACLPair struct{ ID, Rights string }

// ParseACL reads "* ACL mailbox id rights ..." (RFC 4314); ok is false
// for another response, err set for an ACL response that does not parse.
func ParseACL(line []byte) (mailbox string, pairs []ACLPair, ok bool, err error) {
	p := NewScanner(line)
	if w, e := p.Atom(); e != nil || w != "*" || p.SP() != nil {
		return "", nil, false, nil
	}
	if w, e := p.Atom(); e != nil || !strings.EqualFold(w, "ACL") || p.SP() != nil {
		return "", nil, false, nil
	}
	if mailbox, err = p.AString(); err != nil {
		return "", nil, true, err
	}
	for p.More() {
		if err = p.SP(); err != nil {
			return "", nil, true, err
		}
		id, err1 := p.AString()
		err2 := p.SP()
		rights, err3 := p.AString()
		if err = firstErr(err1, err2, err3); err != nil {
			return "", nil, true, err
		}
		pairs = append(pairs, ACLPair{ID: id, Rights: rights})
	}
	return mailbox, pairs, true, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// ParseAppendUID reads "[APPENDUID uidvalidity uid] ..." (RFC 4315) from
// the text of a tagged OK; for MULTIAPPEND uid is the first of the set.
func ParseAppendUID(text string) (uidValidity string, uid uint32, ok bool) {
	if !strings.HasPrefix(strings.ToUpper(text), "[APPENDUID ") {
		return "", 0, false
	}
	f := strings.Fields(text[len("[APPENDUID "):])
	if len(f) < 2 {
		return "", 0, false
	}
	first, _, _ := strings.Cut(strings.TrimSuffix(f[1], "]"), ":")
	first, _, _ = strings.Cut(first, ",")
	n, err := strconv.ParseUint(first, 10, 32)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return f[0], uint32(n), true
}

// FormatUIDs writes UIDs as an IMAP sequence set in ascending order, runs
// as ranges ("1:3,7"); uids is not modified.
func FormatUIDs(uids []uint32) string {
	s := slices.Clone(uids)
	slices.Sort(s)
	s = slices.Compact(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(s[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(s[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}
