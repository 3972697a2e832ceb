package v2cache

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	hits, notReady, credentials, barrierFailed prometheus.Counter
	barriers, restarts                         prometheus.Counter
	serving, keys, bytes                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcdshim_v2_read_cache_reads_total",
		Help: "v2 GETs without quorum=true, by who answered: result=hit from the cache; not_ready, credentials or barrier_failed from the member."},
		[]string{"result"})
	m := &metrics{
		hits:          reads.WithLabelValues("hit"),
		notReady:      reads.WithLabelValues("not_ready"),
		credentials:   reads.WithLabelValues("credentials"),
		barrierFailed: reads.WithLabelValues("barrier_failed"),
		barriers: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_read_cache_barriers_total",
			Help: "Freshness checks sent to the member; each serves every read that arrived while the previous one was in flight."}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcdshim_v2_read_cache_restarts_total",
			Help: "Times the cache's watch ended and the cache stopped serving until it resumed."}),
		serving: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_read_cache_serving",
			Help: "1 while the v2 read cache answers reads."}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_read_cache_keys",
			Help: "v3 keys held by the v2 read cache."}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcdshim_v2_read_cache_bytes",
			Help: "Approximate memory the v2 read cache's keys and values take."}),
	}
	if reg != nil {
		reg.MustRegister(reads, m.barriers, m.restarts, m.serving, m.keys, m.bytes)
	}
	return m
}
