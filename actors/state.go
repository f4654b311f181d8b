package actors

// A ceremony's state as it crosses nodes: what the ceremony actor of the node that issued the
// options holds, written to the ceremony table (Config.Ceremonies) before the options are
// answered, so that the node a result reaches can rebuild the actor and finish the ceremony
// exactly as the issuing node would have. The store keeps it as opaque bytes; this file is the
// only one that knows its encoding (JSON, versioned).

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// stateVersion is the version of the encoding below. A node reads only its own version: during
// a rolling upgrade that changes it, a ceremony whose options came from a node of the other
// version is answered ceremony_not_found (the client starts again), never misread.
const stateVersion = 1

// ceremonyState is everything a result needs. The community is the one the options were built
// from (not re-read: no database round trip, and the same checks as on the issuing node); the
// user is the one the options named, with the passkeys loaded then, so that a sign-in's result
// reads no credential (RecordSignIn re-reads the one it updates).
type ceremonyState struct {
	Version     int                             `json:"v"`
	Kind        kind                            `json:"kind"`
	SessionInfo string                          `json:"sessionInfo"`
	Scope       stateScope                      `json:"scope"`
	Community   persistence.Community           `json:"community"`
	Session     webauthn.SessionData            `json:"session"`
	User        *stateUser                      `json:"user,omitempty"`
	Decoy       bool                            `json:"decoy,omitempty"`
	Selection   messages.AuthenticatorSelection `json:"selection"`
	Expires     time.Time                       `json:"expires"`
}

// stateScope is a messages.Scope with names of its own, so that the encoding does not follow
// the messages package's field names.
type stateScope struct {
	TenantID    string `json:"tenantId"`
	CommunityID string `json:"communityId"`
	RPID        string `json:"rpId"`
	LicenseID   string `json:"licenseId"`
}

// stateUser is a waUser: the user and the passkeys go-webauthn was given.
type stateUser struct {
	CommunityID string            `json:"communityId"`
	Username    string            `json:"username"`
	DisplayName string            `json:"displayName"`
	Handle      []byte            `json:"handle"`
	Credentials []stateCredential `json:"credentials,omitempty"`
}

// stateCredential is what webauthnCredential (or a decoy) puts in a webauthn.Credential, under
// names of its own: go-webauthn's JSON form of a Credential rewrites old attestation types when
// it reads them.
type stateCredential struct {
	ID                []byte   `json:"id"`
	PublicKey         []byte   `json:"publicKey"`
	AttestationType   string   `json:"attestationType,omitempty"`
	AttestationFormat string   `json:"attestationFormat,omitempty"`
	Transports        []string `json:"transports,omitempty"`
	UserPresent       bool     `json:"up,omitempty"`
	UserVerified      bool     `json:"uv,omitempty"`
	BackupEligible    bool     `json:"be,omitempty"`
	BackupState       bool     `json:"bs,omitempty"`
	AAGUID            []byte   `json:"aaguid,omitempty"`
	SignCount         uint32   `json:"signCount,omitempty"`
	CloneWarning      bool     `json:"cloneWarning,omitempty"`
}

// encodeState is the state of a ceremony whose options were just built.
func (c *ceremony) encodeState() ([]byte, error) {
	s := ceremonyState{
		Version:     stateVersion,
		Kind:        c.kind,
		SessionInfo: c.sessionInfo,
		Scope: stateScope{TenantID: c.scope.TenantID, CommunityID: c.scope.CommunityID, RPID: c.scope.RPID,
			LicenseID: c.scope.LicenseID},
		Community: c.community,
		Session:   *c.session,
		Decoy:     c.decoy,
		Selection: c.selection,
		Expires:   c.session.Expires,
	}
	if c.user != nil {
		u := &stateUser{CommunityID: c.user.u.CommunityID, Username: c.user.u.Username,
			DisplayName: c.user.u.DisplayName, Handle: c.user.u.Handle}
		for _, w := range c.user.creds {
			sc := stateCredential{ID: w.ID, PublicKey: w.PublicKey, AttestationType: w.AttestationType,
				AttestationFormat: w.AttestationFormat, UserPresent: w.Flags.UserPresent,
				UserVerified: w.Flags.UserVerified, BackupEligible: w.Flags.BackupEligible,
				BackupState: w.Flags.BackupState, AAGUID: w.Authenticator.AAGUID,
				SignCount: w.Authenticator.SignCount, CloneWarning: w.Authenticator.CloneWarning}
			for _, t := range w.Transport {
				sc.Transports = append(sc.Transports, string(t))
			}
			u.Credentials = append(u.Credentials, sc)
		}
		s.User = u
	}
	return json.Marshal(s)
}

// decodeState reads a ceremony's state.
func decodeState(raw []byte) (ceremonyState, error) {
	var s ceremonyState
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("ceremony state: %w", err)
	}
	if s.Version != stateVersion {
		return s, fmt.Errorf("ceremony state of version %d, this node reads %d", s.Version, stateVersion)
	}
	if s.Kind != kindRegistration && s.Kind != kindSignIn {
		return s, fmt.Errorf("ceremony state of unknown kind %d", s.Kind)
	}
	return s, nil
}

// restore gives a rehydrated ceremony the state of the one that issued its options, and builds
// its relying party from the community it holds.
func (c *ceremony) restore(s ceremonyState) error {
	c.kind, c.sessionInfo, c.decoy, c.selection = s.Kind, s.SessionInfo, s.Decoy, s.Selection
	// For the Observer: the issuing node's options, as their expiry tells (the nodes of a
	// cluster share --ceremony-timeout), and no user named at options time.
	c.began, c.discoverable = s.Expires.Add(-c.deps.cfg.CeremonyTimeout), s.Kind == kindSignIn && s.User == nil
	session := s.Session
	c.session = &session
	c.challenge = nil // only the issuing ceremony needs it, to build the options
	if s.User != nil {
		w := &waUser{u: persistence.User{CommunityID: s.User.CommunityID, Username: s.User.Username,
			DisplayName: s.User.DisplayName, Handle: s.User.Handle}}
		for _, sc := range s.User.Credentials {
			cred := webauthn.Credential{ID: sc.ID, PublicKey: sc.PublicKey, AttestationType: sc.AttestationType,
				AttestationFormat: sc.AttestationFormat,
				Flags: webauthn.CredentialFlags{UserPresent: sc.UserPresent, UserVerified: sc.UserVerified,
					BackupEligible: sc.BackupEligible, BackupState: sc.BackupState},
				Authenticator: webauthn.Authenticator{AAGUID: sc.AAGUID, SignCount: sc.SignCount, CloneWarning: sc.CloneWarning}}
			for _, t := range sc.Transports {
				cred.Transport = append(cred.Transport, protocol.AuthenticatorTransport(t))
			}
			w.creds = append(w.creds, cred)
		}
		c.user = w
	}
	scope := messages.Scope{TenantID: s.Scope.TenantID, CommunityID: s.Scope.CommunityID, RPID: s.Scope.RPID,
		LicenseID: s.Scope.LicenseID}
	return c.relyingParty(scope, s.Community)
}
