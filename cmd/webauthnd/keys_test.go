package main

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"math/big"
)

// ecdsaP256 parses an uncompressed P-256 point.
func ecdsaP256(point []byte) (*ecdsa.PublicKey, error) {
	if _, err := ecdh.P256().NewPublicKey(point); err != nil {
		return nil, err
	}
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(point[1:33]), Y: new(big.Int).SetBytes(point[33:])}, nil
}
