package messages

// Scope names the community a request acts on, after its license was checked.
type Scope struct {
	// TenantID is the tenant that owns the community.
	TenantID string
	// CommunityID is the community whose ceremonies and users the request touches.
	CommunityID string
	// RPID is the relying party ID (the request's dns) the ceremony is bound to.
	RPID string
	// LicenseID is the license the request acts under; a ceremony's result must come under the
	// license that started it.
	LicenseID string
}

// BeginRegistration starts a registration ceremony: it asks for creation options for a user.
// It writes nothing: a new username gets a random user handle, kept in the ceremony, and its
// user is stored by the result, with its first passkey.
type BeginRegistration struct {
	Scope
	// Username identifies the user within the community.
	Username string
	// DisplayName is shown by the authenticator; it defaults to Username.
	DisplayName string
	// Attestation is the conveyance preference: none (the default), indirect or direct.
	Attestation string
	// Selection is what the caller asked of the authenticator; the community's policy is a
	// floor it can raise and never lower.
	Selection AuthenticatorSelection
	// Hints are WebAuthn Level 3 hints: security-key, client-device, hybrid.
	Hints []string
	// SessionInfo is an optional caller-chosen label for the ceremony.
	SessionInfo string
}

// AuthenticatorSelection is what a registration asks of the authenticator; an empty field
// leaves the service's default.
type AuthenticatorSelection struct {
	// AuthenticatorAttachment is platform or cross-platform.
	AuthenticatorAttachment string
	// ResidentKey is discouraged, preferred (the default) or required.
	ResidentKey string
	// UserVerification is required, preferred or discouraged.
	UserVerification string
}

// RegistrationOptions answers BeginRegistration.
type RegistrationOptions struct {
	// Options is the JSON of PublicKeyCredentialCreationOptions, as
	// PublicKeyCredential.parseCreationOptionsFromJSON accepts it.
	Options []byte
	// SessionInfo is the ceremony handle that a result may name.
	SessionInfo string
}

// Credential is a browser's PublicKeyCredential (the fields of its toJSON()), with its binary
// fields decoded. The wire decodes it once; the engine parses and verifies it.
type Credential struct {
	// ID is the credential's id, decoded from base64url; it must equal RawID.
	ID []byte
	// RawID is the raw credential id.
	RawID []byte
	// Type is "public-key".
	Type string
	// AuthenticatorAttachment is platform, cross-platform or empty.
	AuthenticatorAttachment string
	// ClientExtensionResults is the JSON object of the client's extension outputs, or nil.
	ClientExtensionResults []byte
	// ClientDataJSON is the exact clientDataJSON the authenticator signed over.
	ClientDataJSON []byte
	// AttestationObject is the CBOR attestation object of a registration.
	AttestationObject []byte
	// Transports are the transports a registering authenticator reported.
	Transports []string
	// AuthenticatorData, Signature and UserHandle are an assertion's.
	AuthenticatorData []byte
	Signature         []byte
	UserHandle        []byte
}

// FinishRegistration carries a browser's registration credential to its ceremony.
type FinishRegistration struct {
	Scope
	// SessionInfo, when not empty, must be the ceremony's own.
	SessionInfo string
	// Credential is the attestation credential.
	Credential Credential
}

// Registered answers FinishRegistration after the credential was stored durably.
type Registered struct {
	// Username is the user the credential belongs to (the response's sub).
	Username string
	// CredentialID is the raw credential id.
	CredentialID []byte
	// PublicKeySPKI is the credential's public key as SubjectPublicKeyInfo DER.
	PublicKeySPKI []byte
	// AAGUID is the authenticator model, formatted as a UUID.
	AAGUID string
	// AttestationFormat is the attestation statement format (none, packed, tpm, ...).
	AttestationFormat string
	// AttestationTrusted says whether the attestation chained to a root of the authenticator
	// model's metadata statement.
	AttestationTrusted bool
	// AuthenticatorName is the model's name from vendor metadata (the community's record, else
	// the MDS statement's description), or empty.
	AuthenticatorName string
}

// BeginSignIn starts a sign-in ceremony. With an empty Username it is a discoverable
// (usernameless) ceremony.
type BeginSignIn struct {
	Scope
	// Username, when set, lists that user's credentials in allowCredentials.
	Username string
	// UserVerification is what the caller asked (required, preferred, discouraged, or empty);
	// the community's policy is a floor it can raise and never lower.
	UserVerification string
	// Hints are WebAuthn Level 3 hints: security-key, client-device, hybrid.
	Hints []string
	// SessionInfo is an optional caller-chosen label for the ceremony.
	SessionInfo string
}

// SignInOptions answers BeginSignIn.
type SignInOptions struct {
	// Options is the JSON of PublicKeyCredentialRequestOptions, as
	// PublicKeyCredential.parseRequestOptionsFromJSON accepts it.
	Options []byte
	// SessionInfo is the ceremony handle that a result may name.
	SessionInfo string
}

// FinishSignIn carries a browser's assertion to its ceremony.
type FinishSignIn struct {
	Scope
	// SessionInfo, when not empty, must be the ceremony's own.
	SessionInfo string
	// Credential is the assertion credential.
	Credential Credential
}

// SignedIn answers FinishSignIn after the new sign counter was stored durably.
type SignedIn struct {
	// Username is the signed-in user (the response's sub).
	Username string
	// CredentialID is the raw id of the credential used.
	CredentialID []byte
	// UserVerified reports the authenticator's UV flag.
	UserVerified bool
	// CloneWarning is set when the credential's counter once went backwards.
	CloneWarning bool
	// DID is the decentralized identifier the credential is linked to, if any.
	DID string
	// Discoverable is set when the options named no user (a usernameless sign-in): the passkey
	// named its owner. A failed result sets it too when the ceremony was found.
	Discoverable bool
	// Token is the signed ES256 JWS that proves the sign-in to the relying party.
	Token string
}
