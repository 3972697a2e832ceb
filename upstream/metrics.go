package upstream

import "github.com/prometheus/client_golang/prometheus"

// metrics are the pool's etcdshim_* series.
type metrics struct {
	upstreamHealthy *prometheus.GaugeVec
	upstreamCurrent *prometheus.GaugeVec
	upstreamProbe   *prometheus.HistogramVec
	failovers       prometheus.Counter
	tunnels         *prometheus.GaugeVec
	tunnelMoves     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		upstreamHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "etcdshim_upstream_healthy", Help: "1 if the upstream member answered its last health probe.",
		}, []string{"endpoint"}),
		upstreamCurrent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "etcdshim_upstream_current", Help: "1 for the upstream member requests currently go to.",
		}, []string{"endpoint"}),
		upstreamProbe: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcdshim_upstream_probe_duration_seconds", Help: "Latency of upstream health probes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"endpoint"}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "etcdshim_upstream_switches_total", Help: "Times requests moved to another upstream member.",
		}),
		tunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "etcdshim_tunnels", Help: "gRPC client connections currently relayed, by upstream member.",
		}, []string{"member"}),
		tunnelMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdshim_tunnel_moves_total", Help: "gRPC client connections the shim asked to reconnect (GOAWAY), by member left and reason (failback, drain).",
		}, []string{"member", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.upstreamHealthy, m.upstreamCurrent, m.upstreamProbe, m.failovers, m.tunnels, m.tunnelMoves)
	}
	return m
}
