package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mdsTestdata is the shared MDS test data (README one level up): blob.jwt, BLOB number 9 with
// 98 entries, signed through GlobalSign Root CA R3 (root-r3.crt, DER), verifiable at
// 2021-11-15; test-blob.jwt, the conformance tool's BLOB number 42 with 200 entries.
const mdsTestdata = "../../actors/testdata/mds"

// conformanceMDSRoot is go-webauthn's metadata.ConformanceMDSRoot (the FIDO conformance
// tool's MDS3 root, to which test-blob.jwt chains), copied because only actors imports
// go-webauthn.
const conformanceMDSRoot = "MIICaDCCAe6gAwIBAgIPBCqih0DiJLW7+UHXx/o1MAoGCCqGSM49BAMDMGcxCzAJBgNVBAYTAlVTMRYwFAYDVQQKDA1GSURPIEFsbGlhbmNlMScwJQYDVQQLDB5GQUtFIE1ldGFkYXRhIDMgQkxPQiBST09UIEZBS0UxFzAVBgNVBAMMDkZBS0UgUm9vdCBGQUtFMB4XDTE3MDIwMTAwMDAwMFoXDTQ1MDEzMTIzNTk1OVowZzELMAkGA1UEBhMCVVMxFjAUBgNVBAoMDUZJRE8gQWxsaWFuY2UxJzAlBgNVBAsMHkZBS0UgTWV0YWRhdGEgMyBCTE9CIFJPT1QgRkFLRTEXMBUGA1UEAwwORkFLRSBSb290IEZBS0UwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAASKYiz3YltC6+lmxhPKwA1WFZlIqnX8yL5RybSLTKFAPEQeTD9O6mOz+tg8wcSdnVxHzwnXiQKJwhrav70rKc2ierQi/4QUrdsPes8TEirZOkCVJurpDFbXZOgs++pa4XmjYDBeMAsGA1UdDwQEAwIBBjAPBgNVHRMBAf8EBTADAQH/MB0GA1UdDgQWBBQGcfeCs0Y8D+lh6U5B2xSrR74eHTAfBgNVHSMEGDAWgBQGcfeCs0Y8D+lh6U5B2xSrR74eHTAKBggqhkjOPQQDAwNoADBlAjEA/xFsgri0xubSa3y3v5ormpPqCwfqn9s0MLBAtzCIgxQ/zkzPKctkiwoPtDzI51KnAjAmeMygX2S5Ht8+e+EQnezLJBJXtnkRWY+Zt491wgt/AwSs5PHHMv5QgjELOuMxQBc="

// mdsFiles are the paths of the shared BLOBs and roots, and of a tampered copy of blob.jwt.
type mdsFiles struct {
	blob9, blob42, rootR3, rootConformance, tampered string
}

// mdsTestFiles checks that the shared test data is there and writes the conformance root (as
// PEM, where R3 is DER: both forms are read) and a tampered blob.jwt (one character of its
// payload changed) to a temporary directory.
func mdsTestFiles(t *testing.T) mdsFiles {
	t.Helper()
	f := mdsFiles{
		blob9:  filepath.Join(mdsTestdata, "blob.jwt"),
		blob42: filepath.Join(mdsTestdata, "test-blob.jwt"),
		rootR3: filepath.Join(mdsTestdata, "root-r3.crt"),
	}
	raw, err := os.ReadFile(f.blob9)
	if err != nil {
		t.Fatalf("the shared MDS test data is missing (%v): the tests expect it at %s", err, mdsTestdata)
	}
	dir := t.TempDir()
	der, _ := base64.StdEncoding.DecodeString(conformanceMDSRoot)
	f.rootConformance = filepath.Join(dir, "conformance-root.pem")
	if err := os.WriteFile(f.rootConformance, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(raw), ".")
	payload := []byte(parts[1])
	i := len(payload) / 2
	if payload[i] == 'A' {
		payload[i] = 'B'
	} else {
		payload[i] = 'A'
	}
	f.tampered = filepath.Join(dir, "tampered.jwt")
	if err := os.WriteFile(f.tampered, []byte(parts[0]+"."+string(payload)+"."+parts[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// statementErrors is what an accepted import says on stderr of the entries whose statement
// go-webauthn's parser refuses: how many and the first by name (five are named, then "and 195
// more" for BLOB 42).
var statementErrors = map[string]string{
	"imported 98 entries (BLOB number 9, next update 2021-12-01)": "5 entries kept whose statement go-webauthn cannot parse " +
		"(their status applies, their attestation roots cannot be used):\n  4e768f2c-5fab-48b3-b300-220eb487752b (Hideez Key FIDO2 SDK): ",
	"imported 200 entries (BLOB number 42, next update 2022-11-09)": "200 entries kept whose statement go-webauthn cannot parse " +
		"(their status applies, their attestation roots cannot be used):\n  dbc6ff39-6e05-415c-b268-021a871b660b (Virtual Secp256R1 " +
		"FIDO2 Conformance Testing CTAP2 Authenticator dbc6ff39-6e05-415c-b268-021a871b660b): json: cannot unmarshal string into Go " +
		"struct field AuthenticatorGetInfoJSON.metadataStatement.authenticatorGetInfo.options of type bool\n",
}

const (
	atBlob9  = "2021-11-15T00:00:00Z"
	atBlob42 = "2022-11-01T00:00:00+01:00"
)

// TestMetadataImportAndListWithoutServer: with no server running, `metadata import` verifies
// each BLOB at its clock and replaces the global entries, `metadata list` shows them, and a
// tampered, expired, wrongly rooted or older BLOB is refused with its reason and changes
// nothing, key for key, until --force.
func TestMetadataImportAndListWithoutServer(t *testing.T) {
	f := mdsTestFiles(t)
	dir := t.TempDir()
	if _, _, err := runCommand("license", "list", "--data-dir", dir); err != nil { // creates the store
		t.Fatal(err)
	}
	if _, _, err := runCommand("metadata", "list", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no MDS BLOB has been imported") {
		t.Fatalf("list before any import: %v", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // stdout, or the error
		ok   bool
	}{
		{"production BLOB 9 at its clock", []string{"--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9},
			"imported 98 entries (BLOB number 9, next update 2021-12-01)", true},
		{"tampered", []string{"--blob", f.tampered, "--root", f.rootR3, "--at", atBlob9},
			"signature does not verify with its signing certificate (mds.fidoalliance.org)", false},
		{"expired at --at", []string{"--blob", f.blob9, "--root", f.rootR3, "--at", "2022-06-01T00:00:00Z"},
			"its signing chain has expired or is not yet valid at 2022-06-01T00:00:00Z", false},
		{"expired now", []string{"--blob", f.blob9, "--root", f.rootR3},
			"its signing chain has expired", false},
		{"rooted elsewhere", []string{"--blob", f.blob9, "--root", f.rootConformance, "--at", atBlob9},
			`does not chain to the root "FAKE Root FAKE"`, false},
		{"not rooted in the production root", []string{"--blob", f.blob9, "--at", atBlob9},
			`does not chain to the root "GlobalSign Root R46"`, false},
		{"stale after its next update", []string{"--blob", f.blob42, "--root", f.rootConformance, "--at", "2022-12-01T00:00:00Z"},
			"stale at 2022-12-01T00:00:00Z: its nextUpdate was 2022-11-09", false},
		{"the same BLOB again", []string{"--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9},
			"BLOB number 9 is not above the stored BLOB number 9", false},
		{"conformance BLOB 42", []string{"--blob", f.blob42, "--root", f.rootConformance, "--at", atBlob42},
			"imported 200 entries (BLOB number 42, next update 2022-11-09)", true},
		{"an older BLOB", []string{"--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9},
			"BLOB number 9 is not above the stored BLOB number 42", false},
		{"an older BLOB, forced", []string{"--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9, "--force"},
			"imported 98 entries (BLOB number 9, next update 2021-12-01)", true},
		{"--at not RFC 3339", []string{"--blob", f.blob9, "--root", f.rootR3, "--at", "2021-11-15"},
			"give an RFC 3339 time", false},
		{"no --blob", []string{"--root", f.rootR3}, "--blob is required", false},
		{"a missing BLOB file", []string{"--blob", filepath.Join(dir, "nothing.jwt")}, "no such file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := storeDigest(t, dir)
			stdout, stderr, err := runCommand(append([]string{"metadata", "import", "--data-dir", dir}, tc.args...)...)
			if tc.ok {
				if err != nil || strings.TrimSpace(stdout) != tc.want || !strings.Contains(stderr, statementErrors[tc.want]) ||
					strings.Contains(tc.want, "200 entries") != strings.HasSuffix(stderr, "\n  and 195 more\n") {
					t.Fatalf("stdout %q, error %v, want %q\nstderr %s\nwant it to say %q", stdout, err, tc.want, stderr, statementErrors[tc.want])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q (stdout %q)", err, tc.want, stdout)
			}
			if after := storeDigest(t, dir); after != before {
				t.Fatal("a refused import changed the store")
			}
		})
	}

	stdout, stderr, err := runCommand("metadata", "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 98 || !strings.HasPrefix(stderr, "mds blob 9: 98 entries, next update 2021-12-01, imported ") {
		t.Fatalf("list: %d lines, stderr %q; want 98 lines of BLOB 9", len(lines), stderr)
	}
	const yubikey = "fa2b99dc-9e39-4257-8f92-4a30d23c4118\tYubiKey 5 Series with NFC\tFIDO_CERTIFIED_L1 (2020-05-12)\tmds blob 9"
	const feitianU2F = "keyid:f4b64a68c334e901b8e23c6e66e6866c31931f5d,d5db4dd48fe46afd8af8f1f7cfbdee61640bbbcc,39d11cb1d6da8f646f584eea184133a03d85a2cc,55464d5bea84e7073074b21d1204934358c7db4d" +
		"\tFeitian ePass FIDO-NFC Security Key\tFIDO_CERTIFIED_L1 (2020-11-19)\tmds blob 9"
	counts := map[string]int{}
	for _, l := range lines {
		if len(strings.Split(l, "\t")) != 4 {
			t.Errorf("line %q has not 4 tab-separated fields", l)
		}
		switch {
		case strings.HasPrefix(l, "keyid:"):
			counts["u2f"]++
		case strings.HasPrefix(l, "aaid:"):
			counts["uaf"]++
		default:
			counts["fido2"]++
		}
	}
	if counts["fido2"] != 46 || counts["u2f"] != 35 || counts["uaf"] != 17 || !strings.Contains(stdout, yubikey+"\n") || !strings.Contains(stdout, feitianU2F+"\n") {
		t.Fatalf("list holds %v entries (want 46 FIDO2, 35 U2F, 17 UAF), YubiKey line %v, Feitian U2F line %v",
			counts, strings.Contains(stdout, yubikey), strings.Contains(stdout, feitianU2F))
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"by AAGUID, any case", []string{"--aaguid", "FA2B99DC-9E39-4257-8F92-4A30D23C4118"}, yubikey},
		{"a U2F entry by one of its key identifiers", []string{"--key-id", "39D11CB1D6DA8F646F584EEA184133A03D85A2CC"}, feitianU2F},
		{"an AAGUID the BLOB does not have", []string{"--aaguid", "00000000-0000-0000-0000-000000000001"}, "BLOB number 9 has no entry for 00000000-0000-0000-0000-000000000001"},
		{"both filters", []string{"--aaguid", "fa2b99dc-9e39-4257-8f92-4a30d23c4118", "--key-id", "00"}, "not both"},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			stdout, _, err := runCommand(append([]string{"metadata", "list", "--data-dir", dir}, tc.args...)...)
			got := strings.TrimSpace(stdout)
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMetadataImportWhileServing: while a server holds the store, `metadata import` goes
// through its admin socket (whose body limit is raised for this request alone: the BLOBs are 1
// and 2.3 MB), the list reads what it stored, a refused BLOB changes nothing, and the server
// goes on serving.
func TestMetadataImportWhileServing(t *testing.T) {
	f := mdsTestFiles(t)
	s := startServer(t, "")
	if got := s.admin(t, "metadata", "import", "--blob", f.blob42, "--root", f.rootConformance, "--at", atBlob42); got != "imported 200 entries (BLOB number 42, next update 2022-11-09)" {
		t.Fatalf("import: %q", got)
	}
	if !strings.Contains(s.stderr.String(), `"path":"`+"/admin/metadata/import"+`"`) {
		t.Fatal("the import did not go through the server's admin socket")
	}
	listing := func() (string, string) {
		t.Helper()
		stdout, stderr, err := runCommand("metadata", "list", "--data-dir", s.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		return stdout, stderr
	}
	list42, blob42 := listing()
	if n := strings.Count(list42, "\n"); n != 200 || !strings.Contains(list42, "\tmds blob 42\n") || !strings.Contains(s.stderr.String(), `"path":"/admin/metadata"`) {
		t.Fatalf("list through the server: %d lines, %q", n, blob42)
	}
	for _, args := range [][]string{
		{"--blob", f.tampered, "--root", f.rootR3, "--at", atBlob9, "--force"},
		{"--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9},
	} {
		_, _, err := runCommand(append([]string{"metadata", "import", "--data-dir", s.DataDir}, args...)...)
		if err == nil {
			t.Fatalf("import %v accepted", args)
		}
		if list, blob := listing(); list != list42 || blob != blob42 {
			t.Fatalf("a refused import (%v) changed the entries", err)
		}
	}
	if got := s.admin(t, "metadata", "import", "--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9, "--force"); got != "imported 98 entries (BLOB number 9, next update 2021-12-01)" {
		t.Fatalf("forced import: %q", got)
	}
	var list struct{ Entries []json.RawMessage }
	v, err := viaSocket(t.Context(), socketPath(s.DataDir), "GET", "/admin/metadata", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := recode(v, &list); err != nil || len(list.Entries) != 98 {
		t.Fatalf("list after the forced import: %d entries, %v", len(list.Entries), err)
	}
	if code, _, _ := s.call(t, "GET", "/webauthn/healthz", nil, nil); code != 200 {
		t.Fatalf("healthz %d after the imports", code)
	}
}
