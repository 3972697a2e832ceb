// Package promchild remembers the children of Prometheus metric vectors by
// their label values. WithLabelValues hashes the labels and takes the
// vector's lock on every call, which hot request paths (every gateway and
// v2 request counts itself) should not pay per request.
package promchild
