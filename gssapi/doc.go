// Package gssapi implements the SASL GSSAPI mechanism (RFC 4752) with Kerberos V5
// (RFC 4121) on top of github.com/jcmturner/gokrb5/v8, in both directions:
//
//   - [Acceptor] / [Server]: the server side, a go-sasl sasl.Server created per
//     authentication from a service keytab. It verifies the AP-REQ itself (ticket
//     decryption, validity, clock skew, its own per-Acceptor replay set), sends the
//     AP-REP for mutual authentication (gokrb5 cannot marshal one), offers only
//     "no security layer" in an RFC 4121 Wrap token and reads the authorization
//     identity from the client's answer.
//   - [Initiator] / [Client]: the client side, a go-sasl sasl.Client for imapfront's
//     own logins (MUPDATE master, backends) from a client keytab. It builds the
//     AP-REQ itself so that it keeps the authenticator, requests and verifies mutual
//     authentication, and answers the offer with "no security layer" plus authzid.
//
// No SASL security layer is ever negotiated: after a successful exchange the stream
// stays in plain text. Only AES enctypes (RFC 3962, RFC 8009) are supported for the
// context keys; RC4/DES tokens use other formats and are refused.
//
// Errors returned by [Server.Next] wrap one of the sentinel errors of this package
// (ErrMalformed, ErrWrongPrincipal, ErrTicketExpired, ...), so a session can map them
// to NO texts with errors.Is, or with [ResponseText].
//
// The wire exchange and the MIT/Cyrus behaviour this package follows are recorded in
// shared/interop/kerberos.md.
package gssapi
