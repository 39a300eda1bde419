package frontend

import (
	"testing"
	"time"
)

// After a burst the server schedules a release once the sessions fall to a
// quarter of their peak, and not before; a release resets the peak.
func TestReleaseAfterBurst(t *testing.T) {
	s := &Server{opts: Options{ReleaseMemory: time.Hour}, sessions: map[*session]struct{}{}}
	for n := 1; n <= 100; n++ {
		s.noteSessionsLocked(n)
	}
	if s.release.timer != nil {
		t.Fatal("release scheduled while the burst grows")
	}
	s.noteSessionsLocked(26)
	if s.release.timer != nil {
		t.Fatal("release scheduled above a quarter of the peak")
	}
	s.noteSessionsLocked(25)
	if s.release.timer == nil {
		t.Fatal("no release scheduled at a quarter of the peak")
	}
	s.release.timer.Stop()
	s.release.timer = nil
	small := &Server{opts: Options{ReleaseMemory: time.Hour}}
	for n := 1; n <= releaseMinPeak-1; n++ {
		small.noteSessionsLocked(n)
	}
	small.noteSessionsLocked(0)
	if small.release.timer != nil {
		t.Fatal("a release scheduled after a burst too small to matter")
	}
}
