package frontend

import (
	"context"
	"time"

	"github.com/imapfront/imapfront/imapwire"
)

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
		name, _, ok := imapwire.ParseList(l, "LSUB")
		if !ok {
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
