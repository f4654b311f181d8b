package main

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// AAGUIDs of the vendor metadata tests: the YubiKey 5 (with its real statement), Windows Hello,
// and a made-up model.
const (
	aaguidYubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	aaguidHello   = "6028b017-b1d4-4c02-b4b3-afcdafc96bb2"
	aaguidMadeUp  = "11111111-2222-3333-4444-555555555555"
	aaguidZero    = "00000000-0000-0000-0000-000000000000"
)

// yubikeyStatement is the YubiKey 5's real MDS3 metadata statement (see actors/testdata).
func yubikeyStatement(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../actors/testdata/yubikey5-statement.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// statementOf is a small valid MDS3 statement for aaguid, padded with a legal header to at
// least size bytes.
func statementOf(aaguid string, size int) string {
	s := `{"aaguid":"` + aaguid + `","description":"Model ` + aaguid[:8] + `","protocolFamily":"fido2","schema":3`
	if pad := size - len(s) - len(`,"legalHeader":""}`); pad > 0 {
		s += `,"legalHeader":"` + strings.Repeat("l", pad) + `"`
	}
	return s + "}"
}

// vendorStep is one request to a vendor metadata route and what it must answer.
type vendorStep struct {
	name   string
	method string
	path   string
	key    string // the licensekey; none when empty
	body   any    // nil sends no body
	status int
	code   string   // the error code of a refusal
	says   string   // a part of the refusal's message
	want   []string // a fetch's records, as community/first 8 digits of the AAGUID, in order
}

// vendorRecords decodes a fetch's answer.
func vendorRecords(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || out == nil {
		t.Fatalf("fetch answered %q, want a JSON array (%v)", raw, err)
	}
	return out
}

// runVendorSteps runs steps in order, each as a subtest. A refused PUT or PATCH must leave
// every record as it was (all records, read through a system license, before and after).
func runVendorSteps(t *testing.T, s *testServer, systemKey string, steps []vendorStep) {
	t.Helper()
	all := func(t *testing.T) []byte {
		t.Helper()
		status, raw, _ := s.callRaw(t, "POST", "/webauthn/vendormetadata/any/fetch", lic(systemKey), map[string]any{})
		if status != 200 {
			t.Fatalf("system fetch of every record answered %d %s", status, raw)
		}
		return raw
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			headers := map[string]string{}
			if st.key != "" {
				headers["licensekey"] = st.key
			}
			before := all(t)
			status, raw, _ := s.callRaw(t, st.method, st.path, headers, st.body)
			if status != st.status {
				t.Fatalf("%s %s answered %d %s, want %d", st.method, st.path, status, raw, st.status)
			}
			if status >= 400 {
				var e map[string]any
				_ = json.Unmarshal(raw, &e)
				if e["code"] != st.code || !strings.Contains(e["message"].(string), st.says) {
					t.Fatalf("answered %d %s, want code %s and a message that says %q", status, raw, st.code, st.says)
				}
				if after := all(t); string(after) != string(before) {
					t.Fatalf("the refused request changed the records")
				}
				return
			}
			if st.want != nil {
				var got []string
				for _, r := range vendorRecords(t, raw) {
					got = append(got, r["communityId"].(string)+"/"+r["aaguid"].(string)[:8])
				}
				if got == nil {
					got = []string{}
				}
				if !reflect.DeepEqual(got, st.want) {
					t.Fatalf("fetch answered %v, want %v", got, st.want)
				}
			}
		})
	}
}

// TestVendorMetadataRoutes is the spec of the three vendor metadata routes under every license
// level: the order of checks (license 401, body 413/400, community 403/404, fields 400),
// "any" (fetch only), 409 for an AAGUID a community has, 404 for a record it has not, the
// statement checks and the 1 MiB body limit; refusals change nothing.
func TestVendorMetadataRoutes(t *testing.T) {
	s := startServer(t, "")
	for _, c := range [][2]string{{"shop", "acme"}, {"blog", "acme"}, {"other", "globex"}} {
		s.admin(t, "community", "create", "--id", c[0], "--tenant", c[1], "--rp-id", c[0]+".localhost", "--origin", "https://"+c[0]+".localhost")
	}
	def := s.License // community license of "default" (tenant default)
	acmeKey := s.admin(t, "license", "create", "--level", "service", "--tenant", "acme")
	systemKey := s.admin(t, "license", "create", "--level", "system")
	yubikey := yubikeyStatement(t)
	put := func(aaguid, metadata string) map[string]any {
		return map[string]any{"aaguid": aaguid, "metadata": metadata, "name": "Model " + aaguid[:8], "updatedBy": "ops@example.com"}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	good := put(aaguidYubikey, yubikey)
	overMiB := `{"aaguid":"` + aaguidYubikey + `","metadata":"` + strings.Repeat("m", 1<<20) + `"}`
	const (
		putDefault = "/webauthn/vendormetadata/default"
		putShop    = "/webauthn/vendormetadata/shop"
	)

	t.Run("PUT", func(t *testing.T) {
		runVendorSteps(t, s, systemKey, []vendorStep{
			{name: "no licensekey", method: "PUT", path: putDefault, body: good, status: 401, code: "license_missing"},
			{name: "an unknown licensekey and a body over 1 MiB: the license comes first", method: "PUT", path: putDefault, key: "not-a-license", body: overMiB, status: 401, code: "license_invalid"},
			{name: "a body over 1 MiB", method: "PUT", path: putDefault, key: def, body: overMiB, status: 413, code: "body_too_large", says: "1 MiB"},
			{name: "a body that is not JSON", method: "PUT", path: putDefault, key: def, body: `{"aaguid":`, status: 400, code: "invalid_request"},
			{name: "a field named twice", method: "PUT", path: putDefault, key: def, body: `{"aaguid":"` + aaguidYubikey + `","aaguid":"` + aaguidHello + `"}`, status: 400, code: "invalid_request", says: "twice"},
			{name: "a field named in another case", method: "PUT", path: putDefault, key: def, body: `{"AAGUID":"` + aaguidYubikey + `"}`, status: 400, code: "invalid_request", says: `spelled "aaguid"`},
			{name: "community license, its own community", method: "PUT", path: putDefault, key: def, body: good, status: 200},
			{name: "the same AAGUID again: 409", method: "PUT", path: putDefault, key: def, body: good, status: 409, code: "conflict", says: "PATCH"},
			{name: "the same AAGUID in upper case: 409", method: "PUT", path: putDefault, key: def, body: with(good, "aaguid", strings.ToUpper(aaguidYubikey)), status: 409, code: "conflict"},
			{name: "community license, another community", method: "PUT", path: putShop, key: def, body: good, status: 403, code: "license_scope"},
			{name: "community license, a community that does not exist", method: "PUT", path: "/webauthn/vendormetadata/nowhere", key: def, body: good, status: 403, code: "license_scope"},
			{name: "community license, any", method: "PUT", path: "/webauthn/vendormetadata/any", key: def, body: good, status: 400, code: "invalid_request", says: "fetch only"},
			{name: "service license, its tenant's community", method: "PUT", path: putShop, key: acmeKey, body: put(aaguidHello, statementOf(aaguidHello, 0)), status: 200},
			{name: "service license, another tenant's community", method: "PUT", path: "/webauthn/vendormetadata/other", key: acmeKey, body: good, status: 403, code: "license_scope"},
			{name: "service license, a community that does not exist", method: "PUT", path: "/webauthn/vendormetadata/nowhere", key: acmeKey, body: good, status: 403, code: "license_scope"},
			{name: "service license, any", method: "PUT", path: "/webauthn/vendormetadata/any", key: acmeKey, body: good, status: 400, code: "invalid_request", says: "fetch only"},
			{name: "system license, a community that does not exist", method: "PUT", path: "/webauthn/vendormetadata/nowhere", key: systemKey, body: good, status: 404, code: "community_unknown"},
			{name: "system license, any", method: "PUT", path: "/webauthn/vendormetadata/any", key: systemKey, body: good, status: 400, code: "invalid_request", says: "fetch only"},
			{name: "system license, a community of one tenant", method: "PUT", path: "/webauthn/vendormetadata/blog", key: systemKey, body: put(aaguidMadeUp, statementOf(aaguidMadeUp, 0)), status: 200},
			{name: "system license, a community of another tenant", method: "PUT", path: "/webauthn/vendormetadata/other", key: systemKey, body: good, status: 200},
			{name: "the community before the fields: another community and no fields", method: "PUT", path: putShop, key: def, body: `{}`, status: 403, code: "license_scope"},
			{name: "no aaguid", method: "PUT", path: putDefault, key: def, body: with(good, "aaguid", nil), status: 400, code: "invalid_request", says: "aaguid is required"},
			{name: "an aaguid without hyphens", method: "PUT", path: putDefault, key: def, body: with(good, "aaguid", strings.ReplaceAll(aaguidHello, "-", "")), status: 400, code: "invalid_request", says: "8-4-4-4-12"},
			{name: "the all-zero AAGUID of U2F authenticators", method: "PUT", path: putDefault, key: def, body: put(aaguidZero, statementOf(aaguidZero, 0)), status: 400, code: "invalid_request", says: "U2F"},
			{name: "no name", method: "PUT", path: putDefault, key: def, body: with(put(aaguidHello, statementOf(aaguidHello, 0)), "name", nil), status: 400, code: "invalid_request", says: "name is required"},
			{name: "a name with a control character", method: "PUT", path: putDefault, key: def, body: with(put(aaguidHello, statementOf(aaguidHello, 0)), "name", "a\tb"), status: 400, code: "invalid_request", says: "control"},
			{name: "a name that is a number", method: "PUT", path: putDefault, key: def, body: with(put(aaguidHello, statementOf(aaguidHello, 0)), "name", 5), status: 400, code: "invalid_request"},
			{name: "no updatedBy", method: "PUT", path: putDefault, key: def, body: with(put(aaguidHello, statementOf(aaguidHello, 0)), "updatedBy", nil), status: 400, code: "invalid_request", says: "updatedBy is required"},
			{name: "no metadata", method: "PUT", path: putDefault, key: def, body: with(put(aaguidHello, ""), "metadata", nil), status: 400, code: "invalid_request", says: "metadata is required"},
			{name: "metadata that is not JSON", method: "PUT", path: putDefault, key: def, body: put(aaguidHello, "YubiKey"), status: 400, code: "invalid_request", says: "metadata is not a JSON object"},
			{name: "metadata as an object, not JSON text", method: "PUT", path: putDefault, key: def, body: with(put(aaguidHello, ""), "metadata", map[string]any{"aaguid": aaguidHello}), status: 400, code: "invalid_request"},
			{name: "metadata for another AAGUID", method: "PUT", path: putDefault, key: def, body: put(aaguidHello, yubikey), status: 400, code: "invalid_request", says: "not the record's"},
			{name: "metadata of a U2F statement (no aaguid)", method: "PUT", path: putDefault, key: def,
				body: put(aaguidHello, `{"description":"U2F key","protocolFamily":"u2f","schema":3,"attestationCertificateKeyIdentifiers":["ab"]}`), status: 400, code: "invalid_request", says: "has no aaguid"},
			{name: "metadata naming aaguid twice", method: "PUT", path: putDefault, key: def,
				body: put(aaguidHello, strings.TrimSuffix(statementOf(aaguidHello, 0), "}")+`,"aaguid":"`+aaguidYubikey+`"}`), status: 400, code: "invalid_request", says: "twice"},
			{name: "metadata over 256 KiB in a body under 1 MiB", method: "PUT", path: putDefault, key: def, body: put(aaguidHello, statementOf(aaguidHello, 256<<10+1)), status: 400, code: "invalid_request", says: "256 KiB"},
			{name: "a statement of 200 KiB: this route takes a body over 64 KiB", method: "PUT", path: putDefault, key: def, body: put(aaguidMadeUp, statementOf(aaguidMadeUp, 200<<10)), status: 200},
		})
	})

	patch := func(community, aaguid string) string {
		return "/webauthn/vendormetadata/" + community + "/aaguid/" + aaguid
	}
	t.Run("PATCH", func(t *testing.T) {
		disable := map[string]any{"disabled": true, "updatedBy": "auditor"}
		runVendorSteps(t, s, systemKey, []vendorStep{
			{name: "no licensekey", method: "PATCH", path: patch("default", aaguidYubikey), body: disable, status: 401, code: "license_missing"},
			{name: "a body over 1 MiB", method: "PATCH", path: patch("default", aaguidYubikey), key: def, body: overMiB, status: 413, code: "body_too_large", says: "1 MiB"},
			{name: "community license, its own community", method: "PATCH", path: patch("default", aaguidYubikey), key: def, body: disable, status: 200},
			{name: "community license, another community", method: "PATCH", path: patch("shop", aaguidHello), key: def, body: disable, status: 403, code: "license_scope"},
			{name: "community license, a community that does not exist", method: "PATCH", path: patch("nowhere", aaguidHello), key: def, body: disable, status: 403, code: "license_scope"},
			{name: "community license, any", method: "PATCH", path: patch("any", aaguidYubikey), key: def, body: disable, status: 400, code: "invalid_request", says: "fetch only"},
			{name: "service license, another tenant's community", method: "PATCH", path: patch("default", aaguidYubikey), key: acmeKey, body: disable, status: 403, code: "license_scope"},
			{name: "service license, any", method: "PATCH", path: patch("any", aaguidYubikey), key: acmeKey, body: disable, status: 400, code: "invalid_request", says: "fetch only"},
			{name: "system license, a community that does not exist", method: "PATCH", path: patch("nowhere", aaguidYubikey), key: systemKey, body: disable, status: 404, code: "community_unknown"},
			{name: "system license, any", method: "PATCH", path: patch("any", aaguidYubikey), key: systemKey, body: disable, status: 400, code: "invalid_request", says: "fetch only"},
			{name: "a record the community does not have: 404", method: "PATCH", path: patch("default", aaguidHello), key: def, body: disable, status: 404, code: "not_found"},
			{name: "a path aaguid that is not one", method: "PATCH", path: patch("default", "yubikey"), key: def, body: disable, status: 400, code: "invalid_request", says: "the path's aaguid"},
			{name: "no updatedBy", method: "PATCH", path: patch("default", aaguidYubikey), key: def, body: map[string]any{"disabled": false}, status: 400, code: "invalid_request", says: "updatedBy is required"},
			{name: "nothing to change", method: "PATCH", path: patch("default", aaguidYubikey), key: def, body: map[string]any{"updatedBy": "x"}, status: 400, code: "invalid_request", says: "nothing to change"},
			{name: "an empty name", method: "PATCH", path: patch("default", aaguidYubikey), key: def, body: map[string]any{"name": "", "updatedBy": "x"}, status: 400, code: "invalid_request", says: "name is required"},
			{name: "metadata for another AAGUID", method: "PATCH", path: patch("default", aaguidYubikey), key: def, body: map[string]any{"metadata": statementOf(aaguidHello, 0), "updatedBy": "x"}, status: 400, code: "invalid_request", says: "not the record's"},
			{name: "the community before the fields: another tenant's community and a bad body", method: "PATCH", path: patch("other", "x"), key: acmeKey, body: `{}`, status: 403, code: "license_scope"},
			{name: "the path's AAGUID in upper case", method: "PATCH", path: patch("default", strings.ToUpper(aaguidYubikey)), key: def, body: map[string]any{"name": "YubiKey 5", "updatedBy": "auditor"}, status: 200},
			{name: "service license, its tenant's community, new metadata", method: "PATCH", path: patch("shop", aaguidHello), key: acmeKey, body: map[string]any{"metadata": statementOf(aaguidHello, 100), "updatedBy": "x"}, status: 200},
			{name: "null members are absent", method: "PATCH", path: patch("blog", aaguidMadeUp), key: systemKey, body: `{"metadata":null,"name":null,"disabled":true,"updatedBy":"x"}`, status: 200},
		})
	})

	fetch := func(community string) string { return "/webauthn/vendormetadata/" + community + "/fetch" }
	t.Run("fetch", func(t *testing.T) {
		runVendorSteps(t, s, systemKey, []vendorStep{
			{name: "no licensekey", method: "POST", path: fetch("default"), body: map[string]any{}, status: 401, code: "license_missing"},
			{name: "community license, its own community", method: "POST", path: fetch("default"), key: def, body: map[string]any{}, status: 200,
				want: []string{"default/11111111", "default/cb69481e"}},
			{name: "community license, another community", method: "POST", path: fetch("shop"), key: def, body: map[string]any{}, status: 403, code: "license_scope"},
			{name: "community license, a community that does not exist", method: "POST", path: fetch("nowhere"), key: def, body: map[string]any{}, status: 403, code: "license_scope"},
			{name: "community license, any", method: "POST", path: fetch("any"), key: def, body: map[string]any{}, status: 403, code: "license_scope"},
			{name: "service license, any: its tenant's communities", method: "POST", path: fetch("any"), key: acmeKey, body: map[string]any{}, status: 200,
				want: []string{"blog/11111111", "shop/6028b017"}},
			{name: "service license, its tenant's community", method: "POST", path: fetch("shop"), key: acmeKey, body: map[string]any{}, status: 200,
				want: []string{"shop/6028b017"}},
			{name: "service license, another tenant's community", method: "POST", path: fetch("default"), key: acmeKey, body: map[string]any{}, status: 403, code: "license_scope"},
			{name: "service license, a community that does not exist", method: "POST", path: fetch("nowhere"), key: acmeKey, body: map[string]any{}, status: 403, code: "license_scope"},
			{name: "system license, any: every community", method: "POST", path: fetch("any"), key: systemKey, body: map[string]any{}, status: 200,
				want: []string{"blog/11111111", "default/11111111", "default/cb69481e", "other/cb69481e", "shop/6028b017"}},
			{name: "system license, any, one AAGUID in upper case", method: "POST", path: fetch("any"), key: systemKey, body: map[string]any{"aaguids": []string{strings.ToUpper(aaguidYubikey)}}, status: 200,
				want: []string{"default/cb69481e", "other/cb69481e"}},
			{name: "system license, a community that does not exist", method: "POST", path: fetch("nowhere"), key: systemKey, body: map[string]any{}, status: 404, code: "community_unknown"},
			{name: "system license, a community without records", method: "POST", path: fetch("default"), key: systemKey, body: map[string]any{"aaguids": []string{aaguidHello}}, status: 200, want: []string{}},
			{name: "no body: every record", method: "POST", path: fetch("default"), key: def, status: 200, want: []string{"default/11111111", "default/cb69481e"}},
			{name: "an empty list: every record", method: "POST", path: fetch("default"), key: def, body: map[string]any{"aaguids": []string{}}, status: 200, want: []string{"default/11111111", "default/cb69481e"}},
			{name: "an AAGUID that is not one", method: "POST", path: fetch("default"), key: def, body: map[string]any{"aaguids": []string{aaguidHello, "nope"}}, status: 400, code: "invalid_request", says: "aaguids[1]"},
			{name: "aaguids not a list", method: "POST", path: fetch("default"), key: def, body: map[string]any{"aaguids": aaguidHello}, status: 400, code: "invalid_request"},
			{name: "1025 AAGUIDs", method: "POST", path: fetch("default"), key: def, body: map[string]any{"aaguids": make1025()}, status: 400, code: "invalid_request", says: "more than 1024"},
			{name: "a body over 1 MiB", method: "POST", path: fetch("default"), key: def, body: overMiB, status: 413, code: "body_too_large", says: "1 MiB"},
			{name: "an unknown licensekey and a body that is not JSON", method: "POST", path: fetch("any"), key: "x", body: `[`, status: 401, code: "license_invalid"},
		})
	})

	t.Run("a record reads back as written and changed", func(t *testing.T) {
		status, raw, _ := s.callRaw(t, "POST", fetch("default"), lic(def), map[string]any{"aaguids": []string{aaguidYubikey}})
		if status != 200 {
			t.Fatalf("fetch answered %d %s", status, raw)
		}
		rs := vendorRecords(t, raw)
		if len(rs) != 1 {
			t.Fatalf("fetch answered %d records, want 1", len(rs))
		}
		r := rs[0]
		at, err := time.Parse(time.RFC3339Nano, r["updatedAt"].(string))
		if err != nil || time.Since(at) > time.Minute || at.Location() != time.UTC {
			t.Errorf("updatedAt = %v (%v), want a recent RFC 3339 time in UTC", r["updatedAt"], err)
		}
		want := map[string]any{"id": r["id"], "aaguid": aaguidYubikey, "communityId": "default", "metadata": yubikey,
			"name": "YubiKey 5", "disabled": true, "updatedBy": "auditor", "updatedAt": r["updatedAt"]}
		if !reflect.DeepEqual(r, want) || !strings.HasPrefix(r["id"].(string), "vm_") {
			t.Errorf("record = %v, want %v", r, want)
		}
	})

	t.Run("other routes keep the 64 KiB limit, and say so", func(t *testing.T) {
		body := `{"dns":"localhost","username":"` + strings.Repeat("a", 65<<10) + `"}`
		status, e, _ := s.call(t, "POST", "/webauthn/u1/attestation/options", lic(def), body)
		if status != 413 || !strings.Contains(e["message"].(string), "64 KiB") {
			t.Fatalf("answered %d %v, want 413 saying 64 KiB", status, e)
		}
	})
}

// make1025 returns 1025 valid AAGUIDs.
func make1025() []string {
	out := make([]string, 1025)
	for i := range out {
		out[i] = aaguidMadeUp
	}
	return out
}

// TestCommunityAnyIsReserved: "any" names every community on the vendor metadata routes, so
// no community may be created with that id.
func TestCommunityAnyIsReserved(t *testing.T) {
	s := startServer(t, "")
	_, stderr, err := runCommand("community", "create", "--id", "any", "--tenant", "acme", "--rp-id", "any.localhost",
		"--origin", "https://any.localhost", "--data-dir", s.DataDir)
	if err == nil || !strings.Contains(err.Error()+stderr, "reserved") {
		t.Fatalf("community create --id any: err = %v, stderr %q; want a refusal that says the id is reserved", err, stderr)
	}
}
