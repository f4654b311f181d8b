package actors

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/metadata"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// ProductionMDSRootPEM is the trust anchor of the FIDO Metadata Service's production BLOB
// (GlobalSign Root R46, valid until 2046), the root `webauthnd metadata import` uses when it is
// given no --root. It is spelled out here rather than taken from go-webauthn at run time so that
// a dependency upgrade cannot change whom the service trusts without a visible change to this
// file; a test checks it still equals go-webauthn's metadata.ProductionMDSRoot.
const ProductionMDSRootPEM = `-----BEGIN CERTIFICATE-----
MIIFWjCCA0KgAwIBAgISEdK7udcjGJ5AXwqdLdDfJWfRMA0GCSqGSIb3DQEBDAUA
MEYxCzAJBgNVBAYTAkJFMRkwFwYDVQQKExBHbG9iYWxTaWduIG52LXNhMRwwGgYD
VQQDExNHbG9iYWxTaWduIFJvb3QgUjQ2MB4XDTE5MDMyMDAwMDAwMFoXDTQ2MDMy
MDAwMDAwMFowRjELMAkGA1UEBhMCQkUxGTAXBgNVBAoTEEdsb2JhbFNpZ24gbnYt
c2ExHDAaBgNVBAMTE0dsb2JhbFNpZ24gUm9vdCBSNDYwggIiMA0GCSqGSIb3DQEB
AQUAA4ICDwAwggIKAoICAQCsrHQy6LNl5brtQyYdpokNRbopiLKkHWPd08EsCVeJ
OaFV6Wc0dwxu5FUdUiXSE2te4R2pt32JMl8Nnp8semNgQB+msLZ4j5lUlghYruQG
vGIFAha/r6gjA7aUD7xubMLL1aa7DOn2wQL7Id5m3RerdELv8HQvJfTqa1VbkNud
316HCkD7rRlr+/fKYIje2sGP1q7Vf9Q8g+7XFkyDRTNrJ9CG0Bwta/OrffGFqfUo
0q3v84RLHIf8E6M6cqJaESvWJ3En7YEtbWaBkoe0G1h6zD8K+kZPTXhc+CtI4wSE
y132tGqzZfxCnlEmIyDLPRT5ge1lFgBPGmSXZgjPjHvjK8Cd+RTyG/FWaha/LIWF
zXg4mutCagI0GIMXTpRW+LaCtfOW3T3zvn8gdz57GSNrLNRyc0NXfeD412lPFzYE
+cCQYDdF3uYM2HSNrpyibXRdQr4G9dlkbgIQrImwTDsHTUB+JMWKmIJ5jqSngiCN
I/onccnfxkF0oE32kRbcRoxfKWMxWXEM2G/CtjJ9++ZdU6Z+Ffy7dXxd7Pj2Fxzs
x2sZy/N78CsHpdlseVR2bJ0cpm4O6XkMqCNqo98bMDGfsVR7/mrLZqrcZdCinkqa
ByFrgY/bxFn63iLABJzjqls2k+g9vXqhnQt2sQvHnf3PmKgGwvgqo6GDoLclcqUC
4wIDAQABo0IwQDAOBgNVHQ8BAf8EBAMCAYYwDwYDVR0TAQH/BAUwAwEB/zAdBgNV
HQ4EFgQUA1yrc4GHqMywptWU4jaWSf8FmSwwDQYJKoZIhvcNAQEMBQADggIBAHx4
7PYCLLtbfpIrXTncvtgdokIzTfnvpCo7RGkerNlFo048p9gkUbJUHJNOxO97k4Vg
JuoJSOD1u8fpaNK7ajFxzHmuEajwmf3lH7wvqMxX63bEIaZHU1VNaL8FpO7XJqti
2kM3S+LGteWygxk6x9PbTZ4IevPuzz5i+6zoYMzRx6Fcg0XERczzF2sUyQQCPtIk
pnnpHs6i58FZFZ8d4kuaPp92CC1r2LpXFNqD6v6MVenQTqnMdzGxRBF6XLE+0xRF
FRhiJBPSy03OXIPBNvIQtQ6IbbjhVp+J3pZmOUdkLG5NrmJ7v2B0GbhWrJKsFjLt
rWhV/pi60zTe9Mlhww6G9kuEYO4Ne7UyWHmRVSyBQ7N0H3qqJZ4d16GLuc1CLgSk
ZoNNiTW2bKg2SnkheCLQQrzRQDGQob4Ez8pn7fXwgNNgyYMqIgXQBztSvwyeqiv5
u+YfjyW6hY0XHgL+XVAEV8/+LbzvXMAaq7afJMbfc2hIkCwU9D9SGuTSyxTDYWnP
4vkYxboznxSjBF25cfe1lNj2M8FawTSLfJvdkzrnE6JwYZ+vj+vYxXX4M2bUdGc6
N3ec592kD3ZDZopD8p/7DEJ4Y9HiD2971KE9dJeFt0g5QdYg/NA6s/rob8SKunE3
vouXsXgxT7PntgMTzlSdriVZzH81Xwj3QEUxeCp6
-----END CERTIFICATE-----
`

// MaxMDSBlobBytes bounds the size of an MDS BLOB (the production BLOB is a few megabytes).
const MaxMDSBlobBytes = 16 << 20

// maxMDSChain bounds the x5c header: a signing certificate and a few intermediates.
const maxMDSChain = 8

// mdsAlgorithms are the JWS algorithms an MDS BLOB may be signed with: the asymmetric ones (MDS3
// names ES256 and RS256). "none" and the HMACs never verify a BLOB.
var mdsAlgorithms = map[string]jwt.SigningMethod{
	"ES256": jwt.SigningMethodES256, "ES384": jwt.SigningMethodES384, "ES512": jwt.SigningMethodES512,
	"RS256": jwt.SigningMethodRS256, "RS384": jwt.SigningMethodRS384, "RS512": jwt.SigningMethodRS512,
	"PS256": jwt.SigningMethodPS256, "PS384": jwt.SigningMethodPS384, "PS512": jwt.SigningMethodPS512,
}

// MDSBlob is a verified and decoded FIDO MDS3 BLOB, ready for [persistence.MDSImporter.ReplaceMDS].
type MDSBlob struct {
	Blob    persistence.MDSBlob
	Entries []persistence.MDSEntry
	// Skipped says, one line each, which entries were left out and why: they lack what an
	// import reads of them, or they repeat an AAGUID or key identifier of an earlier entry.
	Skipped []string
}

// ParseMDSRoot reads a trust anchor for MDS BLOBs from a PEM (the first CERTIFICATE block) or
// DER file's bytes; empty bytes mean the production root.
func ParseMDSRoot(raw []byte) (*x509.Certificate, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte(ProductionMDSRootPEM)
	}
	der := raw
	if rest := raw; bytes.Contains(raw, []byte("-----BEGIN")) {
		der = nil
		for {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if block.Type == "CERTIFICATE" {
				der = block.Bytes
				break
			}
		}
		if der == nil {
			return nil, messages.Errorf(messages.CodeInvalidRequest, "the root file holds no PEM CERTIFICATE block")
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, messages.Wrap(messages.CodeInvalidRequest, "the root is not an X.509 certificate in PEM or DER: "+err.Error(), err)
	}
	return cert, nil
}

// VerifyMDSBlob verifies a FIDO MDS3 BLOB (a JWS in compact form) as the MDS3 specification's
// processing rules say, with time at as the clock and without revocation look-ups (the service
// never reaches out to the network, and at may lie in the past): the x5c chain must lead to
// root (DER or PEM; empty for [ProductionMDSRootPEM]) and every certificate in it be valid at
// at; the signature must verify with the chain's first certificate; and the BLOB must not be
// past its nextUpdate date at at. Only then is the payload decoded, each entry with
// go-webauthn's metadata types. Every refusal is an invalid_request error whose message says
// why.
func VerifyMDSBlob(raw, root []byte, at time.Time) (MDSBlob, error) {
	anchor, err := ParseMDSRoot(root)
	if err != nil {
		return MDSBlob{}, err
	}
	payload, err := verifyMDSSignature(raw, anchor, at)
	if err != nil {
		return MDSBlob{}, err
	}
	return decodeMDSPayload(payload, at)
}

func mdsRefusal(format string, args ...any) error {
	return messages.Errorf(messages.CodeInvalidRequest, "MDS BLOB refused: "+fmt.Sprintf(format, args...))
}

// mdsHeader is the protected header of an MDS BLOB.
type mdsHeader struct {
	Alg  string          `json:"alg"`
	X5C  []string        `json:"x5c"`
	X5U  json.RawMessage `json:"x5u"`
	Crit json.RawMessage `json:"crit"`
}

// verifyMDSSignature checks the chain and the signature of a compact JWS and returns its
// decoded payload.
func verifyMDSSignature(raw []byte, root *x509.Certificate, at time.Time) ([]byte, error) {
	if len(raw) > MaxMDSBlobBytes {
		return nil, mdsRefusal("it is larger than %d MiB", MaxMDSBlobBytes>>20)
	}
	parts := strings.Split(strings.TrimSpace(string(raw)), ".")
	if len(parts) != 3 {
		return nil, mdsRefusal("it is not a JWS in compact form (three base64url parts separated by dots)")
	}
	headerJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, mdsRefusal("its header is not base64url")
	}
	var h mdsHeader
	if err := json.Unmarshal(headerJSON, &h); err != nil {
		return nil, mdsRefusal("its header is not a JSON object of the JWS shape")
	}
	method, ok := mdsAlgorithms[h.Alg]
	switch {
	case !ok:
		return nil, mdsRefusal("its signature algorithm %q is not one of ES256/384/512, RS256/384/512, PS256/384/512", h.Alg)
	case h.X5U != nil:
		return nil, mdsRefusal("it names its chain by URL (x5u), which is never fetched")
	case h.Crit != nil:
		return nil, mdsRefusal("its header has critical extensions (crit), which are not understood")
	case len(h.X5C) > maxMDSChain:
		return nil, mdsRefusal("its x5c chain holds %d certificates, more than %d", len(h.X5C), maxMDSChain)
	}
	signer, err := verifyMDSChain(h.X5C, root, at)
	if err != nil {
		return nil, err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, mdsRefusal("its signature is not base64url")
	}
	if err := method.Verify(parts[0]+"."+parts[1], sig, signer.PublicKey); err != nil {
		return nil, mdsRefusal("its signature does not verify with its signing certificate (%s): the BLOB was altered or signed by another key", signer.Subject.CommonName)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, mdsRefusal("its payload is not base64url")
	}
	return payload, nil
}

// verifyMDSChain returns the BLOB's signing certificate once x5c leads from it to root at at.
// A BLOB without x5c is signed by the root itself (MDS3, 3.1.8 step 3).
func verifyMDSChain(x5c []string, root *x509.Certificate, at time.Time) (*x509.Certificate, error) {
	if len(x5c) == 0 {
		if at.Before(root.NotBefore) || at.After(root.NotAfter) {
			return nil, mdsRefusal("it has no x5c, so the root signs it, and the root %q is not valid at %s (valid %s to %s)",
				root.Subject.CommonName, at.Format(time.RFC3339), root.NotBefore.Format(time.DateOnly), root.NotAfter.Format(time.DateOnly))
		}
		return root, nil
	}
	certs := make([]*x509.Certificate, len(x5c))
	for i, s := range x5c {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, mdsRefusal("certificate %d of its x5c is not base64", i)
		}
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, mdsRefusal("certificate %d of its x5c is not an X.509 certificate", i)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: intermediates, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
		return certs[0], nil
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return nil, mdsRefusal("its signing chain has expired or is not yet valid at %s (%s)", at.Format(time.RFC3339), invalid.Detail)
	case errors.As(err, &unknown):
		return nil, mdsRefusal("its signing certificate %q does not chain to the root %q", certs[0].Subject.CommonName, root.Subject.CommonName)
	default:
		return nil, mdsRefusal("its signing chain does not verify to the root %q: %v", root.Subject.CommonName, err)
	}
}

// mdsPayload is the payload of a BLOB with its entries still as JSON text: each is decoded
// with go-webauthn's [metadata.EntryJSON] and kept as it came.
type mdsPayload struct {
	LegalHeader string            `json:"legalHeader"`
	Number      int               `json:"no"`
	NextUpdate  string            `json:"nextUpdate"`
	Entries     []json.RawMessage `json:"entries"`
}

// decodeMDSPayload decodes a verified payload. An entry without the identifiers, status dates
// and description an import reads (see mdsEntryOf), or one that repeats an AAGUID or key
// identifier, is skipped and reported: one vendor's malformed entry must not hold back the
// revocations of the others.
func decodeMDSPayload(payload []byte, at time.Time) (MDSBlob, error) {
	var p mdsPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return MDSBlob{}, mdsRefusal("its payload is not an MDS3 BLOB payload: %v", err)
	}
	if p.Number < 1 {
		return MDSBlob{}, mdsRefusal("its payload has no serial number (no) of 1 or more")
	}
	next, err := time.Parse(time.DateOnly, p.NextUpdate)
	if err != nil {
		return MDSBlob{}, mdsRefusal("its nextUpdate %q is not a date (YYYY-MM-DD)", p.NextUpdate)
	}
	// The BLOB is good through its nextUpdate day; after it a newer one exists and this one
	// may lack its revocations.
	if !at.Before(next.AddDate(0, 0, 1)) {
		return MDSBlob{}, mdsRefusal("it is stale at %s: its nextUpdate was %s (BLOB number %d); download the current one",
			at.Format(time.RFC3339), p.NextUpdate, p.Number)
	}
	out := MDSBlob{Blob: persistence.MDSBlob{Number: p.Number, NextUpdate: next, LegalHeader: p.LegalHeader}}
	seen := map[string]int{}
	for i, raw := range p.Entries {
		e, err := mdsEntryOf(raw, at)
		if err != nil {
			out.Skipped = append(out.Skipped, fmt.Sprintf("entry %d: %v", i, err))
			continue
		}
		if dup := firstRepeat(seen, e, i); dup != "" {
			out.Skipped = append(out.Skipped, fmt.Sprintf("entry %d: %s", i, dup))
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	out.Blob.Entries = len(out.Entries)
	return out, nil
}

// firstRepeat records e's identifiers in seen and says which one an earlier entry had.
func firstRepeat(seen map[string]int, e persistence.MDSEntry, i int) string {
	ids := e.KeyIdentifiers
	if e.AAGUID != "" {
		ids = append([]string{"aaguid " + e.AAGUID}, ids...)
	}
	for _, id := range ids {
		if j, ok := seen[id]; ok {
			return fmt.Sprintf("%s repeats entry %d", id, j)
		}
	}
	for _, id := range ids {
		seen[id] = i
	}
	return ""
}

// mdsEntryJSON is what an import reads of an entry itself: the identifiers, the description
// and the status reports. The rest stays in the entry's JSON.
type mdsEntryJSON struct {
	AAID              string   `json:"aaid"`
	AAGUID            string   `json:"aaguid"`
	KeyIdentifiers    []string `json:"attestationCertificateKeyIdentifiers"`
	MetadataStatement struct {
		Description string `json:"description"`
	} `json:"metadataStatement"`
	StatusReports []struct {
		Status        metadata.AuthenticatorStatus `json:"status"`
		EffectiveDate string                       `json:"effectiveDate"`
		SunsetDate    string                       `json:"sunsetDate"`
	} `json:"statusReports"`
}

// mdsEntryOf reads one entry: its identifiers, description and latest status (see
// latestStatusReport), and whether go-webauthn's full parser takes it.
//
// That parser refuses real entries for faults in parts a look-up by status does not use (5 of
// the 98 entries of production BLOB 9: an attestation root with a negative serial number, a
// malformed getInfo AAGUID; every entry of the conformance BLOB: getInfo options as strings),
// and go-webauthn's own fetcher then drops the entry. Dropping it would also drop its status
// reports, so that a REVOKED model would pass as unknown: the entry is kept, and
// StatementError says why its statement (attestation roots included) cannot be used.
func mdsEntryOf(raw json.RawMessage, at time.Time) (persistence.MDSEntry, error) {
	var j mdsEntryJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return persistence.MDSEntry{}, fmt.Errorf("not an MDS3 entry: %w", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return persistence.MDSEntry{}, err
	}
	e := persistence.MDSEntry{AAID: j.AAID, Description: j.MetadataStatement.Description, Entry: compact.Bytes()}
	if j.AAGUID != "" {
		aaguid, err := uuid.Parse(j.AAGUID)
		if err != nil || len(j.AAGUID) != 36 {
			return persistence.MDSEntry{}, fmt.Errorf("its AAGUID %q is not in the 8-4-4-4-12 form", j.AAGUID)
		}
		if aaguid != uuid.Nil {
			e.AAGUID = aaguid.String()
		}
	}
	for _, id := range j.KeyIdentifiers {
		e.KeyIdentifiers = append(e.KeyIdentifiers, strings.ToLower(id))
	}
	reports := make([]metadata.StatusReport, len(j.StatusReports))
	for i, r := range j.StatusReports {
		reports[i].Status = r.Status
		for _, d := range []struct {
			text string
			into **time.Time
		}{{r.EffectiveDate, &reports[i].EffectiveDate}, {r.SunsetDate, &reports[i].SunsetDate}} {
			if d.text == "" {
				continue
			}
			t, err := time.Parse(time.DateOnly, d.text)
			if err != nil {
				return persistence.MDSEntry{}, fmt.Errorf("status report %d: date %q is not YYYY-MM-DD", i, d.text)
			}
			*d.into = &t
		}
	}
	if report := latestStatusReport(reports, at); report != nil {
		e.Status = string(report.Status)
		if report.EffectiveDate != nil {
			e.StatusDate = *report.EffectiveDate
		}
	}
	if _, err := parseMDSEntry(e); err != nil {
		e.StatementError = err.Error()
	}
	if err := persistence.ValidateMDSEntry(e); err != nil {
		return persistence.MDSEntry{}, err
	}
	return e, nil
}

// latestStatusReport is the report that states an entry's latest status, for listings: the
// last by effective date (ties to the later in the list, as go-webauthn's
// CurrentStatusReportAt chooses) among those not sunset at at. Unlike CurrentStatusReportAt it
// counts reports that take effect after at, so that a listing shows a revocation to come; the
// ceremonies judge the status reports themselves, at their own clock.
func latestStatusReport(reports []metadata.StatusReport, at time.Time) *metadata.StatusReport {
	var latest *metadata.StatusReport
	for i := range reports {
		r := &reports[i]
		if r.SunsetDate != nil && !r.SunsetDate.After(at) {
			continue
		}
		if latest == nil || latest.EffectiveDate == nil || r.EffectiveDate == nil || !r.EffectiveDate.Before(*latest.EffectiveDate) {
			latest = r
		}
	}
	return latest
}

// parseMDSEntry turns a stored entry into go-webauthn's form, for the ceremonies that consult
// its statement (attestation roots); it fails for the entries whose StatementError says why.
func parseMDSEntry(e persistence.MDSEntry) (metadata.Entry, error) {
	var j metadata.EntryJSON
	if err := json.Unmarshal(e.Entry, &j); err != nil {
		return metadata.Entry{}, err
	}
	return j.Parse()
}
