// Package actors is webauthnd's ceremony engine, built on protoactor-go and go-webauthn.
//
// Each community has a supervisor actor, spawned on first use, that owns the community's live
// ceremonies. Each ceremony is a short-lived child actor, named by a digest of its challenge,
// that holds the go-webauthn session data, verifies the browser's answer and stops itself after
// one result or when its timeout passes. A single writer actor groups the store writes of
// concurrent ceremonies into one synced Badger transaction (group commit).
//
// The supervisor only routes: it never verifies, reads the store or waits. A result for an
// unknown, finished or expired ceremony is answered by the supervisor at once.
//
// It also checks the FIDO metadata statements of communities' vendor records ([Statements],
// [ParseStatement]), so that go-webauthn's metadata types stay here too.
// It also verifies the BLOBs of the FIDO Metadata Service and reads their entries (mds.go), for
// `webauthnd metadata import`.
//
// This package is the only importer of go-webauthn and of the actor runtime's supervision;
// callers (httpapi) speak to it through [Engine] with the values of package messages.
package actors
