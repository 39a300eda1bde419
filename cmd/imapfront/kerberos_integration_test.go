//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	krb5config "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/mupdatec"
)

func itInitiator(t *testing.T, env itenv.Env, user string) *gssapi.Initiator {
	t.Helper()
	kt, err := keytab.Load(env.KRB5ClientsKeytab)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := krb5config.Load(env.KRB5Config)
	if err != nil {
		t.Fatal(err)
	}
	in, err := gssapi.NewInitiator(gssapi.InitiatorOptions{Keytab: kt, Config: conf, Username: user, Realm: env.KRB5Realm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

// TestDaemonKerberosAgainstLab runs the daemon from a TOML file against the
// lab: [mupdate] logs in with GSSAPI from the clients keytab to the Cyrus
// master that accepts only GSSAPI, [auth.gssapi] takes the services keytab,
// and alice, with a Kerberos ticket, authenticates and reads her INBOX on
// Cyrus be1 (proxy login as the Cyrus admin). Her INBOX entry is put into
// the GSSAPI master first, since no backend reports to that master.
func TestDaemonKerberosAgainstLab(t *testing.T) {
	env := itenv.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := itInitiator(t, env, env.MUPDATEUser)
	w := &mupdatec.Writer{Dial: func(ctx context.Context) (*mupdatec.Conn, error) {
		c, err := mupdatec.Dial(ctx, env.MUPDATEGSSAPI, nil)
		if err != nil {
			return nil, err
		}
		if err := c.Authenticate(ctx, admin.NewClient("mupdate/"+env.MUPDATEGSSAPIHost, "")); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	loc := env.CyrusBE1 + "!default"
	if err := w.Reserve(ctx, "user.alice", loc); err != nil && !errors.Is(err, mupdatec.ErrExists) {
		t.Fatalf("reserve user.alice on the GSSAPI master: %v", err)
	}
	if err := w.Activate(ctx, "user.alice", loc, "alice\tlrswipkxtean\t"); err != nil {
		t.Fatalf("activate user.alice on the GSSAPI master: %v", err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if err := w.Delete(dctx, "user.alice"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	cfg, err := parseConfig(fmt.Appendf(nil, `
[listen]
imap = "127.0.0.1:0"
shutdown_grace = "5s"
[auth]
failure_delay = "10ms"
admins = [%q]
[auth.gssapi]
keytab = %q
realms = [%q]
[mupdate]
server = %q
mechanism = "GSSAPI"
keytab = %q
principal = "%s@%s"
krb5_conf = %q
service_host = %q
[[backend]]
server = %q
tls = "none"
proxy_user = %q
proxy_password = %q
`, env.CyrusAdminUser, env.KRB5ServicesKeytab, env.KRB5Realm,
		env.MUPDATEGSSAPI, env.KRB5ClientsKeytab, env.MUPDATEUser, env.KRB5Realm, env.KRB5Config, env.MUPDATEGSSAPIHost,
		env.CyrusBE1, env.CyrusAdminUser, env.CyrusAdminPass))
	if err != nil {
		t.Fatal(err)
	}
	addr := startDaemon(t, cfg).addr
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(itInitiator(t, env, "alice").NewClient("imap/localhost", "")); err != nil {
		t.Fatalf("AUTHENTICATE GSSAPI as alice: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX (replica from the GSSAPI master, proxy login to be1): %v", err)
	}
	if sel.NumMessages < itenv.SeededMessages {
		t.Fatalf("alice's INBOX has %d messages, want at least %d", sel.NumMessages, itenv.SeededMessages)
	}
}
