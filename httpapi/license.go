package httpapi

import (
	"context"
	"errors"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// licenseChecker finds the license of a request and decides which communities it may act on.
// Every licensed route asks it in the same order: authenticate (401) before the body is read,
// then scope (403, or 404 for a system license) before the body's fields are checked (400), so
// that a caller learns nothing of the API or of other communities before proving who it is.
type licenseChecker struct {
	licenses    persistence.Licenses
	communities persistence.Communities
	now         func() time.Time
	// audit records what licensed callers did (record).
	audit *Audit
}

// authenticate returns the license whose key is given: missing, unknown, disabled or expired
// licenses are 401. It reads, never writes.
func (lc licenseChecker) authenticate(ctx context.Context, key string) (persistence.License, error) {
	if key == "" {
		return persistence.License{}, messages.Errorf(messages.CodeLicenseMissing, "the licensekey header is missing")
	}
	lic, err := lc.licenses.LicenseByKey(ctx, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return lic, messages.Errorf(messages.CodeLicenseInvalid, "the license key is not valid")
	} else if err != nil {
		return lic, err
	}
	switch {
	case lic.Disabled:
		return lic, messages.Errorf(messages.CodeLicenseDisabled, "the license is disabled")
	case !lic.Expires.IsZero() && !lc.now().Before(lic.Expires):
		return lic, messages.Errorf(messages.CodeLicenseExpired, "the license has expired")
	}
	return lic, nil
}

// scope decides whether an authenticated license may act on the community a request names (by
// communityId, or the license's own when the request names none, and by tenantId when given).
// A community outside the license's reach is 403 whether or not it exists: only a system
// license, which may see every community, learns that one does not exist (404).
func (lc licenseChecker) scope(ctx context.Context, lic persistence.License, communityID, tenantID string) (persistence.Community, error) {
	if communityID == "" {
		if lic.Level != persistence.LevelCommunity {
			return persistence.Community{}, messages.Errorf(messages.CodeInvalidRequest, "communityId is required with a service or system license")
		}
		communityID = lic.CommunityID
	}
	if lic.Level == persistence.LevelCommunity && lic.CommunityID != communityID {
		return persistence.Community{}, errOutOfScope
	}
	var (
		community persistence.Community
		err       = persistence.ErrNotFound
	)
	if checkName("communityId", communityID, true) == nil { // no look-up of what cannot be a name
		community, err = lc.communities.Community(ctx, communityID)
	}
	switch {
	case errors.Is(err, persistence.ErrNotFound) && lic.Level == persistence.LevelSystem:
		return community, messages.Errorf(messages.CodeCommunityUnknown, "unknown community")
	case errors.Is(err, persistence.ErrNotFound):
		return community, errOutOfScope
	case err != nil:
		return community, err
	case lic.Level == persistence.LevelService && lic.TenantID != community.TenantID:
		return community, errOutOfScope
	case tenantID != "" && tenantID != community.TenantID && lic.Level == persistence.LevelSystem:
		return community, messages.Errorf(messages.CodeCommunityUnknown, "unknown community in this tenant")
	case tenantID != "" && tenantID != community.TenantID:
		return community, errOutOfScope
	}
	return community, nil
}

var errOutOfScope = messages.Errorf(messages.CodeLicenseScope, "the license may not act on this community")
