package frontend

import (
	"net"
	"strings"
	"testing"
)

func TestForwardedID(t *testing.T) {
	p := &pool{
		client: &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 50123},
		local:  &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 143},
		ttl:    4,
		id: `("name" "Thunderbird" "x-originating-ip" "10.9.9.9" "X-Session-ID" "forged" ` +
			`"x-connected-ip" "10.0.0.1" "version" "128.0" "x-anything" "y")`,
	}
	got := p.idFor(&Backend{ForwardClient: true})
	want := `("name" "Thunderbird" "version" "128.0" "x-originating-ip" "192.0.2.7" "x-originating-port" "50123" ` +
		`"x-connected-ip" "127.0.0.1" "x-connected-port" "143" "x-proxy-ttl" "4")`
	if got != want {
		t.Fatalf("ID for a forwarding backend:\n got %s\nwant %s", got, want)
	}
	if got := p.idFor(&Backend{}); got != "" {
		t.Fatalf("ID for a backend without forward_client: %s, want none", got)
	}
}

func TestProxyLoopRefused(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.Send(`p1 ID ("name" "imapfront" "x-proxy-ttl" "1")`)
	if l := c.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("x-proxy-ttl 1: %q, want BYE", l)
	}
	c2 := f.dial(t)
	c2.OK("p2", `ID ("name" "other-proxy" "x-proxy-ttl" "3")`)
	c2.OK("p3", "LOGIN alice alicepw")
}
