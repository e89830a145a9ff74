//! Directory trees: each directory is one blob listing its entries, sorted by name; a
//! subdirectory is referenced by the id of its own tree blob (a Merkle tree, as in git and
//! restic), so an unchanged subtree costs nothing and browsing reads only trees.
//!
//! Encoded as CBOR with short field names (`docs/format.md` lists them).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::{ChunkId, FormatError};

/// Current tree format version.
pub const TREE_VERSION: u32 = 1;

/// One directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    #[serde(rename = "v")]
    pub version: u32,
    #[serde(rename = "n")]
    pub nodes: Vec<Node>,
}

/// What kind of file system object a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// A piece of a file's content: a chunk, or a hole of that many bytes (sparse files).
/// Encoded as a CBOR byte string (the chunk id) or an unsigned integer (the hole length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    Chunk(ChunkId),
    Hole(u64),
}

impl Serialize for Extent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Extent::Chunk(id) => s.serialize_bytes(id.as_bytes()),
            Extent::Hole(len) => s.serialize_u64(*len),
        }
    }
}

impl<'de> Deserialize<'de> for Extent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ExtentVisitor;
        impl Visitor<'_> for ExtentVisitor {
            type Value = Extent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a 32-byte chunk id or a hole length")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Extent, E> {
                ChunkId::from_slice(v).map(Extent::Chunk).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Extent, E> {
                Ok(Extent::Hole(v))
            }
        }
        d.deserialize_any(ExtentVisitor)
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The name as raw bytes (any bytes but `/` and NUL; checked on restore, not trusted).
    #[serde(rename = "n")]
    pub name: ByteBuf,
    #[serde(rename = "k")]
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (no file type bits).
    #[serde(rename = "m")]
    pub mode: u32,
    #[serde(rename = "u")]
    pub uid: u32,
    #[serde(rename = "g")]
    pub gid: u32,
    /// Times in nanoseconds since the Unix epoch.
    #[serde(rename = "mt")]
    pub mtime_ns: i64,
    #[serde(rename = "at")]
    pub atime_ns: i64,
    #[serde(rename = "ct")]
    pub ctime_ns: i64,
    /// Logical size in bytes (files), target length (symlinks).
    #[serde(rename = "s", default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Device and inode at backup time: detect unchanged files and hard links.
    #[serde(rename = "dv", default, skip_serializing_if = "is_zero")]
    pub dev: u64,
    #[serde(rename = "in", default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    #[serde(rename = "nl", default, skip_serializing_if = "is_zero")]
    pub nlink: u64,
    /// Device number of character and block devices.
    #[serde(rename = "rd", default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<ByteBuf>,
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(ByteBuf, ByteBuf)>,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Extent>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<ChunkId>,
}

impl Node {
    /// A node with the given name and kind and everything else zero.
    pub fn new(name: &[u8], kind: NodeKind) -> Self {
        Node {
            name: ByteBuf::from(name.to_vec()),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            size: 0,
            dev: 0,
            inode: 0,
            nlink: 0,
            rdev: 0,
            link_target: None,
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// Whether the name is safe to create inside a directory: not empty, `.` or `..`, and
    /// without `/` or NUL. A hostile vault can hold any name; restore checks this.
    pub fn has_safe_name(&self) -> bool {
        let n = self.name.as_slice();
        !(n.is_empty() || n == b"." || n == b".." || n.contains(&b'/') || n.contains(&0))
    }

    /// The chunk ids of the content, holes skipped.
    pub fn chunk_ids(&self) -> impl Iterator<Item = &ChunkId> {
        self.content.iter().filter_map(|e| match e {
            Extent::Chunk(id) => Some(id),
            Extent::Hole(_) => None,
        })
    }
}

impl Tree {
    /// An empty tree of the current version.
    pub fn new() -> Self {
        Tree {
            version: TREE_VERSION,
            nodes: Vec::new(),
        }
    }

    /// Sorts entries by name; encoding requires it so equal directories give equal ids.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.nodes.len() * 96);
        ciborium::into_writer(self, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    /// Decodes a tree and checks its version and that names are sorted and unique.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let tree: Tree = ciborium::from_reader(bytes).map_err(|e| FormatError::cbor("tree", e))?;
        if tree.version != TREE_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "tree",
                version: tree.version,
                supported: TREE_VERSION,
            });
        }
        if tree.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(FormatError::malformed(
                "tree",
                "entries are not sorted and unique",
            ));
        }
        Ok(tree)
    }

    /// The entry called `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// Splits a path inside a snapshot (`/home/a/x`, `home/a/x`, `/` or empty) into its
/// names: empty names and `.` are skipped, `..` is refused (a path never climbs out of
/// the snapshot). Shared by the agent's restore and the service's web restore.
pub fn split_path(path: &[u8]) -> crate::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for name in path.split(|&b| b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                return Err(FormatError::malformed(
                    "snapshot path",
                    "`..` is not allowed in a snapshot path",
                ));
            }
            name if name.contains(&0) => {
                return Err(FormatError::malformed(
                    "snapshot path",
                    "a snapshot path cannot contain NUL",
                ));
            }
            name => names.push(name.to_vec()),
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>(), 1..20),
            0usize..7,
            any::<(u32, u32, u32, i64, i64, i64)>(),
            any::<(u64, u64, u64)>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..10),
                    proptest::collection::vec(any::<u8>(), 0..10),
                ),
                0..3,
            ),
            proptest::collection::vec(
                prop_oneof![
                    any::<[u8; 32]>().prop_map(|b| Extent::Chunk(ChunkId(b))),
                    any::<u64>().prop_map(Extent::Hole)
                ],
                0..5,
            ),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(
                |(
                    name,
                    k,
                    (mode, uid, gid, mt, at, ct),
                    (size, inode, rdev),
                    link,
                    xattrs,
                    content,
                    subtree,
                )| {
                    let kinds = [
                        NodeKind::File,
                        NodeKind::Dir,
                        NodeKind::Symlink,
                        NodeKind::Fifo,
                        NodeKind::CharDevice,
                        NodeKind::BlockDevice,
                        NodeKind::Socket,
                    ];
                    let mut n = Node::new(&name, kinds[k]);
                    n.mode = mode;
                    n.uid = uid;
                    n.gid = gid;
                    n.mtime_ns = mt;
                    n.atime_ns = at;
                    n.ctime_ns = ct;
                    n.size = size;
                    n.inode = inode;
                    n.rdev = rdev;
                    n.link_target = link.map(ByteBuf::from);
                    n.xattrs = xattrs
                        .into_iter()
                        .map(|(a, b)| (ByteBuf::from(a), ByteBuf::from(b)))
                        .collect();
                    n.content = content;
                    n.subtree = subtree.map(ChunkId);
                    n
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let mut tree = Tree::new();
            tree.nodes = nodes;
            tree.sort();
            tree.nodes.dedup_by(|a, b| a.name == b.name);
            let bytes = tree.encode();
            prop_assert_eq!(Tree::decode(&bytes).unwrap(), tree.clone());
            for n in &tree.nodes {
                prop_assert_eq!(tree.find(&n.name).unwrap(), n);
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&bytes);
        }
    }

    #[test]
    fn unsorted_tree_refused() {
        let mut tree = Tree::new();
        tree.nodes.push(Node::new(b"b", NodeKind::File));
        tree.nodes.push(Node::new(b"a", NodeKind::File));
        assert!(Tree::decode(&tree.encode()).is_err());
    }

    #[test]
    fn paths_split_into_names_and_never_climb() {
        let names = split_path(b"/home/./a//x/").unwrap();
        assert_eq!(names, vec![b"home".to_vec(), b"a".to_vec(), b"x".to_vec()]);
        assert!(split_path(b"/").unwrap().is_empty());
        assert!(split_path(b"").unwrap().is_empty());
        for bad in [&b"/home/../etc"[..], b"..", b"a/..", b"a\0b"] {
            assert!(split_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_path(b"...").unwrap(), vec![b"...".to_vec()]);
    }

    #[test]
    fn hostile_names_are_unsafe() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", b"/"] {
            assert!(!Node::new(bad, NodeKind::File).has_safe_name(), "{bad:?}");
        }
        assert!(Node::new(b"...", NodeKind::File).has_safe_name());
        assert!(Node::new(&[0xff, 0xfe], NodeKind::File).has_safe_name());
    }
}
