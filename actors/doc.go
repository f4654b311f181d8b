// Package actors is webauthnd's ceremony engine, built on protoactor-go and go-webauthn.
//
// Each community has a supervisor actor, spawned on first use, that owns the community's live
// ceremonies. Each ceremony is a short-lived child actor, named by a digest of its challenge,
// that holds the go-webauthn session data, verifies the browser's answer and stops itself after
// one result or when its timeout passes. A single writer actor groups the store writes of
// concurrent ceremonies into one durable transaction of the store (group commit).
//
// The supervisor only routes: it never verifies, reads the store or waits. A result for an
// unknown, finished or expired ceremony is answered by the supervisor at once.
//
// Who runs what (dispatcher.go): supervisors and the writer run each message in the goroutine
// that sent it, as their messages take microseconds and never wait; ceremonies run on a pool
// of long-lived workers, so that a ceremony's run never happens inside a supervisor's.
//
// Challenges carry MACs under [Config.ChallengeKey] (challenge.go): a result whose challenge
// this service did not issue for its kind, community and license is refused before any
// supervisor or store sees it, with any store.
//
// # Nodes
//
// Actors are node-local: each node (process) has its own supervisors, ceremony actors, writer
// and limiter. With [Config.Ceremonies] set (a store that several nodes share), what a result
// needs crosses nodes through the store: each ceremony's state is written when its options are
// issued and taken, atomically and once, by the node its result reaches, which rebuilds the
// ceremony there if it is not the issuing node (shared.go, state.go). What stays per node:
//
//   - the live-ceremony caps (MaxCeremonies, MaxCeremoniesPerLicense) count the ceremonies this
//     node issued, and a ceremony finished by another node keeps counting here until its actor
//     times out (a node does not poll the store to learn of it); a result finished here for
//     another node's ceremony counts only while it is being verified;
//   - the failed sign-in limiter's buckets count the failures verified on this node, so behind
//     a load balancer a credential or license gets up to one burst per node.
//
// Without Config.Ceremonies (the embedded store: one process), ceremonies live in memory only.
//
// It also checks the FIDO metadata statements of communities' vendor records ([Statements],
// [ParseStatement]), so that go-webauthn's metadata types stay here too.
// It also verifies the BLOBs of the FIDO Metadata Service and reads their entries (mds.go), for
// `webauthnd metadata import`.
//
// This package is the only importer of go-webauthn and of the actor runtime's supervision;
// callers (httpapi) speak to it through [Engine] with the values of package messages.
package actors
