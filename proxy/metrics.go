package proxy

import "github.com/prometheus/client_golang/prometheus"

// metrics are the proxy's etcdshim_* series.
type metrics struct {
	grpcConns       prometheus.Counter
	grpcConnsActive prometheus.Gauge
	grpcBytes       *prometheus.CounterVec
	grpcStreams     prometheus.Counter
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	upstreamHealthy *prometheus.GaugeVec
	upstreamCurrent *prometheus.GaugeVec
	upstreamProbe   *prometheus.HistogramVec
	failovers       prometheus.Counter
	tunnels         *prometheus.GaugeVec
	tunnelMoves     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		grpcConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "etcdshim_grpc_connections_total", Help: "gRPC client connections relayed to an upstream member.",
		}),
		grpcConnsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "etcdshim_grpc_connections_active", Help: "gRPC client connections currently relayed.",
		}),
		grpcBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdshim_grpc_bytes_total", Help: "Bytes relayed on gRPC connections, by direction.",
		}, []string{"direction"}),
		grpcStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "etcdshim_grpc_streams_total", Help: "gRPC calls (HTTP/2 streams) opened through the shim.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdshim_http_requests_total", Help: "HTTP requests by surface and status code.",
		}, []string{"surface", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcdshim_http_request_duration_seconds", Help: "HTTP request latency by surface.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"surface"}),
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
		reg.MustRegister(m.grpcConns, m.grpcConnsActive, m.grpcBytes, m.grpcStreams, m.httpRequests,
			m.httpDuration, m.upstreamHealthy, m.upstreamCurrent, m.upstreamProbe, m.failovers, m.tunnels, m.tunnelMoves)
	}
	return m
}
