package mupdated

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// EmbedConfig configures an etcd member run inside mupdated.
type EmbedConfig struct {
	// Name of the member (default "mupdated").
	Name string
	// Dir holds the member's data. Required.
	Dir string
	// ClientURL is where the member serves etcd clients (default
	// http://127.0.0.1:2379); PeerURL is where it talks to the other
	// members (default http://127.0.0.1:2380).
	ClientURL, PeerURL string
	// InitialCluster lists every member as name=peerURL,... (default:
	// this member alone). ClusterToken names the cluster.
	InitialCluster, ClusterToken string
	// Existing joins an existing cluster instead of forming a new one
	// (only matters when Dir is empty).
	Existing bool
	// CompactionRetention is how many hours of revisions are kept
	// (default 1 h): an UPDATE stream slower than that gets BYE.
	CompactionRetention string
	// StartTimeout bounds the wait for the member to be ready (default
	// 60 s; a cluster member waits for a quorum).
	StartTimeout time.Duration
	// UnsafeNoFsync skips fsync (tests only: a crash loses data).
	UnsafeNoFsync bool
	// LogLevel of etcd's own logs (default "error"; to stderr).
	LogLevel string
	// Quiet discards etcd's logs.
	Quiet bool
}

// Embedded is a running etcd member.
type Embedded struct {
	e *embed.Etcd
}

// StartEmbedded starts an etcd member and waits until it is ready.
func StartEmbedded(cfg EmbedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("mupdated: embedded etcd needs a data directory")
	}
	c := embed.NewConfig()
	c.Dir = cfg.Dir
	if cfg.Name != "" {
		c.Name = cfg.Name
	} else {
		c.Name = "mupdated"
	}
	curl, purl := cfg.ClientURL, cfg.PeerURL
	if curl == "" {
		curl = "http://127.0.0.1:2379"
	}
	if purl == "" {
		purl = "http://127.0.0.1:2380"
	}
	cu, err := url.Parse(curl)
	if err != nil {
		return nil, fmt.Errorf("mupdated: client URL: %w", err)
	}
	pu, err := url.Parse(purl)
	if err != nil {
		return nil, fmt.Errorf("mupdated: peer URL: %w", err)
	}
	c.ListenClientUrls, c.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	c.ListenPeerUrls, c.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	if cfg.InitialCluster != "" {
		c.InitialCluster = cfg.InitialCluster
	} else {
		c.InitialCluster = c.Name + "=" + purl
	}
	if cfg.ClusterToken != "" {
		c.InitialClusterToken = cfg.ClusterToken
	}
	if cfg.Existing {
		c.ClusterState = embed.ClusterStateFlagExisting
	}
	c.AutoCompactionMode = "periodic"
	c.AutoCompactionRetention = cfg.CompactionRetention
	if c.AutoCompactionRetention == "" {
		c.AutoCompactionRetention = "1"
	}
	c.UnsafeNoFsync = cfg.UnsafeNoFsync
	c.Metrics = "basic"
	if cfg.Quiet {
		c.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	} else {
		c.LogLevel = cfg.LogLevel
		if c.LogLevel == "" {
			c.LogLevel = "error"
		}
		c.LogOutputs = []string{"stderr"}
	}
	e, err := embed.StartEtcd(c)
	if err != nil {
		return nil, fmt.Errorf("mupdated: start etcd: %w", err)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("mupdated: etcd: %w", err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("mupdated: etcd not ready after %v (no quorum?)", timeout)
	}
	return &Embedded{e: e}, nil
}

// Client returns a client of the member over its client URL (close it
// before Close). Unlike InProcessClient it has etcd 3.7's RangeStream,
// which makes UPDATE dumps of large databases linear.
func (m *Embedded) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{m.ClientURL()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// InProcessClient returns a client calling the member's server directly
// (no RangeStream: Scan pages instead).
func (m *Embedded) InProcessClient() *clientv3.Client { return v3client.New(m.e.Server) }

// ClientURL returns the URL the member serves clients on.
func (m *Embedded) ClientURL() string { return m.e.Clients[0].Addr().String() }

// Err reports a fatal error of the member.
func (m *Embedded) Err() <-chan error { return m.e.Err() }

// Close stops the member.
func (m *Embedded) Close() { m.e.Close() }

// Healthy reports whether a linearizable read through cli succeeds
// within ctx (the member or cluster has a quorum).
func Healthy(ctx context.Context, cli *clientv3.Client) error {
	_, err := cli.Get(ctx, "health", clientv3.WithCountOnly())
	return err
}
