package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/webauthnd/webauthnd/messages"
)

// lenientBytes is a binary field of a browser credential. It accepts base64url and standard
// base64, padded or not (clients differ), and treats null and the reference's empty
// placeholders ({} and "") as absent. Only credential fields are this lenient: keys and tokens
// elsewhere are strict.
type lenientBytes []byte

// UnmarshalJSON implements json.Unmarshaler.
func (b *lenientBytes) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) || bytes.Equal(data, []byte("{}")) {
		*b = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	out, err := decodeLenient(s)
	if err != nil {
		return err
	}
	*b = out
	return nil
}

func decodeLenient(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	return base64.RawURLEncoding.DecodeString(s)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// placeholder accepts anything: the reference's getAuthenticatorData: {} and similar.
type placeholder struct{}

// UnmarshalJSON implements json.Unmarshaler by ignoring the value.
func (placeholder) UnmarshalJSON([]byte) error { return nil }

// credentialRequest is a result body: PublicKeyCredential.toJSON() plus dns, communityId and
// tenantId. Unknown fields are ignored.
type credentialRequest struct {
	ID                      string          `json:"id"`
	RawID                   lenientBytes    `json:"rawId"`
	Type                    string          `json:"type"`
	AuthenticatorAttachment *string         `json:"authenticatorAttachment"`
	ClientExtensionResults  json.RawMessage `json:"clientExtensionResults"`
	Response                struct {
		ClientDataJSON    lenientBytes `json:"clientDataJSON"`
		AttestationObject lenientBytes `json:"attestationObject"`
		Transports        []string     `json:"transports"`
		AuthenticatorData lenientBytes `json:"authenticatorData"`
		Signature         lenientBytes `json:"signature"`
		UserHandle        lenientBytes `json:"userHandle"`
	} `json:"response"`
	DNS         string `json:"dns"`
	CommunityID string `json:"communityId"`
	TenantID    string `json:"tenantId"`
}

// canonical re-encodes the credential as go-webauthn expects it: base64url everywhere, only
// the fields of the ceremony's kind.
func (c credentialRequest) canonical(registration bool) ([]byte, error) {
	id, err := decodeLenient(c.ID)
	if err != nil || len(id) == 0 {
		return nil, messages.Errorf(messages.CodeInvalidCredential, "id is missing or not base64url")
	}
	if len(c.RawID) == 0 {
		return nil, messages.Errorf(messages.CodeInvalidCredential, "rawId is missing")
	}
	if len(c.Response.ClientDataJSON) == 0 {
		return nil, messages.Errorf(messages.CodeInvalidCredential, "response.clientDataJSON is missing")
	}
	response := map[string]any{"clientDataJSON": b64url(c.Response.ClientDataJSON)}
	if registration {
		if len(c.Response.AttestationObject) == 0 {
			return nil, messages.Errorf(messages.CodeInvalidCredential, "response.attestationObject is missing")
		}
		response["attestationObject"] = b64url(c.Response.AttestationObject)
		if c.Response.Transports != nil {
			response["transports"] = c.Response.Transports
		}
	} else {
		if len(c.Response.AuthenticatorData) == 0 || len(c.Response.Signature) == 0 {
			return nil, messages.Errorf(messages.CodeInvalidCredential, "response.authenticatorData and response.signature are required")
		}
		response["authenticatorData"] = b64url(c.Response.AuthenticatorData)
		response["signature"] = b64url(c.Response.Signature)
		if len(c.Response.UserHandle) > 0 {
			response["userHandle"] = b64url(c.Response.UserHandle)
		}
	}
	out := map[string]any{
		"id":       b64url(id),
		"rawId":    b64url(c.RawID),
		"type":     c.Type,
		"response": response,
	}
	if c.AuthenticatorAttachment != nil {
		out["authenticatorAttachment"] = *c.AuthenticatorAttachment
	}
	if ext := bytes.TrimSpace(c.ClientExtensionResults); len(ext) > 0 && ext[0] == '{' {
		out["clientExtensionResults"] = json.RawMessage(ext)
	}
	return json.Marshal(out)
}
