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
// The first tag refuses made-up challenges and those of another community, kind or license as
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

// challenges issues and checks challenges under one key; it is immutable, so ceremonies,
// supervisors and callers share it.
type challenges struct{ key []byte }

// issue makes the challenge of a new ceremony.
func (k challenges) issue(kd kind, communityID, licenseID, sessionInfo string) []byte {
	if fixedChallenge != nil {
		return append([]byte(nil), fixedChallenge...)
	}
	c := make([]byte, challengeRandom, challengeSize)
	_, _ = rand.Read(c) // crypto/rand.Read never fails (Go 1.24+)
	c = append(c, k.ceremonyTag(c, kd, communityID, licenseID)...)
	return append(c, k.sessionTag(c[:challengeRandom], sessionInfo)...)
}

// check tells whether a result's challenge is one this service issued for a ceremony of kind
// kd in the community under the license: errCeremonyNotFound when not (a made-up challenge, or
// one of another community, kind or license get the same answer as an expired one). When the
// result names a sessionInfo, it must be the ceremony's: errSessionMismatch otherwise.
func (k challenges) check(challenge []byte, kd kind, communityID, licenseID, sessionInfo string) error {
	if fixedChallenge != nil && subtle.ConstantTimeCompare(challenge, fixedChallenge) == 1 {
		return nil
	}
	if len(challenge) != challengeSize {
		return errCeremonyNotFound
	}
	random := challenge[:challengeRandom]
	if !hmac.Equal(challenge[challengeRandom:challengeRandom+challengeTag], k.ceremonyTag(random, kd, communityID, licenseID)) {
		return errCeremonyNotFound
	}
	if sessionInfo != "" && !hmac.Equal(challenge[challengeRandom+challengeTag:], k.sessionTag(random, sessionInfo)) {
		return errSessionMismatch
	}
	return nil
}

func (k challenges) ceremonyTag(random []byte, kd kind, communityID, licenseID string) []byte {
	mac := hmac.New(sha256.New, k.key)
	mac.Write([]byte("webauthnd/ceremony"))
	mac.Write(random)
	mac.Write([]byte{byte(kd)})
	writeField(mac, communityID)
	writeField(mac, licenseID)
	return mac.Sum(nil)[:challengeTag]
}

func (k challenges) sessionTag(random []byte, sessionInfo string) []byte {
	mac := hmac.New(sha256.New, k.key)
	mac.Write([]byte("webauthnd/session"))
	mac.Write(random)
	writeField(mac, sessionInfo)
	return mac.Sum(nil)[:challengeTag]
}

// writeField writes s with its length first, so that no two lists of fields hash alike.
func writeField(h hash.Hash, s string) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
	h.Write([]byte(s))
}
