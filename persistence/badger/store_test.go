package badger_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// Every small read interface, used through the *Store, returns what was written and
// ErrNotFound for what was not.
func TestSmallInterfacesThroughStore(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *badger.Store)
	}{
		{"Communities: tenant and community round trip", func(t *testing.T, s *badger.Store) {
			want := seedCommunity(t, s, "shop")
			var r persistence.Communities = s
			got, err := r.Community(ctx, "shop")
			if err != nil {
				t.Fatalf("Community: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Community = %+v, want %+v", got, want)
			}
			if got.Created.IsZero() || !got.Updated.Equal(got.Created) {
				t.Fatalf("new community: Created %v, Updated %v; want both set and equal", got.Created, got.Updated)
			}
			tenant, err := r.Tenant(ctx, "acme")
			if err != nil {
				t.Fatalf("Tenant: %v", err)
			}
			if tenant.ID != "acme" || tenant.Name != "acme" || tenant.Created.IsZero() {
				t.Fatalf("Tenant = %+v, want the tenant created with the community", tenant)
			}
		}},
		{"Communities: missing tenant and community are ErrNotFound", func(t *testing.T, s *badger.Store) {
			var r persistence.Communities = s
			_, err := r.Tenant(ctx, "nobody")
			wantNotFound(t, "Tenant", err)
			_, err = r.Community(ctx, "nothing")
			wantNotFound(t, "Community", err)
		}},
		{"Communities: PutTenant keeps the first tenant", func(t *testing.T, s *badger.Store) {
			first := mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "ACME Inc.", Created: t0}})
			second := mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "Other"}})
			if !reflect.DeepEqual(first, second) {
				t.Fatalf("second PutTenant returned %+v, want the first %+v", second, first)
			}
			var r persistence.Communities = s
			got, err := r.Tenant(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != "ACME Inc." || !got.Created.Equal(t0) {
				t.Fatalf("Tenant = %+v, want name %q created %v", got, "ACME Inc.", t0)
			}
		}},
		{"Users: by username and by handle", func(t *testing.T, s *badger.Store) {
			seedCommunity(t, s, "shop")
			want := seedUser(t, s, "shop", "alice", []byte{1, 2, 3, 0, 4})
			var r persistence.Users = s
			got, err := r.User(ctx, "shop", "alice")
			if err != nil {
				t.Fatalf("User: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("User = %+v, want %+v", got, want)
			}
			if got.DisplayName != "Name of alice" || !bytes.Equal(got.Handle, []byte{1, 2, 3, 0, 4}) {
				t.Fatalf("User = %+v, want display name and handle as created", got)
			}
			byHandle, err := r.UserByHandle(ctx, "shop", []byte{1, 2, 3, 0, 4})
			if err != nil {
				t.Fatalf("UserByHandle: %v", err)
			}
			if !reflect.DeepEqual(byHandle, want) {
				t.Fatalf("UserByHandle = %+v, want %+v", byHandle, want)
			}
		}},
		{"Users: missing user, missing handle and other community are ErrNotFound", func(t *testing.T, s *badger.Store) {
			seedCommunity(t, s, "shop")
			seedCommunity(t, s, "blog")
			seedUser(t, s, "shop", "alice", []byte("handle-a"))
			var r persistence.Users = s
			_, err := r.User(ctx, "shop", "bob")
			wantNotFound(t, "User(shop, bob)", err)
			_, err = r.User(ctx, "blog", "alice")
			wantNotFound(t, "User(blog, alice)", err)
			_, err = r.UserByHandle(ctx, "shop", []byte("handle-b"))
			wantNotFound(t, "UserByHandle(shop, handle-b)", err)
			_, err = r.UserByHandle(ctx, "blog", []byte("handle-a"))
			wantNotFound(t, "UserByHandle(blog, handle-a)", err)
		}},
		{"Credentials: by id and by owner", func(t *testing.T, s *badger.Store) {
			seedCommunity(t, s, "shop")
			u := seedUser(t, s, "shop", "alice", []byte("ha"))
			want := credential("cred-1", u)
			want.LastUsed = t1
			mustApply(t, s, persistence.AddCredential{Credential: want})
			var r persistence.Credentials = s
			got, err := r.Credential(ctx, []byte("cred-1"))
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			if !reflect.DeepEqual(got, asRead(want)) {
				t.Fatalf("Credential = %+v\nwant %+v", got, asRead(want))
			}
			list, err := r.CredentialsOf(ctx, "shop", "alice")
			if err != nil {
				t.Fatalf("CredentialsOf: %v", err)
			}
			if len(list) != 1 || !reflect.DeepEqual(list[0], asRead(want)) {
				t.Fatalf("CredentialsOf = %+v, want [%+v]", list, want)
			}
		}},
		{"Credentials: missing credential is ErrNotFound, an owner without any has none", func(t *testing.T, s *badger.Store) {
			seedCommunity(t, s, "shop")
			seedUser(t, s, "shop", "alice", []byte("ha"))
			var r persistence.Credentials = s
			_, err := r.Credential(ctx, []byte("nope"))
			wantNotFound(t, "Credential", err)
			for _, who := range [][2]string{{"shop", "alice"}, {"shop", "nobody"}, {"blog", "alice"}} {
				list, err := r.CredentialsOf(ctx, who[0], who[1])
				if err != nil || len(list) != 0 {
					t.Fatalf("CredentialsOf(%q, %q) = %v, %v; want none, nil", who[0], who[1], list, err)
				}
			}
		}},
		{"Licenses: by key; a wrong key is ErrNotFound", func(t *testing.T, s *badger.Store) {
			seedCommunity(t, s, "shop")
			l, key, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, s, persistence.PutLicense{License: l})
			var r persistence.Licenses = s
			got, err := r.LicenseByKey(ctx, key)
			if err != nil {
				t.Fatalf("LicenseByKey: %v", err)
			}
			if !reflect.DeepEqual(got, l) {
				t.Fatalf("LicenseByKey = %+v, want %+v", got, l)
			}
			_, err = r.LicenseByKey(ctx, key+"x")
			wantNotFound(t, "LicenseByKey(wrong key)", err)
		}},
		{"Secrets: round trip; missing is ErrNotFound", func(t *testing.T, s *badger.Store) {
			var r persistence.Secrets = s
			_, err := r.Secret(ctx, "signing")
			wantNotFound(t, "Secret(signing)", err)
			mustApply(t, s, persistence.PutSecretIfAbsent{Name: "signing", Value: []byte{0, 1, 2, 0xff}})
			got, err := r.Secret(ctx, "signing")
			if err != nil || !bytes.Equal(got, []byte{0, 1, 2, 0xff}) {
				t.Fatalf("Secret = %x, %v; want 000102ff, nil", got, err)
			}
			_, err = r.Secret(ctx, "envelope")
			wantNotFound(t, "Secret(envelope)", err)
		}},
		{"Writer: Apply through the interface", func(t *testing.T, s *badger.Store) {
			var w persistence.Writer = s
			res := w.Apply(ctx, []persistence.Op{persistence.PutSecretIfAbsent{Name: "k", Value: []byte("v")}})
			if len(res) != 1 || res[0].Err != nil || !bytes.Equal(res[0].Value.([]byte), []byte("v")) {
				t.Fatalf("Apply = %+v, want one result with value v", res)
			}
			if got, err := s.Secret(ctx, "k"); err != nil || string(got) != "v" {
				t.Fatalf("Secret(k) = %q, %v; want v", got, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, mustOpen(t)) })
	}
}

// Writes that Apply reported as done survive closing and reopening the directory.
func TestWritesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	com := seedCommunity(t, s, "shop")
	u := seedUser(t, s, "shop", "alice", []byte("handle-a"))
	cred := credential("cred-1", u)
	mustApply(t, s, persistence.AddCredential{Credential: cred})
	mustApply(t, s, persistence.RecordSignIn{ID: cred.ID, Counter: 7, UserVerified: true, BackupState: true, At: t1})
	if err := applyErr(t, s, persistence.RecordSignIn{ID: cred.ID, Counter: 3, At: t1}); err == nil {
		t.Fatal("regressing counter accepted")
	}
	lic, key, err := persistence.NewLicense(persistence.LevelService, "", "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, persistence.PutLicense{License: lic})
	mustApply(t, s, persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("secret-1")})
	closeStore()

	s, _ = mustOpenAt(t, dir)
	if got, err := s.Community(ctx, "shop"); err != nil || !reflect.DeepEqual(got, com) {
		t.Fatalf("Community after reopen = %+v, %v; want %+v", got, err, com)
	}
	if _, err := s.Tenant(ctx, "acme"); err != nil {
		t.Fatalf("Tenant after reopen: %v", err)
	}
	if got, err := s.UserByHandle(ctx, "shop", []byte("handle-a")); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("UserByHandle after reopen = %+v, %v; want %+v", got, err, u)
	}
	want := asRead(cred)
	want.SignCount, want.UserVerified, want.BackupState, want.LastUsed, want.CloneWarning = 7, true, true, t1, true
	if got, err := s.Credential(ctx, cred.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Credential after reopen = %+v, %v\nwant %+v", got, err, want)
	}
	if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 1 || !bytes.Equal(list[0].ID, cred.ID) {
		t.Fatalf("CredentialsOf after reopen = %+v, %v; want [cred-1]", list, err)
	}
	if got, err := s.LicenseByKey(ctx, key); err != nil || !reflect.DeepEqual(got, lic) {
		t.Fatalf("LicenseByKey after reopen = %+v, %v; want %+v", got, err, lic)
	}
	if got, err := s.Secret(ctx, "signing"); err != nil || string(got) != "secret-1" {
		t.Fatalf("Secret after reopen = %q, %v; want secret-1", got, err)
	}
	if empty, err := s.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty after reopen = %v, %v; want false", empty, err)
	}
}

// A directory is held by one open store at a time.
func TestOpenRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	mustOpenAt(t, dir)
	s, err := badger.Open(dir, zap.NewNop())
	if err == nil {
		s.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
}

func TestPing(t *testing.T) {
	if err := mustOpen(t).Ping(ctx); err != nil {
		t.Fatalf("Ping on a new store: %v", err)
	}
}

// Empty is true until the first community exists.
func TestEmpty(t *testing.T) {
	tests := []struct {
		name      string
		ops       []persistence.Op
		wantEmpty bool
	}{
		{"new store", nil, true},
		{"tenant only", []persistence.Op{persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme"}}}, true},
		{"secret only", []persistence.Op{persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("x")}}, true},
		{"refused community", []persistence.Op{persistence.PutCommunity{Community: persistence.Community{ID: "bad"}, Create: true}}, true},
		{"after PutCommunity", []persistence.Op{persistence.PutCommunity{Community: community("shop"), Create: true}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t)
			s.Apply(ctx, tc.ops)
			empty, err := s.Empty(ctx)
			if err != nil || empty != tc.wantEmpty {
				t.Fatalf("Empty = %v, %v; want %v, nil", empty, err, tc.wantEmpty)
			}
		})
	}
}

// PutSecretIfAbsent: the first value wins, and later calls return it.
func TestPutSecretIfAbsent(t *testing.T) {
	s := mustOpen(t)
	first := mustApply(t, s, persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("first")})
	if !bytes.Equal(first.([]byte), []byte("first")) {
		t.Fatalf("first PutSecretIfAbsent = %q, want first", first)
	}
	second := mustApply(t, s, persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("second")})
	if !bytes.Equal(second.([]byte), []byte("first")) {
		t.Fatalf("second PutSecretIfAbsent = %q, want the first value", second)
	}
	if got, err := s.Secret(ctx, "signing"); err != nil || string(got) != "first" {
		t.Fatalf("Secret = %q, %v; want first", got, err)
	}
	other := mustApply(t, s, persistence.PutSecretIfAbsent{Name: "envelope", Value: []byte("e")})
	if string(other.([]byte)) != "e" {
		t.Fatalf("PutSecretIfAbsent of another name = %q, want e", other)
	}

	// Two in one batch: the second sees the first.
	res := s.Apply(ctx, []persistence.Op{
		persistence.PutSecretIfAbsent{Name: "batch", Value: []byte("one")},
		persistence.PutSecretIfAbsent{Name: "batch", Value: []byte("two")},
	})
	for i, r := range res {
		if r.Err != nil || string(r.Value.([]byte)) != "one" {
			t.Fatalf("batch result %d = %q, %v; want one", i, r.Value, r.Err)
		}
	}
}

// TestKeyringGeneration moves on after every batch that rotated a key, and only then, so that
// a cache of keys reads them again exactly when they changed.
func TestKeyringGeneration(t *testing.T) {
	s := mustOpen(t)
	gen := s.KeyringGeneration()
	key := func(b byte) persistence.KeyRecord {
		return persistence.KeyRecord{Kind: "ES256", Private: []byte{b}, Created: time.Now().UTC()}
	}
	steps := []struct {
		name  string
		op    persistence.Op
		moves bool
	}{
		{"a first key", persistence.RotateKey{Name: "signing", New: key(1), OnlyIfAbsent: true}, true},
		{"a rotation", persistence.RotateKey{Name: "signing", New: key(2), Keep: time.Hour}, true},
		{"a write of something else", persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")}, false},
		{"a community", persistence.PutCommunity{Community: community("shop"), Create: true}, false},
	}
	for _, step := range steps {
		if _, err := persistence.ApplyOne(ctx, s, step.op); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		next := s.KeyringGeneration()
		if moved := next != gen; moved != step.moves {
			t.Errorf("after %s the generation went from %d to %d; want moved = %v", step.name, gen, next, step.moves)
		}
		gen = next
	}
	ring, err := s.Keyring(ctx, "signing")
	if err != nil || len(ring.Keys) != 2 || ring.Keys[0].Private[0] != 2 || ring.Keys[1].Retired.IsZero() {
		t.Fatalf("Keyring = %+v, %v; want key 2 current and key 1 retired", ring, err)
	}
}

// TestReadsWithAnEndedContext: a read (or a bulk write) whose context ended returns the
// context's error, not a record, not ErrNotFound, whether the record exists, is cached, or
// cannot exist.
func TestReadsWithAnEndedContext(t *testing.T) {
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	l, key, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, persistence.PutLicense{License: l})
	// Fill the config cache: a cached record must not outlive its caller's context either.
	if _, err := s.Community(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LicenseByKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	reads := map[string]func() error{
		"Tenant":                  func() error { _, err := s.Tenant(ended, "acme"); return err },
		"TenantByDNS":             func() error { _, err := s.TenantByDNS(ended, "example.com"); return err },
		"TenantByDNS of no host":  func() error { _, err := s.TenantByDNS(ended, "a/b"); return err },
		"Community (cached)":      func() error { _, err := s.Community(ended, "shop"); return err },
		"CommunityByName":         func() error { _, err := s.CommunityByName(ended, "acme", "Community shop"); return err },
		"User":                    func() error { _, err := s.User(ended, "shop", "alice"); return err },
		"UserByHandle":            func() error { _, err := s.UserByHandle(ended, "shop", []byte("h")); return err },
		"Credential":              func() error { _, err := s.Credential(ended, []byte("id")); return err },
		"CredentialsOf":           func() error { _, err := s.CredentialsOf(ended, "shop", "alice"); return err },
		"AttestationObjectOf":     func() error { _, err := s.AttestationObjectOf(ended, []byte("id")); return err },
		"LicenseByKey (cached)":   func() error { _, err := s.LicenseByKey(ended, key); return err },
		"AllLicenses":             func() error { _, err := s.AllLicenses(ended); return err },
		"Secret":                  func() error { _, err := s.Secret(ended, "x"); return err },
		"Keyring":                 func() error { _, err := s.Keyring(ended, "signing"); return err },
		"CommonShape":             func() error { _, err := s.CommonShape(ended, "shop"); return err },
		"VendorRecord":            func() error { _, err := s.VendorRecord(ended, "shop", yubikey); return err },
		"VendorRecord of no id":   func() error { _, err := s.VendorRecord(ended, "a/b", yubikey); return err },
		"VendorRecordsOf":         func() error { _, err := s.VendorRecordsOf(ended, "shop", nil); return err },
		"VendorRecordsOf no id":   func() error { _, err := s.VendorRecordsOf(ended, "a/b", nil); return err },
		"AllVendorRecords":        func() error { _, err := s.AllVendorRecords(ended, nil); return err },
		"CurrentMDSBlob":          func() error { _, err := s.CurrentMDSBlob(ended); return err },
		"MDSEntryByAAGUID":        func() error { _, err := s.MDSEntryByAAGUID(ended, yubikey); return err },
		"MDSEntryByKeyIdentifier": func() error { _, err := s.MDSEntryByKeyIdentifier(ended, "ab"); return err },
		"MDSEntries":              func() error { _, _, err := s.MDSEntries(ended); return err },
		"Empty":                   func() error { _, err := s.Empty(ended); return err },
		"Ping":                    func() error { return s.Ping(ended) },
		"Import":                  func() error { return s.Import(ended, nil, nil) },
		"ReplaceMDS": func() error {
			_, err := s.ReplaceMDS(ended, persistence.MDSBlob{Number: 1}, nil, false)
			return err
		},
	}
	for name, read := range reads {
		if err := read(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", name, err)
		}
	}
}
