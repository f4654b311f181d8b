-- Schema version 1 of webauthnd's PostgreSQL store. doc.go says what each table holds and why.
--
-- Conventions: record times are bigint Unix nanoseconds in UTC, 0 for the zero time (the
-- records keep nanoseconds, which timestamptz would round to microseconds); the expiry times
-- that the database clock compares (ceremonies, replay records) are timestamptz. Identifiers
-- and usernames are COLLATE "C", so that ORDER BY gives the byte order the embedded store
-- lists them in, whatever the database's collation.

CREATE TABLE tenants (
    id      text COLLATE "C" PRIMARY KEY,
    name    text NOT NULL,
    created bigint NOT NULL
);

-- Each host name belongs to one tenant; seq keeps the order in which a tenant claimed them.
CREATE TABLE tenant_hosts (
    host      text COLLATE "C" PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id),
    seq       bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX tenant_hosts_tenant ON tenant_hosts (tenant_id, seq);

CREATE TABLE communities (
    id                text COLLATE "C" PRIMARY KEY,
    tenant_id         text COLLATE "C" NOT NULL REFERENCES tenants (id),
    name              text NOT NULL,
    rp_ids            text[] NOT NULL,
    origins           text[] NOT NULL,
    top_origins       text[],
    user_verification text NOT NULL,
    block_clones      boolean NOT NULL,
    attestation_trust text NOT NULL,
    created           bigint NOT NULL,
    updated           bigint NOT NULL
);
CREATE INDEX communities_tenant_name ON communities (tenant_id, name, id);

CREATE TABLE users (
    community_id text COLLATE "C" NOT NULL,
    username     text COLLATE "C" NOT NULL,
    display_name text NOT NULL,
    handle       bytea NOT NULL,
    created      bigint NOT NULL,
    PRIMARY KEY (community_id, username),
    UNIQUE (community_id, handle)
);

-- Every sign-in rewrites its credential's counter, flags and last use, none of them indexed:
-- the free tenth of each page lets those updates stay on the page (HOT), without new index
-- entries.
CREATE TABLE credentials (
    id                  bytea PRIMARY KEY,
    fido_key_hash       bytea NOT NULL GENERATED ALWAYS AS (sha256(id)) STORED,
    community_id        text COLLATE "C" NOT NULL,
    username            text COLLATE "C" NOT NULL,
    user_handle         bytea NOT NULL,
    rp_id               text NOT NULL,
    public_key          bytea,
    algorithm           bigint NOT NULL,
    aaguid              bytea,
    attestation_format  text NOT NULL,
    attestation_type    text NOT NULL,
    attestation_trusted boolean NOT NULL,
    transports          text[],
    attachment          text NOT NULL,
    user_present        boolean NOT NULL,
    user_verified       boolean NOT NULL,
    backup_eligible     boolean NOT NULL,
    backup_state        boolean NOT NULL,
    sign_count          bigint NOT NULL,
    clone_warning       boolean NOT NULL,
    created             bigint NOT NULL,
    last_used           bigint NOT NULL,
    did                 text COLLATE "C",
    FOREIGN KEY (community_id, username) REFERENCES users (community_id, username)
) WITH (fillfactor = 90);
CREATE UNIQUE INDEX credentials_fido_key_hash ON credentials (fido_key_hash);
CREATE INDEX credentials_owner ON credentials (community_id, username, id);
CREATE INDEX credentials_did ON credentials (community_id, did, id) WHERE did IS NOT NULL;

-- Only AttestationObjectOf reads these: they stay out of the rows every ceremony reads.
CREATE TABLE attestation_objects (
    credential_id bytea PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    object        bytea NOT NULL
);

CREATE TABLE licenses (
    key_hash     bytea PRIMARY KEY,
    id           text COLLATE "C" NOT NULL UNIQUE,
    level        text NOT NULL,
    community_id text COLLATE "C" NOT NULL,
    tenant_id    text COLLATE "C" NOT NULL,
    expires      bigint NOT NULL,
    disabled     boolean NOT NULL,
    created      bigint NOT NULL
);

CREATE TABLE secrets (
    name  text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

-- A keyring is its KeyRecords, newest first, as JSON: one row changes in one write.
CREATE TABLE keyrings (
    name text COLLATE "C" PRIMARY KEY,
    keys jsonb NOT NULL
);

-- The uuid of a sealed request, per caller key (its SHA-256), until the request could no longer
-- be fresh; the sweep deletes what expired.
CREATE TABLE replays (
    caller  bytea NOT NULL,
    request bytea NOT NULL,
    expires timestamptz NOT NULL,
    PRIMARY KEY (caller, request)
);
CREATE INDEX replays_expires ON replays (expires);

CREATE TABLE vendor_records (
    community_id text COLLATE "C" NOT NULL,
    aaguid       text COLLATE "C" NOT NULL,
    id           text NOT NULL,
    metadata     text NOT NULL,
    name         text NOT NULL,
    disabled     boolean NOT NULL,
    updated_by   text NOT NULL,
    updated_at   bigint NOT NULL,
    created      bigint NOT NULL,
    PRIMARY KEY (community_id, aaguid)
);

-- The imported MDS BLOB (one row at most) and the entries of its generation. The records are
-- JSON text, as the embedded store keeps them; the columns beside them are what look-ups need.
CREATE TABLE mds_blob (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    generation bigint NOT NULL,
    number     bigint NOT NULL,
    record     text NOT NULL
);
CREATE TABLE mds_entries (
    generation bigint NOT NULL,
    position   integer NOT NULL,
    aaguid     text COLLATE "C",
    record     text NOT NULL,
    PRIMARY KEY (generation, position)
);
CREATE UNIQUE INDEX mds_entries_aaguid ON mds_entries (generation, aaguid) WHERE aaguid IS NOT NULL;
CREATE TABLE mds_key_identifiers (
    generation bigint NOT NULL,
    key_id     text COLLATE "C" NOT NULL,
    position   integer NOT NULL,
    PRIMARY KEY (generation, key_id)
);

-- The shape tally (persistence/shapes.go): the users of each shape per community, and the
-- community's most common shape, kept by shape_move and shape_shrink below in the transaction
-- that adds or removes a passkey.
CREATE TABLE shape_counts (
    community_id text COLLATE "C" NOT NULL,
    shape        bytea NOT NULL,
    users        bigint NOT NULL,
    PRIMARY KEY (community_id, shape)
);
CREATE TABLE shape_modes (
    community_id text COLLATE "C" PRIMARY KEY,
    shape        bytea,
    users        bigint NOT NULL
);

-- shape_move records that a user of a community went from shape p_from (NULL: a new user, or
-- one without passkeys) to shape p_to, as the embedded store's moveUserShape does: a shape that
-- overtakes the most common one replaces it, and on a tie the earlier one stays. The mode row
-- is locked first, so that the tally changes of one community run one after another.
CREATE FUNCTION shape_move(p_community text, p_from bytea, p_to bytea) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    from_count bigint := 0;
    to_count   bigint;
    mode_count bigint;
    mode_shape bytea;
BEGIN
    INSERT INTO shape_modes (community_id, shape, users) VALUES (p_community, NULL, 0)
        ON CONFLICT (community_id) DO NOTHING;
    SELECT users, shape INTO mode_count, mode_shape
        FROM shape_modes WHERE community_id = p_community FOR UPDATE;
    IF p_from IS NOT NULL THEN
        UPDATE shape_counts SET users = users - 1
            WHERE community_id = p_community AND shape = p_from
            RETURNING users INTO from_count;
        IF NOT FOUND OR from_count <= 0 THEN
            from_count := 0;
            DELETE FROM shape_counts WHERE community_id = p_community AND shape = p_from;
        END IF;
    END IF;
    INSERT INTO shape_counts (community_id, shape, users) VALUES (p_community, p_to, 1)
        ON CONFLICT (community_id, shape) DO UPDATE SET users = shape_counts.users + 1
        RETURNING users INTO to_count;
    IF mode_shape IS NULL OR to_count > mode_count OR mode_shape = p_to THEN
        UPDATE shape_modes SET shape = p_to, users = to_count WHERE community_id = p_community;
    ELSIF p_from IS NOT NULL AND mode_shape = p_from AND to_count > from_count THEN
        -- The user took the most common shape's lead with it (a community of one user).
        UPDATE shape_modes SET shape = p_to, users = to_count WHERE community_id = p_community;
    ELSIF p_from IS NOT NULL AND mode_shape = p_from THEN
        UPDATE shape_modes SET users = from_count WHERE community_id = p_community;
    END IF;
END $$;

-- shape_shrink records that a user went from shape p_from to p_to (NULL: no passkey left)
-- because passkeys were removed, and finds the most common shape again from the counts (the
-- most users, then the smallest shape in byte order), as the embedded store's shrinkUserShape.
CREATE FUNCTION shape_shrink(p_community text, p_from bytea, p_to bytea) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n          bigint;
    mode_count bigint;
    mode_shape bytea;
BEGIN
    INSERT INTO shape_modes (community_id, shape, users) VALUES (p_community, NULL, 0)
        ON CONFLICT (community_id) DO NOTHING;
    PERFORM 1 FROM shape_modes WHERE community_id = p_community FOR UPDATE;
    UPDATE shape_counts SET users = users - 1
        WHERE community_id = p_community AND shape = p_from
        RETURNING users INTO n;
    IF NOT FOUND OR n <= 0 THEN
        DELETE FROM shape_counts WHERE community_id = p_community AND shape = p_from;
    END IF;
    IF p_to IS NOT NULL THEN
        INSERT INTO shape_counts (community_id, shape, users) VALUES (p_community, p_to, 1)
            ON CONFLICT (community_id, shape) DO UPDATE SET users = shape_counts.users + 1;
    END IF;
    SELECT shape, users INTO mode_shape, mode_count FROM shape_counts
        WHERE community_id = p_community AND users > 0
        ORDER BY users DESC, shape ASC LIMIT 1;
    IF NOT FOUND THEN
        UPDATE shape_modes SET shape = NULL, users = 0 WHERE community_id = p_community;
    ELSE
        UPDATE shape_modes SET shape = mode_shape, users = mode_count WHERE community_id = p_community;
    END IF;
END $$;

-- The live ceremonies of the cluster. UNLOGGED: a ceremony is worth nothing after a crash of
-- the database (its client starts again), so its rows skip the WAL; a crash or a failover
-- empties the table.
CREATE UNLOGGED TABLE ceremonies (
    id           text COLLATE "C" PRIMARY KEY,
    community_id text COLLATE "C" NOT NULL,
    state        bytea NOT NULL,
    expires      timestamptz NOT NULL
);
CREATE INDEX ceremonies_expires ON ceremonies (expires);

-- What the nodes cache changes only with a notification on channel webauthnd_config, whose
-- payload names the kind that changed, and a new version of that kind here: a node that missed
-- a notification finds the new version when it next reads this table.
CREATE TABLE config_versions (
    kind    text PRIMARY KEY,
    version bigint NOT NULL
);
INSERT INTO config_versions (kind, version) VALUES ('config', 0), ('keyrings', 0), ('vendor', 0), ('mds', 0);

CREATE FUNCTION config_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_versions SET version = version + 1 WHERE kind = TG_ARGV[0];
    PERFORM pg_notify('webauthnd_config', TG_ARGV[0]);
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER tenant_hosts_changed AFTER INSERT OR UPDATE OR DELETE ON tenant_hosts
    FOR EACH ROW EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER communities_changed AFTER INSERT OR UPDATE OR DELETE ON communities
    FOR EACH ROW EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER licenses_changed AFTER INSERT OR UPDATE OR DELETE ON licenses
    FOR EACH ROW EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER keyrings_changed AFTER INSERT OR UPDATE OR DELETE ON keyrings
    FOR EACH ROW EXECUTE FUNCTION config_changed('keyrings');
CREATE TRIGGER vendor_records_changed AFTER INSERT OR UPDATE OR DELETE ON vendor_records
    FOR EACH ROW EXECUTE FUNCTION config_changed('vendor');
CREATE TRIGGER mds_blob_changed AFTER INSERT OR UPDATE OR DELETE ON mds_blob
    FOR EACH ROW EXECUTE FUNCTION config_changed('mds');

CREATE TRIGGER tenants_truncated AFTER TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER tenant_hosts_truncated AFTER TRUNCATE ON tenant_hosts
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER communities_truncated AFTER TRUNCATE ON communities
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER licenses_truncated AFTER TRUNCATE ON licenses
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('config');
CREATE TRIGGER keyrings_truncated AFTER TRUNCATE ON keyrings
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('keyrings');
CREATE TRIGGER vendor_records_truncated AFTER TRUNCATE ON vendor_records
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('vendor');
CREATE TRIGGER mds_blob_truncated AFTER TRUNCATE ON mds_blob
    FOR EACH STATEMENT EXECUTE FUNCTION config_changed('mds');
