package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// optionsRequest is the body of both options calls. Unknown fields (such as dguid) are ignored.
// Attestation and AuthenticatorSelection are read by registration, UserVerification by sign-in,
// Hints by both.
type optionsRequest struct {
	DNS                    string                  `json:"dns"`
	Username               string                  `json:"username"`
	DisplayName            string                  `json:"displayName"`
	CommunityID            string                  `json:"communityId"`
	TenantID               string                  `json:"tenantId"`
	Attestation            string                  `json:"attestation"`
	AuthenticatorSelection *authenticatorSelection `json:"authenticatorSelection"`
	UserVerification       string                  `json:"userVerification"`
	Hints                  []string                `json:"hints"`
}

// authenticatorSelection is a registration's authenticatorSelection, as BlockID's helpers pass
// it through from the relying party.
type authenticatorSelection struct {
	AuthenticatorAttachment string `json:"authenticatorAttachment"`
	ResidentKey             string `json:"residentKey"`
	RequireResidentKey      *bool  `json:"requireResidentKey"`
	UserVerification        string `json:"userVerification"`
}

// oneOf checks that a field's value is empty or one of the allowed ones.
func oneOf(field, v string, allowed ...string) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	return messages.Errorf(messages.CodeInvalidRequest, field+" must be one of "+strings.Join(allowed, ", "))
}

// checkHints checks WebAuthn Level 3 hints: known values, each at most once.
func checkHints(hints []string) error {
	for i, h := range hints {
		if err := oneOf("hints", h, "security-key", "client-device", "hybrid"); err != nil || h == "" {
			return messages.Errorf(messages.CodeInvalidRequest, "hints must be security-key, client-device or hybrid")
		}
		if slices.Contains(hints[:i], h) {
			return messages.Errorf(messages.CodeInvalidRequest, "hints names "+h+" twice")
		}
	}
	return nil
}

// registrationSelection checks what a registration asks of the authenticator. The legacy
// requireResidentKey true means residentKey required; with another residentKey it is a
// contradiction, refused rather than guessed.
func (req optionsRequest) registrationSelection() (messages.AuthenticatorSelection, error) {
	var out messages.AuthenticatorSelection
	if err := oneOf("attestation", req.Attestation, "none", "indirect", "direct"); err != nil {
		return out, err
	}
	if err := checkHints(req.Hints); err != nil {
		return out, err
	}
	sel := req.AuthenticatorSelection
	if sel == nil {
		return out, nil
	}
	for _, f := range []struct {
		field, v string
		allowed  []string
	}{
		{"authenticatorSelection.authenticatorAttachment", sel.AuthenticatorAttachment, []string{"platform", "cross-platform"}},
		{"authenticatorSelection.residentKey", sel.ResidentKey, []string{"discouraged", "preferred", "required"}},
		{"authenticatorSelection.userVerification", sel.UserVerification, []string{"required", "preferred", "discouraged"}},
	} {
		if err := oneOf(f.field, f.v, f.allowed...); err != nil {
			return out, err
		}
	}
	out = messages.AuthenticatorSelection{AuthenticatorAttachment: sel.AuthenticatorAttachment,
		ResidentKey: sel.ResidentKey, UserVerification: sel.UserVerification}
	if sel.RequireResidentKey != nil && *sel.RequireResidentKey {
		switch sel.ResidentKey {
		case "", "required":
			out.ResidentKey = "required"
		default:
			return out, messages.Errorf(messages.CodeInvalidRequest,
				"authenticatorSelection.requireResidentKey true contradicts residentKey "+sel.ResidentKey)
		}
	}
	return out, nil
}

const maxNameLength = 256

func checkName(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return messages.Errorf(messages.CodeInvalidRequest, field+" is required")
	case len(v) > maxNameLength:
		return messages.Errorf(messages.CodeInvalidRequest, field+" is longer than 256 bytes")
	case !utf8.ValidString(v):
		return messages.Errorf(messages.CodeInvalidRequest, field+" is not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return messages.Errorf(messages.CodeInvalidRequest, field+" contains control characters")
		}
	}
	return nil
}

// sessionInfoHeader reads the caller's optional sessionInfo: at most 128 printable ASCII
// characters.
func sessionInfoHeader(r *http.Request) (string, error) {
	s := r.Header.Get("sessionInfo")
	if len(s) > 128 {
		return "", messages.Errorf(messages.CodeInvalidRequest, "sessionInfo is longer than 128 characters")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", messages.Errorf(messages.CodeInvalidRequest, "sessionInfo must be printable ASCII")
		}
	}
	return s, nil
}

// readLicensed reads a licensed request in the order every licensed route follows: the
// license (401) before the body is read, the body (413, 400), then the license's scope over the
// community the body names (403, or 404 for a system license). The caller checks the fields
// (400) last.
func readLicensed(r *http.Request, lc licenseChecker, body any, communityID, tenantID *string) (persistence.License, persistence.Community, error) {
	lic, err := lc.authenticate(r.Context(), r.Header.Get("licensekey"))
	if err != nil {
		return lic, persistence.Community{}, err
	}
	if err := decode(r, body); err != nil {
		return lic, persistence.Community{}, err
	}
	community, err := lc.scope(r.Context(), lic, *communityID, *tenantID)
	return lic, community, err
}

// checkFields runs checkName over named values; the first failure is the answer.
func checkFields(fields ...nameField) error {
	for _, f := range fields {
		if err := checkName(f.name, f.v, f.required); err != nil {
			return err
		}
	}
	return nil
}

// nameField is one value for checkName.
type nameField struct {
	name, v  string
	required bool
}

// ceremonyScope is what the engine is told of a ceremony's caller, once the request's dns is
// known to be one of the community's RP IDs.
func ceremonyScope(lic persistence.License, community persistence.Community, rpID string) (messages.Scope, error) {
	if rpID != "" && !slices.Contains(community.RPIDs, rpID) {
		return messages.Scope{}, messages.Errorf(messages.CodeRPIDNotAllowed, "dns is not an RP ID of this community")
	}
	return messages.Scope{TenantID: community.TenantID, CommunityID: community.ID, RPID: rpID, LicenseID: lic.ID}, nil
}

// readOptions reads an options request: its license, body, scope and fields, in that order.
func readOptions(r *http.Request, lc licenseChecker, usernameRequired bool) (optionsRequest, messages.Scope, string, error) {
	var req optionsRequest
	lic, community, err := readLicensed(r, lc, &req, &req.CommunityID, &req.TenantID)
	if err != nil {
		return req, messages.Scope{}, "", err
	}
	if err := checkFields(nameField{"dns", req.DNS, true}, nameField{"username", req.Username, usernameRequired},
		nameField{"displayName", req.DisplayName, false}, nameField{"communityId", req.CommunityID, false},
		nameField{"tenantId", req.TenantID, false}); err != nil {
		return req, messages.Scope{}, "", err
	}
	session, err := sessionInfoHeader(r)
	if err != nil {
		return req, messages.Scope{}, "", err
	}
	scope, err := ceremonyScope(lic, community, req.DNS)
	return req, scope, session, err
}

// readResult reads a result request: its license, body, scope and fields, in that order.
func readResult(r *http.Request, lc licenseChecker, registration bool) (messages.Credential, messages.Scope, string, error) {
	var req credentialRequest
	lic, community, err := readLicensed(r, lc, &req, &req.CommunityID, &req.TenantID)
	if err != nil {
		return messages.Credential{}, messages.Scope{}, "", err
	}
	if err := checkFields(nameField{"dns", req.DNS, false}, nameField{"communityId", req.CommunityID, false},
		nameField{"tenantId", req.TenantID, false}); err != nil {
		return messages.Credential{}, messages.Scope{}, "", err
	}
	session, err := sessionInfoHeader(r)
	if err != nil {
		return messages.Credential{}, messages.Scope{}, "", err
	}
	scope, err := ceremonyScope(lic, community, req.DNS)
	if err != nil {
		return messages.Credential{}, scope, "", err
	}
	credential, err := req.credential(registration)
	return credential, scope, session, err
}

// withStatus appends status "success", an empty errorMessage and the extra string members
// to the engine's options, a JSON object, without decoding it again.
func withStatus(options []byte, extra ...string) (json.RawMessage, error) {
	options = bytes.TrimSpace(options)
	if len(options) < 2 || options[0] != '{' || options[len(options)-1] != '}' {
		return nil, fmt.Errorf("options are not a JSON object: %.40q", options)
	}
	out := append(make([]byte, 0, len(options)+64+len(extra)*32), options[:len(options)-1]...)
	if len(bytes.TrimSpace(options[1:len(options)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"status":"success","errorMessage":""`...)
	for i := 0; i+1 < len(extra); i += 2 {
		k, _ := json.Marshal(extra[i])
		v, _ := json.Marshal(extra[i+1])
		out = append(append(append(append(out, ','), k...), ':'), v...)
	}
	return append(out, '}'), nil
}

func handleAttestationOptions(lc licenseChecker, engine Ceremonies, envelope *Keyring, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		req, scope, session, err := readOptions(r, lc, true)
		if err != nil {
			return err
		}
		selection, err := req.registrationSelection()
		if err != nil {
			return err
		}
		res, err := engine.BeginRegistration(r.Context(), messages.BeginRegistration{Scope: scope, Username: req.Username,
			DisplayName: req.DisplayName, Attestation: req.Attestation, Selection: selection, Hints: req.Hints,
			SessionInfo: session})
		if err != nil {
			return err
		}
		data, err := withStatus(res.Options)
		if err != nil {
			return err
		}
		w.Header().Set("sessionInfo", res.SessionInfo)
		encode(w, http.StatusOK, map[string]any{"data": data, "publickey": envelope.Current().PublicKey(), "sessionInfo": res.SessionInfo})
		return nil
	})
}

func handleAttestationResult(lc licenseChecker, engine Ceremonies, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		credential, scope, session, err := readResult(r, lc, true)
		if err != nil {
			return err
		}
		res, err := engine.FinishRegistration(r.Context(), messages.FinishRegistration{Scope: scope, SessionInfo: session, Credential: credential})
		lc.record(r, ceremonyEvent(messages.AuditRegistration, scope, res.Username, res.CredentialID, credential.RawID, err))
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]any{
			"data":               map[string]string{"sub": res.Username},
			"publicKey":          b64url(res.PublicKeySPKI),
			"fidoKeyHash":        fidoKeyHash(res.CredentialID),
			"credentialId":       b64url(res.CredentialID),
			"aaguid":             res.AAGUID,
			"attestationFormat":  res.AttestationFormat,
			"attestationTrusted": res.AttestationTrusted,
			"authenticatorName":  optional(res.AuthenticatorName),
			"status":             "success",
			"errorMessage":       "",
		})
		return nil
	})
}

func handleAssertionOptions(lc licenseChecker, engine Ceremonies, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		req, scope, session, err := readOptions(r, lc, false)
		if err != nil {
			return err
		}
		if err := oneOf("userVerification", req.UserVerification, "required", "preferred", "discouraged"); err != nil {
			return err
		}
		if err := checkHints(req.Hints); err != nil {
			return err
		}
		res, err := engine.BeginSignIn(r.Context(), messages.BeginSignIn{Scope: scope, Username: req.Username,
			UserVerification: req.UserVerification, Hints: req.Hints, SessionInfo: session})
		if err != nil {
			return err
		}
		body, err := withStatus(res.Options, "sessionInfo", res.SessionInfo)
		if err != nil {
			return err
		}
		w.Header().Set("sessionInfo", res.SessionInfo)
		encode(w, http.StatusOK, body)
		return nil
	})
}

func handleAssertionResult(lc licenseChecker, engine Ceremonies, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		credential, scope, session, err := readResult(r, lc, false)
		if err != nil {
			return err
		}
		res, err := engine.FinishSignIn(r.Context(), messages.FinishSignIn{Scope: scope, SessionInfo: session, Credential: credential})
		event := messages.AuditSignIn
		if res.Discoverable {
			event = messages.AuditSignInDiscoverable
		}
		lc.record(r, ceremonyEvent(event, scope, res.Username, res.CredentialID, credential.RawID, err))
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]any{
			"data":            map[string]string{"sub": res.Username},
			"status":          "success",
			"errorMessage":    "",
			"signature_token": res.Token,
		})
		return nil
	})
}

// fidoKeyHash is the lowercase hex SHA-256 of a raw credential id.
func fidoKeyHash(credentialID []byte) string {
	sum := sha256.Sum256(credentialID)
	return hex.EncodeToString(sum[:])
}

// ceremonyEvent is the audit event of a ceremony's result. A failed result names the passkey
// the client presented (sent), since the engine names no user for a failure: the fidoKeyHash
// leads to its owner through the link status routes.
func ceremonyEvent(event string, scope messages.Scope, username string, used, sent []byte, err error) messages.AuditEvent {
	e := scopeEvent(event, scope, err)
	e.Username = username
	if len(used) == 0 {
		used = sent
	}
	if len(used) > 0 {
		e.FidoKeyHash = fidoKeyHash(used)
	}
	return e
}
