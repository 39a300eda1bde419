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

// ListQuery is a LIST command (RFC 3501, extended by RFC 5258) as the
// directory answers it.
type ListQuery struct {
	// Patterns are the mailbox patterns; an empty one matches nothing.
	Patterns []string
	// Subscribed holds the user's subscribed client names, read from the
	// INBOX backend when an option needs them.
	Subscribed map[string]bool
	// SelectSubscribed, RecursiveMatch and ReturnSubscribed are the
	// SUBSCRIBED and RECURSIVEMATCH selection options and the SUBSCRIBED
	// return option.
	SelectSubscribed, RecursiveMatch, ReturnSubscribed bool
	// Extended is set for the extended syntax (selection options, a
	// pattern list or return options): levels without a mailbox are
	// \NonExistent rather than \Noselect.
	Extended bool
}

// listLine renders one LIST or LSUB response, with the CHILDINFO extended
// data item when the item has one (RFC 5258 section 3.5).
func listLine(word string, sep byte, it router.ListItem) string {
	var b strings.Builder
	b.WriteString("* " + word + " (" + strings.Join(it.Attrs.Strings(), " ") + `) "` + string(sep) + `" ` + imapwire.AString(it.Name))
	if it.ChildInfoSubscribed {
		b.WriteString(` ("CHILDINFO" ("SUBSCRIBED"))`)
	}
	b.WriteString("\r\n")
	return b.String()
}

// flushOut sends what the session has buffered for the client.
func (sess *session) flushOut() error {
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return nil
}
