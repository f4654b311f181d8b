// Package httpapi is webauthnd's HTTP surface: the routes of the WebAuthn API under /webauthn,
// their JSON shapes, license checks, the one error writer, request logs, the OpenAPI document
// and the admin API served on the data directory's Unix socket, with Go's profiles (pprof.go)
// there and nowhere else.
//
// It also serves the passkey demo (demo.go, its page embedded from demo/): a relying party's
// page and backend at / and /demo/, which calls the API in-process through the same handlers,
// with a license of its own. The OpenAPI document leaves it out.
//
// Its Prometheus metrics (metrics.go) are served on a listener of their own, never with the
// API; it is the only importer of client_golang, and its Metrics are the engine's Observer.
//
// It is the only importer of httprouter and owns the wire: handlers decode and check requests,
// hand the ceremony engine plain values of package messages, and encode its answers. It never
// imports go-webauthn or Badger.
package httpapi
