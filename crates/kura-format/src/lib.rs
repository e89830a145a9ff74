//! Kura's stored formats: everything that is written to a vault and must stay readable
//! for years.
//!
//! This crate owns chunk ids ([`ChunkId`], plain or keyed BLAKE3), the content-defined
//! file chunker ([`FileChunker`], FastCDC with a per-vault gear table), blobs (zstd, then
//! AEAD when the vault is encrypted), packs (blobs plus a trailer that makes the chunk
//! index rebuildable from storage alone), directory trees, image indexes, snapshot manifests with their
//! server-readable reference lists, the vault configuration and key slots; and, for the
//! service's own metadata backup, a stream sealed under a passphrase ([`sealed`]) holding
//! an archive of named files ([`archive`]).
//!
//! It is pure and synchronous: no I/O, no HTTP, no databases, no notion of tenants. Every
//! decoder here accepts untrusted bytes and fails with a [`FormatError`], never a panic;
//! each has a fuzz target in `fuzz/`. The byte layouts are specified in `docs/format.md`.

pub mod archive;
pub mod blob;
pub mod chunker;
pub mod config;
mod error;
pub mod id;
pub mod image;
pub mod keys;
pub mod manifest;
pub mod pack;
pub mod random_access;
pub mod sealed;
pub mod tree;

pub use blob::{BlobCodec, BlobKind};
pub use chunker::{ChunkerParams, FileChunker};
pub use config::VaultConfig;
pub use error::FormatError;
pub use id::{ChunkId, IdHasher};
pub use image::{ImageIndex, ImageSegment};
pub use keys::{KeySlot, MasterKey, RecoveryKey};
pub use manifest::{Manifest, ManifestBody, ReferenceList, SnapshotId, SnapshotKind};
pub use pack::{PackEntries, PackEntry, PackId, PackStream, PackWriter, StreamedPack};
pub use random_access::{ChunkSource, ImageReader};
pub use tree::{Node, NodeKind, Tree};

/// Result type of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
