package storetest

import (
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// wantSecret fails the test unless the secret name holds want.
func wantSecret(t *testing.T, s persistence.Store, name, want string) {
	t.Helper()
	got, err := s.Secret(t.Context(), name)
	if err != nil || string(got) != want {
		t.Fatalf("Secret(%s) = %q, %s; want %q", name, got, describe(err), want)
	}
}

func testPutSecretIfAbsent(t *testing.T, open Opener) {
	put := func(name, value string) persistence.PutSecretIfAbsent {
		return persistence.PutSecretIfAbsent{Name: name, Value: []byte(value)}
	}
	runOps(t, open, nil, []opCase{
		{name: "stores a new secret and returns it", op: persistence.PutSecretIfAbsent{Name: "signing", Value: []byte{0, 1, 2, 0xff}},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, []byte{0, 1, 2, 0xff})
				wantSecret(t, s, "signing", "\x00\x01\x02\xff")
			}},
		{name: "a secret that exists is kept and returned", setup: []persistence.Op{put("signing", "first")}, op: put("signing", "second"),
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, []byte("first"))
				wantSecret(t, s, "signing", "first")
			}},
		{name: "secrets of other names are independent", setup: []persistence.Op{put("signing", "first")}, op: put("envelope", "e"),
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, []byte("e"))
				wantSecret(t, s, "signing", "first")
				wantSecret(t, s, "envelope", "e")
			}},
	})
	t.Run("Secret of a name never stored is not found", func(t *testing.T) {
		s := open(t)
		mustApply(t, s, put("signing", "x"))
		_, err := s.Secret(t.Context(), "envelope")
		wantNotFound(t, "Secret(envelope)", err)
	})
}

// key is a key record of kind ES256 created at.
func key(private string, created time.Time) persistence.KeyRecord {
	return persistence.KeyRecord{Kind: "ES256", Private: []byte(private), Created: created}
}

// retired is k retired at.
func retired(k persistence.KeyRecord, at time.Time) persistence.KeyRecord {
	k.Retired = at
	return k
}

// wantKeyring fails the test unless the keyring name holds want.
func wantKeyring(t *testing.T, s persistence.Store, name string, want persistence.Keyring) {
	t.Helper()
	got, err := s.Keyring(t.Context(), name)
	if err != nil {
		t.Fatalf("Keyring(%s): %s", name, describe(err))
	}
	wantSame(t, "Keyring("+name+")", got, want)
}

func testRotateKey(t *testing.T, open Opener) {
	base := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	k1, k2, k3 := key("one", base), key("two", base.Add(time.Hour)), key("three", base.Add(3*time.Hour))
	rotate := func(k persistence.KeyRecord, keep time.Duration) persistence.RotateKey {
		return persistence.RotateKey{Name: "token", New: k, Keep: keep}
	}
	ring := func(keys ...persistence.KeyRecord) persistence.Keyring { return persistence.Keyring{Keys: keys} }
	holds := func(want persistence.Keyring) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, v any) {
			wantSame(t, "result", v, want)
			wantKeyring(t, s, "token", want)
		}
	}
	runOps(t, open, nil, []opCase{
		{name: "the first rotation creates the keyring with its key", op: rotate(k1, time.Hour), after: holds(ring(k1))},
		{name: "a rotation retires the current key at the new key's creation, newest first",
			setup: []persistence.Op{rotate(k1, time.Hour)}, op: rotate(k2, time.Hour), after: holds(ring(k2, retired(k1, k2.Created)))},
		{name: "keys retired more than Keep before the new key are dropped",
			// k1 retired at +1h, 2h before k3: dropped; k2 retired now: kept.
			setup: []persistence.Op{rotate(k1, 0), rotate(k2, 0)}, op: rotate(k3, 90*time.Minute), after: holds(ring(k3, retired(k2, k3.Created)))},
		{name: "keys retired exactly Keep before the new key are kept",
			setup: []persistence.Op{rotate(k1, 0), rotate(k2, 0)}, op: rotate(k3, 2*time.Hour),
			after: holds(ring(k3, retired(k2, k3.Created), retired(k1, k2.Created)))},
		{name: "the key a rotation retires is kept even with Keep 0",
			setup: []persistence.Op{rotate(k1, 0)}, op: rotate(k2, 0), after: holds(ring(k2, retired(k1, k2.Created)))},
		{name: "OnlyIfAbsent creates a keyring that does not exist",
			op: persistence.RotateKey{Name: "token", New: k1, OnlyIfAbsent: true}, after: holds(ring(k1))},
		{name: "OnlyIfAbsent returns the keyring that exists and changes nothing",
			setup: []persistence.Op{rotate(k1, time.Hour)}, op: persistence.RotateKey{Name: "token", New: k2, OnlyIfAbsent: true}, after: holds(ring(k1))},
		{name: "keyrings of other names are independent",
			setup: []persistence.Op{rotate(k1, time.Hour)}, op: persistence.RotateKey{Name: "envelope", New: k2, Keep: time.Hour},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, ring(k2))
				wantKeyring(t, s, "envelope", ring(k2))
				wantKeyring(t, s, "token", ring(k1))
			}},
	})
	t.Run("Keyring of a name never rotated is not found", func(t *testing.T) {
		s := open(t)
		mustApply(t, s, rotate(k1, 0))
		_, err := s.Keyring(t.Context(), "envelope")
		wantNotFound(t, "Keyring(envelope)", err)
	})
}

func testRememberRequest(t *testing.T, open Opener) {
	until := time.Now().Add(time.Hour)
	remember := func(caller, uuid string) persistence.RememberRequest {
		return persistence.RememberRequest{Caller: []byte(caller), UUID: uuid, Until: until}
	}
	const uuid = "0b7ef3b6-4d0e-4b8f-9a43-3d1f0b6f4e21"
	runOps(t, open, nil, []opCase{
		{name: "a new uuid is accepted", op: remember("caller-a", uuid)},
		{name: "the same uuid from the same caller is refused", setup: []persistence.Op{remember("caller-a", uuid)}, op: remember("caller-a", uuid),
			want: persistence.ErrRequestReplayed},
		{name: "the same uuid from the same caller is refused, whatever its Until",
			setup: []persistence.Op{remember("caller-a", uuid)},
			op:    persistence.RememberRequest{Caller: []byte("caller-a"), UUID: uuid, Until: until.Add(time.Hour)},
			want:  persistence.ErrRequestReplayed},
		{name: "the same uuid from another caller is accepted", setup: []persistence.Op{remember("caller-a", uuid)}, op: remember("caller-b", uuid)},
		{name: "another uuid from the same caller is accepted", setup: []persistence.Op{remember("caller-a", uuid)},
			op: remember("caller-a", "7c1d0a52-52b1-4c3e-8a9e-1f9b3c2d4e5f")},
		{name: "a caller key is compared whole: one that extends another is another caller",
			setup: []persistence.Op{remember("caller-a", uuid)}, op: remember("caller-a\x00", uuid)},
	})
}
