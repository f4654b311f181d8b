package badger_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// TestAddCredentialCreatesItsUser: a registration creates its user with its first passkey, in
// one write, and a first registration that another one of the same username overtook writes
// nothing.
func TestAddCredentialCreatesItsUser(t *testing.T) {
	newUser := func(community, name, handle string) persistence.User {
		return persistence.User{CommunityID: community, Username: name, Handle: []byte(handle)}
	}
	t.Run("a new username: the user and the passkey", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		c := credential("c1", newUser("shop", "alice", "handle-1"))
		mustApply(t, s, persistence.AddCredential{Credential: c, DisplayName: "Alice"})
		u, err := s.User(ctx, "shop", "alice")
		if err != nil || u.DisplayName != "Alice" || !bytes.Equal(u.Handle, []byte("handle-1")) || u.Created.IsZero() {
			t.Fatalf("User(alice) = %+v, %v", u, err)
		}
		if got, err := s.UserByHandle(ctx, "shop", []byte("handle-1")); err != nil || !reflect.DeepEqual(got, u) {
			t.Fatalf("UserByHandle(handle-1) = %+v, %v; want %+v", got, err, u)
		}
		if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], asRead(c)) {
			t.Fatalf("CredentialsOf(alice) = %+v, %v", list, err)
		}
	})
	t.Run("an existing user with the same handle: the passkey only", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		mustApply(t, s, persistence.AddCredential{Credential: credential("c1", newUser("shop", "alice", "h")), DisplayName: "Alice"})
		mustApply(t, s, persistence.AddCredential{Credential: credential("c2", newUser("shop", "alice", "h")), DisplayName: "Ignored"})
		if u, err := s.User(ctx, "shop", "alice"); err != nil || u.DisplayName != "Alice" {
			t.Fatalf("User(alice) = %+v, %v; want the first registration's", u, err)
		}
		if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 2 {
			t.Fatalf("CredentialsOf(alice) = %+v, %v; want two", list, err)
		}
	})
	t.Run("an existing user with another handle: 409 and nothing written", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		mustApply(t, s, persistence.AddCredential{Credential: credential("c1", newUser("shop", "alice", "won"))})
		before, err := s.Digest()
		if err != nil {
			t.Fatal(err)
		}
		err = applyErr(t, s, persistence.AddCredential{Credential: credential("c2", newUser("shop", "alice", "lost"))})
		wantCode(t, err, messages.CodeConflict)
		if !strings.Contains(err.Error(), "start the registration again") {
			t.Fatalf("conflict message %q does not say to start again", err)
		}
		if after, err := s.Digest(); err != nil || !bytes.Equal(before, after) {
			t.Fatalf("the refused registration changed the store (%v)", err)
		}
	})
	t.Run("the same username in another community is another user", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "blog")
		mustApply(t, s, persistence.AddCredential{Credential: credential("c1", newUser("shop", "alice", "h-shop"))})
		mustApply(t, s, persistence.AddCredential{Credential: credential("c2", newUser("blog", "alice", "h-blog"))})
		if got, err := s.UserByHandle(ctx, "blog", []byte("h-blog")); err != nil || got.CommunityID != "blog" {
			t.Fatalf("UserByHandle(blog) = %+v, %v", got, err)
		}
	})
	t.Run("a handle that another user of the community holds is refused and nothing is written", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		alice := seedUser(t, s, "shop", "alice", []byte("same"))
		err := applyErr(t, s, persistence.AddCredential{Credential: credential("c1", newUser("shop", "bob", "same"))})
		wantCode(t, err, messages.CodeConflict)
		_, err = s.User(ctx, "shop", "bob")
		wantNotFound(t, "User(bob) after the refused collision", err)
		if got, err := s.UserByHandle(ctx, "shop", []byte("same")); err != nil || !reflect.DeepEqual(got, alice) {
			t.Fatalf("UserByHandle(same) = %+v, %v; want alice", got, err)
		}
	})
}

// Concurrent first registrations of one username, each in its own Apply and each with its own
// handle: exactly one creates the user, the others get 409 and leave nothing behind.
func TestAddCredentialConcurrentFirstRegistrations(t *testing.T) {
	const n = 50
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	results := make([]persistence.Result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			u := persistence.User{CommunityID: "shop", Username: "alice", Handle: []byte(fmt.Sprintf("handle-%02d", i))}
			results[i] = s.Apply(ctx, []persistence.Op{persistence.AddCredential{Credential: credential(fmt.Sprintf("c-%02d", i), u)}})[0]
		}()
	}
	close(start)
	wg.Wait()

	stored, err := s.User(ctx, "shop", "alice")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	won := 0
	for i, r := range results {
		if r.Err == nil {
			won++
			if c := r.Value.(persistence.Credential); !bytes.Equal(c.UserHandle, stored.Handle) {
				t.Fatalf("goroutine %d succeeded with handle %q, stored handle is %q", i, c.UserHandle, stored.Handle)
			}
			continue
		}
		wantCode(t, r.Err, messages.CodeConflict)
	}
	if won != 1 {
		t.Fatalf("%d first registrations succeeded, want exactly 1", won)
	}
	if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 1 {
		t.Fatalf("CredentialsOf(alice) = %d credentials, %v; want 1", len(list), err)
	}
	indexed := 0
	for i := range n {
		if _, err := s.UserByHandle(ctx, "shop", []byte(fmt.Sprintf("handle-%02d", i))); err == nil {
			indexed++
		}
	}
	if indexed != 1 {
		t.Fatalf("%d handles are indexed, want exactly 1", indexed)
	}
}

func TestAddCredential(t *testing.T) {
	t.Run("stores the credential and indexes it under its owner", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		alice := seedUser(t, s, "shop", "alice", []byte("ha"))
		bob := seedUser(t, s, "shop", "bob", []byte("hb"))
		// alice2 extends alice's username: her credentials must not show up as alice's.
		alice2 := seedUser(t, s, "shop", "alice2", []byte("ha2"))
		c1, c2, c3 := credential("b-second", alice), credential("a-first", alice), credential("bob-1", bob)
		for _, c := range []persistence.Credential{c1, c2, c3, credential("alice2-1", alice2)} {
			got := mustApply(t, s, persistence.AddCredential{Credential: c}).(persistence.Credential)
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("AddCredential returned %+v, want %+v", got, c)
			}
		}
		list, err := s.CredentialsOf(ctx, "shop", "alice")
		if err != nil {
			t.Fatal(err)
		}
		// Key order: by credential id.
		if len(list) != 2 || !reflect.DeepEqual(list[0], asRead(c2)) || !reflect.DeepEqual(list[1], asRead(c1)) {
			t.Fatalf("CredentialsOf(alice) = %+v, want [a-first b-second]", list)
		}
		list, err = s.CredentialsOf(ctx, "shop", "bob")
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], asRead(c3)) {
			t.Fatalf("CredentialsOf(bob) = %+v, %v; want [bob-1]", list, err)
		}
	})

	// A credential id exists once in the whole store, whoever registers it again.
	tests := []struct {
		name      string
		community string
		username  string
	}{
		{"same user", "shop", "alice"},
		{"another user of the community", "shop", "bob"},
		{"a user of another community", "blog", "carol"},
	}
	for _, tc := range tests {
		t.Run("the same id again is refused: "+tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedCommunity(t, s, "shop")
			seedCommunity(t, s, "blog")
			alice := seedUser(t, s, "shop", "alice", []byte("ha"))
			other := alice
			if tc.username != "alice" {
				other = seedUser(t, s, tc.community, tc.username, []byte("h-"+tc.username))
			}
			orig := credential("dup", alice)
			mustApply(t, s, persistence.AddCredential{Credential: orig})

			again := credential("dup", other)
			again.PublicKey = []byte("another key")
			again.SignCount = 99
			err := applyErr(t, s, persistence.AddCredential{Credential: again})
			wantCode(t, err, messages.CodeCredentialExists)

			if got, err := s.Credential(ctx, []byte("dup")); err != nil || !reflect.DeepEqual(got, asRead(orig)) {
				t.Fatalf("Credential(dup) = %+v, %v; want the original %+v", got, err, orig)
			}
			if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], asRead(orig)) {
				t.Fatalf("CredentialsOf(alice) = %+v, %v; want [orig]", list, err)
			}
			if tc.username != "alice" {
				if list, err := s.CredentialsOf(ctx, tc.community, tc.username); err != nil || len(list) != 0 {
					t.Fatalf("CredentialsOf(%s) = %+v, %v; want none", tc.username, list, err)
				}
			}
		})
	}

	t.Run("a credential without a user handle is refused and nothing is written", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		ghost := persistence.User{CommunityID: "shop", Username: "ghost"}
		err := applyErr(t, s, persistence.AddCredential{Credential: credential("ghost-cred", ghost)})
		wantCode(t, err, messages.CodeInvalidRequest)
		_, err = s.Credential(ctx, []byte("ghost-cred"))
		wantNotFound(t, "Credential(ghost-cred)", err)
		_, err = s.User(ctx, "shop", "ghost")
		wantNotFound(t, "User(ghost)", err)
		// The id is still free for a real user.
		alice := seedUser(t, s, "shop", "alice", []byte("ha"))
		mustApply(t, s, persistence.AddCredential{Credential: credential("ghost-cred", alice)})
	})
}

// seedCredential stores a credential of alice in shop with a stored counter.
func seedCredential(t *testing.T, s *badger.Store, id string, counter uint32) persistence.Credential {
	t.Helper()
	seedCommunity(t, s, "shop")
	alice := seedUser(t, s, "shop", "alice", []byte("ha"))
	c := credential(id, alice)
	c.SignCount = counter
	mustApply(t, s, persistence.AddCredential{Credential: c})
	return c
}

// The signature counter must move forward whenever either side is non-zero.
func TestRecordSignInCounter(t *testing.T) {
	tests := []struct {
		name     string
		stored   uint32
		counter  uint32
		accepted bool
	}{
		{"stored 0, new 0: authenticator without a counter", 0, 0, true},
		{"0 to 5: first counter", 0, 5, true},
		{"5 to 6: forward", 5, 6, true},
		{"5 to 5: repeated", 5, 5, false},
		{"5 to 3: backwards", 5, 3, false},
		{"5 to 0: counter reset", 5, 0, false},
		{"0 to max uint32", 0, 1<<32 - 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t)
			orig := seedCredential(t, s, "c1", tc.stored)
			r := s.Apply(ctx, []persistence.Op{persistence.RecordSignIn{
				ID: orig.ID, Counter: tc.counter, UserVerified: true, BackupState: true, At: t1,
			}})[0]
			got, err := s.Credential(ctx, orig.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := asRead(orig)
			if tc.accepted {
				if r.Err != nil {
					t.Fatalf("RecordSignIn %d -> %d refused: %v", tc.stored, tc.counter, r.Err)
				}
				want.SignCount, want.UserVerified, want.BackupState, want.LastUsed = tc.counter, true, true, t1
			} else {
				if !errors.Is(r.Err, persistence.ErrCounterRegression) {
					t.Fatalf("RecordSignIn %d -> %d: err = %v, want ErrCounterRegression", tc.stored, tc.counter, r.Err)
				}
				wantCode(t, r.Err, messages.CodeCounterRegression)
				want.CloneWarning = true // and nothing else changes
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stored credential = %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(r.Value, want) {
				t.Fatalf("result value = %+v\nwant %+v", r.Value, want)
			}
		})
	}
}

func TestRecordSignIn(t *testing.T) {
	t.Run("a refusal sets the clone warning durably; a later higher counter keeps it", func(t *testing.T) {
		dir := t.TempDir()
		s, closeStore := mustOpenAt(t, dir)
		c := seedCredential(t, s, "c1", 5)
		err := applyErr(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 3, At: t1})
		if !errors.Is(err, persistence.ErrCounterRegression) {
			t.Fatalf("err = %v, want ErrCounterRegression", err)
		}
		closeStore()
		s, _ = mustOpenAt(t, dir)
		got, err := s.Credential(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CloneWarning || got.SignCount != 5 || !got.LastUsed.IsZero() {
			t.Fatalf("after refusal and reopen: CloneWarning %v, SignCount %d, LastUsed %v; want true, 5, zero",
				got.CloneWarning, got.SignCount, got.LastUsed)
		}
		// A second refusal stays a refusal.
		if err := applyErr(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 4, At: t1}); !errors.Is(err, persistence.ErrCounterRegression) {
			t.Fatalf("second regression: err = %v, want ErrCounterRegression", err)
		}
		later := t1.Add(time.Hour)
		v := mustApply(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 9, At: later}).(persistence.Credential)
		if !v.CloneWarning || v.SignCount != 9 {
			t.Fatalf("result after a higher counter: CloneWarning %v, SignCount %d; want true, 9", v.CloneWarning, v.SignCount)
		}
		got, err = s.Credential(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CloneWarning || got.SignCount != 9 || !got.LastUsed.Equal(later) {
			t.Fatalf("stored after a higher counter: CloneWarning %v, SignCount %d, LastUsed %v; want true, 9, %v",
				got.CloneWarning, got.SignCount, got.LastUsed, later)
		}
	})
	t.Run("user verification is sticky, backup state follows the last sign-in", func(t *testing.T) {
		s := mustOpen(t)
		c := seedCredential(t, s, "c1", 0)
		mustApply(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 1, UserVerified: true, BackupState: true, At: t1})
		mustApply(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 2, UserVerified: false, BackupState: false, At: t1})
		got, err := s.Credential(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.UserVerified || got.BackupState || got.SignCount != 2 {
			t.Fatalf("UserVerified %v, BackupState %v, SignCount %d; want true, false, 2", got.UserVerified, got.BackupState, got.SignCount)
		}
	})
	t.Run("an unknown credential is refused", func(t *testing.T) {
		s := mustOpen(t)
		err := applyErr(t, s, persistence.RecordSignIn{ID: []byte("nope"), Counter: 1, At: t1})
		wantCode(t, err, messages.CodeCredentialUnknown)
		_, err = s.Credential(ctx, []byte("nope"))
		wantNotFound(t, "Credential(nope)", err)
	})
}

// signInConcurrently sends RecordSignIn with counters 1..n for credential id from n goroutines,
// each calling Apply on its own, and returns the error of each counter (index 0 unused).
func signInConcurrently(s *badger.Store, id []byte, n int) []error {
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for counter := 1; counter <= n; counter++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[counter] = s.Apply(ctx, []persistence.Op{persistence.RecordSignIn{ID: id, Counter: uint32(counter), At: t1}})[0].Err
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// Concurrent sign-ins of one passkey, each in its own Apply, never lose the highest counter.
func TestRecordSignInConcurrent(t *testing.T) {
	const n, rounds = 100, 200
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	alice := seedUser(t, s, "shop", "alice", []byte("ha"))
	for round := range rounds {
		c := credential(fmt.Sprintf("c-%03d", round), alice)
		mustApply(t, s, persistence.AddCredential{Credential: c})
		errs := signInConcurrently(s, c.ID, n)
		for counter, err := range errs[1:] {
			if err != nil && !errors.Is(err, persistence.ErrCounterRegression) {
				t.Errorf("round %d, counter %d: err = %s, want nil or ErrCounterRegression", round, counter+1, describe(err))
			}
		}
		if errs[n] != nil {
			t.Errorf("round %d: the highest counter %d was refused: %s", round, n, describe(errs[n]))
		}
		got, err := s.Credential(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SignCount != n {
			t.Fatalf("round %d: final SignCount = %d, want %d", round, got.SignCount, n)
		}
	}
}

// Whatever Apply refuses under contention, the stored counter is the highest one it accepted:
// no accepted sign-in is overwritten by a lower one.
func TestRecordSignInConcurrentKeepsTheHighestAcceptedCounter(t *testing.T) {
	const n = 100
	s := mustOpen(t)
	c := seedCredential(t, s, "c1", 0)
	errs := signInConcurrently(s, c.ID, n)
	var highest uint32
	accepted, commitFailures := 0, 0
	for i, err := range errs[1:] {
		counter := uint32(i + 1)
		switch {
		case err == nil:
			accepted++
			highest = max(highest, counter)
		case errors.Is(err, persistence.ErrCounterRegression):
		case messages.ErrorCode(err) == messages.CodeInternal && strings.Contains(describe(err), "Conflict"):
			commitFailures++ // see TestRecordSignInConcurrent
		default:
			t.Errorf("counter %d: err = %s, want nil or ErrCounterRegression", counter, describe(err))
		}
	}
	got, err := s.Credential(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if accepted == 0 || got.SignCount != highest {
		t.Fatalf("final SignCount = %d, want the highest accepted counter %d (%d accepted, %d commit failures)",
			got.SignCount, highest, accepted, commitFailures)
	}
	if accepted+commitFailures < n && !got.CloneWarning {
		t.Fatalf("%d sign-ins were refused as regressions but CloneWarning is not set", n-accepted-commitFailures)
	}
	if commitFailures == 0 && highest != n {
		t.Fatalf("no commit failed, yet the highest accepted counter is %d, want %d", highest, n)
	}
}

func TestApply(t *testing.T) {
	t.Run("an empty batch has no results", func(t *testing.T) {
		if res := mustOpen(t).Apply(ctx, nil); len(res) != 0 {
			t.Fatalf("Apply(nil) = %+v, want no results", res)
		}
	})
	t.Run("one result per op, in order", func(t *testing.T) {
		s := mustOpen(t)
		res := s.Apply(ctx, []persistence.Op{
			persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("k")},
			persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "ACME"}},
			persistence.PutCommunity{Community: community("shop"), Create: true},
			persistence.AddCredential{Credential: credential("c1", persistence.User{CommunityID: "shop", Username: "alice", Handle: []byte("ha")})},
		})
		if len(res) != 4 {
			t.Fatalf("%d results, want 4", len(res))
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("result %d: %v", i, r.Err)
			}
		}
		if v, ok := res[0].Value.([]byte); !ok || string(v) != "k" {
			t.Fatalf("result 0 = %#v, want []byte(k)", res[0].Value)
		}
		if v, ok := res[1].Value.(persistence.Tenant); !ok || v.ID != "acme" || v.Name != "ACME" {
			t.Fatalf("result 1 = %#v, want tenant acme", res[1].Value)
		}
		if v, ok := res[2].Value.(persistence.Community); !ok || v.ID != "shop" {
			t.Fatalf("result 2 = %#v, want community shop", res[2].Value)
		}
		if v, ok := res[3].Value.(persistence.Credential); !ok || v.Username != "alice" {
			t.Fatalf("result 3 = %#v, want a credential of alice", res[3].Value)
		}
		// The tenant put first keeps its name: the community's PutTenant found it.
		if tn, err := s.Tenant(ctx, "acme"); err != nil || tn.Name != "ACME" {
			t.Fatalf("Tenant = %+v, %v; want name ACME", tn, err)
		}
	})
	t.Run("a failing op does not stop the others", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		ghost := persistence.User{CommunityID: "shop", Username: "ghost"}
		res := s.Apply(ctx, []persistence.Op{
			persistence.PutSecretIfAbsent{Name: "a", Value: []byte("1")},
			persistence.AddCredential{Credential: credential("ghost-cred", ghost)},
			persistence.PutCommunity{Community: community("shop"), Create: true},
			persistence.PutSecretIfAbsent{Name: "b", Value: []byte("2")},
		})
		if len(res) != 4 {
			t.Fatalf("%d results, want 4", len(res))
		}
		if res[0].Err != nil || res[3].Err != nil {
			t.Fatalf("good ops refused: %v, %v", res[0].Err, res[3].Err)
		}
		if res[1].Err == nil {
			t.Fatal("credential of a missing user accepted")
		}
		wantCode(t, res[2].Err, messages.CodeConflict)
		for name, want := range map[string]string{"a": "1", "b": "2"} {
			if got, err := s.Secret(ctx, name); err != nil || string(got) != want {
				t.Fatalf("Secret(%s) = %q, %v; want %q", name, got, err, want)
			}
		}
		_, err := s.Credential(ctx, []byte("ghost-cred"))
		wantNotFound(t, "Credential(ghost-cred)", err)
	})
	t.Run("ops see the writes of earlier ops in the batch", func(t *testing.T) {
		s := mustOpen(t)
		u := persistence.User{CommunityID: "shop", Username: "alice", Handle: []byte("ha")}
		other := u
		other.Handle = []byte("other")
		res := s.Apply(ctx, []persistence.Op{
			persistence.PutCommunity{Community: community("shop"), Create: true},
			persistence.AddCredential{Credential: credential("c1", u)},
			persistence.AddCredential{Credential: credential("c1", u)},
			persistence.RecordSignIn{ID: []byte("c1"), Counter: 4, At: t1},
			persistence.AddCredential{Credential: credential("c2", other)},
		})
		for _, i := range []int{0, 1, 3} {
			if res[i].Err != nil {
				t.Fatalf("result %d: %v", i, res[i].Err)
			}
		}
		wantCode(t, res[2].Err, messages.CodeCredentialExists)
		if v := res[3].Value.(persistence.Credential); v.SignCount != 4 {
			t.Fatalf("RecordSignIn in the batch: SignCount %d, want 4", v.SignCount)
		}
		wantCode(t, res[4].Err, messages.CodeConflict)
		list, err := s.CredentialsOf(ctx, "shop", "alice")
		if err != nil || len(list) != 1 || list[0].SignCount != 4 {
			t.Fatalf("CredentialsOf = %+v, %v; want [c1 with SignCount 4]", list, err)
		}
	})
	t.Run("ApplyOne returns the value and error of its op", func(t *testing.T) {
		s := mustOpen(t)
		v, err := persistence.ApplyOne(ctx, s, persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")})
		if err != nil || string(v.([]byte)) != "y" {
			t.Fatalf("ApplyOne = %v, %v; want y, nil", v, err)
		}
		_, err = persistence.ApplyOne(ctx, s, persistence.RecordSignIn{ID: []byte("nope"), Counter: 1})
		wantCode(t, err, messages.CodeCredentialUnknown)
	})
}

func TestPutCommunity(t *testing.T) {
	t.Run("creating one that exists is a conflict and keeps the stored one", func(t *testing.T) {
		s := mustOpen(t)
		first := seedCommunity(t, s, "shop")
		again := community("shop")
		again.Name = "Replacement"
		wantCode(t, applyErr(t, s, persistence.PutCommunity{Community: again, Create: true}), messages.CodeConflict)
		if got, err := s.Community(ctx, "shop"); err != nil || !reflect.DeepEqual(got, first) {
			t.Fatalf("Community = %+v, %v; want %+v", got, err, first)
		}
	})
	t.Run("replacing one that does not exist is not found and writes nothing", func(t *testing.T) {
		s := mustOpen(t)
		c := community("shop")
		c.TenantID = "newtenant"
		wantCode(t, applyErr(t, s, persistence.PutCommunity{Community: c}), messages.CodeNotFound)
		_, err := s.Community(ctx, "shop")
		wantNotFound(t, "Community(shop)", err)
		_, err = s.Tenant(ctx, "newtenant")
		wantNotFound(t, "Tenant(newtenant)", err)
	})
	t.Run("replacing keeps Created and moves Updated", func(t *testing.T) {
		s := mustOpen(t)
		first := seedCommunity(t, s, "shop")
		c := community("shop")
		c.Name = "Renamed"
		c.Created = t0 // ignored
		got := mustApply(t, s, persistence.PutCommunity{Community: c}).(persistence.Community)
		if got.Name != "Renamed" || !got.Created.Equal(first.Created) || got.Updated.Before(first.Updated) {
			t.Fatalf("replaced = %+v; want name Renamed, Created %v, Updated not before %v", got, first.Created, first.Updated)
		}
		if stored, err := s.Community(ctx, "shop"); err != nil || !reflect.DeepEqual(stored, got) {
			t.Fatalf("stored = %+v, %v; want %+v", stored, err, got)
		}
	})
	t.Run("an invalid community is refused and writes nothing", func(t *testing.T) {
		s := mustOpen(t)
		c := community("shop")
		c.Origins = []string{"http://example.com"}
		wantCode(t, applyErr(t, s, persistence.PutCommunity{Community: c, Create: true}), messages.CodeInvalidRequest)
		_, err := s.Community(ctx, "shop")
		wantNotFound(t, "Community(shop)", err)
		_, err = s.Tenant(ctx, "acme")
		wantNotFound(t, "Tenant(acme)", err)
	})
}

func TestPatchCommunity(t *testing.T) {
	t.Run("a missing community is not found", func(t *testing.T) {
		s := mustOpen(t)
		wantCode(t, applyErr(t, s, persistence.PatchCommunity{ID: "nope", Name: "x"}), messages.CodeNotFound)
		_, err := s.Community(ctx, "nope")
		wantNotFound(t, "Community(nope)", err)
	})
	t.Run("unspecified fields are kept", func(t *testing.T) {
		s := mustOpen(t)
		c := community("shop")
		c.TopOrigins = []string{"https://portal.example.net"}
		c.BlockClones = true
		c.UserVerification = persistence.VerificationRequired
		before := mustApply(t, s, persistence.PutCommunity{Community: c, Create: true}).(persistence.Community)
		got := mustApply(t, s, persistence.PatchCommunity{ID: "shop", Name: "Renamed"}).(persistence.Community)
		want := before
		want.Name, want.Updated = "Renamed", got.Updated
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("patched = %+v\nwant %+v", got, want)
		}
		if stored, err := s.Community(ctx, "shop"); err != nil || !reflect.DeepEqual(stored, want) {
			t.Fatalf("stored = %+v, %v; want %+v", stored, err, want)
		}
	})
	t.Run("set fields change, BlockClones can be turned off", func(t *testing.T) {
		s := mustOpen(t)
		c := community("shop")
		c.BlockClones = true
		mustApply(t, s, persistence.PutCommunity{Community: c, Create: true})
		off := false
		got := mustApply(t, s, persistence.PatchCommunity{
			ID: "shop", RPIDs: []string{"example.org"}, Origins: []string{"https://example.org"},
			UserVerification: persistence.VerificationDiscouraged, BlockClones: &off,
		}).(persistence.Community)
		if got.BlockClones || got.UserVerification != persistence.VerificationDiscouraged ||
			!reflect.DeepEqual(got.RPIDs, []string{"example.org"}) || !reflect.DeepEqual(got.Origins, []string{"https://example.org"}) ||
			got.Name != c.Name || got.TenantID != "acme" {
			t.Fatalf("patched = %+v", got)
		}
	})
	t.Run("a patch that makes the community invalid is refused and changes nothing", func(t *testing.T) {
		s := mustOpen(t)
		before := seedCommunity(t, s, "shop")
		patches := []struct {
			name string
			op   persistence.PatchCommunity
		}{
			{"origin outside the RP ID", persistence.PatchCommunity{ID: "shop", Name: "X", Origins: []string{"https://example.org"}}},
			{"RP ID that is a public suffix", persistence.PatchCommunity{ID: "shop", RPIDs: []string{"com"}}},
			{"bad user verification", persistence.PatchCommunity{ID: "shop", UserVerification: "always"}},
			{"bad tenant id", persistence.PatchCommunity{ID: "shop", TenantID: "a/b"}},
			{"empty origins", persistence.PatchCommunity{ID: "shop", Origins: []string{}}},
		}
		for _, p := range patches {
			t.Run(p.name, func(t *testing.T) {
				wantCode(t, applyErr(t, s, p.op), messages.CodeInvalidRequest)
				if got, err := s.Community(ctx, "shop"); err != nil || !reflect.DeepEqual(got, before) {
					t.Fatalf("stored = %+v, %v; want unchanged %+v", got, err, before)
				}
			})
		}
	})
}

func TestPutLicense(t *testing.T) {
	tests := []struct {
		name     string
		level    string
		com, ten string
		wantCode messages.Code // "" when accepted
	}{
		{"community license of an existing community", persistence.LevelCommunity, "shop", "", ""},
		{"community license of an unknown community", persistence.LevelCommunity, "nope", "", messages.CodeCommunityUnknown},
		{"service license of an existing tenant", persistence.LevelService, "", "acme", ""},
		{"service license of an unknown tenant", persistence.LevelService, "", "nobody", messages.CodeNotFound},
		{"system license", persistence.LevelSystem, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedCommunity(t, s, "shop")
			l, key, err := persistence.NewLicense(tc.level, tc.com, tc.ten, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = applyErr(t, s, persistence.PutLicense{License: l})
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("PutLicense: %v", err)
				}
				if got, err := s.LicenseByKey(ctx, key); err != nil || !reflect.DeepEqual(got, l) {
					t.Fatalf("LicenseByKey = %+v, %v; want %+v", got, err, l)
				}
				return
			}
			wantCode(t, err, tc.wantCode)
			_, err = s.LicenseByKey(ctx, key)
			wantNotFound(t, "LicenseByKey of a refused license", err)
		})
	}
	t.Run("a license id that exists is a conflict", func(t *testing.T) {
		s := mustOpen(t)
		l1, key1, err := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		l2, key2, err := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		l2.ID = l1.ID
		mustApply(t, s, persistence.PutLicense{License: l1})
		wantCode(t, applyErr(t, s, persistence.PutLicense{License: l2}), messages.CodeConflict)
		if _, err := s.LicenseByKey(ctx, key1); err != nil {
			t.Fatalf("LicenseByKey(first key): %v", err)
		}
		_, err = s.LicenseByKey(ctx, key2)
		wantNotFound(t, "LicenseByKey(refused key)", err)
	})
	t.Run("Rekey replaces the key of a license id, or creates it", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		var keys []string
		for range 2 {
			l, key, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			l.ID = "demo"
			mustApply(t, s, persistence.PutLicense{License: l, Rekey: true})
			keys = append(keys, key)
		}
		if got, err := s.LicenseByKey(ctx, keys[1]); err != nil || got.ID != "demo" {
			t.Fatalf("LicenseByKey(new key) = %+v, %v", got, err)
		}
		_, err := s.LicenseByKey(ctx, keys[0])
		wantNotFound(t, "LicenseByKey(replaced key)", err)
	})
	t.Run("an invalid license is refused", func(t *testing.T) {
		s := mustOpen(t)
		l, key, _ := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
		l.Level = "root"
		wantCode(t, applyErr(t, s, persistence.PutLicense{License: l}), messages.CodeInvalidRequest)
		_, err := s.LicenseByKey(ctx, key)
		wantNotFound(t, "LicenseByKey", err)
	})
}

// Usernames may not contain a zero byte (doc.go): the key layout separates components with
// one, so "alice\x00x" would extend alice's credential index prefix uk/shop\x00alice\x00.
func TestUsernameWithNULDoesNotReachAnotherUsersIndex(t *testing.T) {
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	seedUser(t, s, "shop", "alice", []byte("ha"))
	res := s.Apply(ctx, []persistence.Op{
		persistence.AddCredential{Credential: credential("c1", persistence.User{CommunityID: "shop", Username: "alice\x00x", Handle: []byte("hx")})},
	})
	if res[0].Err == nil {
		t.Errorf("AddCredential accepted a username with a NUL byte")
	}
	if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 0 {
		t.Errorf("CredentialsOf(alice) = %+v, %v; want none, nil", list, err)
	}
}

// The attestation object of a registration is kept under its own key: reads of the credential
// leave it out, AttestationObjectOf returns it, and sign-ins keep it.
func TestAttestationObjectOf(t *testing.T) {
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	alice := seedUser(t, s, "shop", "alice", []byte("ha"))
	with := credential("with", alice)
	without := credential("without", alice)
	without.AttestationObject = nil
	mustApply(t, s, persistence.AddCredential{Credential: with})
	mustApply(t, s, persistence.AddCredential{Credential: without})
	mustApply(t, s, persistence.RecordSignIn{ID: with.ID, Counter: 1, At: t1})

	tests := []struct {
		name    string
		id      string
		want    []byte
		wantErr error
	}{
		{"registered with one, after a sign-in", "with", with.AttestationObject, nil},
		{"registered without one", "without", nil, nil},
		{"no such credential", "nope", nil, persistence.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AttestationObjectOf(ctx, []byte(tc.id))
			if !errors.Is(err, tc.wantErr) || !bytes.Equal(got, tc.want) {
				t.Fatalf("AttestationObjectOf(%s) = %x, %v; want %x, %v", tc.id, got, err, tc.want, tc.wantErr)
			}
		})
	}
	if c, err := s.Credential(ctx, with.ID); err != nil || c.AttestationObject != nil {
		t.Fatalf("Credential(with) = %+v, %v; want no attestation object", c, err)
	}
}
