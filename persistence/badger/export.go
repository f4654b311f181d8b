package badger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

var _ persistence.Exporter = (*Store)(nil)

// exportedPrefixes are the prefixes of the records an export yields, and derivedPrefixes those
// of what the records imply (indexes, shape tallies, marks of one-time changes, the MDS indexes
// and entries of generations no longer current), which a target derives again on its own.
// Every key of the store must start with one of them: a key of any other prefix (a kind of
// record added without a thought for the export) fails the export, rather than being left
// behind without a word. Order matters where one prefix starts another ("k/" and "ka/" do
// not: each ends at its slash).
var (
	exportedPrefixes = []string{"t/", "c/", "l/", "s/", "kr/", "u/", "k/", "ka/", "vm/", mdsBlobKey, mdsEntryPrefix, ReplayPrefix}
	derivedPrefixes  = []string{"td/", "h/", "uk/", "kh/", "kd/", "li/", "ds/", "dm/", "m/", mdsAAGUIDPrefix, mdsKeyIDPrefix}
)

// Export yields every record of the store from one snapshot, in the order [persistence.Exporter]
// gives: tenants, communities, licenses, secrets, keyrings, users each with its credentials
// (attestation objects included, from their own key or from a JSON record of an earlier version
// that holds it inline), vendor records, the MDS BLOB with its entries, and the expiry of each
// live replay record. It first checks that every key of the store has a prefix it knows, and
// that every credential is indexed under its user (so that none is left out), and fails
// otherwise. It is meant for a store that no server holds (webauthnd migrate), whose operator
// reads its errors: they carry their causes, unlike the internal errors of the wire.
func (s *Store) Export(ctx context.Context, yield func(persistence.Exported) error) error {
	return s.view(ctx, func(txn *bdb.Txn) error {
		credentials, err := checkExportable(ctx, txn)
		if err != nil {
			return err
		}
		e := exporter{ctx: ctx, txn: txn, yield: yield}
		steps := []func() error{
			func() error {
				return jsonUnder(e, "t/", func(t persistence.Tenant) persistence.Exported { return persistence.ExportedTenant{Tenant: t} })
			},
			func() error {
				return jsonUnder(e, "c/", func(c persistence.Community) persistence.Exported {
					return persistence.ExportedCommunity{Community: c}
				})
			},
			func() error {
				return jsonUnder(e, "l/", func(l persistence.License) persistence.Exported { return persistence.ExportedLicense{License: l} })
			},
			e.secrets,
			e.keyrings,
			func() error { return e.users(credentials) },
			func() error {
				return jsonUnder(e, "vm/", func(r persistence.VendorRecord) persistence.Exported {
					return persistence.ExportedVendorRecord{Record: r}
				})
			},
			e.mds,
			e.replays,
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkExportable checks that every key has a known prefix, and returns how many credentials
// the store holds.
func checkExportable(ctx context.Context, txn *bdb.Txn) (credentials int, err error) {
	it := txn.NewIterator(bdb.IteratorOptions{})
	defer it.Close()
	n := 0
next:
	for it.Rewind(); it.Valid(); it.Next() {
		if err := alive(ctx, n); err != nil {
			return 0, err
		}
		n++
		key := it.Item().Key()
		for _, p := range exportedPrefixes {
			if bytes.HasPrefix(key, []byte(p)) {
				if p == "k/" {
					credentials++
				}
				continue next
			}
		}
		for _, p := range derivedPrefixes {
			if bytes.HasPrefix(key, []byte(p)) {
				continue next
			}
		}
		return 0, fmt.Errorf("export: the store holds a key %q of a kind this version cannot export", shortKey(key))
	}
	return credentials, nil
}

// shortKey is the start of a key, enough to name its kind, never a whole secret or hash.
func shortKey(key []byte) string {
	if i := bytes.IndexByte(key, '/'); i >= 0 && i < 16 {
		return string(key[:i+1]) + "…"
	}
	return string(key[:min(len(key), 8)]) + "…"
}

// exporter walks one snapshot.
type exporter struct {
	ctx   context.Context
	txn   *bdb.Txn
	yield func(persistence.Exported) error
}

// each calls fn with the key and value of every key under prefix, in key order.
func (e exporter) each(prefix string, fn func(key, value []byte) error) error {
	it := e.txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if err := alive(e.ctx, n); err != nil {
			return err
		}
		n++
		key := it.Item().KeyCopy(nil)
		value, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := fn(key, value); err != nil {
			return err
		}
	}
	return nil
}

// jsonUnder yields each JSON record under prefix as wrap makes it.
func jsonUnder[T any](e exporter, prefix string, wrap func(T) persistence.Exported) error {
	return e.each(prefix, func(key, value []byte) error {
		var v T
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("export: %s: %w", shortKey(key), err)
		}
		return e.yield(wrap(v))
	})
}

func (e exporter) secrets() error {
	return e.each("s/", func(key, value []byte) error {
		return e.yield(persistence.ExportedSecret{Name: string(key[len("s/"):]), Value: value})
	})
}

func (e exporter) keyrings() error {
	return e.each("kr/", func(key, value []byte) error {
		var ring persistence.Keyring
		if err := json.Unmarshal(value, &ring); err != nil {
			return fmt.Errorf("export: keyring %q: %w", key[len("kr/"):], err)
		}
		return e.yield(persistence.ExportedKeyring{Name: string(key[len("kr/"):]), Keyring: ring})
	})
}

// users yields each user with its credentials, and checks that they are all the store holds.
func (e exporter) users(credentials int) error {
	yielded := 0
	err := e.each("u/", func(key, value []byte) error {
		u, err := decodeUser(value)
		if err != nil {
			return fmt.Errorf("export: a user record: %w", err)
		}
		creds, err := credentialsOf(e.txn, u.CommunityID, u.Username)
		if err != nil {
			return fmt.Errorf("export: the credentials of user %q of community %q: %w", u.Username, u.CommunityID, err)
		}
		for i := range creds {
			if creds[i].AttestationObject, err = attestationObject(e.txn, creds[i].ID); err != nil {
				return fmt.Errorf("export: an attestation object of user %q of community %q: %w", u.Username, u.CommunityID, err)
			}
		}
		yielded += len(creds)
		return e.yield(persistence.ExportedUser{User: u, Credentials: creds})
	})
	if err == nil && yielded != credentials {
		err = fmt.Errorf("export: the store holds %d credentials, and its users own %d", credentials, yielded)
	}
	return err
}

// attestationObject reads a credential's attestation object as Store.AttestationObjectOf does.
func attestationObject(txn *bdb.Txn, id []byte) ([]byte, error) {
	item, err := txn.Get(attestationKey(id))
	if err == nil {
		return item.ValueCopy(nil)
	}
	if !errors.Is(err, bdb.ErrKeyNotFound) {
		return nil, err
	}
	c, err := getStoredCredential(txn, id)
	return c.AttestationObject, err
}

// mds yields the BLOB with the entries of its generation, if one was imported.
func (e exporter) mds() error {
	var b persistence.MDSBlob
	if err := getJSON(e.txn, []byte(mdsBlobKey), &b); errors.Is(err, persistence.ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("export: the MDS BLOB: %w", err)
	}
	var entries []persistence.MDSEntry
	prefix := string(append(append([]byte(mdsEntryPrefix), mdsGenPart(b.Generation)...), 0))
	err := e.each(prefix, func(key, value []byte) error {
		var entry persistence.MDSEntry
		if err := json.Unmarshal(value, &entry); err != nil {
			return fmt.Errorf("export: an MDS entry: %w", err)
		}
		entries = append(entries, entry)
		return nil
	})
	if err != nil {
		return err
	}
	if len(entries) != b.Entries {
		return fmt.Errorf("export: the MDS BLOB counts %d entries, and %d are stored", b.Entries, len(entries))
	}
	return e.yield(persistence.ExportedMDS{Blob: b, Entries: entries})
}

// replays yields the expiry of each replay record that has not expired.
func (e exporter) replays() error {
	it := e.txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(ReplayPrefix)})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if err := alive(e.ctx, n); err != nil {
			return err
		}
		n++
		if at := it.Item().ExpiresAt(); at > 0 {
			if err := e.yield(persistence.ExportedReplay{Until: time.Unix(int64(at), 0).UTC()}); err != nil {
				return err
			}
		}
	}
	return nil
}
