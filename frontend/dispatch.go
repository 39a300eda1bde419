package frontend

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/imapfront/imapfront/imapwire"
)

// handleNext reads one command and answers it.
func (sess *session) handleNext() error {
	_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
	wc, err := sess.rd.ReadCommand()
	if err != nil {
		return sess.readFailed(err)
	}
	sess.busy.Store(true)
	defer sess.busy.Store(false)
	if err := sess.checkSelectedMoved(); err != nil {
		return err
	}
	if len(sess.pool.conns) > 1 {
		keep := ""
		if sess.selected != nil {
			keep = sess.selected.b.Server
		}
		sess.pool.closeIdle(keep)
	}
	_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))

	if sess.state == stateNotAuth && wc.Tag == "PROXY" {
		// A PROXY protocol header that the listener did not take: it
		// comes from an address that is not a trusted proxy.
		sess.log.Warn("PROXY header from an untrusted address refused")
		sess.writeLine("* BYE PROXY protocol header not accepted from this address")
		return errFatal
	}
	cmd := &command{tag: wc.Tag, name: wc.Name}
	start := time.Now()
	if cmd.name == "UID" {
		var sub string
		if !sess.rd.ExpectSP() || !sess.rd.ExpectAtom(&sub) {
			err = sess.parseError("Usage: UID command arguments")
		}
		cmd.uid, cmd.name = true, strings.ToUpper(sub)
	}
	if err == nil {
		if sess.s.onDispatch != nil {
			sess.s.onDispatch(cmd.tag, cmd.wireName())
		}
		err = sess.dispatch(cmd)
	}
	if !errors.Is(err, errFatal) {
		// Whatever the handler left of the command (it answered before
		// reading it all) is skipped now, within bounds.
		if derr := sess.rd.Discard(); derr != nil {
			if werr := sess.wireError(derr, ""); errors.Is(werr, errFatal) {
				err = werr
			} else {
				return werr
			}
		}
	}
	werr := sess.reply(cmd.tag, cmd.name, err)
	result := sess.result(err)
	if m := sess.s.opts.Metrics; m != nil {
		server := ""
		if a := new(answered); errors.As(err, &a) {
			server = a.server
		}
		m.Command(cmd.name, result, server, time.Since(start))
		sess.flushCounts()
	}
	if werr == nil && sess.noteResult(result == "bad") {
		return errFatal
	}
	return werr
}

// readFailed answers a command that could not be read: BAD, tagged when
// its tag was read, for syntax errors and overlong lines; BYE for an idle
// timeout or a client that cannot be resynchronised.
func (sess *session) readFailed(err error) error {
	var se *imapwire.SyntaxError
	var le *imapwire.LineTooLongError
	var ne net.Error
	switch {
	case errors.As(err, &le):
		return sess.badLine(tagOrStar(le.Tag) + " BAD [TOOBIG] Command line too long")
	case errors.As(err, &se):
		return sess.badLine(tagOrStar(se.Tag) + " BAD " + upperFirst(se.Msg))
	case errors.As(err, &ne) && ne.Timeout():
		if sess.stopping.Load() {
			sess.writeLine("* BYE Server shutting down")
		} else {
			sess.writeLine("* BYE Autologout; idle for too long")
		}
		return errFatal
	case errors.Is(err, imapwire.ErrDiscardLimit):
		sess.writeLine("* BYE [TOOBIG] Literal too large to skip")
		return errFatal
	}
	return &clientGone{err}
}

// badLine answers a command that could not be read and counts it toward
// the limit on consecutive bad commands.
func (sess *session) badLine(line string) error {
	if err := sess.writeLine(line); err != nil {
		return err
	}
	if sess.noteResult(true) {
		return errFatal
	}
	return nil
}

// upperFirst capitalises an imapwire message for the client.
func upperFirst(s string) string {
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func tagOrStar(tag string) string {
	if tag == "" {
		return "*"
	}
	return tag
}

// result names a command's outcome for the metrics: ok, no or bad, from
// the front end's answer or the relayed backend's.
func (sess *session) result(err error) string {
	var se *statusErr
	var a *answered
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &a):
		return strings.ToLower(string(a.status))
	case errors.As(err, &se):
		return strings.ToLower(se.status)
	}
	return "error"
}

// handler runs one command; it returns nil for OK, a *statusErr for NO or
// BAD, an *answered when it wrote the tagged answer itself (relayed from a
// backend or its own), or another error.
type handler func(sess *session, cmd *command) error

// commands lists, per command name, the states it is valid in and its
// handler. Commands not listed are unknown.
var commands = map[string]struct {
	states []state
	h      handler
}{
	"CAPABILITY":   {anyState, (*session).cmdCapability},
	"NOOP":         {anyState, (*session).cmdNoop},
	"LOGOUT":       {anyState, (*session).cmdLogout},
	"ID":           {anyState, (*session).cmdID},
	"STARTTLS":     {notAuth, (*session).cmdStartTLS},
	"LOGIN":        {notAuth, (*session).cmdLogin},
	"AUTHENTICATE": {notAuth, (*session).cmdAuthenticate},
	"ENABLE":       {authed, (*session).cmdEnable},
	"NAMESPACE":    {authed, (*session).cmdNamespace},
	"SELECT":       {authed, (*session).cmdSelect},
	"EXAMINE":      {authed, (*session).cmdSelect},
	"LIST":         {authed, (*session).cmdList},
	"LSUB":         {authed, (*session).cmdList},
	"RLIST":        {authed, (*session).cmdList},
	"RLSUB":        {authed, (*session).cmdList},
	"STATUS":       {authed, (*session).cmdStatus},
	"APPEND":       {authed, (*session).cmdAppend},
	"SUBSCRIBE":    {authed, (*session).cmdSubscribe},
	"UNSUBSCRIBE":  {authed, (*session).cmdSubscribe},
	"CREATE":       {authed, (*session).cmdCreate},
	"DELETE":       {authed, (*session).cmdDelete},
	"RENAME":       {authed, (*session).cmdRename},
	"GETACL":       {authed, (*session).cmdNamed},
	"SETACL":       {authed, (*session).cmdNamed},
	"DELETEACL":    {authed, (*session).cmdNamed},
	"MYRIGHTS":     {authed, (*session).cmdNamed},
	"LISTRIGHTS":   {authed, (*session).cmdNamed},
	"GETQUOTAROOT": {authed, (*session).cmdNamed},
	"GETMETADATA":  {authed, (*session).cmdNamed},
	"SETMETADATA":  {authed, (*session).cmdNamed},
	"GETQUOTA":     {authed, (*session).cmdHome},
	"CHECK":        {selected, (*session).cmdRelay},
	"CLOSE":        {selected, (*session).cmdClose},
	"UNSELECT":     {selected, (*session).cmdClose},
	"EXPUNGE":      {selected, (*session).cmdRelay},
	"SEARCH":       {selected, (*session).cmdRelay},
	"FETCH":        {selected, (*session).cmdRelay},
	"STORE":        {selected, (*session).cmdRelay},
	"SORT":         {selected, (*session).cmdRelay},
	"THREAD":       {selected, (*session).cmdRelay},
	"COPY":         {selected, (*session).cmdCopy},
	"MOVE":         {selected, (*session).cmdCopy},
	"IDLE":         {selected, (*session).cmdIdle},
	"COMPRESS":     {authed, (*session).cmdCompress},
}

var (
	anyState = []state{stateNotAuth, stateAuth, stateSelected}
	notAuth  = []state{stateNotAuth}
	authed   = []state{stateAuth, stateSelected}
	selected = []state{stateSelected}
)

// uidCommands may follow "UID".
var uidCommands = map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "COPY": true, "MOVE": true, "EXPUNGE": true, "SORT": true, "THREAD": true}

func (sess *session) dispatch(cmd *command) error {
	c, ok := commands[cmd.name]
	if !ok || (cmd.uid && !uidCommands[cmd.name]) {
		return bad("Unknown command")
	}
	for _, st := range c.states {
		if st == sess.state {
			return c.h(sess, cmd)
		}
	}
	switch sess.state {
	case stateNotAuth:
		return bad("Please log in first")
	case stateAuth:
		if contains(c.states, stateSelected) {
			return bad("No mailbox selected")
		}
	}
	return bad("Command not valid in this state")
}

func contains(states []state, st state) bool {
	for _, s := range states {
		if s == st {
			return true
		}
	}
	return false
}
