package frontend

import (
	"context"
	"strings"

	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/router"
)

// ListQuery is a LIST command (RFC 3501, extended by RFC 5258) as the
// directory answers it.
type ListQuery struct {
	// Patterns are the mailbox patterns; an empty one matches nothing.
	Patterns []string
	// Subscribed holds the user's subscribed client names, read from the
	// INBOX backend when an option needs them.
	Subscribed map[string]bool
	// SelectSubscribed, RecursiveMatch and ReturnSubscribed are the
	// SUBSCRIBED and RECURSIVEMATCH selection options and the SUBSCRIBED
	// return option.
	SelectSubscribed, RecursiveMatch, ReturnSubscribed bool
	// Extended is set for the extended syntax (selection options, a
	// pattern list or return options): levels without a mailbox are
	// \NonExistent rather than \Noselect.
	Extended bool
}

// ListExtended answers LIST, extended or not, from the replica.
func (d ReplicaDirectory) ListExtended(_ context.Context, user, ref string, q ListQuery) []router.ListItem {
	return d.R.ListExtended(user, ref, q.Patterns, router.ExtendedListOptions{
		Subscribed: q.Subscribed, SelectSubscribed: q.SelectSubscribed, RecursiveMatch: q.RecursiveMatch,
		ReturnSubscribed: q.ReturnSubscribed, Extended: q.Extended,
	})
}

// listLine renders one LIST or LSUB response, with the CHILDINFO extended
// data item when the item has one (RFC 5258 section 3.5).
func listLine(word string, sep byte, it router.ListItem) string {
	var b strings.Builder
	b.WriteString("* " + word + " (" + strings.Join(it.Attrs.Strings(), " ") + `) "` + string(sep) + `" ` + imapwire.AString(it.Name))
	if it.ChildInfoSubscribed {
		b.WriteString(` ("CHILDINFO" ("SUBSCRIBED"))`)
	}
	b.WriteString("\r\n")
	return b.String()
}

// flushOut sends what the session has buffered for the client.
func (sess *session) flushOut() error {
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return nil
}
