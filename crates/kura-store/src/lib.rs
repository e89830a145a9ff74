//! The vault: where one tenant's backup data lives, and the rules that keep it whole.
//!
//! A [`Vault`] keeps immutable, content-addressed objects in object storage (`object_store`:
//! a local directory or S3 — [`s3_store`] — the same code; each vault under its own
//! prefix, see [`ObjectLayout`]) and a catalog in a database ([`Catalog`]: SQLite for a
//! local vault, PostgreSQL for the service): the chunk index, packs, snapshots and upload
//! sessions. The catalog is the source of truth; objects are write-once and the catalog
//! can be rebuilt from them (pack trailers, manifests, reference lists).
//!
//! **Many vaults, one database.** The catalog tables (`vault_meta`, `vault_key_slots`,
//! `vault_packs`, `vault_chunks`, `vault_snapshots`, `vault_sessions`,
//! `vault_pending_packs`) hold the rows of any number of vaults, keyed by vault id, and
//! every statement is bound to one vault; dedup never crosses vaults. The server runs
//! [`migrate_postgres`] once at start, then opens vaults with [`Vault::open`] on a
//! [`Catalog::postgres`] and an [`ObjectLayout`] under `t/<tenant>/v/<vault>/`. A local
//! vault is a directory with `catalog.db` (SQLite, one vault) and `objects/`
//! ([`Vault::create_local`], [`Vault::open_local`]).
//!
//! **Write order.** A backup uploads packs (object first, then its index rows), then commits
//! a manifest: its reference list and manifest objects are written, then the snapshot row
//! is inserted in one transaction after checking that every referenced chunk is indexed
//! and not damaged. A crash at any point leaves at most unreferenced packs and objects,
//! which GC removes; the chunks already indexed are reused by the next backup (resume).
//!
//! **Garbage collection without locks.** Every upload session has a start time, and every
//! chunk a `seen` time, refreshed when a session relies on it (a `missing` query that
//! finds it, or an upload). GC takes `t_keep` = the start of the oldest open session (or
//! now), marks the reference lists of all live snapshots and of the parents of open
//! sessions, and deletes only chunks that are unmarked *and* not seen since `t_keep`.
//! Reference lists are sorted, so the marks are a merge of them read a window at a time
//! beside the index walked in id order: GC's memory follows the number of live snapshots,
//! not the vault's chunks.
//! Packs with no live chunk are deleted; packs with more dead bytes than a threshold are
//! repacked. Orphan objects are deleted only when older than `t_keep`. So GC is safe while
//! backups run: a chunk a running backup may still reference is never deleted, and a
//! commit re-checks every reference, so the worst a race can do is fail a commit.
//!
//! **Verification.** [`Vault::verify`] checks structure, and with `read_data` reads every
//! pack back: a pack whose bytes no longer hash to its id, or a blob that fails to open,
//! marks its chunks bad. Bad chunks count as missing to later backups (which re-upload
//! them, repairing every snapshot that used them), and a snapshot referencing a bad chunk
//! is reported damaged and never used as a parent.
//!
//! **Repair.** [`Vault::repair`] reads every pack and heals what the vault's own bytes
//! allow: it clears marks of chunks that are whole again, points bad chunks at whole copies
//! in other packs, and rewrites packs whose bytes changed (in a blob, in dead space or in
//! the trailer) without them. What it cannot heal exists nowhere else; its report names it.
//!
//! **Sessions end with their owner.** A local vault's sessions belong to the processes
//! that opened them (a lock file each, see `session_lock`), so GC stops keeping a killed
//! run's uploads at once. The service's sessions end after an idle time
//! ([`Vault::set_session_idle_expiry`]) that live agents renew ([`Vault::heartbeat`]).
//!
//! **Rebuilding the catalog.** Storage holds all the catalog derives from (configuration,
//! key slots, pack trailers, manifests and reference lists, and a tombstone per forgotten
//! snapshot), so [`Vault::rebuild_catalog`] makes a lost catalog anew, or brings an old
//! copy in line with storage, while backups run.
//!
//! **Retention.** [`retention`] decides which snapshots a policy keeps (restic's rules);
//! `kura forget` and the server's plan retention both use it.
//!
//! This crate knows nothing of HTTP, users or roles: the server scopes vaults per tenant.

mod catalog;
mod erase;
mod error;
mod gc;
mod layout;
mod pack_file;
mod rebuild;
mod repair;
pub mod retention;
mod session_lock;
mod vault;
mod verify;

pub use catalog::{Catalog, migrate_postgres, migrate_sqlite};
pub use erase::{StoredObjects, erase, stored_objects};
pub use error::StoreError;
pub use gc::{GcOptions, GcReport};
pub use layout::{ObjectLayout, s3_store};
pub use pack_file::PackFile;
pub use rebuild::RebuildReport;
pub use repair::RepairReport;
pub use vault::{PackReceipt, SessionId, SnapshotQuery, SnapshotRecord, Usage, Vault};
pub use verify::{VerifyReport, VerifyScope};

/// Result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
