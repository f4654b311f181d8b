package actors

// Challenges that say who may answer them. A challenge carries MACs under a key every node of a
// cluster shares (Config.ChallengeKey), so that any node can tell, from the challenge alone and
// before it touches the store or a supervisor, whether the challenge was issued by the service,
// for this kind of ceremony, in this community, under this license, and for this sessionInfo.
//
//	bytes  0..15  random (the spec asks for at least 16 random bytes)
//	bytes 16..23  HMAC-SHA-256(key, "webauthnd/ceremony" | random | kind | community | license)[:8]
//	bytes 24..31  HMAC-SHA-256(key, "webauthnd/session" | random | sessionInfo)[:8]
//
// A ceremony is named by a digest of its random bytes (ceremonyName): its actor on every node,
// and its state in a shared store. The first tag refuses made-up challenges and those of another community, kind or license as
// ceremony_not_found. The second is separate because a result may leave sessionInfo out (then
// nothing checks it, as before); one that names another sessionInfo is session_mismatch. Both
// answers come before any read of the ceremony's stored state, so neither consumes it: on the
// node that issued the ceremony, as on any other, a result under the wrong license or with the
// wrong sessionInfo leaves the ceremony to the right one.
//
// 8-byte tags are enough for what they guard: forging one takes 2^63 requests on average, and
// a forged tag buys one read of the ceremony table that finds nothing (the random half is not
// known) or, with a live ceremony's challenge and another license of the same community, the
// loss of that one ceremony. The tags are compared in constant time.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"

	"github.com/webauthnd/webauthnd/messages"
)

const (
	// challengeSize is the number of bytes in a challenge.
	challengeSize = 32
	// challengeRandom is the number of random bytes at its start.
	challengeRandom = 16
	// challengeTag is the length of each of its two MACs.
	challengeTag = 8
	// challengeKeySize is the length of a ChallengeKey that NewEngine makes for an engine that
	// is given none (one process, ceremonies in memory), and the least it accepts otherwise.
	challengeKeySize = 32
)

// fixedChallenge, when a test sets it, is every ceremony's challenge, and a result that carries
// it passes the MAC check (no other challenge does without its MACs): the W3C test vectors'
// challenges are fixed and carry no MAC. No API sets it; only tests in this package do.
var fixedChallenge []byte

var errSessionMismatch = messages.Errorf(messages.CodeSessionMismatch,
	"the sessionInfo does not belong to the ceremony of this challenge")

// challenges issues and checks challenges under one key. It is immutable (its keyed HMAC is
// only cloned, never written), so ceremonies, supervisors and callers share it.
//
// A challenge is made in two steps, so that the supervisor, which every ceremony of its
// community waits on, only draws random bytes (as it did before challenges had MACs): random
// gives the bytes that name the ceremony, and the ceremony actor seals them with the MACs.
type challenges struct{ mac hash.Cloner }

// newChallenges keys the MACs of challenges with key.
func newChallenges(key []byte) challenges {
	return challenges{mac: hmac.New(sha256.New, key).(hash.Cloner)}
}

// random draws a new ceremony's random bytes (or, in a test, its fixed challenge).
func (k challenges) random() []byte {
	if fixedChallenge != nil {
		return bytes.Clone(fixedChallenge)
	}
	r := make([]byte, challengeRandom, challengeSize)
	_, _ = rand.Read(r) // crypto/rand.Read never fails (Go 1.24+)
	return r
}

// seal makes the challenge of random, issued for a ceremony of kind kd in the community under
// the license, and for sessionInfo.
func (k challenges) seal(random []byte, kd kind, communityID, licenseID, sessionInfo string) []byte {
	if fixedChallenge != nil {
		return random
	}
	c := append(random[:challengeRandom:challengeSize], k.ceremonyTag(random, kd, communityID, licenseID)...)
	return append(c, k.sessionTag(random, sessionInfo)...)
}

// check tells whether a result's challenge is one this service issued for a ceremony of kind
// kd in the community under the license, and returns the name of its ceremony: errCeremonyNotFound
// when not (a made-up challenge, or one of another community, kind or license, gets the answer
// an expired one gets). When the result names a sessionInfo, it must be the ceremony's:
// errSessionMismatch otherwise.
func (k challenges) check(challenge []byte, kd kind, communityID, licenseID, sessionInfo string) (string, error) {
	if fixedChallenge != nil && subtle.ConstantTimeCompare(challenge, fixedChallenge) == 1 {
		return ceremonyName(challenge), nil
	}
	if len(challenge) != challengeSize {
		return "", errCeremonyNotFound
	}
	random := challenge[:challengeRandom]
	if !hmac.Equal(challenge[challengeRandom:challengeRandom+challengeTag], k.ceremonyTag(random, kd, communityID, licenseID)) {
		return "", errCeremonyNotFound
	}
	if sessionInfo != "" && !hmac.Equal(challenge[challengeRandom+challengeTag:], k.sessionTag(random, sessionInfo)) {
		return "", errSessionMismatch
	}
	return ceremonyName(random), nil
}

func (k challenges) ceremonyTag(random []byte, kd kind, communityID, licenseID string) []byte {
	mac := k.keyed()
	mac.Write([]byte("webauthnd/ceremony"))
	mac.Write(random)
	mac.Write([]byte{byte(kd)})
	writeField(mac, communityID)
	writeField(mac, licenseID)
	var sum [sha256.Size]byte
	return mac.Sum(sum[:0])[:challengeTag]
}

func (k challenges) sessionTag(random []byte, sessionInfo string) []byte {
	mac := k.keyed()
	mac.Write([]byte("webauthnd/session"))
	mac.Write(random)
	writeField(mac, sessionInfo)
	var sum [sha256.Size]byte
	return mac.Sum(sum[:0])[:challengeTag]
}

// keyed is a fresh HMAC in the keyed state: a clone, which spares hashing the key's pads again.
func (k challenges) keyed() hash.Hash {
	mac, err := k.mac.Clone()
	if err != nil {
		panic(err) // HMAC-SHA-256 of the standard library always clones
	}
	return mac
}

// writeField writes s with its length first, so that no two lists of fields hash alike.
func writeField(h hash.Hash, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}
