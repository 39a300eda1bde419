package itenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func fullEnv() map[string]string {
	return map[string]string{
		"IMAPFRONT_IT_LAB":                  "/tmp/lab",
		"IMAPFRONT_IT_MUPDATE":              "127.0.0.1:13905",
		"IMAPFRONT_IT_MUPDATE_USER":         "mupdateuser",
		"IMAPFRONT_IT_MUPDATE_PASS":         "mupdatepw",
		"IMAPFRONT_IT_MUPDATE_PIDFILE":      "/tmp/lab/master.pid",
		"IMAPFRONT_IT_MUPDATE_GSSAPI":       "127.0.0.1:13915",
		"IMAPFRONT_IT_MUPDATE_GSSAPI_HOST":  "localhost",
		"IMAPFRONT_IT_CYRUS_BE1":            "127.0.0.1:12143",
		"IMAPFRONT_IT_CYRUS_BE2":            "127.0.0.1:12243",
		"IMAPFRONT_IT_CYRUS_FE":             "127.0.0.1:11143",
		"IMAPFRONT_IT_CYRUS_FE_MUPDATE":     "127.0.0.1:13906",
		"IMAPFRONT_IT_CYRUS_ADMIN_USER":     "cyrus",
		"IMAPFRONT_IT_CYRUS_ADMIN_PASS":     "cyruspw",
		"IMAPFRONT_IT_DOVECOT":              "127.0.0.1:14143",
		"IMAPFRONT_IT_DOVECOT_IMAPS":        "127.0.0.1:14993",
		"IMAPFRONT_IT_DOVECOT_CA":           "/tmp/lab/ca.pem",
		"IMAPFRONT_IT_DOVECOT_MASTER_USER":  "proxy",
		"IMAPFRONT_IT_DOVECOT_MASTER_PASS":  "proxypw",
		"IMAPFRONT_IT_DOVECOT_LOG":          "/tmp/lab/dovecot.log",
		"IMAPFRONT_IT_KDC":                  "127.0.0.1:18888",
		"IMAPFRONT_IT_KRB5_CONFIG":          "/tmp/lab/krb5.conf",
		"IMAPFRONT_IT_KRB5_REALM":           "IMAPFRONT.TEST",
		"IMAPFRONT_IT_KRB5_SERVICES_KEYTAB": "/tmp/lab/services.keytab",
		"IMAPFRONT_IT_KRB5_CLIENTS_KEYTAB":  "/tmp/lab/clients.keytab",
		"IMAPFRONT_IT_USERS":                "alice:alicepw:127.0.0.1:12143 bob:bobpw:127.0.0.1:12243 carol:carolpw:127.0.0.1:14143",
		"IMAPFRONT_IT_LOCAL_USERS":          "dave:davepw:127.0.0.1:14143",
	}
}

func lookup(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseComplete(t *testing.T) {
	e, err := Parse(lookup(fullEnv()))
	if err != nil {
		t.Fatal(err)
	}
	if e.MUPDATE != "127.0.0.1:13905" || e.DovecotMasterUser != "proxy" || e.KRB5Realm != "IMAPFRONT.TEST" || e.CyrusLog != "" {
		t.Errorf("fields: %+v", e)
	}
	want := []User{
		{Name: "alice", Password: "alicepw", Home: "127.0.0.1:12143"},
		{Name: "bob", Password: "bobpw", Home: "127.0.0.1:12243"},
		{Name: "carol", Password: "carolpw", Home: "127.0.0.1:14143"},
		{Name: "dave", Password: "davepw", Home: "127.0.0.1:14143", OnlyHome: true},
	}
	if fmt.Sprint(e.Users) != fmt.Sprint(want) {
		t.Errorf("users %+v, want %+v", e.Users, want)
	}
	dave, _ := e.User("dave")
	be1, _ := e.Backend("127.0.0.1:12143")
	dovecot, _ := e.Backend("127.0.0.1:14143")
	alice := e.MustUser(t, "alice")
	if dave.CanLogin(be1) || !dave.CanLogin(dovecot) || !alice.CanLogin(dovecot) || be1.Kind != Cyrus || dovecot.Kind != Dovecot {
		t.Errorf("CanLogin/Backend: dave@be1=%v dave@dovecot=%v alice@dovecot=%v %+v %+v",
			dave.CanLogin(be1), dave.CanLogin(dovecot), alice.CanLogin(dovecot), be1, dovecot)
	}
	if _, ok := e.User("nobody"); ok {
		t.Error("User(nobody) found")
	}
}

func TestParseNamesEveryProblem(t *testing.T) {
	env := fullEnv()
	delete(env, "IMAPFRONT_IT_KDC")
	delete(env, "IMAPFRONT_IT_DOVECOT_CA")
	env["IMAPFRONT_IT_CYRUS_BE2"] = "be2-without-port"
	env["IMAPFRONT_IT_USERS"] = "alice:alicepw"
	_, err := Parse(lookup(env))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"IMAPFRONT_IT_KDC (MIT KDC) is not set",
		"IMAPFRONT_IT_DOVECOT_CA (Dovecot's CA certificate) is not set",
		`IMAPFRONT_IT_CYRUS_BE2 (Cyrus backend be2) = "be2-without-port" is not host:port`,
		`IMAPFRONT_IT_USERS: "alice:alicepw" is not name:password:host:port`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "MUPDATE (") {
		t.Errorf("error names a variable that is set:\n%v", err)
	}
}

func TestParseUsers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"a:b:127.0.0.1:1", false},
		{"a:b:[::1]:143 c:d:h:2", false},
		{"a:pw:with:colon:1", true}, // home "with:colon:1" is not host:port
		{"a::h:1", true},
		{":b:h:1", true},
		{"a:b:h", true},
		{"   ", true},
	} {
		_, err := parseUsers(tc.in, false)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseUsers(%q): %v", tc.in, err)
		}
	}
}

// fatalRecorder records Fatal instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
}

func TestLoadFailsNamingMissing(t *testing.T) {
	for k := range fullEnv() {
		t.Setenv(k, "")
	}
	t.Setenv("IMAPFRONT_IT_MUPDATE", "127.0.0.1:13905")
	r := &fatalRecorder{TB: t}
	Load(r)
	if !strings.Contains(r.msg, "IMAPFRONT_IT_CYRUS_BE1 (Cyrus backend be1) is not set") ||
		strings.Contains(r.msg, "IMAPFRONT_IT_MUPDATE (") {
		t.Errorf("Load failure message:\n%s", r.msg)
	}
}

func TestFixture(t *testing.T) {
	if len(SeededFolders("alice")) == 0 || SeededFolders("dave") != nil {
		t.Error("SeededFolders")
	}
	msg := string(SeedMessage("alice", 2, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)))
	if !strings.Contains(msg, "\r\nSubject: "+SeedSubject("alice", 2)+"\r\n") || strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\n") {
		t.Errorf("message:\n%q", msg)
	}
}

// TestKillMUPDATE finds and kills the child named "mupdate" of the process in
// the pid file (here: this test process and a copy of cat named mupdate).
func TestKillMUPDATE(t *testing.T) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatalf("cat: %v", err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "mupdate")
	b, err := os.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "master.pid")
	e := Env{MUPDATEPIDFile: pidfile}
	if _, err := e.MUPDATEPID(); err == nil {
		t.Error("no error without a pid file")
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MUPDATEPID(); err == nil {
		t.Error("no error without a mupdate child")
	}

	cmd := exec.Command(fake)
	stdin, err := cmd.StdinPipe() // cat waits on it until killed
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid, err := e.KillMUPDATE(syscall.SIGKILL)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	if pid != cmd.Process.Pid {
		t.Errorf("killed pid %d, the child is %d", pid, cmd.Process.Pid)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want SIGKILL", err)
	}
}
