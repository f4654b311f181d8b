// Package storetest is the contract suite of the persistence boundary: the one set of tests
// that every backend (persistence/badger, persistence/postgres) must pass, as upspin runs one
// integration suite against every kind of server. It is the spec of each op and each read,
// written as table tests with named cases, and it uses nothing but the interfaces of package
// persistence: it imports no database.
//
// A backend wires it from a test of its own:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) persistence.Store {
//			s, err := badger.Open(t.TempDir(), zap.NewNop())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Each opener returns a new, empty store (no tenant, community, secret, keyring or MDS BLOB)
// for the test it is given, and registers with t.Cleanup whatever closes that store and
// removes its storage: the suite never calls Close. Every subtest opens its own store, so
// the cases are independent of one another and of their order.
//
//   - [Run] is the contract of [persistence.Store]: every op, every read, the batch contract
//     of [persistence.Op], the generations, Import, context cancellation and concurrency
//     within one store.
//   - [RunCeremonies] is the contract of [persistence.Ceremonies], for the backends that keep
//     ceremonies in storage (a shared database; the embedded store keeps them in memory).
//   - [RunShared] is the contract of two Store values over one database, as two nodes hold
//     them: what one writes the other sees (caches included, within a second), and the
//     single-use rules hold across both.
//
// Where the suite compares refusals it compares the code of the *messages.Error (what the
// wire shows), and for the refusals that persistence shares ([persistence.ErrStartAgain] and
// the others) the very error, with errors.Is; where [persistence.Check] refuses an op, a
// backend must refuse it with the same code and message. It never compares free text.
package storetest
