package gssapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Mechanism is the SASL mechanism name.
const Mechanism = "GSSAPI"

// Defaults for AcceptorOptions.
const (
	DefaultMaxClockSkew    = 5 * time.Minute
	DefaultReplayCacheSize = 1 << 16
)

// AcceptorOptions configures an Acceptor. Keytab is required; the zero value of
// every other field has the documented default.
type AcceptorOptions struct {
	// Keytab holds the service keys (imap/<host>@REALM, mupdate/<host>@REALM, ...).
	// Only AES keys are usable. The keytab must not be modified after NewAcceptor.
	Keytab *keytab.Keytab
	// Principal optionally pins the acceptor name, "imap/host" or "imap/host@REALM".
	// Empty (the default) accepts a ticket for any principal with a key in the
	// keytab, like MIT's ignore_acceptor_hostname.
	Principal string
	// Realms lists the client realms allowed to log in; the realm is stripped to
	// give the user name. Empty means only the realm of the service principal that
	// accepted the ticket (what Cyrus does with its default realm).
	Realms []string
	// MaxClockSkew bounds the authenticator's time distance from Now and the slack
	// on ticket start and end times. Zero means DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// ReplayCacheSize bounds the replay set. Zero means DefaultReplayCacheSize.
	ReplayCacheSize int
	// Logger receives one line per refused authentication (no key material).
	// Nil discards.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Acceptor verifies RFC 4752 GSSAPI authentications against a service keytab.
// Create one per listener (or process) and call NewServer per authentication: it
// owns the replay set, so all servers of one service must share one Acceptor.
// It is safe for concurrent use and starts no goroutine.
//
// Replay protection: the Acceptor verifies the AP-REQ itself and never calls
// gokrb5's service.VerifyAPREQ, so gokrb5's process-global replay cache (and its
// endless cleanup goroutine) is never created. Its own replay set is keyed on the
// service principal and a hash of the encrypted authenticator and keeps entries for
// twice the clock skew. Client addresses in tickets are not checked (as behind NAT).
type Acceptor struct {
	kt       *keytab.Keytab
	pin      *types.PrincipalName
	pinRealm string
	realms   []string
	skew     time.Duration
	log      *slog.Logger
	now      func() time.Time
	replay   *replaySet
}

// NewAcceptor validates opts and returns an Acceptor.
func NewAcceptor(opts AcceptorOptions) (*Acceptor, error) {
	if opts.Keytab == nil || len(opts.Keytab.Entries) == 0 {
		return nil, errors.New("gssapi: acceptor needs a keytab with at least one key")
	}
	a := &Acceptor{
		kt:     opts.Keytab,
		realms: append([]string(nil), opts.Realms...),
		skew:   opts.MaxClockSkew,
		log:    opts.Logger,
		now:    opts.Now,
	}
	if a.skew <= 0 {
		a.skew = DefaultMaxClockSkew
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.Principal != "" {
		pn, realm := types.ParseSPNString(opts.Principal)
		if len(pn.NameString) == 0 || pn.NameString[0] == "" {
			return nil, fmt.Errorf("gssapi: bad acceptor principal %q", opts.Principal)
		}
		a.pin, a.pinRealm = &pn, realm
	}
	size := opts.ReplayCacheSize
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	// An authenticator is refused by the skew check once it is more than skew
	// away from now, so remembering it for twice the skew is enough.
	a.replay = newReplaySet(2*a.skew, size)
	return a, nil
}

// Result is the outcome of a successful authentication.
type Result struct {
	// Principal is the client principal without realm, e.g. "alice" or "host/x".
	Principal string
	// Realm is the client principal's realm, e.g. "IMAPFRONT.TEST".
	Realm string
	// User is the mapped user name: Principal, since Realm is an allowed realm.
	User string
	// Authzid is the authorization identity the client asked for ("" if none).
	Authzid string
	// Service is the service principal whose key accepted the ticket,
	// e.g. "imap/localhost@IMAPFRONT.TEST".
	Service string
	// Flags are the GSS context flags the client requested (RFC 4121 4.1.1.1).
	Flags uint32
	// Expires is the ticket's end time.
	Expires time.Time
}

// Authorizer decides, at the end of a successful exchange, whether the
// authenticated user may act as r.Authzid (the proxy rule belongs to the caller).
// A non-nil error fails the exchange and is returned by Server.Next unchanged.
type Authorizer func(r Result) error

// NewServer returns the go-sasl server for one authentication. authorize may be
// nil, in which case every authzid is accepted and the caller must check
// Result.Authzid itself.
func (a *Acceptor) NewServer(authorize Authorizer) *Server {
	return &Server{a: a, authorize: authorize}
}

type serverState int

const (
	srvStart serverState = iota
	srvAwaitEmpty
	srvAwaitReply
	srvDone
	srvFailed
)

// Server is one server-side GSSAPI exchange. It implements go-sasl's sasl.Server.
// It is not safe for concurrent use.
type Server struct {
	a         *Acceptor
	authorize Authorizer
	state     serverState
	askedIR   bool

	key    types.EncryptionKey // initiator subkey, else session key
	seq    uint64              // acceptor sequence number
	result Result
}

// Next implements sasl.Server. The first call takes the AP-REQ (a nil or empty
// response asks the client for it with an empty challenge). If the client asked
// for mutual authentication the challenge is the AP-REP and the next response must
// be empty; then the challenge is the security-layer offer, and the final response
// is the client's choice, after which done is true. Errors wrap this package's
// sentinel errors; after an error every later call fails with ErrState.
func (s *Server) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.state {
	case srvStart:
		if len(response) == 0 && !s.askedIR {
			s.askedIR = true
			return []byte{}, false, nil
		}
		challenge, err = s.acceptAPReq(response)
	case srvAwaitEmpty:
		if len(response) != 0 {
			err = errorf(ErrMalformed, "expected an empty response after the AP-REP, got %d bytes", len(response))
			break
		}
		challenge, err = s.offer()
	case srvAwaitReply:
		err = s.readReply(response)
		if err == nil {
			s.state = srvDone
			return nil, true, nil
		}
	default:
		return nil, false, errorf(ErrState, "Next called in state %d", s.state)
	}
	if err != nil {
		s.state = srvFailed
		s.a.log.Info("gssapi authentication refused", "err", err, "principal", s.result.Principal, "realm", s.result.Realm)
		return nil, false, err
	}
	return challenge, false, nil
}

// Result returns the authentication result once Next has returned done.
func (s *Server) Result() (Result, bool) {
	return s.result, s.state == srvDone
}

func (s *Server) acceptAPReq(tok []byte) ([]byte, error) {
	a := s.a
	tokID, inner, err := parseToken(tok)
	if err != nil {
		return nil, err
	}
	if tokID != tokAPReq {
		return nil, errorf(ErrMalformed, "token id %x is not an AP-REQ", tokID)
	}
	if err := checkDER(inner, 0x60|asnAppTag.APREQ); err != nil {
		return nil, err
	}
	var req messages.APReq
	if err := req.Unmarshal(inner); err != nil {
		return nil, errorf(ErrMalformed, "AP-REQ: %v", err)
	}
	tkt := &req.Ticket
	sname, srealm := tkt.SName, tkt.Realm
	if len(sname.NameString) == 0 {
		return nil, errorf(ErrMalformed, "ticket without service name")
	}
	service := sname.PrincipalNameString() + "@" + srealm
	if a.pin != nil && (!a.pin.Equal(sname) || (a.pinRealm != "" && a.pinRealm != srealm)) {
		return nil, errorf(ErrWrongPrincipal, "ticket is for %s, acceptor is pinned to %s", service, a.pin.PrincipalNameString())
	}
	skey, _, err := a.kt.GetEncryptionKey(sname, srealm, tkt.EncPart.KVNO, tkt.EncPart.EType)
	if err != nil {
		return nil, errorf(ErrWrongPrincipal, "no key for %s kvno %d enctype %d", service, tkt.EncPart.KVNO, tkt.EncPart.EType)
	}
	plain, err := decrypt(tkt.EncPart, skey, keyusage.KDC_REP_TICKET)
	if err != nil {
		return nil, fmt.Errorf("ticket for %s: %w", service, err)
	}
	var etp messages.EncTicketPart
	if err := etp.Unmarshal(plain); err != nil {
		return nil, errorf(ErrMalformed, "ticket encrypted part: %v", err)
	}
	tkt.DecryptedEncPart = etp
	s.result.Principal = etp.CName.PrincipalNameString()
	s.result.Realm = etp.CRealm
	s.result.Service = service
	s.result.Expires = etp.EndTime

	now := a.now().UTC()
	start := etp.StartTime
	if start.IsZero() {
		start = etp.AuthTime
	}
	if start.Sub(now) > a.skew || bitSet(etp.Flags.Bytes, 7) {
		return nil, errorf(ErrTicketNotYetValid, "ticket starts %s", start.Format(time.RFC3339))
	}
	if now.Sub(etp.EndTime) > a.skew {
		return nil, errorf(ErrTicketExpired, "ticket ended %s", etp.EndTime.Format(time.RFC3339))
	}
	sessKey := etp.Key
	if _, err := aesEtype(sessKey); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	plain, err = decrypt(req.EncryptedAuthenticator, sessKey, keyusage.AP_REQ_AUTHENTICATOR)
	if err != nil {
		return nil, fmt.Errorf("authenticator: %w", err)
	}
	auth := &req.Authenticator
	if err := auth.Unmarshal(plain); err != nil {
		return nil, errorf(ErrMalformed, "authenticator: %v", err)
	}
	if !auth.CName.Equal(etp.CName) || auth.CRealm != etp.CRealm {
		return nil, errorf(ErrBadIntegrity, "authenticator client does not match the ticket")
	}
	ct := auth.CTime.Add(time.Duration(auth.Cusec) * time.Microsecond)
	if d := now.Sub(ct); d > a.skew || -d > a.skew {
		return nil, errorf(ErrClockSkew, "authenticator time %s is %s away", ct.Format(time.RFC3339), d.Round(time.Second))
	}
	ck := auth.Cksum
	if ck.CksumType != chksumtype.GSSAPI || len(ck.Checksum) < 24 || binary.LittleEndian.Uint32(ck.Checksum) != 16 {
		return nil, errorf(ErrMalformed, "authenticator without a GSS-API checksum")
	}
	s.result.Flags = binary.LittleEndian.Uint32(ck.Checksum[20:24])

	sum := sha256.Sum256(req.EncryptedAuthenticator.Cipher)
	if replay, evicted := a.replay.check(service+"\x00"+string(sum[:]), now); replay {
		return nil, errorf(ErrReplay, "authenticator of %s@%s seen before", s.result.Principal, s.result.Realm)
	} else if evicted {
		a.log.Warn("gssapi replay set full: evicting unexpired entries")
	}

	if !a.realmAllowed(etp.CRealm, srealm) {
		return nil, errorf(ErrRealmRefused, "client realm %q", etp.CRealm)
	}

	s.key = sessKey
	if len(auth.SubKey.KeyValue) > 0 || auth.SubKey.KeyType != 0 {
		if _, err := aesEtype(auth.SubKey); err != nil {
			return nil, fmt.Errorf("initiator subkey: %w", err)
		}
		s.key = auth.SubKey
	}
	seq, err := randomSeq()
	if err != nil {
		return nil, err
	}
	s.seq = seq

	mutual := s.result.Flags&flagMutual != 0 || bitSet(req.APOptions.Bytes, 2)
	if !mutual {
		return s.offer()
	}
	rep, err := buildAPRep(auth, sessKey, seq)
	if err != nil {
		return nil, err
	}
	s.state = srvAwaitEmpty
	return rep, nil
}

func (a *Acceptor) realmAllowed(crealm, srealm string) bool {
	if len(a.realms) == 0 {
		return crealm == srealm
	}
	for _, r := range a.realms {
		if r == crealm {
			return true
		}
	}
	return false
}

// bitSet reports whether bit i (RFC 4120 numbering, 0 = most significant) is set.
func bitSet(b []byte, i int) bool {
	return i/8 < len(b) && b[i/8]&(0x80>>(i%8)) != 0
}

func randomSeq() (uint64, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<30))
	if err != nil {
		return 0, fmt.Errorf("gssapi: random: %w", err)
	}
	return n.Uint64() + 1, nil
}

// encAPRepPart mirrors messages.EncAPRepPart without the subkey (RFC 4120 5.5.2):
// imapfront's acceptor sends no acceptor subkey, which MIT's initiator accepts.
type encAPRepPart struct {
	CTime          time.Time `asn1:"generalized,explicit,tag:0"`
	Cusec          int       `asn1:"explicit,tag:1"`
	SequenceNumber int64     `asn1:"explicit,tag:3"`
}

type apRep struct {
	PVNO    int                 `asn1:"explicit,tag:0"`
	MsgType int                 `asn1:"explicit,tag:1"`
	EncPart types.EncryptedData `asn1:"explicit,tag:2"`
}

// buildAPRep builds the GSS-framed KRB_AP_REP answering auth (RFC 4121 4.1),
// which gokrb5 v8.4.4 cannot marshal.
func buildAPRep(auth *types.Authenticator, sessKey types.EncryptionKey, seq uint64) ([]byte, error) {
	part, err := asn1.Marshal(encAPRepPart{CTime: auth.CTime.UTC(), Cusec: auth.Cusec, SequenceNumber: int64(seq)})
	if err != nil {
		return nil, fmt.Errorf("gssapi: marshal EncAPRepPart: %w", err)
	}
	part = asn1tools.AddASNAppTag(part, asnAppTag.EncAPRepPart)
	et, err := aesEtype(sessKey)
	if err != nil {
		return nil, err
	}
	_, cipher, err := et.EncryptMessage(sessKey.KeyValue, part, keyusage.AP_REP_ENCPART)
	if err != nil {
		return nil, fmt.Errorf("gssapi: encrypt AP-REP: %w", err)
	}
	rep, err := asn1.Marshal(apRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: types.EncryptedData{EType: sessKey.KeyType, Cipher: cipher}})
	if err != nil {
		return nil, fmt.Errorf("gssapi: marshal AP-REP: %w", err)
	}
	return frameToken(tokAPRep, asn1tools.AddASNAppTag(rep, asnAppTag.APREP)), nil
}

// offer returns the security-layer offer: "no security layer" only, max buffer 0
// (RFC 4752 3.1), in a Wrap token signed with the context key (usage 22).
func (s *Server) offer() ([]byte, error) {
	tok, err := sealWrap([]byte{layerNone, 0, 0, 0}, wrapSentByAcceptor, s.seq, s.key, keyusage.GSSAPI_ACCEPTOR_SEAL)
	if err != nil {
		return nil, err
	}
	s.state = srvAwaitReply
	return tok, nil
}

// readReply verifies the client's Wrap token and takes the layer and authzid.
func (s *Server) readReply(b []byte) error {
	wt, err := parseWrap(b, false)
	if err != nil {
		return err
	}
	if wt.flags&wrapAcceptorSubkey != 0 {
		return errorf(ErrBadIntegrity, "client used an acceptor subkey that was never sent")
	}
	if err := wt.verify(s.key, keyusage.GSSAPI_INITIATOR_SEAL); err != nil {
		return err
	}
	p := wt.payload
	if len(p) < 4 {
		return errorf(ErrMalformed, "security layer reply of %d bytes", len(p))
	}
	if p[0] != layerNone {
		return errorf(ErrLayerNotOffered, "client chose layer %#02x, only %#02x offered", p[0], layerNone)
	}
	authzid := p[4:]
	if !utf8.Valid(authzid) || strings.ContainsRune(string(authzid), 0) {
		return errorf(ErrMalformed, "authzid is not NUL-free UTF-8")
	}
	s.result.Authzid = string(authzid)
	s.result.User = s.result.Principal
	if s.authorize != nil {
		if err := s.authorize(s.result); err != nil {
			return err
		}
	}
	return nil
}
