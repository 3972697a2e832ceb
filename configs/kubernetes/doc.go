// Package kubernetes holds the Kubernetes deployment example; its test
// decodes every manifest with the Kubernetes API types and checks the
// upgrade sequence they promise (hooks, probes, disruption budget, TLS,
// memory bounds).
package kubernetes
