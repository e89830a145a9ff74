-- The catalog of one vault: chunk index, packs, snapshots, upload sessions.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE key_slots (
    id   TEXT PRIMARY KEY,
    slot BLOB NOT NULL
);

CREATE TABLE packs (
    id         BLOB PRIMARY KEY,
    size       INTEGER NOT NULL,
    blob_count INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per chunk; a chunk stored twice (two sessions racing) keeps its first copy.
CREATE TABLE chunks (
    id         BLOB PRIMARY KEY,
    pack       BLOB NOT NULL,
    kind       INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    length     INTEGER NOT NULL,
    raw_length INTEGER NOT NULL,
    -- Last time an upload session relied on this chunk (GC keeps chunks seen since it began).
    seen_ms    INTEGER NOT NULL,
    -- Set by verify when the stored bytes are damaged: reported missing so backups re-upload it.
    bad        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX chunks_by_pack ON chunks (pack);

CREATE TABLE snapshots (
    id          TEXT PRIMARY KEY,
    time_ns     INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    host        TEXT NOT NULL,
    source      TEXT NOT NULL,
    tags        TEXT NOT NULL,
    parent      TEXT,
    manifest    BLOB NOT NULL,
    ref_count   INTEGER NOT NULL,
    -- Forgotten snapshots stay as tombstones until GC no longer needs their references.
    deleted_ms  INTEGER
);
CREATE INDEX snapshots_by_time ON snapshots (time_ns);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    started_ms   INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    parent       TEXT
);
