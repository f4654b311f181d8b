package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/webauthnd/webauthnd/actors"
	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// metadataCommand implements `webauthnd metadata import` and `webauthnd metadata list`, through
// a running server's admin socket or, when none runs, on the store directly.
func metadataCommand(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		loc                                   storeLocation
		blobFile, rootFile, at, aaguid, keyID string
		force                                 bool
	)
	fs := flag.NewFlagSet("metadata "+verb, flag.ContinueOnError)
	loc.register(fs)
	if verb == "import" {
		fs.StringVar(&blobFile, "blob", "", "the MDS3 BLOB file, as downloaded from the FIDO Metadata Service")
		fs.StringVar(&rootFile, "root", "", "the trust anchor's certificate, PEM or DER (default: the production MDS root, GlobalSign Root R46)")
		fs.StringVar(&at, "at", "", "the clock of verification, RFC 3339 (default: now)")
		fs.BoolVar(&force, "force", false, "import a BLOB whose number is not above the stored one")
	} else {
		fs.StringVar(&aaguid, "aaguid", "", "only the entry of this AAGUID")
		fs.StringVar(&keyID, "key-id", "", "only the entry of this attestation certificate key identifier (U2F)")
	}
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	if err := loc.parsed(fs); err != nil {
		return err
	}
	if verb == "list" {
		return listMetadata(ctx, loc, aaguid, keyID, stdout, stderr)
	}
	if blobFile == "" {
		return errors.New("--blob is required")
	}
	req := httpapi.MetadataImport{Force: force}
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return fmt.Errorf("--at %q: give an RFC 3339 time, e.g. 2021-11-15T00:00:00Z", at)
		}
		req.At = t
	}
	blob, err := readLimited(blobFile, actors.MaxMDSBlobBytes)
	if err != nil {
		return fmt.Errorf("--blob: %w", err)
	}
	req.Blob = string(blob)
	if rootFile != "" {
		// A certificate is a few kilobytes; 64 KiB keeps BLOB and root within the socket's limit.
		if req.Root, err = readLimited(rootFile, 64<<10); err != nil {
			return fmt.Errorf("--root: %w", err)
		}
	}
	v, err := adminDo(ctx, loc, stderr, http.MethodPost, httpapi.AdminMetadataImportPath, req, func(s persistence.Store) (any, error) {
		return loc.direct(stderr, func() (any, error) { return importMetadata(ctx, s, req) }, func(err error) messages.AuditEvent {
			return messages.AuditEvent{Event: messages.AuditMDSImported, Outcome: messages.AuditOutcome(err)}
		})
	})
	if err != nil {
		return fmt.Errorf("metadata import: %w", err)
	}
	var done httpapi.MetadataImported
	if err := recode(v, &done); err != nil {
		return err
	}
	for _, s := range done.Skipped {
		fmt.Fprintf(stderr, "skipped %s\n", s)
	}
	if n := len(done.StatementErrors); n > 0 {
		fmt.Fprintf(stderr, "%d entries kept whose statement go-webauthn cannot parse (their status applies, their attestation roots cannot be used):\n", n)
		// The first few say what is wrong; a conformance BLOB has hundreds alike.
		for _, s := range done.StatementErrors[:min(n, 5)] {
			fmt.Fprintf(stderr, "  %s\n", s)
		}
		if n > 5 {
			fmt.Fprintf(stderr, "  and %d more\n", n-5)
		}
	}
	fmt.Fprintf(stdout, "imported %d entries (BLOB number %d, next update %s)\n", done.Entries, done.Number, done.NextUpdate)
	return nil
}

// importMetadata verifies an MDS BLOB and replaces the store's global entries with its own: the
// admin socket's import, and the command's when no server runs.
func importMetadata(ctx context.Context, store persistence.MDSImporter, req httpapi.MetadataImport) (httpapi.MetadataImported, error) {
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	blob, err := actors.VerifyMDSBlob([]byte(req.Blob), req.Root, at)
	if err != nil {
		return httpapi.MetadataImported{}, err
	}
	stored, err := store.ReplaceMDS(ctx, blob.Blob, blob.Entries, req.Force)
	if err != nil {
		return httpapi.MetadataImported{}, err
	}
	out := httpapi.MetadataImported{Number: stored.Number, NextUpdate: stored.NextUpdate.Format(time.DateOnly),
		Entries: stored.Entries, Generation: stored.Generation, Skipped: blob.Skipped}
	for _, e := range blob.Entries {
		if e.StatementError != "" {
			id := httpapi.MetadataEntry{AAGUID: e.AAGUID, KeyIdentifiers: e.KeyIdentifiers, AAID: e.AAID}.Identifier()
			out.StatementErrors = append(out.StatementErrors, fmt.Sprintf("%s (%s): %s", id, e.Description, e.StatementError))
		}
	}
	return out, nil
}

// listMetadata prints the global entries, one a line: identifier, description, latest status
// (with its date) and source, separated by tabs; the BLOB they came from goes to stderr.
func listMetadata(ctx context.Context, loc storeLocation, aaguid, keyID string, stdout, stderr io.Writer) error {
	q := url.Values{}
	if aaguid != "" {
		q.Set("aaguid", aaguid)
	}
	if keyID != "" {
		q.Set("keyId", keyID)
	}
	path := "/admin/metadata"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	v, err := adminDo(ctx, loc, stderr, http.MethodGet, path, nil, func(s persistence.Store) (any, error) {
		return httpapi.ListMetadata(ctx, s, aaguid, keyID)
	})
	if err != nil {
		return fmt.Errorf("metadata list: %w", err)
	}
	var list httpapi.MetadataList
	if err := recode(v, &list); err != nil {
		return err
	}
	if list.Blob == nil {
		return errors.New("metadata list: no MDS BLOB has been imported (webauthnd metadata import --blob FILE)")
	}
	fmt.Fprintf(stderr, "mds blob %d: %d entries, next update %s, imported %s\n",
		list.Blob.Number, list.Blob.Entries, list.Blob.NextUpdate, list.Blob.Imported.Format(time.RFC3339))
	if len(list.Entries) == 0 && (aaguid != "" || keyID != "") {
		return fmt.Errorf("metadata list: BLOB number %d has no entry for %s", list.Blob.Number, aaguid+keyID)
	}
	for _, e := range list.Entries {
		status := dash(e.Status)
		if e.StatusDate != "" {
			status += " (" + e.StatusDate + ")"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", e.Identifier(), dash(e.Description), status, e.Source)
	}
	return nil
}

// recode turns what adminDo returned (a decoded JSON object from the socket, or the value
// itself) into v.
func recode(from, v any) error {
	raw, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// readLimited reads a file of at most limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s is larger than %d KiB", name, limit>>10)
	}
	return raw, nil
}
