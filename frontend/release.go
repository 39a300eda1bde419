package frontend

import (
	"runtime/debug"
	"time"
)

// After a burst of sessions, Go's background scavenger hands the freed
// pages (session buffers, goroutine stacks) back to the OS only over
// minutes, so an idle front end's RSS stays near its peak. When the open
// sessions fall to a quarter of their peak since the last release (or to
// none) and stay there for Options.ReleaseMemory, the server returns the
// freed memory at once (debug.FreeOSMemory, a GC plus a full scavenge).

// releaseMinPeak is the smallest peak worth a release.
const releaseMinPeak = 32

// noteSessionsLocked is told the open session count after each change;
// s.mu must be held.
func (s *Server) noteSessionsLocked(n int) {
	if s.opts.ReleaseMemory <= 0 {
		return
	}
	s.release.peak = max(s.release.peak, n)
	if s.release.peak < releaseMinPeak || n > s.release.peak/4 || s.release.timer != nil || s.closing {
		return
	}
	s.release.timer = time.AfterFunc(s.opts.ReleaseMemory, s.releaseMemory)
}

func (s *Server) releaseMemory() {
	s.mu.Lock()
	s.release.timer = nil
	n := len(s.sessions)
	if s.closing || n > s.release.peak/4 {
		s.mu.Unlock()
		return
	}
	s.release.peak = n
	s.mu.Unlock()
	debug.FreeOSMemory()
	s.log.Debug("returned freed memory to the OS after a burst of sessions", "sessions", n)
}

// releaseState is the server's part of the above; guarded by Server.mu.
type releaseState struct {
	peak  int
	timer *time.Timer
}
