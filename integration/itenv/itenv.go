// Package itenv reads the environment that integration/run.sh exports for the
// real-server tests (Cyrus Murder, Dovecot, MIT Kerberos) and describes the
// users, mailboxes and messages the harness seeds.
//
// A test calls [Load]; when a variable is missing, the test fails with a
// message that names every missing variable and the server it stands for. It
// never skips: a real-server test that cannot reach its server is a failure.
//
// Variables (all prefixed IMAPFRONT_IT_; see integration/README.md):
//
//	LAB                      the harness's temporary directory
//	MUPDATE                  Cyrus MUPDATE master, host:port (PLAIN/LOGIN)
//	MUPDATE_USER, _PASS      an MUPDATE admin (mupdateuser)
//	MUPDATE_PIDFILE          pid file of the Cyrus master process that runs the MUPDATE master
//	MUPDATE_GSSAPI           a second MUPDATE master that accepts only GSSAPI, host:port
//	MUPDATE_GSSAPI_HOST      host name for its service principal (mupdate/<host>)
//	CYRUS_BE1, CYRUS_BE2     Cyrus Murder backends, host:port (= their servernames)
//	CYRUS_FE                 Cyrus's own Murder front end, host:port
//	CYRUS_FE_MUPDATE         that front end's MUPDATE slave, host:port
//	CYRUS_ADMIN_USER, _PASS  Cyrus admin and proxy user (cyrus)
//	CYRUS_LOG                file that receives Cyrus's syslog (may be empty)
//	DOVECOT                  Dovecot, host:port (plain IMAP with STARTTLS)
//	DOVECOT_IMAPS            Dovecot, host:port (implicit TLS)
//	DOVECOT_CA               PEM file of the CA that signed Dovecot's certificate
//	DOVECOT_MASTER_USER, _PASS  Dovecot master user (authcid for proxy logins)
//	DOVECOT_LOG              Dovecot's log file
//	KDC                      MIT KDC, host:port (UDP and TCP)
//	KRB5_CONFIG              krb5.conf of the test realm
//	KRB5_REALM               the realm (IMAPFRONT.TEST)
//	KRB5_SERVICES_KEYTAB     keytab of imap/... and mupdate/... services
//	KRB5_CLIENTS_KEYTAB      keytab of the user principals
//	USERS                    "name:password:home ..." users that exist on every backend
//	LOCAL_USERS              "name:password:home ..." users that exist only on their home backend
package itenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Prefix starts the name of every variable the harness exports.
const Prefix = "IMAPFRONT_IT_"

// Kind says which server software a backend runs.
type Kind string

// Backend kinds.
const (
	Cyrus   Kind = "cyrus"
	Dovecot Kind = "dovecot"
)

// Backend is one IMAP backend of the lab.
type Backend struct {
	Name string // "be1", "be2", "dovecot"
	Addr string // host:port; for Cyrus also its servername (MUPDATE location host)
	Kind Kind
}

// User is a test user and its home backend (the one holding its INBOX).
type User struct {
	Name     string
	Password string
	Home     string // host:port of the home backend
	// OnlyHome is set for users that exist only on their home backend;
	// the others can authenticate on every backend.
	OnlyHome bool
}

// Env is the harness environment. Field comments give the variable names
// without the IMAPFRONT_IT_ prefix.
type Env struct {
	Lab string // LAB

	MUPDATE        string // MUPDATE
	MUPDATEUser    string // MUPDATE_USER
	MUPDATEPass    string // MUPDATE_PASS
	MUPDATEPIDFile string // MUPDATE_PIDFILE

	MUPDATEGSSAPI     string // MUPDATE_GSSAPI
	MUPDATEGSSAPIHost string // MUPDATE_GSSAPI_HOST

	CyrusBE1       string // CYRUS_BE1
	CyrusBE2       string // CYRUS_BE2
	CyrusFE        string // CYRUS_FE
	CyrusFEMUPDATE string // CYRUS_FE_MUPDATE
	CyrusAdminUser string // CYRUS_ADMIN_USER
	CyrusAdminPass string // CYRUS_ADMIN_PASS
	CyrusLog       string // CYRUS_LOG (optional: empty when the system's syslog has Cyrus's logs)

	Dovecot           string // DOVECOT
	DovecotIMAPS      string // DOVECOT_IMAPS
	DovecotCA         string // DOVECOT_CA
	DovecotMasterUser string // DOVECOT_MASTER_USER
	DovecotMasterPass string // DOVECOT_MASTER_PASS
	DovecotLog        string // DOVECOT_LOG

	KDC                string // KDC
	KRB5Config         string // KRB5_CONFIG
	KRB5Realm          string // KRB5_REALM
	KRB5ServicesKeytab string // KRB5_SERVICES_KEYTAB
	KRB5ClientsKeytab  string // KRB5_CLIENTS_KEYTAB

	Users []User // USERS, then LOCAL_USERS
}

// variable binds one variable to its field and says what it stands for.
type variable struct {
	name     string
	what     string
	optional bool
	hostPort bool // the value must be host:port
	dst      func(*Env) *string
}

func variables() []variable {
	return []variable{
		{name: "LAB", what: "harness directory", dst: func(e *Env) *string { return &e.Lab }},
		{name: "MUPDATE", hostPort: true, what: "Cyrus MUPDATE master", dst: func(e *Env) *string { return &e.MUPDATE }},
		{name: "MUPDATE_USER", what: "MUPDATE admin user", dst: func(e *Env) *string { return &e.MUPDATEUser }},
		{name: "MUPDATE_PASS", what: "MUPDATE admin password", dst: func(e *Env) *string { return &e.MUPDATEPass }},
		{name: "MUPDATE_PIDFILE", what: "pid file of the MUPDATE master's Cyrus master process", dst: func(e *Env) *string { return &e.MUPDATEPIDFile }},
		{name: "MUPDATE_GSSAPI", hostPort: true, what: "Cyrus MUPDATE master with GSSAPI", dst: func(e *Env) *string { return &e.MUPDATEGSSAPI }},
		{name: "MUPDATE_GSSAPI_HOST", what: "host of the GSSAPI master's service principal", dst: func(e *Env) *string { return &e.MUPDATEGSSAPIHost }},
		{name: "CYRUS_BE1", hostPort: true, what: "Cyrus backend be1", dst: func(e *Env) *string { return &e.CyrusBE1 }},
		{name: "CYRUS_BE2", hostPort: true, what: "Cyrus backend be2", dst: func(e *Env) *string { return &e.CyrusBE2 }},
		{name: "CYRUS_FE", hostPort: true, what: "Cyrus front end", dst: func(e *Env) *string { return &e.CyrusFE }},
		{name: "CYRUS_FE_MUPDATE", hostPort: true, what: "Cyrus front end's MUPDATE slave", dst: func(e *Env) *string { return &e.CyrusFEMUPDATE }},
		{name: "CYRUS_ADMIN_USER", what: "Cyrus admin user", dst: func(e *Env) *string { return &e.CyrusAdminUser }},
		{name: "CYRUS_ADMIN_PASS", what: "Cyrus admin password", dst: func(e *Env) *string { return &e.CyrusAdminPass }},
		{name: "CYRUS_LOG", what: "Cyrus syslog file", optional: true, dst: func(e *Env) *string { return &e.CyrusLog }},
		{name: "DOVECOT", hostPort: true, what: "Dovecot (STARTTLS)", dst: func(e *Env) *string { return &e.Dovecot }},
		{name: "DOVECOT_IMAPS", hostPort: true, what: "Dovecot (IMAPS)", dst: func(e *Env) *string { return &e.DovecotIMAPS }},
		{name: "DOVECOT_CA", what: "Dovecot's CA certificate", dst: func(e *Env) *string { return &e.DovecotCA }},
		{name: "DOVECOT_MASTER_USER", what: "Dovecot master user", dst: func(e *Env) *string { return &e.DovecotMasterUser }},
		{name: "DOVECOT_MASTER_PASS", what: "Dovecot master password", dst: func(e *Env) *string { return &e.DovecotMasterPass }},
		{name: "DOVECOT_LOG", what: "Dovecot log file", dst: func(e *Env) *string { return &e.DovecotLog }},
		{name: "KDC", hostPort: true, what: "MIT KDC", dst: func(e *Env) *string { return &e.KDC }},
		{name: "KRB5_CONFIG", what: "krb5.conf of the test realm", dst: func(e *Env) *string { return &e.KRB5Config }},
		{name: "KRB5_REALM", what: "Kerberos realm", dst: func(e *Env) *string { return &e.KRB5Realm }},
		{name: "KRB5_SERVICES_KEYTAB", what: "services keytab", dst: func(e *Env) *string { return &e.KRB5ServicesKeytab }},
		{name: "KRB5_CLIENTS_KEYTAB", what: "clients keytab", dst: func(e *Env) *string { return &e.KRB5ClientsKeytab }},
	}
}

// Parse builds an Env from getenv (os.Getenv, or a map lookup in tests). The
// error names every missing or malformed variable and the server it stands for.
func Parse(getenv func(string) string) (Env, error) {
	var (
		e    Env
		errs []string
	)
	for _, v := range variables() {
		val := getenv(Prefix + v.name)
		if val == "" && !v.optional {
			errs = append(errs, fmt.Sprintf("%s%s (%s) is not set", Prefix, v.name, v.what))
			continue
		}
		if val != "" && v.hostPort {
			if _, _, err := net.SplitHostPort(val); err != nil {
				errs = append(errs, fmt.Sprintf("%s%s (%s) = %q is not host:port", Prefix, v.name, v.what, val))
				continue
			}
		}
		*v.dst(&e) = val
	}
	for _, list := range []struct {
		name     string
		onlyHome bool
	}{{"USERS", false}, {"LOCAL_USERS", true}} {
		val := getenv(Prefix + list.name)
		if val == "" {
			errs = append(errs, fmt.Sprintf("%s%s (test users, name:password:home) is not set", Prefix, list.name))
			continue
		}
		users, err := parseUsers(val, list.onlyHome)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s%s: %v", Prefix, list.name, err))
			continue
		}
		e.Users = append(e.Users, users...)
	}
	if len(errs) > 0 {
		return Env{}, errors.New("integration environment incomplete (run the tests through integration/run.sh, or source <lab>/env.sh after 'run.sh up'):\n\t" +
			strings.Join(errs, "\n\t"))
	}
	return e, nil
}

// parseUsers reads "name:password:host:port ..." (space separated).
func parseUsers(s string, onlyHome bool) ([]User, error) {
	var users []User
	for _, f := range strings.Fields(s) {
		parts := strings.SplitN(f, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("%q is not name:password:host:port", f)
		}
		if _, _, err := net.SplitHostPort(parts[2]); err != nil {
			return nil, fmt.Errorf("%q: home %q is not host:port", f, parts[2])
		}
		users = append(users, User{Name: parts[0], Password: parts[1], Home: parts[2], OnlyHome: onlyHome})
	}
	if len(users) == 0 {
		return nil, errors.New("no users")
	}
	return users, nil
}

// Load reads the environment of the process. When anything is missing it
// fails t (t.Fatal) naming each missing variable; it never skips.
func Load(t testing.TB) Env {
	t.Helper()
	e, err := Parse(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Backends returns the lab's IMAP backends: be1, be2 (Cyrus) and dovecot.
func (e Env) Backends() []Backend {
	return []Backend{
		{Name: "be1", Addr: e.CyrusBE1, Kind: Cyrus},
		{Name: "be2", Addr: e.CyrusBE2, Kind: Cyrus},
		{Name: "dovecot", Addr: e.Dovecot, Kind: Dovecot},
	}
}

// Backend returns the backend whose address is addr.
func (e Env) Backend(addr string) (Backend, bool) {
	for _, b := range e.Backends() {
		if b.Addr == addr {
			return b, true
		}
	}
	return Backend{}, false
}

// User returns the named test user.
func (e Env) User(name string) (User, bool) {
	for _, u := range e.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// MustUser returns the named test user or fails t.
func (e Env) MustUser(t testing.TB, name string) User {
	t.Helper()
	u, ok := e.User(name)
	if !ok {
		t.Fatalf("test user %q is not in %sUSERS or %sLOCAL_USERS", name, Prefix, Prefix)
	}
	return u
}

// CanLogin reports whether u exists on backend b.
func (u User) CanLogin(b Backend) bool { return !u.OnlyHome || u.Home == b.Addr }

// KRB5Env returns the variables MIT tools (kinit, klist, imtest) need to use
// the test realm instead of the system's /etc/krb5.conf.
func (e Env) KRB5Env() []string {
	return []string{"KRB5_CONFIG=" + e.KRB5Config}
}

// MUPDATEPID returns the pid of the mupdate process that serves the MUPDATE
// master: the child named "mupdate" of the Cyrus master whose pid file is
// MUPDATE_PIDFILE. Killing it drops every MUPDATE connection; the Cyrus
// master then starts a new one (a test of reconnection waits for the new
// banner).
func (e Env) MUPDATEPID() (int, error) {
	b, err := os.ReadFile(e.MUPDATEPIDFile)
	if err != nil {
		return 0, fmt.Errorf("MUPDATE master pid file: %w", err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("MUPDATE master pid file %s: %w", e.MUPDATEPIDFile, err)
	}
	kids, err := children(master)
	if err != nil {
		return 0, err
	}
	for _, pid := range kids {
		comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		if err == nil && string(bytes.TrimSpace(comm)) == "mupdate" {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("the Cyrus master (pid %d) has no mupdate child", master)
}

// KillMUPDATE sends sig (syscall.SIGKILL to simulate a crash) to the MUPDATE
// master's mupdate process and returns its pid.
func (e Env) KillMUPDATE(sig syscall.Signal) (int, error) {
	pid, err := e.MUPDATEPID()
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return 0, fmt.Errorf("kill %d: %w", pid, err)
	}
	return pid, nil
}

// children lists the child processes of pid (Linux /proc).
func children(pid int) ([]int, error) {
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	var kids []int
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids, nil
}

// KillCyrusIMAPD sends sig to every imapd process of the lab's Cyrus
// instance name ("be1", "be2": the processes started with
// <LAB>/cyrus/<name>/imapd.conf) and returns how many it signalled. With
// SIGKILL this is a backend crash as its clients see it. Cyrus's master
// then disables the service ("too many failures for service imap ...
// disabling until next SIGHUP"): ReviveCyrus brings it back, as an admin
// would.
func (e Env) KillCyrusIMAPD(name string, sig syscall.Signal) (int, error) {
	conf := []byte(filepath.Join(e.Lab, "cyrus", name, "imapd.conf"))
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
		if err != nil || string(bytes.TrimSpace(comm)) != "imapd" {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, conf) {
			continue
		}
		if err := syscall.Kill(pid, sig); err == nil {
			n++
		}
	}
	return n, nil
}

// ReviveCyrus sends SIGHUP to the Cyrus master of the lab's instance name
// (its pid file <LAB>/cyrus/<name>/run/master.pid): it re-reads its
// configuration and re-enables the services it disabled after their
// processes died.
func (e Env) ReviveCyrus(name string) error {
	b, err := os.ReadFile(filepath.Join(e.Lab, "cyrus", name, "run", "master.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("Cyrus %s master pid file: %w", name, err)
	}
	return syscall.Kill(pid, syscall.SIGHUP)
}
