package gssapi

import "testing"

// BenchmarkExchange measures one full initiator+acceptor exchange with a forged
// ticket (ticket forging included), i.e. the CPU cost of a GSSAPI login.
func BenchmarkExchange(b *testing.B) {
	a, kdc := setup(b, AcceptorOptions{})
	for b.Loop() {
		if _, serr, cerr := run(b, kdc.clientFor("imap/localhost", ""), a.NewServer(nil)); serr != nil || cerr != nil {
			b.Fatal(serr, cerr)
		}
	}
}

// BenchmarkAcceptGarbage measures refusing a malformed token.
func BenchmarkAcceptGarbage(b *testing.B) {
	a, _ := setup(b, AcceptorOptions{})
	g := frameToken(tokAPReq, []byte{0x6e, 0x03, 0x30, 0x01, 0x00})
	for b.Loop() {
		if _, _, err := a.NewServer(nil).Next(g); err == nil {
			b.Fatal("accepted")
		}
	}
}
