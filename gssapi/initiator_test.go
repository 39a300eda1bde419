package gssapi

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jcmturner/gokrb5/v8/config"
	"go.uber.org/goleak"
)

// TestInitiatorNoKDC: with the KDC unreachable the first authentication fails
// with ErrKerberos (no hang, no panic), and a closed Initiator refuses with
// ErrState. No goroutine outlives Close.
func TestInitiatorNoKDC(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	cfg, err := config.NewFromString(fmt.Sprintf(`[libdefaults]
  default_realm = TEST.REALM
  dns_lookup_kdc = false
  dns_lookup_realm = false
  udp_preference_limit = 1
  default_tkt_enctypes = aes256-cts-hmac-sha1-96
  default_tgs_enctypes = aes256-cts-hmac-sha1-96
  permitted_enctypes = aes256-cts-hmac-sha1-96
[realms]
  TEST.REALM = {
    kdc = %s
  }
`, addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewInitiator(InitiatorOptions{Config: cfg, Username: "x", Realm: testRealm}); err == nil {
		t.Error("initiator without keytab accepted")
	}
	in, err := NewInitiator(InitiatorOptions{Keytab: newKeytab(t, testRealm, "mupdateuser"), Config: cfg, Username: "mupdateuser", Realm: testRealm})
	if err != nil {
		t.Fatal(err)
	}
	c := in.NewClient("mupdate/localhost", "")
	if _, _, err := c.Start(); !errors.Is(err, ErrKerberos) {
		t.Fatalf("Start without KDC: %v", err)
	}
	if _, err := c.Next(nil); !errors.Is(err, ErrState) {
		t.Errorf("Next after failed Start: %v", err)
	}
	in.Close()
	in.Close()
	if _, _, err := in.NewClient("mupdate/localhost", "").Start(); !errors.Is(err, ErrState) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// TestAcceptorNoGoroutines: an Acceptor and its exchanges start no goroutine
// (unlike gokrb5's global replay cache or an expirable LRU).
func TestAcceptorNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, kdc := setup(t, AcceptorOptions{})
	if _, serr, cerr := run(t, kdc.clientFor("imap/localhost", ""), a.NewServer(nil)); serr != nil || cerr != nil {
		t.Fatal(serr, cerr)
	}
}

func TestNewAcceptorOptions(t *testing.T) {
	if _, err := NewAcceptor(AcceptorOptions{}); err == nil {
		t.Error("nil keytab accepted")
	}
	kt := newKeytab(t, testRealm, "imap/localhost")
	if _, err := NewAcceptor(AcceptorOptions{Keytab: kt, Principal: "@X"}); err == nil {
		t.Error("empty principal accepted")
	}
	a, err := NewAcceptor(AcceptorOptions{Keytab: kt})
	if err != nil || a.skew != DefaultMaxClockSkew || a.replay.max != DefaultReplayCacheSize {
		t.Errorf("defaults: %v %+v", err, a)
	}
}
