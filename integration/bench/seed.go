package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// benchMessage returns message i of a seeded mailbox, about size bytes.
func benchMessage(mailbox string, i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Bench Sender <bench@example.org>\r\nTo: alice@example.org\r\n")
	fmt.Fprintf(&b, "Subject: %s message %d\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n", mailbox, i)
	fmt.Fprintf(&b, "Message-ID: <bench-%s-%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", mailbox, i)
	for n := 0; b.Len() < size-80; n++ {
		fmt.Fprintf(&b, "Line %05d of message %d: the quick brown fox jumps over the lazy dog %08x\r\n", n, i, n*7919+i)
	}
	return []byte(b.String())
}

// seedMailbox makes sure user's mailbox on addr (the user's home backend,
// logged in directly) holds at least count messages of about size bytes,
// appending only the missing ones. APPENDs are pipelined; imapclient sends
// non-synchronising literals when the server offers LITERAL+ (Cyrus does).
func seedMailbox(ctx context.Context, addr, user, pass, mailbox string, count, size int) (appended int, err error) {
	conn, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return 0, fmt.Errorf("LOGIN %s on %s: %w", user, addr, err)
	}
	have := 0
	data, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			return 0, fmt.Errorf("CREATE %s: %w", mailbox, err)
		}
	} else if data.NumMessages != nil {
		have = int(*data.NumMessages)
	}
	const window = 64
	var pending []*imapclient.AppendCommand
	flush := func(keep int) error {
		for len(pending) > keep {
			if _, err := pending[0].Wait(); err != nil {
				return fmt.Errorf("APPEND to %s: %w", mailbox, err)
			}
			pending = pending[1:]
		}
		return nil
	}
	for i := have; i < count; i++ {
		if ctx.Err() != nil {
			return appended, ctx.Err()
		}
		msg := benchMessage(mailbox, i, size)
		cmd := c.Append(mailbox, int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			return appended, err
		}
		if err := cmd.Close(); err != nil {
			return appended, err
		}
		pending = append(pending, cmd)
		appended++
		if err := flush(window); err != nil {
			return appended, err
		}
	}
	if err := flush(0); err != nil {
		return appended, err
	}
	return appended, c.Logout().Wait()
}

// waitSelectable polls until mailbox can be selected as user through addr
// (a front end learns new mailboxes from MUPDATE a little later).
func waitSelectable(ctx context.Context, addr, user, pass, mailbox string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		rc, err := dialRaw(ctx, addr, nil)
		if err == nil {
			err = rc.login(user, pass)
			if err == nil {
				err = rc.cmd("EXAMINE " + quote(mailbox))
			}
			rc.logout()
			if err == nil {
				return nil
			}
		}
		last = err
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s not selectable through %s: %v", mailbox, addr, last)
		case <-t.C:
		}
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
