package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// The batch contract of persistence.Op: one Result per op, in order; each op sees the writes of
// the ops before it; a refused op leaves nothing behind (but for a counter regression's clone
// warning) and does not stop the others.
func testBatch(t *testing.T, open Opener) {
	t.Run("an empty batch has no results", func(t *testing.T) {
		if res := open(t).Apply(t.Context(), nil); len(res) != 0 {
			t.Fatalf("Apply(nil) = %+v, want no results", res)
		}
	})

	t.Run("one result per op, in order, each with its op's value; each op sees the ones before it", func(t *testing.T) {
		s := open(t)
		lic, key := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
		alice := user("shop", "alice", "ha")
		c1 := credential("c1", alice)
		on := true
		k := persistence.KeyRecord{Kind: "ES256", Private: []byte("p"), Created: t0}
		ops := []persistence.Op{
			putTenant("acme", "ACME", t0),
			persistence.PutCommunity{Community: community("shop"), Create: true},
			persistence.PatchCommunity{ID: "shop", Name: "Shop"},
			persistence.PutLicense{License: lic},
			persistence.RevokeLicense{ID: lic.ID},
			persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("k")},
			persistence.RotateKey{Name: "token", New: k},
			persistence.RememberRequest{Caller: []byte("caller"), UUID: "u1", Until: time.Now().Add(time.Hour)},
			persistence.AddCredential{Credential: c1, DisplayName: "Alice"},
			persistence.RecordSignIn{ID: c1.ID, Counter: 4, At: t1},
			persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("c1"), DID: "did:example:a"},
			persistence.UnlinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("c1"), DID: "did:example:a"},
			persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x", At: t1},
			persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("c1")},
		}
		res := apply(t, s, ops...)
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("result %d (%T): %s", i, ops[i], describe(r.Err))
			}
		}
		signedIn := asRead(c1)
		signedIn.SignCount, signedIn.LastUsed = 4, t1
		linked := signedIn
		linked.DID = "did:example:a"
		disabled := lic
		disabled.Disabled = true
		// is checks that a result is the value want, of its type.
		is := func(want any) func(v any) bool {
			return func(v any) bool { return reflect.TypeOf(v) == reflect.TypeOf(want) && same(v, want) }
		}
		for i, ok := range []func(v any) bool{
			is(persistence.Tenant{ID: "acme", Name: "ACME", Created: t0}),
			func(v any) bool { c, ok := v.(persistence.Community); return ok && c.ID == "shop" },
			func(v any) bool { c, ok := v.(persistence.Community); return ok && c.ID == "shop" && c.Name == "Shop" },
			is(lic),
			is(disabled),
			is([]byte("k")),
			is(persistence.Keyring{Keys: []persistence.KeyRecord{k}}),
			func(any) bool { return true }, // RememberRequest has no value
			is(c1),
			is(signedIn),
			is(linked),
			is(signedIn),
			func(v any) bool {
				r, ok := v.(persistence.VendorRecord)
				return ok && r.AAGUID == yubikey && !r.Disabled
			},
			func(v any) bool {
				r, ok := v.(persistence.VendorRecord)
				return ok && r.AAGUID == yubikey && r.Disabled
			},
			is(1),
		} {
			if !ok(res[i].Value) {
				t.Errorf("result %d (%T) = %#v", i, ops[i], res[i].Value)
			}
		}
		// What the batch left: its ops ran in order.
		if tn := tenant(t, s, "acme"); tn.Name != "ACME" {
			t.Fatalf("Tenant(acme) = %+v, want the name the first op gave it", tn)
		}
		wantLicense(t, s, key, disabled)
		wantNoCredential(t, s, "c1")
		wantRefusal(t, "the uuid again", applyErr(t, s, persistence.RememberRequest{Caller: []byte("caller"), UUID: "u1", Until: time.Now().Add(time.Hour)}),
			persistence.ErrRequestReplayed)
	})

	t.Run("ops of one batch see one another", func(t *testing.T) {
		s := open(t)
		alice := user("shop", "alice", "ha")
		other := user("shop", "alice", "other")
		lic, key := newLicense(t, persistence.LevelSystem, "", "", 0)
		res := apply(t, s,
			persistence.PutCommunity{Community: community("shop"), Create: true},
			persistence.AddCredential{Credential: credential("c1", alice)},
			persistence.AddCredential{Credential: credential("c1", alice)},
			persistence.RecordSignIn{ID: []byte("c1"), Counter: 4, At: t1},
			persistence.RecordSignIn{ID: []byte("c1"), Counter: 4, At: t1},
			persistence.AddCredential{Credential: credential("c2", other)},
			persistence.PutSecretIfAbsent{Name: "batch", Value: []byte("one")},
			persistence.PutSecretIfAbsent{Name: "batch", Value: []byte("two")},
			persistence.RememberRequest{Caller: []byte("caller"), UUID: "u1", Until: time.Now().Add(time.Hour)},
			persistence.RememberRequest{Caller: []byte("caller"), UUID: "u1", Until: time.Now().Add(time.Hour)},
			persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			persistence.PutLicense{License: lic},
			persistence.PutLicense{License: lic},
			persistence.RevokeLicense{ID: lic.ID},
			persistence.AddCredential{Credential: credential("c3", alice)},
			persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("c3")},
			persistence.AddCredential{Credential: credential("c3", alice)},
		)
		for i, want := range []error{
			nil, nil, persistence.ErrCredentialExists, nil, persistence.ErrCounterRegression, persistence.ErrStartAgain,
			nil, nil, nil, persistence.ErrRequestReplayed, nil, persistence.VendorRecordExists(yubikey),
			nil, persistence.ErrLicenseIDExists, nil, nil, nil, nil,
		} {
			wantRefusal(t, fmt.Sprintf("result %d", i), res[i].Err, want)
		}
		if c := res[3].Value.(persistence.Credential); c.SignCount != 4 {
			t.Fatalf("RecordSignIn in the batch: SignCount %d, want 4", c.SignCount)
		}
		if v := res[7].Value.([]byte); string(v) != "one" {
			t.Fatalf("the second PutSecretIfAbsent returned %q, want the first's one", v)
		}
		signedIn := credential("c1", alice)
		signedIn.SignCount, signedIn.LastUsed, signedIn.CloneWarning = 4, t1, true
		wantCredentialsOf(t, s, "shop", "alice", signedIn, credential("c3", alice))
		wantSecret(t, s, "batch", "one")
		lic.Disabled = true
		wantLicense(t, s, key, lic)
	})

	t.Run("a refused op leaves nothing behind, and the ops after it still run and commit", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		mustApplyAll(t, s,
			putTenant("globex", "Globex", t0, "taken.example"),
			persistence.AddCredential{Credential: credential("taken-id", user("shop", "bob", "hb"))})
		zed := user("shop", "zed", "hz")
		ops := []persistence.Op{
			persistence.PutSecretIfAbsent{Name: "a", Value: []byte("1")},
			// Refused after checking hosts it could claim.
			putTenant("newco", "NewCo", t0, "free.example", "taken.example"),
			// Sees no trace of the refused tenant or its host.
			putTenant("initech", "Initech", t0, "free.example"),
			// Refused, though its tenant could have been written before the host's check.
			persistence.PutCommunity{Community: func() persistence.Community { c := community("blog"); c.TenantID = "blogco"; return c }(),
				Create: true, TenantDNS: []string{"taken.example"}},
			// Sees no tenant blogco.
			persistence.PutLicense{License: func() persistence.License {
				l, _ := newLicense(t, persistence.LevelService, "", "blogco", 0)
				return l
			}()},
			// Refused: the id is taken; zed must not be created.
			persistence.AddCredential{Credential: credential("taken-id", zed), DisplayName: "Zed"},
			// Sees no zed: creates zed with another handle.
			persistence.AddCredential{Credential: credential("z1", user("shop", "zed", "hz2")), DisplayName: "Zed 2"},
			// Refused as Check refuses it.
			persistence.AddCredential{Credential: credential("ghost", user("shop", "ghost", ""))},
			persistence.PutCommunity{Community: community("shop"), Create: true},
			persistence.PutSecretIfAbsent{Name: "b", Value: []byte("2")},
		}
		res := apply(t, s, ops...)
		for i, want := range []error{
			nil, persistence.HostTaken("taken.example"), nil, persistence.HostTaken("taken.example"), persistence.TenantMissing("blogco"),
			persistence.ErrCredentialExists, nil, nil, persistence.CommunityExists("shop"), nil,
		} {
			if i == 7 {
				wantChecked(t, "result 7", res[i].Err, ops[i])
				continue
			}
			wantRefusal(t, fmt.Sprintf("result %d (%T)", i, ops[i]), res[i].Err, want)
		}
		wantSecret(t, s, "a", "1")
		wantSecret(t, s, "b", "2")
		wantNoTenant(t, s, "newco")
		wantNoTenant(t, s, "blogco")
		wantNoCommunity(t, s, "blog")
		wantTenantOfHost(t, s, "free.example", "initech")
		if u := readUser(t, s, "shop", "zed"); string(u.Handle) != "hz2" || u.DisplayName != "Zed 2" {
			t.Fatalf("User(zed) = %+v, want the one the later op created", u)
		}
		wantNoCredential(t, s, "ghost")
		wantCredentialsOf(t, s, "shop", "bob", credential("taken-id", user("shop", "bob", "hb")))
	})

	t.Run("a refused sign-in's clone warning is written, and the batch goes on", func(t *testing.T) {
		s := open(t)
		c := seedCredential(t, s, 5)
		res := apply(t, s,
			persistence.RecordSignIn{ID: c.ID, Counter: 3, At: t1},
			persistence.PutSecretIfAbsent{Name: "a", Value: []byte("1")},
			persistence.RecordSignIn{ID: c.ID, Counter: 6, At: t1},
		)
		wantRefusal(t, "the regression", res[0].Err, persistence.ErrCounterRegression)
		wantRefusal(t, "the secret", res[1].Err, nil)
		wantRefusal(t, "the sign-in after it", res[2].Err, nil)
		want := c
		want.SignCount, want.LastUsed, want.CloneWarning = 6, t1, true
		wantSame(t, "the sign-in after the regression", res[2].Value, asRead(want))
		wantCredential(t, s, want)
		wantSecret(t, s, "a", "1")
	})

	t.Run("a batch whose every op is refused stores nothing", func(t *testing.T) {
		s := open(t)
		bad := community("shop")
		bad.Origins = []string{"http://example.com"}
		ops := []persistence.Op{
			persistence.PutCommunity{Community: bad, Create: true},
			persistence.PatchCommunity{ID: "shop", Name: "x"},
			persistence.RevokeLicense{ID: "lic_nope"},
			persistence.RecordSignIn{ID: []byte("nope"), Counter: 1, At: t1},
			persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("nope")},
			persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			putTenant("acme", "ACME", t0, "a/b"),
		}
		res := apply(t, s, ops...)
		for i, r := range res {
			if r.Err == nil {
				t.Fatalf("result %d (%T) accepted", i, ops[i])
			}
		}
		if empty, err := s.Empty(t.Context()); err != nil || !empty {
			t.Fatalf("Empty = %v, %s; want true", empty, describe(err))
		}
		wantNoTenant(t, s, "acme")
		wantVendorRecords(t, s)
	})
}
