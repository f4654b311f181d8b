package persistence

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/webauthnd/webauthnd/messages"
)

// maxIDLength bounds identifiers (tenant, community, license ids).
const maxIDLength = 128

// ValidID reports whether s can name a tenant, community or license: 1 to 128 characters of
// letters, digits and - _ . (no separators that the key layout uses).
func ValidID(s string) bool {
	if s == "" || len(s) > maxIDLength {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func invalid(format string, a ...any) error {
	return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf(format, a...))
}

// ValidateCommunity checks a community's invariants: every RP ID is a domain (not an IP
// address, not a public suffix) and a registrable suffix of every origin's host; every origin
// is https, except http://localhost[:port].
func ValidateCommunity(c Community) error {
	if !ValidID(c.ID) {
		return invalid("community id %q: use 1-128 letters, digits, '-', '_' or '.'", c.ID)
	}
	if !ValidID(c.TenantID) {
		return invalid("tenant id %q: use 1-128 letters, digits, '-', '_' or '.'", c.TenantID)
	}
	if len(c.RPIDs) == 0 {
		return invalid("a community needs an RP ID")
	}
	if len(c.Origins) == 0 {
		return invalid("a community needs at least one origin")
	}
	switch c.UserVerification {
	case VerificationRequired, VerificationPreferred, VerificationDiscouraged:
	default:
		return invalid("user verification %q: use required, preferred or discouraged", c.UserVerification)
	}
	switch c.AttestationTrust {
	case "", AttestationTrustAny, AttestationTrustRequired:
	default:
		return invalid("attestation trust %q: use any or required", c.AttestationTrust)
	}
	hosts := make([]string, 0, len(c.Origins))
	for _, o := range append(slices.Clone(c.Origins), c.TopOrigins...) {
		host, err := checkOrigin(o)
		if err != nil {
			return err
		}
		hosts = append(hosts, host)
	}
	hosts = hosts[:len(c.Origins)]
	for _, rpID := range c.RPIDs {
		if err := checkRPID(rpID); err != nil {
			return err
		}
		for i, h := range hosts {
			if h != rpID && !strings.HasSuffix(h, "."+rpID) {
				return invalid("RP ID %q is not a registrable suffix of origin %q", rpID, c.Origins[i])
			}
		}
	}
	return nil
}

func checkOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || origin != u.Scheme+"://"+u.Host || strings.HasSuffix(u.Host, ":") {
		return "", invalid("origin %q: give scheme://host[:port] and nothing more", origin)
	}
	if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
		return "", invalid("origin %q: leave out the default port, as browsers do", origin)
	}
	host := u.Hostname()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && host == "localhost":
	default:
		return "", invalid("origin %q: origins must be https (http only for localhost)", origin)
	}
	if strings.ToLower(host) != host {
		return "", invalid("origin %q: write the host in lower case", origin)
	}
	return host, nil
}

func checkRPID(rpID string) error {
	if rpID == "" || strings.ToLower(rpID) != rpID || strings.HasSuffix(rpID, ".") {
		return invalid("RP ID %q: give a lower-case domain name", rpID)
	}
	if net.ParseIP(strings.Trim(rpID, "[]")) != nil {
		return invalid("RP ID %q is an IP address; WebAuthn needs a domain", rpID)
	}
	if rpID == "localhost" {
		return nil
	}
	if suffix, _ := publicsuffix.PublicSuffix(rpID); suffix == rpID {
		return invalid("RP ID %q is a public suffix, not a registrable domain", rpID)
	}
	return nil
}

// CanonicalHost is a tenant host name as stored and looked up: lower case, without a :port
// suffix. Anything that is not a plain host name is refused.
func CanonicalHost(s string) (string, error) {
	host := strings.ToLower(strings.TrimSpace(s))
	if h, port, err := net.SplitHostPort(host); err == nil {
		if _, perr := strconv.ParseUint(port, 10, 16); perr != nil {
			return "", invalid("host name %q: the port must be a number", s)
		}
		host = h
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, ":/\\@?#[]") || strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", invalid("host name %q: give a plain host name such as login.example.com", s)
	}
	return host, nil
}

// ValidateLicense checks a license's level and scope.
func ValidateLicense(l License) error {
	if !ValidID(l.ID) || len(l.KeyHash) != 32 {
		return invalid("a license needs an id and the SHA-256 of its key")
	}
	switch l.Level {
	case LevelCommunity:
		if l.CommunityID == "" {
			return invalid("a community license needs --community")
		}
	case LevelService:
		if l.TenantID == "" {
			return invalid("a service license needs --tenant")
		}
	case LevelSystem:
	default:
		return invalid("license level %q: use community, service or system", l.Level)
	}
	if !l.Expires.IsZero() && l.Expires.Before(time.Now()) {
		return invalid("the license would already be expired")
	}
	return nil
}

// NewLicense makes a license with a fresh random key (256 bits). It returns the record, which
// holds only the key's hash, and the key, which is shown once and never stored.
func NewLicense(level, communityID, tenantID string, expiresIn time.Duration) (License, string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return License{}, "", err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return License{}, "", err
	}
	k := base64.RawURLEncoding.EncodeToString(key)
	l := License{
		ID: "lic_" + hex.EncodeToString(id), KeyHash: HashLicenseKey(k), Level: level,
		CommunityID: communityID, TenantID: tenantID, Created: time.Now().UTC(),
	}
	if expiresIn > 0 {
		l.Expires = l.Created.Add(expiresIn)
	}
	return l, k, ValidateLicense(l)
}

// CanonicalAAGUID returns an AAGUID in the form records are stored and looked up in: 36
// characters, lower-case hex in groups of 8-4-4-4-12 separated by '-'. It accepts that form in
// any case, and refuses anything else (braces, urn:uuid:, no hyphens).
func CanonicalAAGUID(s string) (string, error) {
	if len(s) != 36 {
		return "", invalid("an AAGUID is 36 characters: 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
	}
	out := []byte(strings.ToLower(s))
	for i, c := range out {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", invalid("an AAGUID is 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
			}
		case !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f'):
			return "", invalid("an AAGUID is 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
		}
	}
	return string(out), nil
}

// FormatAAGUID writes a raw 16-byte AAGUID (as a credential holds it) in canonical form.
func FormatAAGUID(raw []byte) (string, error) {
	if len(raw) != 16 {
		return "", fmt.Errorf("an AAGUID is 16 bytes, not %d", len(raw))
	}
	h := hex.EncodeToString(raw)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// zeroAAGUID is what U2F authenticators, which have none, report.
const zeroAAGUID = "00000000-0000-0000-0000-000000000000"

// ValidateVendorRecord checks a record's invariants: a valid community id, a canonical non-zero
// AAGUID, a name and an updatedBy of 1 to 256 bytes of UTF-8 without control characters, and a
// metadata statement of 1 byte to MaxVendorMetadata. Whether the metadata is a statement for
// the AAGUID is checked before the write, by the caller (persistence does not parse statements).
func ValidateVendorRecord(r VendorRecord) error {
	if !ValidID(r.CommunityID) {
		return invalid("community id %q: use 1-128 letters, digits, '-', '_' or '.'", r.CommunityID)
	}
	aaguid, err := CanonicalAAGUID(r.AAGUID)
	switch {
	case err != nil:
		return err
	case aaguid != r.AAGUID:
		return invalid("the record's AAGUID is not in canonical (lower-case) form")
	case aaguid == zeroAAGUID:
		return errZeroAAGUID
	case r.Metadata == "":
		return invalid("metadata is required")
	case len(r.Metadata) > MaxVendorMetadata:
		return invalid("metadata is larger than 256 KiB")
	}
	if err := checkText("name", r.Name); err != nil {
		return err
	}
	return checkText("updatedBy", r.UpdatedBy)
}

// errZeroAAGUID refuses a record for the all-zero AAGUID.
var errZeroAAGUID = invalid("the all-zero AAGUID is what authenticators without one (U2F) report: " +
	"a community record cannot describe them; the FIDO MDS entries find them by attestation key identifier")

// checkText checks a short required text: 1 to 256 bytes of UTF-8 without control characters.
func checkText(field, v string) error {
	switch {
	case v == "":
		return invalid("%s is required", field)
	case len(v) > 256:
		return invalid("%s is longer than 256 bytes", field)
	case !utf8.ValidString(v):
		return invalid("%s is not valid UTF-8", field)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid("%s contains control characters", field)
	}
	return nil
}

// Limits of the stored records.
const (
	// MaxHandleLength and MaxCredentialIDLength are WebAuthn's limits on a user handle and a
	// credential id.
	MaxHandleLength       = 64
	MaxCredentialIDLength = 1023
	// MaxUsernameLength bounds a username (bytes, without NUL).
	MaxUsernameLength = 256
	// maxMDSEntryBytes bounds an MDS entry's JSON, maxMDSKeyIdentifier a key identifier.
	maxMDSEntryBytes    = 1 << 20
	maxMDSKeyIdentifier = 128
)

// CanonicalMDSAAGUID returns s in lower case, and true, when s is an AAGUID's canonical text in
// any case.
func CanonicalMDSAAGUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return "", false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return s, true
}

// ValidateMDSEntry checks what the key layout and the look-ups rely on: an AAGUID in canonical
// form and not all zeros (U2F entries have none), lower-case hex key identifiers of 1 to 128
// digits, at least one of AAGUID, key identifiers and AAID, texts of valid UTF-8 without NUL, and
// an entry that is a JSON object of at most 1 MiB.
func ValidateMDSEntry(e MDSEntry) error {
	if e.AAGUID != "" {
		if c, ok := CanonicalMDSAAGUID(e.AAGUID); !ok || c != e.AAGUID || c == "00000000-0000-0000-0000-000000000000" {
			return invalid("AAGUID %q is not a non-zero AAGUID in canonical lower-case form", e.AAGUID)
		}
	}
	for _, id := range e.KeyIdentifiers {
		if id == "" || len(id) > maxMDSKeyIdentifier || strings.Trim(id, "0123456789abcdef") != "" {
			return invalid("key identifier %q is not 1 to %d lower-case hex digits", id, maxMDSKeyIdentifier)
		}
	}
	switch {
	case e.AAGUID == "" && len(e.KeyIdentifiers) == 0 && e.AAID == "":
		return invalid("an MDS entry needs an AAGUID, key identifiers or an AAID")
	case !utf8.ValidString(e.AAID) || strings.ContainsRune(e.AAID, 0) || len(e.AAID) > 256:
		return invalid("AAID %q is not at most 256 bytes of UTF-8 without NUL", e.AAID)
	case !utf8.ValidString(e.Description) || len(e.Description) > 4096:
		return invalid("an MDS entry's description is at most 4096 bytes of UTF-8")
	case len(e.Entry) > maxMDSEntryBytes:
		return invalid("an MDS entry is at most 1 MiB of JSON")
	case len(bytes.TrimSpace(e.Entry)) == 0 || bytes.TrimSpace(e.Entry)[0] != '{' || !json.Valid(e.Entry):
		return invalid("an MDS entry's JSON is not an object")
	}
	return nil
}

// FidoKeyHash is how relying parties name a passkey: the SHA-256 of its raw credential id (its
// lowercase hex is the fidoKeyHash of registration results, tokens and link routes).
func FidoKeyHash(credentialID []byte) []byte {
	sum := sha256.Sum256(credentialID)
	return sum[:]
}

// ValidDID says whether s can be a DID here: "did:" and more, 5 to 512 bytes of UTF-8 without
// control characters. It can never be mistaken for a fidoKeyHash (64 hex digits).
func ValidDID(s string) bool {
	if len(s) < 5 || len(s) > 512 || !strings.HasPrefix(s, "did:") || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// HashLicenseKey is the SHA-256 under which a license key is stored.
func HashLicenseKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// StorableTime says whether every backend stores t exactly: the zero time, or a time whose Unix
// nanoseconds fit in an int64 and are not 0 (the years 1678 to 2262, but for the epoch itself,
// which the embedded store reads back as the zero time).
func StorableTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	min, max := time.Unix(0, math.MinInt64+1), time.Unix(0, math.MaxInt64)
	return t.After(min) && t.Before(max) && t.UnixNano() != 0
}
