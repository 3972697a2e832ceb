// Package metricsalias serves /metrics: the sidecar's own member's page,
// plus the metric names that dashboards and alerts written for etcd ≤ 3.4
// use and the member no longer serves, plus the shim's own etcdshim_*
// series. It also keeps the migration telemetry (/debug/legacy) and the v2
// HTTP metrics the shim's v2 layer produces under etcd's v2-era names.
//
// The upstream page is fetched in the format the scraper negotiated (text
// 0.0.4, or delimited protobuf), without gzip, and kept as the member's bytes:
// a wire-level scan indexes its families and checks there are no sample
// timestamps, and the answer is those bytes with the added families spliced
// in at their sorted place (page.go, answer.go). Only alias sources are
// decoded. Aliases are clones of the source family under the old name (so
// type, labels, buckets and values are the source's at the same scrape), and
// an alias is emitted only when the upstream lacks the old name: 3.4 still
// serves all five promoted names and 3.5 still serves range_total, and a
// duplicate family would fail the whole scrape. A page the scan does not
// fully understand, or a scraper wanting another format than the fetch
// brought, takes the decode-everything path instead. Concurrent scrapes
// share one upstream fetch and its encoded answer; a failed fetch answers
// 503 so Prometheus' up reflects the member, logged once per outage. The
// shim's go_* and process_* series are served only on /metrics/shim, so they
// never collide with the member's.
package metricsalias
