package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

func TestSeededUserIsDerivedFromSeedAndIndex(t *testing.T) {
	a, again, next, otherSeed := seededUser("s", 7), seededUser("s", 7), seededUser("s", 8), seededUser("t", 7)
	if a.username != "seed-7" || next.username != "seed-8" {
		t.Errorf("usernames %q and %q, want seed-7 and seed-8", a.username, next.username)
	}
	if !a.key.Equal(again.key) || !bytes.Equal(a.handle, again.handle) || !bytes.Equal(a.credID, again.credID) {
		t.Error("one seed and index derived two identities")
	}
	for name, b := range map[string]seededIdentity{"the next index": next, "another seed": otherSeed} {
		if a.key.Equal(b.key) || bytes.Equal(a.handle, b.handle) || bytes.Equal(a.credID, b.credID) {
			t.Errorf("%s shares a key, handle or credential id", name)
		}
	}
	if len(a.handle) != 32 || len(a.credID) != 32 || bytes.Equal(a.handle, a.credID) {
		t.Errorf("handle %x and credential id %x: want two different 32-byte values", a.handle, a.credID)
	}
}

// TestSeededCredentialVerifies checks the records seed writes: the COSE key parses with
// go-webauthn (the server's parser) and verifies an ES256 signature by the derived key, for
// keys whose coordinates start with a zero byte too; the attestation object is a valid "none".
func TestSeededCredentialVerifies(t *testing.T) {
	shortCoordinate := -1
	for i := 0; i < 2000 && shortCoordinate < 0; i++ {
		if k := seededUser("s", i).key; len(k.X.Bytes()) < 32 || len(k.Y.Bytes()) < 32 {
			shortCoordinate = i
		}
	}
	if shortCoordinate < 0 {
		t.Fatal("no key of 2000 has a coordinate with a leading zero byte (expected about 16)")
	}
	for _, i := range []int{0, 1, shortCoordinate} {
		id := seededUser("s", i)
		cose, err := coseES256(&id.key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := webauthncose.ParsePublicKey(cose)
		if err != nil {
			t.Fatalf("user %d: COSE key %x does not parse: %v", i, cose, err)
		}
		ec, ok := parsed.(webauthncose.EC2PublicKeyData)
		if !ok || ec.Algorithm != -7 || len(ec.XCoord) != 32 || len(ec.YCoord) != 32 {
			t.Fatalf("user %d: COSE key %+v, want ES256 with 32-byte coordinates", i, parsed)
		}
		digest := sha256.Sum256([]byte("data"))
		sig, err := ecdsa.SignASN1(rand.Reader, id.key, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := webauthncose.VerifySignature(parsed, []byte("data"), sig); !ok || err != nil {
			t.Errorf("user %d: a signature by the derived key does not verify with its COSE key: %v", i, err)
		}

		att, err := noneAttestation("localhost", id.credID, cose)
		if err != nil {
			t.Fatal(err)
		}
		var obj struct {
			Format   string         `cbor:"fmt"`
			AttStmt  map[string]any `cbor:"attStmt"`
			AuthData []byte         `cbor:"authData"`
		}
		if err := webauthncbor.Unmarshal(att, &obj); err != nil {
			t.Fatalf("attestation object: %v", err)
		}
		rpIDHash := sha256.Sum256([]byte("localhost"))
		ad := obj.AuthData
		switch {
		case obj.Format != "none" || len(obj.AttStmt) != 0:
			t.Errorf("format %q, statement %v: want none, empty", obj.Format, obj.AttStmt)
		case !bytes.Equal(ad[:32], rpIDHash[:]) || ad[32] != 0x45 || binary.BigEndian.Uint32(ad[33:37]) != 0:
			t.Errorf("authData header %x: want the RP ID hash, flags UP|UV|AT, counter 0", ad[:37])
		case !bytes.Equal(ad[37:53], make([]byte, 16)) || binary.BigEndian.Uint16(ad[53:55]) != 32 ||
			!bytes.Equal(ad[55:87], id.credID) || !bytes.Equal(ad[87:], cose):
			t.Errorf("attested credential data %x: want zero AAGUID, the credential id and the COSE key", ad[37:])
		}
	}
}

func TestSeededRangesShareOutTheStore(t *testing.T) {
	const total, workers = 103, 4
	owner := map[int]int{}
	for w := range workers {
		r := newSeededRange("s", w, workers, total, 100)
		for range 2000 {
			u := r.pick()
			i, err := strconv.Atoi(strings.TrimPrefix(u.name, "seed-"))
			if err != nil {
				t.Fatal(err)
			}
			if o, seen := owner[i]; seen && o != w {
				t.Fatalf("seeded user %d picked by workers %d and %d", i, o, w)
			}
			owner[i] = w
			if u.cred.Counter < 99 {
				t.Fatalf("user %d starts below the range's counter: %d", i, u.cred.Counter)
			}
			u.cred.Counter++ // as signIn does
		}
	}
	if len(owner) != total {
		t.Errorf("the workers picked %d distinct users of %d", len(owner), total)
	}
	r := newSeededRange("s", 0, 1, 1, 100)
	first := r.pick()
	first.cred.Counter++
	if again := r.pick(); again != first || again.cred.Counter != 100 {
		t.Errorf("picking the one user again: counter %d, want the same user at 100", again.cred.Counter)
	}
}

func TestSeededCounter(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
		want uint32
	}{
		{"before 2026", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), 1},
		{"at the epoch", counterEpoch, 1},
		{"one second in", counterEpoch.Add(time.Second), 16},
		{"a day in", counterEpoch.Add(24 * time.Hour), 16 * 86400},
		{"past the overflow", counterEpoch.Add(10 * 365 * 24 * time.Hour), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := seededCounter(tc.at); got != tc.want {
				t.Errorf("seededCounter(%s) = %d, want %d", tc.at, got, tc.want)
			}
		})
	}
}
