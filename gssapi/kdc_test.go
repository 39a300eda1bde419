package gssapi

import (
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

const testRealm = "TEST.REALM"

// newKeytab builds a keytab in memory holding an AES256 and an AES128 key
// (kvno 2, like kadmin's ktadd) for each service principal. Keys derive from
// the principal's name, so two keytabs built for the same name hold the same key.
func newKeytab(t testing.TB, realm string, principals ...string) *keytab.Keytab {
	t.Helper()
	kt := keytab.New()
	ts := time.Now().Add(-time.Hour)
	for _, p := range principals {
		for _, et := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
			if err := kt.AddEntry(p, realm, "secret-of-"+p, ts, 2, et); err != nil {
				t.Fatalf("keytab entry %s: %v", p, err)
			}
		}
	}
	return kt
}

// fakeKDC forges service tickets in process: each ticket is a messages.Ticket
// whose encrypted part is sealed with the service key from kt.
type fakeKDC struct {
	kt     *keytab.Keytab // the KDC's copy of the service keys
	realm  string         // service realm
	cname  string         // client principal
	crealm string
	etype  int32 // session key and ticket enctype
	// ticket times relative to now
	start, end time.Duration
	calls      int
}

func newFakeKDC(kt *keytab.Keytab) *fakeKDC {
	return &fakeKDC{kt: kt, realm: testRealm, cname: "alice", crealm: testRealm,
		etype: etypeID.AES256_CTS_HMAC_SHA1_96, start: -time.Minute, end: 10 * time.Hour}
}

// GetServiceTicket implements TicketSource.
func (k *fakeKDC) GetServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error) {
	k.calls++
	now := time.Now().UTC()
	cname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, k.cname)
	sname := types.NewPrincipalName(nametype.KRB_NT_SRV_HST, spn)
	fl := types.NewKrbFlags()
	types.SetFlag(&fl, flags.PreAuthent)
	return messages.NewTicket(cname, k.crealm, sname, k.realm, fl, k.kt, k.etype, 2,
		now.Add(k.start), now.Add(k.start), now.Add(k.end), now.Add(k.end))
}

// clientFor returns a Client authenticating as the KDC's client to spn.
func (k *fakeKDC) clientFor(spn, authzid string) *Client {
	return NewClient(ClientOptions{Tickets: k, Username: k.cname, Realm: k.crealm, Service: spn, Authzid: authzid})
}
