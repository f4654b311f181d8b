package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/actors"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/persistence"
)

// The keyrings of the service's own keys, and how long retired keys stay useful.
const (
	envelopeRing = "envelope"
	signingRing  = "signing"
	// envelopeGrace is how long the previous envelope key still decrypts after a rotation:
	// clients cache /publickeys for up to 10 minutes.
	envelopeGrace = 15 * time.Minute
	// signingKeep is the least time a retired signing key stays in the store. A node publishes
	// a retired key for its own --token-ttl after the retirement (see actors.Signer), and the
	// process that rotates (a management command with its default --token-ttl, or a node with
	// a shorter one) need not know the longest of them: a day covers every lifetime we expect,
	// and keeping a key longer publishes nothing more.
	signingKeep = 24 * time.Hour
	// keyringPoll is how often a node checks the store's keyring generation, so that a
	// rotation through another node or a management command reaches it within a second.
	keyringPoll = 200 * time.Millisecond
)

// keyManager owns the service's keys: it creates them on first start, installs them in the
// envelope keyring (httpapi) and the token signer (actors), and rotates them. Private keys live
// only in the store.
//
// Every node of a shared database installs the same keys: each follows the store's keyring
// generation (follow) and reloads when it moves, whoever rotated. The grace windows of
// retired keys come from the retirement time stored with each key, never from the clock of
// the process that loads them.
type keyManager struct {
	store    persistence.Keyrings
	write    func(context.Context, persistence.Op) (any, error)
	tokenTTL time.Duration
	envelope *httpapi.Keyring
	signer   *actors.Signer

	// mu serializes load, so that of two loads (a rotation's and follow's) the one that read
	// last installs last; gen is the keyring generation the installed keys were read at.
	mu  sync.Mutex
	gen uint64
}

func newEnvelopeRecord(curve string) (persistence.KeyRecord, error) {
	key, err := httpapi.NewEnvelopeKey(curve)
	if err != nil {
		return persistence.KeyRecord{}, err
	}
	return persistence.KeyRecord{Kind: key.Curve(), Private: key.Bytes(), Created: time.Now().UTC()}, nil
}

func newSigningRecord() (persistence.KeyRecord, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return persistence.KeyRecord{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	return persistence.KeyRecord{Kind: "ES256", Private: der, Created: time.Now().UTC()}, err
}

// ensure creates both keyrings when absent and checks the envelope curve against the flag.
// It writes only a keyring that is absent, so that a server restarts on a store whose disk is
// too full for writes (see the Badger store's free-space reserve).
func (m *keyManager) ensure(ctx context.Context, curve string) error {
	want, err := httpapi.CanonicalCurve(curve)
	if err != nil {
		return err
	}
	env, err := m.ensureRing(ctx, envelopeRing, func() (persistence.KeyRecord, error) { return newEnvelopeRecord(curve) })
	if err != nil {
		return err
	}
	if stored := env.Keys[0].Kind; stored != want {
		return fmt.Errorf("the stored envelope key is on %s, not %s; change curves with `webauthnd keys rotate --envelope --ec-curve %s`",
			stored, want, curve)
	}
	_, err = m.ensureRing(ctx, signingRing, newSigningRecord)
	return err
}

// ensureRing returns the keyring name, creating it with a key from generate when absent.
func (m *keyManager) ensureRing(ctx context.Context, name string, generate func() (persistence.KeyRecord, error)) (persistence.Keyring, error) {
	ring, err := m.store.Keyring(ctx, name)
	if err == nil && len(ring.Keys) > 0 {
		return ring, nil
	}
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return ring, fmt.Errorf("%s keyring: %w", name, err)
	}
	rec, err := generate()
	if err != nil {
		return ring, err
	}
	// OnlyIfAbsent: two first starts that race agree on one key.
	v, err := m.write(ctx, persistence.RotateKey{Name: name, New: rec, OnlyIfAbsent: true})
	if err != nil {
		return ring, err
	}
	return v.(persistence.Keyring), nil
}

// load reads both keyrings and installs them.
func (m *keyManager) load(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The generation before the reads: a rotation that lands during them moves it past gen,
	// and follow loads once more.
	gen := m.store.KeyringGeneration()
	ring, err := m.store.Keyring(ctx, envelopeRing)
	if err != nil {
		return fmt.Errorf("envelope keyring: %w", err)
	}
	current, err := httpapi.ParseEnvelopeKey(ring.Keys[0].Kind, ring.Keys[0].Private)
	if err != nil {
		return err
	}
	var previous *httpapi.EnvelopeKey
	var until time.Time
	if len(ring.Keys) > 1 {
		if previous, err = httpapi.ParseEnvelopeKey(ring.Keys[1].Kind, ring.Keys[1].Private); err != nil {
			return err
		}
		until = ring.Keys[1].Retired.Add(envelopeGrace)
	}
	if m.envelope == nil {
		m.envelope = httpapi.NewKeyring(current)
	}
	m.envelope.Set(current, previous, until)

	ring, err = m.store.Keyring(ctx, signingRing)
	if err != nil {
		return fmt.Errorf("signing keyring: %w", err)
	}
	var signing *ecdsa.PrivateKey
	var retired []actors.RetiredKey
	for i, k := range ring.Keys {
		parsed, err := x509.ParsePKCS8PrivateKey(k.Private)
		if err != nil {
			return fmt.Errorf("signing key: %w", err)
		}
		key, ok := parsed.(*ecdsa.PrivateKey)
		if !ok {
			return errors.New("signing key: not an ECDSA key")
		}
		if i == 0 {
			signing = key
		} else {
			retired = append(retired, actors.RetiredKey{Public: &key.PublicKey, Retired: k.Retired})
		}
	}
	if m.signer == nil {
		return nil // before the engine exists; serve loads again once it does
	}
	if err := m.signer.SetKeys(signing, retired); err != nil {
		return err
	}
	m.gen = gen
	return nil
}

// follow reloads the keys whenever the store's keyring generation moves past the one they were
// read at, checking every interval (one atomic load: over PostgreSQL the generation moves when
// the store is notified of a rotation, see persistence.Keyrings), until ctx ends. A failed
// reload is logged and tried again at the next check.
func (m *keyManager) follow(ctx context.Context, every time.Duration, log *zap.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		stale := m.store.KeyringGeneration() != m.gen
		m.mu.Unlock()
		if !stale {
			continue
		}
		if err := m.load(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("reload the keys after a rotation (tried again shortly)", zap.Error(err))
			}
			continue
		}
		log.Info("keys reloaded after a rotation")
	}
}

// currentSigningKey returns the current token signing key.
func (m *keyManager) currentSigningKey(ctx context.Context) (*ecdsa.PrivateKey, error) {
	ring, err := m.store.Keyring(ctx, signingRing)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(ring.Keys[0].Private)
	if err != nil {
		return nil, err
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("signing key: not an ECDSA key")
	}
	return key, nil
}

// rotateRequest is what `webauthnd keys rotate` asks for.
type rotateRequest struct {
	Envelope bool   `json:"envelope"`
	Curve    string `json:"curve,omitempty"`
	Signing  bool   `json:"signing"`
}

// rotate replaces the keys asked for and installs the result. A retired envelope key keeps
// decrypting for envelopeGrace; a retired signing key stays published for the token lifetime.
func (m *keyManager) rotate(ctx context.Context, req rotateRequest) (any, error) {
	if !req.Envelope && !req.Signing {
		return nil, errors.New("say what to rotate: --envelope and/or --signing")
	}
	done := map[string]any{}
	if req.Envelope {
		curve := req.Curve
		if curve == "" {
			ring, err := m.store.Keyring(ctx, envelopeRing)
			if err != nil {
				return nil, err
			}
			curve = ring.Keys[0].Kind
		}
		rec, err := newEnvelopeRecord(curve)
		if err != nil {
			return nil, err
		}
		if _, err := m.write(ctx, persistence.RotateKey{Name: envelopeRing, New: rec, Keep: envelopeGrace}); err != nil {
			return nil, err
		}
		done["envelope"] = rec.Kind
	}
	if req.Signing {
		rec, err := newSigningRecord()
		if err != nil {
			return nil, err
		}
		if _, err := m.write(ctx, persistence.RotateKey{Name: signingRing, New: rec, Keep: max(m.tokenTTL+time.Minute, signingKeep)}); err != nil {
			return nil, err
		}
		done["signing"] = rec.Kind
	}
	if m.envelope != nil {
		if err := m.load(ctx); err != nil {
			return nil, err
		}
	}
	return map[string]any{"rotated": done}, nil
}

// applyOne is a write function that applies each op in a batch of its own on w: what start-up
// and the management commands write with before (or without) the engine's writer.
func applyOne(w persistence.Writer) func(context.Context, persistence.Op) (any, error) {
	return func(ctx context.Context, op persistence.Op) (any, error) { return persistence.ApplyOne(ctx, w, op) }
}

// secretStore is what decoySecret reads and writes.
type secretStore interface {
	persistence.Secrets
	persistence.Writer
}

// decoySecret returns the secret that derives decoy credentials, creating it on first start.
func decoySecret(ctx context.Context, store secretStore) ([]byte, error) {
	if v, err := store.Secret(ctx, "decoy-secret"); err == nil {
		return v, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	v, err := persistence.ApplyOne(ctx, store, persistence.PutSecretIfAbsent{Name: "decoy-secret", Value: fresh})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
