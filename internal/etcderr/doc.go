// Package etcderr classifies the errors a member returns by their gRPC status
// code and etcd's rpctypes errors, looking through the %w wrapping the shim
// adds, instead of matching substrings of messages. It also holds the one
// error of the shim's own that is classified with them, ErrBadCredentials
// (refused v2 credentials), so that every v2 surface answers it as the
// member's refusals.
package etcderr
