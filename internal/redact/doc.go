// Package redact keeps the shim's internal addresses out of what clients
// see: an error met while reaching a member (a refused dial, a broken
// transport) is told to the client as "upstream member unavailable", and
// the detail stays in the shim's log.
package redact
