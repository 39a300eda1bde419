package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawConn is a minimal IMAP client on a raw socket: it writes tagged
// commands and reads responses up to the tagged status, skipping literals
// without copying them, and counts the bytes it read. It is what the
// throughput and latency workloads use, so the client costs as little as
// possible.
type rawConn struct {
	c     net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	tagN  int
	read  int64 // bytes read from the server
	line  []byte
	local *net.TCPAddr
}

// dialRaw connects to addr (from local, if not nil) and reads the greeting.
func dialRaw(ctx context.Context, addr string, local *net.TCPAddr) (*rawConn, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 32<<10), w: bufio.NewWriterSize(c, 4<<10), local: local}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	line, err := rc.readLine()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) && !bytes.HasPrefix(line, []byte("* PREAUTH")) {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %q", addr, line)
	}
	_ = c.SetDeadline(time.Time{})
	return rc, nil
}

// dialRawSmall is dialRaw with small buffers, for the many idle sessions.
func dialRawSmall(ctx context.Context, addr string, local *net.TCPAddr) (*rawConn, error) {
	d := net.Dialer{Timeout: 60 * time.Second, LocalAddr: local}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 1024), w: bufio.NewWriterSize(c, 256), local: local}
	_ = c.SetDeadline(time.Now().Add(120 * time.Second))
	line, err := rc.readLine()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %q", addr, line)
	}
	return rc, nil
}

func (rc *rawConn) Close() error { return rc.c.Close() }

// readLine reads one line (CRLF included) into rc.line.
func (rc *rawConn) readLine() ([]byte, error) {
	rc.line = rc.line[:0]
	for {
		b, err := rc.r.ReadSlice('\n')
		rc.read += int64(len(b))
		rc.line = append(rc.line, b...)
		if err == nil {
			return rc.line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return rc.line, err
		}
		if len(rc.line) > 1<<20 {
			return rc.line, errors.New("line longer than 1 MiB")
		}
	}
}

// literalSize returns n if line ends in {n}\r\n or {n+}\r\n.
func literalSize(line []byte) (int64, bool) {
	l := bytes.TrimSuffix(line, []byte("\r\n"))
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	num := bytes.TrimSuffix(l[i+1:len(l)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// send writes "tag command\r\n" and returns the tag.
func (rc *rawConn) send(command string) (string, error) {
	rc.tagN++
	tag := "b" + strconv.Itoa(rc.tagN)
	rc.w.WriteString(tag)
	rc.w.WriteByte(' ')
	rc.w.WriteString(command)
	rc.w.WriteString("\r\n")
	return tag, rc.w.Flush()
}

// wait reads responses until the tagged status of tag and returns an
// error unless it is OK.
func (rc *rawConn) wait(tag string) error {
	prefix := []byte(tag + " ")
	start := true
	for {
		line, err := rc.readLine()
		if err != nil {
			return err
		}
		if start && bytes.HasPrefix(line, prefix) {
			if bytes.HasPrefix(line[len(prefix):], []byte("OK")) {
				return nil
			}
			return fmt.Errorf("%s", bytes.TrimSpace(line))
		}
		if n, ok := literalSize(line); ok {
			d, err := rc.r.Discard(int(n))
			rc.read += int64(d)
			if err != nil {
				return err
			}
			start = false // the response goes on after the literal
			continue
		}
		start = true
	}
}

// cmd sends a command and waits for its OK.
func (rc *rawConn) cmd(command string) error {
	tag, err := rc.send(command)
	if err != nil {
		return err
	}
	if err := rc.wait(tag); err != nil {
		return fmt.Errorf("%s: %w", firstWord(command), err)
	}
	return nil
}

func firstWord(s string) string {
	if i := bytes.IndexByte([]byte(s), ' '); i > 0 {
		return s[:i]
	}
	return s
}

// login runs LOGIN with quoted user and password.
func (rc *rawConn) login(user, pass string) error {
	return rc.cmd(fmt.Sprintf("LOGIN %q %q", user, pass))
}

// logout sends LOGOUT, waits for its OK (or the server closing) and closes.
func (rc *rawConn) logout() error {
	defer rc.c.Close()
	err := rc.cmd("LOGOUT")
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// idle starts IDLE and waits for the continuation.
func (rc *rawConn) idle() error {
	if _, err := rc.send("IDLE"); err != nil {
		return err
	}
	for {
		line, err := rc.readLine()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(line, []byte("+")) {
			return nil
		}
		if !bytes.HasPrefix(line, []byte("*")) {
			return fmt.Errorf("IDLE: %q", bytes.TrimSpace(line))
		}
	}
}
