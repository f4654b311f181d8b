package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// VendorDeps is what the vendor metadata routes use.
type VendorDeps struct {
	// Records reads the communities' records.
	Records persistence.VendorMetadata
	// Write applies one op through the engine's writer, grouped with the ceremonies' writes.
	Write func(ctx context.Context, op persistence.Op) (any, error)
	// Statements checks metadata statements.
	Statements StatementChecker
}

// StatementChecker checks a record's metadata statement (actors.Statements).
type StatementChecker interface {
	// Check returns nil when metadata is a FIDO MDS3 metadata statement for aaguid (canonical
	// form), and otherwise a 400 invalid_request saying what is wrong.
	Check(metadata, aaguid string) error
}

// vendorBodyLimit is the body limit of the vendor metadata routes: a statement may be 256 KiB
// of JSON text, which escaping inside a JSON string can make several times longer.
const vendorBodyLimit = 1 << 20

// maxFetchAAGUIDs bounds the AAGUIDs one fetch may name.
const maxFetchAAGUIDs = 1024

// vendorPutRequest is the body of PUT /vendormetadata/{communityId}.
type vendorPutRequest struct {
	AAGUID    string `json:"aaguid"`
	Metadata  string `json:"metadata"`
	Name      string `json:"name"`
	Disabled  bool   `json:"disabled"`
	UpdatedBy string `json:"updatedBy"`
}

// vendorPatchRequest is the body of PATCH /vendormetadata/{communityId}/aaguid/{aaguid}: the
// members given (not null) change.
type vendorPatchRequest struct {
	Metadata  *string `json:"metadata"`
	Name      *string `json:"name"`
	Disabled  *bool   `json:"disabled"`
	UpdatedBy string  `json:"updatedBy"`
}

// vendorFetchRequest is the body of POST /vendormetadata/{communityId}/fetch; no body, no
// aaguids or an empty list ask for every record.
type vendorFetchRequest struct {
	AAGUIDs []string `json:"aaguids"`
}

// vendorRecord is a record as fetch answers it.
type vendorRecord struct {
	ID          string    `json:"id"`
	AAGUID      string    `json:"aaguid"`
	CommunityID string    `json:"communityId"`
	Metadata    string    `json:"metadata"`
	Name        string    `json:"name"`
	Disabled    bool      `json:"disabled"`
	UpdatedBy   string    `json:"updatedBy"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// vendorCommunity returns the community a PUT or PATCH names in its path, after the license
// and the body were read: "any" (fetch only) is 400, then the license's scope (403, or 404 for
// a system license).
func vendorCommunity(lc licenseChecker, lic persistence.License, r *http.Request) (persistence.Community, error) {
	ids, err := pathParams(r, "communityId")
	if err != nil {
		return persistence.Community{}, err
	}
	switch id := ids[0]; id {
	case "":
		return persistence.Community{}, messages.Errorf(messages.CodeInvalidRequest, "communityId is required")
	case persistence.AnyCommunity:
		return persistence.Community{}, messages.Errorf(messages.CodeInvalidRequest,
			"communityId \"any\" is for fetch only: name the community whose record this is")
	default:
		return lc.scope(r.Context(), lic, id, "")
	}
}

// checkMetadata checks a record's metadata statement: its size, then the statement.
func checkMetadata(statements StatementChecker, metadata, aaguid string) error {
	switch {
	case metadata == "":
		return messages.Errorf(messages.CodeInvalidRequest, "metadata is required")
	case len(metadata) > persistence.MaxVendorMetadata:
		return messages.Errorf(messages.CodeInvalidRequest, "metadata is larger than 256 KiB")
	}
	return statements.Check(metadata, aaguid)
}

// recordAAGUID reads the AAGUID of a record to write: canonical, and not the zero one.
func recordAAGUID(field, v string) (string, error) {
	if v == "" {
		return "", messages.Errorf(messages.CodeInvalidRequest, field+" is required")
	}
	aaguid, err := persistence.CanonicalAAGUID(v)
	if err != nil {
		return "", messages.Errorf(messages.CodeInvalidRequest, field+": "+messageOf(err))
	}
	if aaguid == "00000000-0000-0000-0000-000000000000" {
		return "", messages.Errorf(messages.CodeInvalidRequest, field+" is the all-zero AAGUID, which authenticators without one (U2F) report: "+
			"a community record cannot describe them (the FIDO MDS entries find them by attestation key identifier)")
	}
	return aaguid, nil
}

// messageOf is the client-safe message of a *messages.Error.
func messageOf(err error) string {
	var e *messages.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "invalid"
}

// handlePutVendorMetadata creates a community's record for an AAGUID: 409 conflict when the
// community has one.
func handlePutVendorMetadata(lc licenseChecker, v VendorDeps, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		lic, err := lc.authenticate(r.Context(), r.Header.Get("licensekey"))
		if err != nil {
			return err
		}
		var req vendorPutRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		community, err := vendorCommunity(lc, lic, r)
		if err != nil {
			return err
		}
		aaguid, err := recordAAGUID("aaguid", req.AAGUID)
		if err != nil {
			return err
		}
		if err := checkFields(nameField{"name", req.Name, true}, nameField{"updatedBy", req.UpdatedBy, true}); err != nil {
			return err
		}
		if err := checkMetadata(v.Statements, req.Metadata, aaguid); err != nil {
			return err
		}
		res, err := v.Write(r.Context(), persistence.PutVendorMetadata{Record: persistence.VendorRecord{
			CommunityID: community.ID, AAGUID: aaguid, Metadata: req.Metadata, Name: req.Name,
			Disabled: req.Disabled, UpdatedBy: req.UpdatedBy,
		}})
		lc.record(r, vendorEvent(lic, community, aaguid, err))
		if err != nil {
			return err
		}
		rec, ok := res.(persistence.VendorRecord)
		if !ok {
			return fmt.Errorf("PutVendorMetadata answered %T", res)
		}
		encode(w, http.StatusOK, map[string]string{"aaguid": rec.AAGUID, "id": rec.ID, "status": "success", "errorMessage": ""})
		return nil
	})
}

// handlePatchVendorMetadata changes a community's record for an AAGUID: 404 not_found when
// the community has none.
func handlePatchVendorMetadata(lc licenseChecker, v VendorDeps, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		lic, err := lc.authenticate(r.Context(), r.Header.Get("licensekey"))
		if err != nil {
			return err
		}
		var req vendorPatchRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		community, err := vendorCommunity(lc, lic, r)
		if err != nil {
			return err
		}
		param, err := pathParams(r, "aaguid")
		if err != nil {
			return err
		}
		aaguid, err := persistence.CanonicalAAGUID(param[0])
		if err != nil {
			return messages.Errorf(messages.CodeInvalidRequest, "the path's aaguid: "+messageOf(err))
		}
		if err := checkName("updatedBy", req.UpdatedBy, true); err != nil {
			return err
		}
		if req.Metadata == nil && req.Name == nil && req.Disabled == nil {
			return messages.Errorf(messages.CodeInvalidRequest, "nothing to change: give metadata, name or disabled")
		}
		if req.Name != nil {
			if err := checkName("name", *req.Name, true); err != nil {
				return err
			}
		}
		if req.Metadata != nil {
			if err := checkMetadata(v.Statements, *req.Metadata, aaguid); err != nil {
				return err
			}
		}
		_, err = v.Write(r.Context(), persistence.PatchVendorMetadata{CommunityID: community.ID, AAGUID: aaguid,
			Metadata: req.Metadata, Name: req.Name, Disabled: req.Disabled, UpdatedBy: req.UpdatedBy})
		lc.record(r, vendorEvent(lic, community, aaguid, err))
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]string{"status": "success", "errorMessage": ""})
		return nil
	})
}

// handleFetchVendorMetadata answers the records of a community, or with communityId "any"
// those of every community the license may see (a service license: its tenant's; a system
// license: all; a community license: 403), for the AAGUIDs asked (all when none), as a JSON
// array.
func handleFetchVendorMetadata(lc licenseChecker, v VendorDeps, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		lic, err := lc.authenticate(r.Context(), r.Header.Get("licensekey"))
		if err != nil {
			return err
		}
		var req vendorFetchRequest
		raw, err := readBody(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(raw)) > 0 { // no body asks for every record, as {} does
			if err := unmarshalStrict(raw, &req); err != nil {
				return err
			}
		}
		ids, err := pathParams(r, "communityId")
		if err != nil {
			return err
		}
		id := ids[0]
		var community persistence.Community
		switch {
		case id == "":
			return messages.Errorf(messages.CodeInvalidRequest, "communityId is required")
		case id == persistence.AnyCommunity && lic.Level == persistence.LevelCommunity:
			return errOutOfScope
		case id != persistence.AnyCommunity:
			if community, err = lc.scope(r.Context(), lic, id, ""); err != nil {
				return err
			}
		}
		if len(req.AAGUIDs) > maxFetchAAGUIDs {
			return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("aaguids lists more than %d AAGUIDs", maxFetchAAGUIDs))
		}
		for i, a := range req.AAGUIDs {
			if _, err := persistence.CanonicalAAGUID(a); err != nil {
				return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("aaguids[%d]: %s", i, messageOf(err)))
			}
		}
		var records []persistence.VendorRecord
		if id == persistence.AnyCommunity {
			records, err = v.Records.AllVendorRecords(r.Context(), req.AAGUIDs)
		} else {
			records, err = v.Records.VendorRecordsOf(r.Context(), community.ID, req.AAGUIDs)
		}
		if err != nil {
			return err
		}
		out := make([]vendorRecord, 0, len(records))
		tenants := map[string]string{} // community id -> tenant id, for a service license
		for _, rec := range records {
			if id == persistence.AnyCommunity && lic.Level == persistence.LevelService {
				tenant, ok := tenants[rec.CommunityID]
				if !ok {
					c, err := lc.communities.Community(r.Context(), rec.CommunityID)
					if err != nil && !errors.Is(err, persistence.ErrNotFound) {
						return err
					}
					tenant = c.TenantID
					tenants[rec.CommunityID] = tenant
				}
				if tenant != lic.TenantID {
					continue
				}
			}
			out = append(out, vendorRecord{ID: rec.ID, AAGUID: rec.AAGUID, CommunityID: rec.CommunityID, Metadata: rec.Metadata,
				Name: rec.Name, Disabled: rec.Disabled, UpdatedBy: rec.UpdatedBy, UpdatedAt: rec.UpdatedAt.UTC()})
		}
		encode(w, http.StatusOK, out)
		return nil
	})
}

// vendorEvent is the audit event of a write of a community's vendor metadata record.
func vendorEvent(lic persistence.License, community persistence.Community, aaguid string, err error) messages.AuditEvent {
	return messages.AuditEvent{Event: messages.AuditVendorMetadataChanged, Outcome: messages.AuditOutcome(err),
		Tenant: community.TenantID, Community: community.ID, AAGUID: aaguid, LicenseID: lic.ID}
}
