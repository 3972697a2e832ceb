// Package etcderr classifies the errors a member returns by their gRPC status
// code and etcd's rpctypes errors, looking through the %w wrapping the shim
// adds, instead of matching substrings of messages.
package etcderr
