package httpapi

import (
	"bytes"
	"container/list"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// The passkey demo at / is a relying party inside webauthnd, written the way a relying party
// should integrate: the page talks only to the demo's backend (/demo/api/...), and the backend
// calls the u1 API with a license of its own, through the very handlers a relying party's
// backend reaches over HTTP (in-process: it works on any --addr and under TLS). It sends no
// sessionInfo: the challenge routes a result to its ceremony, and since every visitor shares
// the demo's license, each demo session remembers the challenge it was given and refuses a
// result that carries another. The license key never leaves the backend.

// DemoConfig turns the passkey demo on.
type DemoConfig struct {
	// LicenseKey is the key of the demo's license (id "demo"): made at every start and kept
	// in memory only; it never reaches the browser.
	LicenseKey string
	// CommunityID is the community whose users the demo signs up and signs in.
	CommunityID string
}

// demoOnlyCodes are the error codes only the demo's routes answer. The OpenAPI document, which
// describes the service's API and leaves the demo out, does not list them.
var demoOnlyCodes = []messages.Code{messages.CodeSignedOut, messages.CodeCSRFRefused}

// demoFiles are the demo's page, script, style sheet and icon.
//
//go:embed demo
var demoFiles embed.FS

const (
	demoCookie      = "webauthnd_demo"
	demoCSRFHeader  = "X-CSRF-Token"
	maxDemoSessions = 10_000
	demoSessionIdle = 30 * time.Minute
	// demoCSP allows the page its own script, style sheet and images, and nothing inline.
	demoCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// demo is the demo's backend.
type demo struct {
	cfg         DemoConfig
	api         http.Handler // the service's handler, called in-process
	communities persistence.Communities
	publicURL   string
	ceremonyTTL time.Duration
	sessions    *demoSessions
	csrf        *http.CrossOriginProtection
	// deleting serializes the demo's deletes: the check that refuses deleting a user's only
	// passkey must see the result of a delete sent at the same time (two tabs, two clicks).
	deleting sync.Mutex
	log      *zap.Logger
}

func newDemo(cfg DemoConfig, api http.Handler, d Deps) *demo {
	dm := &demo{cfg: cfg, api: api, communities: d.Communities, publicURL: trimSlash(d.Config.PublicURL),
		ceremonyTTL: d.Config.CeremonyTimeout, sessions: newDemoSessions(time.Now),
		csrf: http.NewCrossOriginProtection(), log: d.Log}
	if dm.ceremonyTTL <= 0 {
		dm.ceremonyTTL = 5 * time.Minute
	}
	dm.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, d.Log, messages.Errorf(messages.CodeCSRFRefused, "a request from another site was refused"))
	}))
	return dm
}

// demoSession is one browser's state, kept in memory: a restart signs everyone out (the
// demo's license is re-keyed at every start anyway).
type demoSession struct {
	id, csrf   string
	username   string // signed in as; empty when signed out
	userHandle string // base64url, for the WebAuthn signals
	// passkey is the fidoKeyHash of the passkey that signed the session in (or up): once it is
	// deleted, the session is signed out, so that deleting a lost device's passkey ends the
	// sessions of whoever holds it. Empty when the session itself deleted it.
	passkey     string
	displayName string
	token       *demoToken // of the last sign-in
	pending     *demoCeremony
	seen        time.Time
}

// demoCeremony is the ceremony a session started: a result must carry its challenge.
type demoCeremony struct {
	kind      string // signup, add or signin
	challenge []byte
	username  string
	expires   time.Time
}

// demoToken is a verified signature token, as the signed-in page shows it.
type demoToken struct {
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
}

// demoSessions holds the sessions by id: at most maxDemoSessions, each forgotten after
// demoSessionIdle without a request. When full, a signed-out session goes first (anyone makes
// one with a GET, so that a flood of them cannot sign anyone out), the least recently seen of
// them, or an idle signed-in one; a signed-in one otherwise. Each kind is kept in a list, least
// recently seen first, so that making room costs the same whatever the number of sessions.
type demoSessions struct {
	mu                  sync.Mutex
	m                   map[string]*list.Element // of signedOut or signedIn, holding a demoSession
	signedOut, signedIn list.List
	now                 func() time.Time
}

func newDemoSessions(now func() time.Time) *demoSessions {
	return &demoSessions{m: map[string]*list.Element{}, now: now}
}

// listOf is the list a session belongs in.
func (s *demoSessions) listOf(ses demoSession) *list.List {
	if ses.username != "" {
		return &s.signedIn
	}
	return &s.signedOut
}

func (s *demoSessions) idle(ses demoSession) bool { return s.now().Sub(ses.seen) > demoSessionIdle }

func (s *demoSessions) remove(e *list.Element) {
	ses := e.Value.(demoSession)
	s.listOf(ses).Remove(e)
	delete(s.m, ses.id)
}

// put stores ses as seen now, the most recently seen of its kind.
func (s *demoSessions) put(ses demoSession) {
	ses.seen = s.now()
	s.m[ses.id] = s.listOf(ses).PushBack(ses)
}

func (s *demoSessions) load(id string) (demoSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return demoSession{}, false
	}
	s.remove(e)
	ses := e.Value.(demoSession)
	if s.idle(ses) {
		return demoSession{}, false
	}
	s.put(ses)
	return ses, true
}

// save stores a session that exists. A session dropped meanwhile (signed out, or given a new
// id) stays dropped: a request still running on it cannot bring it back.
func (s *demoSessions) save(ses demoSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[ses.id]; ok {
		s.remove(e)
		s.put(ses)
	}
}

// create stores a new session.
func (s *demoSessions) create(ses demoSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[ses.id]; ok {
		s.remove(e)
	}
	for len(s.m) >= maxDemoSessions {
		victim := s.signedOut.Front()
		if in := s.signedIn.Front(); in != nil && (victim == nil || s.idle(in.Value.(demoSession))) {
			victim = in
		}
		s.remove(victim)
	}
	s.put(ses)
}

// unbind forgets which passkey signed a session in.
func (s *demoSessions) unbind(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok {
		ses := e.Value.(demoSession)
		ses.passkey = ""
		e.Value = ses
	}
}

func (s *demoSessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok {
		s.remove(e)
	}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b64url(b)
}

// newSession makes a signed-out session and sets its cookie.
func (d *demo) newSession(w http.ResponseWriter, r *http.Request) demoSession {
	ses := demoSession{id: randomToken(), csrf: randomToken()}
	d.sessions.create(ses)
	d.setCookie(w, r, ses.id, 0)
	return ses
}

// rotate gives a session a new id and CSRF token (at sign-in and sign-up, so that an id
// planted before cannot follow the user in) and sets its cookie.
func (d *demo) rotate(w http.ResponseWriter, r *http.Request, ses demoSession) demoSession {
	d.sessions.drop(ses.id)
	ses.id, ses.csrf = randomToken(), randomToken()
	d.sessions.create(ses)
	d.setCookie(w, r, ses.id, 0)
	return ses
}

// setCookie sets the session cookie: Secure under TLS, and behind a TLS-terminating proxy
// (an https public URL).
func (d *demo) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: demoCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || strings.HasPrefix(d.publicURL, "https://")})
}

// session returns the request's session. A page load (GET) without one gets a new one; a
// request from another site is 403; a request that changes something must carry the
// session's CSRF token (403 otherwise), and signedIn requires a signed-in session (401).
func (d *demo) session(w http.ResponseWriter, r *http.Request, signedIn bool) (demoSession, error) {
	var ses demoSession
	// Only the page reads its session, from its own origin. A request from another site (a
	// navigation, which carries no SameSite=Strict cookie) would otherwise get a new session
	// whose cookie replaces the user's: a sign-out any site could cause.
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return ses, messages.Errorf(messages.CodeCSRFRefused, "a request from another site was refused")
	}
	ok := false
	if c, err := r.Cookie(demoCookie); err == nil {
		ses, ok = d.sessions.load(c.Value)
	}
	if r.Method != http.MethodGet {
		if !ok || subtle.ConstantTimeCompare([]byte(r.Header.Get(demoCSRFHeader)), []byte(ses.csrf)) != 1 {
			return ses, messages.Errorf(messages.CodeCSRFRefused, "this page's session has ended or its request was not from this page: reload the page")
		}
	} else if !ok {
		ses = d.newSession(w, r)
	}
	if signedIn && ses.username == "" {
		return ses, messages.Errorf(messages.CodeSignedOut, "you are signed out: sign in again")
	}
	return ses, nil
}

// community is the demo's community, read at each request (an update applies at once).
func (d *demo) community(ctx context.Context) (persistence.Community, error) {
	c, err := d.communities.Community(ctx, d.cfg.CommunityID)
	if err != nil {
		return c, err
	}
	if len(c.RPIDs) == 0 {
		return c, fmt.Errorf("community %q has no RP ID", c.ID)
	}
	return c, nil
}

// call sends one request to the service's own API in-process, with the demo's license, and
// decodes a 200 answer into out. Another answer comes back as the API's error: its code and
// message, which the page words for a person.
func (d *demo) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("licensekey", d.cfg.LicenseKey)
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	d.api.ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		var e errorBody
		if err := json.Unmarshal(rec.body.Bytes(), &e); err != nil || e.Code == "" {
			return fmt.Errorf("%s %s answered %d", method, path, rec.status)
		}
		out := &messages.Error{Code: e.Code, Message: e.Message}
		if s, err := strconv.Atoi(rec.header.Get("Retry-After")); err == nil {
			out.RetryAfter = time.Duration(s) * time.Second
		}
		return out
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// recorder is the response of an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// status reads a user's passkeys through the link status route.
func (d *demo) status(ctx context.Context, username string) (linkStatusJSON, error) {
	var out linkStatusJSON
	err := d.call(ctx, http.MethodGet, "/webauthn/u1/link/community/"+url.PathEscape(d.cfg.CommunityID)+
		"/user/"+url.PathEscape(username)+"/status", nil, &out)
	return out, err
}

// signedInStatus reads the signed-in user's passkeys. When the passkey that signed the session
// in is gone (deleted from another session, or by the relying party's backend), it signs the
// session out and answers 401 signed_out.
func (d *demo) signedInStatus(w http.ResponseWriter, r *http.Request, ses demoSession) (linkStatusJSON, error) {
	st, err := d.status(r.Context(), ses.username)
	if err != nil {
		return st, err
	}
	// The session as it is now, read after the list: a delete from the session itself unbinds
	// it before the passkey goes.
	if cur, ok := d.sessions.load(ses.id); ok {
		ses = cur
	}
	if ses.passkey != "" && !slices.ContainsFunc(st.FidoKeys, func(k fidoKeyJSON) bool { return k.FidoKeyHash == ses.passkey }) {
		d.sessions.drop(ses.id)
		d.setCookie(w, r, "", -1)
		return st, messages.Errorf(messages.CodeSignedOut, "the passkey you signed in with was deleted: sign in again")
	}
	return st, nil
}

// demoStartRequest is what the page sends to start a ceremony.
type demoStartRequest struct {
	Username string `json:"username"`
	// Kind, when adding a passkey: "passkey" (a discoverable one on this device or a phone) or
	// "security-key" (asking for the key's attestation, so its model can be named).
	Kind string `json:"kind"`
}

// begin starts a ceremony through an options route and remembers its challenge in the
// session. options is the answer's creation or request options, without the API's own
// members (status, errorMessage, sessionInfo), ready for parse…OptionsFromJSON.
func (d *demo) begin(w http.ResponseWriter, r *http.Request, ses demoSession, kind, path string, body map[string]any) error {
	c, err := d.community(r.Context())
	if err != nil {
		return err
	}
	body["dns"], body["communityId"], body["tenantId"] = c.RPIDs[0], c.ID, c.TenantID
	var res map[string]json.RawMessage
	if err := d.call(r.Context(), http.MethodPost, path, body, &res); err != nil {
		return err
	}
	options := res // assertion options answer the options themselves, attestation options in data
	if kind != "signin" {
		options = nil
		if err := json.Unmarshal(res["data"], &options); err != nil {
			return fmt.Errorf("%s: data: %w", path, err)
		}
	}
	delete(options, "status")
	delete(options, "errorMessage")
	delete(options, "sessionInfo")
	var challenge string
	if err := json.Unmarshal(options["challenge"], &challenge); err != nil {
		return fmt.Errorf("%s: challenge: %w", path, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil || len(raw) == 0 {
		return fmt.Errorf("%s: challenge %q is not base64url", path, challenge)
	}
	username, _ := body["username"].(string)
	ses.pending = &demoCeremony{kind: kind, challenge: raw, username: username, expires: time.Now().Add(d.ceremonyTTL)}
	d.sessions.save(ses)
	encode(w, http.StatusOK, map[string]any{"publicKey": options})
	return nil
}

// finish reads the browser's credential, checks that it answers the ceremony this session
// started (its kind and challenge), and forwards it with the community's scope to a result
// route. The session's ceremony is spent whatever the outcome.
func (d *demo) finish(r *http.Request, ses *demoSession, kind, path string, out any) error {
	var cred credentialRequest
	if err := decode(r, &cred); err != nil {
		return err
	}
	p := ses.pending
	ses.pending = nil
	d.sessions.save(*ses)
	if p == nil || p.kind != kind || time.Now().After(p.expires) {
		return messages.Errorf(messages.CodeCeremonyNotFound, "this browser session has no "+demoKindName[kind]+" in progress: start again")
	}
	var client struct {
		Challenge string `json:"challenge"`
	}
	if len(cred.Response.ClientDataJSON) == 0 || unmarshalStrict(cred.Response.ClientDataJSON, &client) != nil {
		return messages.Errorf(messages.CodeInvalidCredential, "response.clientDataJSON is missing or not a JSON object with one challenge")
	}
	got, err := decodeLenient(client.Challenge)
	if err != nil || subtle.ConstantTimeCompare(got, p.challenge) != 1 {
		return messages.Errorf(messages.CodeChallengeMismatch, "this answer is for a ceremony this browser session did not start: start again")
	}
	c, err := d.community(r.Context())
	if err != nil {
		return err
	}
	cred.DNS, cred.CommunityID, cred.TenantID = c.RPIDs[0], c.ID, c.TenantID
	return d.call(r.Context(), http.MethodPost, path, cred, out)
}

var demoKindName = map[string]string{"signup": "sign-up", "add": "new passkey", "signin": "sign-in"}

func handleDemoSession(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, false)
		if err != nil {
			return err
		}
		c, err := dm.community(r.Context())
		if err != nil {
			return err
		}
		out := map[string]any{"csrf": ses.csrf, "rpId": c.RPIDs[0], "origins": c.Origins, "communityId": c.ID,
			"signedIn": ses.username != "", "issuer": dm.issuer(c), "publicKeys": dm.publicURL + "/webauthn/publickeys"}
		if ses.username != "" {
			st, err := dm.signedInStatus(w, r, ses)
			if e := (*messages.Error)(nil); errors.As(err, &e) && e.Code == messages.CodeSignedOut {
				ses = dm.newSession(w, r)
				out["csrf"], out["signedIn"] = ses.csrf, false
				encode(w, http.StatusOK, out)
				return nil
			}
			if err != nil {
				return err
			}
			out["username"], out["userHandle"], out["displayName"] = ses.username, st.UserHandle, st.DisplayName
			out["passkeys"], out["token"] = st.FidoKeys, ses.token
		}
		encode(w, http.StatusOK, out)
		return nil
	})
}

func (d *demo) issuer(c persistence.Community) string {
	return d.publicURL + "/webauthn/tenants/" + url.PathEscape(c.TenantID)
}

func handleDemoSignUpOptions(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, false)
		if err != nil {
			return err
		}
		var req demoStartRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if err := checkName("username", req.Username, true); err != nil {
			return err
		}
		// Only a new username signs up: adding a passkey to an existing account is for its
		// signed-in user (and attestation/options would list the account's passkeys).
		st, err := dm.status(r.Context(), req.Username)
		if err != nil {
			return err
		}
		if st.UserHandle != nil || len(st.FidoKeys) > 0 {
			return messages.Errorf(messages.CodeConflict, "the username "+strconv.Quote(req.Username)+" is taken: sign in, or choose another")
		}
		return dm.begin(w, r, ses, "signup", "/webauthn/u1/attestation/options", map[string]any{
			"username": req.Username, "displayName": req.Username,
			"authenticatorSelection": map[string]any{"residentKey": "required", "userVerification": "preferred"},
		})
	})
}

func handleDemoSignUpResult(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, false)
		if err != nil {
			return err
		}
		username := ""
		if ses.pending != nil {
			username = ses.pending.username
		}
		var res struct {
			FidoKeyHash string `json:"fidoKeyHash"`
		}
		if err := dm.finish(r, &ses, "signup", "/webauthn/u1/attestation/result", &res); err != nil {
			return err
		}
		// A registration issues no token: the new user is signed in without one.
		ses.username, ses.token, ses.passkey = username, nil, res.FidoKeyHash
		ses = dm.rotate(w, r, ses)
		encode(w, http.StatusOK, map[string]any{"username": username, "csrf": ses.csrf})
		return nil
	})
}

func handleDemoAddOptions(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, true)
		if err != nil {
			return err
		}
		var req demoStartRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if _, err := dm.signedInStatus(w, r, ses); err != nil {
			return err
		}
		body := map[string]any{"username": ses.username, "displayName": ses.username}
		switch req.Kind {
		case "", "passkey":
			body["authenticatorSelection"] = map[string]any{"residentKey": "required", "userVerification": "preferred"}
		case "security-key":
			body["attestation"], body["hints"] = "direct", []string{"security-key"}
			body["authenticatorSelection"] = map[string]any{"authenticatorAttachment": "cross-platform",
				"residentKey": "discouraged", "userVerification": "preferred"}
		default:
			return messages.Errorf(messages.CodeInvalidRequest, "kind must be passkey or security-key")
		}
		return dm.begin(w, r, ses, "add", "/webauthn/u1/attestation/options", body)
	})
}

func handleDemoAddResult(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, true)
		if err != nil {
			return err
		}
		if ses.pending != nil && ses.pending.username != ses.username {
			ses.pending = nil // started before a sign-out and another sign-in
		}
		if _, err := dm.signedInStatus(w, r, ses); err != nil {
			return err
		}
		if err := dm.finish(r, &ses, "add", "/webauthn/u1/attestation/result", nil); err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]any{})
		return nil
	})
}

func handleDemoSignInOptions(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, false)
		if err != nil {
			return err
		}
		var req demoStartRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if err := checkName("username", req.Username, false); err != nil {
			return err
		}
		body := map[string]any{}
		if req.Username != "" {
			body["username"] = req.Username
		}
		return dm.begin(w, r, ses, "signin", "/webauthn/u1/assertion/options", body)
	})
}

func handleDemoSignInResult(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, false)
		if err != nil {
			return err
		}
		var res struct {
			Token string `json:"signature_token"`
		}
		if err := dm.finish(r, &ses, "signin", "/webauthn/u1/assertion/result", &res); err != nil {
			return err
		}
		tok, err := dm.verify(r.Context(), res.Token)
		if err != nil {
			return err
		}
		ses.username, _ = tok.Claims["sub"].(string)
		ses.passkey, _ = tok.Claims["fidoKeyHash"].(string)
		ses.token = tok
		ses = dm.rotate(w, r, ses)
		encode(w, http.StatusOK, map[string]any{"username": ses.username, "csrf": ses.csrf})
		return nil
	})
}

// verify checks a signature token as a relying party does (README, "Verifying a signature
// token"): ES256 under the key of /webauthn/publickeys its kid names, the tenant's issuer, the
// community as audience, not expired.
func (d *demo) verify(ctx context.Context, token string) (*demoToken, error) {
	c, err := d.community(ctx)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []struct{ Kid, Kty, Crv, X, Y string } `json:"keys"`
	}
	if err := d.call(ctx, http.MethodGet, "/webauthn/publickeys", nil, &set); err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if kid, _ := t.Header["kid"].(string); k.Kid != kid || k.Kty != "EC" || k.Crv != "P-256" {
				continue
			}
			x, errX := base64.RawURLEncoding.DecodeString(k.X)
			y, errY := base64.RawURLEncoding.DecodeString(k.Y)
			if err := errors.Join(errX, errY); err != nil {
				return nil, err
			}
			return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		}
		return nil, errors.New("no key of /webauthn/publickeys has the token's kid")
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(d.issuer(c)), jwt.WithAudience(c.ID),
		jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("the signature token does not verify: %w", err)
	}
	return &demoToken{Header: tok.Header, Claims: claims}, nil
}

func handleDemoDeletePasskey(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, true)
		if err != nil {
			return err
		}
		if err := readNoBody(r); err != nil {
			return err
		}
		params, err := pathParams(r, "fidoKeyHash")
		if err != nil {
			return err
		}
		hash := params[0]
		if err := checkFidoKeyHash(hash); err != nil {
			return err
		}
		dm.deleting.Lock()
		defer dm.deleting.Unlock()
		st, err := dm.signedInStatus(w, r, ses)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(st.FidoKeys, func(k fidoKeyJSON) bool { return k.FidoKeyHash == hash }) {
			return messages.Errorf(messages.CodeNotFound, "your account has no such passkey")
		}
		if len(st.FidoKeys) == 1 {
			return messages.Errorf(messages.CodeConflict, "this is your only passkey: add another before you delete it, or you could not sign in again")
		}
		if hash == ses.passkey {
			// This session deletes the passkey it signed in with: its user is here, and stays.
			dm.sessions.unbind(ses.id)
		}
		if err := dm.call(r.Context(), http.MethodDelete, "/webauthn/u1/unregister/community/"+url.PathEscape(dm.cfg.CommunityID)+
			"/user/"+url.PathEscape(ses.username)+"/did_or_fidokey/"+hash, nil, nil); err != nil {
			return err
		}
		if st, err = dm.status(r.Context(), ses.username); err != nil {
			return err
		}
		c, err := dm.community(r.Context())
		if err != nil {
			return err
		}
		ids := []string{}
		for _, k := range st.FidoKeys {
			ids = append(ids, k.CredentialID)
		}
		// What PublicKeyCredential.signalAllAcceptedCredentials takes.
		encode(w, http.StatusOK, map[string]any{"rpId": c.RPIDs[0], "userId": st.UserHandle, "allAcceptedCredentialIds": ids})
		return nil
	})
}

func handleDemoSignOut(dm *demo) http.Handler {
	return handle(dm.log, func(w http.ResponseWriter, r *http.Request) error {
		ses, err := dm.session(w, r, false)
		if err != nil {
			return err
		}
		if err := readNoBody(r); err != nil {
			return err
		}
		dm.sessions.drop(ses.id)
		dm.setCookie(w, r, "", -1)
		encode(w, http.StatusOK, map[string]any{})
		return nil
	})
}

// demoPage serves the demo's routes: security headers on every answer, and, for the routes
// that change something, Go's cross-origin protection (Sec-Fetch-Site, Origin) before the
// session's CSRF token is checked.
func (d *demo) page(unsafe bool, h http.Handler) http.Handler {
	if unsafe {
		h = d.csrf.Handler(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", demoCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// handleDemoFile serves one embedded file.
func handleDemoFile(name string) http.Handler {
	body, err := demoFiles.ReadFile("demo/" + name)
	if err != nil {
		panic(err) // a name in routes.go that is not embedded: a build mistake
	}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	ct := types[name[strings.LastIndexByte(name, '.'):]]
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
}
