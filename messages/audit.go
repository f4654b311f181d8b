package messages

import "time"

// AuditEvent is one line of the audit trail: who did what to which community, from where, and
// how it ended. It names people and passkeys by identifiers only: it never carries a secret, a
// challenge, an assertion, a signature, a token or a license key.
type AuditEvent struct {
	// Time is when the event happened; zero means when it is recorded.
	Time time.Time
	// Event is one of the Audit* names below.
	Event string
	// Outcome is AuditOK or the stable error code (a Code) the event ended with.
	Outcome string
	// Tenant and Community name the community acted on.
	Tenant    string
	Community string
	// Username is the user a ceremony or a passkey change concerns.
	Username string
	// FidoKeyHash names a passkey: the lowercase hex SHA-256 of its raw credential id.
	FidoKeyHash string
	// DID is the decentralized identifier a passkey was linked to, unlinked from, or removed by.
	DID string
	// AAGUID is the authenticator model whose vendor metadata changed.
	AAGUID string
	// LicenseID is the id of the license the request acted under, or the license created or
	// revoked; never the license's key.
	LicenseID string
	// RemoteAddr is the client's address (honouring trusted proxies); empty for a CLI command.
	RemoteAddr string
	// RequestID is the id the request log carries for the same request.
	RequestID string
}

// AuditOK is the outcome of an event that succeeded.
const AuditOK = "ok"

// The audit events. The names are stable: operators query them and ship them to other systems.
const (
	AuditRegistration          = "registration"
	AuditSignIn                = "signin"
	AuditSignInDiscoverable    = "signin.discoverable"
	AuditPasskeyLinked         = "passkey.linked"
	AuditPasskeyUnlinked       = "passkey.unlinked"
	AuditPasskeyRemoved        = "passkey.removed"
	AuditVendorMetadataChanged = "vendor_metadata.changed"
	AuditMDSImported           = "mds.imported"
	AuditLicenseCreated        = "license.created"
	AuditLicenseRevoked        = "license.revoked"
	AuditKeysRotated           = "keys.rotated"
	AuditCommunityCreated      = "community.created"
	AuditCommunityChanged      = "community.changed"
	AuditPasskeysImported      = "passkeys.imported"
	AuditBackup                = "backup"
	AuditRestore               = "restore"
)

// AuditOutcome returns the outcome of an event that ended with err: AuditOK for nil, else the
// error's stable code (CodeInternal for an error that is not an *Error).
func AuditOutcome(err error) string {
	if err == nil {
		return AuditOK
	}
	return string(ErrorCode(err))
}
