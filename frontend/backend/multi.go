package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// ErrNoParts is returned by ExecLiterals when parts wrote nothing: no
// command was sent.
var ErrNoParts = errors.New("backend: command with no literal part: not sent")

// ExecLiterals sends one command made of prefix and the parts that parts
// writes, each " mid {size+}" followed by size bytes read from r (a
// MULTIAPPEND, RFC 3502: mid is a message's "(flags) date"), and collects
// the answer. It needs LITERAL+ (RFC 7888), so that nothing waits for a
// continuation. The command line is started by the first part; if parts
// writes none, nothing is sent and ErrNoParts is returned. An error from
// parts or from r after the first part leaves the connection dead
// (closed): it is part way through a command.
func (c *Conn) ExecLiterals(ctx context.Context, prefix string, parts func(part func(mid string, size int64, r io.Reader) error) error) (*Response, error) {
	if !c.caps["LITERAL+"] {
		return nil, errors.New("backend: LITERAL+ is needed to send several literals in one command")
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	tag := ""
	part := func(mid string, size int64, r io.Reader) error {
		if tag == "" {
			tag = c.nextTag()
			c.bw.WriteString(tag + " " + prefix)
		}
		c.bw.WriteString(" " + mid + " {" + strconv.FormatInt(size, 10) + "+}\r\n")
		if _, err := io.CopyN(c.bw, r, size); err != nil {
			c.Close()
			return err
		}
		return nil
	}
	err := parts(part)
	if tag == "" {
		if err == nil {
			err = ErrNoParts
		}
		return nil, err
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.bw.WriteString("\r\n")
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return c.collect(tag, 1<<20, false)
}

// FetchLiterals sends cmd, a FETCH whose answers each end their first line
// with one literal (for example "UID FETCH 1:* (UID BODY.PEEK[])"), and
// streams those literals: each is called with the response's first line
// up to the literal (which holds the items before it, such as the UID), the
// literal's size and a reader of exactly its bytes (what it leaves unread
// is discarded). Other responses go to other, literals inlined up to
// 1 MiB. An error from each ends the command early only in effect: the
// answer is still read to its end, so the connection stays usable.
func (c *Conn) FetchLiterals(ctx context.Context, cmd string, each func(head []byte, size int64, r io.Reader) error, other func(resp []byte)) error {
	tag, done, err := c.send(ctx, cmd)
	defer done()
	if err != nil {
		return err
	}
	var eachErr error
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if _, done, err := c.tagged(line, tag, false); done {
			if err != nil {
				return err
			}
			return eachErr
		}
		if n, ok := literalSize(line); ok && hasPrefixFold(line, "* ") && bytes.Contains(bytes.ToUpper(line), []byte(" FETCH (")) {
			lr := &io.LimitedReader{R: c.br, N: n}
			if eachErr == nil {
				eachErr = each(line[:bytes.LastIndexByte(line, '{')], n, lr)
			}
			if _, err := io.Copy(io.Discard, lr); err != nil || lr.N > 0 {
				c.dead.Store(true)
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
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
