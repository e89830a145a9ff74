//! Browsing a snapshot's tree without reading any file data.

use std::path::Path;

use kura_format::tree::{Node, NodeKind, Tree};
use kura_format::{ChunkId, SnapshotId};

use crate::{AgentError, OpenVault, Result};

/// One entry of a listing: its path inside the snapshot and its node.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub node: Node,
}

/// A listing: the entries that could be read, and the directories whose entries could
/// not ("path: why"), because their trees are damaged or lost.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub damaged: Vec<String>,
}

/// The root tree of a snapshot.
pub async fn root_of(vault: &OpenVault, id: &SnapshotId) -> Result<ChunkId> {
    let manifest = vault.repo.manifest(id).await?;
    Ok(manifest.open_body(&vault.codec)?.root)
}

/// Splits a snapshot path (`/home/a/x`, `home/a/x` or `/`) into names
/// ([`kura_format::tree::split_path`]); `..` is refused.
pub fn path_names(path: &Path) -> Result<Vec<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    kura_format::tree::split_path(path.as_os_str().as_bytes())
        .map_err(|_| AgentError::Usage(format!("{path:?}: `..` is not allowed in a snapshot path")))
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

/// Every entry at and below `path` in the snapshot, depth first, sorted by name. A
/// directory whose tree cannot be read is named in [`Listing::damaged`] and the walk goes
/// on around it.
pub async fn list(vault: &OpenVault, root: &ChunkId, path: &Path, recursive: bool) -> Result<Listing> {
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
    let mut out = Listing::default();
    let start_tree = match find(vault, root, &names, &path.display().to_string()).await {
        Err(e) if e.is_damage() => {
            out.damaged.push(format!(
                "{}: a directory on its way is damaged: {e}",
                path.display()
            ));
            None
        }
        Err(e) => return Err(e),
        Ok(None) => Some(*root),
        Ok(Some(node)) => {
            let sub = node.subtree.filter(|_| node.kind == NodeKind::Dir);
            out.entries.push(Entry {
                path: prefix.clone(),
                node,
            });
            sub
        }
    };
    if let Some(tree_id) = start_tree
        && let Some(tree) = load_listed(vault, &tree_id, &prefix, &mut out).await?
    {
        list_tree(vault, tree, &prefix, recursive, &mut out).await?;
    }
    Ok(out)
}

/// The tree of directory `path`, or `None` when it is damaged (then named in `out`).
async fn load_listed(vault: &OpenVault, id: &ChunkId, path: &str, out: &mut Listing) -> Result<Option<Tree>> {
    match vault.load_tree(id).await {
        Ok(tree) => Ok(Some(tree)),
        Err(e) if e.is_damage() => {
            let shown = if path.is_empty() { "/" } else { path };
            out.damaged.push(format!(
                "{shown}: damaged directory, its entries cannot be listed: {e}"
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn list_tree(
    vault: &OpenVault,
    tree: Tree,
    prefix: &str,
    recursive: bool,
    out: &mut Listing,
) -> Result<()> {
    // Iterative depth-first walk (async recursion would need boxing).
    let mut stack = vec![(prefix.to_string(), tree.nodes.into_iter())];
    while let Some((dir, mut iter)) = stack.pop() {
        let Some(node) = iter.next() else { continue };
        let path = format!("{dir}/{}", String::from_utf8_lossy(&node.name));
        let sub = node.subtree.filter(|_| node.kind == NodeKind::Dir && recursive);
        out.entries.push(Entry {
            path: path.clone(),
            node,
        });
        stack.push((dir, iter));
        if let Some(id) = sub
            && let Some(t) = load_listed(vault, &id, &path, out).await?
        {
            stack.push((path, t.nodes.into_iter()));
        }
    }
    Ok(())
}
