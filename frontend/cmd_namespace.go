package frontend

import "github.com/imapfront/imapfront/imapwire"

func (sess *session) cmdNamespace(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	sep := string(sess.ns().Separator())
	other, shared := sess.ns().OtherUsersPrefix(), sess.ns().SharedPrefix()
	return sess.writeLine(`* NAMESPACE (("" "` + sep + `")) ((` + imapwire.Quote(other) + ` "` + sep + `")) ((` + imapwire.Quote(shared) + ` "` + sep + `"))`)
}
