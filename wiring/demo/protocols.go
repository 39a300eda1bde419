package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/lmtp"
	"github.com/imapfront/imapfront/lmtp/lmtptest"
	"github.com/imapfront/imapfront/pop3"
	"github.com/imapfront/imapfront/pop3/pop3test"
)

// protocols are the demo's LMTP and POP3 proxies and the in-memory LMTP and
// POP3 services beside each in-memory backend.
type protocols struct {
	lmtp  *lmtp.Server
	pop3  *pop3.Server
	lmtpd []*lmtptest.Server
	pop3d []*pop3test.Server
}

// startProtocols starts the LMTP proxy on lmtpAddr and the POP3 proxy on
// pop3Addr (each "" for off). Each backend gets an LMTP service that
// APPENDs what it is given to the user's mailbox on the in-memory IMAP
// backend (user+folder to that folder), and a POP3 service that shows the
// user's INBOX as it is at login (read over IMAP; DELE is not applied).
func (m *Murder) startProtocols(lmtpAddr, pop3Addr string, logger *slog.Logger) error {
	if lmtpAddr == "" && pop3Addr == "" {
		return nil
	}
	lb := map[string]*lmtp.Backend{}
	pb := map[string]*pop3.Backend{}
	for name, be := range m.Backends {
		be := be
		ld, err := lmtptest.Start(lmtptest.Options{Deliver: func(rcpt string, msg []byte) error {
			r, err := lmtp.ParseRecipient(rcpt)
			if err != nil {
				return err
			}
			box := "INBOX"
			if r.Detail != "" {
				box = r.Detail
			}
			if err := be.Append(r.User, box, msg, nil, time.Now()); err != nil {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
			}
			return nil
		}})
		if err != nil {
			return err
		}
		m.protos.lmtpd = append(m.protos.lmtpd, ld)
		lb[name] = &lmtp.Backend{Addr: ld.Addr()}
		beAddr := be.Addr()
		pd, err := pop3test.Start(pop3test.Options{MasterUser: ProxyUser, MasterPassword: ProxyPass,
			Mailbox: func(user string) ([][]byte, error) { return readInbox(beAddr, user) }})
		if err != nil {
			return err
		}
		m.protos.pop3d = append(m.protos.pop3d, pd)
		pb[name] = &pop3.Backend{Addr: pd.Addr(), ProxyUser: ProxyUser, ProxyPassword: ProxyPass}
	}
	if lmtpAddr != "" {
		m.protos.lmtp = lmtp.New(lmtp.Options{
			Hostname: "imapfront-demo", Directory: lmtp.ReplicaDirectory{R: m.Replica, Confirm: m.Follower.Sync},
			Backends: lb, Logger: logger.With("component", "lmtp"),
		})
		ln, err := net.Listen("tcp", lmtpAddr)
		if err != nil {
			return fmt.Errorf("demo: -lmtp: %w", err)
		}
		m.LMTPAddr = ln.Addr().String()
		go m.protos.lmtp.Serve(ln)
	}
	if pop3Addr != "" {
		users := map[string]string{"alice": "alicepw", "bob": "bobpw"}
		m.protos.pop3 = pop3.New(pop3.Options{
			Hostname: "imapfront-demo", AllowPlaintext: true, // loopback demo
			Authenticator: demoPasswords(users), Home: m.Replica.Home, Backends: pb,
			Logger: logger.With("component", "pop3"),
		})
		ln, err := net.Listen("tcp", pop3Addr)
		if err != nil {
			return fmt.Errorf("demo: -pop3: %w", err)
		}
		m.POP3Addr = ln.Addr().String()
		go m.protos.pop3.Serve(ln)
	}
	return nil
}

// closeProtocols stops what startProtocols started.
func (m *Murder) closeProtocols() {
	p := &m.protos
	if p.lmtp != nil {
		p.lmtp.Close()
	}
	if p.pop3 != nil {
		p.pop3.Close()
	}
	for _, s := range p.lmtpd {
		s.Close()
	}
	for _, s := range p.pop3d {
		s.Close()
	}
}

// readInbox returns user's INBOX messages on the in-memory IMAP backend at
// addr, read as the proxy user.
func readInbox(addr, user string) ([][]byte, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewPlainClient(user, ProxyUser, ProxyPass)); err != nil {
		return nil, err
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	msgs, err := c.Fetch(imap.SeqSetNum(rangeSeq(sel.NumMessages)...), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(msgs))
	for _, msg := range msgs {
		out = append(out, msg.FindBodySection(&imap.FetchItemBodySection{}))
	}
	return out, nil
}

func rangeSeq(n uint32) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i + 1)
	}
	return out
}

// demoPasswords checks the demo users' passwords.
func demoPasswords(users map[string]string) auth.Authenticator {
	return auth.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, error) {
		if p, ok := users[strings.ToLower(user)]; ok && p == pass {
			return strings.ToLower(user), nil
		}
		return "", auth.ErrInvalidCredentials
	})
}
