package postgres

// Tenants, communities and licenses (what the nodes cache), secrets and keyrings: their reads
// and ops.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

func now() time.Time { return time.Now().UTC() }

// cached returns the config record under key, reading it with read on a miss. Missing records
// are not cached, and nothing is while notifications do not reach this process (notify.go).
func cached[T any](s *Store, key string, read func() (T, error)) (T, error) {
	gen := s.configGen.Load()
	listening := s.listening.Load()
	if v, ok := s.config.Load(key); ok && listening && v.(cachedRecord).gen == gen {
		return v.(cachedRecord).value.(T), nil
	}
	v, err := read()
	if err == nil && listening {
		// An entry of an older generation is a miss: a read that raced a change (and stored
		// after the clear) cannot outlive it.
		s.config.Store(key, cachedRecord{gen: gen, value: v})
	}
	return v, err
}

// cachedRecord is a cached config record with the cache generation it was read in.
type cachedRecord struct {
	gen   uint64
	value any
}

// clearConfig empties the config cache.
func (s *Store) clearConfig() {
	s.configGen.Add(1)
	s.config.Clear()
}

const (
	tenantQuery = `SELECT t.id, t.name, t.created,
		ARRAY(SELECT h.host FROM tenant_hosts h WHERE h.tenant_id = t.id ORDER BY h.seq)
		FROM tenants t`
	communityColumns = `id, tenant_id, name, rp_ids, origins, top_origins, user_verification, block_clones,
		attestation_trust, created, updated`
	licenseColumns = `id, key_hash, level, community_id, tenant_id, expires, disabled, created`
)

func scanTenant(row pgx.Row) (persistence.Tenant, error) {
	var (
		t       persistence.Tenant
		created int64
	)
	if err := row.Scan(&t.ID, &t.Name, &created, &t.DNS); err != nil {
		return t, err
	}
	t.Created, t.DNS = fromNanos(created), nilIfNone(t.DNS)
	return t, nil
}

func scanCommunity(row pgx.Row) (persistence.Community, error) {
	var (
		c                persistence.Community
		created, updated int64
	)
	err := row.Scan(&c.ID, &c.TenantID, &c.Name, &c.RPIDs, &c.Origins, &c.TopOrigins, &c.UserVerification,
		&c.BlockClones, &c.AttestationTrust, &created, &updated)
	c.TopOrigins = nilIfNone(c.TopOrigins)
	c.Created, c.Updated = fromNanos(created), fromNanos(updated)
	return c, err
}

func scanLicense(row pgx.Row) (persistence.License, error) {
	var (
		l                persistence.License
		expires, created int64
	)
	err := row.Scan(&l.ID, &l.KeyHash, &l.Level, &l.CommunityID, &l.TenantID, &expires, &l.Disabled, &created)
	l.Expires, l.Created = fromNanos(expires), fromNanos(created)
	return l, err
}

// Tenant returns the tenant with id.
func (s *Store) Tenant(ctx context.Context, id string) (persistence.Tenant, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Tenant{}, err
	}
	if !textOK(id) {
		return persistence.Tenant{}, errNotFound
	}
	t, err := scanTenant(s.pool.QueryRow(ctx, tenantQuery+` WHERE t.id = $1`, id))
	return t, s.readErr(err)
}

// TenantByDNS returns the tenant that owns a host name (any case; a :port suffix is ignored).
func (s *Store) TenantByDNS(ctx context.Context, host string) (persistence.Tenant, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Tenant{}, err
	}
	host, err := persistence.CanonicalHost(host)
	if err != nil || !textOK(host) {
		return persistence.Tenant{}, errNotFound
	}
	t, err := scanTenant(s.pool.QueryRow(ctx, tenantQuery+` WHERE t.id = (SELECT tenant_id FROM tenant_hosts WHERE host = $1)`, host))
	return t, s.readErr(err)
}

// Community returns the community with id, from the config cache.
func (s *Store) Community(ctx context.Context, id string) (persistence.Community, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Community{}, err
	}
	if !textOK(id) {
		return persistence.Community{}, errNotFound
	}
	return cached(s, "c/"+id, func() (persistence.Community, error) {
		c, err := scanCommunity(s.pool.QueryRow(ctx, `SELECT `+communityColumns+` FROM communities WHERE id = $1`, id))
		return c, s.readErr(err)
	})
}

// CommunityByName returns the community of a tenant with a name: the first by id.
func (s *Store) CommunityByName(ctx context.Context, tenantID, name string) (persistence.Community, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Community{}, err
	}
	if !textOK(tenantID, name) {
		return persistence.Community{}, errNotFound
	}
	c, err := scanCommunity(s.pool.QueryRow(ctx, `SELECT `+communityColumns+` FROM communities
		WHERE tenant_id = $1 AND name = $2 ORDER BY id LIMIT 1`, tenantID, name))
	return c, s.readErr(err)
}

// LicenseByKey finds the license of a key by its hash, from the config cache, and compares the
// hash in constant time.
func (s *Store) LicenseByKey(ctx context.Context, key string) (persistence.License, error) {
	if err := ctx.Err(); err != nil {
		return persistence.License{}, err
	}
	hash := persistence.HashLicenseKey(key)
	l, err := cached(s, "l/"+string(hash), func() (persistence.License, error) {
		l, err := scanLicense(s.pool.QueryRow(ctx, `SELECT `+licenseColumns+` FROM licenses WHERE key_hash = $1`, hash))
		return l, s.readErr(err)
	})
	if err != nil {
		return persistence.License{}, err
	}
	if subtle.ConstantTimeCompare(hash, l.KeyHash) != 1 {
		return persistence.License{}, errNotFound
	}
	return l, nil
}

// AllLicenses returns every license (never a key: only hashes are stored), in the order of
// their key hashes.
func (s *Store) AllLicenses(ctx context.Context) ([]persistence.License, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+licenseColumns+` FROM licenses ORDER BY key_hash`)
	if err != nil {
		return nil, s.storeErr(err)
	}
	defer rows.Close()
	var out []persistence.License
	for rows.Next() {
		l, err := scanLicense(rows)
		if err != nil {
			return nil, s.storeErr(err)
		}
		out = append(out, l)
	}
	return out, s.storeErr(rows.Err())
}

// Secret returns a stored service secret.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !textOK(name) {
		return nil, errNotFound
	}
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
	return v, s.readErr(err)
}

// Keyring returns the keyring called name.
func (s *Store) Keyring(ctx context.Context, name string) (persistence.Keyring, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Keyring{}, err
	}
	var k persistence.Keyring
	if !textOK(name) {
		return k, errNotFound
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, `SELECT keys FROM keyrings WHERE name = $1`, name).Scan(&raw); err != nil {
		return k, s.readErr(err)
	}
	return k, s.storeErr(json.Unmarshal(raw, &k.Keys))
}

// KeyringGeneration changes after every committed change of a keyring, by this process (at
// once) or another (when its notification arrives, within a second).
func (s *Store) KeyringGeneration() uint64 { return s.keyringGen.Load() }

// putTenant: see [persistence.PutTenant].
func putTenant(ctx context.Context, t *txn, o persistence.PutTenant) (any, error) {
	var tenant persistence.Tenant
	for tenant.ID == "" {
		var (
			found   bool
			created int64
		)
		tenant = persistence.Tenant{}
		if _, err := t.queryRow(ctx, `SELECT true, name, created, ARRAY(SELECT host FROM tenant_hosts WHERE tenant_id = $1 ORDER BY seq)
			FROM tenants WHERE id = $1 FOR UPDATE`, []any{o.Tenant.ID}, &found, &tenant.Name, &created, &tenant.DNS); err != nil {
			return nil, err
		}
		if found {
			tenant.ID, tenant.Created, tenant.DNS = o.Tenant.ID, fromNanos(created), nilIfNone(tenant.DNS)
			break
		}
		tenant = o.Tenant
		tenant.DNS = nil
		if tenant.Created.IsZero() {
			tenant.Created = now()
		}
		n, err := t.exec(ctx, `INSERT INTO tenants (id, name, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			tenant.ID, tenant.Name, nanos(tenant.Created))
		if err != nil {
			return nil, err
		}
		if n == 0 {
			tenant.ID = "" // created by another node meanwhile: read it
		}
	}
	// Check every host before claiming any, so that a refusal claims none; the first host that
	// cannot be named or belongs to another tenant, in the order given, is the refusal.
	var (
		hosts    []string
		badHost  error
		claim    []string
		owners   = map[string]string{}
		hostRows = func(rows pgx.Rows) error {
			var host, owner string
			if err := rows.Scan(&host, &owner); err != nil {
				return err
			}
			owners[host] = owner
			return nil
		}
	)
	for _, raw := range o.DNS {
		host, err := persistence.CanonicalHost(raw)
		if err != nil {
			badHost = err
			break
		}
		hosts = append(hosts, host)
	}
	if len(hosts) > 0 {
		if err := t.query(ctx, hostRows, `SELECT host, tenant_id FROM tenant_hosts WHERE host = ANY($1)`, hosts); err != nil {
			return nil, err
		}
	}
	for _, host := range hosts {
		owner, taken := owners[host]
		switch {
		case taken && owner != tenant.ID:
			return nil, persistence.HostTaken(host)
		case !taken && !slices.Contains(claim, host):
			claim = append(claim, host)
		}
	}
	if badHost != nil {
		return nil, badHost
	}
	if len(claim) == 0 {
		return tenant, nil
	}
	// Claimed in the order given (seq keeps it); a host claimed by another node since the
	// check is not inserted, and refused.
	var inserted []string
	if err := t.query(ctx, func(rows pgx.Rows) error {
		var host string
		if err := rows.Scan(&host); err != nil {
			return err
		}
		inserted = append(inserted, host)
		return nil
	}, `INSERT INTO tenant_hosts (host, tenant_id) SELECT h, $2 FROM unnest($1::text[]) WITH ORDINALITY AS x(h, i) ORDER BY i
		ON CONFLICT DO NOTHING RETURNING host`, claim, tenant.ID); err != nil {
		return nil, err
	}
	for _, host := range claim {
		if !slices.Contains(inserted, host) {
			return nil, persistence.HostTaken(host)
		}
	}
	tenant.DNS = append(tenant.DNS, claim...)
	return tenant, nil
}

// putCommunity: see [persistence.PutCommunity].
func putCommunity(ctx context.Context, t *txn, o persistence.PutCommunity) (any, error) {
	c := o.Community
	var (
		found   bool
		created int64
	)
	if _, err := t.queryRow(ctx, `SELECT true, created FROM communities WHERE id = $1 FOR UPDATE`, []any{c.ID}, &found, &created); err != nil {
		return nil, err
	}
	switch {
	case found && o.Create:
		return nil, persistence.CommunityExists(c.ID)
	case !found && !o.Create:
		return nil, persistence.CommunityMissing(c.ID)
	}
	stamp := now()
	c.Created, c.Updated = stamp, stamp
	if !o.Create {
		c.Created = fromNanos(created)
	}
	if _, err := putTenant(ctx, t, persistence.PutTenant{Tenant: persistence.Tenant{ID: c.TenantID, Name: c.TenantID}, DNS: o.TenantDNS}); err != nil {
		return nil, err
	}
	args := []any{c.ID, c.TenantID, c.Name, c.RPIDs, c.Origins, nilIfNone(c.TopOrigins), c.UserVerification, c.BlockClones,
		c.AttestationTrust, nanos(c.Created), nanos(c.Updated)}
	if o.Create {
		n, err := t.exec(ctx, `INSERT INTO communities (`+communityColumns+`) VALUES (`+placeholders(1, 11)+`) ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, persistence.CommunityExists(c.ID) // created by another node meanwhile
		}
	} else if _, err := t.exec(ctx, `UPDATE communities SET tenant_id = $2, name = $3, rp_ids = $4, origins = $5, top_origins = $6,
		user_verification = $7, block_clones = $8, attestation_trust = $9, created = $10, updated = $11 WHERE id = $1`, args...); err != nil {
		return nil, err
	}
	return c, nil
}

// patchCommunity: see [persistence.PatchCommunity].
func patchCommunity(ctx context.Context, t *txn, o persistence.PatchCommunity) (any, error) {
	if !textOK(o.ID) {
		return nil, persistence.CommunityMissing(o.ID)
	}
	var (
		c     persistence.Community
		found bool
	)
	t.queue(func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		found = true
		var err error
		c, err = scanCommunity(rows)
		return err
	}, `SELECT `+communityColumns+` FROM communities WHERE id = $1 FOR UPDATE`, o.ID)
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	if !found {
		return nil, persistence.CommunityMissing(o.ID)
	}
	put := o.Onto(c)
	if err := persistence.Check(put); err != nil {
		return nil, err
	}
	return putCommunity(ctx, t, put)
}

// putLicense: see [persistence.PutLicense].
func putLicense(ctx context.Context, t *txn, o persistence.PutLicense) (any, error) {
	l := o.License
	if l.CommunityID != "" {
		var found bool
		if !textOK(l.CommunityID) {
			return nil, persistence.CommunityUnknown(l.CommunityID)
		}
		if _, err := t.queryRow(ctx, `SELECT true FROM communities WHERE id = $1`, []any{l.CommunityID}, &found); err != nil {
			return nil, err
		}
		if !found {
			return nil, persistence.CommunityUnknown(l.CommunityID)
		}
	}
	if l.TenantID != "" {
		var found bool
		if !textOK(l.TenantID) {
			return nil, persistence.TenantMissing(l.TenantID)
		}
		if _, err := t.queryRow(ctx, `SELECT true FROM tenants WHERE id = $1`, []any{l.TenantID}, &found); err != nil {
			return nil, err
		}
		if !found {
			return nil, persistence.TenantMissing(l.TenantID)
		}
	}
	for {
		var old []byte
		found, err := t.queryRow(ctx, `SELECT key_hash FROM licenses WHERE id = $1 FOR UPDATE`, []any{l.ID}, &old)
		if err != nil {
			return nil, err
		}
		switch {
		case found && !o.Rekey:
			return nil, persistence.ErrLicenseIDExists
		case found:
			t.queue(nil, `DELETE FROM licenses WHERE key_hash = $1`, old)
		}
		var inserted, idTaken bool
		t.queue(scanFirst(&inserted, new(bool)), `INSERT INTO licenses (`+licenseColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT DO NOTHING RETURNING true`,
			l.ID, l.KeyHash, l.Level, l.CommunityID, l.TenantID, nanos(l.Expires), l.Disabled, nanos(l.Created))
		t.queue(scanFirst(&idTaken, new(bool)), `SELECT true FROM licenses WHERE id = $1`, l.ID)
		if err := t.flush(ctx); err != nil {
			return nil, err
		}
		switch {
		case inserted:
			return l, nil
		case !idTaken:
			// Its key hash is another license's: only a key given twice does that.
			return nil, errLicenseKeyExists
		case !o.Rekey:
			return nil, persistence.ErrLicenseIDExists // created by another node meanwhile
		}
		// Re-keyed by another node meanwhile: re-key what it stored.
	}
}

// revokeLicense: see [persistence.RevokeLicense]. One statement.
func revokeLicense(o persistence.RevokeLicense, res *persistence.Result) stmt {
	if !textOK(o.ID) {
		*res = persistence.Result{Err: persistence.LicenseMissing(o.ID)}
		return stmt{}
	}
	return stmt{
		sql:  `UPDATE licenses SET disabled = true WHERE id = $1 RETURNING ` + licenseColumns,
		args: []any{o.ID},
		read: func(rows pgx.Rows) error {
			*res = persistence.Result{Err: persistence.LicenseMissing(o.ID)}
			if !rows.Next() {
				return rows.Err()
			}
			l, err := scanLicense(rows)
			if err != nil {
				return err
			}
			*res = persistence.Result{Value: l}
			return nil
		},
	}
}

// putSecretIfAbsent: see [persistence.PutSecretIfAbsent].
func putSecretIfAbsent(ctx context.Context, t *txn, o persistence.PutSecretIfAbsent) (any, error) {
	var v []byte
	t.queue(nil, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, o.Name, o.Value)
	t.queue(scanFirst(new(bool), &v), `SELECT value FROM secrets WHERE name = $1`, o.Name)
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// rotateKey: see [persistence.RotateKey].
func rotateKey(ctx context.Context, t *txn, o persistence.RotateKey) (any, error) {
	for {
		var raw []byte
		found, err := t.queryRow(ctx, `SELECT keys FROM keyrings WHERE name = $1 FOR UPDATE`, []any{o.Name}, &raw)
		if err != nil {
			return nil, err
		}
		var ring persistence.Keyring
		if found {
			if err := json.Unmarshal(raw, &ring.Keys); err != nil {
				return nil, err
			}
			if o.OnlyIfAbsent {
				return ring, nil
			}
		}
		ring = o.Onto(ring)
		b, err := json.Marshal(ring.Keys)
		if err != nil {
			return nil, err
		}
		if found {
			_, err := t.exec(ctx, `UPDATE keyrings SET keys = $2 WHERE name = $1`, o.Name, string(b))
			return ring, err
		}
		n, err := t.exec(ctx, `INSERT INTO keyrings (name, keys) VALUES ($1, $2) ON CONFLICT DO NOTHING`, o.Name, string(b))
		if err != nil || n == 1 {
			return ring, err
		}
		// Created by another node meanwhile: start again from what it stored.
	}
}

// rememberRequest: see [persistence.RememberRequest]. One statement: a record that expired, and
// that no sweep deleted yet, is as good as none.
func rememberRequest(o persistence.RememberRequest, res *persistence.Result) stmt {
	caller := callerDigest(o.Caller)
	return stmt{
		sql: `INSERT INTO replays (caller, request, expires)
			VALUES ($1, $2, greatest($3::timestamptz, now() + interval '1 second'))
			ON CONFLICT (caller, request) DO UPDATE SET expires = excluded.expires WHERE replays.expires <= now()
			RETURNING true`,
		args: []any{caller, []byte(o.UUID), o.Until},
		read: func(rows pgx.Rows) error {
			*res = persistence.Result{Err: persistence.ErrRequestReplayed}
			if rows.Next() {
				*res = persistence.Result{}
			}
			return rows.Err()
		},
	}
}

// errLicenseKeyExists refuses a license whose key another license has.
var errLicenseKeyExists = messages.Errorf(messages.CodeConflict, "another license has this key")

// callerDigest is how replay records name a caller key.
func callerDigest(caller []byte) []byte {
	sum := sha256.Sum256(caller)
	return sum[:]
}
