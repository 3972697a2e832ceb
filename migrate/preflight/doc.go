// Package preflight checks an etcd cluster before a rolling upgrade and
// plans it: `etcdshim preflight --endpoints … --target 3.6`.
//
// It works in two stages so the decisions can be tested without processes:
// Collect reads facts over the network (each member's /health, /version,
// /metrics and /v2/keys, v3 Status, MemberList and Alarm, each shim's
// /debug/legacy), and Evaluate turns facts into a Report of checks
// (ok, warn, blocker), the leader and an ordered plan. WriteText and WriteJSON
// render a Report; a blocker makes the command exit 1.
//
// Decisions (README "Preflight"):
//   - The supported path is one minor at a time: every member on 3.(N-1).x and
//     cluster version 3.(N-1) to reach 3.N. Skipping a minor, or a target below
//     the running version, is a blocker.
//   - Mixed server versions mean an upgrade is under way. Towards the version
//     the newer members already run it is a warning (carry on with the members
//     still on the old one); towards any other target it is a blocker (finish
//     the upgrade in progress first).
//   - Custom v2 content is a blocker only for targets that refuse it (3.6+);
//     for earlier targets it is a warning, so the import can be planned.
//   - Legacy clients seen by the shims never block: the shims keep serving
//     them across the upgrade.
package preflight
