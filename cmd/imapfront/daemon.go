package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
)

// runDaemon runs imapfront with cfg until ctx is cancelled. ready, if not
// nil, is called with the listeners' addresses once they accept.
func runDaemon(ctx context.Context, cfg *Config, logger *slog.Logger, ready func(addrs []string)) error {
	return errors.New("the daemon is being wired to the router and MUPDATE follower; not runnable yet")
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	io.WriteString(stderr, "imapfront demo: not available yet\n")
	return 1
}
