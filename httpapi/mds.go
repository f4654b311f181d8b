package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// AdminMetadataImportPath is where `webauthnd metadata import` sends a BLOB to a running server.
const AdminMetadataImportPath = "/admin/metadata/import"

// adminMetadataBodyLimit bounds the one admin request that carries an MDS BLOB: a BLOB of up to
// 16 MiB (the production BLOB is a few megabytes) and its root, in JSON. Every other admin
// request keeps bodyLimit.
const adminMetadataBodyLimit = 17 << 20

// MetadataImport is the body of POST /admin/metadata/import: a FIDO MDS3 BLOB to verify and
// make the global metadata.
type MetadataImport struct {
	// Blob is the BLOB as downloaded: a JWS in compact form.
	Blob string `json:"blob"`
	// Root is the trust anchor's certificate, PEM or DER; empty for the production MDS root.
	Root []byte `json:"root,omitempty"`
	// At is the clock at which the chain must be valid and the BLOB not stale; zero for now.
	At time.Time `json:"at,omitzero"`
	// Force imports a BLOB whose number is not above the stored one.
	Force bool `json:"force,omitempty"`
}

// MetadataImported answers an import: the stored BLOB, and what of it was left out or cannot be
// fully used.
type MetadataImported struct {
	Number     int    `json:"number"`
	NextUpdate string `json:"nextUpdate"` // YYYY-MM-DD
	Entries    int    `json:"entries"`
	Generation uint64 `json:"generation"`
	// Skipped are the entries left out, each with the reason.
	Skipped []string `json:"skipped,omitempty"`
	// StatementErrors are the stored entries whose statement go-webauthn's parser refuses, each
	// as "identifier: reason": their status counts, their attestation roots cannot be used.
	StatementErrors []string `json:"statementErrors,omitempty"`
}

// MetadataBlob describes the imported BLOB in a listing.
type MetadataBlob struct {
	Number     int       `json:"number"`
	NextUpdate string    `json:"nextUpdate"` // YYYY-MM-DD
	Entries    int       `json:"entries"`
	Generation uint64    `json:"generation"`
	Imported   time.Time `json:"imported"`
}

// MetadataEntry is one global entry in a listing.
type MetadataEntry struct {
	AAGUID         string   `json:"aaguid,omitempty"`
	KeyIdentifiers []string `json:"keyIdentifiers,omitempty"`
	AAID           string   `json:"aaid,omitempty"`
	Description    string   `json:"description"`
	Status         string   `json:"status"`
	StatusDate     string   `json:"statusDate,omitempty"` // YYYY-MM-DD
	Source         string   `json:"source"`
	StatementError string   `json:"statementError,omitempty"`
}

// MetadataList answers GET /admin/metadata: the imported BLOB (nil before the first import)
// and its entries, all of them or those of one AAGUID or key identifier.
type MetadataList struct {
	Blob    *MetadataBlob   `json:"blob"`
	Entries []MetadataEntry `json:"entries"`
}

// Identifier is how a listing names an entry: its AAGUID, else "keyid:" and its attestation
// key identifiers (U2F), else "aaid:" and its AAID (UAF).
func (e MetadataEntry) Identifier() string {
	switch {
	case e.AAGUID != "":
		return e.AAGUID
	case len(e.KeyIdentifiers) > 0:
		return "keyid:" + strings.Join(e.KeyIdentifiers, ",")
	}
	return "aaid:" + e.AAID
}

// ListMetadata reads the global MDS entries for a listing: those of aaguid, or of keyID, or all
// when both are empty. It is shared by the admin API and `webauthnd metadata list` run without
// a server.
func ListMetadata(ctx context.Context, r persistence.MDS, aaguid, keyID string) (MetadataList, error) {
	var (
		blob    persistence.MDSBlob
		entries []persistence.MDSEntry
		err     error
	)
	switch {
	case aaguid != "" && keyID != "":
		return MetadataList{}, messages.Errorf(messages.CodeInvalidRequest, "give an AAGUID or a key identifier, not both")
	case aaguid != "" || keyID != "":
		var e persistence.MDSEntry
		if aaguid != "" {
			e, err = r.MDSEntryByAAGUID(ctx, aaguid)
		} else {
			e, err = r.MDSEntryByKeyIdentifier(ctx, keyID)
		}
		if err == nil {
			entries = []persistence.MDSEntry{e}
			blob, err = r.CurrentMDSBlob(ctx)
		}
	default:
		blob, entries, err = r.MDSEntries(ctx)
	}
	if errors.Is(err, persistence.ErrNotFound) {
		err = nil
		if blob, err = r.CurrentMDSBlob(ctx); errors.Is(err, persistence.ErrNotFound) {
			return MetadataList{Entries: []MetadataEntry{}}, nil
		}
	}
	if err != nil {
		return MetadataList{}, err
	}
	out := MetadataList{Blob: &MetadataBlob{Number: blob.Number, NextUpdate: blob.NextUpdate.Format(time.DateOnly),
		Entries: blob.Entries, Generation: blob.Generation, Imported: blob.Imported}, Entries: make([]MetadataEntry, len(entries))}
	for i, e := range entries {
		out.Entries[i] = MetadataEntry{AAGUID: e.AAGUID, KeyIdentifiers: e.KeyIdentifiers, AAID: e.AAID, Description: e.Description,
			Status: e.Status, Source: e.Source, StatementError: e.StatementError}
		if !e.StatusDate.IsZero() {
			out.Entries[i].StatusDate = e.StatusDate.Format(time.DateOnly)
		}
	}
	return out, nil
}

// limitAdminBody is limitBody for the admin API, but for the MDS import, whose body carries a
// BLOB of megabytes.
func limitAdminBody(next http.Handler) http.Handler {
	limited := limitBody(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != AdminMetadataImportPath {
			limited.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, adminMetadataBodyLimit)
		next.ServeHTTP(w, r)
	})
}

func handleImportMetadata(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		if a.ImportMetadata == nil {
			return messages.Errorf(messages.CodeNotFound, "MDS imports are not available here")
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return messages.Errorf(messages.CodeBodyTooLarge, fmt.Sprintf("the request body is larger than %d MiB", adminMetadataBodyLimit>>20))
			}
			return messages.Wrap(messages.CodeInvalidRequest, "the request body could not be read", err)
		}
		var req MetadataImport
		if err := unmarshalStrict(raw, &req); err != nil {
			return err
		}
		v, err := a.ImportMetadata(r.Context(), req)
		a.record(r, messages.AuditEvent{Event: messages.AuditMDSImported, Outcome: messages.AuditOutcome(err)})
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, v)
		return nil
	})
}

func handleListMetadata(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		if a.MDS == nil {
			return messages.Errorf(messages.CodeNotFound, "MDS entries are not available here")
		}
		q := r.URL.Query()
		list, err := ListMetadata(r.Context(), a.MDS, q.Get("aaguid"), q.Get("keyId"))
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, list)
		return nil
	})
}
