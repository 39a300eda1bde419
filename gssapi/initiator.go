package gssapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// TicketSource obtains a service ticket and its session key for an SPN such as
// "imap/host". gokrb5's *client.Client implements it, and so does *Initiator.
type TicketSource interface {
	GetServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error)
}

// InitiatorOptions configures an Initiator: a client principal logging in from a
// keytab. All fields but Logger are required.
type InitiatorOptions struct {
	// Keytab holds the client principal's keys (e.g. clients.keytab).
	Keytab *keytab.Keytab
	// Config is the krb5.conf (config.Load or config.NewFromString). It must name
	// the realm's KDC; rdns and canonicalisation do not apply (the SPN is used as given).
	Config *config.Config
	// Username is the client principal without realm, e.g. "mupdateuser".
	Username string
	// Realm is the client principal's realm.
	Realm string
	// Logger receives login failures. Nil discards.
	Logger *slog.Logger
}

// Initiator holds one logged-in gokrb5 client (TGT and service-ticket cache) and
// makes a Client per authentication. Create it once per configured identity and
// Close it when done: gokrb5 runs a TGT renewal goroutine once logged in.
// It is safe for concurrent use; the first authentication contacts the KDC.
type Initiator struct {
	mu       sync.Mutex
	cl       *client.Client
	username string
	realm    string
	log      *slog.Logger
	closed   bool
}

// NewInitiator validates opts. It does not contact the KDC.
func NewInitiator(opts InitiatorOptions) (*Initiator, error) {
	if opts.Keytab == nil || opts.Config == nil || opts.Username == "" || opts.Realm == "" {
		return nil, errors.New("gssapi: initiator needs a keytab, a krb5 config, a username and a realm")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := client.NewWithKeytab(opts.Username, opts.Realm, opts.Keytab, opts.Config, client.DisablePAFXFAST(true))
	return &Initiator{cl: cl, username: opts.Username, realm: opts.Realm, log: log}, nil
}

// GetServiceTicket implements TicketSource: it logs in (AS exchange) if there is
// no valid TGT, then returns a cached or new service ticket (TGS exchange).
// The calls block on the KDC; gokrb5 bounds them with its own timeouts.
func (in *Initiator) GetServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return messages.Ticket{}, types.EncryptionKey{}, errorf(ErrState, "initiator closed")
	}
	if err := in.cl.AffirmLogin(); err != nil {
		in.log.Warn("gssapi: kerberos login failed", "principal", in.username+"@"+in.realm, "err", err)
		return messages.Ticket{}, types.EncryptionKey{}, errorf(ErrKerberos, "login as %s@%s: %v", in.username, in.realm, err)
	}
	tkt, key, err := in.cl.GetServiceTicket(spn)
	if err != nil {
		in.log.Warn("gssapi: service ticket failed", "spn", spn, "err", err)
		return tkt, key, errorf(ErrKerberos, "service ticket for %s: %v", spn, err)
	}
	return tkt, key, nil
}

// NewClient returns a go-sasl client for one authentication to service
// ("imap/<host>" or "mupdate/<host>", used exactly as given), asking for authzid
// ("" for none).
func (in *Initiator) NewClient(service, authzid string) *Client {
	return NewClient(ClientOptions{Tickets: in, Username: in.username, Realm: in.realm, Service: service, Authzid: authzid})
}

// Close stops gokrb5's TGT renewal and forgets the tickets. Later
// authentications fail with ErrState.
func (in *Initiator) Close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.closed {
		in.closed = true
		in.cl.Destroy()
	}
}

// ClientOptions configures one initiator exchange.
type ClientOptions struct {
	// Tickets provides the service ticket (an *Initiator, a gokrb5 *client.Client,
	// or a fake in tests).
	Tickets TicketSource
	// Username and Realm name the client principal; they must match the ticket.
	Username string
	Realm    string
	// Service is the SPN without realm, e.g. "mupdate/mupdate-master".
	Service string
	// Authzid is the authorization identity to ask for ("" for none).
	Authzid string
	// Now is the clock for the authenticator time. Nil means time.Now.
	Now func() time.Time
}

type clientState int

const (
	cliStart clientState = iota
	cliAwaitAPRep
	cliAwaitOffer
	cliDone
	cliFailed
)

// Client is one initiator-side GSSAPI exchange. It implements go-sasl's
// sasl.Client: Start returns the AP-REQ (mutual authentication requested), the
// first Next verifies the AP-REP and returns an EMPTY response, the second Next
// verifies the security-layer offer and returns the "no security layer" + authzid
// answer. It is not safe for concurrent use.
type Client struct {
	opts    ClientOptions
	state   clientState
	sessKey types.EncryptionKey
	subkey  types.EncryptionKey // acceptor subkey from the AP-REP, if any
	auth    types.Authenticator
}

// NewClient returns a Client for one authentication.
func NewClient(opts ClientOptions) *Client {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{opts: opts}
}

// Start implements sasl.Client.
func (c *Client) Start() (mech string, ir []byte, err error) {
	if c.state != cliStart {
		return "", nil, errorf(ErrState, "Start called twice")
	}
	c.state = cliFailed
	if c.opts.Tickets == nil || c.opts.Service == "" || c.opts.Username == "" || c.opts.Realm == "" {
		return "", nil, errors.New("gssapi: client needs a ticket source, a service, a username and a realm")
	}
	if strings.ContainsRune(c.opts.Authzid, 0) {
		return "", nil, errors.New("gssapi: authzid contains NUL")
	}
	tkt, sessKey, err := c.opts.Tickets.GetServiceTicket(c.opts.Service)
	if err != nil {
		if errors.Is(err, ErrKerberos) || errors.Is(err, ErrState) {
			return "", nil, err
		}
		return "", nil, errorf(ErrKerberos, "service ticket for %s: %v", c.opts.Service, err)
	}
	if _, err := aesEtype(sessKey); err != nil {
		return "", nil, fmt.Errorf("session key: %w", err)
	}
	cname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, c.opts.Username)
	auth, err := types.NewAuthenticator(c.opts.Realm, cname)
	if err != nil {
		return "", nil, fmt.Errorf("gssapi: authenticator: %w", err)
	}
	now := c.opts.Now().UTC()
	auth.CTime = now.Truncate(time.Second)
	auth.Cusec = now.Nanosecond() / 1000
	ck := make([]byte, 24)
	binary.LittleEndian.PutUint32(ck[0:4], 16) // Lgth of the (all-zero) channel bindings hash
	binary.LittleEndian.PutUint32(ck[20:24], flagMutual|flagSequence|flagInteg|flagConf)
	auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: ck}
	req, err := messages.NewAPReq(tkt, sessKey, auth)
	if err != nil {
		return "", nil, fmt.Errorf("gssapi: AP-REQ: %w", err)
	}
	types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	b, err := req.Marshal()
	if err != nil {
		return "", nil, fmt.Errorf("gssapi: AP-REQ: %w", err)
	}
	c.sessKey, c.auth = sessKey, auth
	c.state = cliAwaitAPRep
	return Mechanism, frameToken(tokAPReq, b), nil
}

// Next implements sasl.Client.
func (c *Client) Next(challenge []byte) ([]byte, error) {
	var resp []byte
	var err error
	switch c.state {
	case cliAwaitAPRep:
		err = c.readAPRep(challenge)
		resp = []byte{}
		if err == nil {
			c.state = cliAwaitOffer
		}
	case cliAwaitOffer:
		resp, err = c.answerOffer(challenge)
		if err == nil {
			c.state = cliDone
		}
	default:
		return nil, errorf(ErrState, "unexpected server challenge in state %d", c.state)
	}
	if err != nil {
		c.state = cliFailed
		return nil, err
	}
	return resp, nil
}

func (c *Client) readAPRep(b []byte) error {
	tokID, inner, err := parseToken(b)
	if err != nil {
		return err
	}
	switch tokID {
	case tokAPRep:
	case tokKRBErr:
		var ke messages.KRBError
		if err := ke.Unmarshal(inner); err != nil {
			return errorf(ErrMalformed, "KRB-ERROR: %v", err)
		}
		return errorf(ErrKerberos, "acceptor returned error %d %q", ke.ErrorCode, ke.EText)
	default:
		return errorf(ErrMalformed, "token id %x is not an AP-REP", tokID)
	}
	if err := checkDER(inner, 0x60|asnAppTag.APREP); err != nil {
		return err
	}
	var rep messages.APRep
	if err := rep.Unmarshal(inner); err != nil {
		return errorf(ErrMalformed, "AP-REP: %v", err)
	}
	plain, err := decrypt(rep.EncPart, c.sessKey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return fmt.Errorf("%w: AP-REP: %v", ErrMutualAuth, err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		return errorf(ErrMalformed, "AP-REP encrypted part: %v", err)
	}
	if !part.CTime.Equal(c.auth.CTime) || part.Cusec != c.auth.Cusec {
		return errorf(ErrMutualAuth, "AP-REP time does not match the authenticator")
	}
	if len(part.Subkey.KeyValue) > 0 || part.Subkey.KeyType != 0 {
		if _, err := aesEtype(part.Subkey); err != nil {
			return fmt.Errorf("acceptor subkey: %w", err)
		}
		c.subkey = part.Subkey
	}
	return nil
}

func (c *Client) answerOffer(b []byte) ([]byte, error) {
	wt, err := parseWrap(b, true)
	if err != nil {
		return nil, err
	}
	key := c.sessKey
	var replyFlags byte
	if len(c.subkey.KeyValue) > 0 {
		key, replyFlags = c.subkey, wrapAcceptorSubkey
	}
	if wt.flags&wrapAcceptorSubkey != 0 && len(c.subkey.KeyValue) == 0 {
		return nil, errorf(ErrBadIntegrity, "offer signed with an acceptor subkey that was never sent")
	}
	if err := wt.verify(key, keyusage.GSSAPI_ACCEPTOR_SEAL); err != nil {
		return nil, err
	}
	if len(wt.payload) < 4 {
		return nil, errorf(ErrMalformed, "security layer offer of %d bytes", len(wt.payload))
	}
	if wt.payload[0]&layerNone == 0 {
		return nil, errorf(ErrUnsupported, "server requires a security layer (offer %#02x)", wt.payload[0])
	}
	payload := append([]byte{layerNone, 0, 0, 0}, c.opts.Authzid...)
	return sealWrap(payload, replyFlags, uint64(c.auth.SeqNumber), key, keyusage.GSSAPI_INITIATOR_SEAL)
}
