package lmtp

import (
	"bytes"
	"io"
	"os"
)

// spool holds one message for fan-out to several backends: in memory up
// to a threshold, then in a temporary file that is removed on Close.
type spool struct {
	max  int64 // memory threshold
	dir  string
	mem  bytes.Buffer
	file *os.File
	n    int64
}

func newSpool(threshold int64, dir string) *spool { return &spool{max: threshold, dir: dir} }

// Write appends p, moving to a temporary file once above the threshold.
func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && int64(s.mem.Len()+len(p)) > s.max {
		f, err := os.CreateTemp(s.dir, "imapfront-lmtp-*")
		if err != nil {
			return 0, err
		}
		os.Remove(f.Name()) // unlinked: nothing left behind on a crash
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			f.Close()
			return 0, err
		}
		s.mem = bytes.Buffer{}
		s.file = f
	}
	var n int
	var err error
	if s.file != nil {
		n, err = s.file.Write(p)
	} else {
		n, err = s.mem.Write(p)
	}
	s.n += int64(n)
	return n, err
}

// OnDisk reports whether the message went to a temporary file.
func (s *spool) OnDisk() bool { return s.file != nil }

// Reader returns a new reader over the whole message; readers are
// independent and may be used concurrently.
func (s *spool) Reader() io.Reader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.n)
	}
	return bytes.NewReader(s.mem.Bytes())
}

// Close releases the temporary file.
func (s *spool) Close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}
