package persistence

import (
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// conflictingOp reads a key in the batch's transaction and then commits a write of that key in
// a transaction of its own, so the batch's commit conflicts on every attempt.
type conflictingOp struct {
	db       *badger.DB
	attempts *int
}

func (o conflictingOp) apply(txn *badger.Txn) (any, error) {
	*o.attempts++
	if _, err := txn.Get([]byte("s/contended")); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return nil, err
	}
	if err := o.db.Update(func(other *badger.Txn) error {
		return other.Set([]byte("s/contended"), []byte{byte(*o.attempts)})
	}); err != nil {
		return nil, err
	}
	return "applied", nil
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
	res := s.Apply([]Op{
		PutSecretIfAbsent{Name: "written-before", Value: []byte("x")},
		conflictingOp{db: s.db, attempts: &attempts},
		PutSecretIfAbsent{Name: "written-after", Value: []byte("y")},
	})
	if attempts != 11 {
		t.Errorf("the batch ran %d times, want 11 (one try and 10 retries)", attempts)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	for i, r := range res {
		if r.Value != nil || messages.ErrorCode(r.Err) != messages.CodeInternal || !errors.Is(r.Err, badger.ErrConflict) {
			t.Errorf("result %d = %#v, %v; want no value and an internal error caused by ErrConflict", i, r.Value, r.Err)
		}
	}
	for _, name := range []string{"written-before", "written-after"} {
		if _, err := s.Secret(name); !errors.Is(err, ErrNotFound) {
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
	res := s.Apply([]Op{conflictOnce{db: s.db, attempts: &attempts}, PutSecretIfAbsent{Name: "k", Value: []byte("v")}})
	if attempts != 2 {
		t.Errorf("the batch ran %d times, want 2", attempts)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	if v, err := s.Secret("k"); err != nil || string(v) != "v" {
		t.Fatalf("Secret(k) = %q, %v; want v", v, err)
	}
}

type conflictOnce conflictingOp

func (o conflictOnce) apply(txn *badger.Txn) (any, error) {
	if *o.attempts == 0 {
		return conflictingOp(o).apply(txn)
	}
	*o.attempts++
	return nil, nil
}
