package gssapitest

import (
	"fmt"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/imapfront/imapfront/gssapi"
)

// KDC forges service tickets in process, for hermetic tests without a real KDC.
// Its Keytab holds an AES256 and an AES128 key (kvno 2) for each service
// principal; hand it to gssapi.AcceptorOptions.Keytab.
type KDC struct {
	Realm  string
	Keytab *keytab.Keytab
	// Lifetime of forged tickets relative to now: they start at Start and end at
	// End (defaults -1m and +10h; set End negative for an expired ticket).
	Start, End time.Duration
}

// NewKDC returns a KDC for realm knowing the given service principals
// ("imap/localhost", "mupdate/localhost", ...).
func NewKDC(realm string, services ...string) (*KDC, error) {
	kt := keytab.New()
	ts := time.Now().Add(-time.Hour)
	for _, s := range services {
		for _, et := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
			if err := kt.AddEntry(s, realm, "gssapitest-secret-"+s, ts, 2, et); err != nil {
				return nil, fmt.Errorf("gssapitest: keytab entry %s: %w", s, err)
			}
		}
	}
	return &KDC{Realm: realm, Keytab: kt, Start: -time.Minute, End: 10 * time.Hour}, nil
}

// Tickets returns a gssapi.TicketSource issuing tickets for user@Realm.
func (k *KDC) Tickets(user string) gssapi.TicketSource { return userTickets{k, user} }

// Client returns a gssapi.Client authenticating as user@Realm to service,
// asking for authzid.
func (k *KDC) Client(user, service, authzid string) *gssapi.Client {
	return gssapi.NewClient(gssapi.ClientOptions{Tickets: k.Tickets(user), Username: user, Realm: k.Realm, Service: service, Authzid: authzid})
}

type userTickets struct {
	k    *KDC
	user string
}

// GetServiceTicket implements gssapi.TicketSource: the ticket is sealed with the
// service's AES256 key from the KDC's keytab.
func (u userTickets) GetServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error) {
	now := time.Now().UTC()
	fl := types.NewKrbFlags()
	types.SetFlag(&fl, flags.PreAuthent)
	return messages.NewTicket(types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, u.user), u.k.Realm,
		types.NewPrincipalName(nametype.KRB_NT_SRV_HST, spn), u.k.Realm, fl, u.k.Keytab,
		etypeID.AES256_CTS_HMAC_SHA1_96, 2, now.Add(u.k.Start), now.Add(u.k.Start), now.Add(u.k.End), now.Add(u.k.End))
}
