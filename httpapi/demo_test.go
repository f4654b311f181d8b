package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// demoFakePasskeys knows one user, alice, with one passkey.
type demoFakePasskeys struct{}

const demoAliceKeyHash = "1f40fc92da241694750979ee6cf582f2d5d7d28e18335de05abc54d0560e0f53"

func (demoFakePasskeys) Passkeys(_ context.Context, m messages.ListPasskeys) (messages.UserPasskeys, error) {
	if m.Username != "alice" {
		return messages.UserPasskeys{}, nil
	}
	return messages.UserPasskeys{Found: true, UserHandle: []byte{1, 2}, DisplayName: "alice", Passkeys: []messages.Passkey{
		{FidoKeyHash: demoAliceKeyHash, CredentialID: []byte{1, 2, 3, 4}, Created: time.Now()}}}, nil
}
func (demoFakePasskeys) Link(context.Context, messages.Link) error                    { return nil }
func (demoFakePasskeys) Unlink(context.Context, messages.Link) error                  { return nil }
func (demoFakePasskeys) Unregister(context.Context, messages.Unregister) (int, error) { return 1, nil }

// demoClient is a browser of the demo: a cookie jar, and the session's CSRF token.
type demoClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

// newDemoServer serves the real handler with the fake engine, store and passkeys, the demo on
// with the fake store's license "good-key".
func newDemoServer(t *testing.T, demo bool) *demoClient {
	t.Helper()
	return newDemoServerWith(t, demo, demoFakePasskeys{})
}

// newDemoServerWith is newDemoServer with the given passkeys.
func newDemoServerWith(t *testing.T, demo bool, passkeys Passkeys) *demoClient {
	t.Helper()
	envelope, err := NewEnvelopeKey(CurveSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{
		Config:      Config{PublicURL: "http://localhost:8080", Version: "test", CeremonyTimeout: time.Minute, TokenTTL: time.Minute, AllowedTimeSpan: time.Minute},
		Ceremonies:  openAPIEngine,
		Licenses:    openAPIFakeStore{},
		Communities: openAPIFakeStore{},
		Health:      HealthChecks{},
		Draining:    func() bool { return false },
		TokenKeys:   func() any { return []any{} },
		Envelope:    NewKeyring(envelope),
		Passkeys:    passkeys,
		Log:         zap.NewNop(),
	}
	if demo {
		d.Demo = &DemoConfig{LicenseKey: "good-key", CommunityID: "default"}
	}
	srv := httptest.NewServer(NewServer(d))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &demoClient{t: t, base: srv.URL, http: &http.Client{Jar: jar}}
}

// do sends a request with the session's CSRF token (unless headers set it) and returns the
// status and the JSON body; every answer must be JSON, and none may carry the license key.
func (c *demoClient) do(method, path, body string, headers map[string]string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if strings.Contains(string(raw), "good-key") {
		c.t.Errorf("%s %s: the answer carries the license key: %s", method, path, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || res.Header.Get("Content-Type") != "application/json" {
		c.t.Fatalf("%s %s answered %d with %q (%s), not JSON", method, path, res.StatusCode, raw, res.Header.Get("Content-Type"))
	}
	return res.StatusCode, out
}

// start loads the session (the page's first request) and keeps its CSRF token.
func (c *demoClient) start() map[string]any {
	c.t.Helper()
	status, body := c.do(http.MethodGet, "/demo/api/session", "", nil)
	if status != http.StatusOK || body["csrf"] == "" {
		c.t.Fatalf("session: %d %v", status, body)
	}
	c.csrf, _ = body["csrf"].(string)
	return body
}

// TestDemoRefusesBadInput sends the demo's backend what a broken or hostile page could: every
// answer is a 4xx JSON error with a code, never a 500.
func TestDemoRefusesBadInput(t *testing.T) {
	c := newDemoServer(t, true)
	c.start()
	big := `{"username":"` + strings.Repeat("a", 70<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		code                     messages.Code
	}{
		{"no CSRF token", "POST", "/demo/api/signup/options", `{"username":"bob"}`, map[string]string{"X-CSRF-Token": ""}, 403, messages.CodeCSRFRefused},
		{"a wrong CSRF token", "POST", "/demo/api/signin/options", `{}`, map[string]string{"X-CSRF-Token": "x"}, 403, messages.CodeCSRFRefused},
		{"a cross-site request", "POST", "/demo/api/signout", ``, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, messages.CodeCSRFRefused},
		// A navigation from another site carries no SameSite=Strict cookie: answered, it would
		// set a new session's cookie over the user's and sign them out.
		{"a cross-site session request", "GET", "/demo/api/session", ``, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, messages.CodeCSRFRefused},
		{"a same-site session request (another port)", "GET", "/demo/api/session", ``, map[string]string{"Sec-Fetch-Site": "same-site"}, 403, messages.CodeCSRFRefused},
		{"another origin", "DELETE", "/demo/api/passkeys/" + demoAliceKeyHash, ``, map[string]string{"Origin": "https://evil.example"}, 403, messages.CodeCSRFRefused},
		{"not JSON", "POST", "/demo/api/signup/options", `username=bob`, nil, 400, messages.CodeInvalidRequest},
		{"a case variant of a member", "POST", "/demo/api/signup/options", `{"USERNAME":"bob"}`, nil, 400, messages.CodeInvalidRequest},
		{"a member twice", "POST", "/demo/api/signin/options", `{"username":"a","username":"b"}`, nil, 400, messages.CodeInvalidRequest},
		{"a number for a username", "POST", "/demo/api/signin/options", `{"username":5}`, nil, 400, messages.CodeInvalidRequest},
		{"no username at sign-up", "POST", "/demo/api/signup/options", `{}`, nil, 400, messages.CodeInvalidRequest},
		{"a control character", "POST", "/demo/api/signup/options", `{"username":"a\u0007b"}`, nil, 400, messages.CodeInvalidRequest},
		{"over 64 KiB", "POST", "/demo/api/signup/options", big, nil, 413, messages.CodeBodyTooLarge},
		{"not UTF-8", "POST", "/demo/api/signup/options", "{\"username\":\"\xff\"}", nil, 400, messages.CodeInvalidRequest},
		{"an existing username", "POST", "/demo/api/signup/options", `{"username":"alice"}`, nil, 409, messages.CodeConflict},
		{"a result without a ceremony", "POST", "/demo/api/signup/result", `{"id":"AQ","rawId":"AQ","response":{"clientDataJSON":"e30"}}`, nil, 400, messages.CodeCeremonyNotFound},
		{"a result that is not a credential", "POST", "/demo/api/signin/result", `[1,2]`, nil, 400, messages.CodeInvalidRequest},
		{"add a passkey signed out", "POST", "/demo/api/passkeys/options", `{"kind":"passkey"}`, nil, 401, messages.CodeSignedOut},
		{"delete signed out", "DELETE", "/demo/api/passkeys/" + demoAliceKeyHash, ``, nil, 401, messages.CodeSignedOut},
		{"sign out with a body", "POST", "/demo/api/signout", `{"x":1}`, nil, 400, messages.CodeInvalidRequest},
		{"an unknown demo route", "GET", "/demo/api/nothing", ``, nil, 404, messages.CodeNotFound},
		{"another method", "PUT", "/demo/api/signout", ``, nil, 405, messages.CodeMethodNotAllowed},
		{"a privateKey header", "GET", "/demo/api/session", ``, map[string]string{"privateKey": "x"}, 400, messages.CodePrivateKeyRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			status, body := c.do(tc.method, tc.path, tc.body, tc.headers)
			if status != tc.status || body["code"] != string(tc.code) {
				t.Errorf("%s %s: %d %v, want %d %s", tc.method, tc.path, status, body, tc.status, tc.code)
			}
		})
	}
}

// TestDemoHoldsResultsToTheirSession checks that a result must carry the challenge its session
// was given, once: every visitor shares the demo's license, and no sessionInfo is sent.
func TestDemoHoldsResultsToTheirSession(t *testing.T) {
	credential := func(challenge string) string {
		client := base64.RawURLEncoding.EncodeToString([]byte(`{"type":"webauthn.create","challenge":"` + challenge + `","origin":"http://localhost:8080"}`))
		return `{"id":"AQIDBA","rawId":"AQIDBA","type":"public-key","response":{"clientDataJSON":"` + client + `","attestationObject":"oA"}}`
	}
	const given = "pWfVc2QJHkUJ4qaDBOKYNuA2KhgvBIV2ganpiRux_Ds" // the fake engine's challenge
	other := base64.RawURLEncoding.EncodeToString(make([]byte, 32))

	passkeys := &demoListPasskeys{}
	c := newDemoServerWith(t, true, passkeys)
	c.start()
	status, body := c.do("POST", "/demo/api/signup/options", `{"username":"bob"}`, nil)
	opts, _ := body["publicKey"].(map[string]any)
	if status != 200 || opts["challenge"] != given || opts["status"] != nil || opts["sessionInfo"] != nil || body["publickey"] != nil {
		t.Fatalf("sign-up options: %d %v; want the creation options alone", status, body)
	}
	twice := `{"id":"AQIDBA","rawId":"AQIDBA","response":{"clientDataJSON":"` +
		base64.RawURLEncoding.EncodeToString([]byte(`{"challenge":"`+other+`","challenge":"`+given+`"}`)) + `","attestationObject":"oA"}}`
	if status, body := c.do("POST", "/demo/api/signup/result", twice, nil); status != 400 || body["code"] != "invalid_credential" {
		t.Errorf("a clientDataJSON naming challenge twice: %d %v, want 400 invalid_credential", status, body)
	}
	c.do("POST", "/demo/api/signup/options", `{"username":"bob"}`, nil)
	if status, body := c.do("POST", "/demo/api/signup/result", credential(other), nil); status != 400 || body["code"] != "challenge_mismatch" {
		t.Errorf("a result with another challenge: %d %v, want 400 challenge_mismatch", status, body)
	}
	if status, body := c.do("POST", "/demo/api/signup/result", credential(given), nil); status != 400 || body["code"] != "ceremony_not_found" {
		t.Errorf("a second result for a spent ceremony: %d %v, want 400 ceremony_not_found", status, body)
	}

	// Another browser's session cannot finish this one's ceremony.
	c.do("POST", "/demo/api/signup/options", `{"username":"bob"}`, nil)
	thief := newDemoServer(t, true)
	thief.base = c.base
	thief.start()
	if status, body := thief.do("POST", "/demo/api/signup/result", credential(given), nil); status != 400 || body["code"] != "ceremony_not_found" {
		t.Errorf("another session's result: %d %v, want 400 ceremony_not_found", status, body)
	}

	oldCSRF := c.csrf
	status, body = c.do("POST", "/demo/api/signup/result", credential(given), nil)
	if status != 200 || body["username"] != "bob" || body["csrf"] == oldCSRF {
		t.Fatalf("the session's own result: %d %v; want bob signed in with a new CSRF token", status, body)
	}
	passkeys.set(fidoKeyHash(openAPIRegistered.CredentialID)) // what the registration stored
	if status, body := c.do("POST", "/demo/api/signout", "", nil); status != 403 || body["code"] != "csrf_refused" {
		t.Errorf("the CSRF token of before the sign-in still works: %d %v", status, body)
	}
	c.csrf, _ = body["csrf"].(string)
	ses := c.start()
	if ses["signedIn"] != true || ses["username"] != "bob" {
		t.Errorf("session after sign-up: %v", ses)
	}
}

// TestDemoPage checks the page's files: their types and a Content-Security-Policy without
// 'unsafe-inline' (the page has no inline script or style).
func TestDemoPage(t *testing.T) {
	c := newDemoServer(t, true)
	for path, ct := range map[string]string{"/": "text/html; charset=utf-8", "/demo/demo.js": "text/javascript; charset=utf-8",
		"/demo/demo.css": "text/css; charset=utf-8", "/demo/icon.svg": "image/svg+xml"} {
		res, err := c.http.Get(c.base + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ct || len(raw) == 0 || csp != demoCSP ||
			strings.Contains(csp, "unsafe") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %q, CSP %q", path, res.StatusCode, res.Header.Get("Content-Type"), csp)
		}
		if path == "/" && (strings.Contains(string(raw), "<script>") || strings.Contains(string(raw), "style=") || strings.Contains(string(raw), "<style")) {
			t.Errorf("the page has inline script or style, which its CSP refuses")
		}
	}
	res, err := c.http.Get(c.base + "/demo/api/session")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cookie := res.Header.Get("Set-Cookie")
	for _, attr := range []string{"webauthnd_demo=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("the session cookie %q lacks %s", cookie, attr)
		}
	}
}

// TestDemoOff checks that without a DemoConfig nothing of the demo is served.
func TestDemoOff(t *testing.T) {
	c := newDemoServer(t, false)
	for _, path := range []string{"/", "/demo/demo.js", "/demo/api/session"} {
		if status, body := c.do("GET", path, "", nil); status != 404 || body["code"] != "not_found" {
			t.Errorf("GET %s with the demo off: %d %v", path, status, body)
		}
	}
}

// TestDemoSessionsAreBounded checks the session store: at most maxDemoSessions, the least
// recently seen going first; idle sessions forgotten; a dropped session never brought back.
func TestDemoSessionsAreBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newDemoSessions(func() time.Time { return now })
	for i := range maxDemoSessions + 1 {
		s.create(demoSession{id: "s" + strconv.Itoa(i)})
		now = now.Add(time.Millisecond)
	}
	if len(s.m) != maxDemoSessions {
		t.Errorf("%d sessions, want %d", len(s.m), maxDemoSessions)
	}
	if _, ok := s.load("s0"); ok {
		t.Error("the least recently seen session is still there")
	}
	if _, ok := s.load("s1"); !ok {
		t.Error("a recent session is gone")
	}
	s.drop("s1")
	s.save(demoSession{id: "s1", username: "mallory"})
	if _, ok := s.load("s1"); ok {
		t.Error("saving a dropped session brought it back")
	}
	now = now.Add(demoSessionIdle + time.Second)
	if _, ok := s.load("s2"); ok {
		t.Error("an idle session is still there")
	}
}

// demoRacyPasskeys gives bob the passkeys in keys once set, removes them on Unregister, and
// holds the first list request until a second one arrives (or a while has passed), so that two
// deletes that do not wait for each other both read the list before either removes a passkey.
type demoRacyPasskeys struct {
	demoFakePasskeys
	mu      sync.Mutex
	keys    []string
	lists   int
	arrived chan struct{}
}

func (p *demoRacyPasskeys) Passkeys(_ context.Context, m messages.ListPasskeys) (messages.UserPasskeys, error) {
	p.mu.Lock()
	p.lists++
	first, keys := p.lists == 1 && len(p.keys) > 0, slices.Clone(p.keys)
	if p.lists == 2 {
		close(p.arrived)
	}
	p.mu.Unlock()
	if m.Username != "bob" || len(keys) == 0 {
		return messages.UserPasskeys{}, nil
	}
	if first {
		select {
		case <-p.arrived:
		case <-time.After(300 * time.Millisecond):
		}
	}
	out := messages.UserPasskeys{Found: true, UserHandle: []byte{3}, DisplayName: "bob"}
	for i, k := range keys {
		out.Passkeys = append(out.Passkeys, messages.Passkey{FidoKeyHash: k, CredentialID: []byte{byte(i + 1)}, Created: time.Now()})
	}
	return out, nil
}

func (p *demoRacyPasskeys) Unregister(_ context.Context, m messages.Unregister) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.keys)
	p.keys = slices.DeleteFunc(p.keys, func(k string) bool { return k == m.Identifier })
	return n - len(p.keys), nil
}

// TestDemoNeverDeletesTheLastPasskey checks that two deletes sent at once, one for each of a
// user's two passkeys, leave one: the check that refuses deleting the only passkey must see
// the other delete's result.
func TestDemoNeverDeletesTheLastPasskey(t *testing.T) {
	passkeys := &demoRacyPasskeys{arrived: make(chan struct{})}
	c := newDemoServerWith(t, true, passkeys)
	c.start()
	// Sign up as bob (the fake engine's challenge), then give bob two passkeys.
	const given = "pWfVc2QJHkUJ4qaDBOKYNuA2KhgvBIV2ganpiRux_Ds"
	if status, body := c.do("POST", "/demo/api/signup/options", `{"username":"bob"}`, nil); status != 200 {
		t.Fatalf("sign-up options: %d %v", status, body)
	}
	client := base64.RawURLEncoding.EncodeToString([]byte(`{"type":"webauthn.create","challenge":"` + given + `","origin":"http://localhost:8080"}`))
	status, body := c.do("POST", "/demo/api/signup/result", `{"id":"AQIDBA","rawId":"AQIDBA","type":"public-key","response":{"clientDataJSON":"`+client+`","attestationObject":"oA"}}`, nil)
	if status != 200 {
		t.Fatalf("sign-up result: %d %v", status, body)
	}
	c.csrf, _ = body["csrf"].(string)
	// The session signed in with the fake engine's passkey, one of the two.
	hashes := []string{fidoKeyHash(openAPIRegistered.CredentialID), strings.Repeat("b", 64)}
	passkeys.mu.Lock()
	passkeys.keys, passkeys.lists = slices.Clone(hashes), 0
	passkeys.mu.Unlock()

	var wg sync.WaitGroup
	statuses := make([]int, len(hashes))
	for i, h := range hashes {
		wg.Go(func() { statuses[i], _ = c.do("DELETE", "/demo/api/passkeys/"+h, "", nil) })
	}
	wg.Wait()
	passkeys.mu.Lock()
	left := len(passkeys.keys)
	passkeys.mu.Unlock()
	if left != 1 || !slices.Contains(statuses, http.StatusConflict) {
		t.Errorf("two deletes at once answered %v and left %d passkeys; want one refused (409) and one passkey left", statuses, left)
	}
}

// TestDemoSessionFloodKeepsSignedInUsers checks that sessions anyone can make without a
// passkey (one GET each) cannot push out signed-in ones: when the store is full, a signed-out
// session goes first.
func TestDemoSessionFloodKeepsSignedInUsers(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newDemoSessions(func() time.Time { return now })
	s.create(demoSession{id: "alice", username: "alice"})
	for i := range 2 * maxDemoSessions {
		now = now.Add(time.Millisecond)
		s.create(demoSession{id: "anon" + strconv.Itoa(i)})
	}
	if len(s.m) != maxDemoSessions {
		t.Errorf("%d sessions, want %d", len(s.m), maxDemoSessions)
	}
	if ses, ok := s.load("alice"); !ok || ses.username != "alice" {
		t.Error("a flood of signed-out sessions pushed out a signed-in one")
	}
}

// demoListPasskeys gives bob the passkeys in keys and removes them on Unregister.
type demoListPasskeys struct {
	demoFakePasskeys
	mu   sync.Mutex
	keys []string
}

func (p *demoListPasskeys) set(keys ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

func (p *demoListPasskeys) Passkeys(_ context.Context, m messages.ListPasskeys) (messages.UserPasskeys, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.Username != "bob" || len(p.keys) == 0 {
		return messages.UserPasskeys{}, nil
	}
	out := messages.UserPasskeys{Found: true, UserHandle: []byte{3}, DisplayName: "bob"}
	for i, k := range p.keys {
		out.Passkeys = append(out.Passkeys, messages.Passkey{FidoKeyHash: k, CredentialID: []byte{byte(i + 1)}, Created: time.Now()})
	}
	return out, nil
}

func (p *demoListPasskeys) Unregister(_ context.Context, m messages.Unregister) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.keys)
	p.keys = slices.DeleteFunc(p.keys, func(k string) bool { return k == m.Identifier })
	return n - len(p.keys), nil
}

// demoSignUpAsBob signs a demo client up as bob with the fake engine's passkey.
func demoSignUpAsBob(t *testing.T, c *demoClient) {
	t.Helper()
	const given = "pWfVc2QJHkUJ4qaDBOKYNuA2KhgvBIV2ganpiRux_Ds" // the fake engine's challenge
	c.start()
	if status, body := c.do("POST", "/demo/api/signup/options", `{"username":"bob"}`, nil); status != 200 {
		t.Fatalf("sign-up options: %d %v", status, body)
	}
	client := base64.RawURLEncoding.EncodeToString([]byte(`{"type":"webauthn.create","challenge":"` + given + `","origin":"http://localhost:8080"}`))
	status, body := c.do("POST", "/demo/api/signup/result", `{"id":"AQIDBA","rawId":"AQIDBA","type":"public-key","response":{"clientDataJSON":"`+client+`","attestationObject":"oA"}}`, nil)
	if status != 200 {
		t.Fatalf("sign-up result: %d %v", status, body)
	}
	c.csrf, _ = body["csrf"].(string)
}

// TestDemoSessionEndsWithItsPasskey checks that deleting a passkey signs out the sessions it
// signed in (a lost phone's, say): they can no longer add a passkey or delete one. The session
// that deletes it stays signed in: its user is at the keyboard.
func TestDemoSessionEndsWithItsPasskey(t *testing.T) {
	passkeys := &demoListPasskeys{}
	owner := newDemoServerWith(t, true, passkeys)
	browser := func() *demoClient {
		jar, _ := cookiejar.New(nil)
		return &demoClient{t: t, base: owner.base, http: &http.Client{Jar: jar}}
	}
	thief, thief2 := browser(), browser()
	for _, c := range []*demoClient{owner, thief, thief2} {
		demoSignUpAsBob(t, c) // each session signed in with the fake engine's passkey
	}
	phone, laptop := fidoKeyHash(openAPIRegistered.CredentialID), strings.Repeat("b", 64)
	passkeys.set(phone, laptop)

	// The owner deletes the phone's passkey from a session it signed in.
	if status, body := owner.do("DELETE", "/demo/api/passkeys/"+phone, "", nil); status != 200 {
		t.Fatalf("delete: %d %v", status, body)
	}
	if ses := owner.start(); ses["signedIn"] != true {
		t.Errorf("the session that deleted its own passkey was signed out: %v", ses)
	}
	if status, body := thief.do("POST", "/demo/api/passkeys/options", `{"kind":"passkey"}`, nil); status != 401 || body["code"] != "signed_out" {
		t.Errorf("adding a passkey from a session whose passkey was deleted: %d %v, want 401 signed_out", status, body)
	}
	if status, body := thief2.do("DELETE", "/demo/api/passkeys/"+laptop, "", nil); status != 401 || body["code"] != "signed_out" {
		t.Errorf("deleting from a session whose passkey was deleted: %d %v, want 401 signed_out", status, body)
	}
	if ses := thief.start(); ses["signedIn"] != false {
		t.Errorf("a session whose passkey was deleted still reads as signed in: %v", ses)
	}
}
