package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// A seeded store holds users seed-0 … seed-(N-1), each with one ES256 passkey, all derived from
// a seed string: `bench seed` writes them, and the sign-in scenarios with --seeded derive the
// same keys to sign in as them. The derivations use HMAC-SHA256 keyed by the seed, so a store
// and a run agree exactly when they were given the same seed.

// seededIdentity is what both sides derive for seeded user i.
type seededIdentity struct {
	username string
	handle   []byte // WebAuthn user handle, 32 bytes
	credID   []byte // credential id, 32 bytes
	key      *ecdsa.PrivateKey
}

// derive is HMAC-SHA256(seed, label).
func derive(seed, label string) []byte {
	mac := hmac.New(sha256.New, []byte(seed))
	mac.Write([]byte(label))
	return mac.Sum(nil)
}

// seededUser derives user i of a seed: username seed-<i>; the P-256 private scalar
// HMAC(seed, "webauthnd-bench/<i>"), or, in the rare case (about 2^-32) that this is not a
// valid scalar, HMAC(seed, "webauthnd-bench/<i>/<try>") for the first try that is; the handle
// HMAC(seed, "webauthnd-bench/handle/<i>"); the credential id
// HMAC(seed, "webauthnd-bench/credential/<i>").
func seededUser(seed string, i int) seededIdentity {
	label := "webauthnd-bench/" + strconv.Itoa(i)
	var key *ecdsa.PrivateKey
	for try := 0; key == nil; try++ {
		l := label
		if try > 0 {
			l += "/" + strconv.Itoa(try)
		}
		key, _ = ecdsa.ParseRawPrivateKey(elliptic.P256(), derive(seed, l))
	}
	return seededIdentity{
		username: "seed-" + strconv.Itoa(i),
		handle:   derive(seed, "webauthnd-bench/handle/"+strconv.Itoa(i)),
		credID:   derive(seed, "webauthnd-bench/credential/"+strconv.Itoa(i)),
		key:      key,
	}
}

// coseES256 is the COSE_Key (RFC 9053) of an ES256 public key, with both coordinates 32 bytes
// long, in CTAP2 canonical CBOR.
func coseES256(pub *ecdsa.PublicKey) ([]byte, error) {
	point, err := pub.Bytes() // 0x04 ‖ X ‖ Y, fixed length
	if err != nil {
		return nil, err
	}
	return webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256),
		XCoord:        point[1:33],
		YCoord:        point[33:65],
	})
}

// noneAttestation is the attestation object of format "none" that a registration of the
// credential would have carried: authenticator data with the user present and verified flags and
// the attested credential data (zero AAGUID, the credential id, its COSE key), counter 0.
func noneAttestation(rpID string, credID, coseKey []byte) ([]byte, error) {
	rpIDHash := sha256.Sum256([]byte(rpID))
	authData := append(rpIDHash[:], flagUserPresent|flagUserVerified|flagAttestedData)
	authData = binary.BigEndian.AppendUint32(authData, 0)
	authData = append(authData, make([]byte, 16)...) // AAGUID
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(credID)))
	authData = append(authData, credID...)
	authData = append(authData, coseKey...)
	return webauthncbor.Marshal(struct {
		Format       string         `cbor:"fmt"`
		AttStatement map[string]any `cbor:"attStmt"`
		AuthData     []byte         `cbor:"authData"`
	}{"none", map[string]any{}, authData})
}

// flagAttestedData marks authenticator data that carries attested credential data.
const flagAttestedData = 0x40

// seededRange is the share of a seeded store that one worker signs in as: the users whose
// index is worker modulo the number of workers, so that no two workers ever use one passkey
// and each passkey's counter only goes up. It derives a user's key on first use and keeps it,
// with the counter, for the rest of the run. It belongs to one worker goroutine.
type seededRange struct {
	seed          string
	first, stride int // users first, first+stride, … below total
	total         int
	counter       uint32 // the counter of a user's first sign-in in this run
	known         map[int]*user
}

// newSeededRange is worker's share of a store of total users derived from seed, whose first
// sign-ins of the run use counter.
func newSeededRange(seed string, worker, workers, total int, counter uint32) *seededRange {
	return &seededRange{seed: seed, first: worker, stride: workers, total: total, counter: counter, known: map[int]*user{}}
}

// counterEpoch and counterTicksPerSecond make seededCounter.
var counterEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const counterTicksPerSecond = 16

// seededCounter is the counter of each seeded user's first sign-in in a run that starts at now:
// the sixteenths of a second since 2026, so that a later run on the same store starts above
// the counters an earlier one left, unless a user signed in more than 16 times a second on
// average between the two runs' starts. A freshly seeded store (counters 0) takes any counter.
// The counter is 1 before 2026 and once it would overflow (in 2034, leaving 2^24 sign-ins of
// headroom): then a store serves one run.
func seededCounter(now time.Time) uint32 {
	ticks := now.Sub(counterEpoch) / (time.Second / counterTicksPerSecond)
	if ticks < 1 || ticks > math.MaxUint32-1<<24 {
		return 1
	}
	return uint32(ticks)
}

// size is the number of users in the range.
func (r *seededRange) size() int { return (r.total - r.first + r.stride - 1) / r.stride }

// pick returns a user of the range chosen uniformly at random. Its counter is the one of its
// last sign-in of this run (signIn adds one), or on its first, one below the range's counter.
func (r *seededRange) pick() *user {
	i := r.first + rand.IntN(r.size())*r.stride
	if u, ok := r.known[i]; ok {
		return u
	}
	id := seededUser(r.seed, i)
	u := &user{name: id.username, key: id.key, cred: virtualwebauthn.Credential{ID: id.credID, Counter: r.counter - 1}}
	u.auth.Options.UserHandle = id.handle
	r.known[i] = u
	return u
}
