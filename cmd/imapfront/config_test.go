package main

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/imapfront/imapfront/frontend/auth"
)

func TestSampleConfigIsValidOnceRequiredKeysAreSet(t *testing.T) {
	data, err := os.ReadFile("../../imapfront.sample.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), `server = ""`, `server = "127.0.0.1:13905"`, 1)
	cfg, err := parseConfig([]byte(s))
	if err != nil {
		t.Fatalf("sample config: %v", err)
	}
	def := defaultConfig()
	if cfg.Limits != def.Limits || !reflect.DeepEqual(cfg.Listen, def.Listen) || cfg.Referral != def.Referral ||
		cfg.MUPDATE.Mode != def.MUPDATE.Mode || cfg.MUPDATE.ConfirmTTL != def.MUPDATE.ConfirmTTL ||
		cfg.MUPDATE.FindCacheSize != def.MUPDATE.FindCacheSize || cfg.MUPDATE.FindCacheTTL != def.MUPDATE.FindCacheTTL ||
		cfg.Moves != def.Moves {
		t.Errorf("sample config defaults differ from the built-in ones:\n%+v\n%+v", cfg.Limits, def.Limits)
	}
	if len(cfg.Backends) != 1 || cfg.Backends[0].Address != "127.0.0.1:12143" {
		t.Errorf("backend address default: %+v", cfg.Backends)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	base := "[mupdate]\nserver = \"m:1\"\n[[backend]]\nserver = \"b:1\"\n"
	tests := []struct {
		name, toml, want string
	}{
		{"unknown key", base + "[listen]\nimapp = \"x\"\n", "imapp"},
		{"bad policy", base + "[referrals]\npolicy = \"sometimes\"\n", "referrals.policy"},
		{"no backend", "[mupdate]\nserver = \"m:1\"\n", "backend"},
		{"no mupdate", "[[backend]]\nserver = \"b:1\"\n", "mupdate.server"},
		{"bad tls", base + "[[backend]]\nserver = \"c:1\"\ntls = \"maybe\"\n", "backend[1].tls"},
		{"dup backend", base + "[[backend]]\nserver = \"b:1\"\n", "configured twice"},
		{"bang in server", "[mupdate]\nserver = \"m:1\"\n[[backend]]\nserver = \"b!x\"\n", "backend[0].server"},
		{"bad duration", base + "[limits]\nidle_timeout = \"soon\"\n", "idle_timeout"},
		{"passwd without file", base + "[auth]\nmethod = \"passwd\"\n", "auth.passwd_file"},
		{"imaps without cert", base + "[listen]\nimaps = \"127.0.0.1:993\"\n", "tls"},
		{"unknown default backend", base + "[placement]\ndefault_backend = \"nope:1\"\n", "placement.default_backend"},
		{"half proxy creds", "[mupdate]\nserver = \"m:1\"\n[[backend]]\nserver = \"b:1\"\nproxy_user = \"p\"\n", "proxy_user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.toml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good.toml"
	os.WriteFile(good, []byte("[mupdate]\nserver = \"m:1\"\n[[backend]]\nserver = \"b:1\"\n"), 0o600)
	bad := dir + "/bad.toml"
	os.WriteFile(bad, []byte("[mupdate]\nserver = \"m:1\"\nbogus = 1\n"), 0o600)
	var out, errb strings.Builder
	if code := run([]string{"-check-config", good}, &out, &errb); code != 0 {
		t.Fatalf("good config: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"-check-config", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "bogus") {
		t.Fatalf("bad config: exit %d, %q", code, errb.String())
	}
}

func TestPasswdCommand(t *testing.T) {
	var out, errb strings.Builder
	if code := runWithInput([]string{"passwd", "alice"}, strings.NewReader("s3cret\n"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	p, err := auth.ParsePasswd(strings.NewReader(out.String()), "generated")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := p.Authenticate(context.Background(), "alice", "s3cret"); err != nil || u != "alice" {
		t.Fatalf("the generated line does not check the password: %v", err)
	}
	if code := runWithInput([]string{"passwd", "bad:name"}, strings.NewReader("x\n"), &out, &errb); code == 0 {
		t.Fatal("a user name with ':' was accepted")
	}
}
