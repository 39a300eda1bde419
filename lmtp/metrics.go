package lmtp

import (
	"errors"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the LMTP proxy's instruments. A nil *Metrics records
// nothing. Labels are bounded: results from a fixed list and backend
// server names from the configuration, never an address.
type Metrics struct {
	sessions   prometheus.Gauge
	rcpts      *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	dials      *prometheus.CounterVec
	spools     prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imapfront_lmtp_sessions", Help: "Open LMTP client sessions.",
		}),
		rcpts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_lmtp_recipients_total",
			Help: "RCPT TO answers by result (accepted, unknown, deferred, no_backend, backend_unavailable, backend_refused, bad_address).",
		}, []string{"result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_lmtp_deliveries_total", Help: "Per-recipient DATA results by backend and result (delivered, deferred, failed).",
		}, []string{"backend", "result"}),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_lmtp_backend_dials_total", Help: "Backend LMTP connections opened, by backend and result (ok, unavailable).",
		}, []string{"backend", "result"}),
		spools: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imapfront_lmtp_spooled_total", Help: "Messages held in a temporary file for fan-out (above the spool threshold).",
		}),
	}
	reg.MustRegister(m.sessions, m.rcpts, m.deliveries, m.dials, m.spools)
	return m
}

func (m *Metrics) session(d float64) {
	if m != nil {
		m.sessions.Add(d)
	}
}

func (m *Metrics) rcpt(result string) {
	if m != nil {
		m.rcpts.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) dial(backend string, err error) {
	if m == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "unavailable"
	}
	m.dials.WithLabelValues(backend, r).Inc()
}

func (m *Metrics) delivery(backend string, err error) {
	if m == nil {
		return
	}
	r := "delivered"
	var se *smtp.SMTPError
	switch {
	case err == nil, errors.As(err, &se) && se.Code < 300:
	case se != nil && se.Code >= 500:
		r = "failed"
	default:
		r = "deferred"
	}
	m.deliveries.WithLabelValues(backend, r).Inc()
}

func (m *Metrics) spooled() {
	if m != nil {
		m.spools.Inc()
	}
}
