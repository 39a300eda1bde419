// Package metrics holds imapfront's Prometheus metrics and the operators'
// HTTP endpoints (/metrics, /healthz, /readyz).
//
// Label values are bounded: command names from a fixed list, results,
// mechanisms, and backend server names from the configuration. No user or
// mailbox name is ever a label value (cardinality and privacy).
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the front end's instruments. A nil *Metrics records nothing,
// so code can call its methods unconditionally.
type Metrics struct {
	sessions       *prometheus.GaugeVec
	commands       *prometheus.CounterVec
	commandSeconds *prometheus.HistogramVec
	backendDials   *prometheus.CounterVec
	backendConns   *prometheus.GaugeVec
	logins         *prometheus.CounterVec
	referrals      *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	acceptErrors   *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	readThrough    *prometheus.CounterVec
	readThroughSec prometheus.Histogram
}

// New creates the metrics and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imapfront_sessions", Help: "Open client sessions by IMAP state.",
		}, []string{"state"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_commands_total", Help: "Client commands by name and result (ok, no, bad).",
		}, []string{"command", "result"}),
		commandSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imapfront_command_duration_seconds", Help: "Client command latency by name and backend server.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"command", "backend"}),
		backendDials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_backend_dials_total", Help: "Backend connections opened, by server and result (ok, unavailable, login_failed).",
		}, []string{"backend", "result"}),
		backendConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imapfront_backend_connections", Help: "Open backend connections by server.",
		}, []string{"backend"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_authentications_total", Help: "Client authentications by mechanism and result (ok, failed, unavailable).",
		}, []string{"mechanism", "result"}),
		referrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_referrals_total", Help: "Referrals sent, by kind (mailbox, login).",
		}, []string{"kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_client_bytes_total", Help: "Bytes exchanged with clients, by direction (in, out).",
		}, []string{"direction"}),
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_accept_errors_total", Help: "Accept errors retried after a pause, by kind (emfile, enfile, enobufs, enomem, econnaborted, timeout, temporary).",
		}, []string{"error"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_refusals_total", Help: "Connections refused or ended by an admission limit, by reason (max_connections, max_connections_per_ip, max_unauthenticated, bad_commands).",
		}, []string{"reason"}),
		readThrough: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_readthrough_total", Help: "Doubts about a name (a miss or a conflict in the replica) by outcome: asked (confirmed with the master), cached (confirmed a moment ago: the negative cache), master-down (answered from the replica at once), failed.",
		}, []string{"result"}),
		readThroughSec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imapfront_readthrough_duration_seconds", Help: "Round trip of a doubt confirmed with the MUPDATE master.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 4, 10),
		}),
	}
	reg.MustRegister(m.sessions, m.commands, m.commandSeconds, m.backendDials, m.backendConns, m.logins, m.referrals, m.bytes,
		m.acceptErrors, m.refusals, m.readThrough, m.readThroughSec)
	return m
}

// known is the bounded set of command names used as label values.
var known = map[string]bool{
	"CAPABILITY": true, "NOOP": true, "LOGOUT": true, "ID": true, "STARTTLS": true, "LOGIN": true,
	"AUTHENTICATE": true, "ENABLE": true, "NAMESPACE": true, "SELECT": true, "EXAMINE": true,
	"LIST": true, "LSUB": true, "RLIST": true, "RLSUB": true, "STATUS": true, "APPEND": true,
	"SUBSCRIBE": true, "UNSUBSCRIBE": true, "CREATE": true, "DELETE": true, "RENAME": true,
	"GETACL": true, "SETACL": true, "DELETEACL": true, "MYRIGHTS": true, "LISTRIGHTS": true,
	"GETQUOTAROOT": true, "GETQUOTA": true, "GETMETADATA": true, "SETMETADATA": true, "CHECK": true,
	"CLOSE": true, "UNSELECT": true, "EXPUNGE": true, "SEARCH": true, "FETCH": true, "STORE": true,
	"SORT": true, "THREAD": true, "COPY": true, "MOVE": true, "IDLE": true, "COMPRESS": true,
}

// Command records one client command.
func (m *Metrics) Command(name, result, backend string, d time.Duration) {
	if m == nil {
		return
	}
	if !known[name] {
		name = "other"
	}
	m.commands.WithLabelValues(name, result).Inc()
	m.commandSeconds.WithLabelValues(name, backend).Observe(d.Seconds())
}

// SessionState moves one session from one state to another ("" for none).
func (m *Metrics) SessionState(from, to string) {
	if m == nil {
		return
	}
	if from != "" {
		m.sessions.WithLabelValues(from).Dec()
	}
	if to != "" {
		m.sessions.WithLabelValues(to).Inc()
	}
}

// BackendDial records a connection attempt to a backend.
func (m *Metrics) BackendDial(backend, result string) {
	if m == nil {
		return
	}
	m.backendDials.WithLabelValues(backend, result).Inc()
	if result == "ok" {
		m.backendConns.WithLabelValues(backend).Inc()
	}
}

// BackendClosed records a closed backend connection.
func (m *Metrics) BackendClosed(backend string) {
	if m == nil {
		return
	}
	m.backendConns.WithLabelValues(backend).Dec()
}

// Login records an authentication result.
func (m *Metrics) Login(mechanism, result string) {
	if m == nil {
		return
	}
	m.logins.WithLabelValues(mechanism, result).Inc()
}

// Referral records a referral sent.
func (m *Metrics) Referral(kind string) {
	if m == nil {
		return
	}
	m.referrals.WithLabelValues(kind).Inc()
}

// ClientBytes records bytes read from (in) or written to (out) clients.
func (m *Metrics) ClientBytes(in, out int64) {
	if m == nil {
		return
	}
	if in > 0 {
		m.bytes.WithLabelValues("in").Add(float64(in))
	}
	if out > 0 {
		m.bytes.WithLabelValues("out").Add(float64(out))
	}
}

// AcceptError records an accept error that the listener retries after a
// pause; kind is one of a fixed set (see the metric's help).
func (m *Metrics) AcceptError(kind string) {
	if m == nil {
		return
	}
	m.acceptErrors.WithLabelValues(kind).Inc()
}

// Refused records a connection refused (or a session ended) by an
// admission limit; reason is one of a fixed set (see the metric's help).
func (m *Metrics) Refused(reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(reason).Inc()
}

// ReadThrough records one doubt's outcome (router.ReadThroughOptions.Observe).
func (m *Metrics) ReadThrough(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.readThrough.WithLabelValues(result).Inc()
	if result == "asked" {
		m.readThroughSec.Observe(d.Seconds())
	}
}

// Handler serves /metrics from g, /healthz (the process is up) and
// /readyz (ready() returns nil: listeners up, replica loaded).
func Handler(g prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// FollowerInfo is what the MUPDATE follower and the replica report.
type FollowerInfo struct {
	// State is the follower's state ("streaming", "backoff", ...).
	State string
	// Reconnects counts lost or failed connections.
	Reconnects int
	// Entries is the replica's size.
	Entries int
	// CurrentAt is when the replica was last known current (zero before
	// the first load).
	CurrentAt time.Time
}

// followerStates are the state label values of imapfront_mupdate_state.
var followerStates = []string{"idle", "connecting", "loading", "streaming", "backoff", "stopped"}

// RegisterFollower registers gauges read from info at each scrape: the
// follower's state (1 for the current one), reconnects, replica size and
// age in seconds.
func RegisterFollower(reg prometheus.Registerer, info func() FollowerInfo) {
	reg.MustRegister(&followerCollector{info: info,
		state:      prometheus.NewDesc("imapfront_mupdate_state", "MUPDATE follower state (1 = current).", []string{"state"}, nil),
		reconnects: prometheus.NewDesc("imapfront_mupdate_reconnects", "MUPDATE connections lost or failed since start.", nil, nil),
		entries:    prometheus.NewDesc("imapfront_replica_mailboxes", "Mailboxes in the replica of the mailbox database.", nil, nil),
		age:        prometheus.NewDesc("imapfront_replica_age_seconds", "Seconds since the replica was last known current (-1 before the first load).", nil, nil),
	})
}

type followerCollector struct {
	info                            func() FollowerInfo
	state, reconnects, entries, age *prometheus.Desc
}

func (c *followerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.reconnects
	ch <- c.entries
	ch <- c.age
}

func (c *followerCollector) Collect(ch chan<- prometheus.Metric) {
	in := c.info()
	for _, s := range followerStates {
		v := 0.0
		if s == in.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(in.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(in.Entries))
	age := -1.0
	if !in.CurrentAt.IsZero() {
		age = time.Since(in.CurrentAt).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}

// RegisterFinder registers FIND mode's gauges, read at each scrape: the
// mode itself (imapfront_mupdate_mode{mode="find"} 1) and the number of
// cached answers.
func RegisterFinder(reg prometheus.Registerer, cached func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imapfront_mupdate_mode", Help: "How the mailbox database is read (update: a streamed replica; find: FIND on demand).",
		ConstLabels: prometheus.Labels{"mode": "find"},
	}, func() float64 { return 1 }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imapfront_find_cache_entries", Help: "Answers in FIND mode's cache.",
	}, func() float64 { return float64(cached()) }))
}
