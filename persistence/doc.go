// Package persistence is webauthnd's storage boundary: the records (tenants, communities, users,
// credentials, licenses, keys, vendor metadata, MDS entries), the small read interfaces each
// consumer takes, the write operations as plain data ([Op]) with the batch contract every
// backend keeps, and the checks that need no store.
//
// It imports no database. Each backend lives in a package of its own and applies the same ops
// in its own transactions:
//
//   - persistence/badger: the embedded default, one process over one directory;
//   - persistence/postgres: N nodes over one PostgreSQL database.
//
// persistence/storetest is the contract suite that runs against both. cmd/webauthnd opens one
// by URL and every other package sees only the interfaces of this one.
package persistence
