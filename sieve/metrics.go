package sieve

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ManageSieve proxy's instruments; a nil *Metrics records
// nothing. Labels are bounded (result).
type Metrics struct {
	sessions prometheus.Gauge
	logins   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "imapfront_sieve_sessions", Help: "Open ManageSieve client sessions."}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_sieve_logins_total", Help: "ManageSieve logins by result (ok, failed, unavailable).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.sessions, m.logins)
	return m
}

func (m *Metrics) session(d float64) {
	if m != nil {
		m.sessions.Add(d)
	}
}

func (m *Metrics) login(result string) {
	if m != nil {
		m.logins.WithLabelValues(result).Inc()
	}
}
