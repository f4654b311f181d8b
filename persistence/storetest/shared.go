package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// RunShared runs the contract of two Store values over one database, as two nodes hold them,
// against the backend that open2 opens: a new, empty database for each test, with two stores
// over it (closed by what open2 registers with t.Cleanup). What one store writes, the other
// reads: at once for what no node caches, within a second for what it may cache (the
// configuration records, the keyrings, the vendor records and MDS entries, with their
// generations); and every single-use rule holds across both. Both stores must implement
// persistence.Ceremonies: a ceremony one node started, another finishes.
func RunShared(t *testing.T, open2 func(t *testing.T) (a, b persistence.Store)) {
	t.Run("changes through one are seen through the other within a second", func(t *testing.T) {
		testSharedFreshness(t, open2)
	})
	t.Run("single use across both", func(t *testing.T) {
		for _, tc := range oneWinsRaces(t) {
			t.Run(tc.name, func(t *testing.T) { runOneWins(t, tc, open2) })
		}
		for _, tc := range allAgreeRaces() {
			t.Run(tc.name, func(t *testing.T) { a, b := open2(t); runAllAgree(t, tc, a, b) })
		}
		t.Run("a request remembered through one is refused through the other", func(t *testing.T) {
			a, b := open2(t)
			op := persistence.RememberRequest{Caller: []byte("caller"), UUID: "u1", Until: time.Now().Add(time.Hour)}
			mustApply(t, a, op)
			wantRefusal(t, "the same request through b", applyErr(t, b, op), persistence.ErrRequestReplayed)
		})
		t.Run("sign-ins of one passkey through both: the stored counter is the highest", func(t *testing.T) {
			a, b := open2(t)
			c := seedCredential(t, a, 0)
			signInRace(t, a, b, c.ID, 50)
		})
		t.Run("a passkey registered through one signs in through the other", func(t *testing.T) {
			a, b := open2(t)
			c := seedCredential(t, a, 3)
			wantRefusal(t, "a regression through b", applyErr(t, b, persistence.RecordSignIn{ID: c.ID, Counter: 2, At: t1}), persistence.ErrCounterRegression)
			v := mustApply(t, b, persistence.RecordSignIn{ID: c.ID, Counter: 4, At: t1}).(persistence.Credential)
			if v.SignCount != 4 || !v.CloneWarning {
				t.Fatalf("sign-in through b = %+v, want SignCount 4 and the clone warning a set", v)
			}
			wantCredential(t, a, func() persistence.Credential { w := c; w.SignCount, w.LastUsed, w.CloneWarning = 4, t1, true; return w }())
		})
		t.Run("a ceremony put through one is taken exactly once across both", func(t *testing.T) {
			a, b := open2(t)
			ca, cb := ceremoniesOf(t, a), ceremoniesOf(t, b)
			c := ceremony("c1")
			mustPut(t, ca, c)
			wantExists(t, cb, "c1", true)
			takeRace(t, c, ca, cb)
		})
		t.Run("a ceremony put through one is taken through the other", func(t *testing.T) {
			a, b := open2(t)
			ca, cb := ceremoniesOf(t, a), ceremoniesOf(t, b)
			c := ceremony("c1")
			mustPut(t, ca, c)
			wantTaken(t, cb, c)
			wantExists(t, ca, "c1", false)
			wantNotTaken(t, ca, "c1")
		})
	})
}

// ceremoniesOf is the persistence.Ceremonies of a shared store.
func ceremoniesOf(t *testing.T, s persistence.Store) persistence.Ceremonies {
	t.Helper()
	cs, ok := s.(persistence.Ceremonies)
	if !ok {
		t.Fatalf("%T does not implement persistence.Ceremonies: over a shared database any node must finish any ceremony", s)
	}
	return cs
}

func testSharedFreshness(t *testing.T, open2 func(t *testing.T) (a, b persistence.Store)) {
	lic, licKey := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	rekeyed, rekeyedKey := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	rekeyed.ID = lic.ID
	on := true
	renamed := func(name string) func(t *testing.T, b persistence.Store) (bool, string) {
		return func(t *testing.T, b persistence.Store) (bool, string) {
			c, err := b.Community(t.Context(), "shop")
			return err == nil && c.Name == name, fmt.Sprintf("%+v, %s", c, describe(err))
		}
	}
	for _, tc := range []struct {
		name  string
		setup []persistence.Op                        // through a, before b reads
		warm  func(t *testing.T, b persistence.Store) // what b may cache
		write func(t *testing.T, a persistence.Store) // through a
		seen  func(t *testing.T, b persistence.Store) (bool, string)
		gen   func(s persistence.Store) uint64 // the generation of what changed, if it has one
	}{
		{name: "a community created",
			warm:  func(t *testing.T, b persistence.Store) { b.Community(t.Context(), "blog"); b.Empty(t.Context()) },
			write: func(t *testing.T, a persistence.Store) { seedCommunity(t, a, "blog") },
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				c, err := b.Community(t.Context(), "blog")
				return err == nil && c.ID == "blog", fmt.Sprintf("%+v, %s", c, describe(err))
			}},
		{name: "a community patched",
			warm: func(t *testing.T, b persistence.Store) { b.Community(t.Context(), "shop") },
			write: func(t *testing.T, a persistence.Store) {
				mustApply(t, a, persistence.PatchCommunity{ID: "shop", Name: "Renamed"})
			},
			seen: renamed("Renamed")},
		{name: "a community replaced",
			warm: func(t *testing.T, b persistence.Store) { b.Community(t.Context(), "shop") },
			write: func(t *testing.T, a persistence.Store) {
				c := community("shop")
				c.Name = "Replaced"
				mustApply(t, a, persistence.PutCommunity{Community: c})
			},
			seen: renamed("Replaced")},
		{name: "a community renamed, by name",
			warm: func(t *testing.T, b persistence.Store) { b.CommunityByName(t.Context(), "acme", "Renamed") },
			write: func(t *testing.T, a persistence.Store) {
				mustApply(t, a, persistence.PatchCommunity{ID: "shop", Name: "Renamed"})
			},
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				c, err := b.CommunityByName(t.Context(), "acme", "Renamed")
				return err == nil && c.ID == "shop", fmt.Sprintf("%+v, %s", c, describe(err))
			}},
		{name: "a tenant's new host",
			warm: func(t *testing.T, b persistence.Store) {
				b.Tenant(t.Context(), "acme")
				b.TenantByDNS(t.Context(), "new.example")
			},
			write: func(t *testing.T, a persistence.Store) {
				mustApply(t, a, putTenant("acme", "", time.Time{}, "new.example"))
			},
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				tn, err := b.TenantByDNS(t.Context(), "new.example")
				tn2, err2 := b.Tenant(t.Context(), "acme")
				return err == nil && tn.ID == "acme" && err2 == nil && same(tn2.DNS, []string{"new.example"}),
					fmt.Sprintf("%+v, %s; %+v, %s", tn, describe(err), tn2, describe(err2))
			}},
		{name: "a license created", setup: nil,
			warm:  func(t *testing.T, b persistence.Store) { b.LicenseByKey(t.Context(), licKey) },
			write: func(t *testing.T, a persistence.Store) { mustApply(t, a, persistence.PutLicense{License: lic}) },
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				l, err := b.LicenseByKey(t.Context(), licKey)
				return err == nil && same(l, lic), fmt.Sprintf("%+v, %s", l, describe(err))
			}},
		{name: "a license revoked", setup: []persistence.Op{persistence.PutLicense{License: lic}},
			warm:  func(t *testing.T, b persistence.Store) { b.LicenseByKey(t.Context(), licKey) },
			write: func(t *testing.T, a persistence.Store) { mustApply(t, a, persistence.RevokeLicense{ID: lic.ID}) },
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				l, err := b.LicenseByKey(t.Context(), licKey)
				return err == nil && l.Disabled, fmt.Sprintf("%+v, %s", l, describe(err))
			}},
		{name: "a license re-keyed: the old key stops working", setup: []persistence.Op{persistence.PutLicense{License: lic}},
			warm: func(t *testing.T, b persistence.Store) { b.LicenseByKey(t.Context(), licKey) },
			write: func(t *testing.T, a persistence.Store) {
				mustApply(t, a, persistence.PutLicense{License: rekeyed, Rekey: true})
			},
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				_, err := b.LicenseByKey(t.Context(), licKey)
				l, err2 := b.LicenseByKey(t.Context(), rekeyedKey)
				return errors.Is(err, persistence.ErrNotFound) && err2 == nil && same(l, rekeyed),
					fmt.Sprintf("old key: %s; new key: %+v, %s", describe(err), l, describe(err2))
			}},
		{name: "a key rotated: the keyring and its generation",
			setup: []persistence.Op{persistence.RotateKey{Name: "token", New: key("one", t0)}},
			warm:  func(t *testing.T, b persistence.Store) { b.Keyring(t.Context(), "token") },
			write: func(t *testing.T, a persistence.Store) {
				mustApply(t, a, persistence.RotateKey{Name: "token", New: key("two", t1), Keep: time.Hour})
			},
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				k, err := b.Keyring(t.Context(), "token")
				return err == nil && len(k.Keys) == 2 && string(k.Keys[0].Private) == "two", fmt.Sprintf("%+v, %s", k, describe(err))
			},
			gen: persistence.Store.KeyringGeneration},
		{name: "a vendor record written",
			setup: []persistence.Op{persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}},
			warm: func(t *testing.T, b persistence.Store) {
				b.VendorRecord(t.Context(), "shop", yubikey)
				b.VendorRecordsOf(t.Context(), "shop", nil)
			},
			write: func(t *testing.T, a persistence.Store) {
				mustApply(t, a, persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"})
			},
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				r, err := b.VendorRecord(t.Context(), "shop", yubikey)
				return err == nil && r.Disabled, fmt.Sprintf("%+v, %s", r, describe(err))
			},
			gen: persistence.Store.VendorGeneration},
		{name: "an MDS BLOB imported",
			write: func(t *testing.T, a persistence.Store) { mustReplaceMDS(t, a, 2, mdsSet("two", 3, 10), false) },
			warm:  func(t *testing.T, b persistence.Store) { b.MDSEntries(t.Context()) },
			seen: func(t *testing.T, b persistence.Store) (bool, string) {
				blob, entries, err := b.MDSEntries(t.Context())
				return err == nil && blob.Number == 2 && len(entries) == 3 && entries[0].Description == "two" && b.MDSGeneration() == blob.Generation,
					fmt.Sprintf("BLOB %+v, %s; MDSGeneration %d", blob, describe(err), b.MDSGeneration())
			},
			gen: persistence.Store.MDSGeneration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open2(t)
			seedShop(t, a)
			mustReplaceMDS(t, a, 1, mdsSet("one", 3, 10), false)
			mustApplyAll(t, a, tc.setup...)
			// b is a node that has been serving: it read what it reads, and its generations
			// are current.
			eventually(t, fresh, "b sees a's generations", func() (bool, string) {
				return a.MDSGeneration() == b.MDSGeneration(), fmt.Sprintf("a's MDS generation %d, b's %d", a.MDSGeneration(), b.MDSGeneration())
			})
			tc.warm(t, b)
			var gens uint64
			if tc.gen != nil {
				gens = tc.gen(b)
			}
			tc.write(t, a)
			eventually(t, fresh, "b sees the change", func() (bool, string) { return tc.seen(t, b) })
			// A cache that checks b's generation knows it is stale.
			if tc.gen != nil {
				eventually(t, fresh, "b's generation changes", func() (bool, string) {
					return tc.gen(b) != gens, fmt.Sprintf("still %d", gens)
				})
			}
		})
	}

	t.Run("records no node caches are read at once", func(t *testing.T) {
		a, b := open2(t)
		seedShop(t, a)
		c := addCredential(t, a, credential("c1", user("shop", "alice", "ha")))
		wantCredential(t, b, c)
		wantCredentialsOf(t, b, "shop", "alice", c)
		if u := readUser(t, b, "shop", "alice"); string(u.Handle) != "ha" {
			t.Fatalf("User(alice) through b = %+v", u)
		}
		mustApply(t, a, persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("x")})
		wantSecret(t, b, "signing", "x")
		mustApply(t, b, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("c1")})
		wantNoCredential(t, a, "c1")
	})
}
