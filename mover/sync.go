package mover

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

func quote(s string) string { return imapwire.AString(s) }

// syncer copies one mailbox from s (source) to d (destination).
type syncer struct {
	m                *Mover
	s, d             *conn
	srcName, dstName string
	mb               *Mailbox
	srcUV, dstUV     string
	sums             map[uint32][32]byte // source UID -> digest, as copied
	// srcSeen is the source's messages as of srcModseq, kept between
	// rounds on a CONDSTORE source so that a round asks only for what
	// changed since (CHANGEDSINCE) instead of every message's flags.
	srcSeen   map[uint32]*msg
	srcModseq uint64
}

// state reads both sides' messages (the destination selected read-write).
func (sy *syncer) state(ctx context.Context) (src, dst []*msg, err error) {
	uv, n, err := sy.s.selectBox(ctx, sy.srcName, true)
	if err != nil {
		return nil, nil, err
	}
	if sy.srcUV != "" && uv != sy.srcUV {
		sy.mb.uidMap = nil // the source was recreated: match again
		sy.srcSeen = nil
	}
	sy.srcUV = uv
	if src, err = sy.sourceMeta(ctx, n); err != nil {
		return nil, nil, err
	}
	uv, n, err = sy.d.selectBox(ctx, sy.dstName, false)
	if err != nil {
		return nil, nil, err
	}
	if sy.dstUV != "" && uv != sy.dstUV {
		sy.mb.uidMap = nil
	}
	sy.dstUV = uv
	dst, err = sy.d.fetchMeta(ctx, n)
	return src, dst, err
}

// sourceMeta returns the selected source's messages in UID order: on a
// CONDSTORE source after the first round, only what changed since the last
// one is fetched (plus the UIDs, for expunges); otherwise every message.
func (sy *syncer) sourceMeta(ctx context.Context, exists uint32) ([]*msg, error) {
	modseq := sy.s.modseq
	if modseq == 0 || sy.srcSeen == nil || sy.srcModseq == 0 {
		src, err := sy.s.fetchMeta(ctx, exists)
		if err != nil {
			return nil, err
		}
		sy.srcSeen, sy.srcModseq = nil, 0
		if modseq > 0 {
			sy.srcSeen = make(map[uint32]*msg, len(src))
			for _, x := range src {
				sy.srcSeen[x.uid] = x
			}
			sy.srcModseq = modseq
		}
		return src, nil
	}
	changed, uids, err := sy.s.changedSince(ctx, sy.srcModseq)
	if err != nil {
		return nil, err
	}
	for _, x := range changed {
		sy.srcSeen[x.uid] = x
	}
	src := make([]*msg, 0, len(uids))
	now := make(map[uint32]*msg, len(uids))
	for _, u := range uids {
		x := sy.srcSeen[u]
		if x == nil {
			// Neither seen nor reported changed: the mod-sequences cannot
			// be trusted; read everything.
			sy.srcSeen = nil
			return sy.sourceMeta(ctx, exists)
		}
		now[u] = x
		src = append(src, x)
	}
	sy.srcSeen, sy.srcModseq = now, modseq
	sy.m.log.Info("source delta by CONDSTORE", "mailbox", sy.mb.Name, "changed", len(changed), "messages", len(src))
	return src, nil
}

// match pairs source and destination messages by digest (a destination
// left by an interrupted run), filling the UID map.
func (sy *syncer) match(ctx context.Context, src, dst []*msg) error {
	sy.mb.uidMap = map[uint32]uint32{}
	if len(dst) == 0 {
		return nil
	}
	dd, err := sy.d.digests(ctx, uint32(len(dst)))
	if err != nil {
		return err
	}
	sd, err := sy.s.digests(ctx, uint32(len(src)))
	if err != nil {
		return err
	}
	byDigest := map[[32]byte][]uint32{}
	for _, x := range dst {
		if d, ok := dd[x.uid]; ok {
			byDigest[d.sum] = append(byDigest[d.sum], x.uid)
		}
	}
	for _, x := range src {
		d, ok := sd[x.uid]
		if !ok {
			continue
		}
		if l := byDigest[d.sum]; len(l) > 0 {
			sy.mb.uidMap[x.uid] = l[0]
			byDigest[d.sum] = l[1:]
		}
	}
	sy.m.log.Info("resumed a partial copy", "mailbox", sy.mb.Name, "matched", len(sy.mb.uidMap), "on destination", len(dst))
	return nil
}

// round makes the destination equal the source: it copies new messages,
// expunges on the destination what is gone from the source (and what the
// destination has that no source message maps to), and carries flag
// changes. It returns how many changes it made.
func (sy *syncer) round(ctx context.Context) (int, error) {
	src, dst, err := sy.state(ctx)
	if err != nil {
		return 0, err
	}
	if sy.mb.uidMap == nil {
		if err := sy.match(ctx, src, dst); err != nil {
			return 0, err
		}
	}
	mp := sy.mb.uidMap
	changes := 0
	srcByUID := map[uint32]*msg{}
	for _, x := range src {
		srcByUID[x.uid] = x
	}
	dstByUID := map[uint32]*msg{}
	for _, x := range dst {
		dstByUID[x.uid] = x
	}
	mapped := map[uint32]bool{}
	var gone []uint32
	for su, du := range mp {
		if srcByUID[su] == nil || dstByUID[du] == nil {
			// Expunged from the source (or lost from the destination,
			// then copied again below).
			if dstByUID[du] != nil {
				gone = append(gone, du)
			}
			delete(mp, su)
			continue
		}
		mapped[du] = true
	}
	var strays []uint32
	for _, x := range dst {
		if !mapped[x.uid] && !slices.Contains(gone, x.uid) {
			strays = append(strays, x.uid) // not a copy of a source message
		}
	}
	if len(strays) > 0 {
		// Mail nobody routed there, or copies left by an earlier run of
		// messages the source expunged since: never discarded unasked.
		if !sy.m.opts.DiscardStrays {
			return 0, &StraysError{Mailbox: sy.mb.Name, Server: sy.d.b.Server, Count: len(strays)}
		}
		sy.m.log.Warn("discarding destination messages that are not copies of the source", "mailbox", sy.mb.Name, "messages", len(strays))
		gone = append(gone, strays...)
	}
	if err := sy.d.expunge(ctx, gone); err != nil {
		return 0, err
	}
	changes += len(gone)
	var todo []*msg
	for _, x := range src {
		du, ok := mp[x.uid]
		if !ok {
			todo = append(todo, x)
			continue
		}
		if !slices.Equal(x.flags, dstByUID[du].flags) {
			if err := sy.d.setFlags(ctx, du, x.flags); err != nil {
				return changes, err
			}
			changes++
		}
	}
	n, err := sy.copyAll(ctx, todo)
	return changes + n, err
}

// Batches of a MULTIAPPEND (RFC 3502): on Cyrus, one commit (and fsync)
// per command rather than per message.
const (
	batchMessages = 100
	batchBytes    = 16 << 20
)

// copyAll copies msgs to the destination, in MULTIAPPEND batches where
// the destination has MULTIAPPEND and LITERAL+, else one by one. It
// returns how many were copied (messages expunged meanwhile are skipped).
func (sy *syncer) copyAll(ctx context.Context, msgs []*msg) (int, error) {
	if !sy.d.c.Has("MULTIAPPEND") || !sy.d.c.Has("LITERAL+") {
		n := 0
		for _, x := range msgs {
			err := sy.copy(ctx, x)
			if errors.Is(err, errGone) {
				continue
			}
			if err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	n := 0
	for len(msgs) > 0 {
		k, size := 0, int64(0)
		for k < len(msgs) && k < batchMessages && (k == 0 || size+msgs[k].size <= batchBytes) {
			size += msgs[k].size
			k++
		}
		c, err := sy.copyBatch(ctx, msgs[:k])
		n += c
		if err != nil {
			return n, err
		}
		msgs = msgs[k:]
	}
	return n, nil
}

// copyBatch copies msgs with one MULTIAPPEND, their bodies read with one
// FETCH and each streamed from the FETCH answer into the command as it
// arrives (one round trip per batch on each side, not per message).
func (sy *syncer) copyBatch(ctx context.Context, msgs []*msg) (int, error) {
	byUID := make(map[uint32]*msg, len(msgs))
	uids := make([]uint32, len(msgs))
	for i, x := range msgs {
		byUID[x.uid], uids[i] = x, x.uid
	}
	var sent []*msg
	var sums [][32]byte
	resp, err := sy.d.c.ExecLiterals(ctx, "APPEND "+quote(sy.dstName), func(part func(string, int64, io.Reader) error) error {
		return sy.s.c.FetchLiterals(ctx, "UID FETCH "+imapwire.FormatUIDs(uids)+" (UID BODY.PEEK[])", func(head []byte, size int64, r io.Reader) error {
			x := byUID[headUID(head)]
			if x == nil {
				return fmt.Errorf("backend %s: FETCH answer %.60q is not one of the messages asked for", sy.s.b.Server, head)
			}
			delete(byUID, x.uid) // once only
			h := sha256.New()
			mid := "(" + strings.Join(x.flags, " ") + ")"
			if x.rawDay != "" {
				mid += " " + imapwire.Quote(x.rawDay)
			}
			if err := part(mid, size, io.TeeReader(r, h)); err != nil {
				return err
			}
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			sent, sums = append(sent, x), append(sums, sum)
			return nil
		}, func([]byte) {})
	})
	if len(sent) == 0 && (err == nil || errors.Is(err, backend.ErrNoParts)) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("backend %s: APPEND of %d messages: %w", sy.d.b.Server, len(sent), err)
	}
	uv, set, ok := strings.Cut(strings.TrimPrefix(strings.ToUpper(resp.Text), "[APPENDUID "), " ")
	set, _, _ = strings.Cut(set, "]")
	uids, perr := parseUIDSet(set)
	if !ok || uv == "" || perr != nil || len(uids) != len(sent) {
		return 0, fmt.Errorf("backend %s: MULTIAPPEND of %d messages answered %q (no usable APPENDUID)", sy.d.b.Server, len(sent), resp.Text)
	}
	for i, x := range sent {
		sy.recordCopy(x, uids[i], sums[i])
	}
	return len(sent), nil
}

// copy streams one message from the source into the destination.
func (sy *syncer) copy(ctx context.Context, x *msg) error {
	var du uint32
	h := sha256.New()
	err := sy.s.body(ctx, x.uid, func(size int64, r io.Reader) error {
		var err error
		du, err = sy.d.appendFrom(ctx, sy.dstName, x.flags, x.rawDay, size, io.TeeReader(r, h))
		return err
	})
	if err != nil {
		return err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	sy.recordCopy(x, du, sum)
	return nil
}

// recordCopy notes that source message x is destination UID du, with the
// digest of the bytes that were sent, and reports progress.
func (sy *syncer) recordCopy(x *msg, du uint32, sum [32]byte) {
	sy.mb.uidMap[x.uid] = du
	if sy.sums == nil {
		sy.sums = map[uint32][32]byte{}
	}
	sy.sums[x.uid] = sum
	m := sy.m
	m.done.Messages++
	m.done.Bytes += x.size
	if m.opts.Progress != nil {
		p := m.done
		p.Mailbox = sy.mb.Name
		p.TotalMessages, p.TotalBytes = m.total.TotalMessages, m.total.TotalBytes
		p.Elapsed = time.Since(m.start)
		m.opts.Progress(p)
	}
}

// StraysError reports destination messages that are not copies of source
// messages (see Options.DiscardStrays).
type StraysError struct {
	Mailbox, Server string
	Count           int
}

func (e *StraysError) Error() string {
	return fmt.Sprintf("%s on %s already holds %d messages that are not copies of the source's (move them away, or discard them with DiscardStrays / -discard-strays)", e.Mailbox, e.Server, e.Count)
}

// VerifyError lists what differs between source and destination.
type VerifyError struct {
	Mailbox  string
	Problems []string
}

func (e *VerifyError) Error() string {
	const show = 5
	p := e.Problems
	more := ""
	if len(p) > show {
		more = fmt.Sprintf(" (and %d more)", len(p)-show)
		p = p[:show]
	}
	return "verify " + e.Mailbox + ": " + strings.Join(p, "; ") + more
}

// verify compares the source and the destination message by message:
// count, size, SHA-256, flags, internal date. It returns the source as
// verified.
func (sy *syncer) verify(ctx context.Context) ([]*msg, error) {
	src, dst, err := sy.state(ctx)
	if err != nil {
		return nil, err
	}
	ve := &VerifyError{Mailbox: sy.mb.Name}
	bad := func(f string, a ...any) { ve.Problems = append(ve.Problems, fmt.Sprintf(f, a...)) }
	// Messages that reached the source after the last delta (UIDs above
	// every copied one) are not part of this verification: they are
	// carried over, and checked by digest, after the switch.
	var maxCopied uint32
	for su := range sy.mb.uidMap {
		maxCopied = max(maxCopied, su)
	}
	late := 0
	for len(src) > 0 && src[len(src)-1].uid > maxCopied {
		if _, ok := sy.mb.uidMap[src[len(src)-1].uid]; ok {
			break
		}
		src = src[:len(src)-1]
		late++
	}
	if late > 0 {
		sy.m.log.Info("messages arrived after the final delta: carried over after the switch", "mailbox", sy.mb.Name, "messages", late)
	}
	if len(src) != len(dst) {
		bad("%d messages on the source, %d on the destination", len(src), len(dst))
	}
	dstByUID := map[uint32]*msg{}
	for _, x := range dst {
		dstByUID[x.uid] = x
	}
	sd, err := sy.s.digests(ctx, uint32(len(src)+late))
	if err != nil {
		return nil, err
	}
	dd, err := sy.d.digests(ctx, uint32(len(dst)))
	if err != nil {
		return nil, err
	}
	seen := map[uint32]bool{}
	for _, x := range src {
		du, ok := sy.mb.uidMap[x.uid]
		y := dstByUID[du]
		if !ok || y == nil {
			bad("source UID %d has no copy", x.uid)
			continue
		}
		if seen[du] {
			bad("destination UID %d is the copy of two messages", du)
		}
		seen[du] = true
		if x.size != y.size {
			bad("UID %d: size %d, copy %d", x.uid, x.size, y.size)
		}
		if !slices.Equal(x.flags, y.flags) {
			bad("UID %d: flags %v, copy %v", x.uid, x.flags, y.flags)
		}
		if !x.date.Equal(y.date) {
			bad("UID %d: internal date %s, copy %s", x.uid, x.date, y.date)
		}
		sdig, ok1 := sd[x.uid]
		ddig, ok2 := dd[du]
		if !ok1 || !ok2 {
			bad("UID %d: expunged during the verification", x.uid)
			continue
		}
		ss, sn, ds, dn := sdig.sum, sdig.size, ddig.sum, ddig.size
		if ss != ds || sn != dn {
			bad("UID %d: SHA-256 %x (%d bytes), copy %x (%d bytes)", x.uid, ss[:6], sn, ds[:6], dn)
		}
		if cs, ok := sy.sums[x.uid]; ok && cs != ss {
			bad("UID %d changed on the source since it was copied", x.uid)
		}
	}
	for _, y := range dst {
		if !seen[y.uid] {
			bad("destination UID %d is not a copy of a source message", y.uid)
		}
	}
	if len(ve.Problems) > 0 {
		return nil, ve
	}
	sy.d.unselect(ctx)
	return src, nil
}

// carryOver brings to the destination what the source received after it
// was verified (writes that reached it between the verification and the
// switch): new messages, expunges and flag changes. For a leftover of an
// earlier run (no snapshot) only messages the destination lacks, by
// digest, are copied: the destination is authoritative now.
func (sy *syncer) carryOver(ctx context.Context) error {
	uv, n, err := sy.s.selectBox(ctx, sy.srcName, true)
	if err != nil {
		return err
	}
	src, err := sy.s.fetchMeta(ctx, n)
	if err != nil {
		return err
	}
	_, dn, err := sy.d.selectBox(ctx, sy.dstName, false)
	if err != nil {
		return err
	}
	if sy.mb.snapshot == nil || uv != sy.srcUV {
		dst, err := sy.d.fetchMeta(ctx, dn)
		if err != nil {
			return err
		}
		dd, err := sy.d.digests(ctx, uint32(len(dst)))
		if err != nil {
			return err
		}
		have := map[[32]byte]int{}
		for _, d := range dd {
			have[d.sum]++
		}
		sd, err := sy.s.digests(ctx, n)
		if err != nil {
			return err
		}
		sy.mb.uidMap = map[uint32]uint32{}
		copied := 0
		for _, x := range src {
			d, ok := sd[x.uid]
			if !ok {
				continue
			}
			if have[d.sum] > 0 {
				have[d.sum]--
				continue
			}
			if err := sy.copy(ctx, x); err != nil && !errors.Is(err, errGone) {
				return err
			}
			copied++
		}
		if copied > 0 {
			sy.m.log.Warn("leftover source had messages the destination lacked: copied", "mailbox", sy.mb.Name, "messages", copied)
		}
		return nil
	}
	before := map[uint32]*msg{}
	for _, x := range sy.mb.snapshot {
		before[x.uid] = x
	}
	now := map[uint32]bool{}
	for _, x := range src {
		now[x.uid] = true
		was := before[x.uid]
		if was == nil {
			err := sy.copy(ctx, x)
			if errors.Is(err, errGone) {
				continue
			}
			if err != nil {
				return err
			}
			// Verified like the rest: the copy's digest against the
			// source's bytes as they were streamed.
			sum, _, err := sy.d.digest(ctx, sy.mb.uidMap[x.uid])
			if err != nil {
				return err
			}
			if sum != sy.sums[x.uid] {
				return &VerifyError{Mailbox: sy.mb.Name, Problems: []string{fmt.Sprintf("UID %d (carried over after the switch): SHA-256 of the copy differs", x.uid)}}
			}
			sy.m.log.Warn("message written to the source after verification: carried over", "mailbox", sy.mb.Name, "uid", x.uid)
			continue
		}
		if !slices.Equal(was.flags, x.flags) {
			if err := sy.d.setFlags(ctx, sy.mb.uidMap[x.uid], x.flags); err != nil {
				return err
			}
		}
	}
	var gone []uint32
	for u := range before {
		if !now[u] {
			gone = append(gone, sy.mb.uidMap[u])
		}
	}
	return sy.d.expunge(ctx, gone)
}

// copyMetadata sets the source's METADATA entries on the destination
// where both servers have METADATA, and checks them. What cannot be set
// is logged: the mailbox and its messages are moved all the same.
func (m *Mover) copyMetadata(ctx context.Context, s, d *conn, srcName, dstName, mailbox string) {
	if !s.c.Has("METADATA") || !d.c.Has("METADATA") {
		return
	}
	want, err := s.getMetadata(ctx, srcName)
	if err != nil {
		m.log.Warn("METADATA not copied: source unreadable", "mailbox", mailbox, "err", err)
		return
	}
	have, err := d.getMetadata(ctx, dstName)
	if err != nil {
		m.log.Warn("METADATA not copied: destination unreadable", "mailbox", mailbox, "err", err)
		return
	}
	var set []string
	for k, v := range want {
		if have[k] == v {
			continue
		}
		if !imapwire.Quotable(v) {
			m.log.Warn("METADATA entry not copied (value needs a literal)", "mailbox", mailbox, "entry", k)
			continue
		}
		set = append(set, imapwire.AString(k)+" "+imapwire.Quote(v))
	}
	if len(set) == 0 {
		return
	}
	slices.Sort(set)
	if _, err := d.exec(ctx, "SETMETADATA "+quote(dstName)+" ("+strings.Join(set, " ")+")"); err != nil {
		m.log.Warn("METADATA not copied", "mailbox", mailbox, "err", err)
		return
	}
	if got, err := d.getMetadata(ctx, dstName); err == nil {
		for k, v := range want {
			if got[k] != v && imapwire.Quotable(v) {
				m.log.Warn("METADATA entry differs after the copy", "mailbox", mailbox, "entry", k)
			}
		}
	}
}
