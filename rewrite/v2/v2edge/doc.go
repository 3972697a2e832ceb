// Package v2edge is what the v2 HTTP handlers share where they meet HTTP:
// the keys handler (v2http), the auth handler (v2auth) and the members,
// machines and stats handler (v2cluster). Each piece answers as etcd 3.4
// does, written once:
//
//   - JSON answers: WriteJSON (json.Encoder's line and newline, as 3.4's
//     keys, members and auth answers), WriteJSONNoNewline (json.Marshal, as
//     its stats and error messages) and WriteEmpty;
//   - headers: SetClusterID (X-Etcd-Cluster-Id) and Headers, which adds
//     X-Etcd-Index, X-Raft-Index and X-Raft-Term to a keys answer and
//     remembers the cluster ID for answers that reach no member;
//   - Router: one function per method of a resource, and 3.4's 405 with
//     Allow for any other method;
//   - Limits: the request timeout and the body limit, one value from the
//     shim's config for every handler;
//   - errors: Error (3.4's {"message":…}), WriteV2Error and V2Status (a v2
//     error code's JSON and HTTP status: v2store.Error is only the
//     condition), and WriteError and WriteKeysError, which map the errors a
//     handler meets (v2 conditions, refused credentials, members that did not
//     answer) to v2's answers here, at the edge, and log what the client is
//     not told.
package v2edge
