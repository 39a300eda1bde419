package auth

import (
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// ErrUnsupportedMechanism is returned by NewServer for a mechanism it does
// not implement.
var ErrUnsupportedMechanism = errors.New("auth: unsupported SASL mechanism")

// CredentialsFunc receives the credentials at the end of a SASL exchange.
// Its error ends the exchange with that error.
type CredentialsFunc func(Credentials) error

// NewServer returns a go-sasl server for mech ("PLAIN" or "LOGIN", any
// case) that hands the client's credentials to f. f checks them (with an
// Authenticator and Authorize); the server itself checks nothing.
func NewServer(mech string, f CredentialsFunc) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return NewPlainServer(f), nil
	case sasl.Login:
		return NewLoginServer(f), nil
	}
	return nil, ErrUnsupportedMechanism
}

// NewPlainServer returns a SASL PLAIN (RFC 4616) server handing authzid,
// authcid and password to f.
func NewPlainServer(f CredentialsFunc) sasl.Server {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		return f(Credentials{Authzid: identity, Authcid: username, Password: password})
	})
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl has only as a client:
// challenges "Username:" and "Password:", each answered by the client.
type loginServer struct {
	f        CredentialsFunc
	step     int
	username string
}

// NewLoginServer returns a SASL LOGIN server handing the user name and
// password to f (Authzid is always empty). An initial response (SASL-IR),
// if any, is taken as the user name.
func NewLoginServer(f CredentialsFunc) sasl.Server { return &loginServer{f: f} }

// ErrUnexpectedResponse is returned by the LOGIN server for a response
// after the exchange has ended.
var ErrUnexpectedResponse = errors.New("auth: unexpected SASL response")

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.f(Credentials{Authcid: l.username, Password: string(response)})
	}
	return nil, true, ErrUnexpectedResponse
}
