-- Set by verify when a pack's bytes are missing or changed: GC moves its good blobs out
-- and deletes it, whatever its dead space.
ALTER TABLE packs ADD COLUMN damaged INTEGER NOT NULL DEFAULT 0;

-- A pack being stored: written before the object, removed once its chunks are indexed.
-- A row left by a killed upload names an object the next session adopts (resume).
CREATE TABLE pending_packs (
    id         BLOB PRIMARY KEY,
    session    TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
