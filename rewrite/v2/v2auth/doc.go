// Package v2auth maps etcd 3.4's v2 authentication onto v3 auth.
//
// Tokens turns a v2 request's Basic credentials into a v3 token
// (Authenticate), cached per credential with bounded memory and dropped when
// the member rejects it, so every v2 request runs as its own user and the
// member enforces the permissions. Anonymous requests run as nobody, or as
// --v2-guest-user when set: v3 has no guest role. The shim's own upstream
// credentials are never used for a client's request.
//
// Handler serves /v2/auth/enable, /v2/auth/users[/name] and
// /v2/auth/roles[/name] on the v3 Auth API: users and roles are the objects
// v3 clients see. v2 permissions become v3 key permissions under the v2
// layout: "/path" is the v3 key <v2-prefix>/path, "/path*" the v3 prefix
// <v2-prefix>/path; v2 read/write become v3 READ/WRITE/READWRITE.
package v2auth
