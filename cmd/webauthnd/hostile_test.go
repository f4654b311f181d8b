package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence/badger"
)

// storeDigest is the digest of a stopped server's store, without the replay records (which
// refused sealed requests may leave, and which expire on their own).
func storeDigest(t *testing.T, dataDir string) string {
	t.Helper()
	store, err := badger.Open(filepath.Join(dataDir, "badger"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sum, err := store.Digest(badger.ReplayPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sum)
}

// TestHostileRequestsChangeNothing sends well over 80 distinct hostile requests across every
// route: each answers a 4xx JSON error with a code, none a 5xx, and the store is the same
// afterwards, key for key.
func TestHostileRequestsChangeNothing(t *testing.T) {
	dir := t.TempDir()
	// The demo gives its license a new key at every start, a write of its own: off here.
	s := startServer(t, dir, "--demo=false")
	alice := newPasskey(localRP, "alice")
	s.register(t, s.License, "default", alice)
	s.stop(t)
	before := storeDigest(t, dir)
	s = startServer(t, dir, "--demo=false")
	c := newSealedClient(t, s)

	type hostile struct {
		name, method, path string
		headers            map[string]string
		body               any
	}
	var cases []hostile
	add := func(name, method, path string, headers map[string]string, body any) {
		cases = append(cases, hostile{name, method, path, headers, body})
	}
	withLicense := func(extra ...string) map[string]string {
		h := map[string]string{"licensekey": s.License}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	u1 := []string{"/webauthn/u1/attestation/options", "/webauthn/u1/attestation/result", "/webauthn/u1/assertion/options", "/webauthn/u1/assertion/result"}
	for _, path := range u1 {
		add("no license", "POST", path, nil, map[string]any{"dns": "localhost", "username": "mallory"})
		add("unknown license", "POST", path, map[string]string{"licensekey": "x"}, map[string]any{"dns": "localhost", "username": "mallory"})
		add("privateKey header", "POST", path, withLicense("privateKey", "c2VjcmV0"), map[string]any{"dns": "localhost", "username": "mallory"})
		add("truncated JSON", "POST", path, withLicense(), `{"dns":"localhost","username":"mal`)
		add("a JSON array", "POST", path, withLicense(), `[{"dns":"localhost"}]`)
		add("JSON null", "POST", path, withLicense(), `null`)
		add("nesting 20000 deep", "POST", path, withLicense(), `{"dns":`+deep+`}`)
		add("a body over 64 KiB", "POST", path, withLicense(), `{"dns":"localhost","username":"`+strings.Repeat("m", 65<<10)+`"}`)
		add("two JSON objects", "POST", path, withLicense(), `{"dns":"localhost"} {"dns":"localhost"}`)
		add("dns of the wrong type", "POST", path, withLicense(), `{"dns":42,"username":"mallory"}`)
		add("dns not an RP ID", "POST", path, withLicense(), map[string]any{"dns": "evil.example", "username": "mallory", "id": "AAAA", "rawId": "AAAA", "type": "public-key",
			"response": map[string]any{"clientDataJSON": "e30", "attestationObject": "oA", "authenticatorData": "AA", "signature": "AA"}})
		add("a community of no license", "POST", path, withLicense(), map[string]any{"dns": "localhost", "username": "mallory", "communityId": "elsewhere"})
		add("a NUL in a field", "POST", path, withLicense(), "{\"dns\":\"localhost\",\"username\":\"mal\\u0000lory\",\"communityId\":\"de\\u0000fault\"}")
		add("invalid UTF-8", "POST", path, withLicense(), "{\"dns\":\"localhost\",\"username\":\"\xff\xfe\"}")
		add("a name in another case", "POST", path, withLicense(), `{"dns":"localhost","username":"alice","USERNAME":"mallory"}`)
		add("a name with a long s (U+017F)", "POST", path, withLicense(), `{"dns":"localhost","uſername":"mallory"}`)
		add("a name twice", "POST", path, withLicense(), `{"dns":"localhost","dns":"evil.example","username":"mallory"}`)
		add("a name escaped into another case", "POST", path, withLicense(), `{"dns":"localhost","\u0055SERNAME":"mallory"}`)
		add("no license and an empty body", "POST", path, nil, `{}`)
		add("sessionInfo of 200 bytes", "POST", path, withLicense("sessionInfo", strings.Repeat("s", 200)), map[string]any{"dns": "localhost", "username": "mallory"})
	}
	result := func(mutate func(m map[string]any)) map[string]any {
		cd, _ := json.Marshal(map[string]string{"type": "webauthn.get", "challenge": base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)), "origin": localRP.Origin})
		m := map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key", "dns": "localhost", "communityId": "default",
			"response": map[string]any{"clientDataJSON": base64.RawURLEncoding.EncodeToString(cd), "attestationObject": "oA",
				"authenticatorData": base64.RawURLEncoding.EncodeToString(make([]byte, 37)), "signature": "MEUCIQ"}}
		mutate(m)
		return m
	}
	for _, path := range []string{"/webauthn/u1/attestation/result", "/webauthn/u1/assertion/result"} {
		add("a challenge never issued", "POST", path, withLicense(), result(func(map[string]any) {}))
		add("rawId not base64", "POST", path, withLicense(), result(func(m map[string]any) { m["rawId"] = "!!!" }))
		add("rawId of 2000 bytes", "POST", path, withLicense(), result(func(m map[string]any) {
			id := base64.RawURLEncoding.EncodeToString(make([]byte, 2000))
			m["id"], m["rawId"] = id, id
		}))
		add("id and rawId differ", "POST", path, withLicense(), result(func(m map[string]any) { m["id"] = "BBBB" }))
		add("no response", "POST", path, withLicense(), result(func(m map[string]any) { delete(m, "response") }))
		add("clientDataJSON not JSON", "POST", path, withLicense(), result(func(m map[string]any) {
			m["response"].(map[string]any)["clientDataJSON"] = base64.RawURLEncoding.EncodeToString([]byte("<xml/>"))
		}))
		add("clientDataJSON a number", "POST", path, withLicense(), result(func(m map[string]any) { m["response"].(map[string]any)["clientDataJSON"] = 5 }))
		add("challenge not base64url", "POST", path, withLicense(), result(func(m map[string]any) {
			m["response"].(map[string]any)["clientDataJSON"] = base64.RawURLEncoding.EncodeToString([]byte(`{"challenge":"***"}`))
		}))
		add("type of the credential wrong", "POST", path, withLicense(), result(func(m map[string]any) { m["type"] = "password" }))
		add("a response name in another case", "POST", path, withLicense(), result(func(m map[string]any) {
			m["response"].(map[string]any)["Signature"] = "MEUCIQ"
		}))
		add("binary fields as objects", "POST", path, withLicense(), result(func(m map[string]any) {
			m["response"].(map[string]any)["signature"] = map[string]any{"0": 1}
		}))
	}
	sealedPaths := []string{"/webauthn/attestation/options", "/webauthn/attestation/result", "/webauthn/assertion/options", "/webauthn/assertion/result"}
	for _, path := range sealedPaths {
		valid := c.headers(t, s.License)
		add("sealed: no publickey", "POST", path, map[string]string{"licensekey": valid["licensekey"], "requestid": valid["requestid"]}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a publickey of garbage", "POST", path, map[string]string{"publickey": "Z2FyYmFnZQ==", "licensekey": valid["licensekey"], "requestid": valid["requestid"]}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a plain licensekey", "POST", path, map[string]string{"publickey": c.public, "licensekey": s.License, "requestid": valid["requestid"]}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: no requestid", "POST", path, map[string]string{"publickey": c.public, "licensekey": valid["licensekey"]}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a body in the clear", "POST", path, c.headers(t, s.License), map[string]any{"dns": "localhost", "username": "mallory"})
		add("sealed: privateKey header", "POST", path, map[string]string{"publickey": c.public, "privateKey": "c2VjcmV0"}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a hybrid publickey (0x06/0x07)", "POST", path, map[string]string{"publickey": func() string {
			raw, _ := base64.StdEncoding.DecodeString(c.public)
			return base64.StdEncoding.EncodeToString(append([]byte{6 + raw[63]&1}, raw...))
		}(), "licensekey": valid["licensekey"], "requestid": valid["requestid"]}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a key that is no license", "POST", path, c.headers(t, "not-a-license"), c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a requestid naming uuid twice", "POST", path, map[string]string{"publickey": c.public, "licensekey": valid["licensekey"],
			"requestid": c.seal(t, []byte(`{"ts":`+fmt.Sprint(time.Now().Unix())+`,"uuid":"a","uuid":"b"}`))}, c.body(t, map[string]any{"dns": "localhost"}))
		add("sealed: a sealed body naming a field twice", "POST", path, c.headers(t, s.License),
			map[string]string{"data": c.seal(t, []byte(`{"dns":"localhost","dns":"evil.example"}`))})
		add("sealed: a sealed body that is not JSON", "POST", path, c.headers(t, s.License), map[string]string{"data": c.seal(t, []byte("not json"))})
	}
	for _, path := range []string{"/webauthn/healthz", "/webauthn/environment", "/webauthn/publickeys", "/webauthn/sd", "/webauthn/openapi.json", "/caas/sd"} {
		add("privateKey header on a public route", "GET", path, map[string]string{"privateKey": "c2VjcmV0"}, nil)
		add("a method the route does not have", "DELETE", path, nil, nil)
	}
	hash := strings.Repeat("ab", 32)
	for _, prefix := range []string{"/webauthn/u1", "/webauthn"} {
		headers := withLicense()
		if prefix == "/webauthn" {
			headers = c.headers(t, s.License)
		}
		status := prefix + "/link/community/default/user/alice/status"
		link := prefix + "/link/community/default/did/did:example:a/user/alice/fidokey/" + hash
		add("link: no license", "GET", status, nil, nil)
		add("link: a body on GET", "GET", status, headers, `{"username":"bob"}`)
		add("link: a .. user", "GET", prefix+"/link/community/default/user/../status", headers, nil)
		add("link: an encoded .. user", "GET", prefix+"/link/community/default/user/%2E%2E/status", headers, nil)
		add("link: a community nobody has", "GET", prefix+"/link/community/nowhere/user/alice/status", headers, nil)
		add("link: a DID without did:", "PUT", prefix+"/link/community/default/did/example/user/alice/fidokey/"+hash, headers, nil)
		add("link: a DID with a NUL", "PUT", prefix+"/link/community/default/did/did:a%00b/user/alice/fidokey/"+hash, headers, nil)
		add("link: a fidoKeyHash in upper case", "PUT", prefix+"/link/community/default/did/did:example:a/user/alice/fidokey/"+strings.ToUpper(hash), headers, nil)
		add("link: a passkey nobody has", "PUT", link, headers, nil)
		add("link: unlink a passkey nobody has", "DELETE", link, headers, nil)
		add("unregister: an identifier that is neither", "DELETE", prefix+"/unregister/community/default/did_or_fidokey/alice", headers, nil)
		add("unregister: a passkey nobody has", "DELETE", prefix+"/unregister/community/default/user/alice/did_or_fidokey/"+hash, headers, nil)
		add("unregister: a . identifier", "DELETE", prefix+"/unregister/community/default/did_or_fidokey/.", headers, nil)
	}
	vendorPut, vendorPatch, vendorFetch := "/webauthn/vendormetadata/default", "/webauthn/vendormetadata/default/aaguid/"+aaguidYubikey, "/webauthn/vendormetadata/default/fetch"
	statement := statementOf(aaguidYubikey, 0)
	record := map[string]any{"aaguid": aaguidYubikey, "metadata": statement, "name": "YubiKey", "updatedBy": "mallory"}
	for _, v := range []struct{ method, path string }{{"PUT", vendorPut}, {"PATCH", vendorPatch}, {"POST", vendorFetch}} {
		add("vendor: no license", v.method, v.path, nil, record)
		add("vendor: unknown license", v.method, v.path, map[string]string{"licensekey": "x"}, record)
		add("vendor: privateKey header", v.method, v.path, withLicense("privateKey", "c2VjcmV0"), record)
		add("vendor: truncated JSON", v.method, v.path, withLicense(), `{"aaguid":"`+aaguidYubikey)
		add("vendor: a JSON array", v.method, v.path, withLicense(), `[`+statement+`]`)
		if v.method != "POST" { // fetch reads null as no body: every record
			add("vendor: JSON null", v.method, v.path, withLicense(), `null`)
		}
		add("vendor: nesting 20000 deep", v.method, v.path, withLicense(), `{"metadata":`+deep+`}`)
		add("vendor: a body over 1 MiB", v.method, v.path, withLicense(), `{"metadata":"`+strings.Repeat("m", 1<<20)+`"}`)
		add("vendor: two JSON objects", v.method, v.path, withLicense(), `{} {}`)
		add("vendor: a name in another case", v.method, v.path, withLicense(), `{"aaguid":"`+aaguidYubikey+`","AAGUID":"`+aaguidHello+`","aaguids":["x"]}`)
		add("vendor: a name twice", v.method, v.path, withLicense(), `{"updatedBy":"a","updatedBy":"b","aaguids":[],"aaguids":["x"]}`)
		add("vendor: invalid UTF-8", v.method, v.path, withLicense(), "{\"name\":\"\xff\xfe\",\"aaguids\":[\"\xff\"]}")
		add("vendor: another community", v.method, strings.Replace(v.path, "/default", "/elsewhere", 1), withLicense(), record)
		add("vendor: a community id with a NUL", v.method, strings.Replace(v.path, "/default", "/de%00fault", 1), withLicense(), record)
	}
	add("vendor: PUT on any", "PUT", "/webauthn/vendormetadata/any", withLicense(), record)
	add("vendor: PATCH on any", "PATCH", "/webauthn/vendormetadata/any/aaguid/"+aaguidYubikey, withLicense(), record)
	add("vendor: fetch any with a community license", "POST", "/webauthn/vendormetadata/any/fetch", withLicense(), map[string]any{})
	add("vendor: a statement for another AAGUID", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidHello, "metadata": statement, "name": "x", "updatedBy": "mallory"})
	add("vendor: the all-zero AAGUID", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidZero, "metadata": statementOf(aaguidZero, 0), "name": "x", "updatedBy": "mallory"})
	add("vendor: a statement that is not JSON", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidYubikey, "metadata": "{", "name": "x", "updatedBy": "mallory"})
	add("vendor: a statement nested 20000 deep", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidYubikey, "metadata": `{"upv":` + deep + `}`, "name": "x", "updatedBy": "mallory"})
	add("vendor: a statement naming aaguid twice", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidHello,
		"metadata": strings.TrimSuffix(statement, "}") + `,"aaguid":"` + aaguidHello + `"}`, "name": "x", "updatedBy": "mallory"})
	add("vendor: a statement over 256 KiB", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidYubikey, "metadata": statementOf(aaguidYubikey, 300<<10), "name": "x", "updatedBy": "mallory"})
	add("vendor: a name of 300 bytes", "PUT", vendorPut, withLicense(), map[string]any{"aaguid": aaguidYubikey, "metadata": statement, "name": strings.Repeat("n", 300), "updatedBy": "mallory"})
	add("vendor: PATCH of a record that does not exist", "PATCH", vendorPatch, withLicense(), map[string]any{"disabled": true, "updatedBy": "mallory"})
	add("vendor: PATCH with a path aaguid of dots", "PATCH", "/webauthn/vendormetadata/default/aaguid/..", withLicense(), map[string]any{"disabled": true, "updatedBy": "mallory"})
	add("vendor: fetch of 1025 AAGUIDs", "POST", vendorFetch, withLicense(), map[string]any{"aaguids": make1025()})
	add("vendor: GET", "GET", vendorFetch, withLicense(), nil)
	info := "/api/r1/system/community_info/fetch"
	add("community_info: truncated JSON", "POST", info, nil, `{"dns":`)
	add("community_info: unknown tenant", "POST", info, nil, map[string]string{"dns": "evil.example", "communityName": "default"})
	add("community_info: no community", "POST", info, nil, map[string]string{"dns": "localhost"})
	add("community_info: a body over 64 KiB", "POST", info, nil, `{"dns":"`+strings.Repeat("a", 65<<10)+`"}`)
	add("community_info: GET", "GET", info, nil, nil)
	add("an unknown route", "POST", "/webauthn/u2/attestation/options", withLicense(), map[string]any{"dns": "localhost"})
	add("a path traversal", "GET", "/webauthn/../../etc/passwd", nil, nil)

	if len(cases) < 80 {
		t.Fatalf("only %d hostile requests", len(cases))
	}
	for i, h := range cases {
		t.Run(fmt.Sprintf("%03d %s %s", i, h.path, h.name), func(t *testing.T) {
			status, body, _ := s.call(t, h.method, h.path, h.headers, h.body)
			if status < 400 || status >= 500 {
				t.Fatalf("answered %d %v, want a 4xx", status, body)
			}
			if body["code"] == nil || body["statusCode"] != float64(status) || body["message"] == "" {
				t.Fatalf("answered %d with %v, want the error body", status, body)
			}
		})
	}
	s.stop(t)
	if after := storeDigest(t, dir); after != before {
		t.Fatal("the store changed under hostile requests")
	}
	t.Logf("%d hostile requests, store digest unchanged", len(cases))
}
