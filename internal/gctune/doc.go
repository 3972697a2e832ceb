// Package gctune gives the garbage collector a minimum amount of headroom.
//
// Go's default (GOGC=100) lets the heap grow by as much as is live before
// the next collection. The shim's live heap is small (a few MiB) while it
// allocates tens of KiB per request, so under load it collected about 30
// times a second, and marking and assists took about a tenth of its CPU.
// After each collection the tuner sets GOGC so that the next one comes
// after at least the headroom's worth of allocation; once the live heap is
// larger than the headroom (a large v2 read cache, thousands of long polls)
// GOGC is Go's default again. The cost is bounded by the headroom: it is
// extra resident memory, not a multiple of the heap. An explicit GOGC in the
// environment turns the tuner off, and GOMEMLIMIT still caps the heap.
package gctune
