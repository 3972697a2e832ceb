// Package ctxtime waits in a way a context can cut short: the pauses
// between retries of the shim's long-running loops (the v2 follower, the
// picker, v2 import --follow).
package ctxtime
