package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// syncOptions are the flags of "mupdatectl sync".
type syncOptions struct {
	backend   string // IMAP address of the backend
	location  string // its MUPDATE location, server!partition
	proxyUser string // master/proxy user (authcid)
	usersFile string
	users     []string
	tlsMode   string // "", "tls", "starttls"
	caFile    string
	rights    string // owner's rights in the default ACL
	dryRun    bool
}

func syncUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: mupdatectl [flags] sync -backend HOST:PORT -location SERVER!PARTITION -proxy-user NAME [-users FILE] [-dry-run] [USER...]
Makes the master's entries of the given users at LOCATION equal to their mailboxes on the
backend (any IMAP server with a personal namespace, e.g. Dovecot): logs in as each user with
the proxy (master) user, LISTs, ACTIVATEs what is missing with the owner's default ACL and
DELETEs (FIND-guarded) the user's active entries at LOCATION that the backend no longer has.
Entries of a user that live at another location are reported as conflicts and left alone.
The proxy user's password comes from MUPDATECTL_BACKEND_PASSWORD or a prompt.
flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func parseSync(e *env, args []string) (*syncOptions, int) {
	o := &syncOptions{}
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.backend, "backend", "", "backend IMAP `host:port`")
	fs.StringVar(&o.location, "location", "", "the backend's MUPDATE `location` (server!partition)")
	fs.StringVar(&o.proxyUser, "proxy-user", "", "backend master/proxy user (SASL PLAIN authcid; authzid = each user)")
	fs.StringVar(&o.usersFile, "users", "", "`file` of user names, one per line (# comments)")
	fs.StringVar(&o.tlsMode, "backend-tls", "", "backend TLS: \"\", \"tls\" or \"starttls\"")
	fs.StringVar(&o.caFile, "backend-ca", "", "PEM `file` of CA certificates for the backend")
	fs.StringVar(&o.rights, "rights", "lrswipkxtecdan", "owner's rights in the ACL of activated entries")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the changes without writing them")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			syncUsage(e.stdout, fs)
			return nil, exitOK
		}
		fmt.Fprintf(e.stderr, "mupdatectl: sync: %v\n", err)
		syncUsage(e.stderr, fs)
		return nil, exitUsage
	}
	o.users = fs.Args()
	bad := func(msg string) (*syncOptions, int) {
		fmt.Fprintf(e.stderr, "mupdatectl: sync: %s\n", msg)
		syncUsage(e.stderr, fs)
		return nil, exitUsage
	}
	if o.backend == "" || o.location == "" || o.proxyUser == "" {
		return bad("-backend, -location and -proxy-user are required")
	}
	if !strings.Contains(o.location, "!") {
		return bad("-location must be server!partition")
	}
	if o.tlsMode != "" && o.tlsMode != "tls" && o.tlsMode != "starttls" {
		return bad("-backend-tls must be tls or starttls")
	}
	if _, err := router.ParseRights(o.rights); err != nil {
		return bad(err.Error())
	}
	if o.usersFile != "" {
		f, err := os.Open(o.usersFile)
		if err != nil {
			return bad(err.Error())
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				o.users = append(o.users, line)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return bad(err.Error())
		}
	}
	if len(o.users) == 0 {
		return bad("no users: give them as arguments or with -users")
	}
	return o, exitOK
}

// backendMailboxes logs in to the backend as user (through the proxy user)
// and returns the internal names of the user's mailboxes.
func backendMailboxes(ctx context.Context, o *syncOptions, tlsConf *tls.Config, password, user string) ([]string, error) {
	opts := &imapclient.Options{TLSConfig: tlsConf, Dialer: &net.Dialer{Timeout: 30 * time.Second}}
	var c *imapclient.Client
	var err error
	switch o.tlsMode {
	case "tls":
		c, err = imapclient.DialTLS(o.backend, opts)
	case "starttls":
		c, err = imapclient.DialStartTLS(o.backend, opts)
	default:
		c, err = imapclient.DialInsecure(o.backend, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", o.backend, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Authenticate(sasl.NewPlainClient(user, o.proxyUser, password)); err != nil {
		return nil, fmt.Errorf("backend login as %s via %s: %w", user, o.proxyUser, err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("backend LIST for %s: %w", user, err)
	}
	var names []string
	for _, d := range list {
		if slices.Contains(d.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(d.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		sep := byte('/')
		if d.Delim != 0 {
			sep = byte(d.Delim)
		}
		internal, err := router.FromPersonalName(user, router.EncodeUTF7(d.Mailbox), sep)
		if err != nil {
			return nil, fmt.Errorf("backend mailbox %q of %s: %w", d.Mailbox, user, err)
		}
		names = append(names, internal)
	}
	c.Logout().Wait()
	return names, nil
}

// runSync is "mupdatectl sync" on an authenticated MUPDATE connection.
func runSync(ctx context.Context, e *env, c *mupdatec.Conn, o *syncOptions, tlsConf *tls.Config, password string) int {
	// Every entry (to see conflicts), and this location's by owner.
	entries := map[string]mupdatec.Entry{}
	here := map[string][]mupdatec.Entry{}
	if err := c.ListFunc(ctx, "", func(en mupdatec.Entry) {
		entries[en.Name] = en
		if en.Location == o.location {
			owner, _ := router.SplitInternal(en.Name)
			here[owner] = append(here[owner], en)
		}
	}); err != nil {
		return failure(e, err)
	}
	would := ""
	if o.dryRun {
		would = "would "
	}
	var activated, deleted, unchanged, conflicts, failed int
	for _, user := range o.users {
		names, err := backendMailboxes(ctx, o, tlsConf, password, user)
		if err != nil {
			fmt.Fprintf(e.stderr, "mupdatectl: sync: %v\n", err)
			failed++
			continue
		}
		onBackend := map[string]bool{}
		acl := router.EncodeUTF7(user) + "\t" + o.rights + "\t"
		for _, name := range names {
			onBackend[name] = true
			en, ok := entries[name]
			switch {
			case ok && en.Location != o.location:
				fmt.Fprintf(e.stdout, "CONFLICT\t%s\tis at %s\n", name, en.Location)
				conflicts++
				continue
			case ok && !en.Reserved:
				unchanged++
				continue
			}
			fmt.Fprintf(e.stdout, "%sACTIVATE\t%s\t%s\t%s\n", would, name, o.location, readableACL(acl))
			activated++
			if !o.dryRun {
				if err := c.Activate(ctx, name, o.location, acl); err != nil {
					return failure(e, err)
				}
			}
		}
		mine := here[user]
		slices.SortFunc(mine, func(a, b mupdatec.Entry) int { return strings.Compare(a.Name, b.Name) })
		for _, en := range mine {
			if onBackend[en.Name] {
				continue
			}
			if en.Reserved {
				// Maybe a CREATE in progress: leave it to its writer.
				fmt.Fprintf(e.stdout, "SKIP\t%s\treserved, not on the backend\n", en.Name)
				continue
			}
			fmt.Fprintf(e.stdout, "%sDELETE\t%s\n", would, en.Name)
			deleted++
			if !o.dryRun {
				if err := c.SafeDelete(ctx, en.Name); err != nil && !errors.Is(err, mupdatec.ErrNotFound) {
					return failure(e, err)
				}
			}
		}
	}
	dry := ""
	if o.dryRun {
		dry = " (dry run: nothing written)"
	}
	fmt.Fprintf(e.stderr, "mupdatectl: sync: %d activated, %d deleted, %d unchanged, %d conflicts, %d users failed%s\n",
		activated, deleted, unchanged, conflicts, failed, dry)
	if conflicts > 0 || failed > 0 {
		return exitRefused
	}
	return exitOK
}
