package persistence_test

import (
	"net"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// FuzzCanonicalHost feeds untrusted host names (a tenant's --tenant-dns, a request's dns) to
// CanonicalHost. It must never panic, refuse with invalid_request, and what it accepts is a
// plain host name that canonicalizes to itself.
func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{"login.example.com", "Login.Example.COM:8443", "localhost:8080", " shop.localhost ",
		"[::1]:80", "10.0.0.1", "a:b:c", "x:", ":80", "https://evil.example/", "user@host", "host\x00x",
		strings.Repeat("a", 254), "ÉXAMPLE.com", "İ.example", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, err := persistence.CanonicalHost(s)
		if err != nil {
			if messages.ErrorCode(err) != messages.CodeInvalidRequest {
				t.Fatalf("CanonicalHost(%q) refused with %v", s, err)
			}
			return
		}
		if host == "" || len(host) > 253 || strings.ContainsAny(host, ":/\\@?#[] \x00") {
			t.Fatalf("CanonicalHost(%q) = %q, not a plain host name", s, host)
		}
		if again, err := persistence.CanonicalHost(host); err != nil || again != host {
			t.Fatalf("CanonicalHost(%q) = %q, but CanonicalHost(%q) = %q, %v", s, host, host, again, err)
		}
	})
}

// FuzzValidateCommunity feeds untrusted community definitions (from the admin socket and the
// command line) to ValidateCommunity. It must never panic, refuse with invalid_request, and
// what it accepts holds the invariants ceremonies rely on, checked here independently.
func FuzzValidateCommunity(f *testing.F) {
	f.Add("default", "default", "localhost", "http://localhost:8080", "", "preferred")
	f.Add("shop", "acme", "shop.example.com", "https://login.shop.example.com", "https://top.example.org", "required")
	f.Add("shop", "acme", "example.com", "https://example.com:8443", "", "discouraged")
	f.Add("x", "acme", "10.0.0.1", "https://10.0.0.1", "", "preferred")
	f.Add("x", "acme", "co.uk", "https://a.co.uk", "", "preferred")
	f.Add("x", "acme", "Example.com", "https://example.com", "", "preferred")
	f.Add("x", "acme", "example.com", "http://example.com", "", "preferred")
	f.Add("x", "acme", "example.com", "https://evil-example.com", "", "preferred")
	f.Add("x", "acme", "example.com", "https://example.com/path?q#f", "", "preferred")
	f.Add("x/y", "acme\x00", "example.com", "https://user@example.com", "javascript:alert(1)", "maybe")
	f.Fuzz(func(t *testing.T, id, tenant, rpID, origin, topOrigin, uv string) {
		c := persistence.Community{ID: id, TenantID: tenant, Name: id, RPIDs: []string{rpID}, Origins: []string{origin}, UserVerification: uv}
		if topOrigin != "" {
			c.TopOrigins = []string{topOrigin}
		}
		if err := persistence.ValidateCommunity(c); err != nil {
			if messages.ErrorCode(err) != messages.CodeInvalidRequest {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if !persistence.ValidID(id) || !persistence.ValidID(tenant) {
			t.Fatalf("accepted ids %q, %q", id, tenant)
		}
		switch uv {
		case persistence.VerificationRequired, persistence.VerificationPreferred, persistence.VerificationDiscouraged:
		default:
			t.Fatalf("accepted user verification %q", uv)
		}
		if rpID != strings.ToLower(rpID) || net.ParseIP(strings.Trim(rpID, "[]")) != nil {
			t.Fatalf("accepted RP ID %q", rpID)
		}
		if suffix, _ := publicsuffix.PublicSuffix(rpID); suffix == rpID && rpID != "localhost" {
			t.Fatalf("accepted the public suffix %q as RP ID", rpID)
		}
		for _, o := range append([]string{origin}, c.TopOrigins...) {
			u, err := url.Parse(o)
			if err != nil || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("accepted origin %q", o)
			}
			if u.Scheme != "https" && (u.Scheme != "http" || u.Hostname() != "localhost") {
				t.Fatalf("accepted origin %q: neither https nor http://localhost", o)
			}
		}
		if h := mustHost(t, origin); h != rpID && !strings.HasSuffix(h, "."+rpID) {
			t.Fatalf("accepted RP ID %q for origin %q", rpID, origin)
		}
	})
}

func mustHost(t *testing.T, origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname()
}
