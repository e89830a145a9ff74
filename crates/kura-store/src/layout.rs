//! Where a vault's objects live in object storage: everything under one prefix
//! (`t/<tenant>/v/<vault>/` on the service, the `objects/` folder of a local vault).

use std::sync::Arc;

use kura_format::{PackId, SnapshotId};
use object_store::ObjectStore;
use object_store::path::Path;

/// The object names of one vault.
#[derive(Clone, Debug)]
pub struct ObjectLayout {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
}

impl ObjectLayout {
    /// Objects of the vault under `prefix` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        ObjectLayout { store, prefix }
    }

    fn child(&self, parts: &[&str]) -> Path {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.clone().join(*part);
        }
        p
    }

    /// The vault configuration.
    pub fn config(&self) -> Path {
        self.child(&["config"])
    }

    /// A key slot.
    pub fn key_slot(&self, id: &str) -> Path {
        self.child(&["keys", id])
    }

    /// Folder of all packs.
    pub fn packs(&self) -> Path {
        self.child(&["packs"])
    }

    /// A pack, fanned out by its first two hex digits.
    pub fn pack(&self, id: &PackId) -> Path {
        let hex = id.to_hex();
        self.child(&["packs", &hex[..2], &hex])
    }

    /// Folder of manifests.
    pub fn manifests(&self) -> Path {
        self.child(&["snapshots"])
    }

    /// A snapshot manifest.
    pub fn manifest(&self, id: &SnapshotId) -> Path {
        self.child(&["snapshots", &id.to_hex()])
    }

    /// Folder of reference lists.
    pub fn reference_lists(&self) -> Path {
        self.child(&["refs"])
    }

    /// A snapshot's reference list.
    pub fn references(&self, id: &SnapshotId) -> Path {
        self.child(&["refs", &id.to_hex()])
    }
}
