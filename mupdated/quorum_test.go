package mupdated_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdated"
)

// A 3-member embedded cluster: with one member lost, writes still work;
// with two lost (no quorum), a write is a tagged NO within OpTimeout and a
// stream ends with BYE; with the members back, writes work again and a new
// stream has everything.
func TestQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	type member struct {
		cfg mupdated.EmbedConfig
		m   *mupdated.Embedded
	}
	var ms []*member
	var cluster string
	for i := range 3 {
		cp, err1 := freePort()
		pp, err2 := freePort()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		cfg := mupdated.EmbedConfig{
			Name: fmt.Sprintf("m%d", i), Dir: t.TempDir(),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", pp),
			UnsafeNoFsync: true, Quiet: true, StartTimeout: 30 * time.Second,
		}
		if cluster != "" {
			cluster += ","
		}
		cluster += cfg.Name + "=" + cfg.PeerURL
		ms = append(ms, &member{cfg: cfg})
	}
	start := func(all ...*member) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(all))
		for i, m := range all {
			m.cfg.InitialCluster = cluster
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.m, errs[i] = mupdated.StartEmbedded(m.cfg)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	start(ms...)
	defer func() {
		for _, m := range ms {
			if m.m != nil {
				m.m.Close()
			}
		}
	}()
	cli := ms[0].m.InProcessClient()
	defer cli.Close()
	st := mupdated.NewEtcdStore(cli, "")
	_, addr := startServer(t, st, func(o *mupdated.Options) { o.OpTimeout, o.StreamCheck = 2*time.Second, 500*time.Millisecond })
	c := dial(t, addr)
	ctx := ctxT(t)
	stream := dial(t, addr)
	if err := stream.Update(ctx, nil, func(*mupdatec.Update) {}); err != nil {
		t.Fatal(err)
	}

	ms[2].m.Close()
	ms[2].m = nil
	if err := c.Activate(ctx, "user.one-down", "h!p", "a\tlr\t"); err != nil {
		t.Fatalf("write with one member of three down: %v", err)
	}
	if err := stream.Noop(ctx); err != nil {
		t.Fatalf("stream NOOP with one member down: %v", err)
	}

	ms[1].m.Close()
	ms[1].m = nil
	t0 := time.Now()
	err := c.Activate(ctx, "user.no-quorum", "h!p", "a\tlr\t")
	var se *mupdatec.ServerError
	if !errors.As(err, &se) || se.Status != "NO" || se.Text != "mailbox database unavailable" {
		t.Fatalf("write without quorum: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("NO took %v (OpTimeout 2 s)", d)
	}
	select {
	case <-stream.Done():
	case <-ctx.Done():
		t.Fatal("the stream did not end without quorum")
	}
	if !errors.Is(stream.Err(), mupdatec.ErrBye) {
		t.Fatalf("stream ended with %v, want BYE", stream.Err())
	}

	start(ms[1], ms[2])
	// The new leader may take an election: retry the write, bounded.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = c.Activate(ctx, "user.back", "h!p", "a\tlr\t")
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("write after the members came back: %v", err)
	}
	f, sink := follow(t, addr)
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := sink.snapshot()
	if _, ok := got["user.one-down"]; !ok {
		t.Fatal("the write made with one member down is lost")
	}
	if _, ok := got["user.back"]; !ok {
		t.Fatal("the write after recovery is missing")
	}
	_ = sasl.NewPlainClient
}
