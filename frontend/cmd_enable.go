package frontend

import (
	"context"
	"strings"
	"time"

	"github.com/imapfront/imapfront/imapwire"
)

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
