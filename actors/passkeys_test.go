package actors

import (
	"crypto/ecdh"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// coseEC2 is a COSE EC2 key on P-256 that names alg, with the given point (a fresh one when nil).
func coseEC2(t *testing.T, alg webauthncose.COSEAlgorithmIdentifier, x, y []byte) []byte {
	t.Helper()
	if x == nil {
		key, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		point := key.PublicKey().Bytes()
		x, y = point[1:33], point[33:]
	}
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(alg)},
		Curve:         int64(webauthncose.P256),
		XCoord:        x,
		YCoord:        y,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cose
}

func TestCheckPublicKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		cose []byte
		alg  int64
		want string // a part of the refusal; empty for none
	}{
		{"an ES256 key that names ES256 is accepted", coseEC2(t, webauthncose.AlgES256, nil, nil), -7, ""},
		{"an algorithm other than the key's own is refused", coseEC2(t, webauthncose.AlgES256, nil, nil), -257, "the COSE key's own algorithm is -7"},
		{"a key of an algorithm registrations do not offer (RS1) is refused", coseEC2(t, webauthncose.AlgRS1, nil, nil), -65535, "invalid_credential"},
		{"bytes that are no COSE key are refused", []byte("not cbor"), -7, "not a COSE key"},
		{"no bytes at all are refused", nil, -7, "not a COSE key"},
		{"a point of the wrong length is refused", coseEC2(t, webauthncose.AlgES256, make([]byte, 5), make([]byte, 5)), -7, "not a COSE key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPublicKey(tc.cose, tc.alg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckPublicKey = %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckPublicKey = %v; want a refusal saying %q", err, tc.want)
			}
		})
	}
}
