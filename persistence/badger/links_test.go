package badger_test

import (
	"testing"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// seedPasskeys gives alice two passkeys and bob one, in community shop, and carol one in blog.
func seedPasskeys(t *testing.T, s *badger.Store) {
	t.Helper()
	seedCommunity(t, s, "shop")
	seedCommunity(t, s, "blog")
	alice := seedUser(t, s, "shop", "alice", []byte("h-alice"))
	bob := seedUser(t, s, "shop", "bob", []byte("h-bob"))
	carol := seedUser(t, s, "blog", "carol", []byte("h-carol"))
	for _, c := range []persistence.Credential{credential("a1", alice), credential("a2", alice), credential("b1", bob), credential("c1", carol)} {
		mustApply(t, s, persistence.AddCredential{Credential: c})
	}
}

func hashOf(id string) []byte { return persistence.FidoKeyHash([]byte(id)) }

// TestFidoKeyHashIndexBackfill: a store written before the fidoKeyHash index existed gets it at
// its next Open, so its passkeys can be removed by fidoKeyHash.
func TestFidoKeyHashIndexBackfill(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	seedPasskeys(t, s)
	closeStore()
	// Take the index and its marker away, as in a store of an earlier version.
	db, err := bdb.Open(bdb.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DropPrefix([]byte("kh/"), []byte("m/")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = mustOpenAt(t, dir)
	if n := mustApply(t, s, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("b1")}); n != 1 {
		t.Fatalf("removed %v passkeys, want 1", n)
	}
}
