package persistence

import (
	"bytes"
	"strings"
)

// ImportPlan is a validated import: Users and, for each, the credentials UserCreds yields
// (for user i, Creds[order[first[i]:first[i+1]]]).
type ImportPlan struct {
	Users []User
	Creds []Credential
	order []int
	first []int
}

// UserCreds yields the credentials of Users[i], stopping at the first error yield returns.
func (p *ImportPlan) UserCreds(i int, yield func(Credential) error) error {
	for _, k := range p.order[p.first[i]:p.first[i+1]] {
		if err := yield(p.Creds[k]); err != nil {
			return err
		}
	}
	return nil
}

// PlanImport checks the records of an [Importer.Import] on their own and groups credentials by
// user. Every username is 1 to 256 bytes without NUL, in a valid community id, given once, with
// a handle of 1 to 64 bytes that no other user given has; every credential has an id of 1 to
// 1023 bytes given once, names a user given and carries its handle; times are zero or storable
// ([StorableTime]); a DID is valid. What the store holds (the community exists, no user, handle
// or credential exists) is each backend's to check, before it writes anything.
func PlanImport(users []User, creds []Credential) (*ImportPlan, error) {
	byKey := make(map[string]int, len(users))
	handles := make(map[string]struct{}, len(users))
	for i, u := range users {
		if u.Username == "" || len(u.Username) > MaxUsernameLength || strings.ContainsRune(u.Username, 0) || !ValidID(u.CommunityID) {
			return nil, invalid("user %d: a username is 1 to 256 bytes without NUL, in a valid community", i)
		}
		if len(u.Handle) == 0 || len(u.Handle) > MaxHandleLength {
			return nil, invalid("user %q: a user handle is 1 to %d bytes", u.Username, MaxHandleLength)
		}
		if !StorableTime(u.Created) {
			return nil, invalid("user %q: its creation time must be zero or between the years 1678 and 2262", u.Username)
		}
		key := u.CommunityID + "\x00" + u.Username
		if _, dup := byKey[key]; dup {
			return nil, invalid("user %q of community %q is given twice", u.Username, u.CommunityID)
		}
		byKey[key] = i
		hk := u.CommunityID + "\x00" + string(u.Handle)
		if _, dup := handles[hk]; dup {
			return nil, invalid("user %q: another user given has the same handle", u.Username)
		}
		handles[hk] = struct{}{}
	}
	owner := make([]int, len(creds))
	count := make([]int, len(users)+1)
	ids := make(map[string]struct{}, len(creds))
	for k, c := range creds {
		if len(c.ID) == 0 || len(c.ID) > MaxCredentialIDLength {
			return nil, invalid("credential %d: a credential id is 1 to %d bytes", k, MaxCredentialIDLength)
		}
		if _, dup := ids[string(c.ID)]; dup {
			return nil, invalid("credential %d: its id is given twice", k)
		}
		ids[string(c.ID)] = struct{}{}
		i, ok := byKey[c.CommunityID+"\x00"+c.Username]
		if !ok {
			return nil, invalid("credential %d names user %q of community %q, who is not among the users", k, c.Username, c.CommunityID)
		}
		if !bytes.Equal(c.UserHandle, users[i].Handle) {
			return nil, invalid("credential %d: its user handle is not its user's", k)
		}
		if !StorableTime(c.Created) || !StorableTime(c.LastUsed) {
			return nil, invalid("credential %d: its times must be zero or between the years 1678 and 2262", k)
		}
		if c.DID != "" && !ValidDID(c.DID) {
			return nil, invalid("credential %d: a DID starts with did: and is 5 to 512 bytes without control characters", k)
		}
		owner[k] = i
		count[i+1]++
	}
	p := &ImportPlan{Users: users, Creds: creds, order: make([]int, len(creds)), first: count}
	for i := range users {
		p.first[i+1] += p.first[i]
	}
	next := append([]int(nil), p.first[:len(users)]...)
	for k, i := range owner {
		p.order[next[i]] = k
		next[i]++
	}
	return p, nil
}
