-- The catalog of vaults: chunk index, packs, snapshots, upload sessions. Every row belongs
-- to one vault (`vault`, part of every primary key); many vaults share the tables.
-- Keep in step with ../sqlite: the same tables, columns and keys.
CREATE TABLE vault_meta (
    vault TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (vault, key)
);

CREATE TABLE vault_key_slots (
    vault TEXT NOT NULL,
    id    TEXT NOT NULL,
    slot  BYTEA NOT NULL,
    PRIMARY KEY (vault, id)
);

CREATE TABLE vault_packs (
    vault      TEXT NOT NULL,
    id         BYTEA NOT NULL,
    size       BIGINT NOT NULL,
    blob_count BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- Set by verify when the pack's bytes are missing or changed: GC moves its good blobs
    -- out and deletes it, whatever its dead space.
    damaged    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (vault, id)
);

-- One row per chunk; a chunk stored twice (two sessions racing) keeps its first copy.
CREATE TABLE vault_chunks (
    vault       TEXT NOT NULL,
    id          BYTEA NOT NULL,
    pack        BYTEA NOT NULL,
    kind        BIGINT NOT NULL,
    pack_offset BIGINT NOT NULL,
    length      BIGINT NOT NULL,
    raw_length  BIGINT NOT NULL,
    -- Last time an upload session relied on this chunk (GC keeps chunks seen since it began).
    seen_ms     BIGINT NOT NULL,
    -- Set by verify when the stored bytes are damaged: reported missing so backups re-upload it.
    bad         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (vault, id)
);
CREATE INDEX vault_chunks_by_pack ON vault_chunks (vault, pack);

CREATE TABLE vault_snapshots (
    vault      TEXT NOT NULL,
    id         TEXT NOT NULL,
    time_ns    BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    host       TEXT NOT NULL,
    source     TEXT NOT NULL,
    tags       TEXT NOT NULL,
    parent     TEXT,
    manifest   BYTEA NOT NULL,
    ref_count  BIGINT NOT NULL,
    -- Forgotten snapshots stay as tombstones until GC no longer needs their references.
    deleted_ms BIGINT,
    PRIMARY KEY (vault, id)
);
CREATE INDEX vault_snapshots_by_time ON vault_snapshots (vault, time_ns);

CREATE TABLE vault_sessions (
    vault        TEXT NOT NULL,
    id           TEXT NOT NULL,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    parent       TEXT,
    PRIMARY KEY (vault, id)
);

-- A pack being stored: written before the object, removed once its chunks are indexed.
-- A row left by a killed upload names an object the next session adopts (resume).
CREATE TABLE vault_pending_packs (
    vault      TEXT NOT NULL,
    id         BYTEA NOT NULL,
    session    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (vault, id)
);
