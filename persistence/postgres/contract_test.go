package postgres_test

import (
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/storetest"
)

// TestContract runs the contract suites of the persistence boundary against PostgreSQL, each
// test on an empty schema of its own: the Store's, the Ceremonies', and that of two stores over
// one database, as two nodes hold them.
func TestContract(t *testing.T) {
	t.Run("Store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) persistence.Store { return contractStore(t) })
	})
	t.Run("Ceremonies", func(t *testing.T) {
		storetest.RunCeremonies(t, func(t *testing.T) persistence.Ceremonies { return contractStore(t) })
	})
	t.Run("Shared", func(t *testing.T) {
		storetest.RunShared(t, func(t *testing.T) (a, b persistence.Store) {
			dbURL := newSchema(t)
			return mustOpen(t, dbURL), mustOpen(t, dbURL)
		})
	})
}
