// Package gctune gives the garbage collector a minimum amount of headroom.
//
// Go's default (GOGC=100) lets the heap grow by as much as is live before
// the next collection. The shim's live heap is small (a few MiB) while it
// allocates tens of KiB per request, so under load it collected 30 times a
// second, and marking, assists and write barriers took a fifth of its CPU.
// The tuner raises GOGC after each collection so that the next one comes
// after at least Headroom bytes of allocation; once the live heap exceeds
// Headroom (a large v2 read cache, thousands of long polls) it is Go's
// default again. The cost is at most Headroom bytes of extra resident
// memory. An explicit GOGC in the environment turns the tuner off, and a
// GOMEMLIMIT still caps the heap as usual.
package gctune
