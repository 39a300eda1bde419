package gssapi

import (
	"bytes"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

var (
	_ sasl.Server = (*Server)(nil)
	_ sasl.Client = (*Client)(nil)
)

// setup returns an acceptor for imap/localhost and imap/127.0.0.1 and a KDC that
// also knows imap/otherhost (whose key the acceptor lacks).
func setup(t testing.TB, opts AcceptorOptions) (*Acceptor, *fakeKDC) {
	t.Helper()
	opts.Keytab = newKeytab(t, testRealm, "imap/localhost", "imap/127.0.0.1")
	a, err := NewAcceptor(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, newFakeKDC(newKeytab(t, testRealm, "imap/localhost", "imap/127.0.0.1", "imap/otherhost"))
}

// run drives a client against a server until done or an error; it returns the
// server's result, the server error and the client error.
func run(t testing.TB, c sasl.Client, s *Server) (Result, error, error) {
	t.Helper()
	mech, resp, err := c.Start()
	if err != nil {
		return Result{}, nil, err
	}
	if mech != "GSSAPI" {
		t.Fatalf("mech %q", mech)
	}
	for i := 0; i < 5; i++ {
		ch, done, err := s.Next(resp)
		if err != nil {
			return Result{}, err, nil
		}
		if done {
			r, ok := s.Result()
			if !ok {
				t.Fatal("done but no result")
			}
			return r, nil, nil
		}
		if resp, err = c.Next(ch); err != nil {
			return Result{}, nil, err
		}
	}
	t.Fatal("exchange did not finish in 5 rounds")
	return Result{}, nil, nil
}

func TestEndToEnd(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	for _, tc := range []struct {
		spn, authzid string
	}{
		{"imap/localhost", ""},
		{"imap/127.0.0.1", ""},
		{"imap/localhost", "bob"},
		{"imap/localhost", "pierre.élan"},
	} {
		r, serr, cerr := run(t, kdc.clientFor(tc.spn, tc.authzid), a.NewServer(nil))
		if serr != nil || cerr != nil {
			t.Fatalf("%v: server %v, client %v", tc, serr, cerr)
		}
		want := Result{Principal: "alice", Realm: testRealm, User: "alice", Authzid: tc.authzid,
			Service: tc.spn + "@" + testRealm, Flags: flagMutual | flagSequence | flagInteg | flagConf, Expires: r.Expires}
		if r != want {
			t.Errorf("%v: result %+v, want %+v", tc, r, want)
		}
		if d := time.Until(r.Expires); d < 9*time.Hour || d > 11*time.Hour {
			t.Errorf("expires in %v", d)
		}
	}
}

// TestWireShapes checks the tokens against the MIT/Cyrus exchange recorded in
// interop/kerberos.md section 4.
func TestWireShapes(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	c := kdc.clientFor("imap/localhost", "alice2")
	s := a.NewServer(nil)
	_, apreq, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	if apreq[0] != 0x60 || !bytes.Contains(apreq[:20], append(append([]byte{}, krb5OID...), 0x01, 0x00)) {
		t.Fatalf("AP-REQ framing % x", apreq[:20])
	}
	aprep, done, err := s.Next(apreq)
	if err != nil || done {
		t.Fatal(done, err)
	}
	tokID, _, err := parseToken(aprep)
	if err != nil || tokID != tokAPRep {
		t.Fatalf("AP-REP %x %v", tokID, err)
	}
	empty, err := c.Next(aprep)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("response to AP-REP: %q (nil %v) %v", empty, empty == nil, err)
	}
	offer, done, err := s.Next(empty)
	if err != nil || done {
		t.Fatal(done, err)
	}
	// 05 04 | flags 01 (SentByAcceptor) | ff | EC 12 | RRC 0 | seq | 01 00 00 00 | 12-byte HMAC
	if len(offer) != 16+4+12 || !bytes.Equal(offer[:8], []byte{5, 4, 1, 0xff, 0, 12, 0, 0}) ||
		!bytes.Equal(offer[16:20], []byte{1, 0, 0, 0}) || binary.BigEndian.Uint64(offer[8:16]) != s.seq {
		t.Fatalf("offer % x", offer)
	}
	reply, err := c.Next(offer)
	if err != nil {
		t.Fatal(err)
	}
	// flags 00 (no acceptor subkey was sent), SND_SEQ = the authenticator's sequence number
	if !bytes.Equal(reply[:8], []byte{5, 4, 0, 0xff, 0, 12, 0, 0}) ||
		binary.BigEndian.Uint64(reply[8:16]) != uint64(c.auth.SeqNumber) ||
		!bytes.Equal(reply[16:len(reply)-12], []byte("\x01\x00\x00\x00alice2")) {
		t.Fatalf("reply % x", reply)
	}
	if ch, done, err := s.Next(reply); !done || err != nil || ch != nil {
		t.Fatalf("final: %q %v %v", ch, done, err)
	}
	if _, _, err := s.Next(nil); !errors.Is(err, ErrState) {
		t.Errorf("Next after done: %v", err)
	}
	if _, err := c.Next(nil); !errors.Is(err, ErrState) {
		t.Errorf("client Next after done: %v", err)
	}
}

func TestNoInitialResponse(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	s := a.NewServer(nil)
	ch, done, err := s.Next(nil)
	if err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("first Next(nil): %q %v %v", ch, done, err)
	}
	c := kdc.clientFor("imap/localhost", "")
	_, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	aprep, _, err := s.Next(ir)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := c.Next(aprep)
	offer, _, err := s.Next(resp)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := c.Next(offer)
	if _, done, err := s.Next(reply); !done || err != nil {
		t.Fatal(done, err)
	}
	// A second empty response instead of a token is an error.
	s2 := a.NewServer(nil)
	s2.Next(nil)
	if _, _, err := s2.Next([]byte{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("two empty responses: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts AcceptorOptions
		kdc  func(*fakeKDC)
		spn  string
		now  time.Duration // client clock offset
		want error
	}{
		{name: "wrong service principal", spn: "imap/otherhost", want: ErrWrongPrincipal},
		{name: "pinned principal", opts: AcceptorOptions{Principal: "imap/localhost"}, spn: "imap/127.0.0.1", want: ErrWrongPrincipal},
		{name: "pinned realm", opts: AcceptorOptions{Principal: "imap/localhost@OTHER.REALM"}, spn: "imap/localhost", want: ErrWrongPrincipal},
		{name: "expired ticket", kdc: func(k *fakeKDC) { k.start, k.end = -10*time.Hour, -time.Hour }, spn: "imap/localhost", want: ErrTicketExpired},
		{name: "future ticket", kdc: func(k *fakeKDC) { k.start, k.end = time.Hour, 10*time.Hour }, spn: "imap/localhost", want: ErrTicketNotYetValid},
		{name: "clock skew ahead", spn: "imap/localhost", now: 10 * time.Minute, want: ErrClockSkew},
		{name: "clock skew behind", spn: "imap/localhost", now: -10 * time.Minute, want: ErrClockSkew},
		{name: "small skew allowed", spn: "imap/localhost", now: -4 * time.Minute},
		{name: "custom skew", opts: AcceptorOptions{MaxClockSkew: 30 * time.Second}, spn: "imap/localhost", now: time.Minute, want: ErrClockSkew},
		{name: "foreign realm", kdc: func(k *fakeKDC) { k.crealm = "EVIL.REALM" }, spn: "imap/localhost", want: ErrRealmRefused},
		{name: "foreign realm allowed", opts: AcceptorOptions{Realms: []string{"EVIL.REALM", testRealm}}, kdc: func(k *fakeKDC) { k.crealm = "EVIL.REALM" }, spn: "imap/localhost"},
		{name: "own realm not listed", opts: AcceptorOptions{Realms: []string{"EVIL.REALM"}}, spn: "imap/localhost", want: ErrRealmRefused},
		{name: "aes128 session key", kdc: func(k *fakeKDC) { k.etype = etypeID.AES128_CTS_HMAC_SHA1_96 }, spn: "imap/localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, kdc := setup(t, tc.opts)
			if tc.kdc != nil {
				tc.kdc(kdc)
			}
			c := kdc.clientFor(tc.spn, "")
			c.opts.Now = func() time.Time { return time.Now().Add(tc.now) }
			r, serr, cerr := run(t, c, a.NewServer(nil))
			if cerr != nil {
				t.Fatalf("client error %v", cerr)
			}
			if !errors.Is(serr, tc.want) || (tc.want == nil) != (serr == nil) {
				t.Fatalf("server error %v, want %v", serr, tc.want)
			}
			if tc.want != nil && ResponseText(serr) == "" {
				t.Error("no response text")
			}
			if tc.want == nil && r.User != "alice" {
				t.Errorf("user %q", r.User)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	_, apreq, err := kdc.clientFor("imap/localhost", "").Start()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.NewServer(nil).Next(apreq); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.NewServer(nil).Next(apreq)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v", err)
	}
	if ResponseText(err) != "Kerberos authenticator replayed" {
		t.Errorf("text %q", ResponseText(err))
	}
	// A fresh authenticator with the same (cached) ticket is fine.
	if _, serr, cerr := run(t, kdc.clientFor("imap/localhost", ""), a.NewServer(nil)); serr != nil || cerr != nil {
		t.Fatal(serr, cerr)
	}
	// The replay set belongs to the Acceptor: another Acceptor has its own.
	b, _ := setup(t, AcceptorOptions{})
	if _, _, err := b.NewServer(nil).Next(apreq); err != nil {
		t.Fatalf("other acceptor: %v", err)
	}
}

func TestReplaySetExpiry(t *testing.T) {
	r := newReplaySet(time.Minute, 3)
	t0 := time.Unix(1_000_000, 0)
	if rep, _ := r.check("a", t0); rep {
		t.Fatal("fresh key reported as replay")
	}
	if rep, _ := r.check("a", t0.Add(59*time.Second)); !rep {
		t.Fatal("replay within ttl not detected")
	}
	if rep, _ := r.check("a", t0.Add(61*time.Second)); rep {
		t.Fatal("expired entry still a replay")
	}
	r.check("b", t0.Add(62*time.Second))
	r.check("c", t0.Add(63*time.Second))
	if _, ev := r.check("d", t0.Add(64*time.Second)); !ev {
		t.Error("no eviction at capacity")
	}
	if n := r.len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	if rep, _ := r.check("d", t0.Add(65*time.Second)); !rep {
		t.Error("newest entry lost")
	}
	if _, ev := r.check("e", t0.Add(10*time.Minute)); ev || r.len() != 1 {
		t.Errorf("expired entries not pruned: evicted %v, len %d", ev, r.len())
	}
}

func TestAuthorizer(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	deny := errors.New("not a proxy")
	authz := func(r Result) error {
		if r.Authzid != "" && r.Authzid != r.User {
			return deny
		}
		return nil
	}
	if _, serr, _ := run(t, kdc.clientFor("imap/localhost", "bob"), a.NewServer(authz)); serr != deny {
		t.Errorf("proxy to bob: %v", serr)
	}
	if r, serr, _ := run(t, kdc.clientFor("imap/localhost", "alice"), a.NewServer(authz)); serr != nil || r.Authzid != "alice" {
		t.Errorf("authzid = self: %v %+v", serr, r)
	}
}

func TestGarbage(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	_, apreq, err := kdc.clientFor("imap/localhost", "").Start()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range [][]byte{
		[]byte("hello"), {0x60}, {0x60, 0x00}, {0x60, 0x85, 1, 2, 3, 4, 5}, {0x60, 0x82, 0xff},
		frameToken(tokAPReq, nil), frameToken(tokAPReq, []byte{0x6e, 0x00}), frameToken(tokAPRep, nil),
		frameToken([2]byte{9, 9}, []byte("x")), append(apreq, 0), bytes.Repeat([]byte{0x60}, 100),
	} {
		if _, _, err := a.NewServer(nil).Next(g); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: %v", g, err)
		}
	}
	// Every truncation of a valid AP-REQ is refused as malformed.
	for i := 1; i < len(apreq); i++ {
		if _, _, err := a.NewServer(nil).Next(apreq[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	// A single-byte corruption never panics. gokrb5's ASN.1 decoder tolerates some
	// damage to the unauthenticated envelope (explicit-tag lengths), but whatever
	// is accepted still authenticates alice: the ticket and the authenticator
	// are integrity-protected.
	refused := 0
	for i := range apreq {
		b := bytes.Clone(apreq)
		b[i] ^= 0x5a
		s := a.NewServer(nil)
		if _, _, err := s.Next(b); err != nil {
			refused++
			continue
		}
		if s.result.Principal != "alice" || s.result.Realm != testRealm {
			t.Fatalf("corrupted byte %d changed the identity: %+v", i, s.result)
		}
	}
	t.Logf("%d of %d single-byte corruptions refused", refused, len(apreq))
	if refused < len(apreq)*9/10 {
		t.Errorf("only %d of %d corruptions refused", refused, len(apreq))
	}
}

// TestLaterSteps feeds bad responses after the AP-REQ was accepted.
func TestLaterSteps(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	start := func(t *testing.T) (*Client, *Server, []byte) {
		c := kdc.clientFor("imap/localhost", "")
		s := a.NewServer(nil)
		_, ir, err := c.Start()
		if err != nil {
			t.Fatal(err)
		}
		aprep, _, err := s.Next(ir)
		if err != nil {
			t.Fatal(err)
		}
		return c, s, aprep
	}
	t.Run("non-empty after AP-REP", func(t *testing.T) {
		_, s, _ := start(t)
		if _, _, err := s.Next([]byte{1}); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		if _, _, err := s.Next(nil); !errors.Is(err, ErrState) {
			t.Fatal("after failure:", err)
		}
	})
	offerFor := func(t *testing.T) (*Client, *Server, []byte) {
		c, s, aprep := start(t)
		resp, err := c.Next(aprep)
		if err != nil {
			t.Fatal(err)
		}
		offer, _, err := s.Next(resp)
		if err != nil {
			t.Fatal(err)
		}
		return c, s, offer
	}
	for _, layer := range []byte{0x00, 0x02, 0x04, 0x03, 0x07} {
		t.Run(fmt.Sprintf("layer %#x", layer), func(t *testing.T) {
			c, s, _ := offerFor(t)
			reply, err := sealWrap([]byte{layer, 0, 0x10, 0}, 0, uint64(c.auth.SeqNumber), c.sessKey, keyusage.GSSAPI_INITIATOR_SEAL)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = s.Next(reply)
			if !errors.Is(err, ErrLayerNotOffered) || ResponseText(err) != "Security layer not offered" {
				t.Fatal(err)
			}
		})
	}
	t.Run("tampered reply", func(t *testing.T) {
		c, s, offer := offerFor(t)
		reply, _ := c.Next(offer)
		reply[16] ^= 1
		if _, _, err := s.Next(reply); !errors.Is(err, ErrBadIntegrity) {
			t.Fatal(err)
		}
	})
	t.Run("reply signed as acceptor", func(t *testing.T) {
		c, s, _ := offerFor(t)
		reply, _ := sealWrap([]byte{1, 0, 0, 0}, wrapSentByAcceptor, 0, c.sessKey, keyusage.GSSAPI_INITIATOR_SEAL)
		if _, _, err := s.Next(reply); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	t.Run("short payload", func(t *testing.T) {
		c, s, _ := offerFor(t)
		reply, _ := sealWrap([]byte{1, 0}, 0, 0, c.sessKey, keyusage.GSSAPI_INITIATOR_SEAL)
		if _, _, err := s.Next(reply); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	t.Run("authzid with NUL", func(t *testing.T) {
		c, s, _ := offerFor(t)
		reply, _ := sealWrap([]byte("\x01\x00\x00\x00a\x00b"), 0, 0, c.sessKey, keyusage.GSSAPI_INITIATOR_SEAL)
		if _, _, err := s.Next(reply); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	t.Run("rotated reply (RRC)", func(t *testing.T) {
		c, s, offer := offerFor(t)
		reply, _ := c.Next(offer)
		// Rotate the data right by 5 and record it in RRC, as Windows SSPI does.
		data := bytes.Clone(reply[16:])
		n := len(data)
		rot := append(bytes.Clone(data[n-5:]), data[:n-5]...)
		copy(reply[16:], rot)
		binary.BigEndian.PutUint16(reply[6:8], 5)
		if _, done, err := s.Next(reply); !done || err != nil {
			t.Fatal(done, err)
		}
	})
}

// mitAPReq builds an AP-REQ the way MIT's initiator does: an initiator subkey
// in the authenticator, flags in the 0x8003 checksum, mutual-required optional.
func mitAPReq(t *testing.T, k *fakeKDC, spn string, gssFlags uint32, mutualOpt bool, subkey bool) ([]byte, types.EncryptionKey, types.Authenticator) {
	t.Helper()
	tkt, sess, err := k.GetServiceTicket(spn)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := types.NewAuthenticator(k.crealm, types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, k.cname))
	if err != nil {
		t.Fatal(err)
	}
	auth.CTime = auth.CTime.Truncate(time.Second)
	if subkey {
		if err := auth.GenerateSeqNumberAndSubKey(etypeID.AES256_CTS_HMAC_SHA1_96, 32); err != nil {
			t.Fatal(err)
		}
	}
	ck := make([]byte, 24)
	binary.LittleEndian.PutUint32(ck, 16)
	binary.LittleEndian.PutUint32(ck[20:], gssFlags)
	auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: ck}
	req, err := messages.NewAPReq(tkt, sess, auth)
	if err != nil {
		t.Fatal(err)
	}
	if mutualOpt {
		types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return frameToken(tokAPReq, b), sess, auth
}

// TestMITStyleInitiator: with an initiator subkey, the offer is signed with it
// (flags 0x01, usage 22) and the reply verifies with it (usage 24), as
// interop/kerberos.md section 5 describes for mupdatetest.
func TestMITStyleInitiator(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	tok, sess, auth := mitAPReq(t, kdc, "imap/localhost", 0x13a, true, true)
	s := a.NewServer(nil)
	aprep, _, err := s.Next(tok)
	if err != nil {
		t.Fatal(err)
	}
	// The AP-REP decrypts with the session key and echoes ctime/cusec.
	_, inner, err := parseToken(aprep)
	if err != nil {
		t.Fatal(err)
	}
	var rep messages.APRep
	if err := rep.Unmarshal(inner); err != nil {
		t.Fatal(err)
	}
	plain, err := decrypt(rep.EncPart, sess, keyusage.AP_REP_ENCPART)
	if err != nil {
		t.Fatal(err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		t.Fatal(err)
	}
	if !part.CTime.Equal(auth.CTime) || part.Cusec != auth.Cusec || part.SequenceNumber == 0 || len(part.Subkey.KeyValue) != 0 {
		t.Fatalf("EncAPRepPart %+v", part)
	}
	offer, _, err := s.Next([]byte{})
	if err != nil {
		t.Fatal(err)
	}
	wt, err := parseWrap(offer, true)
	if err != nil || wt.flags != wrapSentByAcceptor || wt.seq != uint64(part.SequenceNumber) {
		t.Fatalf("offer %+v %v", wt, err)
	}
	if err := wt.verify(auth.SubKey, keyusage.GSSAPI_ACCEPTOR_SEAL); err != nil {
		t.Fatal("offer not signed with the initiator subkey:", err)
	}
	reply, _ := sealWrap([]byte("\x01\x00\x00\x00alice"), 0, uint64(auth.SeqNumber), auth.SubKey, keyusage.GSSAPI_INITIATOR_SEAL)
	if _, done, err := s.Next(reply); !done || err != nil {
		t.Fatal(done, err)
	}
	if r, _ := s.Result(); r.Flags != 0x13a || r.Authzid != "alice" {
		t.Errorf("result %+v", r)
	}
}

func TestNoMutual(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	tok, sess, _ := mitAPReq(t, kdc, "imap/localhost", flagInteg, false, false)
	s := a.NewServer(nil)
	offer, _, err := s.Next(tok)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := parseWrap(offer, true)
	if err != nil {
		t.Fatal("first challenge is not the offer:", err)
	}
	if err := wt.verify(sess, keyusage.GSSAPI_ACCEPTOR_SEAL); err != nil {
		t.Fatal(err)
	}
	reply, _ := sealWrap([]byte{1, 0, 0, 0}, 0, 0, sess, keyusage.GSSAPI_INITIATOR_SEAL)
	if _, done, err := s.Next(reply); !done || err != nil {
		t.Fatal(done, err)
	}
	// Mutual requested only by the AP option still gets an AP-REP.
	tok, _, _ = mitAPReq(t, kdc, "imap/localhost", flagInteg, true, false)
	rep, _, err := a.NewServer(nil).Next(tok)
	if id, _, _ := parseToken(rep); err != nil || id != tokAPRep {
		t.Fatal("AP option mutual-required ignored", err)
	}
}

func TestMissingChecksum(t *testing.T) {
	a, kdc := setup(t, AcceptorOptions{})
	tkt, sess, _ := kdc.GetServiceTicket("imap/localhost")
	auth, _ := types.NewAuthenticator(testRealm, types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "alice"))
	req, _ := messages.NewAPReq(tkt, sess, auth)
	b, _ := req.Marshal()
	if _, _, err := a.NewServer(nil).Next(frameToken(tokAPReq, b)); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	// An authenticator for another client than the ticket's.
	auth, _ = types.NewAuthenticator(testRealm, types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "mallory"))
	req, _ = messages.NewAPReq(tkt, sess, auth)
	b, _ = req.Marshal()
	if _, _, err := a.NewServer(nil).Next(frameToken(tokAPReq, b)); !errors.Is(err, ErrBadIntegrity) {
		t.Fatal(err)
	}
}

// TestInitiatorRefusals: the client side refuses a bad AP-REP, a KRB-ERROR, and
// an offer that demands a security layer.
func TestInitiatorRefusals(t *testing.T) {
	_, kdc := setup(t, AcceptorOptions{})
	started := func(t *testing.T) *Client {
		c := kdc.clientFor("imap/localhost", "")
		if _, _, err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("garbage AP-REP", func(t *testing.T) {
		if _, err := started(t).Next([]byte("nope")); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	t.Run("AP-REP under another key", func(t *testing.T) {
		c := started(t)
		other, _, _ := mitAPReq(t, kdc, "imap/localhost", 0, false, false)
		_ = other
		wrongKey := types.EncryptionKey{KeyType: c.sessKey.KeyType, KeyValue: bytes.Repeat([]byte{7}, 32)}
		rep, err := buildAPRep(&c.auth, wrongKey, 5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(rep); !errors.Is(err, ErrMutualAuth) {
			t.Fatal(err)
		}
	})
	t.Run("AP-REP for another authenticator", func(t *testing.T) {
		c := started(t)
		auth := c.auth
		auth.Cusec++
		rep, _ := buildAPRep(&auth, c.sessKey, 5)
		if _, err := c.Next(rep); !errors.Is(err, ErrMutualAuth) {
			t.Fatal(err)
		}
	})
	t.Run("KRB-ERROR", func(t *testing.T) {
		c := started(t)
		ke := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_HST, "imap/localhost"), testRealm, 37, "skew")
		b, err := ke.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(frameToken(tokKRBErr, b)); !errors.Is(err, ErrKerberos) {
			t.Fatal(err)
		}
	})
	t.Run("layer required", func(t *testing.T) {
		c := started(t)
		rep, _ := buildAPRep(&c.auth, c.sessKey, 5)
		if _, err := c.Next(rep); err != nil {
			t.Fatal(err)
		}
		offer, _ := sealWrap([]byte{0x06, 0, 0x10, 0}, wrapSentByAcceptor, 5, c.sessKey, keyusage.GSSAPI_ACCEPTOR_SEAL)
		if _, err := c.Next(offer); !errors.Is(err, ErrUnsupported) {
			t.Fatal(err)
		}
	})
	t.Run("acceptor subkey", func(t *testing.T) {
		// MIT's acceptor sends a subkey in the AP-REP and signs the offer with it
		// (flags 0x05); the reply must use it too (flags 0x04).
		c := started(t)
		sub := types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{3}, 32)}
		part := messages.EncAPRepPart{CTime: c.auth.CTime, Cusec: c.auth.Cusec, Subkey: sub, SequenceNumber: 77}
		rep := mitAPRep(t, part, c.sessKey)
		if resp, err := c.Next(rep); err != nil || len(resp) != 0 {
			t.Fatal(resp, err)
		}
		offer, _ := sealWrap([]byte{0x07, 0, 0x10, 0}, wrapSentByAcceptor|wrapAcceptorSubkey, 77, sub, keyusage.GSSAPI_ACCEPTOR_SEAL)
		reply, err := c.Next(offer)
		if err != nil {
			t.Fatal(err)
		}
		wt, err := parseWrap(reply, false)
		if err != nil || wt.flags != wrapAcceptorSubkey || !bytes.Equal(wt.payload, []byte{1, 0, 0, 0}) {
			t.Fatalf("%+v %v", wt, err)
		}
		if err := wt.verify(sub, keyusage.GSSAPI_INITIATOR_SEAL); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ticket source fails", func(t *testing.T) {
		c := NewClient(ClientOptions{Tickets: failingSource{}, Username: "a", Realm: testRealm, Service: "imap/x"})
		if _, _, err := c.Start(); !errors.Is(err, ErrKerberos) {
			t.Fatal(err)
		}
	})
}

type failingSource struct{}

func (failingSource) GetServiceTicket(string) (messages.Ticket, types.EncryptionKey, error) {
	return messages.Ticket{}, types.EncryptionKey{}, errors.New("KDC unreachable")
}

// mitAPRep builds an AP-REP carrying an acceptor subkey, as MIT's acceptor does.
func mitAPRep(t *testing.T, part messages.EncAPRepPart, sess types.EncryptionKey) []byte {
	t.Helper()
	type withSubkey struct {
		CTime          time.Time           `asn1:"generalized,explicit,tag:0"`
		Cusec          int                 `asn1:"explicit,tag:1"`
		Subkey         types.EncryptionKey `asn1:"explicit,tag:2"`
		SequenceNumber int64               `asn1:"explicit,tag:3"`
	}
	b, err := asn1.Marshal(withSubkey{part.CTime, part.Cusec, part.Subkey, part.SequenceNumber})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(b, asnAppTag.EncAPRepPart), sess, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := asn1.Marshal(apRep{PVNO: 5, MsgType: 15, EncPart: ed})
	if err != nil {
		t.Fatal(err)
	}
	return frameToken(tokAPRep, asn1tools.AddASNAppTag(rep, asnAppTag.APREP))
}
