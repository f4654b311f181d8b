package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// loadOpenAPIForTest parses and validates the embedded document.
func loadOpenAPIForTest(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// TestOpenAPIDocumentIsValid checks that the embedded document loads, validates and is the file
// in the source tree.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPIForTest(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	onDisk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, openAPIDocument) {
		t.Errorf("the embedded document differs from openapi.json")
	}
	if doc.Info == nil || !strings.Contains(doc.Info.Description, "privateKey") {
		t.Errorf("info.description does not describe the refused privateKey header")
	}
}

// registeredRoutes returns "METHOD /path" for every route that func routes in routes.go
// registers, with httprouter's :name and *name parameters written as OpenAPI's {name}.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	return routesOf(t, "routes")
}

// routesOf is registeredRoutes for another function of routes.go.
func routesOf(t *testing.T, funcName string) []string {
	t.Helper()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range file.Decls {
		if f, ok := d.(*ast.FuncDecl); ok && f.Recv == nil && f.Name.Name == funcName {
			fn = f
		}
	}
	if fn == nil {
		t.Fatalf("routes.go has no func %s", funcName)
	}
	var out []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		var methodArg, pathArg ast.Expr
		switch name := sel.Sel.Name; name {
		case "Handler", "Handle", "HandlerFunc":
			if len(call.Args) < 2 {
				return true
			}
			methodArg, pathArg = call.Args[0], call.Args[1]
		case "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE":
			if len(call.Args) < 1 {
				return true
			}
			methodArg, pathArg = &ast.BasicLit{Kind: token.STRING, Value: strconv.Quote(name)}, call.Args[0]
		default:
			return true
		}
		method, ok1 := methodOf(methodArg)
		path, ok2 := stringLiteral(pathArg)
		if !ok1 || !ok2 {
			t.Errorf("%s: cannot read the method and path of this route; write them as literals", fset.Position(call.Pos()))
			return true
		}
		out = append(out, method+" "+openAPIPath(path))
		return true
	})
	sort.Strings(out)
	return out
}

// methodOf reads an http.MethodX constant or a string literal.
func methodOf(e ast.Expr) (string, bool) {
	if sel, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == "http" && strings.HasPrefix(sel.Sel.Name, "Method") {
			return strings.ToUpper(strings.TrimPrefix(sel.Sel.Name, "Method")), true
		}
		return "", false
	}
	s, ok := stringLiteral(e)
	return strings.ToUpper(s), ok
}

func stringLiteral(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// openAPIPath writes httprouter's path parameters (:name, *name) as {name}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPIMatchesRoutes checks that the document has exactly the operations that func routes
// registers on the public listener: no route undocumented, no documented route missing.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPIForTest(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(documented)
	registered := registeredRoutes(t)
	if len(registered) == 0 {
		t.Fatal("found no routes in func routes")
	}
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered in routes.go but not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("operation %s is in openapi.json but routes.go does not register it", d)
		}
	}
}

// TestDemoRoutesStayOutOfTheAPI checks the decision that keeps the passkey demo out of the
// OpenAPI document: the demo is a relying party's page and backend (cookies, CSRF tokens,
// answers shaped for its page), off in production, not the service's API. So its routes must
// live at / and under /demo/ only, never among the API's paths, and the document must name
// none of them, nor the codes only they answer.
func TestDemoRoutesStayOutOfTheAPI(t *testing.T) {
	doc := loadOpenAPIForTest(t)
	demo := routesOf(t, "demoRoutes")
	if len(demo) == 0 {
		t.Fatal("found no routes in func demoRoutes")
	}
	for _, r := range demo {
		_, path, _ := strings.Cut(r, " ")
		if path != "/" && !strings.HasPrefix(path, "/demo/") {
			t.Errorf("demo route %s is outside / and /demo/", r)
		}
		if doc.Paths.Find(path) != nil {
			t.Errorf("demo route %s is in openapi.json", r)
		}
	}
	for _, r := range registeredRoutes(t) {
		if _, path, _ := strings.Cut(r, " "); path == "/" || strings.HasPrefix(path, "/demo/") {
			t.Errorf("API route %s is in the demo's paths", r)
		}
	}
	for _, c := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		if slices.Contains(demoOnlyCodes, messages.Code(c.(string))) {
			t.Errorf("components/schemas/ErrorCode lists %s, which only the demo answers", c)
		}
	}
}

// TestOpenAPIErrorCodesMatchStatuses checks the document's error responses against statusOf:
// every code the document allows under a status is answered with that status, and every code
// of statusOf is documented under its status.
func TestOpenAPIErrorCodesMatchStatuses(t *testing.T) {
	doc := loadOpenAPIForTest(t)
	documented := map[messages.Code][]int{}
	for name, ref := range doc.Components.Responses {
		media := ref.Value.Content.Get("application/json")
		if media == nil || media.Schema == nil || len(media.Schema.Value.AllOf) != 2 {
			t.Errorf("components/responses/%s is not allOf [Error, {statusCode, code}]", name)
			continue
		}
		narrow := media.Schema.Value.AllOf[1].Value
		statuses := narrow.Properties["statusCode"].Value.Enum
		codes := narrow.Properties["code"].Value.Enum
		if len(statuses) != 1 || len(codes) == 0 {
			t.Errorf("components/responses/%s: want one statusCode and some codes, got %v and %v", name, statuses, codes)
			continue
		}
		status := int(statuses[0].(float64))
		for _, c := range codes {
			code := messages.Code(c.(string))
			documented[code] = append(documented[code], status)
			if want, ok := statusOf[code]; !ok || want != status {
				t.Errorf("components/responses/%s allows %s with status %d; statusOf answers it with %d", name, code, status, want)
			}
		}
	}
	for code, status := range statusOf {
		if slices.Contains(demoOnlyCodes, code) {
			continue
		}
		if !slices.Contains(documented[code], status) {
			t.Errorf("code %s (status %d) is in no error response of openapi.json", code, status)
		}
	}
	var enum []string
	for _, c := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, c.(string))
	}
	for code := range statusOf {
		if !slices.Contains(enum, string(code)) && !slices.Contains(demoOnlyCodes, code) {
			t.Errorf("code %s is missing from components/schemas/ErrorCode", code)
		}
	}
	if len(enum) != len(statusOf)-len(demoOnlyCodes) {
		t.Errorf("components/schemas/ErrorCode has %d codes, statusOf %d of the API's", len(enum), len(statusOf)-len(demoOnlyCodes))
	}
}

// openAPIFakeEngine answers each ceremony call with its canned value or error.
type openAPIFakeEngine struct {
	regOptions  messages.RegistrationOptions
	registered  messages.Registered
	signOptions messages.SignInOptions
	signedIn    messages.SignedIn
	err         error
}

func (f openAPIFakeEngine) BeginRegistration(context.Context, messages.BeginRegistration) (messages.RegistrationOptions, error) {
	return f.regOptions, f.err
}

func (f openAPIFakeEngine) FinishRegistration(context.Context, messages.FinishRegistration) (messages.Registered, error) {
	return f.registered, f.err
}

func (f openAPIFakeEngine) BeginSignIn(context.Context, messages.BeginSignIn) (messages.SignInOptions, error) {
	return f.signOptions, f.err
}

func (f openAPIFakeEngine) FinishSignIn(context.Context, messages.FinishSignIn) (messages.SignedIn, error) {
	return f.signedIn, f.err
}

// The link and de-registration routes: alice has no passkey; writes answer err.
func (f openAPIFakeEngine) Passkeys(context.Context, messages.ListPasskeys) (messages.UserPasskeys, error) {
	return messages.UserPasskeys{}, f.err
}
func (f openAPIFakeEngine) Link(context.Context, messages.Link) error   { return f.err }
func (f openAPIFakeEngine) Unlink(context.Context, messages.Link) error { return f.err }
func (f openAPIFakeEngine) Unregister(context.Context, messages.Unregister) (int, error) {
	return 1, f.err
}

// openAPIFakeStore knows one community license, "good-key", of the community "default".
type openAPIFakeStore struct{}

func (openAPIFakeStore) LicenseByKey(_ context.Context, key string) (persistence.License, error) {
	if key != "good-key" {
		return persistence.License{}, persistence.ErrNotFound
	}
	return persistence.License{ID: "l1", Level: persistence.LevelCommunity, CommunityID: "default"}, nil
}

func (f openAPIFakeStore) AllLicenses(ctx context.Context) ([]persistence.License, error) {
	l, err := f.LicenseByKey(ctx, "good-key")
	return []persistence.License{l}, err
}

func (openAPIFakeStore) Tenant(_ context.Context, id string) (persistence.Tenant, error) {
	return persistence.Tenant{ID: id}, nil
}

func (openAPIFakeStore) TenantByDNS(_ context.Context, host string) (persistence.Tenant, error) {
	if host != "localhost" {
		return persistence.Tenant{}, persistence.ErrNotFound
	}
	return persistence.Tenant{ID: "default", DNS: []string{"localhost"}}, nil
}

func (f openAPIFakeStore) CommunityByName(ctx context.Context, tenantID, name string) (persistence.Community, error) {
	if name != "default" {
		return persistence.Community{}, persistence.ErrNotFound
	}
	return f.Community(ctx, "default")
}

func (openAPIFakeStore) Community(_ context.Context, id string) (persistence.Community, error) {
	if id != "default" {
		return persistence.Community{}, persistence.ErrNotFound
	}
	return persistence.Community{ID: "default", TenantID: "default", RPIDs: []string{"localhost"}}, nil
}

// Canned engine answers, in the shapes go-webauthn produces.
const (
	openAPICreationOptions = `{"rp":{"name":"default","id":"localhost"},"user":{"name":"alice","displayName":"alice",` +
		`"id":"3wkvxkNXdt4a1qBVUqqmVpBV9_85eC9DnS_oNkSHSrk"},"challenge":"pWfVc2QJHkUJ4qaDBOKYNuA2KhgvBIV2ganpiRux_Ds",` +
		`"pubKeyCredParams":[{"type":"public-key","alg":-7},{"type":"public-key","alg":-257}],"timeout":300000,` +
		`"excludeCredentials":[{"type":"public-key","id":"HCmb_HmM0U4Sh1mEUIDPnMg6djgcU_HN9TOG82nroDQ","transports":["internal"]}],` +
		`"authenticatorSelection":{"requireResidentKey":false,"residentKey":"preferred","userVerification":"preferred"},` +
		`"attestation":"direct","extensions":{"credProps":true},"hints":["client-device"]}`
	openAPIRequestOptions = `{"challenge":"oeSwY-PYEyq9Rg59k15_7BNDtTU0y5ZeQxJwo8_4uaU","timeout":300000,"rpId":"localhost",` +
		`"allowCredentials":[{"type":"public-key","id":"HCmb_HmM0U4Sh1mEUIDPnMg6djgcU_HN9TOG82nroDQ","transports":["hybrid","internal"]}],` +
		`"userVerification":"preferred"}`
	openAPIDiscoverableOptions = `{"challenge":"oeSwY-PYEyq9Rg59k15_7BNDtTU0y5ZeQxJwo8_4uaU","timeout":300000,"rpId":"localhost",` +
		`"userVerification":"required","extensions":{"appid":"x"}}`
	openAPIToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
)

var (
	openAPIRegistered = messages.Registered{Username: "alice", CredentialID: []byte{1, 2, 3, 4}, PublicKeySPKI: []byte{0x30, 0x59},
		AAGUID: "00000000-0000-0000-0000-000000000000", AttestationFormat: "none"}
	openAPISignedIn = messages.SignedIn{Username: "alice", CredentialID: []byte{1, 2, 3, 4}, UserVerified: true, Token: openAPIToken}
	openAPIEngine   = openAPIFakeEngine{
		regOptions:  messages.RegistrationOptions{Options: []byte(openAPICreationOptions), SessionInfo: "s1"},
		registered:  openAPIRegistered,
		signOptions: messages.SignInOptions{Options: []byte(openAPIRequestOptions), SessionInfo: "s2"},
		signedIn:    openAPISignedIn,
	}
)

// openAPITestServer is the real handler with the fakes above.
func openAPITestServer(t *testing.T, engine Ceremonies, health HealthChecks, draining bool) http.Handler {
	t.Helper()
	envelope, err := NewEnvelopeKey(CurveSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	passkeys, _ := engine.(Passkeys)
	return NewServer(Deps{
		Passkeys: passkeys,
		Config: Config{PublicURL: "http://localhost:8080", Version: "test", CeremonyTimeout: 5 * time.Minute,
			TokenTTL: 5 * time.Minute, AllowedTimeSpan: time.Minute},
		Ceremonies:  engine,
		Licenses:    openAPIFakeStore{},
		Communities: openAPIFakeStore{},
		Health:      health,
		Draining:    func() bool { return draining },
		TokenKeys: func() any {
			return []map[string]string{{"kty": "EC", "crv": "P-256", "x": "9k_DF_iD-wzl8G94XwJVkC35XSaD8uuihoiYmwr0JzA",
				"y": "RrXC8yFbZ3YPSlXw4eLntgHxHmfpkyWd6LoI_QYBoVo", "kid": "k1", "use": "sig", "alg": "ES256"}}
		},
		Envelope: NewKeyring(envelope),
		Log:      zap.NewNop(),
	})
}

// TestOpenAPIServesDocument checks that GET /webauthn/openapi.json answers the embedded
// document as JSON, and that the route is guarded like every other.
func TestOpenAPIServesDocument(t *testing.T) {
	srv := openAPITestServer(t, openAPIEngine, HealthChecks{}, false)
	cases := []struct {
		name        string
		method      string
		headers     map[string]string
		status      int
		wantDoc     bool
		contentType string
	}{
		{name: "GET answers the document", method: http.MethodGet, status: http.StatusOK, wantDoc: true, contentType: "application/json"},
		{name: "a licensekey is ignored", method: http.MethodGet, headers: map[string]string{"licensekey": "nonsense"},
			status: http.StatusOK, wantDoc: true, contentType: "application/json"},
		{name: "POST is not allowed", method: http.MethodPost, status: http.StatusMethodNotAllowed, contentType: "application/json"},
		{name: "a privateKey header is refused", method: http.MethodGet, headers: map[string]string{"privateKey": "x"},
			status: http.StatusBadRequest, contentType: "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/webauthn/openapi.json", nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if tc.wantDoc {
				if !bytes.Equal(rec.Body.Bytes(), openAPIDocument) {
					t.Errorf("the body is not the embedded document")
				}
				var v map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v["openapi"] != "3.0.3" {
					t.Errorf("the body is not an OpenAPI 3.0.3 JSON document: %v", err)
				}
			}
		})
	}
}

// openAPIValidate checks one response of the handler against the document, as the end-to-end
// tests' checkOpenAPI does: the status must be listed for the operation, and headers and body
// must match. A request that matches no operation may only be answered with the document's
// NotFound, MethodNotAllowed or PrivateKeyRefused responses.
func openAPIValidate(doc *openapi3.T, router routers.Router, req *http.Request, res *http.Response, body []byte) error {
	route, pathParams, err := router.FindRoute(req)
	if err != nil {
		unrouted := map[int]string{400: "PrivateKeyRefused", 404: "NotFound", 405: "MethodNotAllowed"}
		name, ok := unrouted[res.StatusCode]
		if !ok {
			return err
		}
		route = &routers.Route{Spec: doc, Path: req.URL.Path, Method: req.Method, Operation: &openapi3.Operation{
			Responses: openapi3.NewResponses(openapi3.WithStatus(res.StatusCode, doc.Components.Responses[name])),
		}}
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}},
	})
}

// TestOpenAPIDescribesResponses runs the real handler, with a fake engine and store, through
// answers the end-to-end tests cannot easily provoke (draining, 429, 500, 503) and checks each
// against the document. The cases marked mismatch feed the handler a wrong shape and check
// that the document is strict enough to reject it.
func TestOpenAPIDescribesResponses(t *testing.T) {
	doc := loadOpenAPIForTest(t)
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{"licensekey": "good-key"}
	regBody := `{"id":"AQIDBA","rawId":"AQIDBA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`
	signBody := `{"id":"AQIDBA","rawId":"AQIDBA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA"}}`
	withEngine := func(edit func(*openAPIFakeEngine)) openAPIFakeEngine {
		e := openAPIEngine
		edit(&e)
		return e
	}
	storageFull := withEngine(func(e *openAPIFakeEngine) {
		e.err = messages.Errorf(messages.CodeStorageFull, "the service's storage is almost full")
	})
	cases := []struct {
		name     string
		engine   Ceremonies
		health   HealthChecks
		draining bool
		method   string
		path     string
		headers  map[string]string
		body     string
		status   int
		mismatch bool // the answer must NOT match the document
	}{
		{name: "healthz", method: "GET", path: "/webauthn/healthz", status: 200},
		{name: "healthz while draining", draining: true, method: "GET", path: "/webauthn/healthz", status: 503},
		{name: "healthz when the store fails", health: HealthChecks{Store: func(context.Context) error { return io.ErrUnexpectedEOF }}, method: "GET", path: "/webauthn/healthz", status: 503},
		{name: "healthz below the free-space reserve", health: HealthChecks{Storage: func(context.Context) error { return messages.Errorf(messages.CodeStorageFull, "full") }},
			method: "GET", path: "/webauthn/healthz", status: 503},
		{name: "environment", method: "GET", path: "/webauthn/environment", status: 200},
		{name: "publickeys", method: "GET", path: "/webauthn/publickeys", status: 200},
		{name: "sd", method: "GET", path: "/webauthn/sd", status: 200},
		{name: "openapi.json", method: "GET", path: "/webauthn/openapi.json", status: 200},
		{name: "privateKey header on a GET route", method: "GET", path: "/webauthn/sd", headers: map[string]string{"privateKey": "x"}, status: 400},
		{name: "privateKey header with a method the path lacks", method: "POST", path: "/webauthn/healthz", headers: map[string]string{"privateKey": "x"}, status: 400},
		{name: "unknown path", method: "GET", path: "/webauthn/nothing", status: 404},
		{name: "unknown method", method: "DELETE", path: "/webauthn/u1/assertion/options", status: 405},
		{name: "attestation options", method: "POST", path: "/webauthn/u1/attestation/options", headers: good,
			body: `{"dns":"localhost","username":"alice","dguid":"x"}`, status: 200},
		{name: "attestation options without licensekey", method: "POST", path: "/webauthn/u1/attestation/options",
			body: `{"dns":"localhost","username":"alice"}`, status: 401},
		{name: "attestation options of another community", method: "POST", path: "/webauthn/u1/attestation/options", headers: good,
			body: `{"dns":"localhost","username":"alice","communityId":"other"}`, status: 403},
		{name: "attestation options over 64 KiB", method: "POST", path: "/webauthn/u1/attestation/options", headers: good,
			body: `{"dns":"localhost","username":"` + strings.Repeat("a", 70<<10) + `"}`, status: 413},
		{name: "attestation options when busy", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = &messages.Error{Code: messages.CodeBusy, Message: "busy", RetryAfter: time.Second}
		}), method: "POST", path: "/webauthn/u1/attestation/options", headers: good, body: `{"dns":"localhost","username":"a"}`, status: 429},
		{name: "assertion options", method: "POST", path: "/webauthn/u1/assertion/options", headers: good,
			body: `{"dns":"localhost","username":"alice"}`, status: 200},
		{name: "discoverable assertion options", engine: withEngine(func(e *openAPIFakeEngine) {
			e.signOptions.Options = []byte(openAPIDiscoverableOptions)
		}), method: "POST", path: "/webauthn/u1/assertion/options", headers: good, body: `{"dns":"localhost"}`, status: 200},
		{name: "assertion options when the engine does not answer", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.CodeUnavailable, "the ceremony engine did not answer in time")
		}), method: "POST", path: "/webauthn/u1/assertion/options", headers: good, body: `{"dns":"localhost"}`, status: 503},
		{name: "attestation result", method: "POST", path: "/webauthn/u1/attestation/result", headers: good, body: regBody, status: 200},
		{name: "attestation result of a registered credential", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.CodeCredentialExists, "this credential is already registered")
		}), method: "POST", path: "/webauthn/u1/attestation/result", headers: good, body: regBody, status: 409},
		{name: "attestation result with an internal error", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = io.ErrUnexpectedEOF
		}), method: "POST", path: "/webauthn/u1/attestation/result", headers: good, body: regBody, status: 500},
		{name: "attestation options below the free-space reserve", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.CodeStorageFull, "the service's storage is almost full")
		}), method: "POST", path: "/webauthn/u1/attestation/options", headers: good, body: `{"dns":"localhost","username":"a"}`, status: 507},
		{name: "attestation result below the free-space reserve", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.CodeStorageFull, "the service's storage is almost full")
		}), method: "POST", path: "/webauthn/u1/attestation/result", headers: good, body: regBody, status: 507},
		{name: "assertion result", method: "POST", path: "/webauthn/u1/assertion/result", headers: good, body: signBody, status: 200},
		{name: "assertion result below a quarter of the free-space reserve", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.CodeStorageFull, "the service's storage is almost full")
		}), method: "POST", path: "/webauthn/u1/assertion/result", headers: good, body: signBody, status: 507},
		{name: "link below the free-space reserve", engine: storageFull, method: "PUT", path: "/webauthn/u1/link/community/default/did/did:example:a/user/alice/fidokey/" + strings.Repeat("ab", 32), headers: good, status: 507},
		{name: "unlink below the free-space reserve", engine: storageFull, method: "DELETE", path: "/webauthn/u1/link/community/default/did/did:example:a/user/alice/fidokey/" + strings.Repeat("ab", 32), headers: good, status: 507},
		{name: "unregister below a quarter of the free-space reserve", engine: storageFull, method: "DELETE", path: "/webauthn/u1/unregister/community/default/did_or_fidokey/" + strings.Repeat("ab", 32), headers: good, status: 507},
		{name: "unregister within a user below a quarter of the free-space reserve", engine: storageFull, method: "DELETE", path: "/webauthn/u1/unregister/community/default/user/alice/did_or_fidokey/" + strings.Repeat("ab", 32), headers: good, status: 507},
		{name: "assertion result of an unknown ceremony", engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.CodeCeremonyNotFound, "no live ceremony")
		}), method: "POST", path: "/webauthn/u1/assertion/result", headers: good, body: signBody, status: 400},

		{name: "mismatch: creation options without a challenge", mismatch: true, engine: withEngine(func(e *openAPIFakeEngine) {
			e.regOptions.Options = []byte(`{"rp":{"name":"d","id":"localhost"},"user":{"name":"a","displayName":"a","id":"AA"},` +
				`"pubKeyCredParams":[{"type":"public-key","alg":-7}],"timeout":1}`)
		}), method: "POST", path: "/webauthn/u1/attestation/options", headers: good, body: `{"dns":"localhost","username":"a"}`, status: 200},
		{name: "mismatch: request options with a string timeout", mismatch: true, engine: withEngine(func(e *openAPIFakeEngine) {
			e.signOptions.Options = []byte(`{"challenge":"AA","timeout":"300000","rpId":"localhost","userVerification":"preferred"}`)
		}), method: "POST", path: "/webauthn/u1/assertion/options", headers: good, body: `{"dns":"localhost"}`, status: 200},
		{name: "mismatch: a token that is not a JWS", mismatch: true, engine: withEngine(func(e *openAPIFakeEngine) {
			e.signedIn.Token = ""
		}), method: "POST", path: "/webauthn/u1/assertion/result", headers: good, body: signBody, status: 200},
		{name: "mismatch: an error code that statusOf does not map", mismatch: true, engine: withEngine(func(e *openAPIFakeEngine) {
			e.err = messages.Errorf(messages.Code("made_up"), "unmapped")
		}), method: "POST", path: "/webauthn/u1/assertion/result", headers: good, body: signBody, status: 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			engine := tc.engine
			if engine == nil {
				engine = openAPIEngine
			}
			srv := openAPITestServer(t, engine, tc.health, tc.draining)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			res := rec.Result()
			body := rec.Body.Bytes()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tc.status, body)
			}
			err := openAPIValidate(doc, router, req, res, body)
			switch {
			case tc.mismatch && err == nil:
				t.Errorf("the document accepts a wrong answer: %s", body)
			case tc.mismatch:
				t.Logf("rejected as expected: %v", err)
			case err != nil:
				t.Errorf("%s %s answered %d, which does not match openapi.json: %v\nbody: %s", tc.method, tc.path, res.StatusCode, err, body)
			}
		})
	}
}
