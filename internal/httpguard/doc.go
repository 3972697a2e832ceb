// Package httpguard is etcd 3.4's --host-whitelist and --cors for what the
// shim answers itself: a plain-HTTP request whose Host is not listed gets
// 421 (DNS-rebinding protection, CVE-2018-5702), and CORS headers name the
// allowed origins. Requests passed through to a member are not wrapped: the
// member applies its own flags and its answer reaches the client as is.
package httpguard
