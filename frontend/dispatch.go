package frontend

import (
	"errors"
	"net"
	"strings"
	"time"
)

// handleNext reads one command and answers it.
func (sess *session) handleNext() error {
	_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
	line, err := readLine(sess.br, sess.s.opts.MaxLine)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			return sess.writeLine("* BAD [TOOBIG] Command line too long")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if sess.stopping.Load() {
				sess.writeLine("* BYE Server shutting down")
			} else {
				sess.writeLine("* BYE Autologout; idle for too long")
			}
			return errFatal
		}
		return err
	}
	sess.busy.Store(true)
	defer sess.busy.Store(false)
	if len(sess.pool.conns) > 1 {
		keep := ""
		if sess.selected != nil {
			keep = sess.selected.b.Server
		}
		sess.pool.closeIdle(keep)
	}
	_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))

	if sess.state == stateNotAuth && len(line) > 6 && string(line[:6]) == "PROXY " {
		// A PROXY protocol header that the listener did not take: it
		// comes from an address that is not a trusted proxy.
		sess.log.Warn("PROXY header from an untrusted address refused")
		sess.writeLine("* BYE PROXY protocol header not accepted from this address")
		return errFatal
	}
	cmd, err := parseCommandLine(line)
	switch {
	case errors.Is(err, errEmptyLine):
		return sess.writeLine("* BAD Empty command line")
	case errors.Is(err, errBadTag):
		sess.skipTrailingLiteral(cmd)
		return sess.writeLine("* BAD Invalid tag")
	case errors.Is(err, errMissingCommand):
		return sess.writeLine(cmd.tag + " BAD Missing command")
	}
	start := time.Now()
	sess.relayed, sess.lastBackend = "", ""
	err = sess.dispatch(cmd)
	werr := sess.reply(cmd.tag, cmd.name, err)
	if m := sess.s.opts.Metrics; m != nil {
		m.Command(cmd.name, sess.result(err), sess.lastBackend, time.Since(start))
		sess.flushCounts()
	}
	return werr
}

// result names a command's outcome for the metrics: ok, no or bad, from
// the front end's answer or the relayed backend's.
func (sess *session) result(err error) string {
	var se *statusErr
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errRelayed):
		if sess.relayed != "" {
			return strings.ToLower(string(sess.relayed))
		}
		return "ok"
	case errors.As(err, &se):
		return strings.ToLower(se.status)
	}
	return "error"
}

// skipTrailingLiteral drops the non-synchronising literal (and what
// follows) of a command that is answered without reading its arguments.
func (sess *session) skipTrailingLiteral(cmd *command) error {
	if n, nonSync, _, ok := literalAt(cmd.line); ok && nonSync {
		return sess.skipCommand(n)
	}
	return nil
}

// handler runs one command; it returns nil for OK, a *statusErr for NO or
// BAD, errRelayed when the backend's answer was relayed, or another error.
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
		sess.skipTrailingLiteral(cmd)
		return bad("Unknown command")
	}
	for _, st := range c.states {
		if st == sess.state {
			return c.h(sess, cmd)
		}
	}
	sess.skipTrailingLiteral(cmd)
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
