package frontend

import (
	"context"
	"strings"
	"time"
)

// cmdList answers LIST, LSUB, RLIST and RLSUB from the directory, filtered
// by the user's rights. RLIST and RLSUB (RFC 2193), and LIST with the
// REMOTE selection option (RFC 5258), show that the client follows
// referrals.
func (sess *session) cmdList(cmd *command) error {
	args, err := sess.readFull(cmd, 16<<10)
	if err != nil {
		return err
	}
	p := &argParser{b: args}
	lsub := cmd.name == "LSUB" || cmd.name == "RLSUB"
	if cmd.name == "RLIST" || cmd.name == "RLSUB" {
		sess.rlist = true
	}
	var selSubscribed, retSubscribed bool
	var statusItems string
	if p.peek() == '(' && !lsub {
		opts, err := p.list()
		if err != nil || p.sp() != nil {
			return bad("Invalid LIST selection options")
		}
		for _, o := range opts {
			switch strings.ToUpper(o) {
			case "SUBSCRIBED":
				selSubscribed = true
			case "REMOTE":
				sess.rlist = true
			case "RECURSIVEMATCH":
			default:
				return bad("Unknown LIST selection option %s", o)
			}
		}
	}
	ref, err := p.astring()
	if err != nil || p.sp() != nil {
		return bad("Usage: %s reference mailbox-pattern", cmd.name)
	}
	var patterns []string
	if p.peek() == '(' && !lsub {
		if patterns, err = p.list(); err != nil {
			return bad("Invalid pattern list")
		}
	} else {
		pat, err := p.astring()
		if err != nil {
			return bad("Usage: %s reference mailbox-pattern", cmd.name)
		}
		patterns = []string{pat}
	}
	if p.more() && !lsub {
		if p.sp() != nil {
			return bad("Invalid LIST arguments")
		}
		kw, err := p.atom()
		if err != nil || !strings.EqualFold(kw, "RETURN") || p.sp() != nil {
			return bad("Invalid LIST arguments")
		}
		if retSubscribed, statusItems, err = parseListReturn(p); err != nil {
			return err
		}
	}
	if p.end() != nil {
		return bad("Invalid %s arguments", cmd.name)
	}

	word := "LIST"
	if lsub {
		word = "LSUB"
	}
	sep := string(sess.s.opts.Directory.Separator())
	if len(patterns) == 1 && patterns[0] == "" && !lsub {
		return sess.writeLine(`* LIST (\Noselect) "` + sep + `" ""`)
	}
	var subs map[string]bool
	if lsub || selSubscribed || retSubscribed {
		if subs, err = sess.subscriptions(); err != nil {
			return err
		}
	}
	filter := subs
	if !lsub && !selSubscribed {
		filter = nil
	}
	seen := map[string]bool{}
	for _, pat := range patterns {
		for _, it := range sess.s.opts.Directory.List(sess.user, ref, pat, filter) {
			if seen[it.Name] {
				continue
			}
			seen[it.Name] = true
			attrs := it.Attrs
			if !lsub && (retSubscribed || selSubscribed) && subs[it.Name] {
				attrs = append(attrs[:len(attrs):len(attrs)], `\Subscribed`)
			}
			sess.bw.WriteString("* " + word + " (" + strings.Join(attrs, " ") + `) "` + sep + `" ` + astring(it.Name) + "\r\n")
			if statusItems != "" && !hasAttr(attrs, `\Noselect`) && !hasAttr(attrs, `\NonExistent`) {
				if err := sess.listStatus(it.Name, statusItems); err != nil {
					return err
				}
			}
		}
	}
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return nil
}

// subscriptions reads the user's subscribed client names from the home
// backend (LSUB "" "*").
func (sess *session) subscriptions() (map[string]bool, error) {
	server, ok := sess.s.opts.Directory.Home(sess.user)
	if !ok {
		return map[string]bool{}, nil
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	pc, err := sess.pool.get(ctx, server)
	if err != nil {
		sess.log.Warn("backend unavailable", "server", server, "err", err)
		return nil, no("UNAVAILABLE", "Subscriptions are unavailable; try again later")
	}
	resp, err := pc.c.Exec(ctx, `LSUB "" "*"`)
	if err != nil {
		if isNo(err) {
			return nil, no("UNAVAILABLE", "Subscriptions are unavailable")
		}
		return nil, sess.backendFailed(pc, err)
	}
	subs := make(map[string]bool)
	for _, l := range resp.Untagged {
		p := &argParser{b: l}
		if w, err := p.atom(); err != nil || w != "*" || p.sp() != nil {
			continue
		}
		if w, err := p.atom(); err != nil || !strings.EqualFold(w, "LSUB") || p.sp() != nil {
			continue
		}
		if p.skipValue() != nil || p.sp() != nil || p.skipValue() != nil || p.sp() != nil {
			continue
		}
		name, err := p.astring()
		if err != nil {
			continue
		}
		subs[sess.clientFromNative(pc.b, name)] = true
	}
	return subs, nil
}

// clientFromNative turns a backend's own name into the client's.
func (sess *session) clientFromNative(b *Backend, native string) string {
	if !b.Personal {
		return native
	}
	if strings.EqualFold(native, "INBOX") {
		return "INBOX"
	}
	return strings.ReplaceAll(native, string(b.Separator), string(sess.s.opts.Directory.Separator()))
}

// nativeFromClient is the reverse of clientFromNative for names that may
// not exist (SUBSCRIBE).
func (sess *session) nativeFromClient(b *Backend, client string) string {
	if !b.Personal {
		return client
	}
	return strings.ReplaceAll(client, string(sess.s.opts.Directory.Separator()), string(b.Separator))
}

func (sess *session) cmdNamespace(cmd *command) error {
	if len(cmd.args) != 0 {
		return bad("NAMESPACE takes no arguments")
	}
	sep := string(sess.s.opts.Directory.Separator())
	other, shared := sess.s.opts.Directory.Namespace()
	return sess.writeLine(`* NAMESPACE (("" "` + sep + `")) ((` + quote(other) + ` "` + sep + `")) ((` + quote(shared) + ` "` + sep + `"))`)
}

// cmdSubscribe writes SUBSCRIBE and UNSUBSCRIBE to the home backend, which
// keeps the user's subscriptions.
func (sess *session) cmdSubscribe(cmd *command) error {
	name, rest, err := firstMailbox(cmd)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return bad("Usage: %s mailbox", cmd.name)
	}
	server, ok := sess.s.opts.Directory.Home(sess.user)
	if !ok {
		return no("NONEXISTENT", "You have no INBOX to keep subscriptions in")
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	pc, err := sess.pool.get(ctx, server)
	if err != nil {
		return no("UNAVAILABLE", "Backend server unavailable; try again later")
	}
	if err := sendLine(pc, cmd.tag+" "+cmd.name+" "+astring(sess.nativeFromClient(pc.b, name))); err != nil {
		return sess.backendFailed(pc, err)
	}
	if _, _, err := sess.relayFrom(pc, cmd.tag, nil, nil); err != nil {
		return sess.backendFailed(pc, err)
	}
	return errRelayed
}

// cmdEnable remembers extensions (RFC 5161) and turns them on at every
// backend connection, now and later.
func (sess *session) cmdEnable(cmd *command) error {
	p := &argParser{b: cmd.args}
	var enabled []string
	common := map[string]bool{}
	for _, c := range sess.s.commonBackendCaps() {
		common[c] = true
	}
	for p.more() {
		if len(enabled) > 0 || p.i > 0 {
			if p.sp() != nil {
				return bad("Invalid ENABLE arguments")
			}
		}
		ext, err := p.atom()
		if err != nil {
			return bad("Invalid ENABLE arguments")
		}
		ext = strings.ToUpper(ext)
		switch ext {
		case "CONDSTORE", "QRESYNC", "UTF8=ACCEPT":
			if common[ext] {
				enabled = append(enabled, ext)
			}
		}
	}
	if len(cmd.args) == 0 {
		return bad("ENABLE needs at least one extension")
	}
	for _, e := range enabled {
		if !containsString(sess.pool.enable, e) {
			sess.pool.enable = append(sess.pool.enable, e)
		}
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	for _, pc := range sess.pool.conns {
		if err := sess.pool.enableOn(ctx, pc); err != nil {
			return sess.backendFailed(pc, err)
		}
	}
	return sess.writeLine("* ENABLED " + strings.Join(enabled, " "))
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseListReturn reads the RETURN options of LIST-EXTENDED (RFC 5258):
// CHILDREN, SUBSCRIBED and LIST-STATUS's STATUS (RFC 5819).
func parseListReturn(p *argParser) (subscribed bool, statusItems string, err error) {
	if p.peek() != '(' {
		return false, "", bad("Invalid LIST return options")
	}
	p.i++
	for first := true; p.peek() != ')'; first = false {
		if !first && p.sp() != nil {
			return false, "", bad("Invalid LIST return options")
		}
		o, err := p.atom()
		if err != nil {
			return false, "", bad("Invalid LIST return options")
		}
		switch strings.ToUpper(o) {
		case "SUBSCRIBED":
			subscribed = true
		case "CHILDREN":
		case "STATUS":
			start := p.i + 1
			if p.sp() != nil {
				return false, "", bad("STATUS needs a list of items")
			}
			items, err := p.list()
			if err != nil || len(items) == 0 {
				return false, "", bad("STATUS needs a list of items")
			}
			for _, it := range items {
				switch strings.ToUpper(it) {
				case "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ", "DELETED":
				default:
					return false, "", bad("Unknown STATUS item %s", it)
				}
			}
			statusItems = string(p.b[start:p.i])
		default:
			return false, "", bad("Unsupported LIST return option %s", o)
		}
	}
	p.i++
	return subscribed, statusItems, nil
}

func hasAttr(attrs []string, a string) bool {
	for _, x := range attrs {
		if strings.EqualFold(x, a) {
			return true
		}
	}
	return false
}

// listStatus sends STATUS for one listed mailbox to its backend and passes
// the answer on under the client's name (RFC 5819). A mailbox whose
// backend is down is listed without STATUS, as the RFC allows.
func (sess *session) listStatus(name, items string) error {
	r, err := sess.resolve(name)
	if err != nil {
		return nil
	}
	pc, err := sess.backendConn(r)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	resp, err := pc.c.Exec(ctx, "STATUS "+astring(r.native)+" "+items)
	if err != nil {
		if !isNo(err) {
			sess.pool.drop(pc.b.Server)
		}
		return nil
	}
	rw := nameRewriter(r)
	for _, l := range resp.Untagged {
		if rw != nil {
			l = rw(l)
		}
		sess.bw.Write(l)
		sess.bw.WriteString("\r\n")
	}
	return nil
}
