package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
)

const (
	// maxHandleLength and maxCredentialIDLength are WebAuthn's limits on a user handle and a
	// credential id.
	maxHandleLength       = 64
	maxCredentialIDLength = 1023

	// importTxnBytes and importTxnEntries bound one transaction of an Import, well below
	// Badger's own limit (15 % of a memtable, about 2.5 MB and 28,000 entries with ours); a
	// single user with its credentials must fit in importTxnBytes.
	importTxnBytes   = memTableSize / 16
	importTxnEntries = 5000
)

// Import writes users, each with the credentials whose CommunityID and Username name it, in large
// batches: the keys that AddCredential would write (user, user handle index, credential, owner
// index, attestation object, the community's shape tally), but without an Apply per
// registration. It is
// meant for migrations and for seeding a benchmark store, while no server holds the directory;
// call it with batches of some ten thousand users.
//
// Every user's community must exist; its username must be new to the community and its handle
// (1 to 64 bytes) unused; every credential must name a user of users, carry that user's handle,
// and have a new id (1 to 1023 bytes). Times are kept as given, but for a user's zero Created,
// which becomes now. When any record is invalid or exists, Import refuses the whole call and
// writes nothing.
//
// Import writes in transactions of about a megabyte, each holding whole users with all their
// credentials, so each record it writes is complete and consistent with its indexes. A crash or
// a failed write in the middle can still leave the users of the transactions before it
// written: import those again without them. Each transaction first checks the free space of
// the store's filesystem: below the reserve, Import stops with storage_full (an import is no
// essential write).
func (s *Store) Import(users []User, creds []Credential) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	plan, err := planImport(users, creds)
	if err != nil {
		return err
	}
	if err := s.db.View(plan.checkAbsent); err != nil {
		return err
	}
	return s.writeImport(plan)
}

// importFailed is the error of an Import whose transaction after the first written users
// failed: refused for want of space (storage_full, as an Import is no essential write), or an
// internal error.
func importFailed(written int, err error) error {
	var e *messages.Error
	if errors.As(err, &e) && e.Code == messages.CodeStorageFull {
		done := "this import wrote nothing"
		if written > 0 {
			done = fmt.Sprintf("this import wrote its first %d users", written)
		}
		return messages.Wrap(messages.CodeStorageFull, e.Message+" ("+done+")", e.Cause)
	}
	return errStoreInternal(fmt.Errorf("import after %d users: %w", written, err))
}

// importPlan is a validated Import: users and, for user i, the credentials
// creds[order[first[i]:first[i+1]]].
type importPlan struct {
	users []User
	creds []Credential
	order []int
	first []int
}

// userCreds returns the credentials of users[i].
func (p *importPlan) userCreds(i int, yield func(Credential) error) error {
	for _, k := range p.order[p.first[i]:p.first[i+1]] {
		if err := yield(p.creds[k]); err != nil {
			return err
		}
	}
	return nil
}

// planImport checks the records of an Import on their own and groups credentials by user.
func planImport(users []User, creds []Credential) (*importPlan, error) {
	byKey := make(map[string]int, len(users))
	handles := make(map[string]struct{}, len(users))
	for i, u := range users {
		if u.Username == "" || len(u.Username) > 256 || strings.ContainsRune(u.Username, 0) || !ValidID(u.CommunityID) {
			return nil, invalid("user %d: a username is 1 to 256 bytes without NUL, in a valid community", i)
		}
		if len(u.Handle) == 0 || len(u.Handle) > maxHandleLength {
			return nil, invalid("user %q: a user handle is 1 to %d bytes", u.Username, maxHandleLength)
		}
		if !storableTime(u.Created) {
			return nil, invalid("user %q: its creation time must be zero or between the years 1678 and 2262", u.Username)
		}
		key := string(userKey(u.CommunityID, u.Username))
		if _, dup := byKey[key]; dup {
			return nil, invalid("user %q of community %q is given twice", u.Username, u.CommunityID)
		}
		byKey[key] = i
		hk := string(handleKey(u.CommunityID, u.Handle))
		if _, dup := handles[hk]; dup {
			return nil, invalid("user %q: another user given has the same handle", u.Username)
		}
		handles[hk] = struct{}{}
	}
	owner := make([]int, len(creds))
	count := make([]int, len(users)+1)
	ids := make(map[string]struct{}, len(creds))
	for k, c := range creds {
		if len(c.ID) == 0 || len(c.ID) > maxCredentialIDLength {
			return nil, invalid("credential %d: a credential id is 1 to %d bytes", k, maxCredentialIDLength)
		}
		if _, dup := ids[string(c.ID)]; dup {
			return nil, invalid("credential %d: its id is given twice", k)
		}
		ids[string(c.ID)] = struct{}{}
		i, ok := byKey[string(userKey(c.CommunityID, c.Username))]
		if !ok {
			return nil, invalid("credential %d names user %q of community %q, who is not among the users", k, c.Username, c.CommunityID)
		}
		if !bytes.Equal(c.UserHandle, users[i].Handle) {
			return nil, invalid("credential %d: its user handle is not its user's", k)
		}
		if !storableTime(c.Created) || !storableTime(c.LastUsed) {
			return nil, invalid("credential %d: its times must be zero or between the years 1678 and 2262", k)
		}
		if c.DID != "" && !ValidDID(c.DID) {
			return nil, invalid("credential %d: a DID starts with did: and is 5 to 512 bytes without control characters", k)
		}
		owner[k] = i
		count[i+1]++
	}
	p := &importPlan{users: users, creds: creds, order: make([]int, len(creds)), first: count}
	for i := range users {
		p.first[i+1] += p.first[i]
	}
	next := append([]int(nil), p.first[:len(users)]...)
	for k, i := range owner {
		p.order[next[i]] = k
		next[i]++
	}
	for i, u := range users {
		size := 2*len(u.DisplayName) + 4*len(u.Username) + 256
		_ = p.userCreds(i, func(c Credential) error {
			size += credentialSizeBound(c)
			return nil
		})
		if size > importTxnBytes || 4+3*(p.first[i+1]-p.first[i]) > importTxnEntries {
			return nil, invalid("user %q: too many credentials, or too large ones, for one import", u.Username)
		}
	}
	return p, nil
}

// credentialSizeBound is more than the bytes a credential's keys and values take in a
// transaction.
func credentialSizeBound(c Credential) int {
	n := 4*len(c.ID) + 3*(len(c.CommunityID)+len(c.Username)) + len(c.UserHandle) + len(c.RPID) +
		len(c.PublicKey) + len(c.AAGUID) + len(c.AttestationFormat) + len(c.AttestationType) +
		len(c.AttestationObject) + len(c.Attachment) + 256
	for _, t := range c.Transports {
		n += len(t) + 9
	}
	return n
}

// checkAbsent refuses a plan when a community is missing or a user, handle or credential exists.
func (p *importPlan) checkAbsent(txn *badger.Txn) error {
	present := func(key []byte) (bool, error) {
		ok, err := exists(txn, key)
		if err != nil {
			return false, errStoreInternal(err)
		}
		return ok, nil
	}
	communities := make(map[string]bool)
	for _, u := range p.users {
		if _, checked := communities[u.CommunityID]; !checked {
			ok, err := present(communityKey(u.CommunityID))
			if err != nil {
				return err
			}
			if !ok {
				return messages.Errorf(messages.CodeCommunityUnknown, fmt.Sprintf("community %q does not exist", u.CommunityID))
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
	for k, c := range p.creds {
		if ok, err := present(credKey(c.ID)); err != nil {
			return err
		} else if ok {
			return messages.Errorf(messages.CodeCredentialExists, fmt.Sprintf("credential %d is already registered", k))
		}
	}
	return nil
}

// writeImport writes a checked plan, whole users to a transaction.
func (s *Store) writeImport(p *importPlan) error {
	now := time.Now().UTC()
	var (
		entries []*badger.Entry
		shapes  []importedShape // of the users in entries that have passkeys
		size    int
		written int // users committed
	)
	commit := func(upTo int) error {
		if len(entries) == 0 {
			return nil
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
		entries = append(entries, badger.NewEntry(key, value))
		size += len(key) + len(value) + 16
	}
	var group []*badger.Entry
	for i, u := range p.users {
		start, startSize := len(entries), size
		if u.Created.IsZero() {
			u.Created = now
		}
		v, err := encodeUser(u)
		if err != nil {
			return errStoreInternal(fmt.Errorf("import after %d users: %w", written, err))
		}
		add(userKey(u.CommunityID, u.Username), v)
		add(handleKey(u.CommunityID, u.Handle), []byte(u.Username))
		var creds []Credential
		err = p.userCreds(i, func(c Credential) error {
			creds = append(creds, c)
			v, err := encodeCredential(c)
			if err != nil {
				return err
			}
			add(credKey(c.ID), v)
			if len(c.AttestationObject) > 0 {
				add(attestationKey(c.ID), c.AttestationObject)
			}
			add(fidoKeyHashKey(FidoKeyHash(c.ID)), c.ID)
			if c.DID != "" {
				add(append(didPrefix(c.CommunityID, c.DID), c.ID...), nil)
			}
			add(append(userCredPrefix(c.CommunityID, c.Username), c.ID...), nil)
			return nil
		})
		if err != nil {
			return errStoreInternal(fmt.Errorf("import after %d users: %w", written, err))
		}
		var shape *importedShape
		if len(creds) > 0 {
			shape = &importedShape{community: u.CommunityID, shape: userShape(creds)}
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
	if err := commit(len(p.users)); err != nil {
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
