package storetest

import (
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// The generations let a cache check with one atomic load whether it is still current. The
// rule every backend keeps: a generation has changed by the time Apply (or ReplaceMDS)
// returns from committing a write of what it covers, so that a reader that loads it after the
// write sees a new value. Any other batch may change it too, a refused write of what it covers
// included: a needless change costs a cache one re-read. (The embedded store changes the
// vendor generation after every batch that ran a vendor op, accepted or refused, and after no
// other; the MDS generation is the imported BLOB's, and only an import changes it.)
func testGenerations(t *testing.T, open Opener) {
	on := true
	for _, tc := range []struct {
		name  string
		setup []persistence.Op
		batch []persistence.Op
		gen   func(s persistence.Store) uint64
	}{
		{"VendorGeneration changes after a committed put", nil,
			[]persistence.Op{persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}},
			persistence.Store.VendorGeneration},
		{"VendorGeneration changes after a committed patch",
			[]persistence.Op{persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}},
			[]persistence.Op{persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"}},
			persistence.Store.VendorGeneration},
		{"VendorGeneration changes after a batch with a committed vendor write among refused ones", nil,
			[]persistence.Op{
				persistence.PutVendorMetadata{Record: vendorRecord("nowhere", yubikey)},
				persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")},
				persistence.PutVendorMetadata{Record: vendorRecord("shop", hello)},
			},
			persistence.Store.VendorGeneration},
		{"KeyringGeneration changes after the first key", nil,
			[]persistence.Op{persistence.RotateKey{Name: "token", New: key("one", t0)}},
			persistence.Store.KeyringGeneration},
		{"KeyringGeneration changes after a rotation",
			[]persistence.Op{persistence.RotateKey{Name: "token", New: key("one", t0)}},
			[]persistence.Op{persistence.RotateKey{Name: "token", New: key("two", t1), Keep: time.Hour}},
			persistence.Store.KeyringGeneration},
		{"KeyringGeneration changes after a keyring of another name",
			[]persistence.Op{persistence.RotateKey{Name: "token", New: key("one", t0)}},
			[]persistence.Op{persistence.RotateKey{Name: "envelope", New: key("two", t1), OnlyIfAbsent: true}},
			persistence.Store.KeyringGeneration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			seedShop(t, s)
			mustApplyAll(t, s, tc.setup...)
			before := tc.gen(s)
			apply(t, s, tc.batch...)
			if after := tc.gen(s); after == before {
				t.Fatalf("the generation is still %d", after)
			}
		})
	}

	t.Run("MDSGeneration is the imported BLOB's, changed by each import and by nothing else", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		if g := s.MDSGeneration(); g != 0 {
			t.Fatalf("MDSGeneration before any import = %d, want 0", g)
		}
		seen := map[uint64]bool{0: true}
		for i, number := range []int{3, 4, 2} {
			b := mustReplaceMDS(t, s, number, mdsSet("x", 3, 0), i == 2)
			if seen[b.Generation] || s.MDSGeneration() != b.Generation {
				t.Fatalf("import %d: Generation %d, MDSGeneration %d; want a new generation, the same in both", i, b.Generation, s.MDSGeneration())
			}
			seen[b.Generation] = true
		}
		g := s.MDSGeneration()
		if _, err := s.ReplaceMDS(t.Context(), blob(1), mdsSet("x", 3, 0), false); err == nil {
			t.Fatal("an import of a lower number was accepted")
		}
		mustApplyAll(t, s, persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}, persistence.PatchCommunity{ID: "shop", Name: "x"})
		if s.MDSGeneration() != g {
			t.Fatalf("MDSGeneration moved from %d to %d without an import", g, s.MDSGeneration())
		}
	})
}

// Whatever a backend caches, a read after Apply returned sees the write, in the store that
// wrote it (RunShared checks the others).
func testCaches(t *testing.T, open Opener) {
	lic, licKey := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	rekeyed, rekeyedKey := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	rekeyed.ID = lic.ID
	on := true
	for _, tc := range []struct {
		name  string
		setup []persistence.Op
		warm  func(t *testing.T, s persistence.Store) // reads what a cache may keep
		write []persistence.Op
		check func(t *testing.T, s persistence.Store)
	}{
		{"Community after a patch", nil,
			func(t *testing.T, s persistence.Store) { s.Community(t.Context(), "shop") },
			[]persistence.Op{persistence.PatchCommunity{ID: "shop", Name: "Renamed"}},
			func(t *testing.T, s persistence.Store) {
				if c, err := s.Community(t.Context(), "shop"); err != nil || c.Name != "Renamed" {
					t.Fatalf("Community(shop) = %+v, %s; want it renamed", c, describe(err))
				}
			}},
		{"Community after a replacement", nil,
			func(t *testing.T, s persistence.Store) { s.Community(t.Context(), "shop") },
			[]persistence.Op{persistence.PutCommunity{Community: func() persistence.Community { c := community("shop"); c.BlockClones = true; return c }()}},
			func(t *testing.T, s persistence.Store) {
				if c, err := s.Community(t.Context(), "shop"); err != nil || !c.BlockClones {
					t.Fatalf("Community(shop) = %+v, %s; want it blocking clones", c, describe(err))
				}
			}},
		{"Community after its creation", nil,
			func(t *testing.T, s persistence.Store) { s.Community(t.Context(), "blog") },
			[]persistence.Op{persistence.PutCommunity{Community: community("blog"), Create: true}},
			func(t *testing.T, s persistence.Store) {
				if _, err := s.Community(t.Context(), "blog"); err != nil {
					t.Fatalf("Community(blog): %s", describe(err))
				}
			}},
		{"CommunityByName after a rename", nil,
			func(t *testing.T, s persistence.Store) { s.CommunityByName(t.Context(), "acme", "Community shop") },
			[]persistence.Op{persistence.PatchCommunity{ID: "shop", Name: "Renamed"}},
			func(t *testing.T, s persistence.Store) {
				_, err := s.CommunityByName(t.Context(), "acme", "Community shop")
				wantNotFound(t, "CommunityByName of the old name", err)
				if c, err := s.CommunityByName(t.Context(), "acme", "Renamed"); err != nil || c.ID != "shop" {
					t.Fatalf("CommunityByName(Renamed) = %+v, %s", c, describe(err))
				}
			}},
		{"Tenant and TenantByDNS after a host is added", nil,
			func(t *testing.T, s persistence.Store) {
				s.Tenant(t.Context(), "acme")
				s.TenantByDNS(t.Context(), "new.example")
			},
			[]persistence.Op{putTenant("acme", "", time.Time{}, "new.example")},
			func(t *testing.T, s persistence.Store) {
				if tn := tenant(t, s, "acme"); !same(tn.DNS, []string{"new.example"}) {
					t.Fatalf("Tenant(acme) = %+v, want host new.example", tn)
				}
				wantTenantOfHost(t, s, "new.example", "acme")
			}},
		{"LicenseByKey after a revocation", []persistence.Op{persistence.PutLicense{License: lic}},
			func(t *testing.T, s persistence.Store) { s.LicenseByKey(t.Context(), licKey) },
			[]persistence.Op{persistence.RevokeLicense{ID: lic.ID}},
			func(t *testing.T, s persistence.Store) {
				if l, err := s.LicenseByKey(t.Context(), licKey); err != nil || !l.Disabled {
					t.Fatalf("LicenseByKey = %+v, %s; want it disabled", l, describe(err))
				}
			}},
		{"LicenseByKey after a rekey", []persistence.Op{persistence.PutLicense{License: lic}},
			func(t *testing.T, s persistence.Store) {
				s.LicenseByKey(t.Context(), licKey)
				s.LicenseByKey(t.Context(), rekeyedKey)
			},
			[]persistence.Op{persistence.PutLicense{License: rekeyed, Rekey: true}},
			func(t *testing.T, s persistence.Store) {
				wantNoLicense(t, s, licKey)
				wantLicense(t, s, rekeyedKey, rekeyed)
			}},
		{"Keyring after a rotation", []persistence.Op{persistence.RotateKey{Name: "token", New: key("one", t0)}},
			func(t *testing.T, s persistence.Store) { s.Keyring(t.Context(), "token") },
			[]persistence.Op{persistence.RotateKey{Name: "token", New: key("two", t1), Keep: time.Hour}},
			func(t *testing.T, s persistence.Store) {
				if k, err := s.Keyring(t.Context(), "token"); err != nil || len(k.Keys) != 2 || string(k.Keys[0].Private) != "two" {
					t.Fatalf("Keyring(token) = %+v, %s; want the new key first", k, describe(err))
				}
			}},
		{"VendorRecord after a patch", []persistence.Op{persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}},
			func(t *testing.T, s persistence.Store) { s.VendorRecord(t.Context(), "shop", yubikey) },
			[]persistence.Op{persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"}},
			func(t *testing.T, s persistence.Store) {
				if r, err := s.VendorRecord(t.Context(), "shop", yubikey); err != nil || !r.Disabled {
					t.Fatalf("VendorRecord = %+v, %s; want it disabled", r, describe(err))
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			seedShop(t, s)
			mustApplyAll(t, s, tc.setup...)
			tc.warm(t, s)
			mustApplyAll(t, s, tc.write...)
			tc.check(t, s)
		})
	}
}
