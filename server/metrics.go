package server

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/tools"
)

// metrics are the server's Prometheus metrics, served at /metrics. They
// carry counts, durations and tool names only: no key, actor, argument or
// workspace, so the endpoint needs no authentication (it is on the same
// listener, loopback by default).
type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// newMetrics registers the server's metrics in a registry of its own (so
// several servers in one process do not collide). With an outbox, the audit
// backlog is a gauge read from it at every scrape.
func newMetrics(outbox store.AuditOutbox) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signalsmith_decisions_total",
			Help: "Audited operations by effect (allowed, denied, approval_required, executed, failed) and source.",
		}, []string{"effect", "source"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signalsmith_tool_call_duration_seconds",
			Help:    "Duration of MCP tool calls through the gate, from arrival to the audit record, by tool.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17),
		}, []string{"tool"}),
	}
	m.reg.MustRegister(m.decisions, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if outbox != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signalsmith_audit_backlog",
			Help: "Audit events recorded in the store but not yet shipped to the warehouse.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s, err := outbox.AuditShipping(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(s.Backlog)
		}))
	}
	return m
}

// watchQueries adds gauges of the warehouse queries running and waiting
// for a slot in q, read at every scrape.
func (m *metrics) watchQueries(q *tools.QueryQueue) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signalsmith_warehouse_queries_running",
			Help: "Warehouse queries of tool calls running now.",
		}, func() float64 { r, _ := q.Stats(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signalsmith_warehouse_queries_waiting",
			Help: "Warehouse queries of tool calls waiting for a slot (per-key, per-human and total caps).",
		}, func() float64 { _, w := q.Stats(); return float64(w) }),
	)
}

// observe counts one audited event; tool is the label to use ("" for an
// event that was not a tool call).
func (m *metrics) observe(ev *store.AuditEvent, tool string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(ev.Decision, ev.Source).Inc()
	if tool != "" {
		m.latency.WithLabelValues(tool).Observe(ev.LatencyMS / 1000)
	}
}
