package persistence

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

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
