// Package gatewaytest is what the gateway's own tests and the e2e tests of
// the shim's gateway share about its websocket watch route: its URL, and the
// status an upgrade to it is answered with. Nothing in the shim imports it.
package gatewaytest
