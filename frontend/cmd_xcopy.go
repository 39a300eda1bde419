package frontend

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

// fetchedMsg is one message read from the source backend for a copy.
type fetchedMsg struct {
	uid   uint32
	flags []string
	date  string
	body  []byte
}

// crossCopy does COPY or MOVE (UID or not) to a mailbox on another backend
// (DESIGN.md): FETCH flags, internal date and body from the source, APPEND
// each to the target, then for MOVE mark the sources \Deleted and UID
// EXPUNGE them. Nothing is removed from the source unless every APPEND
// succeeded; copies made before a failure are removed from the target
// when the target reports their UIDs. COPYUID is sent only when the
// target gave an APPENDUID for every message.
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

	fetch := "FETCH " + set + " (UID FLAGS INTERNALDATE BODY.PEEK[])"
	if cmd.uid {
		fetch = "UID " + fetch
	}
	resp, err := src.c.ExecMax(ctx, fetch, sess.s.opts.AppendLimit)
	if err != nil {
		if isNo(err) {
			var be *backend.Error
			errors.As(err, &be)
			return &statusErr{status: string(be.Status), text: be.Text}
		}
		return sess.backendFailed(src, err)
	}
	var msgs []fetchedMsg
	for _, l := range resp.Untagged {
		m, ok := parseFetchedMsg(l)
		if !ok {
			// Not ours (EXISTS, EXPUNGE, a flag update): the client
			// must see it.
			sess.bw.Write(l)
			sess.bw.WriteString("\r\n")
			continue
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		if cmd.uid {
			return nil // RFC 9051: UID COPY of no existing message is OK
		}
		return no("", "No messages matched")
	}

	var appended []uint32
	var uidValidity string
	allUIDs := true
	for _, m := range msgs {
		prefix := "APPEND " + imapwire.AString(r.native) + " (" + strings.Join(withoutRecent(m.flags), " ") + ")"
		if m.date != "" {
			prefix += ` "` + m.date + `"`
		}
		aresp, err := dst.c.ExecLiteral(ctx, prefix, m.body)
		if err != nil {
			sess.undoAppends(ctx, dst, r, uidValidity, appended)
			if isNo(err) {
				var be *backend.Error
				errors.As(err, &be)
				return &statusErr{status: string(be.Status), text: "Copy failed, nothing copied: " + be.Text}
			}
			return sess.backendFailed(dst, err)
		}
		uv, uid, ok := parseAppendUID(aresp.Text)
		if !ok || (uidValidity != "" && uv != uidValidity) {
			allUIDs = false
			continue
		}
		uidValidity = uv
		appended = append(appended, uid)
	}
	copyUID := ""
	if allUIDs && len(appended) == len(msgs) {
		srcUIDs := make([]string, len(msgs))
		dstUIDs := make([]string, len(msgs))
		for i, m := range msgs {
			srcUIDs[i] = strconv.FormatUint(uint64(m.uid), 10)
			dstUIDs[i] = strconv.FormatUint(uint64(appended[i]), 10)
		}
		copyUID = "COPYUID " + uidValidity + " " + strings.Join(srcUIDs, ",") + " " + strings.Join(dstUIDs, ",")
	}
	if !move {
		if copyUID == "" {
			return nil
		}
		if err := sess.writeLine(cmd.tag + " OK [" + copyUID + "] " + cmd.name + " completed"); err != nil {
			return err
		}
		return errRelayed
	}

	uids := make([]string, len(msgs))
	for i, m := range msgs {
		uids[i] = strconv.FormatUint(uint64(m.uid), 10)
	}
	uidSet := strings.Join(uids, ",")
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

// parseFetchedMsg parses "* n FETCH (UID u FLAGS (...) INTERNALDATE "..."
// BODY[] {n}CRLF...)" in any item order.
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
	haveBody := false
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
		case "BODY[]":
			s, err := p.String()
			if err != nil {
				return m, false
			}
			m.body = []byte(s)
			haveBody = true
		default:
			if p.SkipValue() != nil {
				return m, false
			}
		}
	}
	return m, haveBody && m.uid != 0
}

// parseAppendUID reads "[APPENDUID uidvalidity uid] ..." from a tagged OK.
func parseAppendUID(text string) (string, uint32, bool) {
	if !strings.HasPrefix(strings.ToUpper(text), "[APPENDUID ") {
		return "", 0, false
	}
	f := strings.Fields(text[len("[APPENDUID "):])
	if len(f) < 2 {
		return "", 0, false
	}
	uid, err := strconv.ParseUint(strings.TrimSuffix(f[1], "]"), 10, 32)
	if err != nil {
		return "", 0, false
	}
	return f[0], uint32(uid), true
}
