package lincheck

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/imapfront/imapfront/mupdatec"
)

// Workload is concurrent clients doing random operations on a few
// overlapping names.
type Workload struct {
	Names, Locations, ACLs []string
	Clients                int
	// Dial returns a new authenticated connection for client (attempt
	// counts the client's connections so far, to spread them).
	Dial func(ctx context.Context, client, attempt int) (*mupdatec.Conn, error)
	// OpTimeout bounds one operation (default 10 s).
	OpTimeout time.Duration
	// Seed makes the choice of operations repeatable.
	Seed uint64
}

// Run runs the clients, recording into rec, while more(recorded) is
// true. A client whose connection fails records the operation as
// Unknown and dials again (bounded by ctx).
func (w Workload) Run(ctx context.Context, rec *Recorder, more func(n int) bool) {
	if w.OpTimeout <= 0 {
		w.OpTimeout = 10 * time.Second
	}
	var wg sync.WaitGroup
	for cl := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, cl, rec, more)
		}()
	}
	wg.Wait()
}

func (w Workload) client(ctx context.Context, cl int, rec *Recorder, more func(int) bool) {
	rnd := rand.New(rand.NewPCG(w.Seed, uint64(cl)))
	var conn *mupdatec.Conn
	attempt := 0
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	pick := func(l []string) string { return l[rnd.IntN(len(l))] }
	for ctx.Err() == nil && more(rec.Len()) {
		if conn == nil {
			c, err := w.Dial(ctx, cl, attempt)
			attempt++
			if err != nil {
				select { // redial interval after a refused connection
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			conn = c
		}
		in := Input{Name: pick(w.Names), Location: pick(w.Locations)}
		switch r := rnd.IntN(100); {
		case r < 25:
			in.Op = Reserve
		case r < 45:
			in.Op, in.ACL = Activate, pick(w.ACLs)
		case r < 60:
			in.Op = Deactivate
		case r < 75:
			in.Op = Delete
		default:
			in.Op = Find
		}
		octx, cancel := context.WithTimeout(ctx, w.OpTimeout)
		call := rec.Now()
		var out Output
		var err error
		switch in.Op {
		case Reserve:
			err = conn.Reserve(octx, in.Name, in.Location)
		case Activate:
			err = conn.Activate(octx, in.Name, in.Location, in.ACL)
		case Deactivate:
			err = conn.Deactivate(octx, in.Name, in.Location)
		case Delete:
			err = conn.Delete(octx, in.Name)
		case Find:
			out.Entry, out.Found, err = conn.Find(octx, in.Name)
		}
		cancel()
		ret := rec.Now()
		out.Status = Classify(err)
		if in.Op == Find && out.Status != OK {
			out = Output{Status: Unknown}
		}
		rec.Add(cl, in, call, out, ret)
		if out.Status == Unknown {
			conn.Close()
			conn = nil
		}
	}
}
