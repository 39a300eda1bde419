package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// maxDummyCost caps the cost of the hash unknown users are compared with.
const maxDummyCost = 16

// Passwd authenticates users against a file of "user:bcrypt-hash" lines.
// Blank lines and lines starting with "#" are ignored. It is safe for
// concurrent use.
type Passwd struct {
	users map[string][]byte
	dummy []byte // compared against for unknown users, to take as long
}

// LoadPasswd reads a passwd file. Errors name the file and line.
func LoadPasswd(path string) (*Passwd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: passwd file: %w", err)
	}
	defer f.Close()
	return ParsePasswd(f, path)
}

// ParsePasswd reads passwd lines from r; name is used in errors.
func ParsePasswd(r io.Reader, name string) (*Passwd, error) {
	p := &Passwd{users: make(map[string][]byte)}
	sc := bufio.NewScanner(r)
	maxCost := 0
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("auth: %s:%d: expected user:bcrypt-hash", name, n)
		}
		if !ValidUser(user) || strings.ContainsAny(user, " \t") {
			return nil, fmt.Errorf("auth: %s:%d: invalid user name %q", name, n, user)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			// The error may quote the hash, which is not a secret
			// but not worth printing either.
			return nil, fmt.Errorf("auth: %s:%d: user %q: not a bcrypt hash", name, n, user)
		}
		if _, dup := p.users[user]; dup {
			return nil, fmt.Errorf("auth: %s:%d: user %q listed twice", name, n, user)
		}
		maxCost = max(maxCost, cost)
		p.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: %s:%d: %w", name, n+1, err)
	}
	// A hash of a random password with the file's cost: an unknown user
	// costs one comparison, as a known one does.
	if maxCost == 0 {
		maxCost = bcrypt.DefaultCost
	}
	// Beyond 2^16 rounds a login takes seconds anyway; do not let one
	// absurd hash make loading the file take hours.
	maxCost = min(maxCost, maxDummyCost)
	var pw [16]byte
	rand.Read(pw[:])
	dummy, err := bcrypt.GenerateFromPassword(pw[:], maxCost)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", name, err)
	}
	p.dummy = dummy
	return p, nil
}

// Len returns the number of users.
func (p *Passwd) Len() int { return len(p.users) }

// Authenticate checks user's password against its hash. An unknown user
// takes about as long as a wrong password, and both give
// ErrInvalidCredentials.
func (p *Passwd) Authenticate(ctx context.Context, user, password string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", Unavailable(err)
	}
	hash, ok := p.users[user]
	if !ok {
		hash = p.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok || err != nil {
		if err != nil && !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) && !errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return "", fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
		}
		return "", ErrInvalidCredentials
	}
	return user, nil
}

// HashLine returns a passwd line "user:hash" for password, hashed with
// bcrypt at cost (bcrypt.DefaultCost if 0). It is the helper behind an
// "imapfront passwd" command.
func HashLine(user, password string, cost int) (string, error) {
	if !ValidUser(user) || strings.ContainsAny(user, ": \t") || strings.HasPrefix(user, "#") {
		return "", fmt.Errorf("auth: invalid user name %q", user)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password for %q: %w", user, err)
	}
	return user + ":" + string(hash), nil
}

// PasswdFile is a Passwd read from a file that can be read again (on
// SIGHUP) without disturbing logins in progress. It is safe for concurrent
// use.
type PasswdFile struct {
	path string
	cur  atomic.Pointer[Passwd]
}

// NewPasswdFile loads path.
func NewPasswdFile(path string) (*PasswdFile, error) {
	p, err := LoadPasswd(path)
	if err != nil {
		return nil, err
	}
	f := &PasswdFile{path: path}
	f.cur.Store(p)
	return f, nil
}

// Reload reads the file again; on error the previous users stay in force.
func (f *PasswdFile) Reload() error {
	p, err := LoadPasswd(f.path)
	if err != nil {
		return err
	}
	f.cur.Store(p)
	return nil
}

// Authenticate checks a password against the current contents.
func (f *PasswdFile) Authenticate(ctx context.Context, user, password string) (string, error) {
	return f.cur.Load().Authenticate(ctx, user, password)
}
