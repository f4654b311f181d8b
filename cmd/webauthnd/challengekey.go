package main

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/webauthnd/webauthnd/persistence"
)

// challengeKeyName is the store secret under which the challenges' MAC key is kept.
const challengeKeyName = "challenge-mac"

// challengeKey returns the key under which challenges carry their MACs (see actors.Config), one
// for every node of a store, so that a challenge one node issued checks on any other. The first
// start creates it; starts that race (nodes over one database) all end with the one stored.
func challengeKey(ctx context.Context, store interface {
	persistence.Secrets
	persistence.Writer
}) ([]byte, error) {
	if v, err := store.Secret(ctx, challengeKeyName); err == nil {
		return v, nil
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh) // crypto/rand.Read never fails (Go 1.24+)
	v, err := persistence.ApplyOne(ctx, store, persistence.PutSecretIfAbsent{Name: challengeKeyName, Value: fresh})
	if err != nil {
		return nil, fmt.Errorf("challenge key: %w", err)
	}
	return v.([]byte), nil
}
