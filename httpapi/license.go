package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// licenseChecker finds the license of a request and decides which communities it may act on.
type licenseChecker struct {
	licenses    persistence.Licenses
	communities persistence.Communities
	now         func() time.Time
}

// scope checks the request's licensekey and the community it names (by communityId, or the
// license's own when the request names none, and by tenantId when given). Missing, unknown,
// disabled or expired licenses are 401; a community outside the license's reach is 403; a
// service or system license naming an unknown community is 404.
func (lc licenseChecker) scope(r *http.Request, communityID, tenantID, rpID string) (messages.Scope, error) {
	key := r.Header.Get("licensekey")
	if key == "" {
		return messages.Scope{}, messages.Errorf(messages.CodeLicenseMissing, "the licensekey header is missing")
	}
	lic, err := lc.licenses.LicenseByKey(key)
	if errors.Is(err, persistence.ErrNotFound) {
		return messages.Scope{}, messages.Errorf(messages.CodeLicenseInvalid, "the license key is not valid")
	} else if err != nil {
		return messages.Scope{}, err
	}
	switch {
	case lic.Disabled:
		return messages.Scope{}, messages.Errorf(messages.CodeLicenseDisabled, "the license is disabled")
	case !lic.Expires.IsZero() && !lc.now().Before(lic.Expires):
		return messages.Scope{}, messages.Errorf(messages.CodeLicenseExpired, "the license has expired")
	}
	if communityID == "" {
		if lic.Level != persistence.LevelCommunity {
			return messages.Scope{}, messages.Errorf(messages.CodeInvalidRequest, "communityId is required with a service or system license")
		}
		communityID = lic.CommunityID
	}
	if lic.Level == persistence.LevelCommunity && lic.CommunityID != communityID {
		return messages.Scope{}, errOutOfScope
	}
	community, err := lc.communities.Community(communityID)
	if errors.Is(err, persistence.ErrNotFound) {
		if lic.Level == persistence.LevelCommunity {
			return messages.Scope{}, errOutOfScope
		}
		return messages.Scope{}, messages.Errorf(messages.CodeCommunityUnknown, "unknown community")
	} else if err != nil {
		return messages.Scope{}, err
	}
	if lic.Level == persistence.LevelService && lic.TenantID != community.TenantID {
		return messages.Scope{}, errOutOfScope
	}
	if tenantID != "" && tenantID != community.TenantID {
		return messages.Scope{}, errOutOfScope
	}
	if rpID != "" && !slices.Contains(community.RPIDs, rpID) {
		return messages.Scope{}, messages.Errorf(messages.CodeRPIDNotAllowed, "dns is not an RP ID of this community")
	}
	return messages.Scope{TenantID: community.TenantID, CommunityID: community.ID, RPID: rpID, LicenseID: lic.ID}, nil
}

var errOutOfScope = messages.Errorf(messages.CodeLicenseScope, "the license may not act on this community")
