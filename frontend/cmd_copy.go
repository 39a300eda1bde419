package frontend

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

// cmdCopy relays COPY and MOVE when the target is on the selected
// mailbox's backend, and does them itself across backends (crossCopy).
func (sess *session) cmdCopy(cmd *command) error {
	usage := "Usage: " + cmd.name + " sequence-set mailbox"
	var set, name string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectSequenceSet(&set) || !sess.rd.ExpectSP() ||
		!sess.rd.ExpectMailbox(&name) || !sess.rd.ExpectCRLF() {
		return sess.parseError(usage)
	}
	r, err := sess.resolve(name)
	if err != nil {
		if se, ok := err.(*statusErr); ok && se.code == "NONEXISTENT" {
			se.code = "TRYCREATE"
		}
		return err
	}
	pc := sess.selected
	if r.b != pc.b {
		return sess.crossCopy(cmd, set, r)
	}
	if err := sess.commandTo(pc, cmd.tag, cmd.wireName()).SP().Atom(set).SP().AString(r.native).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, err := sess.relayFrom(pc, cmd.tag, nil, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}

// fetchedMsg is what a copy keeps of one source message: its UID, flags
// and internal date. The body is streamed, never held.
type fetchedMsg struct {
	uid   uint32
	flags []string
	date  string
}

// crossCopy does COPY or MOVE (UID or not) to a mailbox on another backend
// (DESIGN.md), one message at a time so that memory stays bounded
// whatever the mailbox holds: it lists the UIDs of the set, then for each
// FETCHes its flags and internal date, and streams its body from the
// source's FETCH literal into the target's APPEND literal through fixed
// buffers. For MOVE it then marks the sources \Deleted and UID EXPUNGEs
// them. Nothing is removed from the source unless every APPEND succeeded;
// copies made before a failure are removed from the target when the
// target reports their UIDs. COPYUID is sent only when the target gave an
// APPENDUID for every message.
func (sess *session) crossCopy(cmd *command, set string, r *resolved) error {
	src := sess.selected
	move := cmd.name == "MOVE"
	if move && !src.c.Has("UIDPLUS") {
		return no("CANNOT", "MOVE to another server needs UIDPLUS on the source server")
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 10*time.Minute)
	defer cancel()
	dst, err := sess.backendConn(r)
	if err != nil {
		return err
	}

	uids, err := sess.copySourceUIDs(ctx, src, cmd.uid, set)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		if cmd.uid {
			return nil // RFC 9051: UID COPY of no existing message is OK
		}
		return no("", "No messages matched")
	}

	var copied, appended []uint32
	var uidValidity string
	allUIDs := true
	for _, uid := range uids {
		aresp, err := sess.copyOne(ctx, src, dst, r, uid)
		if errors.Is(err, errGone) {
			continue // expunged meanwhile: nothing to copy
		}
		if err != nil {
			sess.undoAppends(ctx, dst, r, uidValidity, appended)
			switch {
			case src.c.Dead():
				return sess.backendFailed(src, err)
			case dst.c.Dead():
				return sess.backendFailed(dst, err)
			case isNo(err):
				var be *backend.Error
				errors.As(err, &be)
				return &statusErr{status: string(be.Status), text: "Copy failed, nothing copied: " + be.Text}
			}
			return sess.backendFailed(src, err)
		}
		copied = append(copied, uid)
		uv, duid, ok := imapwire.ParseAppendUID(aresp.Text)
		if !ok || (uidValidity != "" && uv != uidValidity) {
			allUIDs = false
			continue
		}
		uidValidity = uv
		appended = append(appended, duid)
	}
	if len(copied) == 0 {
		if cmd.uid {
			return nil
		}
		return no("", "No messages matched")
	}
	copyUID := ""
	if allUIDs && len(appended) == len(copied) {
		copyUID = "COPYUID " + uidValidity + " " + imapwire.FormatUIDs(copied) + " " + imapwire.FormatUIDs(appended)
	}
	if !move {
		if copyUID == "" {
			return nil
		}
		if err := sess.writeLine(cmd.tag + " OK [" + copyUID + "] " + cmd.name + " completed"); err != nil {
			return err
		}
		return errAnswered
	}

	uidSet := imapwire.FormatUIDs(copied)
	if _, err := src.c.Exec(ctx, "UID STORE "+uidSet+` +FLAGS.SILENT (\Deleted)`); err != nil {
		return sess.backendFailed(src, err)
	}
	if copyUID != "" {
		sess.bw.WriteString("* OK [" + copyUID + "] Moved\r\n")
	}
	tag := src.c.Tag()
	if err := sess.commandTo(src, tag, "UID EXPUNGE").SP().Atom(uidSet).End(); err != nil {
		return sess.backendFailed(src, err)
	}
	// The EXPUNGE responses change the client's sequence numbers: relay
	// them, and keep the backend's tagged answer to ourselves.
	st, text, _, err := src.c.RelayHold(sess.bw, tag, nil)
	if err != nil {
		return sess.backendFailed(src, err)
	}
	if st != backend.OK {
		sess.log.Warn("MOVE across servers: expunge on the source failed", "status", st, "text", text)
		return no("", "Messages were copied but could not be removed from the source: %s", text)
	}
	return nil
}

// errGone means a message of the set was expunged before it was copied.
var errGone = errors.New("message expunged during the copy")

// copySourceUIDs returns the UIDs of the set (sequence numbers or UIDs) in
// the selected mailbox, in order. Other untagged responses (EXISTS,
// EXPUNGE, flag updates) go to the client, which must see them.
func (sess *session) copySourceUIDs(ctx context.Context, src *pooledConn, uid bool, set string) ([]uint32, error) {
	fetch := "FETCH " + set + " (UID)"
	if uid {
		fetch = "UID " + fetch
	}
	var uids []uint32
	_, err := src.c.ExecEach(ctx, fetch, 1<<20, func(l []byte) {
		if m, ok := parseFetchedMsg(l); ok && m.uid != 0 {
			uids = append(uids, m.uid)
			return
		}
		sess.relayUntagged(l)
	})
	if err != nil {
		return nil, sess.backendFailed(src, err)
	}
	return uids, nil
}

// copyOne copies the message uid from src to the target mailbox r on dst:
// its flags and internal date first, then its body streamed from the
// source's FETCH into the target's APPEND. It returns the APPEND's answer,
// or errGone when the message no longer exists.
func (sess *session) copyOne(ctx context.Context, src, dst *pooledConn, r *resolved, uid uint32) (*backend.Response, error) {
	u := strconv.FormatUint(uint64(uid), 10)
	var meta fetchedMsg
	_, err := src.c.ExecEach(ctx, "UID FETCH "+u+" (UID FLAGS INTERNALDATE)", 1<<20, func(l []byte) {
		if m, ok := parseFetchedMsg(l); ok && m.uid == uid {
			meta = m
			return
		}
		sess.relayUntagged(l)
	})
	if err != nil {
		return nil, err
	}
	if meta.uid == 0 {
		return nil, errGone
	}
	prefix := "APPEND " + imapwire.AString(r.native) + " (" + strings.Join(withoutRecent(meta.flags), " ") + ")"
	if meta.date != "" {
		prefix += ` "` + meta.date + `"`
	}
	var aresp *backend.Response
	err = src.c.FetchBody(ctx, "UID FETCH "+u+" BODY.PEEK[]", func(size int64, body io.Reader) error {
		var err error
		aresp, err = dst.c.ExecLiteralFrom(ctx, prefix, size, body)
		return err
	}, sess.relayUntagged)
	if errors.Is(err, backend.ErrNoBody) {
		return nil, errGone
	}
	return aresp, err
}

// undoAppends removes copies already appended to the target after a
// failure part way, when their UIDs are known.
func (sess *session) undoAppends(ctx context.Context, dst *pooledConn, r *resolved, uidValidity string, uids []uint32) {
	if len(uids) == 0 || !dst.c.Has("UIDPLUS") || dst == sess.selected {
		return
	}
	set := make([]string, len(uids))
	for i, u := range uids {
		set[i] = strconv.FormatUint(uint64(u), 10)
	}
	if _, err := dst.c.Exec(ctx, "SELECT "+imapwire.AString(r.native)); err != nil {
		return
	}
	dst.c.Exec(ctx, "UID STORE "+strings.Join(set, ",")+` +FLAGS.SILENT (\Deleted)`)
	dst.c.Exec(ctx, "UID EXPUNGE "+strings.Join(set, ","))
	if dst.c.Has("UNSELECT") {
		dst.c.Exec(ctx, "UNSELECT")
	} else {
		sess.pool.drop(dst.b.Server)
	}
}

func withoutRecent(flags []string) []string {
	out := flags[:0:0]
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	return out
}

// parseFetchedMsg parses "* n FETCH (UID u FLAGS (...) INTERNALDATE
// "...")" in any item order, skipping other items; ok is false for a
// response that is not a FETCH.
func parseFetchedMsg(l []byte) (fetchedMsg, bool) {
	var m fetchedMsg
	p := imapwire.NewScanner(l)
	if w, err := p.Atom(); err != nil || w != "*" || p.SP() != nil {
		return m, false
	}
	if _, err := p.Atom(); err != nil || p.SP() != nil {
		return m, false
	}
	if w, err := p.Atom(); err != nil || !strings.EqualFold(w, "FETCH") || p.SP() != nil || !p.Special('(') {
		return m, false
	}
	for !p.Special(')') {
		if !p.More() {
			return m, false
		}
		p.Special(' ')
		key, err := p.Atom()
		if err != nil {
			return m, false
		}
		if p.SP() != nil {
			return m, false
		}
		switch strings.ToUpper(key) {
		case "UID":
			v, err := p.Atom()
			n, perr := strconv.ParseUint(v, 10, 32)
			if err != nil || perr != nil {
				return m, false
			}
			m.uid = uint32(n)
		case "FLAGS":
			if m.flags, err = p.List(); err != nil {
				return m, false
			}
		case "INTERNALDATE":
			if m.date, err = p.String(); err != nil {
				return m, false
			}
		default:
			if p.SkipValue() != nil {
				return m, false
			}
		}
	}
	return m, true
}
