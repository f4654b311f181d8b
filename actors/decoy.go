package actors

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/webauthnd/webauthnd/persistence"
)

// Decoys. A sign-in by username for a username without passkeys must look, from outside, like
// one for a real user: options with allowCredentials of the shape real users of the community
// show (how many passkeys, id lengths, transports: the community's most common shape, from the
// store's shape tally), the same for every call with that username; and a result naming one of
// those ids must fail exactly as a forged assertion on a real passkey does, after the same
// work. So a decoy is a user, made up on the fly from the decoy secret, whose passkeys carry
// decoyPublicKey, and its ceremony runs the same code as a real one.

// defaultDecoyShape is the decoys' shape in a community where nobody has a passkey yet (no
// real user to resemble): one platform passkey with a 32-byte id.
var defaultDecoyShape = []persistence.CredentialShape{{IDLength: 32, Transports: []string{"hybrid", "internal"}}}

// decoyPublicKey is the COSE key of every decoy passkey: an ES256 key whose private half was
// dropped when the process started, so no assertion verifies against it, and checking one costs
// what checking a real ES256 passkey's costs.
var decoyPublicKey = func() []byte {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	point := key.PublicKey().Bytes() // 0x04 || X || Y
	x, y := point[1:33], point[33:]
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256),
		XCoord:        x,
		YCoord:        y,
	})
	if err != nil {
		panic(err)
	}
	return cose
}()

// decoyUser is the made-up user of an unknown username: a stable 32-byte handle and passkeys of
// the community's common shape (shape, read with the username: nil when nobody in the
// community has a passkey) with stable ids, all derived from the decoy secret.
func (c *ceremony) decoyUser(communityID, username string, shape []persistence.CredentialShape) *waUser {
	if len(shape) == 0 {
		shape = defaultDecoyShape
	}
	secret := c.deps.cfg.DecoySecret
	w := &waUser{u: persistence.User{CommunityID: communityID, Username: username, DisplayName: username,
		Handle: decoyBytes(secret, 32, "handle", communityID, username, 0)}}
	for i, s := range shape {
		cred := webauthn.Credential{
			ID:        decoyBytes(secret, s.IDLength, "credential", communityID, username, i),
			PublicKey: decoyPublicKey,
			Flags:     webauthn.CredentialFlags{UserPresent: true},
		}
		for _, t := range s.Transports {
			cred.Transport = append(cred.Transport, protocol.AuthenticatorTransport(t))
		}
		w.creds = append(w.creds, cred)
	}
	// A real user's passkeys are listed in the order of their ids.
	slices.SortFunc(w.creds, func(a, b webauthn.Credential) int { return bytes.Compare(a.ID, b.ID) })
	return w
}

// decoyBytes derives n bytes from the secret for one purpose (handle or credential), one user
// and an index: HMAC-SHA-256 in counter mode, so an id of any length is stable, and a longer one
// starts with a shorter one's bytes.
func decoyBytes(secret []byte, n int, purpose, communityID, username string, index int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for block := uint32(0); len(out) < n; block++ {
		mac := hmac.New(sha256.New, secret)
		for _, part := range []string{purpose, communityID, username} {
			mac.Write([]byte(part))
			mac.Write([]byte{0})
		}
		mac.Write(binary.BigEndian.AppendUint32(nil, uint32(index)))
		mac.Write(binary.BigEndian.AppendUint32(nil, block))
		out = mac.Sum(out)
	}
	return out[:n]
}
