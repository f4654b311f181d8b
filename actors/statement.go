package actors

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/metadata"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Statements checks the metadata statements of vendor records (httpapi reaches it through an
// interface of its own). It has no state.
type Statements struct{}

// Check returns nil when text is a FIDO MDS3 metadata statement for the authenticator model
// aaguid (canonical form), and otherwise a 400 invalid_request that says what is wrong.
func (Statements) Check(text, aaguid string) error {
	st, err := ParseStatement(text)
	if err != nil {
		return err
	}
	if got, _ := persistence.FormatAAGUID(st.AaGUID[:]); got != aaguid {
		return messages.Errorf(messages.CodeInvalidRequest,
			fmt.Sprintf("metadata describes AAGUID %s, not the record's %s", got, aaguid))
	}
	return nil
}

// statementMembers are the JSON names of a statement's members, which ParseStatement holds to
// one spelling and one occurrence each.
var statementMembers = func() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeFor[metadata.StatementJSON]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}()

// ParseStatement parses a vendor record's metadata statement (JSON text, at most
// persistence.MaxVendorMetadata bytes) with go-webauthn's metadata types, and checks what a
// record needs of it: a FIDO2 statement (protocolFamily "fido2", schema 3) with a description
// and an AAGUID in canonical form (any case), not the zero one; when authenticatorGetInfo names
// an AAGUID, the same. Its top-level members are held to one spelling and one occurrence (Go's
// decoder would bind AAGUID to aaguid and let the last of two win, where another client of the
// stored text might read the first). Any failure is a 400 invalid_request saying what is wrong.
func ParseStatement(text string) (metadata.Statement, error) {
	var none metadata.Statement
	switch {
	case len(text) > persistence.MaxVendorMetadata:
		return none, statementError("is larger than 256 KiB")
	case !utf8.ValidString(text):
		return none, statementError("is not valid UTF-8")
	}
	if err := checkStatementNames([]byte(text)); err != nil {
		return none, err
	}
	var j metadata.StatementJSON
	if err := json.Unmarshal([]byte(text), &j); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return none, statementError(fmt.Sprintf("member %s is not a %s", quoteMember(typeErr.Field), typeErr.Type))
		}
		return none, statementError("is not a JSON object")
	}
	switch {
	case j.AaGUID == "":
		return none, statementError("has no aaguid (only FIDO2 authenticators have one, and records are keyed by it)")
	case j.ProtocolFamily != "fido2":
		return none, statementError(fmt.Sprintf("has protocolFamily %s, not \"fido2\"", quoteMember(j.ProtocolFamily)))
	case j.Schema != 3:
		return none, statementError(fmt.Sprintf("has schema %d, not 3 (a FIDO MDS3 statement)", j.Schema))
	case strings.TrimSpace(j.Description) == "":
		return none, statementError("has no description")
	}
	aaguid, err := persistence.CanonicalAAGUID(j.AaGUID)
	if err != nil {
		return none, statementError("aaguid is not 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
	}
	for i, cert := range j.AttestationRootCertificates {
		if _, err := parseStatementRoot(cert); err != nil {
			return none, statementError(fmt.Sprintf("attestationRootCertificates[%d] is not a base64 DER certificate", i))
		}
	}
	st, err := j.Parse()
	if err != nil {
		return none, messages.Wrap(messages.CodeInvalidRequest,
			"metadata does not parse as a FIDO metadata statement (one of its URLs or authenticatorGetInfo does not parse)", err)
	}
	if got, _ := persistence.FormatAAGUID(st.AaGUID[:]); got == "00000000-0000-0000-0000-000000000000" {
		return none, statementError("has the all-zero aaguid, which authenticators without one (U2F) report")
	} else if got != aaguid {
		return none, statementError("aaguid does not parse") // cannot happen: the form was checked
	}
	if info := st.AuthenticatorGetInfo.AaGUID; j.AuthenticatorGetInfo.AaGUID != "" && info != st.AaGUID {
		return none, statementError("names another AAGUID in authenticatorGetInfo than in aaguid")
	}
	return st, nil
}

// checkStatementNames refuses a statement whose top-level object names a member twice, or
// names one of the statement's members in another case (a JSON text that is not an object is
// left to the decoder).
func checkStatementNames(text []byte) error {
	dec := json.NewDecoder(bytes.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return statementError("is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return statementError("is not a JSON object")
		}
		name, _ := tok.(string)
		if seen[name] {
			return statementError(fmt.Sprintf("names member %s twice", quoteMember(name)))
		}
		seen[name] = true
		if !statementMembers[name] {
			for member := range statementMembers {
				if strings.EqualFold(member, name) {
					return statementError(fmt.Sprintf("names member %s: it is spelled %q", quoteMember(name), member))
				}
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return statementError("is not a JSON object")
		}
	}
	if _, err := dec.Token(); err != nil {
		return statementError("is not a JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return statementError("has data after its JSON object")
	}
	return nil
}

// parseStatementRoot reads one of a statement's attestationRootCertificates: standard base64
// of a DER certificate, as go-webauthn reads it.
func parseStatementRoot(b64 string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// statementError is a 400 about the metadata member of a request.
func statementError(what string) error {
	return messages.Errorf(messages.CodeInvalidRequest, "metadata "+what)
}

// quoteMember quotes a name or value from a statement for a message, cut to a readable length.
func quoteMember(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}
