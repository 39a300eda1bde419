package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// ExecEach is Exec handing each untagged response to each as it arrives
// instead of collecting them, so that a command answered with many
// responses (FETCH 1:* (UID)) holds one at a time. The slice passed to
// each is its own.
func (c *Conn) ExecEach(ctx context.Context, cmd string, maxLiteral int64, each func(resp []byte)) (*Response, error) {
	tag, done, err := c.send(ctx, cmd)
	defer done()
	if err != nil {
		return nil, err
	}
	return c.collectEach(tag, maxLiteral, cmd == "LOGOUT", each)
}

// ExecLiteralFrom is ExecLiteral with the literal's size bytes read from
// r as they are sent, through the connection's fixed buffer. When the
// backend refuses the command before its "+" (no LITERAL+), the *Error is
// returned and r is not read. A failure reading r or writing the literal
// leaves the connection dead (closed): it is part way through a command.
func (c *Conn) ExecLiteralFrom(ctx context.Context, prefix string, size int64, r io.Reader) (*Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	tag := c.nextTag()
	plus := ""
	if c.caps["LITERAL+"] {
		plus = "+"
	}
	c.bw.WriteString(tag + " " + prefix + " {" + strconv.FormatInt(size, 10) + plus + "}\r\n")
	if plus == "" {
		if err := c.Flush(); err != nil {
			return nil, err
		}
		for {
			resp, err := c.readResponse(1 << 20)
			if err != nil {
				return nil, err
			}
			if len(resp) > 0 && resp[0] == '+' {
				break
			}
			if bytes.HasPrefix(resp, []byte(tag+" ")) {
				st, text := splitStatus(resp[len(tag)+1:])
				return &Response{Status: st, Text: text}, &Error{Status: st, Text: text}
			}
		}
	}
	if _, err := io.CopyN(c.bw, r, size); err != nil {
		c.Close()
		return nil, err
	}
	c.bw.WriteString("\r\n")
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return c.collect(tag, 1<<20, false)
}

// ErrNoBody is returned by FetchBody when the answer had no BODY[]
// literal (the message was expunged meanwhile, or its body came quoted).
var ErrNoBody = errors.New("backend: FETCH answer without a BODY[] literal")

// FetchBody sends cmd, a FETCH or UID FETCH of one message's BODY[] (or
// BODY.PEEK[]), and streams that body: body is called with the literal's
// size and a reader of exactly its bytes, read from the connection as body
// reads (what body leaves unread is discarded). Every other untagged
// response (not the body's own FETCH) is handed to other, literals inlined
// up to 1 MiB. The error body returns is FetchBody's, once the command's
// answer has been read to its end (the connection stays usable).
func (c *Conn) FetchBody(ctx context.Context, cmd string, body func(size int64, r io.Reader) error, other func(resp []byte)) error {
	tag, done, err := c.send(ctx, cmd)
	defer done()
	if err != nil {
		return err
	}
	found := false
	var bodyErr error
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if _, done, err := c.tagged(line, tag, false); done {
			switch {
			case err != nil:
				return err
			case bodyErr != nil:
				return bodyErr
			case !found:
				return ErrNoBody
			}
			return nil
		}
		if n, ok := literalSize(line); ok && !found && isBodyLiteral(line) {
			found = true
			lr := &io.LimitedReader{R: c.br, N: n}
			bodyErr = body(n, lr)
			if _, err := io.Copy(io.Discard, lr); err != nil || lr.N > 0 {
				c.dead.Store(true)
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			// The rest of the body's own response is not needed.
			rest, err := c.readLine()
			if err != nil {
				return err
			}
			if _, err := c.finishResponse(rest, 1<<20); err != nil {
				return err
			}
			continue
		}
		resp, err := c.finishResponse(line, 1<<20)
		if err != nil {
			return err
		}
		if len(resp) > 0 && resp[0] == '*' {
			other(resp)
		}
	}
}

// isBodyLiteral reports whether line is the start of a FETCH response
// whose literal at its end is the BODY[] item's value.
func isBodyLiteral(line []byte) bool {
	if !hasPrefixFold(line, "* ") {
		return false
	}
	up := bytes.ToUpper(line)
	if !bytes.Contains(up, []byte(" FETCH (")) {
		return false
	}
	i := bytes.LastIndexByte(up, '{')
	return i > 0 && bytes.HasSuffix(up[:i], []byte("BODY[] "))
}
