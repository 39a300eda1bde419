package sieve

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ManageSieve's wire (RFC 5804 section 4): a command is an atom followed
// by strings, each quoted ("...", with \" and \\) or a literal the client
// sends without waiting ({n+} CRLF n octets); the line ends with CRLF.

// maxLiteral bounds a literal before the login (AUTHENTICATE responses).
const maxLiteral = 8192

// maxLine bounds a command line before the login.
const maxLine = 8192

var errSyntax = errors.New("sieve: syntax error")

// command is one parsed client command.
type command struct {
	name string   // upper-cased
	args []string // the strings, decoded
}

// readLine reads one line without its CRLF, bounded by maxLine.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", errTooLong
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

var errTooLong = errors.New("sieve: line too long")

// readCommand reads and parses one command (atom, then strings or
// numbers separated by single spaces).
func readCommand(r *bufio.Reader) (command, error) {
	line, err := readLine(r)
	if err != nil {
		return command{}, err
	}
	name, rest, _ := strings.Cut(line, " ")
	if name == "" || !isAtom(name) {
		return command{}, errSyntax
	}
	cmd := command{name: strings.ToUpper(name)}
	args, err := readStrings(r, rest)
	cmd.args = args
	return cmd, err
}

// readStrings parses the strings of a command, rest being the line after
// the command name; a literal continues on the following lines.
func readStrings(r *bufio.Reader, rest string) ([]string, error) {
	var args []string
	for rest != "" {
		switch {
		case rest[0] == '"':
			s, after, ok := unquote(rest)
			if !ok {
				return args, errSyntax
			}
			args = append(args, s)
			rest = after
		case rest[0] == '{':
			end := strings.Index(rest, "+}")
			if end < 0 || end != len(rest)-2 {
				return args, errSyntax // only {n+} at the end of a line
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 || n > maxLiteral {
				return args, errSyntax
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r, buf); err != nil {
				return args, err
			}
			args = append(args, string(buf))
			line, err := readLine(r)
			if err != nil {
				return args, err
			}
			rest = line
		default:
			// A number or an atom argument.
			tok, after, _ := strings.Cut(rest, " ")
			if !isAtom(tok) {
				return args, errSyntax
			}
			args = append(args, tok)
			rest = after
			continue
		}
		if rest == "" {
			break
		}
		if rest[0] != ' ' {
			return args, errSyntax
		}
		rest = rest[1:]
		if rest == "" {
			return args, errSyntax
		}
	}
	return args, nil
}

// unquote decodes a quoted string at the start of s and returns the rest.
func unquote(s string) (string, string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			i++
			if i >= len(s) || s[i] != '"' && s[i] != '\\' {
				return "", "", false
			}
			b.WriteByte(s[i])
		case '\r', '\n', 0:
			return "", "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// quote encodes s as a quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"{}()%*\`, c) >= 0 {
			return false
		}
	}
	return true
}
