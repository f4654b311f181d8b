package badger_test

import (
	"testing"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
	"github.com/webauthnd/webauthnd/persistence/storetest"
)

// TestContract runs the contract suite of the persistence boundary against Badger, each test
// on a store of its own in a temporary directory. (RunShared and RunCeremonies do not apply:
// Badger holds its directory for one process, which keeps its ceremonies in memory.)
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store {
		s, err := badger.Open(t.TempDir(), zap.NewNop())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}
