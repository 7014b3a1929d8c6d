// Package layering holds, as a test, the house rule on which package may import which:
// the house reads top-down, cmd → internal/gateway → the role packages → store.
//
//   - A role package (store, otbridge, asadapter, mediagw, webclient, with their
//     sub-packages) imports another role's packages only along an edge listed in
//     allowedEdges: the roles share the DSM through store, and the AS adapter drives the
//     media gateway through its client types. Anything else a role needs from another it
//     declares as a small interface of its own, and internal/gateway wires the two.
//   - No role package imports internal/ (the wiring, the test and process helpers) or
//     cmd/.
//   - The sub-packages of asadapter import nothing of its call control (the asadapter
//     package itself): they are the users side, SDP, conference documents, and the seam
//     they share.
//   - The helpers internal/proc, internal/redisrun and internal/testpeer import no role
//     package, so any test or tool can use them.
//   - Libraries (floorctl: MCPTT floor control, pure, without I/O) may be imported by any
//     package, roles included, and import no other package of the module: the AS
//     adapter's push-to-talk calls and the demo conference server share the protocol
//     without sharing a role.
//
// Tests are left out: an integration test may assemble several roles.
package layering
