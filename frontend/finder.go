package frontend

import (
	"context"
	"log/slog"

	"github.com/imapfront/imapfront/router"
)

// FinderDirectory is the Directory of FIND mode: every name is looked up
// in the MUPDATE master on demand (router.Finder, with its cache), for
// sites that cannot give a front end an UPDATE stream. The master cannot
// be searched, so LIST and LSUB show only INBOX and the names the client
// is subscribed to, and Children knows none (a front-mode RENAME learns
// the children from the backend instead).
type FinderDirectory struct {
	F *router.Finder
	// Logger receives lookup failures that a listing cannot return.
	Logger *slog.Logger
}

var _ Directory = FinderDirectory{}

// Resolve looks a client name up in the master.
func (d FinderDirectory) Resolve(ctx context.Context, user, name string) (router.Mailbox, error) {
	return d.F.Resolve(ctx, user, name)
}

// Children returns nothing: FIND cannot enumerate the database.
func (d FinderDirectory) Children(context.Context, string, string) ([]router.Mailbox, error) {
	return nil, nil
}

// List answers LIST and LSUB over INBOX and the subscribed names.
func (d FinderDirectory) List(ctx context.Context, user, ref, pattern string, subscribed map[string]bool) []router.ListItem {
	items, err := d.F.List(ctx, user, ref, pattern, router.ListOptions{Subscribed: subscribed}, nil)
	if err != nil {
		d.logger().Warn("FIND-mode LIST lookup failed", "err", err)
	}
	return items
}

// ListExtended answers an extended LIST over INBOX and the subscribed
// names (the selection options beyond SUBSCRIBED need an enumerable
// database, which FIND mode does not have).
func (d FinderDirectory) ListExtended(ctx context.Context, user, ref string, q ListQuery) []router.ListItem {
	var subs map[string]bool
	if q.SelectSubscribed {
		subs = q.Subscribed
	}
	var cands []string
	for n := range q.Subscribed {
		cands = append(cands, n)
	}
	var out []router.ListItem
	seen := make(map[string]bool)
	for _, p := range q.Patterns {
		items, err := d.F.List(ctx, user, ref, p, router.ListOptions{Subscribed: subs}, cands)
		if err != nil {
			d.logger().Warn("FIND-mode LIST lookup failed", "err", err)
		}
		for _, it := range items {
			if seen[it.Name] {
				continue
			}
			seen[it.Name] = true
			if q.ReturnSubscribed && q.Subscribed[it.Name] {
				it.Attrs |= router.AttrSubscribed
			}
			out = append(out, it)
		}
	}
	return out
}

// Home returns the server of user's INBOX.
func (d FinderDirectory) Home(ctx context.Context, user string) (string, bool) {
	server, ok, err := d.F.Home(ctx, user)
	if err != nil {
		d.logger().Warn("FIND-mode INBOX lookup failed", "err", err)
	}
	return server, ok
}

// Namespace returns the finder's name translator.
func (d FinderDirectory) Namespace() *router.Namespace { return d.F.Namespace() }

func (d FinderDirectory) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
