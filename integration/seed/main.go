// Command seed creates the users' mailboxes, shared mailboxes, ACLs and
// messages of the integration lab (integration/run.sh runs it after every
// server is up). It reads the lab from the IMAPFRONT_IT_ variables (package
// itenv) and creates what itenv.SeededFolders, itenv.SeededShares and
// itenv.SeededMessages describe:
//
//   - on Cyrus, as the admin: CREATE "user/<name>" and its folders on the
//     user's home backend (the backend registers them in MUPDATE itself),
//     the shared mailboxes and their ACLs;
//   - on every home backend, as the user: APPEND the seeded messages to INBOX
//     (on Dovecot, the user creates its folders first);
//   - then it waits until Cyrus's front end sees every Cyrus user's INBOX
//     (its MUPDATE slave pulls changes from the master about every 5 s).
//
// It expects a freshly made lab and fails on anything that already exists.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapfront/imapfront/integration/itenv"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	env, err := itenv.Parse(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := &seeder{env: env, log: logger}
	if err := s.run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

// opTimeout bounds every connection's whole use.
const opTimeout = 30 * time.Second

type seeder struct {
	env itenv.Env
	log *slog.Logger
	tls *tls.Config
}

func (s *seeder) run(ctx context.Context) error {
	pem, err := os.ReadFile(s.env.DovecotCA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no certificate", s.env.DovecotCA)
	}
	s.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	if err := s.cyrusAdmin(ctx); err != nil {
		return err
	}
	for _, u := range s.env.Users {
		if err := s.userMail(ctx, u); err != nil {
			return fmt.Errorf("%s on %s: %w", u.Name, u.Home, err)
		}
	}
	return s.waitFrontEnd(ctx)
}

// dial connects to a backend and logs in; Dovecot is reached with STARTTLS.
func (s *seeder) dial(ctx context.Context, b itenv.Backend, user, pass string) (*imapclient.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(opTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	var c *imapclient.Client
	if b.Kind == itenv.Dovecot {
		c, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: s.tls})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
	} else {
		c = imapclient.New(conn, nil)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	return c, nil
}

func (s *seeder) backend(name string) (itenv.Backend, error) {
	for _, b := range s.env.Backends() {
		if b.Name == name {
			return b, nil
		}
	}
	return itenv.Backend{}, fmt.Errorf("no backend %q", name)
}

// cyrusAdmin creates the Cyrus users' mailboxes and the shared mailboxes as the
// admin (who sees the standard namespace: "user/alice/Sent", "shared").
func (s *seeder) cyrusAdmin(ctx context.Context) error {
	create := map[string][]string{} // backend name -> mailboxes, in order
	for _, u := range s.env.Users {
		b, ok := s.env.Backend(u.Home)
		if !ok || b.Kind != itenv.Cyrus {
			continue
		}
		create[b.Name] = append(create[b.Name], "user/"+u.Name)
		for _, f := range itenv.SeededFolders(u.Name) {
			create[b.Name] = append(create[b.Name], "user/"+u.Name+"/"+f)
		}
	}
	for _, sh := range itenv.SeededShares() {
		if !strings.HasPrefix(sh.Mailbox, "user/") {
			create[sh.Backend] = append(create[sh.Backend], sh.Mailbox)
		}
	}
	for _, name := range []string{"be1", "be2"} {
		b, err := s.backend(name)
		if err != nil {
			return err
		}
		c, err := s.dial(ctx, b, s.env.CyrusAdminUser, s.env.CyrusAdminPass)
		if err != nil {
			return fmt.Errorf("cyrus admin on %s: %w", name, err)
		}
		for _, mbox := range create[name] {
			if err := c.Create(mbox, nil).Wait(); err != nil {
				c.Close()
				return fmt.Errorf("%s: CREATE %q: %w", name, mbox, err)
			}
			s.log.Info("created", "backend", name, "mailbox", mbox)
		}
		for _, sh := range itenv.SeededShares() {
			if sh.Backend != name {
				continue
			}
			err := c.SetACL(sh.Mailbox, imap.RightsIdentifier(sh.Grantee), imap.RightModificationReplace,
				imap.RightSet(sh.Rights)).Wait()
			if err != nil {
				c.Close()
				return fmt.Errorf("%s: SETACL %q %s %s: %w", name, sh.Mailbox, sh.Grantee, sh.Rights, err)
			}
			s.log.Info("acl", "backend", name, "mailbox", sh.Mailbox, "grantee", sh.Grantee, "rights", sh.Rights)
		}
		if err := c.Logout().Wait(); err != nil {
			c.Close()
			return err
		}
		c.Close()
	}
	return nil
}

// userMail logs in as the user on its home backend, creates its folders there
// if the backend is Dovecot, and appends the seeded messages to INBOX.
func (s *seeder) userMail(ctx context.Context, u itenv.User) error {
	b, ok := s.env.Backend(u.Home)
	if !ok {
		return errors.New("home is not a backend of the lab")
	}
	c, err := s.dial(ctx, b, u.Name, u.Password)
	if err != nil {
		return err
	}
	defer c.Close()
	if b.Kind == itenv.Dovecot {
		for _, f := range itenv.SeededFolders(u.Name) {
			if err := c.Create(f, nil).Wait(); err != nil {
				return fmt.Errorf("CREATE %q: %w", f, err)
			}
		}
	}
	date := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for n := 1; n <= itenv.SeededMessages; n++ {
		msg := itenv.SeedMessage(u.Name, n, date.Add(time.Duration(n)*time.Minute))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
	}
	s.log.Info("seeded", "user", u.Name, "backend", b.Name, "messages", itenv.SeededMessages)
	return c.Logout().Wait()
}

// waitFrontEnd waits until Cyrus's front end serves every Cyrus user's INBOX
// with the seeded messages, polling until ctx ends.
func (s *seeder) waitFrontEnd(ctx context.Context) error {
	fe := itenv.Backend{Name: "fe", Addr: s.env.CyrusFE, Kind: itenv.Cyrus}
	for _, u := range s.env.Users {
		if b, ok := s.env.Backend(u.Home); !ok || b.Kind != itenv.Cyrus {
			continue
		}
		start := time.Now()
		var last error
		for attempt := 0; ; attempt++ {
			n, err := s.inboxCount(ctx, fe, u)
			if err == nil && n == itenv.SeededMessages {
				s.log.Info("front end sees INBOX", "user", u.Name, "after", time.Since(start).Round(time.Millisecond))
				break
			}
			if err == nil {
				err = fmt.Errorf("%d messages, want %d", n, itenv.SeededMessages)
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("Cyrus front end %s never served %s's INBOX: %v", fe.Addr, u.Name, last)
			case <-time.After(250 * time.Millisecond): // poll interval
			}
		}
	}
	return nil
}

func (s *seeder) inboxCount(ctx context.Context, b itenv.Backend, u itenv.User) (int, error) {
	c, err := s.dial(ctx, b, u.Name, u.Password)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	data, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return 0, err
	}
	_ = c.Logout().Wait()
	return int(data.NumMessages), nil
}
