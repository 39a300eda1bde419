package frontend

import (
	"context"
	"strings"
	"time"

	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/router"
)

// cmdList answers LIST, LSUB, RLIST and RLSUB from the directory, filtered
// by the user's rights, and the subscriptions kept by the INBOX backend.
// LIST takes the LIST-EXTENDED (RFC 5258) selection options SUBSCRIBED,
// REMOTE and RECURSIVEMATCH, a list of patterns, and the return options
// CHILDREN, SUBSCRIBED and STATUS (RFC 5819). RLIST and RLSUB (RFC 2193),
// and LIST with the REMOTE selection option, show that the client follows
// referrals.
func (sess *session) cmdList(cmd *command) error {
	usage := "Usage: " + cmd.name + " reference mailbox-pattern"
	lsub := cmd.name == "LSUB" || cmd.name == "RLSUB"
	if cmd.name == "RLIST" || cmd.name == "RLSUB" {
		sess.rlist = true
	}
	args, err := sess.args(usage)
	if err != nil {
		return err
	}
	var selSubscribed, retSubscribed, recursive bool
	var statusItems []imapwire.Value
	// extended is the RFC 5258 syntax; options counts the selection and
	// return options given.
	extended, options := false, 0
	if len(args) > 0 && args[0].Kind == imapwire.KindList && !lsub {
		extended, options = true, len(args[0].List)
		other := false
		for _, o := range args[0].List {
			if o.Kind != imapwire.KindAtom {
				return bad("Invalid LIST selection options")
			}
			switch strings.ToUpper(o.Str) {
			case "SUBSCRIBED":
				selSubscribed, other = true, true
			case "REMOTE":
				sess.rlist = true
			case "RECURSIVEMATCH":
				recursive = true
			default:
				return bad("Unknown LIST selection option %s", o.Str)
			}
		}
		if recursive && !other {
			// RFC 5258 section 3: RECURSIVEMATCH needs another selection
			// option that it can act on.
			return bad("RECURSIVEMATCH needs another selection option")
		}
		args = args[1:]
	}
	if len(args) < 2 {
		return bad("%s", usage)
	}
	ref, ok := mailboxArgString(args[0])
	if !ok {
		return bad("%s", usage)
	}
	var patterns []string
	patternList := args[1].Kind == imapwire.KindList && !lsub
	if patternList {
		extended = true
		for _, v := range args[1].List {
			pat, ok := mailboxArgString(v)
			if !ok {
				return bad("Invalid pattern list")
			}
			patterns = append(patterns, pat)
		}
		if len(patterns) == 0 {
			return bad("Invalid pattern list")
		}
	} else {
		pat, ok := mailboxArgString(args[1])
		if !ok {
			return bad("%s", usage)
		}
		patterns = []string{pat}
	}
	args = args[2:]
	if len(args) > 0 && !lsub {
		if len(args) != 2 || args[0].Kind != imapwire.KindAtom || !strings.EqualFold(args[0].Str, "RETURN") {
			return bad("Invalid LIST arguments")
		}
		if retSubscribed, statusItems, err = parseListReturn(args[1]); err != nil {
			return err
		}
		extended, options = true, options+len(args[1].List)
		args = nil
	}
	if len(args) != 0 {
		return bad("Invalid %s arguments", cmd.name)
	}

	dir := sess.s.opts.Directory
	sep := sess.ns().Separator()
	if lsub {
		return sess.lsub(ref, patterns[0], sep)
	}
	if len(patterns) == 1 && patterns[0] == "" && options == 0 && !patternList {
		// RFC 3501 6.3.8: the hierarchy delimiter and the reference's root.
		// An extended LIST ignores empty patterns instead (RFC 5258 3).
		for _, it := range dir.List(sess.ctx, sess.user, ref, "", nil) {
			sess.bw.WriteString(listLine("LIST", sep, it))
		}
		return sess.flushOut()
	}
	q := ListQuery{Patterns: patterns, SelectSubscribed: selSubscribed, RecursiveMatch: recursive, ReturnSubscribed: retSubscribed, Extended: extended}
	if selSubscribed || retSubscribed {
		if q.Subscribed, err = sess.subscriptions(); err != nil {
			return err
		}
	}
	for _, it := range dir.ListExtended(sess.ctx, sess.user, ref, q) {
		sess.bw.WriteString(listLine("LIST", sep, it))
		if statusItems != nil && it.Attrs&(router.AttrNoselect|router.AttrNonExistent) == 0 {
			if err := sess.listStatus(it.Name, statusItems); err != nil {
				return err
			}
		}
	}
	return sess.flushOut()
}

// lsub answers LSUB (RFC 3501 6.3.9) from the directory and the
// subscriptions: a level above subscribed names that "%" stops at comes
// back \Noselect unless it is subscribed itself.
func (sess *session) lsub(ref, pattern string, sep byte) error {
	subs, err := sess.subscriptions()
	if err != nil {
		return err
	}
	for _, it := range sess.s.opts.Directory.List(sess.ctx, sess.user, ref, pattern, subs) {
		sess.bw.WriteString(listLine("LSUB", sep, it))
	}
	return sess.flushOut()
}

// subscriptions reads the user's subscribed client names from the home
// backend (LSUB "" "*").
func (sess *session) subscriptions() (map[string]bool, error) {
	server, ok := sess.home(sess.user)
	if !ok {
		return map[string]bool{}, nil
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	pc, err := sess.connTo(server)
	if err != nil {
		return nil, err
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
		p := imapwire.NewScanner(l)
		if w, err := p.Atom(); err != nil || w != "*" || p.SP() != nil {
			continue
		}
		if w, err := p.Atom(); err != nil || !strings.EqualFold(w, "LSUB") || p.SP() != nil {
			continue
		}
		if p.SkipValue() != nil || p.SP() != nil || p.SkipValue() != nil || p.SP() != nil {
			continue
		}
		name, err := p.AString()
		if err != nil {
			continue
		}
		if client, ok := sess.clientFromNative(pc.b, name); ok {
			subs[client] = true
		}
	}
	return subs, nil
}

// clientFromNative turns a backend's own name into the client's, through
// the internal name; ok is false for a name that has no client spelling.
func (sess *session) clientFromNative(b *Backend, native string) (client string, ok bool) {
	if !b.Personal {
		return native, true
	}
	internal, err := b.fromNative(sess.ns(), sess.user, native)
	if err != nil {
		return "", false
	}
	client, err = sess.ns().ToClient(sess.user, internal)
	return client, err == nil
}

// nativeFromClient is the reverse of clientFromNative, for names that may
// not exist (SUBSCRIBE).
func (sess *session) nativeFromClient(b *Backend, client string) (string, error) {
	internal, err := sess.ns().ToInternal(sess.user, client)
	if err != nil {
		return "", err
	}
	return b.native(sess.user, client, internal)
}

func (sess *session) cmdNamespace(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	sep := string(sess.ns().Separator())
	other, shared := sess.ns().OtherUsersPrefix(), sess.ns().SharedPrefix()
	return sess.writeLine(`* NAMESPACE (("" "` + sep + `")) ((` + imapwire.Quote(other) + ` "` + sep + `")) ((` + imapwire.Quote(shared) + ` "` + sep + `"))`)
}

// cmdSubscribe writes SUBSCRIBE and UNSUBSCRIBE to the home backend, which
// keeps the user's subscriptions.
func (sess *session) cmdSubscribe(cmd *command) error {
	usage := "Usage: " + cmd.name + " mailbox"
	name, err := sess.mailboxArg(cmd, usage)
	if err != nil {
		return err
	}
	if !sess.rd.ExpectCRLF() {
		return sess.parseError(usage)
	}
	server, ok := sess.home(sess.user)
	if !ok {
		return no("NONEXISTENT", "You have no INBOX to keep subscriptions in")
	}
	pc, err := sess.connTo(server)
	if err != nil {
		return err
	}
	native, err := sess.nativeFromClient(pc.b, name)
	if err != nil {
		return no("CANNOT", "Your mailbox server cannot keep a subscription to that name: %v", err)
	}
	if err := sess.commandTo(pc, cmd.tag, cmd.name).SP().AString(native).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, err := sess.relayFrom(pc, cmd.tag, nil, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}

// cmdEnable remembers extensions (RFC 5161) and turns them on at every
// backend connection, now and later.
func (sess *session) cmdEnable(cmd *command) error {
	const usage = "ENABLE needs at least one extension"
	args, err := sess.args(usage)
	if err != nil {
		return err
	}
	var enabled []string
	common := map[string]bool{}
	for _, c := range sess.s.commonBackendCaps() {
		common[c] = true
	}
	for _, a := range args {
		if a.Kind != imapwire.KindAtom {
			return bad("Invalid ENABLE arguments")
		}
		ext := strings.ToUpper(a.Str)
		switch ext {
		case "CONDSTORE", "QRESYNC", "UTF8=ACCEPT":
			if common[ext] && !containsString(enabled, ext) {
				enabled = append(enabled, ext)
			}
		}
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
// CHILDREN, SUBSCRIBED and LIST-STATUS's STATUS (RFC 5819), whose items
// are returned to be re-encoded toward backends.
func parseListReturn(opts imapwire.Value) (subscribed bool, statusItems []imapwire.Value, err error) {
	if opts.Kind != imapwire.KindList {
		return false, nil, bad("Invalid LIST return options")
	}
	for i := 0; i < len(opts.List); i++ {
		o := opts.List[i]
		if o.Kind != imapwire.KindAtom {
			return false, nil, bad("Invalid LIST return options")
		}
		switch strings.ToUpper(o.Str) {
		case "SUBSCRIBED":
			subscribed = true
		case "CHILDREN":
		case "STATUS":
			i++
			if i >= len(opts.List) || opts.List[i].Kind != imapwire.KindList || len(opts.List[i].List) == 0 {
				return false, nil, bad("STATUS needs a list of items")
			}
			for _, it := range opts.List[i].List {
				switch strings.ToUpper(it.Str) {
				case "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ", "DELETED":
					if it.Kind != imapwire.KindAtom {
						return false, nil, bad("Unknown STATUS item")
					}
				default:
					return false, nil, bad("Unknown STATUS item %s", it.Str)
				}
			}
			statusItems = opts.List[i : i+1]
		default:
			return false, nil, bad("Unsupported LIST return option %s", o.Str)
		}
	}
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
func (sess *session) listStatus(name string, items []imapwire.Value) error {
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
	resp, err := pc.c.Exec(ctx, "STATUS "+imapwire.AString(r.native)+" "+statusItemsText(items))
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

// statusItemsText renders validated STATUS items (atoms) as "(A B)".
func statusItemsText(items []imapwire.Value) string {
	var names []string
	for _, it := range items[0].List {
		names = append(names, strings.ToUpper(it.Str))
	}
	return "(" + strings.Join(names, " ") + ")"
}

// mailboxArgString returns an astring argument (a reference, a pattern or
// a mailbox name), taking the atom NIL as the name "NIL".
func mailboxArgString(v imapwire.Value) (string, bool) {
	if v.Kind == imapwire.KindNIL {
		return "NIL", true
	}
	if !v.IsString() {
		return "", false
	}
	return v.Str, true
}
