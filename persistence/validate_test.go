package persistence_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

func TestValidateCommunity(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *persistence.Community)
		ok     bool
	}{
		{"the base community", func(c *persistence.Community) {}, true},
		{"RP ID is an IPv4 address", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"192.0.2.1"}, []string{"https://192.0.2.1"}
		}, false},
		{"RP ID is an IPv6 address", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"2001:db8::1"}, []string{"https://[2001:db8::1]"}
		}, false},
		{"RP ID is a bracketed IPv6 address", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"[::1]"}, []string{"https://[::1]"}
		}, false},
		{"RP ID is the public suffix com", func(c *persistence.Community) {
			c.RPIDs = []string{"com"}
		}, false},
		{"RP ID is the public suffix co.uk", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"co.uk"}, []string{"https://shop.co.uk"}
		}, false},
		{"RP ID under co.uk is registrable", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"shop.co.uk"}, []string{"https://shop.co.uk", "https://www.shop.co.uk"}
		}, true},
		{"RP ID is not a suffix of an origin", func(c *persistence.Community) {
			c.Origins = []string{"https://example.com", "https://example.org"}
		}, false},
		{"origin host only ends with the RP ID's letters", func(c *persistence.Community) {
			c.Origins = []string{"https://badexample.com"}
		}, false},
		{"RP ID is a subdomain of the origin", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"login.example.com"}, []string{"https://example.com"}
		}, false},
		{"every RP ID must cover every origin", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"example.com", "example.org"}, []string{"https://example.com", "https://example.org"}
		}, false},
		{"nested RP IDs covering every origin", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"example.com", "login.example.com"}, []string{"https://a.login.example.com"}
		}, true},
		{"subdomain origin with the parent RP ID", func(c *persistence.Community) {
			c.Origins = []string{"https://a.b.example.com:8443"}
		}, true},
		{"http origin that is not localhost", func(c *persistence.Community) {
			c.Origins = []string{"http://example.com"}
		}, false},
		{"http://localhost:3000 with RP ID localhost", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"localhost"}, []string{"http://localhost:3000"}
		}, true},
		{"https://localhost with RP ID localhost", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"localhost"}, []string{"https://localhost"}
		}, true},
		{"http://127.0.0.1 is not localhost", func(c *persistence.Community) {
			c.RPIDs, c.Origins = []string{"localhost"}, []string{"http://127.0.0.1:3000"}
		}, false},
		{"origin with a path", func(c *persistence.Community) {
			c.Origins = []string{"https://example.com/login"}
		}, false},
		{"origin with a trailing slash", func(c *persistence.Community) {
			c.Origins = []string{"https://example.com/"}
		}, false},
		{"origin with a query", func(c *persistence.Community) {
			c.Origins = []string{"https://example.com?a=b"}
		}, false},
		{"origin with a fragment", func(c *persistence.Community) {
			c.Origins = []string{"https://example.com#top"}
		}, false},
		{"origin with user info", func(c *persistence.Community) {
			c.Origins = []string{"https://user@example.com"}
		}, false},
		{"origin without a scheme", func(c *persistence.Community) {
			c.Origins = []string{"example.com"}
		}, false},
		{"origin with another scheme", func(c *persistence.Community) {
			c.Origins = []string{"ftp://example.com"}
		}, false},
		{"upper-case origin host", func(c *persistence.Community) {
			c.Origins = []string{"https://Example.com"}
		}, false},
		{"upper-case RP ID", func(c *persistence.Community) {
			c.RPIDs = []string{"Example.com"}
		}, false},
		{"RP ID with a trailing dot", func(c *persistence.Community) {
			c.RPIDs = []string{"example.com."}
		}, false},
		{"empty RP ID", func(c *persistence.Community) {
			c.RPIDs = []string{""}
		}, false},
		{"no RP IDs", func(c *persistence.Community) {
			c.RPIDs = nil
		}, false},
		{"empty origins", func(c *persistence.Community) {
			c.Origins = nil
		}, false},
		{"user verification required", func(c *persistence.Community) {
			c.UserVerification = persistence.VerificationRequired
		}, true},
		{"user verification discouraged", func(c *persistence.Community) {
			c.UserVerification = persistence.VerificationDiscouraged
		}, true},
		{"bad user verification value", func(c *persistence.Community) {
			c.UserVerification = "Required"
		}, false},
		{"empty user verification", func(c *persistence.Community) {
			c.UserVerification = ""
		}, false},
		{"community id with a slash", func(c *persistence.Community) {
			c.ID = "a/b"
		}, false},
		{"community id with a NUL", func(c *persistence.Community) {
			c.ID = "a\x00b"
		}, false},
		{"empty community id", func(c *persistence.Community) {
			c.ID = ""
		}, false},
		{"community id of 129 characters", func(c *persistence.Community) {
			c.ID = strings.Repeat("a", 129)
		}, false},
		{"community id of 128 characters with - _ .", func(c *persistence.Community) {
			c.ID = strings.Repeat("a", 125) + "-_."
		}, true},
		{"tenant id with a slash", func(c *persistence.Community) {
			c.TenantID = "acme/x"
		}, false},
		{"tenant id with a NUL", func(c *persistence.Community) {
			c.TenantID = "acme\x00"
		}, false},
		{"https top origin on another site", func(c *persistence.Community) {
			c.TopOrigins = []string{"https://portal.example.net"}
		}, true},
		{"http top origin", func(c *persistence.Community) {
			c.TopOrigins = []string{"http://portal.example.net"}
		}, false},
		{"upper-case top origin host", func(c *persistence.Community) {
			c.TopOrigins = []string{"https://Portal.example.net"}
		}, false},
		{"top origin with a path", func(c *persistence.Community) {
			c.TopOrigins = []string{"https://portal.example.net/app"}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := community("shop")
			tc.change(&c)
			err := persistence.ValidateCommunity(c)
			if tc.ok {
				if err != nil {
					t.Fatalf("ValidateCommunity(%+v) = %v, want nil", c, err)
				}
				return
			}
			wantCode(t, err, messages.CodeInvalidRequest)
		})
	}
}

// Origins are compared byte for byte with clientDataJSON.origin, so anything beyond
// scheme://host[:port] must be refused.
func TestValidateCommunityOriginsWithEmptyQueryOrFragment(t *testing.T) {
	for _, o := range []string{"https://example.com?", "https://example.com#", "https://example.com:"} {
		c := community("shop")
		c.Origins = []string{o}
		if err := persistence.ValidateCommunity(c); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"shop", true}, {"Shop-1_a.b", true}, {strings.Repeat("x", 128), true},
		{"", false}, {strings.Repeat("x", 129), false}, {"a/b", false}, {"a\x00b", false},
		{"a b", false}, {"é", false}, {"a:b", false},
	}
	for _, tc := range tests {
		if got := persistence.ValidID(tc.id); got != tc.ok {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
}

func TestValidateLicense(t *testing.T) {
	hash := persistence.HashLicenseKey("key")
	tests := []struct {
		name string
		l    persistence.License
		ok   bool
	}{
		{"community license with a community", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelCommunity, CommunityID: "shop"}, true},
		{"community license without a community", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelCommunity, TenantID: "acme"}, false},
		{"service license with a tenant", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelService, TenantID: "acme"}, true},
		{"service license without a tenant", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelService, CommunityID: "shop"}, false},
		{"system license", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelSystem}, true},
		{"unknown level", persistence.License{ID: "l1", KeyHash: hash, Level: "admin"}, false},
		{"empty level", persistence.License{ID: "l1", KeyHash: hash}, false},
		{"already expired", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelSystem, Expires: time.Now().Add(-time.Second)}, false},
		{"expires in the future", persistence.License{ID: "l1", KeyHash: hash, Level: persistence.LevelSystem, Expires: time.Now().Add(time.Hour)}, true},
		{"missing id", persistence.License{KeyHash: hash, Level: persistence.LevelSystem}, false},
		{"id with a slash", persistence.License{ID: "l/1", KeyHash: hash, Level: persistence.LevelSystem}, false},
		{"missing key hash", persistence.License{ID: "l1", Level: persistence.LevelSystem}, false},
		{"short key hash", persistence.License{ID: "l1", KeyHash: hash[:16], Level: persistence.LevelSystem}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := persistence.ValidateLicense(tc.l)
			if tc.ok {
				if err != nil {
					t.Fatalf("ValidateLicense = %v, want nil", err)
				}
				return
			}
			wantCode(t, err, messages.CodeInvalidRequest)
		})
	}
}

func TestNewLicense(t *testing.T) {
	t.Run("the record holds the key's hash, never the key", func(t *testing.T) {
		l, key, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(l.KeyHash, persistence.HashLicenseKey(key)) || len(l.KeyHash) != 32 {
			t.Fatalf("KeyHash = %x, want sha-256 of the key", l.KeyHash)
		}
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(key)) {
			t.Fatalf("license JSON %s contains the key %s", b, key)
		}
		raw, err := base64.RawURLEncoding.DecodeString(key)
		if err != nil {
			t.Fatalf("key %q is not unpadded base64url: %v", key, err)
		}
		if bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(raw))) {
			t.Fatalf("license JSON %s contains the key's bytes", b)
		}
		if l.Level != persistence.LevelCommunity || l.CommunityID != "shop" || l.TenantID != "" ||
			!persistence.ValidID(l.ID) || !l.Expires.Equal(l.Created.Add(24*time.Hour)) || l.Disabled {
			t.Fatalf("license = %+v", l)
		}
	})
	t.Run("keys carry at least 128 random bits and never repeat", func(t *testing.T) {
		keys, ids := map[string]bool{}, map[string]bool{}
		for range 1000 {
			l, key, err := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := base64.RawURLEncoding.DecodeString(key)
			if err != nil || len(raw)*8 < 128 {
				t.Fatalf("key %q decodes to %d bits (%v), want at least 128", key, len(raw)*8, err)
			}
			if keys[key] {
				t.Fatalf("key %q repeated", key)
			}
			if ids[l.ID] {
				t.Fatalf("license id %q repeated", l.ID)
			}
			keys[key], ids[l.ID] = true, true
		}
	})
	t.Run("no expiry unless asked", func(t *testing.T) {
		l, _, err := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
		if err != nil || !l.Expires.IsZero() {
			t.Fatalf("Expires = %v, %v; want zero", l.Expires, err)
		}
	})
	t.Run("an invalid scope is reported", func(t *testing.T) {
		_, _, err := persistence.NewLicense(persistence.LevelService, "", "", 0)
		wantCode(t, err, messages.CodeInvalidRequest)
	})
}

// CanonicalHost refuses anything that is not a plain host name.
func TestCanonicalHostRefusesAURL(t *testing.T) {
	for _, host := range []string{"https://example.com", "http://example.com:8080", "example.com:abc", "a:b:c"} {
		if got, err := persistence.CanonicalHost(host); err == nil {
			t.Errorf("CanonicalHost(%q) = %q, want an error", host, got)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"login.example.com", "login.example.com"},
		{"Login.Example.COM", "login.example.com"},
		{" login.example.com ", "login.example.com"},
		{"login.example.com:8443", "login.example.com"},
		{"localhost:3000", "localhost"},
	}
	for _, tc := range tests {
		if got, err := persistence.CanonicalHost(tc.in); err != nil || got != tc.want {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCanonicalAAGUID(t *testing.T) {
	for in, want := range map[string]string{
		yubikey:                                yubikey,
		strings.ToUpper(yubikey):               yubikey,
		"CB69481E-8ff7-4039-93ec-0A2729A154A8": yubikey,
		"00000000-0000-0000-0000-000000000000": "00000000-0000-0000-0000-000000000000",
	} {
		if got, err := persistence.CanonicalAAGUID(in); err != nil || got != want {
			t.Errorf("CanonicalAAGUID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "cb69481e8ff7403993ec0a2729a154a8", "{cb69481e-8ff7-4039-93ec-0a2729a154a}",
		"urn:uuid:cb69481e-8ff7-4039-93ec-0a2729a154a8", "cb69481e-8ff7-4039-93ec-0a2729a154ag", "cb69481e+8ff7-4039-93ec-0a2729a154a8",
		"cb69481e-8ff7-4039-93ec-0a2729a154a8 ", "cb69481e-8ff7-4039-93ec-0a2729a154a\u00e9"} {
		if got, err := persistence.CanonicalAAGUID(bad); err == nil {
			t.Errorf("CanonicalAAGUID(%q) = %q, want an error", bad, got)
		}
	}
	raw := []byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8}
	if got, err := persistence.FormatAAGUID(raw); err != nil || got != yubikey {
		t.Errorf("FormatAAGUID = %q, %v; want %s", got, err, yubikey)
	}
	if _, err := persistence.FormatAAGUID(raw[:15]); err == nil {
		t.Error("FormatAAGUID of 15 bytes: want an error")
	}
}

func TestUserShapeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds []persistence.Credential
	}{
		{"one passkey without transports", []persistence.Credential{{ID: make([]byte, 32)}}},
		{"two passkeys, any order", []persistence.Credential{{ID: make([]byte, 1023), Transports: []string{"usb", "nfc"}}, {ID: make([]byte, 16), Transports: []string{"internal"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := persistence.DecodeUserShape(persistence.UserShape(tc.creds))
			if err != nil || len(got) != len(tc.creds) {
				t.Fatalf("decode = %+v, %v", got, err)
			}
			for _, c := range tc.creds {
				found := false
				for _, s := range got {
					found = found || (s.IDLength == len(c.ID) && reflect.DeepEqual(s.Transports, c.Transports))
				}
				if !found {
					t.Fatalf("shape of %d-byte id %v missing from %+v", len(c.ID), c.Transports, got)
				}
			}
		})
	}
	if _, err := persistence.DecodeUserShape([]byte{0x10, 0x05, 0x02}); err == nil {
		t.Fatal("a truncated shape decoded")
	}
}
