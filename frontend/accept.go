package frontend

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// Accept retry pauses, as net/http's Server.Serve: 5 ms after the first
// failure, doubling up to 1 s, back to 5 ms after a success.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptLogEvery is the least time between two logged accept failures;
// the ones in between are counted and reported with the next.
const acceptLogEvery = 10 * time.Second

// acceptRetryKind classifies an Accept error: the metric label of an error
// that the accept loop waits out and retries (descriptor or buffer
// exhaustion, a connection aborted before it was taken, any error the
// network stack calls temporary), or "" for one that ends Serve.
func acceptRetryKind(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE):
		return "emfile"
	case errors.Is(err, syscall.ENFILE):
		return "enfile"
	case errors.Is(err, syscall.ENOBUFS):
		return "enobufs"
	case errors.Is(err, syscall.ENOMEM):
		return "enomem"
	case errors.Is(err, syscall.ECONNABORTED):
		return "econnaborted"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return "timeout"
		}
		if t, ok := ne.(interface{ Temporary() bool }); ok && t.Temporary() {
			return "temporary"
		}
	}
	return ""
}

// acceptBackoff is the pause before the next Accept after failures.
type acceptBackoff struct{ d time.Duration }

// next returns the pause after one more failure.
func (b *acceptBackoff) next() time.Duration {
	b.d = min(max(2*b.d, acceptBackoffMin), acceptBackoffMax)
	return b.d
}

// reset starts again from the shortest pause after an Accept succeeded.
func (b *acceptBackoff) reset() { b.d = 0 }

// rateLog logs at most one line per interval and counts the ones it
// suppressed, so that a storm of accept failures costs no disk.
type rateLog struct {
	log        *slog.Logger
	every      time.Duration
	last       time.Time
	suppressed int
}

// warn logs msg unless a line was logged less than every ago.
func (r *rateLog) warn(now time.Time, msg string, args ...any) {
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return
	}
	if r.suppressed > 0 {
		args = append(args, "suppressed", r.suppressed)
	}
	r.log.Warn(msg, args...)
	r.last, r.suppressed = now, 0
}

// sleepOrClose waits d, or less if the server is shut down; it reports
// whether the wait ran its course. Tests replace it (Server.acceptSleep).
func (s *Server) sleepOrClose(d time.Duration) bool {
	if s.acceptSleep != nil {
		return s.acceptSleep(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}
