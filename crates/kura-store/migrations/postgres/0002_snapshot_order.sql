-- Snapshot listings run newest first with ties broken by id (keyset pages): an index in
-- exactly that order lets a page read only its own rows instead of sorting every
-- snapshot of the vault. It replaces the index on (vault, time_ns), which it covers.
CREATE INDEX vault_snapshots_by_time_id ON vault_snapshots (vault, time_ns, id);
DROP INDEX vault_snapshots_by_time;
