package auth

import (
	"bytes"
	"testing"
)

// FuzzSASLServers feeds arbitrary responses to the PLAIN and LOGIN
// servers: errors are fine, panics are not, and the exchange ends within
// three steps.
func FuzzSASLServers(f *testing.F) {
	f.Add("PLAIN", []byte("\x00alice\x00alicepw"), []byte(""), []byte(""))
	f.Add("PLAIN", []byte("bob\x00proxy\x00pw"), []byte("x"), []byte("y"))
	f.Add("LOGIN", []byte("alice"), []byte("alicepw"), []byte("extra"))
	f.Add("LOGIN", []byte(nil), []byte("alice"), []byte("pw"))
	f.Fuzz(func(t *testing.T, mech string, r1, r2, r3 []byte) {
		var got *Credentials
		s, err := NewServer(mech, func(c Credentials) error { got = &c; return nil })
		if err != nil {
			return
		}
		done := false
		for _, resp := range [][]byte{r1, r2, r3} {
			_, d, err := s.Next(resp)
			if err != nil || d {
				done = true
				break
			}
		}
		if !done {
			t.Fatal("exchange longer than three steps")
		}
		if got != nil && !bytes.Contains([]byte(got.String()), []byte("REDACTED")) {
			t.Fatal("String() does not redact")
		}
	})
}
