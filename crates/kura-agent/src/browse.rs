//! Browsing a snapshot's tree without reading any file data.

use std::path::{Component, Path};

use kura_format::tree::{Node, NodeKind, Tree};
use kura_format::{ChunkId, SnapshotId};

use crate::{AgentError, OpenVault, Result};

/// One entry of a listing: its path inside the snapshot and its node.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub node: Node,
}

/// The root tree of a snapshot.
pub async fn root_of(vault: &OpenVault, id: &SnapshotId) -> Result<ChunkId> {
    let manifest = vault.repo.manifest(id).await?;
    Ok(manifest.open_body(&vault.codec)?.root)
}

/// Splits a snapshot path (`/home/a/x`, `home/a/x` or `/`) into names.
pub fn path_names(path: &Path) -> Result<Vec<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => names.push(n.as_bytes().to_vec()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(AgentError::Usage(format!(
                    "{path:?}: `..` is not allowed in a snapshot path"
                )));
            }
        }
    }
    Ok(names)
}

/// The node at `names` below the tree `root`, or `None` for the root itself.
pub async fn find(vault: &OpenVault, root: &ChunkId, names: &[Vec<u8>], shown: &str) -> Result<Option<Node>> {
    let mut tree = vault.load_tree(root).await?;
    let mut found = None;
    for (i, name) in names.iter().enumerate() {
        let node = tree
            .find(name)
            .cloned()
            .ok_or_else(|| AgentError::NotInSnapshot(shown.to_string()))?;
        if i + 1 < names.len() {
            let sub = node
                .subtree
                .filter(|_| node.kind == NodeKind::Dir)
                .ok_or_else(|| AgentError::NotInSnapshot(shown.to_string()))?;
            tree = vault.load_tree(&sub).await?;
        }
        found = Some(node);
    }
    Ok(found)
}

/// Every entry at and below `path` in the snapshot, depth first, sorted by name.
pub async fn list(vault: &OpenVault, root: &ChunkId, path: &Path, recursive: bool) -> Result<Vec<Entry>> {
    let names = path_names(path)?;
    let prefix = if names.is_empty() {
        String::new()
    } else {
        format!(
            "/{}",
            names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        )
    };
    let mut out = Vec::new();
    let start_tree = match find(vault, root, &names, &path.display().to_string()).await? {
        None => Some(*root),
        Some(node) => {
            let sub = node.subtree.filter(|_| node.kind == NodeKind::Dir);
            out.push(Entry {
                path: prefix.clone(),
                node,
            });
            sub
        }
    };
    if let Some(tree_id) = start_tree {
        let tree = vault.load_tree(&tree_id).await?;
        list_tree(vault, tree, &prefix, recursive, &mut out).await?;
    }
    Ok(out)
}

async fn list_tree(
    vault: &OpenVault,
    tree: Tree,
    prefix: &str,
    recursive: bool,
    out: &mut Vec<Entry>,
) -> Result<()> {
    // Iterative depth-first walk (async recursion would need boxing).
    let mut stack = vec![(prefix.to_string(), tree.nodes.into_iter())];
    while let Some((dir, mut iter)) = stack.pop() {
        let Some(node) = iter.next() else { continue };
        let path = format!("{dir}/{}", String::from_utf8_lossy(&node.name));
        let sub = node.subtree.filter(|_| node.kind == NodeKind::Dir && recursive);
        out.push(Entry {
            path: path.clone(),
            node,
        });
        stack.push((dir, iter));
        if let Some(id) = sub {
            let t = vault.load_tree(&id).await?;
            stack.push((path, t.nodes.into_iter()));
        }
    }
    Ok(())
}
