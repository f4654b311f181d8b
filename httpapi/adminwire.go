package httpapi

import (
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// AdminRequest is a write request of the admin socket. The wire types below are owned here, not
// storage structs decoded straight off the socket: each names exactly what an operator may ask
// for, and Op turns it into the one store operation it stands for (a running server applies it
// through its writer, the CLI applies it to the store when no server runs).
type AdminRequest interface {
	Op() persistence.Op
}

var (
	_ AdminRequest = AdminCommunity{}
	_ AdminRequest = AdminCommunityPatch{}
	_ AdminRequest = AdminLicense{}
	_ AdminRequest = AdminRevokeLicense{}
)

// AdminCommunitySettings are the settings of a community an operator chooses.
type AdminCommunitySettings struct {
	ID               string   `json:"id"`
	TenantID         string   `json:"tenantId"`
	Name             string   `json:"name"`
	RPIDs            []string `json:"rpIds"`
	Origins          []string `json:"origins"`
	TopOrigins       []string `json:"topOrigins,omitempty"`
	UserVerification string   `json:"userVerification"`
	BlockClones      bool     `json:"blockClones,omitempty"`
	AttestationTrust string   `json:"attestationTrust,omitempty"`
}

// AdminCommunity creates a community (POST /admin/communities), its tenant when new, and gives
// the tenant host names.
type AdminCommunity struct {
	Community AdminCommunitySettings `json:"community"`
	TenantDNS []string               `json:"tenantDns,omitempty"`
}

// Op implements AdminRequest.
func (a AdminCommunity) Op() persistence.Op {
	c := a.Community
	return persistence.PutCommunity{Create: true, TenantDNS: a.TenantDNS, Community: persistence.Community{
		ID: c.ID, TenantID: c.TenantID, Name: c.Name, RPIDs: c.RPIDs, Origins: c.Origins, TopOrigins: c.TopOrigins,
		UserVerification: c.UserVerification, BlockClones: c.BlockClones, AttestationTrust: c.AttestationTrust}}
}

// AdminCommunityPatch changes the settings it names of a community (PATCH /admin/communities).
type AdminCommunityPatch struct {
	ID               string   `json:"id"`
	TenantID         string   `json:"tenantId,omitempty"`
	Name             string   `json:"name,omitempty"`
	RPIDs            []string `json:"rpIds,omitempty"`
	Origins          []string `json:"origins,omitempty"`
	TopOrigins       []string `json:"topOrigins,omitempty"`
	UserVerification string   `json:"userVerification,omitempty"`
	BlockClones      *bool    `json:"blockClones,omitempty"`
	AttestationTrust string   `json:"attestationTrust,omitempty"`
	TenantDNS        []string `json:"tenantDns,omitempty"`
}

// Op implements AdminRequest.
func (a AdminCommunityPatch) Op() persistence.Op {
	return persistence.PatchCommunity{ID: a.ID, TenantID: a.TenantID, Name: a.Name, RPIDs: a.RPIDs, Origins: a.Origins,
		TopOrigins: a.TopOrigins, UserVerification: a.UserVerification, BlockClones: a.BlockClones,
		AttestationTrust: a.AttestationTrust, TenantDNS: a.TenantDNS}
}

// AdminLicense stores a new license (POST /admin/licenses). The CLI makes the key and sends its
// SHA-256 only: the key never crosses the socket. A license cannot be re-keyed or created
// disabled through the socket.
type AdminLicense struct {
	ID          string    `json:"id"`
	KeyHash     []byte    `json:"keyHash"`
	Level       string    `json:"level"`
	CommunityID string    `json:"communityId,omitempty"`
	TenantID    string    `json:"tenantId,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Created     time.Time `json:"created"`
}

// AdminLicenseOf is the request that stores l.
func AdminLicenseOf(l persistence.License) AdminLicense {
	return AdminLicense{ID: l.ID, KeyHash: l.KeyHash, Level: l.Level, CommunityID: l.CommunityID, TenantID: l.TenantID,
		Expires: l.Expires, Created: l.Created}
}

// Op implements AdminRequest.
func (a AdminLicense) Op() persistence.Op {
	return persistence.PutLicense{License: persistence.License{ID: a.ID, KeyHash: a.KeyHash, Level: a.Level,
		CommunityID: a.CommunityID, TenantID: a.TenantID, Expires: a.Expires, Created: a.Created}}
}

// AdminRevokeLicense disables a license at once (POST /admin/licenses/revoke).
type AdminRevokeLicense struct {
	ID string `json:"id"`
}

// Op implements AdminRequest.
func (a AdminRevokeLicense) Op() persistence.Op { return persistence.RevokeLicense{ID: a.ID} }
