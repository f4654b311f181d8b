package actors

// Vendor metadata and the FIDO Metadata Service govern the ceremonies: which authenticator
// models may register and sign in, whose attestation is trusted, and what a model is called.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/metadata"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/google/uuid"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// MetadataStore is what the metadata look-ups read: the communities' vendor records and the
// global entries of the last MDS import, each with a generation that moves on every change.
type MetadataStore interface {
	persistence.VendorMetadata
	persistence.MDS
}

// model is what metadata says of one authenticator model (an AAGUID) in one community.
type model struct {
	// name is the community record's name, else the statement's description, else empty.
	name string
	// disabled is set by the community's record: registrations and sign-ins are refused.
	disabled bool
	// entry is what decides attestation trust: the community record's statement, else the MDS
	// entry; nil when neither has a statement go-webauthn can read.
	entry *metadata.Entry
	// reports are the MDS entry's status reports, judged at the clock of each ceremony.
	reports []metadata.StatusReport
}

// refusal says why the model may not register or sign in at now, or is empty.
func (m model) refusal(now time.Time) string {
	if m.disabled {
		return "it is disabled by this community's vendor metadata"
	}
	if len(m.reports) == 0 {
		return ""
	}
	if err := metadata.ValidateStatusReportsAt(m.reports, nil, metadata.DefaultUndesiredAuthenticatorStatuses(), now); err != nil {
		return "the FIDO Metadata Service reports it as " + err.Error()
	}
	return ""
}

// models looks up and caches the models of (community, AAGUID). Sign-ins read the cache only: a
// change to vendor records or an MDS import moves a generation, and the next look-up finds the
// cache stale and starts a new one, so a change takes effect at once. The store keeps its
// generations current with every write, this process's or (over a shared database) another's:
// see persistence.VendorMetadata and persistence.MDS.
type models struct {
	store MetadataStore
	cache atomic.Pointer[modelCache]
}

// modelCache holds the models read under one pair of generations.
type modelCache struct {
	vendorGen, mdsGen uint64
	byKey             sync.Map // community + "\x00" + AAGUID -> model
	size              atomic.Int64
}

// maxCachedModels bounds a cache's entries. The AAGUID of a registration is whatever the
// authenticator claims (under none attestation, any 16 bytes), and a registration looks its
// model up even when it is then refused and stores nothing, so without a bound a licensed
// caller could fill memory with made-up models until the next vendor write or import. Beyond
// the bound a look-up reads the store (two reads) and caches nothing.
const maxCachedModels = 1 << 16

func newModels(store MetadataStore) *models {
	m := &models{store: store}
	m.cache.Store(&modelCache{})
	return m
}

// of returns the model of a raw AAGUID in a community. The generations are read before the
// records, so a model read while a change commits is cached under the older generation and
// dropped at the next look-up.
func (ms *models) of(ctx context.Context, communityID string, aaguid []byte) (model, error) {
	if len(aaguid) != 16 || [16]byte(aaguid) == uuid.Nil {
		return model{}, nil // no AAGUID (U2F): records cannot describe it
	}
	vendorGen, mdsGen := ms.store.VendorGeneration(), ms.store.MDSGeneration()
	cache := ms.cache.Load()
	if cache.vendorGen != vendorGen || cache.mdsGen != mdsGen {
		fresh := &modelCache{vendorGen: vendorGen, mdsGen: mdsGen}
		if ms.cache.CompareAndSwap(cache, fresh) {
			cache = fresh
		} else {
			cache = ms.cache.Load()
		}
	}
	key := communityID + "\x00" + string(aaguid)
	if m, ok := cache.byKey.Load(key); ok {
		return m.(model), nil
	}
	id, _ := persistence.FormatAAGUID(aaguid)
	m, err := ms.read(ctx, communityID, id)
	if err != nil {
		return model{}, err
	}
	if cache.vendorGen == vendorGen && cache.mdsGen == mdsGen && cache.size.Load() < maxCachedModels {
		if _, loaded := cache.byKey.LoadOrStore(key, m); !loaded {
			cache.size.Add(1)
		}
	}
	return m, nil
}

// read looks a model up in the store: the community's record first, then the global MDS entry.
// The record's name, disabled flag and statement win; the MDS entry's status reports apply
// either way (a record cannot lift a revocation).
func (ms *models) read(ctx context.Context, communityID, aaguid string) (model, error) {
	var m model
	record, err := ms.store.VendorRecord(ctx, communityID, aaguid)
	switch {
	case err == nil:
		m.name, m.disabled = record.Name, record.Disabled
		if st, err := ParseStatement(record.Metadata); err == nil {
			m.entry = &metadata.Entry{AaGUID: st.AaGUID, MetadataStatement: st}
		}
	case !errors.Is(err, persistence.ErrNotFound):
		return m, err
	}
	e, err := ms.store.MDSEntryByAAGUID(ctx, aaguid)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return m, nil
	case err != nil:
		return m, err
	}
	if m.name == "" {
		m.name = e.Description
	}
	if m.entry == nil {
		if parsed, err := parseMDSEntry(e); err == nil {
			m.entry = &parsed
		}
	}
	m.reports = mdsStatusReports(e)
	return m, nil
}

// mdsStatusReports reads an MDS entry's status reports on their own: an entry whose statement
// go-webauthn cannot parse still has a status that counts. So does a report that go-webauthn's
// parser refuses for a part the status check does not need (a malformed url or certificate):
// it counts with its status and dates (which the import checked), and no certificate, so that
// a REVOKED model never passes as unknown.
func mdsStatusReports(e persistence.MDSEntry) []metadata.StatusReport {
	var j struct {
		StatusReports []metadata.StatusReportJSON `json:"statusReports"`
	}
	if err := json.Unmarshal(e.Entry, &j); err != nil {
		return nil
	}
	out := make([]metadata.StatusReport, 0, len(j.StatusReports))
	for _, r := range j.StatusReports {
		parsed, err := r.Parse()
		if err != nil {
			parsed = metadata.StatusReport{Status: r.Status, EffectiveDate: reportDate(r.EffectiveDate), SunsetDate: reportDate(r.SunsetDate)}
		}
		out = append(out, parsed)
	}
	return out
}

// reportDate reads a status report's date (YYYY-MM-DD), nil when absent or unreadable.
func reportDate(s string) *time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return nil
	}
	return &t
}

// refused is the 403 of a model that may not register or sign in.
func refused(m model, aaguid []byte, why string) error {
	name := m.name
	if name == "" {
		name = formatAAGUID(aaguid)
	}
	return messages.Errorf(messages.CodeAuthenticatorRefused, fmt.Sprintf("the authenticator %q is refused: %s", name, why))
}

// attestationVerdict judges a verified registration's attestation against metadata: whether
// the FIDO Metadata Service refuses a U2F authenticator (which has no AAGUID, so model m cannot
// describe it: the MDS finds it by its attestation certificate's key identifier), and whether the
// x5c chain leads to a root of the model's statement (none and self attestation are never
// trusted). The checks are go-webauthn's own (protocol.ValidateMetadata), run against a provider
// that answers from m and from the MDS entries, reading them under ctx.
func (ms *models) attestationVerdict(ctx context.Context, m model, aaguid uuid.UUID, attestationType, format string, x5cs []any, now time.Time) (trusted bool, refusal string) {
	if aaguid == uuid.Nil && len(x5cs) > 0 {
		status := &metadataProvider{ms: ms, now: now, validateStatus: true}
		if err := protocol.ValidateMetadata(ctx, status, aaguid, attestationType, format, x5cs); err != nil && status.statusErr != "" {
			return false, "the FIDO Metadata Service reports it as " + status.statusErr
		}
	}
	switch attestationType {
	case "", "none", "self":
		return false, ""
	}
	if len(x5cs) == 0 {
		return false, ""
	}
	trust := &metadataProvider{ms: ms, entry: m.entry, now: now, validateTrust: true}
	err := protocol.ValidateMetadata(ctx, trust, aaguid, attestationType, format, x5cs)
	return err == nil && trust.found, ""
}

// metadataProvider is a go-webauthn metadata provider over one model and the MDS entries, with
// one check switched on: the status reports or the trust anchor.
type metadataProvider struct {
	ms                            *models
	entry                         *metadata.Entry
	now                           time.Time
	validateStatus, validateTrust bool
	found                         bool   // an entry was found for the authenticator
	statusErr                     string // why the status reports refused it
}

var _ metadata.ExtendedProvider = (*metadataProvider)(nil)

func (p *metadataProvider) GetEntry(context.Context, uuid.UUID) (*metadata.Entry, error) {
	p.found = p.found || p.entry != nil
	return p.entry, nil
}

func (p *metadataProvider) GetEntryByKeyIdentifier(ctx context.Context, keyID string) (*metadata.Entry, error) {
	e, err := p.ms.store.MDSEntryByKeyIdentifier(ctx, keyID)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	parsed, err := parseMDSEntry(e)
	if err != nil {
		// The statement is unreadable, its status is not: judge the status alone.
		parsed = metadata.Entry{StatusReports: mdsStatusReports(e)}
		if p.validateTrust {
			return nil, nil
		}
	}
	p.found = true
	return &parsed, nil
}

func (p *metadataProvider) ValidateStatusReports(_ context.Context, reports []metadata.StatusReport) error {
	err := metadata.ValidateStatusReportsAt(reports, nil, metadata.DefaultUndesiredAuthenticatorStatuses(), p.now)
	if err != nil {
		p.statusErr = err.Error()
	}
	return err
}

func (p *metadataProvider) GetValidateEntry(context.Context) bool                  { return false }
func (p *metadataProvider) GetValidateEntryPermitZeroAAGUID(context.Context) bool  { return false }
func (p *metadataProvider) GetValidateTrustAnchor(context.Context) bool            { return p.validateTrust }
func (p *metadataProvider) GetValidateStatus(context.Context) bool                 { return p.validateStatus }
func (p *metadataProvider) GetValidateAttestationTypes(context.Context) bool       { return false }
func (p *metadataProvider) GetValidateEntryKeyIdentifier(context.Context) bool     { return true }
func (p *metadataProvider) GetValidateStatusCertificateScope(context.Context) bool { return true }
func (p *metadataProvider) GetValidateAAGUID(context.Context) bool                 { return false }
func (p *metadataProvider) GetValidateAttestationFormats(context.Context) bool     { return false }
func (p *metadataProvider) GetValidateAlgorithms(context.Context) bool             { return false }
func (p *metadataProvider) GetValidateBackupEligibility(context.Context) bool      { return false }
func (p *metadataProvider) GetValidateExtensions(context.Context) bool             { return false }
func (p *metadataProvider) GetValidateUserVerification(context.Context) bool       { return false }
