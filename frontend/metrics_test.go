package frontend

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// scrape fetches /metrics over HTTP and returns the lines without comments.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	return lines
}

func TestMetricsFollowSessions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	f := newFixture(t, func(o *Options) { o.Metrics = m })
	ready := errors.New("replica not loaded")
	hs := httptest.NewServer(metrics.Handler(reg, func() error { return ready }))
	defer hs.Close()

	c := f.dial(t)
	c.Expect("m1", "LOGIN alice wrong", "NO")
	c.OK("m2", "LOGIN alice alicepw")
	c.OK("m3", "SELECT INBOX")
	c.OK("m4", "FETCH 1 (FLAGS)")
	c.Expect("m5", "FETCH 1 (NOSUCHITEM)", "BAD")
	c.Expect("m6", "SELECT Nosuch", "NO")
	// A command is recorded after its answer: one more round trip makes
	// sure m6 is counted.
	c.OK("m6b", "CAPABILITY")

	got := scrape(t, hs.URL)
	for _, want := range []string{
		`imapfront_authentications_total{mechanism="LOGIN",result="failed"} 1`,
		`imapfront_authentications_total{mechanism="LOGIN",result="ok"} 1`,
		`imapfront_commands_total{command="SELECT",result="ok"} 1`,
		`imapfront_commands_total{command="SELECT",result="no"} 1`,
		`imapfront_commands_total{command="FETCH",result="ok"} 1`,
		`imapfront_commands_total{command="FETCH",result="bad"} 1`,
		`imapfront_sessions{state="authenticated"} 1`,
		`imapfront_backend_dials_total{backend="be-a",result="ok"} 1`,
		`imapfront_backend_connections{backend="be-a"} 1`,
	} {
		if !got[want] {
			t.Errorf("metrics lack %s", want)
		}
	}
	for l := range got {
		if strings.Contains(l, "alice") || strings.Contains(l, "INBOX") {
			t.Errorf("a user or mailbox name is a label value: %s", l)
		}
	}
	c.OK("m7", "LOGOUT")

	// get returns a status code, closing the body so that no connection
	// (and its goroutines) outlives the test.
	get := func(path string) int {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the replica loaded: %v", code)
	}
	ready = nil
	if code := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz when ready: %v", code)
	}
	if code := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %v", code)
	}
}

// A login whose authorization identity is refused keeps nothing: the
// backend connection its password check opened (logged in as alice) is
// closed at once, not left in the pool for the session's next login.
func TestRefusedAuthzidClosesItsBackendConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	f := newFixture(t, func(o *Options) { o.Metrics = m })
	hs := httptest.NewServer(metrics.Handler(reg, func() error { return nil }))
	defer hs.Close()

	c := f.dial(t)
	// AUTHENTICATE PLAIN authzid=bob authcid=alice: alice is no admin.
	c.Expect("z1", "AUTHENTICATE PLAIN Ym9iAGFsaWNlAGFsaWNlcHc=", "NO")
	c.OK("z2", "CAPABILITY")
	got := scrape(t, hs.URL)
	if !got[`imapfront_backend_dials_total{backend="be-a",result="ok"} 1`] {
		t.Fatalf("the password check did not log in on be-a: %v", got)
	}
	if !got[`imapfront_backend_connections{backend="be-a"} 0`] {
		t.Fatalf("the connection logged in as alice is still open after the refused authzid: %v", got)
	}
	c.OK("z3", "LOGIN bob bobpw")
	c.OK("z4", "SELECT INBOX")
}
