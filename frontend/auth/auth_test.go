package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"
)

func mustLine(t *testing.T, user, pw string) string {
	t.Helper()
	l, err := HashLine(user, pw, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPasswd(t *testing.T) {
	file := "# demo users\n\n" + mustLine(t, "alice", "alicepw") + "\n  " + mustLine(t, "bob", "bobpw") + "  \n"
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 2 {
		t.Fatalf("%d users", p.Len())
	}
	ctx := context.Background()
	tests := []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "alicepw", true},
		{"bob", "bobpw", true},
		{"alice", "bobpw", false},
		{"Alice", "alicepw", false},
		{"carol", "alicepw", false},
		{"alice", "", false},
		{"alice", strings.Repeat("x", 100), false},
	}
	for _, tt := range tests {
		got, err := p.Authenticate(ctx, tt.user, tt.pw)
		if tt.ok && (err != nil || got != tt.user) {
			t.Errorf("%s: %q %v", tt.user, got, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s/%s: err = %v, want invalid credentials", tt.user, tt.pw, err)
		}
		if err != nil && strings.Contains(err.Error(), tt.pw) && tt.pw != "" {
			t.Errorf("error %q carries the password", err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Authenticate(cctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestPasswdUnknownUserCostsAComparison checks that an unknown user is
// compared against a hash of the file's cost, not answered at once.
func TestPasswdUnknownUserCostsAComparison(t *testing.T) {
	p, err := ParsePasswd(strings.NewReader(mustLine(t, "alice", "pw")), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(p.dummy); err != nil || cost != bcrypt.MinCost {
		t.Fatalf("dummy hash cost %d %v", cost, err)
	}
}

func TestParsePasswdErrors(t *testing.T) {
	good := mustLine(t, "alice", "pw")
	tests := []struct{ in, want string }{
		{"alice\n", "f:1: expected user:bcrypt-hash"},
		{"# c\nalice:plaintext\n", "f:2: user \"alice\": not a bcrypt hash"},
		{good + "\n" + good + "\n", "f:2: user \"alice\" listed twice"},
		{":" + strings.SplitN(good, ":", 2)[1] + "\n", "f:1: invalid user name"},
		{"a b:" + strings.SplitN(good, ":", 2)[1] + "\n", "f:1: invalid user name"},
	}
	for _, tt := range tests {
		_, err := ParsePasswd(strings.NewReader(tt.in), "f")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := LoadPasswd(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "passwd file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestHashLine(t *testing.T) {
	l := mustLine(t, "alice", "s3cret")
	user, hash, _ := strings.Cut(l, ":")
	if user != "alice" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")) != nil {
		t.Fatalf("line %q", l)
	}
	for _, bad := range []string{"", "a:b", "a b", "#a", "a\nb"} {
		if _, err := HashLine(bad, "pw", bcrypt.MinCost); err == nil {
			t.Errorf("HashLine(%q) accepted", bad)
		}
	}
}

func TestAuthorize(t *testing.T) {
	admins := Admins("proxy")
	tests := []struct {
		user, authzid, want string
		ok                  bool
	}{
		{"alice", "", "alice", true},
		{"alice", "alice", "alice", true},
		{"alice", "bob", "", false},
		{"proxy", "bob", "bob", true},
		{"proxy", "", "proxy", true},
		{"proxy", "b\r\nob", "", false},
	}
	for _, tt := range tests {
		got, err := Authorize(tt.user, tt.authzid, admins)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("%s as %q: %q %v", tt.user, tt.authzid, got, err)
		}
		if err != nil && !errors.Is(err, ErrNotAuthorized) {
			t.Errorf("err %v", err)
		}
	}
	if _, err := Authorize("proxy", "bob", nil); err == nil {
		t.Error("nil isProxyAdmin allowed proxying")
	}
}

// runSASL drives a go-sasl client against a server the way an IMAP
// session does.
func runSASL(t *testing.T, c sasl.Client, s sasl.Server, withIR bool) error {
	t.Helper()
	_, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	resp := ir
	if !withIR {
		// Without SASL-IR the server starts with an empty challenge
		// ("+ ") and the client answers with its initial response.
		chal, done, err := s.Next(nil)
		if err != nil || done || len(chal) != 0 {
			t.Fatalf("first challenge %q %v %v", chal, done, err)
		}
	}
	for i := 0; i < 5; i++ {
		chal, done, err := s.Next(resp)
		if err != nil || done {
			return err
		}
		if resp, err = c.Next(chal); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("exchange did not end")
	return nil
}

func TestSASLServers(t *testing.T) {
	var got Credentials
	record := func(c Credentials) error { got = c; return nil }
	for _, withIR := range []bool{true, false} {
		s, _ := NewServer("plain", record)
		if err := runSASL(t, sasl.NewPlainClient("bob", "proxy", "proxypw"), s, withIR); err != nil {
			t.Fatal(err)
		}
		if got != (Credentials{Authzid: "bob", Authcid: "proxy", Password: "proxypw"}) {
			t.Fatalf("PLAIN IR=%v: %v", withIR, got)
		}
		got = Credentials{}
		s, _ = NewServer("LOGIN", record)
		if withIR {
			if err := runSASL(t, sasl.NewLoginClient("alice", "alicepw"), s, true); err != nil {
				t.Fatal(err)
			}
		} else {
			// go-sasl's LOGIN client only works with an initial response;
			// script the classic exchange (Thunderbird, Outlook).
			for _, step := range []struct{ resp, chal string }{{"", "Username:"}, {"alice", "Password:"}} {
				var resp []byte
				if step.resp != "" {
					resp = []byte(step.resp)
				}
				chal, done, err := s.Next(resp)
				if err != nil || done || string(chal) != step.chal {
					t.Fatalf("LOGIN: %q %v %v", chal, done, err)
				}
			}
			if _, done, err := s.Next([]byte("alicepw")); !done || err != nil {
				t.Fatal(done, err)
			}
		}
		if got != (Credentials{Authcid: "alice", Password: "alicepw"}) {
			t.Fatalf("LOGIN IR=%v: %v", withIR, got)
		}
	}
	refuse := errors.New("refused")
	s := NewLoginServer(func(Credentials) error { return refuse })
	if err := runSASL(t, sasl.NewLoginClient("a", "b"), s, true); !errors.Is(err, refuse) {
		t.Fatal(err)
	}
	if _, _, err := s.Next([]byte("more")); !errors.Is(err, ErrUnexpectedResponse) {
		t.Fatal(err)
	}
	if _, err := NewServer("GSSAPI", record); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Fatal(err)
	}
	// Malformed PLAIN messages are errors, not panics.
	for _, msg := range [][]byte{{}, []byte("no-nuls"), []byte("\x00only-one")} {
		s, _ := NewServer("PLAIN", record)
		if _, _, err := s.Next(msg); err == nil {
			t.Errorf("PLAIN %q accepted", msg)
		}
	}
}

func TestCredentialsNeverShowPassword(t *testing.T) {
	c := Credentials{Authzid: "bob", Authcid: "proxy", Password: "hunter2"}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("login", "creds", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login", "creds", c)
	out := buf.String() + fmt.Sprint(c) + fmt.Sprintf("%v %+v %s", c, c, c)
	if strings.Contains(out, "hunter2") {
		t.Fatalf("password shown: %s", out)
	}
	if !strings.Contains(buf.String(), "proxy") {
		t.Fatalf("authcid missing: %s", buf.String())
	}
}

func TestDelayer(t *testing.T) {
	var slept []time.Duration
	d := &Delayer{Base: time.Second, Max: 10 * time.Second, Sleep: func(ctx context.Context, dur time.Duration) error {
		slept = append(slept, dur)
		return ctx.Err()
	}}
	ctx := context.Background()
	for f := 0; f <= 6; f++ {
		if err := d.Delay(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	if len(slept) != len(want) {
		t.Fatalf("slept %v", slept)
	}
	for i := range want {
		if slept[i] != want[i]*time.Second {
			t.Fatalf("slept %v", slept)
		}
	}
	if got := d.Duration(1 << 30); got != 10*time.Second {
		t.Fatal(got)
	}
	if got := (&Delayer{}).Duration(100); got != DefaultDelayMax {
		t.Fatal(got)
	}
}

// TestDelayCancelled uses the real timer path with a long delay and a
// cancelled context: Delay must return at once with the context's error.
func TestDelayCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := &Delayer{Base: time.Hour, Max: time.Hour}
	if err := d.Delay(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestPasswdFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte(mustLine(t, "alice", "old")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := NewPasswdFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.Authenticate(ctx, "alice", "old"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte(mustLine(t, "alice", "new")+"\n"), 0o600)
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Authenticate(ctx, "alice", "old"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal("old password still accepted")
	}
	os.WriteFile(path, []byte("broken\n"), 0o600)
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("broken file: %v", err)
	}
	if _, err := f.Authenticate(ctx, "alice", "new"); err != nil {
		t.Fatal("a failed reload dropped the users:", err)
	}
}
