package badger

import (
	"context"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

const (
	// importTxnBytes and importTxnEntries bound one transaction of an Import, well below
	// Badger's own limit (15 % of a memtable, about 2.5 MB and 28,000 entries with ours); a
	// single user with its credentials must fit in importTxnBytes.
	importTxnBytes   = memTableSize / 16
	importTxnEntries = 5000
)

// Import writes users, each with the credentials whose CommunityID and Username name it, in large
// batches: the keys that AddCredential would write (user, user handle index, credential, owner
// index, attestation object, the community's shape tally), but without an Apply per
// registration. It is meant for migrations and for seeding a benchmark store, while no server
// holds the directory; call it with batches of some ten thousand users.
//
// The records are checked by [persistence.PlanImport], and each user with its credentials must
// fit in one transaction. Every user's community must exist; its username must be new to the
// community and its handle unused; every credential must have a new id. Times are kept as
// given, but for a user's zero Created, which becomes now. When any record is invalid or
// exists, Import refuses the whole call and writes nothing.
//
// Import writes in transactions of about a megabyte, each holding whole users with all their
// credentials, so each record it writes is complete and consistent with its indexes. A crash, a
// failed write or an ended ctx in the middle can still leave the users of the transactions
// before it written: import those again without them. Each transaction first checks ctx and
// the free space of the store's filesystem: below the reserve, Import stops with storage_full
// (an import is no essential write).
func (s *Store) Import(ctx context.Context, users []persistence.User, creds []persistence.Credential) error {
	plan, err := persistence.PlanImport(users, creds)
	if err != nil {
		return err
	}
	if err := fitsTransactions(plan); err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.view(ctx, func(txn *bdb.Txn) error { return checkAbsent(txn, plan) }); err != nil {
		return err
	}
	return s.writeImport(ctx, plan)
}

// importFailed is the error of an Import whose transaction after the first written users
// failed: refused for want of space (storage_full, as an Import is no essential write), stopped
// by its context (whose error it wraps), or an internal error.
func importFailed(written int, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("import stopped after %d users: %w", written, err)
	}
	var e *messages.Error
	if errors.As(err, &e) && e.Code == messages.CodeStorageFull {
		done := "this import wrote nothing"
		if written > 0 {
			done = fmt.Sprintf("this import wrote its first %d users", written)
		}
		return messages.Wrap(messages.CodeStorageFull, e.Message+" ("+done+")", e.Cause)
	}
	return persistence.StoreInternal(fmt.Errorf("import after %d users: %w", written, err))
}

// fitsTransactions refuses a plan with a user whose credentials do not fit in one of Import's
// transactions.
func fitsTransactions(p *persistence.ImportPlan) error {
	for i, u := range p.Users {
		size, n := 2*len(u.DisplayName)+4*len(u.Username)+256, 0
		_ = p.UserCreds(i, func(c persistence.Credential) error {
			size += credentialSizeBound(c)
			n++
			return nil
		})
		if size > importTxnBytes || 4+3*n > importTxnEntries {
			return invalid("user %q: too many credentials, or too large ones, for one import", u.Username)
		}
	}
	return nil
}

// credentialSizeBound is more than the bytes a credential's keys and values take in a
// transaction.
func credentialSizeBound(c persistence.Credential) int {
	n := 4*len(c.ID) + 3*(len(c.CommunityID)+len(c.Username)) + len(c.UserHandle) + len(c.RPID) +
		len(c.PublicKey) + len(c.AAGUID) + len(c.AttestationFormat) + len(c.AttestationType) +
		len(c.AttestationObject) + len(c.Attachment) + 256
	for _, t := range c.Transports {
		n += len(t) + 9
	}
	return n
}

// checkAbsent refuses a plan when a community is missing or a user, handle or credential exists.
func checkAbsent(txn *bdb.Txn, p *persistence.ImportPlan) error {
	present := func(key []byte) (bool, error) {
		ok, err := exists(txn, key)
		if err != nil {
			return false, persistence.StoreInternal(err)
		}
		return ok, nil
	}
	communities := make(map[string]bool)
	for _, u := range p.Users {
		if _, checked := communities[u.CommunityID]; !checked {
			ok, err := present(communityKey(u.CommunityID))
			if err != nil {
				return err
			}
			if !ok {
				return persistence.CommunityUnknown(u.CommunityID)
			}
			communities[u.CommunityID] = true
		}
		if ok, err := present(userKey(u.CommunityID, u.Username)); err != nil {
			return err
		} else if ok {
			return messages.Errorf(messages.CodeConflict, fmt.Sprintf("user %q of community %q exists", u.Username, u.CommunityID))
		}
		if ok, err := present(handleKey(u.CommunityID, u.Handle)); err != nil {
			return err
		} else if ok {
			return messages.Errorf(messages.CodeConflict, fmt.Sprintf("user %q: another user of community %q has its handle", u.Username, u.CommunityID))
		}
	}
	for k, c := range p.Creds {
		if ok, err := present(credKey(c.ID)); err != nil {
			return err
		} else if ok {
			return messages.Errorf(messages.CodeCredentialExists, fmt.Sprintf("credential %d is already registered", k))
		}
	}
	return nil
}

// writeImport writes a checked plan, whole users to a transaction.
func (s *Store) writeImport(ctx context.Context, p *persistence.ImportPlan) error {
	now := time.Now().UTC()
	var (
		entries []*bdb.Entry
		shapes  []importedShape // of the users in entries that have passkeys
		size    int
		written int // users committed
	)
	commit := func(upTo int) error {
		if len(entries) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if space := s.space.read(); space.level != spaceAmple {
			return space.refusal()
		}
		txn := s.db.NewTransaction(true)
		defer txn.Discard()
		for _, e := range entries {
			if err := txn.SetEntry(e); err != nil {
				return err
			}
		}
		for _, sh := range shapes {
			if err := moveUserShape(txn, sh.community, nil, sh.shape); err != nil {
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		entries, shapes, size, written = entries[:0], shapes[:0], 0, upTo
		return nil
	}
	add := func(key, value []byte) {
		entries = append(entries, bdb.NewEntry(key, value))
		size += len(key) + len(value) + 16
	}
	var group []*bdb.Entry
	for i, u := range p.Users {
		start, startSize := len(entries), size
		if u.Created.IsZero() {
			u.Created = now
		}
		v, err := encodeUser(u)
		if err != nil {
			return persistence.StoreInternal(fmt.Errorf("import after %d users: %w", written, err))
		}
		add(userKey(u.CommunityID, u.Username), v)
		add(handleKey(u.CommunityID, u.Handle), []byte(u.Username))
		var creds []persistence.Credential
		err = p.UserCreds(i, func(c persistence.Credential) error {
			creds = append(creds, c)
			v, err := encodeCredential(c)
			if err != nil {
				return err
			}
			add(credKey(c.ID), v)
			if len(c.AttestationObject) > 0 {
				add(attestationKey(c.ID), c.AttestationObject)
			}
			add(fidoKeyHashKey(persistence.FidoKeyHash(c.ID)), c.ID)
			if c.DID != "" {
				add(append(didPrefix(c.CommunityID, c.DID), c.ID...), nil)
			}
			add(append(userCredPrefix(c.CommunityID, c.Username), c.ID...), nil)
			return nil
		})
		if err != nil {
			return persistence.StoreInternal(fmt.Errorf("import after %d users: %w", written, err))
		}
		var shape *importedShape
		if len(creds) > 0 {
			shape = &importedShape{community: u.CommunityID, shape: persistence.UserShape(creds)}
			// Its tally key and the community's most common shape: 16 bytes of count each.
			size += 2*len(shape.shape) + 2*len(u.CommunityID) + 64
		}
		if size > importTxnBytes || len(entries)+2*len(shapes) > importTxnEntries {
			// This user does not fit: commit the users before it, then start with it.
			group = append(group[:0], entries[start:]...)
			groupSize := size - startSize
			entries, size = entries[:start], startSize
			if err := commit(i); err != nil {
				return importFailed(written, err)
			}
			entries, size = append(entries, group...), groupSize
		}
		if shape != nil {
			shapes = append(shapes, *shape)
		}
	}
	if err := commit(len(p.Users)); err != nil {
		return importFailed(written, err)
	}
	return nil
}

// importedShape is the shape of an imported user, for the tally.
type importedShape struct {
	community string
	shape     []byte
}

// Settle compacts the whole store into one level and returns when it is done. Run it after a
// large Import, before a server opens the store: otherwise the server inherits the import's
// compaction backlog and spends its first minutes compacting under load (with a million
// imported users, reads took 7 times longer while it did). It holds back every write until it
// is done (5 s for a million users), so it is for stores no server is using.
func (s *Store) Settle() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.db.Flatten(2)
}
