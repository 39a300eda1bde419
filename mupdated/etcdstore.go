package mupdated

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imapfront/imapfront/mupdatec"
)

// DefaultPrefix is the etcd key prefix of the mailbox entries: one key
// per internal mailbox name, prefix + name.
const DefaultPrefix = "/mupdated/mailboxes/"

// scanPage is how many entries one range request of a paged Scan returns
// (each request costs the server a walk of the whole remaining range to
// count it, so pages are large).
const scanPage = 10000

// EtcdStore is a Store on etcd: one key per mailbox under a prefix.
type EtcdStore struct {
	cli      *clientv3.Client
	prefix   string
	end      string      // end of the prefix range
	noStream atomic.Bool // RangeStream found unavailable
}

// NewEtcdStore returns a store using cli with keys under prefix
// ("" = DefaultPrefix). It does not close cli.
func NewEtcdStore(cli *clientv3.Client, prefix string) *EtcdStore {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &EtcdStore{cli: cli, prefix: prefix, end: clientv3.GetPrefixRangeEnd(prefix)}
}

func (s *EtcdStore) key(name string) string { return s.prefix + name }

func (s *EtcdStore) name(key []byte) string { return strings.TrimPrefix(string(key), s.prefix) }

// wrap marks errors about etcd itself (not about an entry) as ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// Find implements Store.
func (s *EtcdStore) Find(ctx context.Context, name string) (mupdatec.Entry, bool, error) {
	resp, err := s.cli.Get(ctx, s.key(name))
	if err != nil {
		return mupdatec.Entry{}, false, wrap("get", err)
	}
	if len(resp.Kvs) == 0 {
		return mupdatec.Entry{}, false, nil
	}
	e, err := decodeValue(name, resp.Kvs[0].Value)
	return e, err == nil, err
}

// Scan implements Store. It uses etcd's RangeStream (3.7+: chunks of one
// snapshot, without the total count that makes paged ranges quadratic on
// a large prefix) and falls back to pages of range requests, all at the
// revision of the first, where the server or client lacks it (an older
// etcd, the in-process client).
func (s *EtcdStore) Scan(ctx context.Context, fn func(mupdatec.Entry) error) (int64, error) {
	if !s.noStream.Load() {
		rev, err := s.scanStream(ctx, fn)
		if !errors.Is(err, errNoRangeStream) {
			return rev, err
		}
		s.noStream.Store(true)
	}
	return s.scanPages(ctx, fn)
}

// errNoRangeStream: RangeStream is not available; nothing was delivered.
var errNoRangeStream = errors.New("mupdated: etcd RangeStream not available")

func scanErr(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("%w: snapshot compacted during the dump: %w", ErrStreamLost, err)
	}
	return wrap("range", err)
}

func (s *EtcdStore) scanStream(ctx context.Context, fn func(mupdatec.Entry) error) (int64, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.cli.GetStream(sctx, s.prefix, clientv3.WithRange(s.end))
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return 0, errNoRangeStream
		}
		return 0, scanErr(err)
	}
	first := true
	var rev int64
	for r := range ch {
		if err := r.Err(); err != nil {
			if first && status.Code(err) == codes.Unimplemented {
				return 0, errNoRangeStream
			}
			return 0, scanErr(err)
		}
		first = false
		for _, kv := range r.Kvs {
			e, err := decodeValue(s.name(kv.Key), kv.Value)
			if err != nil {
				return 0, err
			}
			if err := fn(e); err != nil {
				return 0, err
			}
		}
		if r.Header != nil && r.Header.Revision != 0 {
			rev = r.Header.Revision
		}
	}
	if first {
		return 0, errNoRangeStream
	}
	if rev == 0 {
		return 0, fmt.Errorf("%w: range stream without a revision", ErrStreamLost)
	}
	return rev, nil
}

func (s *EtcdStore) scanPages(ctx context.Context, fn func(mupdatec.Entry) error) (int64, error) {
	var rev int64
	from := s.prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(s.end), clientv3.WithLimit(scanPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return 0, scanErr(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			e, err := decodeValue(s.name(kv.Key), kv.Value)
			if err != nil {
				return 0, err
			}
			if err := fn(e); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Reserve implements Store: a create-if-absent transaction.
func (s *EtcdStore) Reserve(ctx context.Context, name, location string) error {
	k := s.key(name)
	v := encodeValue(mupdatec.Entry{Name: name, Reserved: true, Location: location})
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return wrap("txn", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 {
		old, err := decodeValue(name, kvs[0].Value)
		if err != nil {
			return err
		}
		if old.Reserved && old.Location == location {
			return nil // the same reservation again: idempotent
		}
		return fmt.Errorf("%w: %s (reserved=%v at %s)", mupdatec.ErrExists, name, old.Reserved, old.Location)
	}
	return fmt.Errorf("%w: %s", mupdatec.ErrExists, name)
}

// Activate implements Store.
func (s *EtcdStore) Activate(ctx context.Context, name, location, acl string) error {
	v := encodeValue(mupdatec.Entry{Name: name, Location: location, ACL: acl})
	_, err := s.cli.Put(ctx, s.key(name), string(v))
	return wrap("put", err)
}

// Deactivate implements Store: read, check, compare-and-set on the
// entry's revision (retried if another writer got in between).
func (s *EtcdStore) Deactivate(ctx context.Context, name, location string) error {
	k := s.key(name)
	for {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return wrap("get", err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: %s", mupdatec.ErrNotFound, name)
		}
		kv := resp.Kvs[0]
		old, err := decodeValue(name, kv.Value)
		if err != nil {
			return err
		}
		if old.Reserved || old.Location != location {
			return fmt.Errorf("%w: %s (reserved=%v at %s)", mupdatec.ErrNotActive, name, old.Reserved, old.Location)
		}
		v := encodeValue(mupdatec.Entry{Name: name, Reserved: true, Location: location})
		tr, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).
			Then(clientv3.OpPut(k, string(v))).
			Commit()
		if err != nil {
			return wrap("txn", err)
		}
		if tr.Succeeded {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Delete implements Store: one delete whose count says whether the
// entry existed.
func (s *EtcdStore) Delete(ctx context.Context, name string) error {
	resp, err := s.cli.Delete(ctx, s.key(name))
	if err != nil {
		return wrap("delete", err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%w: %s", mupdatec.ErrNotFound, name)
	}
	return nil
}

// Revision implements Store (a linearizable read).
func (s *EtcdStore) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, wrap("get", err)
	}
	return resp.Header.Revision, nil
}

// Watch implements Store with an etcd watch of the prefix from rev+1.
// It requires a leader: a member that loses quorum ends the watch.
// Watches share the client's watch stream, so a progress request of one
// also sends progress marks to the others (harmless).
func (s *EtcdStore) Watch(ctx context.Context, rev int64) (Watch, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &etcdWatch{
		s:      s,
		ctx:    wctx,
		cancel: cancel,
		wr:     s.cli.Watcher,
		ch:     make(chan Event, 64),
		done:   make(chan struct{}),
	}
	wch := w.wr.Watch(wctx, s.prefix, clientv3.WithRange(s.end), clientv3.WithRev(rev+1),
		clientv3.WithPrevKV())
	go w.run(wch)
	return w, nil
}

type etcdWatch struct {
	s      *EtcdStore
	ctx    context.Context
	cancel context.CancelFunc
	wr     clientv3.Watcher
	ch     chan Event
	done   chan struct{}

	mu  sync.Mutex
	err error
}

func (w *etcdWatch) Events() <-chan Event { return w.ch }

func (w *etcdWatch) RequestProgress(ctx context.Context) error {
	// The watcher keys its streams by the watch context's metadata.
	pctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return wrap("progress", w.wr.RequestProgress(pctx))
}

func (w *etcdWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *etcdWatch) Close() {
	w.cancel()
	<-w.done
}

func (w *etcdWatch) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *etcdWatch) run(wch clientv3.WatchChan) {
	defer close(w.done)
	defer close(w.ch)
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case <-w.ctx.Done():
			w.fail(w.ctx.Err())
			return
		}
		if !ok {
			if err := w.ctx.Err(); err != nil {
				w.fail(err)
			} else {
				w.fail(fmt.Errorf("%w: watch closed", ErrStreamLost))
			}
			return
		}
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 {
				w.fail(fmt.Errorf("%w: revision %d compacted", ErrStreamLost, resp.CompactRevision))
			} else {
				w.fail(fmt.Errorf("%w: %w", ErrStreamLost, err))
			}
			return
		}
		if resp.IsProgressNotify() {
			if !w.send(Event{Kind: EventProgress, Rev: resp.Header.Revision}) {
				return
			}
			continue
		}
		for _, ev := range resp.Events {
			name := w.s.name(ev.Kv.Key)
			out := Event{Rev: ev.Kv.ModRevision, Entry: mupdatec.Entry{Name: name}}
			if ev.PrevKv != nil {
				if p, err := decodeValue(name, ev.PrevKv.Value); err == nil {
					out.Prev, out.PrevOK = p, true
				}
			}
			switch ev.Type {
			case mvccpb.DELETE:
				out.Kind = EventDelete
			default:
				e, err := decodeValue(name, ev.Kv.Value)
				if err != nil {
					w.fail(fmt.Errorf("%w: %w", ErrStreamLost, err))
					return
				}
				out.Kind, out.Entry = EventPut, e
			}
			if !w.send(out) {
				return
			}
		}
	}
}

func (w *etcdWatch) send(ev Event) bool {
	select {
	case w.ch <- ev:
		return true
	case <-w.ctx.Done():
		w.fail(w.ctx.Err())
		return false
	}
}

// Count returns the number of entries.
func (s *EtcdStore) Count(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithRange(s.end), clientv3.WithCountOnly())
	if err != nil {
		return 0, wrap("count", err)
	}
	return resp.Count, nil
}

// loadBatch is how many puts one Load transaction carries (etcd's
// default --max-txn-ops is 128).
const loadBatch = 128

// Load stores every entry as it is (overwriting), in transactions of
// loadBatch puts, for an import. It is not atomic as a whole: on error,
// the entries of the committed batches are stored.
func (s *EtcdStore) Load(ctx context.Context, entries []mupdatec.Entry) error {
	ops := make([]clientv3.Op, 0, loadBatch)
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return wrap("txn", err)
		}
		ops = ops[:0]
		return nil
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if seen[e.Name] { // a key may appear only once per transaction
			if err := flush(); err != nil {
				return err
			}
			clear(seen)
		}
		seen[e.Name] = true
		ops = append(ops, clientv3.OpPut(s.key(e.Name), string(encodeValue(e))))
		if len(ops) == loadBatch {
			if err := flush(); err != nil {
				return err
			}
			clear(seen)
		}
	}
	return flush()
}
