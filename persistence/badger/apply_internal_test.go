package badger

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// conflicting is the secret that the ops of these tests name to make a batch conflict.
const conflicting = "contended"

// conflictingApply applies ops as Apply does, but for a PutSecretIfAbsent of the secret
// conflicting: that one reads the secret in the batch's transaction and then commits a write of
// it in a transaction of its own, so that the batch's commit conflicts, on every attempt or
// (once) only on the first. attempts counts the attempts.
func conflictingApply(db *bdb.DB, attempts *int, once bool) func(*bdb.Txn, persistence.Op) (any, error) {
	return func(txn *bdb.Txn, op persistence.Op) (any, error) {
		if o, ok := op.(persistence.PutSecretIfAbsent); !ok || o.Name != conflicting {
			return applyOp(txn, op)
		}
		*attempts++
		if once && *attempts > 1 {
			return "applied", nil
		}
		if _, err := txn.Get(secretKey(conflicting)); err != nil && !errors.Is(err, bdb.ErrKeyNotFound) {
			return nil, err
		}
		if err := db.Update(func(other *bdb.Txn) error {
			return other.Set(secretKey(conflicting), []byte{byte(*attempts)})
		}); err != nil {
			return nil, err
		}
		return "applied", nil
	}
}

// Apply retries a conflicting commit a bounded number of times; when the commit finally fails,
// every op of the batch fails with an internal error and none of their writes is stored.
func TestApplyWhenTheCommitKeepsConflicting(t *testing.T) {
	s, err := Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	attempts := 0
	res := s.apply(ctx, []persistence.Op{
		persistence.PutSecretIfAbsent{Name: "written-before", Value: []byte("x")},
		persistence.PutSecretIfAbsent{Name: conflicting, Value: []byte("c")},
		persistence.PutSecretIfAbsent{Name: "written-after", Value: []byte("y")},
	}, conflictingApply(s.db, &attempts, false))
	if attempts != 11 {
		t.Errorf("the batch ran %d times, want 11 (one try and 10 retries)", attempts)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	for i, r := range res {
		if r.Value != nil || messages.ErrorCode(r.Err) != messages.CodeInternal || !errors.Is(r.Err, bdb.ErrConflict) {
			t.Errorf("result %d = %#v, %v; want no value and an internal error caused by ErrConflict", i, r.Value, r.Err)
		}
	}
	for _, name := range []string{"written-before", "written-after"} {
		if _, err := s.Secret(ctx, name); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("Secret(%s): err = %v, want ErrNotFound (the batch did not commit)", name, err)
		}
	}
}

// A batch whose first attempt conflicts is run again from scratch and then commits.
func TestApplyRetriesAConflictOnce(t *testing.T) {
	s, err := Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	attempts := 0
	res := s.apply(ctx, []persistence.Op{
		persistence.PutSecretIfAbsent{Name: conflicting, Value: []byte("c")},
		persistence.PutSecretIfAbsent{Name: "k", Value: []byte("v")},
	}, conflictingApply(s.db, &attempts, true))
	if attempts != 2 {
		t.Errorf("the batch ran %d times, want 2", attempts)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	if v, err := s.Secret(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Secret(k) = %q, %v; want v", v, err)
	}
}

// TestApplyKnowsEveryOp: the Badger store applies every op of persistence (each type with an
// op method in persistence/ops.go), so that an op added there without a case in applyOp fails
// here rather than in production. Each op below is the smallest that passes persistence.Check
// and reaches its case: it succeeds, or is refused for a reason of its own (not_found,
// community_unknown, ...), where a missing case answers an internal error.
func TestApplyKnowsEveryOp(t *testing.T) {
	s, err := Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	community := persistence.Community{ID: "c", TenantID: "t", Name: "c", RPIDs: []string{"example.com"},
		Origins: []string{"https://example.com"}, UserVerification: persistence.VerificationPreferred}
	did := "did:example:1"
	ops := []persistence.Op{
		persistence.PutTenant{Tenant: persistence.Tenant{ID: "t"}},
		persistence.PutCommunity{Community: community, Create: true},
		persistence.PatchCommunity{ID: "missing"},
		persistence.PutLicense{License: persistence.License{ID: "l", KeyHash: make([]byte, 32), Level: persistence.LevelSystem}},
		persistence.RevokeLicense{ID: "missing"},
		persistence.PutSecretIfAbsent{Name: "s", Value: []byte("v")},
		persistence.RotateKey{Name: "k", New: persistence.KeyRecord{Kind: "ES256", Private: []byte{1}}},
		persistence.RememberRequest{Caller: []byte("caller"), UUID: "u", Until: time.Now().Add(time.Minute)},
		persistence.AddCredential{Credential: persistence.Credential{ID: []byte("id"), CommunityID: "c", Username: "alice", UserHandle: []byte("h")}},
		persistence.RecordSignIn{ID: []byte("missing")},
		persistence.LinkCredential{CommunityID: "c", Username: "alice", FidoKeyHash: make([]byte, 32), DID: did},
		persistence.UnlinkCredential{CommunityID: "c", Username: "alice", FidoKeyHash: make([]byte, 32), DID: did},
		persistence.RemoveCredentials{CommunityID: "c", DID: did},
		persistence.PutVendorMetadata{Record: persistence.VendorRecord{CommunityID: "missing",
			AAGUID: "00000000-0000-0000-0000-000000000001", Metadata: "{}", Name: "n", UpdatedBy: "u"}},
		persistence.PatchVendorMetadata{CommunityID: "c", AAGUID: "00000000-0000-0000-0000-000000000001", UpdatedBy: "u"},
	}
	src, err := os.ReadFile("../ops.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, m := range regexp.MustCompile(`(?m)^func \((\w+)\) op\(\)`).FindAllSubmatch(src, -1) {
		declared = append(declared, "persistence."+string(m[1]))
	}
	var listed []string
	for _, op := range ops {
		listed = append(listed, fmt.Sprintf("%T", op))
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Fatalf("persistence declares the ops %v; this test lists %v", declared, listed)
	}
	for _, op := range ops {
		r := s.Apply(ctx, []persistence.Op{op})[0]
		if code := messages.ErrorCode(r.Err); r.Err != nil && (code == messages.CodeInternal || code == messages.CodeInvalidRequest) {
			t.Errorf("Apply(%T) = %v", op, r.Err)
		}
	}
}
