package storetest

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// wantLicense fails the test unless key finds want.
func wantLicense(t *testing.T, s persistence.Store, key string, want persistence.License) {
	t.Helper()
	got, err := s.LicenseByKey(t.Context(), key)
	if err != nil {
		t.Fatalf("LicenseByKey(%s): %s", want.ID, describe(err))
	}
	wantSame(t, "LicenseByKey("+want.ID+")", got, want)
}

// wantNoLicense fails the test unless key finds no license.
func wantNoLicense(t *testing.T, s persistence.Store, key string) {
	t.Helper()
	got, err := s.LicenseByKey(t.Context(), key)
	wantNotFound(t, "LicenseByKey", err)
	if got.ID != "" {
		t.Fatalf("LicenseByKey returned %+v with ErrNotFound, want the zero License", got)
	}
}

// wantAllLicenses fails the test unless AllLicenses returns want, in any order.
func wantAllLicenses(t *testing.T, s persistence.Store, want ...persistence.License) {
	t.Helper()
	got, err := s.AllLicenses(t.Context())
	if err != nil {
		t.Fatalf("AllLicenses: %s", describe(err))
	}
	byID := func(a, b persistence.License) int { return strings.Compare(a.ID, b.ID) }
	got, want = slices.SortedFunc(slices.Values(got), byID), slices.SortedFunc(slices.Values(want), byID)
	wantSame(t, "AllLicenses", got, want)
}

func testPutLicense(t *testing.T, open Opener) {
	community, communityKey := newLicense(t, persistence.LevelCommunity, "shop", "", time.Hour)
	lost, lostKey := newLicense(t, persistence.LevelCommunity, "nope", "", 0)
	service, serviceKey := newLicense(t, persistence.LevelService, "", "acme", 0)
	orphan, orphanKey := newLicense(t, persistence.LevelService, "", "nobody", 0)
	system, systemKey := newLicense(t, persistence.LevelSystem, "", "", 0)
	twin, twinKey := newLicense(t, persistence.LevelSystem, "", "", 0)
	twin.ID = system.ID
	demo1, demoKey1 := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	demo2, demoKey2 := newLicense(t, persistence.LevelSystem, "", "", 0)
	demo1.ID, demo2.ID = "demo", "demo"

	stored := func(key string, l persistence.License) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, v any) {
			wantSame(t, "result", v, l)
			wantLicense(t, s, key, l)
			wantAllLicenses(t, s, l)
		}
	}
	refused := func(key string) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, _ any) {
			wantNoLicense(t, s, key)
			wantAllLicenses(t, s)
		}
	}
	invalid := func(edit func(l *persistence.License)) persistence.PutLicense {
		l := system
		edit(&l)
		return persistence.PutLicense{License: l}
	}
	cases := []opCase{
		{name: "a community license of an existing community", op: persistence.PutLicense{License: community}, after: stored(communityKey, community)},
		{name: "a community license of an unknown community is refused", op: persistence.PutLicense{License: lost},
			want: persistence.CommunityUnknown("nope"), after: refused(lostKey)},
		{name: "a service license of an existing tenant", op: persistence.PutLicense{License: service}, after: stored(serviceKey, service)},
		{name: "a service license of an unknown tenant is refused", op: persistence.PutLicense{License: orphan},
			want: persistence.TenantMissing("nobody"), after: refused(orphanKey)},
		{name: "a system license", op: persistence.PutLicense{License: system}, after: stored(systemKey, system)},
		{name: "a license id that exists is refused, and the first key keeps working",
			setup: []persistence.Op{persistence.PutLicense{License: system}}, op: persistence.PutLicense{License: twin},
			want: persistence.ErrLicenseIDExists,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantLicense(t, s, systemKey, system)
				wantNoLicense(t, s, twinKey)
				wantAllLicenses(t, s, system)
			}},
		{name: "Rekey creates a license that does not exist", op: persistence.PutLicense{License: demo1, Rekey: true}, after: stored(demoKey1, demo1)},
		{name: "Rekey replaces the license of the id: the old key stops working",
			setup: []persistence.Op{persistence.PutLicense{License: demo1, Rekey: true}}, op: persistence.PutLicense{License: demo2, Rekey: true},
			after: func(t *testing.T, s persistence.Store, v any) {
				stored(demoKey2, demo2)(t, s, v)
				wantNoLicense(t, s, demoKey1)
			}},
		{name: "Rekey of a revoked license enables it with its new key",
			setup: []persistence.Op{persistence.PutLicense{License: demo1}, persistence.RevokeLicense{ID: "demo"}},
			op:    persistence.PutLicense{License: demo2, Rekey: true},
			after: func(t *testing.T, s persistence.Store, v any) {
				stored(demoKey2, demo2)(t, s, v)
				wantNoLicense(t, s, demoKey1)
			}},
		{name: "an unknown level is refused as Check refuses it", op: invalid(func(l *persistence.License) { l.Level = "root" }), want: byCheck, after: refused(systemKey)},
		{name: "an expired license is refused as Check refuses it", op: invalid(func(l *persistence.License) { l.Expires = time.Now().Add(-time.Minute) }),
			want: byCheck, after: refused(systemKey)},
		{name: "a key hash that is no SHA-256 is refused as Check refuses it", op: invalid(func(l *persistence.License) { l.KeyHash = l.KeyHash[:16] }),
			want: byCheck, after: refused(systemKey)},
		{name: "an id that is no id is refused as Check refuses it", op: invalid(func(l *persistence.License) { l.ID = "lic/1" }), want: byCheck, after: refused(systemKey)},
		{name: "a community license without a community is refused as Check refuses it",
			op: invalid(func(l *persistence.License) { l.Level = persistence.LevelCommunity }), want: byCheck, after: refused(systemKey)},
	}
	runOps(t, open, seedShop, cases)
}

func testRevokeLicense(t *testing.T, open Opener) {
	l, key := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	other, otherKey := newLicense(t, persistence.LevelSystem, "", "", 0)
	demo1, demoKey1 := newLicense(t, persistence.LevelSystem, "", "", 0)
	demo2, demoKey2 := newLicense(t, persistence.LevelSystem, "", "", 0)
	demo1.ID, demo2.ID = "demo", "demo"
	disabled := func(l persistence.License) persistence.License { l.Disabled = true; return l }
	seed := func(t *testing.T, s persistence.Store) {
		seedShop(t, s)
		mustApplyAll(t, s, persistence.PutLicense{License: l}, persistence.PutLicense{License: other})
	}
	runOps(t, open, seed, []opCase{
		{name: "disables the license: its key finds it disabled", op: persistence.RevokeLicense{ID: l.ID},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, disabled(l))
				wantLicense(t, s, key, disabled(l))
				wantLicense(t, s, otherKey, other)
				wantAllLicenses(t, s, disabled(l), other)
			}},
		{name: "revoking a revoked license keeps it disabled", setup: []persistence.Op{persistence.RevokeLicense{ID: l.ID}}, op: persistence.RevokeLicense{ID: l.ID},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, disabled(l))
				wantLicense(t, s, key, disabled(l))
			}},
		{name: "an unknown license is not found", op: persistence.RevokeLicense{ID: "lic_nope"}, want: persistence.LicenseMissing("lic_nope"),
			after: func(t *testing.T, s persistence.Store, _ any) { wantAllLicenses(t, s, l, other) }},
		{name: "a re-keyed license is revoked under its current key",
			setup: []persistence.Op{persistence.PutLicense{License: demo1, Rekey: true}, persistence.PutLicense{License: demo2, Rekey: true}},
			op:    persistence.RevokeLicense{ID: "demo"},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, disabled(demo2))
				wantLicense(t, s, demoKey2, disabled(demo2))
				wantNoLicense(t, s, demoKey1)
			}},
	})
}

func testLicenseReads(t *testing.T, open Opener) {
	a, keyA := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	b, keyB := newLicense(t, persistence.LevelService, "", "acme", time.Hour)
	byKey := func(key string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) { return s.LicenseByKey(t.Context(), key) }
	}
	t.Run("AllLicenses of a store without any is empty", func(t *testing.T) { wantAllLicenses(t, open(t)) })
	runReads(t, open, func(t *testing.T, s persistence.Store) {
		seedShop(t, s)
		mustApplyAll(t, s, persistence.PutLicense{License: a}, persistence.PutLicense{License: b})
	}, []readCase{
		{name: "LicenseByKey of the first key", read: byKey(keyA), want: a},
		{name: "LicenseByKey of the second key", read: byKey(keyB), want: b},
		{name: "LicenseByKey of a wrong key is not found", read: byKey("not-a-key"), wantErr: persistence.ErrNotFound},
		{name: "LicenseByKey of no key is not found", read: byKey(""), wantErr: persistence.ErrNotFound},
		{name: "LicenseByKey of a key with one character more is not found", read: byKey(keyA + "A"), wantErr: persistence.ErrNotFound},
		{name: "LicenseByKey of a key with one character less is not found", read: byKey(keyA[:len(keyA)-1]), wantErr: persistence.ErrNotFound},
		{name: "LicenseByKey of the license id is not found", read: byKey(a.ID), wantErr: persistence.ErrNotFound},
		{name: "LicenseByKey of the key's hash is not found", read: byKey(base64.RawURLEncoding.EncodeToString(a.KeyHash)), wantErr: persistence.ErrNotFound},
		{name: "LicenseByKey of the key's hash as text is not found", read: byKey(string(a.KeyHash)), wantErr: persistence.ErrNotFound},
		{name: "AllLicenses returns every license", read: func(t *testing.T, s persistence.Store) (any, error) {
			all, err := s.AllLicenses(t.Context())
			slices.SortFunc(all, func(x, y persistence.License) int { return strings.Compare(x.ID, y.ID) })
			return all, err
		}, want: slices.SortedFunc(slices.Values([]persistence.License{a, b}), func(x, y persistence.License) int { return strings.Compare(x.ID, y.ID) })},
	})
}
