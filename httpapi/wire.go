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
	s, plain := plainJSONString(data)
	if !plain {
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
	}
	out, err := decodeLenient(s)
	if err != nil {
		return err
	}
	*b = out
	return nil
}

// plainJSONString returns the text of data, a JSON string with no escapes and no control
// characters (every base64 value), without a pass of encoding/json; anything else is not plain,
// and goes to json.Unmarshal (escapes, errors).
func plainJSONString(data []byte) (string, bool) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return "", false
	}
	inner := data[1 : len(data)-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	return string(inner), true
}

func decodeLenient(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = standardToURL.Replace(s)
	return base64.RawURLEncoding.DecodeString(s)
}

// standardToURL turns standard base64's alphabet into the URL-safe one. Built once: a
// Replacer builds its tables on first use, which cost every result body its own.
var standardToURL = strings.NewReplacer("+", "-", "/", "_")

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

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

// credential checks that the fields of the ceremony's kind are present and returns them
// decoded, for the engine to parse once.
func (c credentialRequest) credential(registration bool) (messages.Credential, error) {
	var out messages.Credential
	id, err := decodeLenient(c.ID)
	if err != nil || len(id) == 0 {
		return out, messages.Errorf(messages.CodeInvalidCredential, "id is missing or not base64url")
	}
	if len(c.RawID) == 0 {
		return out, messages.Errorf(messages.CodeInvalidCredential, "rawId is missing")
	}
	if len(c.Response.ClientDataJSON) == 0 {
		return out, messages.Errorf(messages.CodeInvalidCredential, "response.clientDataJSON is missing")
	}
	out = messages.Credential{ID: id, RawID: c.RawID, Type: c.Type, ClientDataJSON: c.Response.ClientDataJSON}
	if registration {
		if len(c.Response.AttestationObject) == 0 {
			return out, messages.Errorf(messages.CodeInvalidCredential, "response.attestationObject is missing")
		}
		out.AttestationObject = c.Response.AttestationObject
		out.Transports = c.Response.Transports
	} else {
		if len(c.Response.AuthenticatorData) == 0 || len(c.Response.Signature) == 0 {
			return out, messages.Errorf(messages.CodeInvalidCredential, "response.authenticatorData and response.signature are required")
		}
		out.AuthenticatorData = c.Response.AuthenticatorData
		out.Signature = c.Response.Signature
		out.UserHandle = c.Response.UserHandle
	}
	if c.AuthenticatorAttachment != nil {
		out.AuthenticatorAttachment = *c.AuthenticatorAttachment
	}
	if ext := bytes.TrimSpace(c.ClientExtensionResults); len(ext) > 0 && ext[0] == '{' {
		out.ClientExtensionResults = ext
	}
	return out, nil
}
