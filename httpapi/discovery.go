package httpapi

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// communityInfoRequest is what BlockID SDKs send to find their tenant and community: the
// tenant by tenantId or by one of its host names (dns), the community by id or name.
type communityInfoRequest struct {
	DNS           string `json:"dns"`
	TenantID      string `json:"tenantId"`
	CommunityID   string `json:"communityId"`
	CommunityName string `json:"communityName"`
}

var errNoSuchCommunity = messages.Errorf(messages.CodeNotFound, "no such tenant or community")

// handleCommunityInfo answers BlockID's community_info/fetch with non-secret data only. It is
// public, as in the original service.
func handleCommunityInfo(communities persistence.Communities, envelope *Keyring, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var req communityInfoRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if (req.TenantID == "" && req.DNS == "") || (req.CommunityID == "" && req.CommunityName == "") {
			return messages.Errorf(messages.CodeInvalidRequest, "give tenantId or dns, and communityId or communityName")
		}
		var (
			tenant persistence.Tenant
			err    error
		)
		if req.TenantID != "" {
			tenant, err = communities.Tenant(r.Context(), req.TenantID)
		} else {
			tenant, err = communities.TenantByDNS(r.Context(), req.DNS)
		}
		if err != nil {
			return notFound(err)
		}
		var community persistence.Community
		if req.CommunityID != "" {
			community, err = communities.Community(r.Context(), req.CommunityID)
			if err == nil && community.TenantID != tenant.ID {
				err = persistence.ErrNotFound
			}
		} else {
			community, err = communities.CommunityByName(r.Context(), tenant.ID, req.CommunityName)
		}
		if err != nil {
			return notFound(err)
		}
		dns := ""
		if len(tenant.DNS) > 0 {
			dns = tenant.DNS[0]
		}
		encode(w, http.StatusOK, map[string]any{
			"tenant":    map[string]string{"id": tenant.ID, "dns": dns, "tenanttag": tenant.ID, "name": tenant.Name},
			"community": map[string]string{"id": community.ID, "name": community.Name, "publicKey": envelope.Current().PublicKey()},
		})
		return nil
	})
}

func notFound(err error) error {
	if errors.Is(err, persistence.ErrNotFound) {
		return errNoSuchCommunity
	}
	return err
}

// strictTransportSecurity tells browsers to keep to HTTPS, on HTTPS responses only.
func strictTransportSecurity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
