package badger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Store is webauthnd's Badger database: the embedded backend of [persistence.Store], one
// process over one directory.
type Store struct {
	db *bdb.DB
	// applyMu makes batches from different goroutines commit one after another: the writer
	// actor already sends one at a time, and other callers (start-up, offline commands) then
	// never conflict with it.
	applyMu sync.Mutex
	// mdsMu makes imports of MDS BLOBs run one at a time; mdsGen is the imported BLOB's
	// generation (see [Store.MDSGeneration]).
	mdsMu  sync.Mutex
	mdsGen atomic.Uint64
	// config caches communities and licenses, which every request reads and operators rarely
	// change: only this process writes the store (Badger's directory lock), and Apply clears the
	// cache whenever a batch touched either.
	config sync.Map
	// configGen counts the clears, so that a read that raced one is not cached.
	configGen atomic.Uint64
	// vendorGen counts the committed batches that wrote vendor metadata records (see
	// [Store.VendorGeneration]); keyringGen those that rotated a key (see
	// [Store.KeyringGeneration]).
	vendorGen  atomic.Uint64
	keyringGen atomic.Uint64
	// space refuses writes while the filesystem's free space is below the reserve.
	space *spaceGuard
}

var _ persistence.Store = (*Store)(nil)

// memTableSize is the size of Badger's memtables; a transaction may hold 15 % of it.
// baseTableSize is the size of the tables that compactions write, at every level.
const (
	memTableSize  = 16 << 20
	baseTableSize = 1 << 20
)

// Option changes how Open opens a store.
type Option func(*openOptions)

type openOptions struct{ reserve Reserve }

// WithReserve sets the free space the store keeps on its filesystem (see [Reserve]); without
// it, the default reserve.
func WithReserve(r Reserve) Option { return func(o *openOptions) { o.reserve = r } }

// Open opens (creating if needed) the Badger database in dir with synced writes. It fails
// with a clear error when another process holds the directory. Writes are refused while the
// free space of dir's filesystem is below the reserve (see space.go). A store written by an
// earlier version gets what this one keeps besides (the credential shape tally, the fidoKeyHash
// index) before Open returns.
func Open(dir string, log *zap.Logger, with ...Option) (*Store, error) {
	var o openOptions
	for _, opt := range with {
		opt(&o)
	}
	s, err := open(dir, log, o)
	if err != nil {
		return nil, err
	}
	for _, upgrade := range []func() error{s.tallyShapes, s.indexFidoKeyHashes} {
		if err := upgrade(); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// open opens the database without bringing it up to date, for [Restore], whose backup may
// come from an earlier version: the next Open brings it up to date.
func open(dir string, log *zap.Logger, o openOptions) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	opts := bdb.DefaultOptions(filepath.Clean(dir)).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log.Sugar()}).
		// Memory, measured with `bench seed` and the harness against a server holding 1,000 and
		// 1,000,000 users (128 users signing in, 2 shared CPUs; docs/performance.md):
		//
		// - No compression and no block cache. Compressed (Badger's default, Snappy) every
		//   block read from a table is decompressed into a fresh buffer: 1.5 GB of garbage
		//   per 70,000 sign-ins of a big store, and an anonymous RSS of 250-330 MB (820 MB
		//   with the other defaults). Uncompressed blocks are read in place from the mapped
		//   table, so no block cache is needed: anonymous RSS 110-155 MB with a million users,
		//   80-115 MB with a thousand, for tables 1.6 x larger (739 instead of 456 MB for a
		//   million users with one passkey each). Tables written before keep their
		//   compression (the manifest records it) until compaction rewrites them.
		// - Two compactors and 1 MiB tables at every level: a compaction holds a builder of
		//   twice the table size per table it writes, several at once per compactor; with
		//   the defaults (4 compactors, tables growing to 8 MiB) builders held up to 360 MB.
		// - Memtables of 16 MiB, three of them; an index cache of 16 MiB, which holds the
		//   block indexes and bloom filters of a million users' tables (about 8 MB).
		//
		// The mapped tables count in RSS too, as clean page cache: a random sign-in touches
		// pages all over the store, so with free memory the kernel keeps the whole store
		// mapped (RssFile grows to the store's size); under memory pressure it drops them.
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2).
		WithBaseTableSize(baseTableSize).
		WithMemTableSize(memTableSize).
		WithNumMemtables(3).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10)
	opts.TableSizeMultiplier = 1 // no With method in badger v4
	db, err := bdb.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	s := &Store{db: db, space: newSpaceGuard(filepath.Clean(dir), o.reserve, log)}
	if r := s.space.read(); r.err == nil {
		log.Info("free-space reserve", zap.String("reserve", approxBytes(r.reserve)), zap.String("setting", o.reserve.String()),
			zap.String("free", approxBytes(r.avail)), zap.String("size", approxBytes(r.total)))
		if r.reserve < MinReserve {
			log.Warn("the free-space reserve is below "+approxBytes(MinReserve)+": a quarter of it, what is left when every write "+
				"stops, may not hold what Badger writes on its own (a memtable flush and a compaction's table), so a full disk may still crash the process",
				zap.String("reserve", approxBytes(r.reserve)))
		}
	}
	if err := s.loadMDSGeneration(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	return s, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(txn *bdb.Txn) error {
		_, err := txn.Get([]byte("s/ping"))
		if errors.Is(err, bdb.ErrKeyNotFound) {
			return nil
		}
		return err
	})
}

func join(prefix string, parts ...[]byte) []byte {
	k := []byte(prefix)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func tenantKey(id string) []byte          { return join("t/", []byte(id)) }
func communityKey(id string) []byte       { return join("c/", []byte(id)) }
func userKey(c, name string) []byte       { return join("u/", []byte(c), []byte(name)) }
func handleKey(c string, h []byte) []byte { return join("h/", []byte(c), h) }
func credKey(id []byte) []byte            { return join("k/", id) }
func attestationKey(id []byte) []byte     { return join("ka/", id) }
func userCredPrefix(c, name string) []byte {
	return append(join("uk/", []byte(c), []byte(name)), 0)
}
func tenantDNSKey(host string) []byte { return join("td/", []byte(host)) }
func licenseKey(hash []byte) []byte   { return join("l/", hash) }
func licenseIDKey(id string) []byte   { return join("li/", []byte(id)) }
func secretKey(name string) []byte    { return join("s/", []byte(name)) }

func getJSON(txn *bdb.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return persistence.ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func setJSON(txn *bdb.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

func exists(txn *bdb.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// view runs fn in a read-only transaction, or returns ctx's error when ctx has ended. A read
// of single keys is over in microseconds, so only the start checks ctx; the scans check it
// as they go (see [alive]).
func (s *Store) view(ctx context.Context, fn func(txn *bdb.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// viewJSON reads the JSON value under key into v.
func (s *Store) viewJSON(ctx context.Context, key []byte, v any) error {
	return s.view(ctx, func(txn *bdb.Txn) error { return getJSON(txn, key, v) })
}

// notFound is the answer of a read whose key cannot exist (an id that no record can have):
// ErrNotFound, or ctx's error when ctx has ended, as every read answers then.
func notFound(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return persistence.ErrNotFound
}

// invalid is an invalid_request refusal.
func invalid(format string, a ...any) error {
	return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf(format, a...))
}

// alive returns ctx's error every 256th step n of a scan, so that a long scan stops soon
// after its request ended, at the cost of one check per 256 records.
func alive(ctx context.Context, n int) error {
	if n%256 == 255 {
		return ctx.Err()
	}
	return nil
}

// Tenant returns the tenant with id.
func (s *Store) Tenant(ctx context.Context, id string) (t persistence.Tenant, err error) {
	return t, s.viewJSON(ctx, tenantKey(id), &t)
}

// TenantByDNS returns the tenant that owns a host name (any case; a :port suffix is ignored).
func (s *Store) TenantByDNS(ctx context.Context, host string) (t persistence.Tenant, err error) {
	host, err = persistence.CanonicalHost(host)
	if err != nil {
		return t, notFound(ctx)
	}
	err = s.view(ctx, func(txn *bdb.Txn) error {
		item, err := txn.Get(tenantDNSKey(host))
		if errors.Is(err, bdb.ErrKeyNotFound) {
			return persistence.ErrNotFound
		}
		if err != nil {
			return err
		}
		id, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		return getJSON(txn, tenantKey(string(id)), &t)
	})
	return t, err
}

// CommunityByName returns the community of a tenant with a name. Names are not unique: the
// first by id wins. Communities are few, so this scans them.
func (s *Store) CommunityByName(ctx context.Context, tenantID, name string) (c persistence.Community, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte("c/"), PrefetchValues: true})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if err := alive(ctx, n); err != nil {
				return err
			}
			n++
			var cand persistence.Community
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &cand) }); err != nil {
				return err
			}
			if cand.TenantID == tenantID && cand.Name == name {
				c = cand
				return nil
			}
		}
		return persistence.ErrNotFound
	})
	return c, err
}

// Community returns the community with id.
func (s *Store) Community(ctx context.Context, id string) (persistence.Community, error) {
	return cached(ctx, s, "c/"+id, func() (c persistence.Community, err error) {
		return c, s.viewJSON(ctx, communityKey(id), &c)
	})
}

// cached returns the config record under key, reading it with read on a miss. Missing records
// are not cached. An ended ctx is its error, hit or miss, as for every read.
func cached[T any](ctx context.Context, s *Store, key string, read func() (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	gen := s.configGen.Load()
	if v, ok := s.config.Load(key); ok && v.(cachedRecord).gen == gen {
		return v.(cachedRecord).value.(T), nil
	}
	v, err := read()
	if err == nil {
		// An entry of an older generation is a miss: a read that raced a commit (and stored
		// after the clear) cannot outlive it.
		s.config.Store(key, cachedRecord{gen: gen, value: v})
	}
	return v, err
}

// cachedRecord is a cached config record with the cache generation it was read in.
type cachedRecord struct {
	gen   uint64
	value any
}

// User returns the user of a community by username.
func (s *Store) User(ctx context.Context, communityID, username string) (u persistence.User, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		u, err = getUser(txn, userKey(communityID, username))
		return err
	})
	return u, err
}

// UserByHandle returns the user of a community by WebAuthn user handle.
func (s *Store) UserByHandle(ctx context.Context, communityID string, handle []byte) (u persistence.User, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		item, err := txn.Get(handleKey(communityID, handle))
		if errors.Is(err, bdb.ErrKeyNotFound) {
			return persistence.ErrNotFound
		}
		if err != nil {
			return err
		}
		name, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		u, err = getUser(txn, userKey(communityID, string(name)))
		return err
	})
	return u, err
}

// Credential returns the credential with a raw id, without its AttestationObject (see
// [Store.AttestationObjectOf]).
func (s *Store) Credential(ctx context.Context, id []byte) (c persistence.Credential, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		c, err = getCredential(txn, id)
		return err
	})
	return c, err
}

// AttestationObjectOf returns the attestation object that the registration of credential id
// stored: nil when it stored none, ErrNotFound when there is no such credential. Reads of
// credentials leave it out, as no ceremony needs it after the registration.
func (s *Store) AttestationObjectOf(ctx context.Context, id []byte) (att []byte, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		item, err := txn.Get(attestationKey(id))
		if err == nil {
			att, err = item.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, bdb.ErrKeyNotFound) {
			return err
		}
		// No attestation key: a credential registered without one, or a JSON record of an
		// earlier version that holds it inline.
		c, err := getStoredCredential(txn, id)
		att = c.AttestationObject
		return err
	})
	return att, err
}

// CredentialsOf returns a user's credentials in the order of their ids, each without its
// AttestationObject (see [Store.AttestationObjectOf]).
func (s *Store) CredentialsOf(ctx context.Context, communityID, username string) (out []persistence.Credential, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		out, err = credentialsOf(txn, communityID, username)
		return err
	})
	return out, err
}

// SignInSubject reads the user of a username with its credentials, and the community's most
// common shape, in one transaction (see [persistence.SignInSubjects]). It reads the user's
// credential index and the tally whether or not the user exists, so that an unknown username
// costs what a known one does.
func (s *Store) SignInSubject(ctx context.Context, communityID, username string) (out persistence.SignInSubject, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		u, err := getUser(txn, userKey(communityID, username))
		switch {
		case err == nil:
			out.User, out.Found = u, true
		case !errors.Is(err, persistence.ErrNotFound):
			return err
		}
		creds, err := credentialsOf(txn, communityID, username)
		if err != nil {
			return err
		}
		if out.Found {
			out.Credentials = creds
		}
		out.CommonShape, err = commonShape(txn, communityID)
		return err
	})
	if err != nil {
		return persistence.SignInSubject{}, err
	}
	return out, nil
}

func credentialsOf(txn *bdb.Txn, communityID, username string) ([]persistence.Credential, error) {
	var out []persistence.Credential
	prefix := userCredPrefix(communityID, username)
	it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		id := bytes.TrimPrefix(it.Item().Key(), prefix)
		c, err := getCredential(txn, id)
		if err != nil {
			return nil, fmt.Errorf("credential index points at a missing credential: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// LicenseByKey finds the license of a key by its hash and compares the hash in constant time.
func (s *Store) LicenseByKey(ctx context.Context, key string) (persistence.License, error) {
	hash := persistence.HashLicenseKey(key)
	l, err := cached(ctx, s, "l/"+string(hash), func() (l persistence.License, err error) {
		return l, s.viewJSON(ctx, licenseKey(hash), &l)
	})
	if err != nil {
		return l, err
	}
	if subtle.ConstantTimeCompare(hash, l.KeyHash) != 1 {
		return persistence.License{}, persistence.ErrNotFound
	}
	return l, nil
}

// Secret returns a stored service secret.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(txn *bdb.Txn) error {
		item, err := txn.Get(secretKey(name))
		if errors.Is(err, bdb.ErrKeyNotFound) {
			return persistence.ErrNotFound
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// Empty reports whether the store holds no community yet.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := s.view(ctx, func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte("c/")})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty, err
}

type badgerLogger struct{ s *zap.SugaredLogger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.s.Errorf("badger: "+f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.s.Warnf("badger: "+f, a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.s.Debugf("badger: "+f, a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.s.Debugf("badger: "+f, a...) }

// AllLicenses returns every license (never a key: only hashes are stored).
func (s *Store) AllLicenses(ctx context.Context) ([]persistence.License, error) {
	var out []persistence.License
	err := s.view(ctx, func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte("l/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := alive(ctx, len(out)); err != nil {
				return err
			}
			var l persistence.License
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &l) }); err != nil {
				return err
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

// Digest is a SHA-256 over every key and value in key order, leaving out the keys under the
// given prefixes (such as [ReplayPrefix]). Tests use it to show that refused requests changed
// nothing.
func (s *Store) Digest(skip ...string) ([]byte, error) {
	h := sha256.New()
	err := s.db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.DefaultIteratorOptions)
		defer it.Close()
	next:
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			for _, p := range skip {
				if bytes.HasPrefix(key, []byte(p)) {
					continue next
				}
			}
			value, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%d:%s=%d:%s;", len(key), key, len(value), value)
		}
		return nil
	})
	return h.Sum(nil), err
}
