// Package postgres keeps webauthnd's state in PostgreSQL, so that N nodes behind any load
// balancer serve one set of tenants, users and passkeys, and any node finishes any ceremony. It
// implements [persistence.Store] and [persistence.Ceremonies] with pgx v5 (a pgxpool for the
// requests, one connection of its own for LISTEN), and it is the only package that imports pgx.
// It keeps the batch contract of [persistence.Op] and gives the same results and refusals as
// persistence/badger; persistence/storetest checks both.
//
// # Opening
//
// [Open] takes a postgres:// URL or a keyword/value connection string (a password belongs in
// PGPASSWORD or PGPASSFILE; no error and no log line of the store carries it). It applies the
// embedded migrations (migrations/NNNN_*.sql, recorded in schema_version) under a session
// advisory lock, so that nodes starting together migrate once; it refuses a database whose
// schema is newer than it knows, and with [WithExactSchema] (what management commands use) one
// of any other version, without migrating, naming both versions. Connections run READ
// COMMITTED whatever the database's default, as the ops' locking assumes.
//
// # Schema
//
// Record times are bigint Unix nanoseconds in UTC (0 for the zero time), which keeps them to
// the nanosecond as the embedded store does; identifiers and usernames are COLLATE "C", so that
// every listing comes in the byte order the embedded store lists in.
//
//	tenants              a tenant (id, name, created)
//	tenant_hosts         a tenant's host names, each owned by one tenant (host primary key),
//	                     in the order claimed
//	communities          a community: RP IDs, origins, policies
//	users                a user: (community, username) primary key, (community, handle) unique
//	credentials          a passkey: id primary key; fido_key_hash (sha256 of the id, generated)
//	                     unique, the DID indexed per community, the owner indexed; fillfactor 90,
//	                     so that a sign-in's update stays on its page (HOT)
//	attestation_objects  the registration's attestation object of a credential, in a table of
//	                     its own: only AttestationObjectOf reads it
//	licenses             a license by the SHA-256 of its key (primary key), id unique
//	secrets              the service's secrets (the decoy secret, the challenge MAC key)
//	keyrings             a keyring's keys, newest first, as JSON (one row, one write)
//	replays              a sealed request's uuid per caller key, until it expires
//	vendor_records       a community's metadata for an AAGUID: (community, aaguid) primary key
//	mds_blob             the imported MDS BLOB (at most one row) and its generation
//	mds_entries          the entries of that generation, in the BLOB's order, with the AAGUID
//	mds_key_identifiers  the attestation key identifiers of the entries (how U2F keys are found)
//	shape_counts         the users of each passkey shape per community, and
//	shape_modes          each community's most common shape, both kept by the SQL functions
//	                     shape_move and shape_shrink in the transaction of the op that adds or
//	                     removes a passkey (the embedded store's rules, ties included)
//	ceremonies           the live ceremonies: id primary key, community, state, expires
//	config_versions      a counter per kind of what nodes cache (config, keyrings, vendor, mds)
//
// ceremonies is UNLOGGED: its rows skip the write-ahead log, which makes PutCeremony and
// TakeCeremony cheap (a transaction that touches only unlogged tables commits without waiting
// for a WAL flush). A ceremony is worth nothing after a crash: the table is empty after a
// crash of PostgreSQL and on a promoted replica (unlogged tables are not replicated), and their
// clients start the ceremony again. Nothing else is unlogged: replay records must survive a
// crash, or a captured request could be replayed after it.
//
// # Writes
//
// [Store.Apply] runs a batch in one transaction, each op under a SAVEPOINT that its refusal
// rolls back to, so that the others still commit. The ops lock what they decide on (a user's
// row before its passkeys are read for the shape tally, a credential before it is linked) and
// rely on unique constraints with ON CONFLICT for what two nodes may create at once, so that
// concurrent batches on any nodes wait for each other rather than fail; a deadlock between two
// batches (PostgreSQL aborts one after deadlock_timeout) makes the aborted one run again.
//
// # Round trips
//
// A sign-in costs four round trips: the options read the user with its passkeys
// ([Store.UserAndCredentials], one pipelined read-only transaction) and store the ceremony
// (PutCeremony); the result takes the ceremony (TakeCeremony, one DELETE ... RETURNING) and
// records the sign-in (Apply). A discoverable sign-in reads the credential instead of the user,
// after the take: four too. The statements that need no answer of their own (BEGIN, SAVEPOINT,
// RELEASE, COMMIT) are queued and sent with the next one that does, in one pipelined batch; and
// RecordSignIn, RememberRequest and RevokeLicense are one statement each that refuses by what
// it returns, never by failing, so they need no savepoint: a batch of any number of them is one
// round trip, BEGIN and COMMIT included. Should one of those statements fail, the batch runs
// again with a savepoint around every op, and only that op fails. [Store.RoundTrips] counts the
// round trips of the pool's connections (at the socket: each send that follows a reply), for
// the benchmark and the tests; the first use of a statement on a connection costs one more, as
// pgx prepares it, and pgxpool pings a connection that sat idle for a second before handing it
// out.
//
// # Freshness across nodes
//
// Each node caches communities and licenses (every request reads them) and keeps generations
// of its keyrings, vendor records and MDS entries, which the engine's caches compare. Triggers
// on the tables behind them (tenants, tenant_hosts, communities, licenses, keyrings,
// vendor_records, mds_blob) bump that kind's counter in config_versions and pg_notify the
// channel webauthnd_config with the kind, at commit. Every store LISTENs on a connection of its
// own (named "webauthnd listener"); on a notification it reads config_versions and clears its
// cache or moves the generation of each kind that changed, so a change made through any node or
// command takes effect everywhere within a second (measured: under a millisecond). It reads
// config_versions every 5 s as well ([WithRefreshEvery]), in case a notification was missed. If
// the listening connection is lost it connects again and then treats everything as changed;
// meanwhile the cache serves nothing, and config_versions is read through the pool.
//
// # Contexts
//
// Every method that takes a context returns the context's error once it has ended, before
// anything else, answers from the cache included; pgx cancels a statement whose context ends
// while it runs. A batch whose context ends fails whole, with an internal error that wraps the
// context's error, and writes nothing (unless its COMMIT had reached the server).
//
// # Sweeps
//
// A goroutine of the store deletes the ceremonies and replay records that expired, every 30 s
// ([WithSweepEvery]); every node sweeps, so nothing outlives the nodes that wrote it. Reads
// never return an expired row, swept or not. [Store.Close] stops the sweeps and the listener.
package postgres
