package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// digest hashes every row of the database's tables (but those in skip), to show that refused
// ops wrote nothing.
func digest(t testing.TB, dbURL string, skip ...string) string {
	t.Helper()
	conn := rawConn(t, dbURL)
	rows, err := conn.Query(bg(), `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var out strings.Builder
	for _, table := range tables {
		if table == "schema_version" || contains(skip, table) {
			continue
		}
		var sum string
		if err := conn.QueryRow(bg(), `SELECT coalesce(md5(string_agg(x::text, E'\n' ORDER BY x::text)), '') FROM `+table+` x`).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s=%s;", table, sum)
	}
	return out.String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A refused op leaves nothing behind, even what it wrote before it was refused (its savepoint is
// rolled back), and the others of its batch commit.
func TestRefusedOpLeavesNothingAndTheOthersCommit(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL)
	seedCommunity(t, s, "shop")
	mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme"}, DNS: []string{"login.acme.example"}})
	c := credential("c1", user("shop", "alice", "ha"))
	mustApply(t, s, persistence.AddCredential{Credential: c})

	// Each refused op writes before it refuses: the patch creates tenant "other" and then finds
	// the host taken; the registration creates user bob and then finds its display name
	// unstorable.
	bad := credential("c2", user("shop", "bob", "hb"))
	res := s.Apply(bg(), []persistence.Op{
		persistence.PutSecretIfAbsent{Name: "a", Value: []byte("1")},
		persistence.PatchCommunity{ID: "shop", TenantID: "other", TenantDNS: []string{"login.acme.example"}},
		persistence.RecordSignIn{ID: c.ID, Counter: 7, At: t1},
		persistence.AddCredential{Credential: bad, DisplayName: "Bob \xff"},
		persistence.PutSecretIfAbsent{Name: "b", Value: []byte("2")},
	})
	wantCode(t, res[1].Err, messages.CodeConflict)
	wantCode(t, res[3].Err, messages.CodeInvalidRequest)
	for _, i := range []int{0, 2, 4} {
		if res[i].Err != nil {
			t.Fatalf("op %d refused: %s", i, describe(res[i].Err))
		}
	}
	_, err := s.Tenant(bg(), "other")
	wantNotFound(t, "Tenant(other) after the refused patch", err)
	if got, err := s.Community(bg(), "shop"); err != nil || got.TenantID != "acme" {
		t.Fatalf("Community(shop) = %+v, %v; want tenant acme", got, err)
	}
	_, err = s.User(bg(), "shop", "bob")
	wantNotFound(t, "User(bob) after the refused registration", err)
	if got, err := s.Credential(bg(), c.ID); err != nil || got.SignCount != 7 {
		t.Fatalf("Credential(c1) = %+v, %v; want the sign-in committed", got, err)
	}
	for name, want := range map[string]string{"a": "1", "b": "2"} {
		if got, err := s.Secret(bg(), name); err != nil || string(got) != want {
			t.Fatalf("Secret(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if sh, err := s.CommonShape(bg(), "shop"); err != nil || len(sh) != 1 {
		t.Fatalf("CommonShape = %v, %v; want alice's one passkey (bob's was rolled back)", sh, err)
	}

	// And a batch of only refused ops changes nothing at all.
	before := digest(t, dbURL)
	res = s.Apply(bg(), []persistence.Op{
		persistence.PatchCommunity{ID: "shop", TenantID: "other", TenantDNS: []string{"login.acme.example"}},
		persistence.AddCredential{Credential: bad, DisplayName: "Bob \xff"},
		persistence.AddCredential{Credential: credential("c1", user("shop", "carol", "hc"))},
		persistence.RevokeLicense{ID: "nope"},
		persistence.RevokeLicense{ID: "no\xffpe"},
		persistence.RecordSignIn{ID: []byte("nope"), Counter: 1},
		persistence.LinkCredential{CommunityID: "shop", Username: "\xff", FidoKeyHash: persistence.FidoKeyHash(c.ID), DID: "did:example:1"},
	})
	wantCode(t, res[4].Err, messages.CodeNotFound)
	wantCode(t, res[6].Err, messages.CodeNotFound)
	for i, r := range res {
		if r.Err == nil {
			t.Fatalf("op %d accepted", i)
		}
	}
	if after := digest(t, dbURL); after != before {
		t.Fatalf("refused ops changed the database:\n%s\n%s", before, after)
	}
}

// A refused sign-in keeps its one write, the clone warning, whether its batch ran pipelined or
// with a savepoint per op.
func TestCounterRegressionKeepsTheCloneWarningInABatch(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL)
	seedCommunity(t, s, "shop")
	alice := user("shop", "alice", "ha")
	for _, id := range []string{"c1", "c2", "boom"} {
		c := credential(id, alice)
		c.SignCount = 5
		mustApply(t, s, persistence.AddCredential{Credential: c})
	}
	res := s.Apply(bg(), []persistence.Op{
		persistence.RecordSignIn{ID: []byte("c1"), Counter: 3, At: t1},
		persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")},
	})
	if !errors.Is(res[0].Err, persistence.ErrCounterRegression) || res[1].Err != nil {
		t.Fatalf("results = %+v", res)
	}
	// A statement that fails makes the batch run again with a savepoint per op.
	failOn(t, dbURL, "boom")
	res = s.Apply(bg(), []persistence.Op{
		persistence.RecordSignIn{ID: []byte("c2"), Counter: 4, At: t1},
		persistence.RecordSignIn{ID: []byte("boom"), Counter: 9, At: t1},
	})
	if !errors.Is(res[0].Err, persistence.ErrCounterRegression) {
		t.Fatalf("c2: err = %s, want ErrCounterRegression", describe(res[0].Err))
	}
	wantCode(t, res[1].Err, messages.CodeInternal)
	for _, id := range []string{"c1", "c2"} {
		if got, err := s.Credential(bg(), []byte(id)); err != nil || !got.CloneWarning || got.SignCount != 5 {
			t.Fatalf("Credential(%s) = %+v, %v; want the clone warning and counter 5", id, got, err)
		}
	}
}

// failOn makes the database refuse every update of the credential with id, as a failure no op
// expects would.
func failOn(t testing.TB, dbURL, id string) {
	t.Helper()
	conn := rawConn(t, dbURL)
	if _, err := conn.Exec(bg(), `CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'test failure'; END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(bg(), `CREATE TRIGGER test_fail BEFORE UPDATE ON credentials FOR EACH ROW
		WHEN (OLD.id = '`+id+`'::bytea) EXECUTE FUNCTION test_fail()`); err != nil {
		t.Fatal(err)
	}
}

// Sign-ins wait in the pipeline without a savepoint; when one of them fails, the batch runs
// again with a savepoint per op, so that only the failing op fails.
func TestAFailingStatementFailsOnlyItsOp(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL)
	seedCommunity(t, s, "shop")
	alice := user("shop", "alice", "ha")
	for _, id := range []string{"c1", "boom", "c3"} {
		mustApply(t, s, persistence.AddCredential{Credential: credential(id, alice)})
	}
	failOn(t, dbURL, "boom")
	res := s.Apply(bg(), []persistence.Op{
		persistence.RecordSignIn{ID: []byte("c1"), Counter: 1, At: t1},
		persistence.RecordSignIn{ID: []byte("boom"), Counter: 1, At: t1},
		persistence.RememberRequest{Caller: []byte("k"), UUID: "u1", Until: t1.AddDate(100, 0, 0)},
		persistence.RecordSignIn{ID: []byte("c3"), Counter: 1, At: t1},
	})
	wantCode(t, res[1].Err, messages.CodeInternal)
	if !strings.Contains(describe(res[1].Err), "test failure") {
		t.Fatalf("the internal error does not keep its cause: %s", describe(res[1].Err))
	}
	for _, i := range []int{0, 2, 3} {
		if res[i].Err != nil {
			t.Fatalf("op %d: %s", i, describe(res[i].Err))
		}
	}
	for _, id := range []string{"c1", "c3"} {
		if got, err := s.Credential(bg(), []byte(id)); err != nil || got.SignCount != 1 {
			t.Fatalf("Credential(%s) = %+v, %v; want counter 1", id, got, err)
		}
	}
	wantCode(t, applyErr(t, s, persistence.RememberRequest{Caller: []byte("k"), UUID: "u1", Until: t1.AddDate(100, 0, 0)}),
		messages.CodeRequestReplayed)
}

// Batches that lock the same rows in opposite orders can deadlock; PostgreSQL aborts one, which
// runs again: every op succeeds.
func TestDeadlockedBatchesRunAgain(t *testing.T) {
	dbURL := newSchema(t)
	// PostgreSQL looks for a deadlock after a second of waiting, by default.
	fast := dbURL + "&deadlock_timeout=20ms"
	a, b := mustOpen(t, fast), mustOpen(t, fast)
	seedCommunity(t, a, "shop")
	alice := user("shop", "alice", "ha")
	ids := [][]byte{[]byte("c1"), []byte("c2"), []byte("c3")}
	for _, id := range ids {
		mustApply(t, a, persistence.AddCredential{Credential: credential(string(id), alice)})
	}
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds*len(ids))
	for g := range 4 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				// Counter 0 is always accepted: only a failure of the batch can refuse one.
				var ops []persistence.Op
				for i := range ids {
					k := i
					if g >= 2 {
						k = len(ids) - 1 - i
					}
					ops = append(ops, persistence.RecordSignIn{ID: ids[k], At: t1})
				}
				for _, r := range s.Apply(bg(), ops) {
					if r.Err != nil {
						errs <- r.Err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a sign-in failed: %s", describe(err))
	}
	var deadlocks int64
	if err := rawConn(t, dbURL).QueryRow(bg(), `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocks); err == nil {
		t.Logf("%d deadlocks were resolved", deadlocks)
	}
}

// An op refused by the checks that need no store never reaches the database; an empty batch
// has no results.
func TestApplyChecksFirst(t *testing.T) {
	s := freshStore(t)
	if res := s.Apply(bg(), nil); len(res) != 0 {
		t.Fatalf("Apply(nil) = %+v", res)
	}
	before := s.RoundTrips()
	res := s.Apply(bg(), []persistence.Op{
		persistence.PutCommunity{Community: persistence.Community{ID: "bad id"}},
		persistence.LinkCredential{DID: "not a did"},
	})
	wantCode(t, res[0].Err, messages.CodeInvalidRequest)
	wantCode(t, res[1].Err, messages.CodeInvalidRequest)
	if n := s.RoundTrips() - before; n != 0 {
		t.Fatalf("checks alone cost %d round trips", n)
	}
}

// A batch whose context has ended fails whole, with the context's error as its cause.
func TestApplyHonoursItsContext(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL)
	before := digest(t, dbURL)
	ctx, cancel := context.WithCancel(bg())
	cancel()
	res := s.Apply(ctx, []persistence.Op{
		persistence.PutSecretIfAbsent{Name: "a", Value: []byte("1")},
		persistence.RememberRequest{Caller: []byte("k"), UUID: "u", Until: t1},
	})
	for i, r := range res {
		wantCode(t, r.Err, messages.CodeInternal)
		if !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("op %d: err = %s, want the context's error as its cause", i, describe(r.Err))
		}
	}
	if after := digest(t, dbURL); after != before {
		t.Fatal("a cancelled batch wrote")
	}
	if _, err := s.Secret(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Secret with a cancelled context: err = %v, want context.Canceled", err)
	}
}

// A registration whose credential id another node registers between its check and its insert
// is refused as a duplicate, and leaves nothing: not its new user, not its attestation object
// (which would have gone to the other node's credential), not its shape in the tally.
func TestRegistrationThatLosesTheRaceForItsIDLeavesNothing(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL)
	seedCommunity(t, s, "shop")
	mustApply(t, s, persistence.AddCredential{Credential: credential("first", user("shop", "bob", "hb"))})
	shape, err := s.CommonShape(bg(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	other := rawConn(t, dbURL)
	tx, err := other.Begin(bg())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(bg()) }()
	if _, err := tx.Exec(bg(), `INSERT INTO credentials (id, community_id, username, user_handle, rp_id, algorithm,
		attestation_format, attestation_type, attestation_trusted, attachment, user_present, user_verified,
		backup_eligible, backup_state, sign_count, clone_warning, created, last_used)
		VALUES ('dup', 'shop', 'bob', 'hb', 'example.com', -7, 'none', 'None', false, '', true, false, false, false, 0, false, 1, 0)`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Apply(bg(), []persistence.Op{persistence.AddCredential{Credential: credential("dup", user("shop", "alice", "ha"))}})[0].Err
	}()
	watch := rawConn(t, dbURL)
	eventually(t, 10*time.Second, "the registration waiting for the other node's insert", func() bool {
		var waiting bool
		err := watch.QueryRow(bg(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'webauthnd' AND wait_event_type = 'Lock')`).Scan(&waiting)
		return err == nil && waiting
	})
	if err := tx.Commit(bg()); err != nil {
		t.Fatal(err)
	}
	wantCode(t, <-done, messages.CodeCredentialExists)
	_, err = s.User(bg(), "shop", "alice")
	wantNotFound(t, "User(alice)", err)
	if att, err := s.AttestationObjectOf(bg(), []byte("dup")); err != nil || att != nil {
		t.Fatalf("AttestationObjectOf(dup) = %x, %v; want none", att, err)
	}
	if got, err := s.CommonShape(bg(), "shop"); err != nil || len(got) != len(shape) {
		t.Fatalf("CommonShape = %v, %v; want bob's %v still", got, err, shape)
	}
	var users int
	if err := watch.QueryRow(bg(), `SELECT coalesce(sum(users), 0) FROM shape_counts`).Scan(&users); err != nil || users != 1 {
		t.Fatalf("the tally counts %d users, %v; want 1", users, err)
	}
}

// A batch on a connection that the server closed (as a restart or a failover closes every
// connection the pool holds) runs again on a new one when its COMMIT never left: nothing was
// committed. A sign-in, whose COMMIT goes out with its statement, is never run twice: it
// succeeds, or fails with an internal error, but is never refused as a regression of itself.
func TestBatchOnAClosedConnection(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL, postgres.WithMaxConns(1))
	seedCommunity(t, s, "shop")
	c := credential("c1", user("shop", "alice", "ha"))
	mustApply(t, s, persistence.AddCredential{Credential: c})
	admin := rawConn(t, dbURL)
	closeThePool := func() {
		t.Helper()
		var pid int
		if err := admin.QueryRow(bg(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'webauthnd'`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(bg(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the backend gone", func() bool {
			var alive bool
			err := admin.QueryRow(bg(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, pid).Scan(&alive)
			return err == nil && !alive
		})
	}
	for round := range 3 {
		closeThePool()
		v, err := persistence.ApplyOne(bg(), s, persistence.PutSecretIfAbsent{Name: fmt.Sprintf("s%d", round), Value: []byte("v")})
		if err != nil || string(v.([]byte)) != "v" {
			t.Fatalf("round %d: PutSecretIfAbsent on a closed connection = %v, %s", round, v, describe(err))
		}
		closeThePool()
		err = applyErr(t, s, persistence.RecordSignIn{ID: c.ID, Counter: uint32(round + 1), At: t1})
		// A connection lost under a batch whose COMMIT was sent: the outcome is unknown, it is
		// not run again, and the client is told to retry (503 unavailable, as for any lost
		// connection), never that its request was wrong.
		if err != nil {
			wantCode(t, err, messages.CodeUnavailable)
		}
		mustApply(t, s, persistence.RecordSignIn{ID: c.ID, Counter: uint32(10 * (round + 1)), At: t1})
	}
	if got, err := s.Credential(bg(), c.ID); err != nil || got.CloneWarning {
		t.Fatalf("Credential = %+v, %v; want no clone warning", got, err)
	}
}
