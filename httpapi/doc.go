// Package httpapi is webauthnd's HTTP surface: the routes of the WebAuthn API under /webauthn,
// their JSON shapes, license checks, the one error writer, request logs, the OpenAPI document
// and the admin API served on the data directory's Unix socket.
//
// It is the only importer of httprouter and owns the wire: handlers decode and check requests,
// hand the ceremony engine plain values of package messages, and encode its answers. It never
// imports go-webauthn or Badger.
package httpapi
