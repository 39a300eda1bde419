package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/mover"
	"github.com/imapfront/imapfront/mupdatec"
)

// moveOptions are the flags of "mupdatectl move".
type moveOptions struct {
	to         string
	user       string
	names      []string
	dryRun     bool
	keepSource bool
	rounds     int
	grace      time.Duration
	verbose    bool
	rename     string
	strays     bool
	configFile string
	specs      []string
	cfg        *fileConfig
	backends   map[string]*mover.Backend
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func moveUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: mupdatectl [flags] move [-dry-run] [-keep-source] [-rename NEWNAME] (-config FILE | -backend SPEC...) -to SERVER[!PARTITION] (-user USER | NAME...)
Moves mailboxes (internal names, each with its children) or a user's whole account (-user: INBOX,
every folder and the subscriptions) to the backend SERVER, online: copy while the source serves,
freeze (DEACTIVATE), final delta, verify every message (size, SHA-256, flags, internal date) and
the ACL, switch (ACTIVATE at SERVER), carry over late writes, then delete the source. Until the
switch the source stays authoritative; an interrupted move is finished (or its freeze undone) by
running it again.
Backends come from an imapfront configuration file (-config: its [[backend]] tables, and its
[mupdate] table unless -server is given) or from -backend flags:
  -backend 'SERVER[,addr=HOST:PORT][,tls=none|starttls|tls][,ca=FILE][,proxy-user=NAME][,sep=/|.]
            [,namespace=murder|personal][,mode=self|front][,password-env=VAR]'
(defaults: addr=SERVER, tls=starttls, sep=/, namespace=murder, mode=self: a Cyrus Murder backend;
a Dovecot server is sep=.,namespace=personal,mode=front). The proxy user's password of -backend
flags comes from the environment variable VAR (default MUPDATECTL_BACKEND_PASSWORD) or a prompt.
flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func parseMove(e *env, args []string) (*moveOptions, int) {
	o := &moveOptions{}
	fs := flag.NewFlagSet("move", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.to, "to", "", "destination `SERVER[!PARTITION]` (an MUPDATE server name)")
	fs.StringVar(&o.user, "user", "", "move the whole account of `USER`")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan without changing anything")
	fs.BoolVar(&o.keepSource, "keep-source", false, "leave the source mailboxes in place after the switch")
	fs.IntVar(&o.rounds, "rounds", 3, "online copy rounds at most before the freeze")
	fs.DurationVar(&o.grace, "grace", 10*time.Second, "wait after the switch before finishing the sources, for the front ends' replicas to follow")
	fs.BoolVar(&o.verbose, "v", false, "log each step of each mailbox")
	fs.BoolVar(&o.strays, "discard-strays", false, "expunge destination messages that are not copies of the source's (else the move stops)")
	fs.StringVar(&o.rename, "rename", "", "give the one NAME (and its children) the internal name `NEWNAME` at the destination (RENAME across servers)")
	fs.StringVar(&o.configFile, "config", "", "imapfront configuration `file` to take the backends from")
	fs.Var((*multiFlag)(&o.specs), "backend", "a backend `SPEC` (repeatable; see above)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			moveUsage(e.stdout, fs)
			return nil, exitOK
		}
		fmt.Fprintf(e.stderr, "mupdatectl: move: %v\n", err)
		moveUsage(e.stderr, fs)
		return nil, exitUsage
	}
	o.names = fs.Args()
	bad := func(msg string) (*moveOptions, int) {
		fmt.Fprintf(e.stderr, "mupdatectl: move: %s\n", msg)
		moveUsage(e.stderr, fs)
		return nil, exitUsage
	}
	switch {
	case o.to == "":
		return bad("-to is required")
	case o.user == "" && len(o.names) == 0:
		return bad("name the mailboxes to move, or -user")
	case o.configFile == "" && len(o.specs) == 0:
		return bad("give the backends with -config or -backend")
	case o.rename != "" && (len(o.names) != 1 || o.user != "" || o.keepSource):
		return bad("-rename takes exactly one NAME, and neither -user nor -keep-source")
	}
	o.backends = map[string]*mover.Backend{}
	if o.configFile != "" {
		cfg, err := readFileConfig(o.configFile)
		if err != nil {
			return bad(err.Error())
		}
		o.cfg = cfg
		for _, bc := range cfg.Backends {
			b, err := bc.backend()
			if err != nil {
				return bad(fmt.Sprintf("%s: backend %s: %v", o.configFile, bc.Server, err))
			}
			o.backends[b.Server] = b
		}
	}
	if len(o.specs) > 0 {
		for _, s := range o.specs {
			bc, err := parseBackendSpec(s)
			if err != nil {
				return bad(err.Error())
			}
			pw := e.getenv(bc.passwordEnv)
			if bc.ProxyPassword = pw; pw == "" {
				if pw, err = e.prompt(fmt.Sprintf("Password of %s at the backends: ", bc.ProxyUser)); err != nil {
					return bad("no backend password: set MUPDATECTL_BACKEND_PASSWORD or run on a terminal")
				}
				bc.ProxyPassword = pw
			}
			b, err := bc.backend()
			if err != nil {
				return bad(fmt.Sprintf("-backend %s: %v", s, err))
			}
			o.backends[b.Server] = b
		}
	}
	server, _, _ := strings.Cut(o.to, "!")
	if o.backends[server] == nil {
		return bad(fmt.Sprintf("-to %s: not one of the backends", server))
	}
	return o, exitOK
}

// fileConfig is the part of imapfront's configuration file the tool uses.
type fileConfig struct {
	MUPDATE struct {
		Server       string `toml:"server"`
		User         string `toml:"user"`
		Password     string `toml:"password"`
		PasswordFile string `toml:"password_file"`
		TLS          string `toml:"tls"`
		CA           string `toml:"ca"`
	} `toml:"mupdate"`
	Backends []backendConfig `toml:"backend"`
}

// backendConfig mirrors imapfront's [[backend]] table.
type backendConfig struct {
	Server             string `toml:"server"`
	Address            string `toml:"address"`
	TLS                string `toml:"tls"`
	CA                 string `toml:"ca"`
	ServerName         string `toml:"server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	ProxyUser          string `toml:"proxy_user"`
	ProxyPassword      string `toml:"proxy_password"`
	Separator          string `toml:"separator"`
	Namespace          string `toml:"namespace"`
	MUPDATEMode        string `toml:"mupdate_mode"`
	// passwordEnv names the variable with the proxy password (-backend).
	passwordEnv string
}

func readFileConfig(path string) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg fileConfig
	if err := toml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cfg.Backends) == 0 {
		return nil, fmt.Errorf("%s: no [[backend]]", path)
	}
	return &cfg, nil
}

// parseBackendSpec reads "SERVER,key=value,...".
func parseBackendSpec(s string) (*backendConfig, error) {
	parts := strings.Split(s, ",")
	bc := &backendConfig{Server: parts[0], passwordEnv: "MUPDATECTL_BACKEND_PASSWORD"}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("-backend %s: %q is not key=value", s, p)
		}
		switch k {
		case "addr":
			bc.Address = v
		case "tls":
			bc.TLS = v
		case "ca":
			bc.CA = v
		case "server-name":
			bc.ServerName = v
		case "proxy-user":
			bc.ProxyUser = v
		case "sep":
			bc.Separator = v
		case "namespace":
			bc.Namespace = v
		case "mode":
			bc.MUPDATEMode = v
		case "password-env":
			bc.passwordEnv = v
		default:
			return nil, fmt.Errorf("-backend %s: unknown key %q", s, k)
		}
	}
	return bc, nil
}

// backend turns a configuration into a mover.Backend, with imapfront's defaults.
func (bc *backendConfig) backend() (*mover.Backend, error) {
	if bc.Server == "" {
		return nil, errors.New("no server name")
	}
	if bc.ProxyUser == "" {
		return nil, errors.New("a proxy user is required (proxy_user, proxy-user=)")
	}
	b := &mover.Backend{Server: bc.Server, ProxyUser: bc.ProxyUser, ProxyPassword: bc.ProxyPassword, Separator: '/'}
	b.Dial.Addr = bc.Address
	if b.Dial.Addr == "" {
		b.Dial.Addr = bc.Server
	}
	switch bc.TLS {
	case "", "starttls":
		b.Dial.TLS = backend.TLSStartTLS
	case "tls":
		b.Dial.TLS = backend.TLSImplicit
	case "none":
		b.Dial.TLS = backend.TLSNone
	default:
		return nil, fmt.Errorf("tls %q: want none, starttls or tls", bc.TLS)
	}
	if b.Dial.TLS != backend.TLSNone {
		conf, err := tlsConfig(bc.CA)
		if err != nil {
			return nil, err
		}
		conf.ServerName = bc.ServerName
		if conf.ServerName == "" {
			if host, _, err := net.SplitHostPort(b.Dial.Addr); err == nil {
				conf.ServerName = host
			}
		}
		conf.InsecureSkipVerify = bc.InsecureSkipVerify
		b.Dial.TLSConfig = conf
	}
	switch bc.Separator {
	case "", "/":
	case ".":
		b.Separator = '.'
	default:
		return nil, fmt.Errorf("separator %q: want / or .", bc.Separator)
	}
	switch bc.Namespace {
	case "", "murder":
	case "personal":
		b.Personal = true
	default:
		return nil, fmt.Errorf("namespace %q: want murder or personal", bc.Namespace)
	}
	switch bc.MUPDATEMode {
	case "", "self":
		b.SelfMode = true
	case "front":
	default:
		return nil, fmt.Errorf("mupdate mode %q: want self or front", bc.MUPDATEMode)
	}
	return b, nil
}

// runMove is "mupdatectl move".
func runMove(ctx context.Context, e *env, dial func(context.Context) (*mupdatec.Conn, error), o *moveOptions) int {
	last := time.Now() // first line after 2 s, when the rate means something
	progress := func(p mover.Progress) {
		if time.Since(last) < 2*time.Second && p.Messages != p.TotalMessages {
			return
		}
		last = time.Now()
		fmt.Fprintf(e.stderr, "mupdatectl: move: %s: %d/%d messages, %s/%s, %s\n",
			p.Mailbox, p.Messages, p.TotalMessages, mb(p.Bytes), mb(p.TotalBytes), rate(p.Messages, p.Bytes, p.Elapsed, p.TotalMessages))
	}
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	m := mover.New(mover.Options{
		Logger: logger, Master: dial, Backends: o.backends, KeepSource: o.keepSource, DiscardStrays: o.strays, Rounds: o.rounds, Grace: o.grace, Progress: progress,
	})
	plan, err := m.Plan(ctx, mover.Request{Names: o.names, User: o.user, To: o.to, NewName: o.rename})
	if err != nil {
		fmt.Fprintf(e.stderr, "mupdatectl: move: %v\n", err)
		return exitRefused
	}
	for _, mb := range plan.Mailboxes {
		from := mb.SourceLocation
		if mb.Source == nil {
			from = "(no source left)"
		}
		name := mb.Name
		if mb.DestName != mb.Name {
			name += " -> " + mb.DestName
		}
		fmt.Fprintf(e.stdout, "MOVE\t%s\t%s\t%s\t%d messages\t%d bytes\t%s\n", name, from, plan.DestLocation, mb.Messages, mb.Bytes, mb.State)
	}
	if o.dryRun {
		fmt.Fprintf(e.stderr, "mupdatectl: move: dry run: nothing changed\n")
		return exitOK
	}
	rep, err := m.Run(ctx, plan)
	summary := fmt.Sprintf("%d mailboxes switched, %d sources deleted, %d messages (%s) copied in %s (%s), longest freeze %s",
		len(rep.Moved), len(rep.Deleted), rep.Messages, mb(rep.Bytes), rep.Elapsed.Round(time.Millisecond),
		rate(rep.Messages, rep.Bytes, rep.Elapsed, rep.Messages), rep.MaxFreeze.Round(time.Millisecond))
	if err != nil {
		fmt.Fprintf(e.stderr, "mupdatectl: move: %v\nmupdatectl: move: %s; run the same move again to finish it\n", err, summary)
		return exitRefused
	}
	fmt.Fprintf(e.stderr, "mupdatectl: move: done: %s\n", summary)
	return exitOK
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func rate(msgs int, bytes int64, d time.Duration, total int) string {
	s := d.Seconds()
	if s <= 0 {
		return "-"
	}
	out := fmt.Sprintf("%.0f msg/s, %.2f MB/s", float64(msgs)/s, float64(bytes)/1e6/s)
	if msgs > 0 && total > msgs {
		eta := time.Duration(float64(d) * float64(total-msgs) / float64(msgs))
		out += ", ETA " + eta.Round(time.Second).String()
	}
	return out
}
