// Package lincheck checks recorded histories of MUPDATE operations for
// linearizability with porcupine, against a sequential model of one
// mailbox entry per name as mupdated defines it (RESERVE create-if-absent
// or the same reservation again, ACTIVATE upsert, DEACTIVATE of the entry
// active at the location, DELETE of a present entry, FIND). It serves the
// tests of mupdated.
package lincheck

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/imapfront/imapfront/mupdatec"
)

// Operation names.
const (
	Reserve    = "RESERVE"
	Activate   = "ACTIVATE"
	Deactivate = "DEACTIVATE"
	Delete     = "DELETE"
	Find       = "FIND"
)

// Input is one operation as sent.
type Input struct {
	Op, Name, Location, ACL string
}

// Status of an answer.
type Status uint8

// Answers: OK, a definite NO (about the entry), or unknown (the
// connection broke, the server timed out, or said the database was
// unavailable: the write may or may not have been committed).
const (
	OK Status = iota + 1
	NO
	Unknown
)

// Output is one answer.
type Output struct {
	Status Status
	// FIND with Status OK: the entry, if there was one.
	Found bool
	Entry mupdatec.Entry
}

// state is one name's entry (comparable).
type state struct {
	present, reserved bool
	location, acl     string
}

// apply returns the answer and next state of in on s.
func apply(s state, in Input) (Status, state) {
	switch in.Op {
	case Reserve:
		if !s.present {
			return OK, state{present: true, reserved: true, location: in.Location}
		}
		if s.reserved && s.location == in.Location {
			return OK, s
		}
		return NO, s
	case Activate:
		return OK, state{present: true, location: in.Location, acl: in.ACL}
	case Deactivate:
		if s.present && !s.reserved && s.location == in.Location {
			return OK, state{present: true, reserved: true, location: in.Location}
		}
		return NO, s
	case Delete:
		if s.present {
			return OK, state{}
		}
		return NO, s
	}
	return OK, s // FIND
}

func step(st, inp, outp any) []any {
	s, in, out := st.(state), inp.(Input), outp.(Output)
	if in.Op == Find {
		switch {
		case out.Status == Unknown:
			return []any{s}
		case out.Status != OK:
			return nil
		case !out.Found:
			if s.present {
				return nil
			}
			return []any{s}
		}
		e := out.Entry
		if s.present && e.Reserved == s.reserved && e.Location == s.location && e.ACL == s.acl {
			return []any{s}
		}
		return nil
	}
	want, next := apply(s, in)
	switch {
	case out.Status == Unknown:
		if next == s {
			return []any{s}
		}
		return []any{s, next}
	case out.Status == want:
		return []any{next}
	}
	return nil
}

// Model is the porcupine model, partitioned by name.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var names []string
			for _, op := range h {
				n := op.Input.(Input).Name
				if _, ok := by[n]; !ok {
					names = append(names, n)
				}
				by[n] = append(by[n], op)
			}
			out := make([][]porcupine.Operation, 0, len(names))
			for _, n := range names {
				out = append(out, by[n])
			}
			return out
		},
		Init: func() []any { return []any{state{}} },
		Step: step,
		DescribeOperation: func(in, out any) string {
			i, o := in.(Input), out.(Output)
			return fmt.Sprintf("%s %s %s -> %v %+v", i.Op, i.Name, i.Location, o.Status, o.Entry)
		},
	}
	return nm.ToModel()
}

// Classify turns the error of a mupdatec call into a Status: nil is OK,
// a NO about the entry is NO, anything else (connection lost, timeout,
// "mailbox database unavailable", BAD) is Unknown.
func Classify(err error) Status {
	if err == nil {
		return OK
	}
	var se *mupdatec.ServerError
	if errors.As(err, &se) && se.Status == "NO" && se.Text != "mailbox database unavailable" {
		return NO
	}
	return Unknown
}

// A Recorder collects a history; safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	start   time.Time
	ops     []porcupine.Operation
	waiters []waiter
}

type waiter struct {
	n  int
	ch chan struct{}
}

// NewRecorder starts a history now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now returns a timestamp of the history.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add records one operation called at call and answered at ret (an
// Unknown answer may take effect at any later time, so its return is
// the end of time).
func (r *Recorder) Add(client int, in Input, call int64, out Output, ret int64) {
	if out.Status == Unknown {
		ret = math.MaxInt64
	}
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	keep := r.waiters[:0]
	for _, w := range r.waiters {
		if len(r.ops) >= w.n {
			close(w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	r.waiters = keep
	r.mu.Unlock()
}

// Wait returns once n operations have been recorded, or ctx ends.
func (r *Recorder) Wait(ctx context.Context, n int) error {
	r.mu.Lock()
	if len(r.ops) >= n {
		r.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	r.waiters = append(r.waiters, waiter{n, ch})
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len returns the number of operations recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// Check checks the history within timeout.
func (r *Recorder) Check(timeout time.Duration) porcupine.CheckResult {
	r.mu.Lock()
	h := append([]porcupine.Operation(nil), r.ops...)
	r.mu.Unlock()
	return porcupine.CheckOperationsTimeout(Model(), h, timeout)
}

// Counts returns how many operations got each status.
func (r *Recorder) Counts() map[Status]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[Status]int{}
	for _, op := range r.ops {
		m[op.Output.(Output).Status]++
	}
	return m
}
