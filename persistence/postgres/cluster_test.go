package postgres_test

// Two Stores on one database behave as two nodes of a cluster: each has its own pool, its own
// listener and its own caches.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// twoNodes opens two stores on one new database.
func twoNodes(t *testing.T, opts ...postgres.Option) (a, b *postgres.Store, dbURL string) {
	t.Helper()
	dbURL = newSchema(t)
	return mustOpen(t, dbURL, opts...), mustOpen(t, dbURL, opts...), dbURL
}

// 50 concurrent sign-ins of one passkey, half through each node, each in its own batch: the
// stored counter is the highest accepted one (50, which nothing can refuse), every other
// sign-in is accepted or refused as a regression, and a refusal leaves the clone warning.
func TestConcurrentSignInsAcrossNodes(t *testing.T) {
	const n = 50
	a, b, _ := twoNodes(t)
	seedCommunity(t, a, "shop")
	alice := user("shop", "alice", "ha")
	for round := range 5 {
		c := credential(fmt.Sprintf("c-%d", round), alice)
		mustApply(t, a, persistence.AddCredential{Credential: c})
		errs := make([]error, n+1)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for counter := 1; counter <= n; counter++ {
			s := a
			if counter%2 == 0 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[counter] = s.Apply(bg(), []persistence.Op{persistence.RecordSignIn{ID: c.ID, Counter: uint32(counter), At: t1}})[0].Err
			}()
		}
		close(start)
		wg.Wait()
		refused := 0
		for counter, err := range errs[1:] {
			switch {
			case err == nil:
			case errors.Is(err, persistence.ErrCounterRegression):
				refused++
			default:
				t.Fatalf("round %d, counter %d: err = %s, want nil or a regression", round, counter+1, describe(err))
			}
		}
		if errs[n] != nil {
			t.Fatalf("round %d: the highest counter was refused: %s", round, describe(errs[n]))
		}
		for _, s := range []*postgres.Store{a, b} {
			got, err := s.Credential(bg(), c.ID)
			if err != nil || got.SignCount != n || got.CloneWarning != (refused > 0) {
				t.Fatalf("round %d: Credential = counter %d, clone warning %v, %v; want %d, %v (%d refused)",
					round, got.SignCount, got.CloneWarning, err, n, refused > 0, refused)
			}
		}
		// And a lower counter is refused afterwards, on either node.
		wantCode(t, applyErr(t, b, persistence.RecordSignIn{ID: c.ID, Counter: n - 1, At: t1}), messages.CodeCounterRegression)
	}
}

// Concurrent takes of one ceremony, half on each node: exactly one gets it.
func TestTakeCeremonyExactlyOnceAcrossNodes(t *testing.T) {
	const takers = 16
	a, b, _ := twoNodes(t)
	for round := range 10 {
		c := persistence.Ceremony{ID: fmt.Sprintf("cer-%d", round), CommunityID: "shop", State: []byte{1, 2, byte(round)},
			Expires: time.Now().Add(time.Minute)}
		if err := a.PutCeremony(bg(), c); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.CeremonyExists(bg(), c.ID); err != nil || !ok {
			t.Fatalf("CeremonyExists on the other node = %v, %v", ok, err)
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			got   []persistence.Ceremony
			start = make(chan struct{})
		)
		for i := range takers {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				taken, err := s.TakeCeremony(bg(), c.ID)
				switch {
				case err == nil:
					mu.Lock()
					got = append(got, taken)
					mu.Unlock()
				case !errors.Is(err, persistence.ErrNotFound):
					t.Errorf("TakeCeremony: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(got) != 1 {
			t.Fatalf("round %d: %d takes succeeded, want exactly 1", round, len(got))
		}
		if g := got[0]; g.ID != c.ID || g.CommunityID != c.CommunityID || !bytes.Equal(g.State, c.State) ||
			!g.Expires.Equal(c.Expires.Truncate(time.Microsecond)) {
			t.Fatalf("taken = %+v, want %+v", g, c)
		}
		if ok, err := a.CeremonyExists(bg(), c.ID); err != nil || ok {
			t.Fatalf("CeremonyExists after the take = %v, %v; want false", ok, err)
		}
	}
}

func TestCeremonies(t *testing.T) {
	s := freshStore(t)
	past := persistence.Ceremony{ID: "old", CommunityID: "shop", State: []byte("s"), Expires: time.Now().Add(-time.Second)}
	if err := s.PutCeremony(bg(), past); err != nil {
		t.Fatal(err)
	}
	_, err := s.TakeCeremony(bg(), "old")
	wantNotFound(t, "TakeCeremony of an expired ceremony", err)
	if ok, err := s.CeremonyExists(bg(), "old"); err != nil || ok {
		t.Fatalf("CeremonyExists(expired) = %v, %v", ok, err)
	}
	// An expired ceremony's id may be used again; a live one's may not.
	live := persistence.Ceremony{ID: "old", CommunityID: "blog", State: []byte("t"), Expires: time.Now().Add(time.Minute)}
	if err := s.PutCeremony(bg(), live); err != nil {
		t.Fatalf("PutCeremony over an expired one: %v", err)
	}
	wantCode(t, s.PutCeremony(bg(), live), messages.CodeConflict)
	if got, err := s.TakeCeremony(bg(), "old"); err != nil || got.CommunityID != "blog" || string(got.State) != "t" {
		t.Fatalf("TakeCeremony = %+v, %v", got, err)
	}
	_, err = s.TakeCeremony(bg(), "old")
	wantNotFound(t, "a second TakeCeremony", err)
	_, err = s.TakeCeremony(bg(), "\xff")
	wantNotFound(t, "TakeCeremony of an id that cannot be stored", err)
}

// A sealed request's uuid recorded through one node is refused by the other, and of concurrent
// records of one uuid exactly one succeeds.
func TestReplayRefusedAcrossNodes(t *testing.T) {
	a, b, _ := twoNodes(t)
	until := time.Now().Add(time.Minute)
	mustApply(t, a, persistence.RememberRequest{Caller: []byte("key-1"), UUID: "u1", Until: until})
	wantCode(t, applyErr(t, b, persistence.RememberRequest{Caller: []byte("key-1"), UUID: "u1", Until: until}), messages.CodeRequestReplayed)
	// Another caller's uuid is another record.
	mustApply(t, b, persistence.RememberRequest{Caller: []byte("key-2"), UUID: "u1", Until: until})

	for round := range 10 {
		uuid := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		results := make([]error, 8)
		start := make(chan struct{})
		for i := range results {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = s.Apply(bg(), []persistence.Op{persistence.RememberRequest{Caller: []byte("key-1"), UUID: uuid, Until: until}})[0].Err
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range results {
			if err == nil {
				ok++
			} else {
				wantCode(t, err, messages.CodeRequestReplayed)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d records succeeded, want exactly 1", round, ok)
		}
	}
}

// A record that expired is as good as none, swept or not.
func TestReplayRecordExpires(t *testing.T) {
	s := freshStore(t)
	mustApply(t, s, persistence.RememberRequest{Caller: []byte("k"), UUID: "u", Until: time.Now().Add(-time.Hour)})
	// At least a second, as the embedded store's TTL.
	wantCode(t, applyErr(t, s, persistence.RememberRequest{Caller: []byte("k"), UUID: "u", Until: time.Now()}), messages.CodeRequestReplayed)
	time.Sleep(1100 * time.Millisecond)
	mustApply(t, s, persistence.RememberRequest{Caller: []byte("k"), UUID: "u", Until: time.Now().Add(time.Minute)})
	wantCode(t, applyErr(t, s, persistence.RememberRequest{Caller: []byte("k"), UUID: "u", Until: time.Now()}), messages.CodeRequestReplayed)
}

// The sweep deletes expired ceremonies and replay records, and nothing else.
func TestSweep(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL, postgres.WithSweepEvery(50*time.Millisecond))
	for _, c := range []persistence.Ceremony{
		{ID: "expired", CommunityID: "shop", State: []byte("x"), Expires: time.Now().Add(-time.Second)},
		{ID: "live", CommunityID: "shop", State: []byte("x"), Expires: time.Now().Add(time.Hour)},
	} {
		if err := s.PutCeremony(bg(), c); err != nil {
			t.Fatal(err)
		}
	}
	conn := rawConn(t, dbURL)
	if _, err := conn.Exec(bg(), `INSERT INTO replays (caller, request, expires) VALUES ('a', 'expired', now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, persistence.RememberRequest{Caller: []byte("a"), UUID: "live", Until: time.Now().Add(time.Hour)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ceremonies, replays int
		if err := conn.QueryRow(bg(), `SELECT (SELECT count(*) FROM ceremonies), (SELECT count(*) FROM replays)`).Scan(&ceremonies, &replays); err != nil {
			t.Fatal(err)
		}
		if ceremonies == 1 && replays == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d ceremonies and %d replay records, want 1 and 1", ceremonies, replays)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, err := s.CeremonyExists(bg(), "live"); err != nil || !ok {
		t.Fatalf("the live ceremony is gone: %v, %v", ok, err)
	}
}

// Concurrent first registrations of one username, through both nodes: exactly one creates the
// user, the others are told to start again and leave nothing behind.
func TestConcurrentFirstRegistrationsAcrossNodes(t *testing.T) {
	const n = 20
	a, b, _ := twoNodes(t)
	seedCommunity(t, a, "shop")
	results := make([]persistence.Result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c := credential(fmt.Sprintf("c-%02d", i), user("shop", "alice", fmt.Sprintf("handle-%02d", i)))
			results[i] = s.Apply(bg(), []persistence.Op{persistence.AddCredential{Credential: c}})[0]
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, r := range results {
		if r.Err == nil {
			won++
			continue
		}
		wantCode(t, r.Err, messages.CodeConflict)
	}
	if won != 1 {
		t.Fatalf("%d first registrations succeeded, want exactly 1", won)
	}
	if list, err := b.CredentialsOf(bg(), "shop", "alice"); err != nil || len(list) != 1 {
		t.Fatalf("CredentialsOf(alice) = %d credentials, %v; want 1", len(list), err)
	}
	if sh, err := a.CommonShape(bg(), "shop"); err != nil || len(sh) != 1 {
		t.Fatalf("CommonShape = %v, %v; want one user with one passkey", sh, err)
	}
}

// Concurrent registrations of one user's passkeys, through both nodes, tally its shape once.
func TestConcurrentPasskeysOfOneUserAcrossNodes(t *testing.T) {
	const n = 10
	a, b, _ := twoNodes(t)
	seedCommunity(t, a, "shop")
	alice := user("shop", "alice", "ha")
	mustApply(t, a, persistence.AddCredential{Credential: credential("first", alice)})
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := credential(fmt.Sprintf("k-%02d", i), alice)
			c.Transports = []string{"usb"}
			if err := s.Apply(bg(), []persistence.Op{persistence.AddCredential{Credential: c}})[0].Err; err != nil {
				t.Errorf("AddCredential: %s", describe(err))
			}
		}()
	}
	wg.Wait()
	creds, err := a.CredentialsOf(bg(), "shop", "alice")
	if err != nil || len(creds) != n+1 {
		t.Fatalf("CredentialsOf = %d, %v", len(creds), err)
	}
	sh, err := b.CommonShape(bg(), "shop")
	if err != nil || len(sh) != n+1 {
		t.Fatalf("CommonShape = %v, %v; want alice's %d passkeys", sh, err, n+1)
	}
}

// eventually polls cond until it holds, failing the test if it does not within limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// A change of what nodes cache, made through one node, reaches the other within a second: the
// notification clears its cache and moves its generations on.
func TestConfigChangesReachTheOtherNodeWithinASecond(t *testing.T) {
	// The periodic re-read is slowed down, so that only the notification can pass the test.
	a, b, _ := twoNodes(t, postgres.WithRefreshEvery(time.Hour))
	seedCommunity(t, a, "shop")
	l, key, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, a, persistence.PutLicense{License: l})
	// b caches both.
	if c, err := b.Community(bg(), "shop"); err != nil || c.Name != "Community shop" {
		t.Fatalf("Community = %+v, %v", c, err)
	}
	if got, err := b.LicenseByKey(bg(), key); err != nil || got.Disabled {
		t.Fatalf("LicenseByKey = %+v, %v", got, err)
	}

	mustApply(t, a, persistence.PatchCommunity{ID: "shop", Name: "Renamed"})
	took := eventually(t, time.Second, "the renamed community on the other node", func() bool {
		c, err := b.Community(bg(), "shop")
		return err == nil && c.Name == "Renamed"
	})
	t.Logf("community: %v", took)

	mustApply(t, a, persistence.RevokeLicense{ID: l.ID})
	took = eventually(t, time.Second, "the revoked license on the other node", func() bool {
		got, err := b.LicenseByKey(bg(), key)
		return err == nil && got.Disabled
	})
	t.Logf("license: %v", took)

	vendor := b.VendorGeneration()
	mustApply(t, a, persistence.PutVendorMetadata{Record: persistence.VendorRecord{CommunityID: "shop",
		AAGUID: "01020304-0506-0708-090a-0b0c0d0e0f10", Metadata: "{}", Name: "Key", UpdatedBy: "test"}})
	eventually(t, time.Second, "the vendor generation on the other node", func() bool { return b.VendorGeneration() != vendor })

	keyring := b.KeyringGeneration()
	mustApply(t, a, persistence.RotateKey{Name: "tokens", New: persistence.KeyRecord{Kind: "ES256", Private: []byte("k"), Created: t0}})
	eventually(t, time.Second, "the keyring generation on the other node", func() bool { return b.KeyringGeneration() != keyring })
	if ring, err := b.Keyring(bg(), "tokens"); err != nil || len(ring.Keys) != 1 {
		t.Fatalf("Keyring on the other node = %+v, %v", ring, err)
	}

	blob, err := a.ReplaceMDS(bg(), persistence.MDSBlob{Number: 1}, []persistence.MDSEntry{{AAID: "a#1", Entry: []byte(`{}`)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if a.MDSGeneration() != blob.Generation {
		t.Fatalf("MDSGeneration on the importing node = %d, want %d", a.MDSGeneration(), blob.Generation)
	}
	eventually(t, time.Second, "the MDS generation on the other node", func() bool { return b.MDSGeneration() == blob.Generation })
}

// A notification can be missed (a node whose listener was between connections, a change made
// with triggers off): the periodic re-read of the config versions finds the change.
func TestMissedNotificationFoundByTheRereading(t *testing.T) {
	dbURL := newSchema(t)
	core, logs := observer.New(zap.InfoLevel)
	s := mustOpen(t, dbURL, postgres.WithRefreshEvery(100*time.Millisecond), postgres.WithLogger(zap.New(core)))
	seedCommunity(t, s, "shop")
	if _, err := s.Community(bg(), "shop"); err != nil {
		t.Fatal(err)
	}
	vendor := s.VendorGeneration()
	// Behind the store's back and without a notification: the triggers are off in this
	// session, and the versions are bumped by hand.
	conn := rawConn(t, dbURL)
	for _, sql := range []string{
		`SET session_replication_role = replica`,
		`UPDATE communities SET name = 'Quiet' WHERE id = 'shop'`,
		`UPDATE config_versions SET version = version + 1 WHERE kind IN ('config', 'vendor')`,
	} {
		if _, err := conn.Exec(bg(), sql); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 2*time.Second, "the quiet change", func() bool {
		c, err := s.Community(bg(), "shop")
		return err == nil && c.Name == "Quiet" && s.VendorGeneration() != vendor
	})
	// The re-reads came from the listener's wait timing out, which keeps its connection.
	time.Sleep(300 * time.Millisecond)
	if warnings := logs.FilterLevelExact(zap.WarnLevel).All(); len(warnings) != 0 {
		t.Fatalf("the listener warned %d times, want none: %v", len(warnings), warnings[0].Message)
	}
}

// When the listener's connection is lost, the store connects again and reads everything anew:
// a change made while it was not listening is seen.
func TestListenerReconnects(t *testing.T) {
	dbURL := newDatabase(t)
	a := mustOpen(t, dbURL, postgres.WithRefreshEvery(time.Hour))
	b := mustOpen(t, dbURL)
	seedCommunity(t, b, "shop")
	if _, err := a.Community(bg(), "shop"); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, dbURL)
	// Every listener of the database goes: a's and b's.
	var killed int
	if err := conn.QueryRow(bg(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'webauthnd listener'`).Scan(&killed); err != nil || killed != 2 {
		t.Fatalf("terminated %d listeners, %v; want 2", killed, err)
	}
	mustApply(t, b, persistence.PatchCommunity{ID: "shop", Name: "While away"})
	eventually(t, 2*time.Second, "the change made while the listener was away", func() bool {
		c, err := a.Community(bg(), "shop")
		return err == nil && c.Name == "While away"
	})
	// And it listens again.
	mustApply(t, b, persistence.PatchCommunity{ID: "shop", Name: "Back"})
	eventually(t, time.Second, "a change after the reconnection", func() bool {
		c, err := a.Community(bg(), "shop")
		return err == nil && c.Name == "Back"
	})
}

// Nodes starting together on an empty database: under Exclusive one of them creates the
// default, the others find it made, and no two run at once.
func TestExclusive(t *testing.T) {
	a, b, _ := twoNodes(t)
	var (
		mu              sync.Mutex
		inside, maxSeen int
		created         int
		wg              sync.WaitGroup
	)
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Exclusive(bg(), "first start", func(ctx context.Context) error {
				mu.Lock()
				inside++
				maxSeen = max(maxSeen, inside)
				mu.Unlock()
				defer func() { mu.Lock(); inside--; mu.Unlock() }()
				empty, err := s.Empty(ctx)
				if err != nil || !empty {
					return err
				}
				time.Sleep(20 * time.Millisecond) // a start-up's other work
				if err := s.Apply(ctx, []persistence.Op{persistence.PutCommunity{Community: community("default"), Create: true}})[0].Err; err != nil {
					return err
				}
				mu.Lock()
				created++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Errorf("Exclusive: %s", describe(err))
			}
		}()
	}
	wg.Wait()
	if created != 1 || maxSeen != 1 {
		t.Fatalf("the default was created %d times, and %d callers ran at once; want 1 and 1", created, maxSeen)
	}
	// The lock is the name's only.
	done := make(chan error, 1)
	go func() {
		done <- a.Exclusive(bg(), "one", func(ctx context.Context) error {
			return b.Exclusive(ctx, "another", func(context.Context) error { return nil })
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exclusive of another name waited")
	}
}
