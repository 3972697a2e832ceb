package proxy

import "github.com/prometheus/client_golang/prometheus"

// metrics are the front's etcdshim_* series (the pool has its own, in
// package upstream).
type metrics struct {
	grpcConns       prometheus.Counter
	grpcConnsActive prometheus.Gauge
	grpcBytes       *prometheus.CounterVec
	grpcStreams     prometheus.Counter
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
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
	}
	if reg != nil {
		reg.MustRegister(m.grpcConns, m.grpcConnsActive, m.grpcBytes, m.grpcStreams, m.httpRequests, m.httpDuration)
	}
	return m
}
