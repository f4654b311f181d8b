package httpapi

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Passkeys is what the link and de-registration routes ask of the engine.
type Passkeys interface {
	Passkeys(context.Context, messages.ListPasskeys) (messages.UserPasskeys, error)
	Link(context.Context, messages.Link) error
	Unlink(context.Context, messages.Link) error
	Unregister(context.Context, messages.Unregister) (int, error)
}

// routeOnEscapedPath routes a request on its path as sent, percent-encoded, so that a '/' inside
// a DID or a username (%2F) stays inside its path parameter; pathParams unescapes each one.
func routeOnEscapedPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if escaped := r.URL.EscapedPath(); escaped != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = escaped, ""
			r2 := *r
			r2.URL = &u
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// pathParams reads the named parameters of a route, unescaped. A parameter that is not valid
// percent-encoding, or that is "." or "..", is 400: clients normalise dot segments away
// (/user/../did_or_fidokey/X becomes another route), so a request that still has one was not
// meant for this route.
func pathParams(r *http.Request, names ...string) ([]string, error) {
	ps := httprouter.ParamsFromContext(r.Context())
	out := make([]string, len(names))
	for i, name := range names {
		v, err := url.PathUnescape(ps.ByName(name))
		if err != nil {
			return nil, messages.Errorf(messages.CodeInvalidRequest, "the path parameter "+name+" is not valid percent-encoding")
		}
		if v == "." || v == ".." {
			return nil, messages.Errorf(messages.CodeInvalidRequest, "the path has a . or .. segment")
		}
		out[i] = v
	}
	return out, nil
}

// passkeyRequest is a link or de-registration request after its checks: the caller's scope and
// the path's parameters, unescaped.
type passkeyRequest struct {
	scope  messages.Scope
	params map[string]string
}

// readPasskeyRequest checks a link or de-registration request in the order of every licensed
// route: license (401), body (none: 413/400), scope over the path's community (403, or 404 for
// a system license), then the path's other parameters (400).
func readPasskeyRequest(r *http.Request, lc licenseChecker, names ...string) (passkeyRequest, error) {
	lic, err := lc.authenticate(r.Context(), r.Header.Get("licensekey"))
	if err != nil {
		return passkeyRequest{}, err
	}
	if err := readNoBody(r); err != nil {
		return passkeyRequest{}, err
	}
	communityID, err := pathParams(r, "communityId")
	if err != nil {
		return passkeyRequest{}, err
	}
	community, err := lc.scope(r.Context(), lic, communityID[0], "")
	if err != nil {
		return passkeyRequest{}, err
	}
	values, err := pathParams(r, names...)
	if err != nil {
		return passkeyRequest{}, err
	}
	req := passkeyRequest{scope: messages.Scope{TenantID: community.TenantID, CommunityID: community.ID, LicenseID: lic.ID},
		params: map[string]string{}}
	for i, name := range names {
		v := values[i]
		switch name {
		case "userId":
			err = checkName("userId", v, true)
		case "did":
			if !persistence.ValidDID(v) {
				err = messages.Errorf(messages.CodeInvalidRequest, "a DID starts with did: and is 5 to 512 bytes without control characters")
			}
		case "fidoKeyHash":
			err = checkFidoKeyHash(v)
		case "identifier":
			if !persistence.ValidDID(v) && checkFidoKeyHash(v) != nil {
				err = messages.Errorf(messages.CodeInvalidRequest, "the identifier is a fidoKeyHash (64 lowercase hex digits) or a DID (did:…)")
			}
		}
		if err != nil {
			return passkeyRequest{}, err
		}
		req.params[name] = v
	}
	return req, nil
}

// checkFidoKeyHash checks a fidoKeyHash: 64 lowercase hex digits.
func checkFidoKeyHash(s string) error {
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 || strings.ToLower(s) != s {
		return messages.Errorf(messages.CodeInvalidRequest, "a fidoKeyHash is 64 lowercase hex digits")
	}
	return nil
}

// fidoKeyJSON is one passkey in a link status.
type fidoKeyJSON struct {
	FidoKeyHash        string  `json:"fidoKeyHash"`
	CredentialID       string  `json:"credentialId"`
	DID                *string `json:"did"`
	AAGUID             string  `json:"aaguid"`
	AuthenticatorName  *string `json:"authenticatorName"`
	AttestationFormat  string  `json:"attestationFormat"`
	AttestationTrusted bool    `json:"attestationTrusted"`
	BackupEligible     bool    `json:"backupEligible"`
	BackupState        bool    `json:"backupState"`
	SignCount          uint32  `json:"signCount"`
	CreatedAt          *string `json:"createdAt"` // null when unknown (an import may store none)
	LastUsedAt         *string `json:"lastUsedAt"`
}

// linkStatusJSON answers the link status routes. status says what the route's name asks,
// "linked" or "unlinked"; linked says the same as a boolean, for clients that read status as
// success or failure.
type linkStatusJSON struct {
	Status       string        `json:"status"`
	ErrorMessage string        `json:"errorMessage"`
	Linked       bool          `json:"linked"`
	UserHandle   *string       `json:"userHandle"`
	DisplayName  *string       `json:"displayName"`
	FidoKeys     []fidoKeyJSON `json:"fidoKeys"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func handleLinkStatus(lc licenseChecker, engine Passkeys, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		req, err := readPasskeyRequest(r, lc, "userId")
		if err != nil {
			return err
		}
		res, err := engine.Passkeys(r.Context(), messages.ListPasskeys{Scope: req.scope, Username: req.params["userId"]})
		if err != nil {
			return err
		}
		out := linkStatusJSON{Status: "unlinked", FidoKeys: []fidoKeyJSON{}}
		if res.Found {
			out.UserHandle, out.DisplayName = optional(b64url(res.UserHandle)), &res.DisplayName
		}
		for _, p := range res.Passkeys {
			out.Linked = out.Linked || p.DID != ""
			out.FidoKeys = append(out.FidoKeys, fidoKeyJSON{
				FidoKeyHash: p.FidoKeyHash, CredentialID: b64url(p.CredentialID), DID: optional(p.DID),
				AAGUID: p.AAGUID, AuthenticatorName: optional(p.AuthenticatorName),
				AttestationFormat: p.AttestationFormat, AttestationTrusted: p.AttestationTrusted,
				BackupEligible: p.BackupEligible, BackupState: p.BackupState, SignCount: p.SignCount,
				CreatedAt: rfc3339(p.Created), LastUsedAt: rfc3339(p.LastUsed),
			})
		}
		if out.Linked {
			out.Status = "linked"
		}
		encode(w, http.StatusOK, out)
		return nil
	})
}

// handleLink links (link true) or unlinks a passkey and a DID.
func handleLink(lc licenseChecker, engine Passkeys, link bool, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		req, err := readPasskeyRequest(r, lc, "did", "userId", "fidoKeyHash")
		if err != nil {
			return err
		}
		m := messages.Link{Scope: req.scope, Username: req.params["userId"], FidoKeyHash: req.params["fidoKeyHash"], DID: req.params["did"]}
		event := messages.AuditPasskeyLinked
		if link {
			err = engine.Link(r.Context(), m)
		} else {
			event = messages.AuditPasskeyUnlinked
			err = engine.Unlink(r.Context(), m)
		}
		e := scopeEvent(event, req.scope, err)
		e.Username, e.FidoKeyHash, e.DID = m.Username, m.FidoKeyHash, m.DID
		lc.record(r, e)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]string{"status": "success", "errorMessage": ""})
		return nil
	})
}

// handleUnregister removes the passkeys a fidoKeyHash or a DID names, in the community or
// (withUser) only the user's.
func handleUnregister(lc licenseChecker, engine Passkeys, withUser bool, log *zap.Logger) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		names := []string{"identifier"}
		if withUser {
			names = []string{"userId", "identifier"}
		}
		req, err := readPasskeyRequest(r, lc, names...)
		if err != nil {
			return err
		}
		identifier := req.params["identifier"]
		_, err = engine.Unregister(r.Context(), messages.Unregister{Scope: req.scope, Username: req.params["userId"], Identifier: identifier})
		e := scopeEvent(messages.AuditPasskeyRemoved, req.scope, err)
		e.Username = req.params["userId"]
		if persistence.ValidDID(identifier) {
			e.DID = identifier
		} else {
			e.FidoKeyHash = identifier
		}
		lc.record(r, e)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, struct{}{})
		return nil
	})
}
