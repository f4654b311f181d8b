package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
)

// fidoKeyHashOf is a passkey's fidoKeyHash: lowercase hex SHA-256 of its raw credential id.
func fidoKeyHashOf(p *passkey) string {
	sum := sha256.Sum256(p.cred.ID)
	return hex.EncodeToString(sum[:])
}

// linkPath is the path of a passkey's link to a DID, each parameter percent-encoded.
func linkPath(prefix, community, did, user, hash string) string {
	return fmt.Sprintf("%s/link/community/%s/did/%s/user/%s/fidokey/%s", prefix,
		url.PathEscape(community), url.PathEscape(did), url.PathEscape(user), url.PathEscape(hash))
}

func statusPath(prefix, community, user string) string {
	return fmt.Sprintf("%s/link/community/%s/user/%s/status", prefix, url.PathEscape(community), url.PathEscape(user))
}

func unregisterPath(prefix, community, user, identifier string) string {
	if user == "" {
		return fmt.Sprintf("%s/unregister/community/%s/did_or_fidokey/%s", prefix, url.PathEscape(community), url.PathEscape(identifier))
	}
	return fmt.Sprintf("%s/unregister/community/%s/user/%s/did_or_fidokey/%s", prefix, url.PathEscape(community),
		url.PathEscape(user), url.PathEscape(identifier))
}

// sealedCall calls a sealed route without a body and returns the status and the decrypted (or,
// for errors, plain) answer.
func (c *sealedClient) call(t *testing.T, s *testServer, method, path, license string) (int, map[string]any) {
	t.Helper()
	status, body, _ := s.call(t, method, path, c.headers(t, license), nil)
	if status != 200 {
		return status, body
	}
	var out map[string]any
	if err := json.Unmarshal(c.open(t, body["data"].(string)), &out); err != nil {
		t.Fatal(err)
	}
	return status, out
}

// TestLinkingAndUnregistering walks a user's passkeys through listing, linking, unlinking and
// removal, on the u1 routes with a licensekey and on the sealed routes.
func TestLinkingAndUnregistering(t *testing.T) {
	s := startServer(t, "")
	c := newSealedClient(t, s)
	for _, route := range []struct {
		name string
		// do calls method on a path under /webauthn/u1 or /webauthn and returns the answer.
		do     func(method, path string) (int, map[string]any)
		prefix string
	}{
		{"u1", func(method, path string) (int, map[string]any) {
			st, body, _ := s.call(t, method, path, lic(s.License), nil)
			return st, body
		}, "/webauthn/u1"},
		{"sealed", func(method, path string) (int, map[string]any) { return c.call(t, s, method, path, s.License) }, "/webauthn"},
	} {
		t.Run(route.name, func(t *testing.T) {
			user := "link/" + route.name // a '/' in a username travels as %2F
			first, second := newPasskey(localRP, user), newPasskey(localRP, user)
			reg := s.register(t, s.License, "default", first)
			s.register(t, s.License, "default", second)
			if reg["fidoKeyHash"] != fidoKeyHashOf(first) {
				t.Fatalf("registration's fidoKeyHash %v, want %s", reg["fidoKeyHash"], fidoKeyHashOf(first))
			}
			did := "did:web:example.com:users/" + route.name // a '/' in a DID too

			st, status := route.do("GET", statusPath(route.prefix, "default", user))
			if st != 200 || status["status"] != "unlinked" || status["linked"] != false || len(status["fidoKeys"].([]any)) != 2 {
				t.Fatalf("status before linking: %d %v", st, status)
			}
			if status["displayName"] != "Test "+user || status["userHandle"] == nil {
				t.Fatalf("status lacks the user's handle or display name: %v", status)
			}
			for _, k := range status["fidoKeys"].([]any) {
				key := k.(map[string]any)
				if key["did"] != nil || key["lastUsedAt"] != nil || key["attestationFormat"] != "packed" || key["aaguid"] == "" ||
					key["signCount"] != 0.0 || key["createdAt"] == nil {
					t.Fatalf("an unlinked, unused passkey: %v", key)
				}
			}

			for _, step := range []struct {
				name, method, path string
				status             int
				code               string
			}{
				{"link", "PUT", linkPath(route.prefix, "default", did, user, fidoKeyHashOf(first)), 200, ""},
				{"link again to the same DID", "PUT", linkPath(route.prefix, "default", did, user, fidoKeyHashOf(first)), 200, ""},
				{"link to another DID", "PUT", linkPath(route.prefix, "default", "did:example:other", user, fidoKeyHashOf(first)), 409, "conflict"},
				{"link another user's passkey", "PUT", linkPath(route.prefix, "default", did, "someone-else", fidoKeyHashOf(first)), 404, "not_found"},
				{"unlink from a DID it is not linked to", "DELETE", linkPath(route.prefix, "default", "did:example:other", user, fidoKeyHashOf(first)), 404, "not_found"},
				{"link the second passkey", "PUT", linkPath(route.prefix, "default", did, user, fidoKeyHashOf(second)), 200, ""},
				{"unlink the second passkey", "DELETE", linkPath(route.prefix, "default", did, user, fidoKeyHashOf(second)), 200, ""},
			} {
				st, body := route.do(step.method, step.path)
				if st != step.status || (step.code != "" && body["code"] != step.code) {
					t.Fatalf("%s: %d %v, want %d %s", step.name, st, body, step.status, step.code)
				}
				if st == 200 && (body["status"] != "success" || body["errorMessage"] != "") {
					t.Fatalf("%s: %v", step.name, body)
				}
			}
			if claims := s.verifyToken(t, s.signIn(t, s.License, "default", first, true)["signature_token"].(string)); claims["did"] != did {
				t.Fatalf("the token of a linked passkey carries did %v, want %s", claims["did"], did)
			}
			if claims := s.verifyToken(t, s.signIn(t, s.License, "default", second, false)["signature_token"].(string)); claims["did"] != nil {
				t.Fatalf("the token of an unlinked passkey carries did %v", claims["did"])
			}
			st, status = route.do("GET", statusPath(route.prefix, "default", user))
			if st != 200 || status["status"] != "linked" || status["linked"] != true {
				t.Fatalf("status after linking: %d %v", st, status)
			}
			for _, k := range status["fidoKeys"].([]any) {
				key := k.(map[string]any)
				if linked := key["fidoKeyHash"] == fidoKeyHashOf(first); linked != (key["did"] == did) || key["lastUsedAt"] == nil {
					t.Fatalf("passkey %v after linking the first and signing in with it", key)
				}
			}

			// De-registration by DID within the user, then by fidoKeyHash community-wide.
			if st, body := route.do("DELETE", unregisterPath(route.prefix, "default", user, did)); st != 200 || len(body) != 0 {
				t.Fatalf("unregister by DID: %d %v", st, body)
			}
			if st, body := route.do("DELETE", unregisterPath(route.prefix, "default", user, did)); st != 404 || body["code"] != "not_found" {
				t.Fatalf("unregister by DID again: %d %v", st, body)
			}
			opts, _ := s.signInOptions(t, s.License, "default", "localhost", "")
			first.cred.Counter++
			st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License),
				ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(first.rp, first.auth, first.cred, *opts), "localhost", "default"))
			if st != 400 || body["code"] != "credential_unknown" {
				t.Fatalf("sign-in with a removed passkey: %d %v", st, body)
			}
			if st, body := route.do("DELETE", unregisterPath(route.prefix, "default", "", fidoKeyHashOf(second))); st != 200 {
				t.Fatalf("unregister by fidoKeyHash: %d %v", st, body)
			}
			st, status = route.do("GET", statusPath(route.prefix, "default", user))
			if st != 200 || status["status"] != "unlinked" || len(status["fidoKeys"].([]any)) != 0 {
				t.Fatalf("status after removing every passkey: %d %v", st, status)
			}
		})
	}
}

// TestLinkRoutesBadInput is the spec of what each bad link or de-registration request gets.
func TestLinkRoutesBadInput(t *testing.T) {
	s := startServer(t, "")
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
	shopKey := s.admin(t, "license", "create", "--level", "community", "--community", "shop")
	acmeKey := s.admin(t, "license", "create", "--level", "service", "--tenant", "acme")
	systemKey := s.admin(t, "license", "create", "--level", "system")
	alice := newPasskey(localRP, "alice")
	s.register(t, s.License, "default", alice)
	hash := fidoKeyHashOf(alice)
	c := newSealedClient(t, s)
	def := lic(s.License)

	type request struct {
		method, path string
		headers      map[string]string
		body         any
	}
	sealedWith := func(id map[string]any) map[string]string {
		h := c.headers(t, s.License)
		id["ts"], id["uuid"] = time.Now().Unix(), newUUID()
		raw, _ := json.Marshal(id)
		h["requestid"] = c.seal(t, raw)
		return h
	}
	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
	}{
		{"no license", request{"GET", statusPath("/webauthn/u1", "default", "alice"), nil, nil}, 401, "license_missing"},
		{"no license and a body", request{"PUT", linkPath("/webauthn/u1", "default", "did:example:a", "alice", hash), nil, `{"x":1}`}, 401, "license_missing"},
		{"a body on a route that takes none", request{"GET", statusPath("/webauthn/u1", "default", "alice"), def, `{"x":1}`}, 400, "invalid_request"},
		{"a community license on another community", request{"GET", statusPath("/webauthn/u1", "default", "alice"), lic(shopKey), nil}, 403, "license_scope"},
		{"a community license on a community that does not exist", request{"GET", statusPath("/webauthn/u1", "nowhere", "alice"), lic(shopKey), nil}, 403, "license_scope"},
		{"a service license on another tenant's community", request{"DELETE", unregisterPath("/webauthn/u1", "default", "", hash), lic(acmeKey), nil}, 403, "license_scope"},
		{"a service license on a community that does not exist", request{"DELETE", unregisterPath("/webauthn/u1", "nowhere", "", hash), lic(acmeKey), nil}, 403, "license_scope"},
		{"a system license on a community that does not exist", request{"GET", statusPath("/webauthn/u1", "nowhere", "alice"), lic(systemKey), nil}, 404, "community_unknown"},
		{"scope before fields: another community and a bad DID", request{"PUT", linkPath("/webauthn/u1", "default", "not-a-did", "alice", hash), lic(shopKey), nil}, 403, "license_scope"},
		{"a DID without did:", request{"PUT", linkPath("/webauthn/u1", "default", "example:alice", "alice", hash), def, nil}, 400, "invalid_request"},
		{"a DID with a control character", request{"PUT", linkPath("/webauthn/u1", "default", "did:ex\u0001ample", "alice", hash), def, nil}, 400, "invalid_request"},
		{"a DID over 512 bytes", request{"PUT", linkPath("/webauthn/u1", "default", "did:"+strings.Repeat("x", 509), "alice", hash), def, nil}, 400, "invalid_request"},
		{"a fidoKeyHash in upper case", request{"PUT", linkPath("/webauthn/u1", "default", "did:example:a", "alice", strings.ToUpper(hash)), def, nil}, 400, "invalid_request"},
		{"a fidoKeyHash too short", request{"PUT", linkPath("/webauthn/u1", "default", "did:example:a", "alice", hash[:62]), def, nil}, 400, "invalid_request"},
		{"an identifier that is neither", request{"DELETE", unregisterPath("/webauthn/u1", "default", "", "alice"), def, nil}, 400, "invalid_request"},
		{"a .. segment as the user", request{"DELETE", "/webauthn/u1/unregister/community/default/user/../did_or_fidokey/" + hash, def, nil}, 400, "invalid_request"},
		{"a .. segment that takes the user out of the path (no redirect to the community-wide route)",
			request{"DELETE", "/webauthn/u1/unregister/community/default/user/bob/../../did_or_fidokey/" + hash, def, nil}, 404, "not_found"},
		{"an encoded .. segment as the user", request{"GET", "/webauthn/u1/link/community/default/user/%2e%2e/status", def, nil}, 400, "invalid_request"},
		{"a . segment as the identifier", request{"DELETE", "/webauthn/u1/unregister/community/default/did_or_fidokey/.", def, nil}, 400, "invalid_request"},
		{"a username with a control character", request{"GET", statusPath("/webauthn/u1", "default", "al\x00ice"), def, nil}, 400, "invalid_request"},
		{"a passkey that is not the user's", request{"PUT", linkPath("/webauthn/u1", "default", "did:example:a", "bob", hash), def, nil}, 404, "not_found"},
		{"unregister a passkey of nobody", request{"DELETE", unregisterPath("/webauthn/u1", "default", "", strings.Repeat("ab", 32)), def, nil}, 404, "not_found"},
		{"unregister alice's passkey within another user", request{"DELETE", unregisterPath("/webauthn/u1", "default", "bob", hash), def, nil}, 404, "not_found"},
		{"sealed: a body on GET", request{"GET", statusPath("/webauthn", "default", "alice"), c.headers(t, s.License), c.body(t, map[string]any{})}, 400, "invalid_request"},
		{"sealed: a requestid for another path", request{"GET", statusPath("/webauthn", "default", "alice"),
			sealedWith(map[string]any{"method": "GET", "path": statusPath("/webauthn", "default", "bob")}), nil}, 401, "request_invalid"},
		{"sealed: a requestid for another method", request{"DELETE", unregisterPath("/webauthn", "default", "", hash),
			sealedWith(map[string]any{"method": "GET", "path": unregisterPath("/webauthn", "default", "", hash)}), nil}, 401, "request_invalid"},
		{"sealed: a requestid for this method and path", request{"GET", statusPath("/webauthn", "default", "alice"),
			sealedWith(map[string]any{"method": "GET", "path": statusPath("/webauthn", "default", "alice")}), nil}, 200, ""},
		{"sealed: a requestid naming the path unescaped", request{"GET", statusPath("/webauthn", "default", "a/b"),
			sealedWith(map[string]any{"method": "get", "path": "/webauthn/link/community/default/user/a/b/status"}), nil}, 200, ""},
		{"sealed: a requestid for a path whose parameter the request encodes twice", request{"GET", statusPath("/webauthn", "default", "a%2Fb"),
			sealedWith(map[string]any{"method": "GET", "path": statusPath("/webauthn", "default", "a/b")}), nil}, 401, "request_invalid"},
		{"sealed: a community license on another community", request{"GET", statusPath("/webauthn", "shop", "alice"), c.headers(t, s.License), nil}, 403, "license_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := s.call(t, tc.req.method, tc.req.path, tc.req.headers, tc.req.body)
			if status != tc.status || (tc.code != "" && body["code"] != tc.code) {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			for _, secret := range []string{s.License, shopKey, acmeKey, systemKey} {
				if strings.Contains(s.stderr.String(), secret) {
					t.Fatal("a secret reached the log")
				}
			}
		})
	}
	// Nothing was changed by the refusals: alice's one passkey is there, unlinked.
	_, status, _ := s.call(t, "GET", statusPath("/webauthn/u1", "default", "alice"), def, nil)
	if keys := status["fidoKeys"].([]any); len(keys) != 1 || keys[0].(map[string]any)["did"] != nil {
		t.Fatalf("after the refusals: %v", status)
	}
	s.signIn(t, s.License, "default", alice, true)
}

// TestUnregisterRacesSignIn: sign-ins of a passkey run while it is removed. Each either finished
// before the removal (200) or fails; after the removal answers, none succeeds.
func TestUnregisterRacesSignIn(t *testing.T) {
	s := startServer(t, "")
	p := newPasskey(localRP, "racer")
	s.register(t, s.License, "default", p)
	const n = 24
	bodies := make([]map[string]any, n)
	for i := range bodies {
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", "racer")
		p.cred.Counter++
		bodies[i] = ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, fails int
		removed   = make(chan struct{})
	)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i >= n/2 {
				<-removed
			}
			status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), bodies[i])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == 200 && i >= n/2:
				t.Errorf("sign-in %d succeeded after the removal answered", i)
			case status == 200:
				ok++
			case status == 400 && (body["code"] == "credential_unknown" || body["code"] == "counter_regression"):
				fails++
			default:
				t.Errorf("sign-in %d: %d %v", i, status, body)
			}
		}()
	}
	if st, body, _ := s.call(t, "DELETE", unregisterPath("/webauthn/u1", "default", "racer", fidoKeyHashOf(p)), lic(s.License), nil); st != 200 {
		t.Fatalf("unregister: %d %v", st, body)
	}
	close(removed)
	wg.Wait()
	t.Logf("%d sign-ins finished before the removal, %d failed", ok, fails)
}

// TestLinkRacesSignIn: links and unlinks of a passkey run while it signs in. No write is lost:
// every sign-in succeeds, the stored counter is the last one, and the passkey ends linked as
// the last link call left it.
func TestLinkRacesSignIn(t *testing.T) {
	s := startServer(t, "")
	p := newPasskey(localRP, "linker")
	s.register(t, s.License, "default", p)
	const n = 12
	bodies := make([]map[string]any, n)
	for i := range bodies {
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", "linker")
		p.cred.Counter++
		bodies[i] = ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
	}
	path := linkPath("/webauthn/u1", "default", "did:example:linker", "linker", fidoKeyHashOf(p))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // sign-ins in counter order
		defer wg.Done()
		for i, b := range bodies {
			if st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), b); st != 200 {
				t.Errorf("sign-in %d: %d %v", i, st, body)
			}
		}
	}()
	go func() { // link, unlink, ..., link
		defer wg.Done()
		for i := range 2*n + 1 {
			method := "PUT"
			if i%2 == 1 {
				method = "DELETE"
			}
			if st, body, _ := s.call(t, method, path, lic(s.License), nil); st != 200 {
				t.Errorf("%s %d: %d %v", method, i, st, body)
			}
		}
	}()
	wg.Wait()
	_, status, _ := s.call(t, "GET", statusPath("/webauthn/u1", "default", "linker"), lic(s.License), nil)
	key := status["fidoKeys"].([]any)[0].(map[string]any)
	if key["did"] != "did:example:linker" || key["signCount"] != float64(p.cred.Counter) {
		t.Fatalf("after the race: %v; want linked, signCount %d", key, p.cred.Counter)
	}
}
