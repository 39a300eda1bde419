// Command imapfront is an IMAP front end in the style of the Cyrus IMAP
// Murder: one client-facing IMAP name in front of many IMAP backends, fed
// by an MUPDATE master.
//
// Usage:
//
//	imapfront -config imapfront.toml    run the daemon
//	imapfront -check-config FILE        validate a configuration and exit
//	imapfront demo [-listen ADDR]       run a self-contained demo
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/frontend/auth"
	"golang.org/x/crypto/bcrypt"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	return runWithInput(args, os.Stdin, stdout, stderr)
}

func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "demo" {
		return runDemo(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(args[1:], stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("imapfront", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (TOML)")
	check := fs.String("check-config", "", "validate this configuration file and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imapfront -config FILE | -check-config FILE | demo [-listen ADDR] | passwd USER < password")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *check != "" {
		if _, err := loadConfig(*check); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}
	if *configPath == "" {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// SIGHUP: read the file again; a configuration that does not validate
	// is refused and the running one stays.
	reloads := make(chan *Config)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				next, err := loadConfig(*configPath)
				if err != nil {
					logger.Error("SIGHUP: reload refused; the running configuration stays", "err", err)
					continue
				}
				select {
				case reloads <- next:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	if err := runDaemonWith(ctx, cfg, logger, hooks{reloads: reloads, level: level}); err != nil {
		logger.Error("imapfront stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// serveUntilDone runs srv on the listeners until ctx is cancelled, then
// shuts it down gracefully within grace.
func serveUntilDone(ctx context.Context, srv *frontend.Server, plain, implicitTLS []net.Listener, grace time.Duration, logger *slog.Logger) error {
	errc := make(chan error, len(plain)+len(implicitTLS))
	for _, l := range plain {
		go func() { errc <- srv.Serve(l) }()
	}
	for _, l := range implicitTLS {
		go func() { errc <- srv.ServeTLS(l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	logger.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		logger.Warn("shutdown", "err", serr)
	}
	if errors.Is(err, frontend.ErrServerClosed) {
		err = nil
	}
	return err
}

// runPasswd prints a line for the passwd authenticator's file: the user
// and a bcrypt hash of the password read from the first line of stdin (so
// it stays out of the process list and the shell history).
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: imapfront passwd USER < password-file")
		return 2
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(stderr, "imapfront passwd: no password on standard input")
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "imapfront passwd: empty password")
		return 1
	}
	out, err := auth.HashLine(args[0], pw, bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintln(stderr, "imapfront passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, out)
	return 0
}
