package frontend

import (
	"context"
	"encoding/base64"
	"testing"
)

// TestRefusedAuthzConnNotReused: bob authenticates with authorization
// identity alice, which he may not use; the backend connection his
// password check opened (logged in as bob) must not serve alice's session
// when she logs in next on the same connection.
func TestRefusedAuthzConnNotReused(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	ir := base64.StdEncoding.EncodeToString([]byte("alice\x00bob\x00bobpw"))
	c.Expect("z1", "AUTHENTICATE PLAIN "+ir, "NO [AUTHENTICATIONFAILED]")
	c.OK("z2", "LOGIN alice alicepw")
	// Archive is alice's, on be-b, where the password check logged in as bob.
	c.OK("z3", "SELECT Archive")
	c.OK("z4", "LOGOUT")
}

// TestDropForeign: after a refused authorization identity the session's
// pool keeps only connections of the session's user (none before login).
func TestDropForeign(t *testing.T) {
	f := newFixture(t, nil)
	p := newPool(context.Background(), f.srv)
	p.user = "alice"
	mine, err := p.get(t.Context(), "be-a")
	if err != nil {
		t.Fatal(err)
	}
	p.user = "bob"
	theirs, err := p.get(t.Context(), "be-b")
	if err != nil {
		t.Fatal(err)
	}
	p.user = "alice"
	p.dropForeign()
	if p.conns["be-b"] != nil || !theirs.c.Dead() {
		t.Fatal("bob's connection is still in alice's pool")
	}
	if p.conns["be-a"] != mine {
		t.Fatal("alice's own connection was dropped")
	}
	p.closeAll()
}
