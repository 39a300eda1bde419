package pop3

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the POP3 proxy's instruments; a nil *Metrics records
// nothing. Labels are bounded (mechanism, result).
type Metrics struct {
	sessions prometheus.Gauge
	logins   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "imapfront_pop3_sessions", Help: "Open POP3 client sessions."}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapfront_pop3_logins_total", Help: "POP3 logins by mechanism (USER, PLAIN) and result (ok, failed, unavailable).",
		}, []string{"mechanism", "result"}),
	}
	reg.MustRegister(m.sessions, m.logins)
	return m
}

func (m *Metrics) session(d float64) {
	if m != nil {
		m.sessions.Add(d)
	}
}

func (m *Metrics) login(mech, result string) {
	if m != nil {
		m.logins.WithLabelValues(mech, result).Inc()
	}
}
