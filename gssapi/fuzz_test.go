package gssapi

import (
	"testing"

	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
)

// FuzzAcceptor feeds arbitrary bytes to Server.Next at each step of an otherwise
// valid exchange: step 0 replaces the AP-REQ, step 1 the empty response after the
// AP-REP, step 2 the security-layer reply. It must never panic, and arbitrary
// bytes must never complete an authentication except where they are the valid
// token.
func FuzzAcceptor(f *testing.F) {
	a, kdc := setup(f, AcceptorOptions{})
	_, apreq, err := kdc.clientFor("imap/localhost", "").Start()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), apreq)
	f.Add(uint8(0), apreq[:100])
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), frameToken(tokAPReq, []byte{0x6e, 0x03, 0x30, 0x01, 0x00}))
	f.Add(uint8(1), []byte{})
	f.Add(uint8(1), []byte{0})
	key := kdc.kt.Entries[0].Key
	wrap, _ := sealWrap([]byte{1, 0, 0, 0}, 0, 1, key, keyusage.GSSAPI_INITIATOR_SEAL)
	f.Add(uint8(2), wrap)
	f.Add(uint8(2), []byte{5, 4, 0, 0xff, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, step uint8, data []byte) {
		step %= 3
		s := a.NewServer(nil)
		if step == 0 {
			_, done, err := s.Next(data)
			if done || (err != nil && ResponseText(err) == "") {
				t.Fatalf("done %v err %v", done, err)
			}
			return
		}
		c := kdc.clientFor("imap/localhost", "")
		_, ir, err := c.Start()
		if err != nil {
			t.Fatal(err)
		}
		ch, _, err := s.Next(ir)
		if err != nil {
			t.Fatal(err)
		}
		if step == 2 {
			resp, err := c.Next(ch)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Next(resp); err != nil {
				t.Fatal(err)
			}
		}
		_, done, err := s.Next(data)
		if step == 1 && len(data) == 0 {
			if err != nil || done {
				t.Fatalf("empty response after AP-REP: %v %v", done, err)
			}
			return
		}
		if err == nil && done {
			// Only a correctly signed reply can finish; random bytes cannot.
			if r, _ := s.Result(); r.User != "alice" {
				t.Fatalf("finished with %+v", r)
			}
		}
	})
}

// FuzzInitiator feeds arbitrary server challenges to Client.Next: step 0 replaces
// the AP-REP, step 1 the security-layer offer (after a valid AP-REP).
func FuzzInitiator(f *testing.F) {
	a, kdc := setup(f, AcceptorOptions{})
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), frameToken(tokAPRep, []byte{0x6f, 0x00}))
	f.Add(uint8(0), frameToken(tokKRBErr, []byte{0x7e, 0x00}))
	f.Add(uint8(1), []byte{5, 4, 1, 0xff, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, step uint8, data []byte) {
		step %= 2
		c := kdc.clientFor("imap/localhost", "")
		_, ir, err := c.Start()
		if err != nil {
			t.Fatal(err)
		}
		if step == 1 {
			s := a.NewServer(nil)
			rep, _, err := s.Next(ir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Next(rep); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Next(data); err == nil && step == 0 {
			t.Fatalf("random AP-REP accepted: % x", data)
		}
	})
}
