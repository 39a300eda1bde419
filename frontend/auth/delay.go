package auth

import (
	"context"
	"time"
)

// Delayer pauses after failed authentications, longer with each failure:
// Base after the first, doubling up to Max. The zero value uses the
// defaults.
type Delayer struct {
	// Base is the pause after the first failure (default 1s).
	Base time.Duration
	// Max caps the pause (default 15s).
	Max time.Duration
	// Sleep waits d or until ctx is done, returning ctx's error then; nil
	// means a timer. Tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Default pauses of a zero Delayer.
const (
	DefaultDelayBase = time.Second
	DefaultDelayMax  = 15 * time.Second
)

// Duration returns the pause after the given number of consecutive
// failures: 0 for none, then Base, 2*Base, 4*Base, ... up to Max.
func (d *Delayer) Duration(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	base, limit := d.Base, d.Max
	if base <= 0 {
		base = DefaultDelayBase
	}
	if limit <= 0 {
		limit = DefaultDelayMax
	}
	delay := base
	for i := 1; i < failures && delay < limit; i++ {
		delay *= 2
	}
	return min(delay, limit)
}

// Delay pauses for Duration(failures), or less if ctx ends first, in which
// case it returns ctx's error.
func (d *Delayer) Delay(ctx context.Context, failures int) error {
	return sleep(ctx, d.Duration(failures), d.Sleep)
}

// sleep waits dur (none when dur <= 0) with fake, or a timer when fake is
// nil, or until ctx is done, returning ctx's error then.
func sleep(ctx context.Context, dur time.Duration, fake func(context.Context, time.Duration) error) error {
	if dur <= 0 {
		return ctx.Err()
	}
	if fake != nil {
		return fake(ctx, dur)
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
