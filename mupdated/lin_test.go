package mupdated_test

import (
	"context"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdated/lincheck"
)

// Concurrent clients on two servers sharing one store: the history of
// RESERVE/ACTIVATE/DEACTIVATE/DELETE/FIND on overlapping names is
// linearizable, and a follower ends equal to the store. (The integration
// suite runs the same workload while cluster members are killed.)
func TestLinearizable(t *testing.T) {
	st := newStore(t)
	_, a1 := startServer(t, st, nil)
	_, a2 := startServer(t, st, nil)
	f, sink := follow(t, a1)
	addrs := []string{a1, a2}
	ops := 400
	if testing.Short() {
		ops = 100
	}
	w := lincheck.Workload{
		Names:     []string{"user.l1", "user.l2", "user.l3"},
		Locations: []string{"a!p", "b!p"},
		ACLs:      []string{"x\tlr\t", "y\tlrs\t"},
		Clients:   6,
		Seed:      uint64(time.Now().UnixNano()),
		Dial: func(ctx context.Context, client, attempt int) (*mupdatec.Conn, error) {
			c, err := mupdatec.Dial(ctx, addrs[(client+attempt)%2], nil)
			if err != nil {
				return nil, err
			}
			if err := c.Authenticate(ctx, sasl.NewPlainClient("", admin, adminP)); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	rec := lincheck.NewRecorder()
	w.Run(ctxT(t), rec, func(n int) bool { return n < ops })
	if res := rec.Check(30 * time.Second); res != porcupine.Ok {
		t.Fatalf("history of %d operations is %s (counts %v, seed %d)", rec.Len(), res, rec.Counts(), w.Seed)
	}
	if c := rec.Counts(); c[lincheck.Unknown] != 0 || c[lincheck.NO] == 0 {
		t.Fatalf("counts %v: want no unknown outcome here and some NO", c)
	}
	if err := f.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if d := diff(sink.snapshot(), contents(t, st)); d != "" {
		t.Fatalf("follower differs from the store:\n%s", d)
	}
}
