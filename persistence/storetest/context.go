package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// ended is a context that has ended with err: context.Canceled or context.DeadlineExceeded.
func ended(t *testing.T, err error) context.Context {
	if err == context.DeadlineExceeded {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		t.Cleanup(cancel)
		return ctx
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func testStore(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name      string
		ops       []persistence.Op
		wantEmpty bool
	}{
		{"Empty: a new store is empty", nil, true},
		{"Empty: a store with a tenant only is empty", []persistence.Op{putTenant("acme", "ACME", t0)}, true},
		{"Empty: a store with a secret only is empty", []persistence.Op{persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("x")}}, true},
		{"Empty: a store with a keyring only is empty", []persistence.Op{persistence.RotateKey{Name: "token", New: key("k", t0)}}, true},
		{"Empty: a refused community leaves the store empty", []persistence.Op{persistence.PutCommunity{Community: persistence.Community{ID: "bad"}, Create: true}}, true},
		{"Empty: a store with a community is not", []persistence.Op{persistence.PutCommunity{Community: community("shop"), Create: true}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			apply(t, s, tc.ops...)
			empty, err := s.Empty(t.Context())
			if err != nil || empty != tc.wantEmpty {
				t.Fatalf("Empty = %v, %s; want %v", empty, describe(err), tc.wantEmpty)
			}
		})
	}
	t.Run("Ping: a new store answers", func(t *testing.T) {
		if err := open(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %s", describe(err))
		}
	})
}

// A request's cancellation reaches the store: a read with a context that ended returns an
// error that wraps the context's error (whatever it has cached, and whether or not the record
// exists), and a write refuses without writing, with an internal error (a storage failure,
// not a refusal) that wraps it.
func testContext(t *testing.T, open Opener) {
	lic, licKey := newLicense(t, persistence.LevelCommunity, "shop", "", 0)
	set := mdsSet("x", 3, 0)
	seed := func(t *testing.T, s persistence.Store) {
		seedShop(t, s)
		mustApplyAll(t, s,
			persistence.AddCredential{Credential: credential("c1", user("shop", "alice", "ha"))},
			persistence.PutLicense{License: lic},
			persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("x")},
			persistence.RotateKey{Name: "token", New: key("k", t0)},
			persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			putTenant("acme", "", time.Time{}, "acme.example"))
		mustReplaceMDS(t, s, 1, set, false)
	}
	reads := []struct {
		name string
		read func(ctx context.Context, s persistence.Store) error
	}{
		{"Tenant", func(ctx context.Context, s persistence.Store) error { _, err := s.Tenant(ctx, "acme"); return err }},
		{"TenantByDNS", func(ctx context.Context, s persistence.Store) error {
			_, err := s.TenantByDNS(ctx, "acme.example")
			return err
		}},
		{"Community", func(ctx context.Context, s persistence.Store) error { _, err := s.Community(ctx, "shop"); return err }},
		{"CommunityByName", func(ctx context.Context, s persistence.Store) error {
			_, err := s.CommunityByName(ctx, "acme", "Community shop")
			return err
		}},
		{"User", func(ctx context.Context, s persistence.Store) error {
			_, err := s.User(ctx, "shop", "alice")
			return err
		}},
		{"UserByHandle", func(ctx context.Context, s persistence.Store) error {
			_, err := s.UserByHandle(ctx, "shop", []byte("ha"))
			return err
		}},
		{"Credential", func(ctx context.Context, s persistence.Store) error {
			_, err := s.Credential(ctx, []byte("c1"))
			return err
		}},
		{"CredentialsOf", func(ctx context.Context, s persistence.Store) error {
			_, err := s.CredentialsOf(ctx, "shop", "alice")
			return err
		}},
		{"AttestationObjectOf", func(ctx context.Context, s persistence.Store) error {
			_, err := s.AttestationObjectOf(ctx, []byte("c1"))
			return err
		}},
		{"LicenseByKey", func(ctx context.Context, s persistence.Store) error {
			_, err := s.LicenseByKey(ctx, licKey)
			return err
		}},
		{"AllLicenses", func(ctx context.Context, s persistence.Store) error { _, err := s.AllLicenses(ctx); return err }},
		{"Secret", func(ctx context.Context, s persistence.Store) error { _, err := s.Secret(ctx, "signing"); return err }},
		{"Keyring", func(ctx context.Context, s persistence.Store) error { _, err := s.Keyring(ctx, "token"); return err }},
		{"CommonShape", func(ctx context.Context, s persistence.Store) error { _, err := s.CommonShape(ctx, "shop"); return err }},
		{"VendorRecord", func(ctx context.Context, s persistence.Store) error {
			_, err := s.VendorRecord(ctx, "shop", yubikey)
			return err
		}},
		{"VendorRecordsOf", func(ctx context.Context, s persistence.Store) error {
			_, err := s.VendorRecordsOf(ctx, "shop", nil)
			return err
		}},
		{"AllVendorRecords", func(ctx context.Context, s persistence.Store) error {
			_, err := s.AllVendorRecords(ctx, nil)
			return err
		}},
		{"CurrentMDSBlob", func(ctx context.Context, s persistence.Store) error { _, err := s.CurrentMDSBlob(ctx); return err }},
		{"MDSEntryByAAGUID", func(ctx context.Context, s persistence.Store) error {
			_, err := s.MDSEntryByAAGUID(ctx, set[1].AAGUID)
			return err
		}},
		{"MDSEntryByKeyIdentifier", func(ctx context.Context, s persistence.Store) error {
			_, err := s.MDSEntryByKeyIdentifier(ctx, set[0].KeyIdentifiers[0])
			return err
		}},
		{"MDSEntries", func(ctx context.Context, s persistence.Store) error { _, _, err := s.MDSEntries(ctx); return err }},
		{"Empty", func(ctx context.Context, s persistence.Store) error { _, err := s.Empty(ctx); return err }},
		{"Ping", func(ctx context.Context, s persistence.Store) error { return s.Ping(ctx) }},
		// What does not exist, or cannot, is no answer either: not ErrNotFound.
		{"Tenant of an unknown id", func(ctx context.Context, s persistence.Store) error { _, err := s.Tenant(ctx, "nobody"); return err }},
		{"TenantByDNS of what is no host", func(ctx context.Context, s persistence.Store) error { _, err := s.TenantByDNS(ctx, "a/b"); return err }},
		{"Community of an unknown id", func(ctx context.Context, s persistence.Store) error {
			_, err := s.Community(ctx, "nothing")
			return err
		}},
		{"User of an unknown username", func(ctx context.Context, s persistence.Store) error {
			_, err := s.User(ctx, "shop", "nobody")
			return err
		}},
		{"Credential of an unknown id", func(ctx context.Context, s persistence.Store) error {
			_, err := s.Credential(ctx, []byte("nope"))
			return err
		}},
		{"LicenseByKey of a wrong key", func(ctx context.Context, s persistence.Store) error {
			_, err := s.LicenseByKey(ctx, "not-a-key")
			return err
		}},
		{"VendorRecord of what cannot be a community", func(ctx context.Context, s persistence.Store) error {
			_, err := s.VendorRecord(ctx, "a/b", yubikey)
			return err
		}},
		{"VendorRecordsOf what cannot be a community", func(ctx context.Context, s persistence.Store) error {
			_, err := s.VendorRecordsOf(ctx, "a/b", nil)
			return err
		}},
		{"MDSEntryByAAGUID of what is no AAGUID", func(ctx context.Context, s persistence.Store) error {
			_, err := s.MDSEntryByAAGUID(ctx, "nonsense")
			return err
		}},
	}
	t.Run("reads", func(t *testing.T) {
		s := open(t)
		seed(t, s)
		cancelled, expired := ended(t, context.Canceled), ended(t, context.DeadlineExceeded)
		for _, r := range reads {
			t.Run(r.name, func(t *testing.T) {
				// A live context reads (and lets the store cache what it caches).
				if err := r.read(t.Context(), s); err != nil && !errors.Is(err, persistence.ErrNotFound) {
					t.Fatalf("with a live context: %s", describe(err))
				}
				if err := r.read(cancelled, s); !errors.Is(err, context.Canceled) {
					t.Fatalf("with a cancelled context: %s, want an error that wraps context.Canceled", describe(err))
				}
				if err := r.read(expired, s); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("with an expired context: %s, want an error that wraps context.DeadlineExceeded", describe(err))
				}
			})
		}
	})

	t.Run("Apply refuses every op of the batch and writes nothing", func(t *testing.T) {
		s := open(t)
		seed(t, s)
		for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
			ctx := ended(t, ctxErr)
			ops := []persistence.Op{
				persistence.PutSecretIfAbsent{Name: "other", Value: []byte("y")},
				persistence.PutCommunity{Community: community("blog"), Create: true},
				persistence.AddCredential{Credential: credential("c2", user("shop", "alice", "ha"))},
				persistence.RecordSignIn{ID: []byte("c1"), Counter: 9, At: t1},
				persistence.RevokeLicense{ID: lic.ID},
			}
			res := s.Apply(ctx, ops)
			if len(res) != len(ops) {
				t.Fatalf("Apply of %d ops returned %d results", len(ops), len(res))
			}
			for i, r := range res {
				// A storage failure, not a refusal: an internal error, its cause logged.
				if !errors.Is(r.Err, ctxErr) || messages.ErrorCode(r.Err) != messages.CodeInternal {
					t.Fatalf("result %d (%T): %s, want an internal error that wraps %v", i, ops[i], describe(r.Err), ctxErr)
				}
			}
			_, err := s.Secret(t.Context(), "other")
			wantNotFound(t, "Secret(other)", err)
			wantNoCommunity(t, s, "blog")
			wantNoCredential(t, s, "c2")
			wantCredential(t, s, credential("c1", user("shop", "alice", "ha")))
			wantLicense(t, s, licKey, lic)
		}
	})

	t.Run("Import refuses and writes nothing", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		ctx := ended(t, context.Canceled)
		u := importUser("alice", "ha")
		if err := s.Import(ctx, []persistence.User{u}, []persistence.Credential{credential("c1", u)}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Import: %s, want an error that wraps context.Canceled", describe(err))
		}
		if err := s.Import(ctx, nil, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Import of nothing: %s, want an error that wraps context.Canceled", describe(err))
		}
		wantNoUser(t, s, "shop", "alice", []byte("ha"))
		wantNoCredential(t, s, "c1")
	})

	t.Run("ReplaceMDS refuses and changes nothing", func(t *testing.T) {
		s := open(t)
		stored := mustReplaceMDS(t, s, 1, set, false)
		ctx := ended(t, context.Canceled)
		if _, err := s.ReplaceMDS(ctx, blob(2), mdsSet("y", 3, 0), false); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReplaceMDS: %s, want an error that wraps context.Canceled", describe(err))
		}
		wantMDS(t, s, stored, set)
	})
}
