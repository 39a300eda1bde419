package wiring

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/mover"
	"github.com/imapfront/imapfront/mupdatec"
)

// RenameAcross returns frontend.Options.Mover: a RENAME to a name on
// another server moves the mailbox and its children with the mover
// (copy, verify, switch in MUPDATE, delete the source), when they hold at
// most maxBytes (0: no bound; above it frontend.ErrMoveTooLarge). Each
// RENAME gets its own mover.Mover (one is for one goroutine); grace is
// how long the source is kept after the switch for late writes.
func RenameAcross(backends map[string]*frontend.Backend, master mupdatec.Dialer, maxBytes int64, grace time.Duration, logger *slog.Logger) func(ctx context.Context, from, to, server string) error {
	mb := make(map[string]*mover.Backend, len(backends))
	for name, b := range backends {
		mb[name] = &mover.Backend{
			Server: b.Server, Dial: b.Dial, ProxyUser: b.ProxyUser, ProxyPassword: b.ProxyPassword,
			Separator: b.Separator, Personal: b.Personal, SelfMode: !b.FrontMode,
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, from, to, server string) error {
		m := mover.New(mover.Options{Master: master.Dial, Backends: mb, Grace: grace, Logger: logger.With("component", "mover", "rename", from)})
		err := m.Rename(ctx, from, to, server, maxBytes)
		if errors.Is(err, mover.ErrTooLarge) {
			return frontend.ErrMoveTooLarge
		}
		return err
	}
}
