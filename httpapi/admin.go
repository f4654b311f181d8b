package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"

	"github.com/webauthnd/webauthnd/messages"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// AdminDeps is what the admin API uses: a writer that groups its writes with the ceremonies'.
type AdminDeps struct {
	Write func(ctx context.Context, op persistence.Op) (any, error)
	// Licenses lists every license (ids, levels, scopes; never keys).
	Licenses func(ctx context.Context) ([]persistence.License, error)
	// RotateKeys replaces the envelope key (on curve, or its current one) and/or the token
	// signing key, generated inside the server.
	RotateKeys func(ctx context.Context, envelope bool, curve string, signing bool) (any, error)
	// Backup writes a consistent snapshot of the store (webauthnd backup).
	Backup func(w io.Writer) error
	// LiveCeremonies counts the ceremony actors alive in every community.
	LiveCeremonies func(ctx context.Context) (int, error)
	// LiveByCommunity counts them per community (webauthnd stats); nil leaves it out.
	LiveByCommunity func(ctx context.Context) map[string]int
	// Commits counts the store writer's group commits since the start (webauthnd stats); nil
	// leaves them out.
	Commits func() messages.CommitCounts
	// StoreRoundTrips counts the round trips this process's store made to its database since
	// it opened, for the benchmark harness's round trips per ceremony; nil for a store that
	// makes none (Badger is in process).
	StoreRoundTrips func() uint64
	// ImportMetadata verifies an MDS BLOB and makes its entries the global metadata
	// (`webauthnd metadata import`); MDS reads them back (`webauthnd metadata list`).
	ImportMetadata func(context.Context, MetadataImport) (MetadataImported, error)
	MDS            persistence.MDS
	// Passkeys reads a community's passkeys for `webauthnd passkeys export`; ImportPasskeys
	// checks and writes a chunk of an import (a PasskeyImporter's Import). Nil: not offered.
	Passkeys interface {
		persistence.Communities
		persistence.CommunityPasskeys
	}
	ImportPasskeys func(context.Context, PasskeyImport) (PasskeyImportReport, error)
	Log            *zap.Logger
	// Audit writes the audit trail of what the admin API changes; nil writes none.
	Audit *Audit
}

// NewAdminServer returns the management API that `webauthnd community` and `webauthnd license`
// use while a server holds the store. Serve it only on the data directory's Unix socket (mode
// 0600, peer uid checked): it has no other authentication.
func NewAdminServer(a AdminDeps) http.Handler {
	return withLocalOperator(withRequestLog(a.Log, limitAdminBody(adminRoutes(a))))
}

// withLocalOperator gives the admin socket's requests the address LocalOperator: a Unix
// socket's peer has none, and the listener let in only this process's user.
func withLocalOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, LocalOperator)))
	})
}

// record writes e, completed from r, on the audit trail.
func (a AdminDeps) record(r *http.Request, e messages.AuditEvent) {
	a.Audit.Record(AuditFrom(r, e))
}

// handleWrite decodes a request of type T from the body and applies its store operation.
func handleWrite[T AdminRequest](a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		var req T
		if err := decode(r, &req); err != nil {
			return err
		}
		v, err := a.Write(r.Context(), req.Op())
		if e, ok := AuditOfAdmin(req, err); ok {
			a.record(r, e)
		}
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, v)
		return nil
	})
}

func handleListLicenses(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		licenses, err := a.Licenses(r.Context())
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]any{"licenses": licenses})
		return nil
	})
}

// handleStats answers what the benchmark harness reads: live ceremony actors and the Go heap
// (after a forced collection with ?gc=1) to check a burst's aftermath, and, over a database,
// the store's round trips so far (storeRoundTrips, absent when the store makes none), so that
// nothing needs a debug build; and what `webauthnd stats` adds for operators (addOpsStats).
func handleStats(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Query().Get("gc") == "1" {
			// Twice: what sync.Pools cached (buffers of past connections and requests) survives
			// one collection in the pools' victim cache and goes at the next.
			runtime.GC()
			runtime.GC()
		}
		live, err := a.LiveCeremonies(r.Context())
		if err != nil {
			return err
		}
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(sample)
		stats := map[string]any{
			"liveCeremonies": live,
			"heapBytes":      sample[0].Value.Uint64(),
			"goroutines":     runtime.NumGoroutine(),
		}
		if a.StoreRoundTrips != nil {
			stats["storeRoundTrips"] = a.StoreRoundTrips()
		}
		addOpsStats(r.Context(), a, stats)
		encode(w, http.StatusOK, stats)
		return nil
	})
}

func handleRotateKeys(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Envelope bool   `json:"envelope"`
			Curve    string `json:"curve"`
			Signing  bool   `json:"signing"`
		}
		if err := decode(r, &req); err != nil {
			return err
		}
		v, err := a.RotateKeys(r.Context(), req.Envelope, req.Curve, req.Signing)
		var known *messages.Error
		if err != nil && !errors.As(err, &known) {
			// A bad curve name or nothing to rotate: the operator's mistake, said plainly.
			err = messages.Wrap(messages.CodeInvalidRequest, err.Error(), err)
		}
		a.record(r, messages.AuditEvent{Event: messages.AuditKeysRotated, Outcome: messages.AuditOutcome(err)})
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, v)
		return nil
	})
}
