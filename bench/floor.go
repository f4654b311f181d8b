package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"time"
)

// Floor is the cryptographic floor of a sign-in: what the server cannot avoid doing, one P-256
// ECDSA signature verification (the assertion) and one ES256 signature (the token), each over a
// SHA-256 digest, timed with crypto/ecdsa on one core.
type Floor struct {
	VerifyMicros float64 `json:"verify_us"`
	SignMicros   float64 `json:"sign_us"`
	TotalMicros  float64 `json:"total_us"`
}

// floorRounds is how many rounds each operation is timed; the fastest round is kept, as the
// one least disturbed by the rest of the machine.
const floorRounds = 5

// measureFloor times the floor with iterations per round. It runs on one goroutine locked to
// one thread, before any load starts.
func measureFloor(iterations int) Floor {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	// A digest of what an assertion signs: authenticatorData (37 bytes) || SHA-256(clientDataJSON).
	digest := sha256.Sum256(make([]byte, 37+32))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		panic(err)
	}
	verify := fastestRound(iterations, func() {
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
			panic("floor: signature does not verify")
		}
	})
	sign := fastestRound(iterations, func() {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			panic(err)
		}
	})
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return Floor{VerifyMicros: us(verify), SignMicros: us(sign), TotalMicros: us(verify + sign)}
}

// fastestRound returns the time per call of f in the fastest of floorRounds rounds.
func fastestRound(iterations int, f func()) time.Duration {
	best := time.Duration(0)
	for range floorRounds {
		start := time.Now()
		for range iterations {
			f()
		}
		if d := time.Since(start) / time.Duration(iterations); best == 0 || d < best {
			best = d
		}
	}
	return best
}
