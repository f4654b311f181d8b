// Package badger is webauthnd's embedded store: the [persistence.Store] of one process over one
// directory, in a Badger database (the default when no --store is given). It is the only
// package that imports Badger.
//
// Reads run in their own read-only transactions; every write goes through [Store.Apply], which
// runs a batch of [persistence.Op] in one synced transaction, so a write that a caller is told
// succeeded survives a crash, and so one writer can group the writes of many concurrent
// ceremonies into one commit. Two bulk writes have methods of their own, as they span many
// transactions: [Store.Import] and [Store.ReplaceMDS]. Badger holds an exclusive lock on its
// directory, so this process is the only writer: the caches and generations (config, vendor
// metadata, keyrings, MDS) live in memory and are never behind. Ceremonies stay in the actors'
// memory too: this package does not implement [persistence.Ceremonies].
//
// Besides the boundary, the package offers what only an embedded store has: online backups
// ([Store.Backup], [Restore], [CheckBackup]), [Store.Settle] after a bulk import, [Store.Digest]
// for tests, and the free-space reserve ([Reserve], [WithReserve]).
//
// Writes stop before the disk is full (a full disk makes Badger fault on its memory-mapped
// files): below a reserve of free space only a sign-in's writes, license revocation and passkey
// removal run, below a quarter of it none; the others are refused with storage_full (see
// space.go).
//
// Values are JSON, but for users and credentials, which every ceremony reads: those are CBOR
// with small integer keys (see codec.go), and JSON records of earlier versions (a value
// starting with '{') are still read, and rewritten in CBOR when they next change.
//
// Keys are laid out by prefix; components after the prefix are separated by a zero byte, which
// is why identifiers and usernames may not contain one:
//
//	t/<tenant>                          Tenant
//	td/<host>                           tenant id (tenant host names, lower case, no port)
//	c/<community>                       Community
//	u/<community>\x00<username>         User (CBOR)
//	h/<community>\x00<user handle>      username (user handle index)
//	k/<credential id>                   Credential (CBOR, without its attestation object; ids are unique across the store)
//	ka/<credential id>                  the credential's attestation object, as registered
//	uk/<community>\x00<username>\x00<credential id>   empty (a user's credentials)
//	kh/<sha-256 of credential id>       credential id (the fidoKeyHash index)
//	kd/<community>\x00<DID>\x00<credential id>        empty (the passkeys linked to a DID)
//	l/<sha-256 of license key>          License
//	li/<license id>                     sha-256 of the license key (license id index)
//	s/<name>                            service secret (the decoy secret)
//	kr/<name>                           Keyring (envelope and token signing keys)
//	rq/<caller key digest>\x00<uuid>    empty, with a TTL (replay records of sealed requests)
//	ds/<community>\x00<user shape>      users of that shape: how many passkeys, their id lengths and transports (shapes.go)
//	dm/<community>                      the community's most common user shape, with its count
//	m/<name>                            marks a change of the store's contents done once on Open (m/shapes, m/index/kh)
//	vm/<community>\x00<aaguid>          VendorRecord (a community's metadata for an authenticator model;
//	                                    the AAGUID in canonical form, 36 lower-case characters)
//	mds/blob                            MDSBlob (the imported FIDO MDS BLOB and its generation)
//	mds/e/<generation>\x00<index>       MDSEntry (index: 8 hex digits, the BLOB's order)
//	mds/a/<generation>\x00<aaguid>      index of the MDSEntry of an AAGUID (canonical form)
//	mds/k/<generation>\x00<key id>      index of the MDSEntry of an attestation key identifier (U2F)
//
// The global MDS entries are written under a new generation (16 hex digits) at each import and
// switched to by one small write of mds/blob, so that readers, who resolve the generation and
// read the entries in one snapshot, see one BLOB's entries and never a mix (see [Store.ReplaceMDS]).
package badger
