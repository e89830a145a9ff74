//! A hostile vault: snapshots built directly with the library crates, holding names and
//! links meant to make a restore write outside its target. Nothing may ever land outside.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use kura_agent::{LocalRepository, Repository};
use kura_format::manifest::{MANIFEST_VERSION, SnapshotStats};
use kura_format::tree::Extent;
use kura_format::{
    BlobCodec, BlobKind, ChunkId, Manifest, ManifestBody, Node, NodeKind, PackWriter, ReferenceList,
    SnapshotKind, Tree,
};
use serde_bytes::ByteBuf;

/// The blobs of one hand-made snapshot.
struct Blobs {
    codec: BlobCodec,
    blobs: Vec<(ChunkId, BlobKind, Vec<u8>)>,
}

impl Blobs {
    fn put(&mut self, kind: BlobKind, data: &[u8]) -> ChunkId {
        let id = self.codec.id(data);
        self.blobs.push((id, kind, data.to_vec()));
        id
    }

    /// A file node with `content`.
    fn file(&mut self, name: &[u8], content: &[u8]) -> Node {
        let mut n = Node::new(name, NodeKind::File);
        n.mode = 0o644;
        n.mtime_ns = 1_700_000_000_000_000_000;
        n.size = content.len() as u64;
        if !content.is_empty() {
            n.content = vec![Extent::Chunk(self.put(BlobKind::Data, content))];
        }
        n
    }

    /// A directory node holding `children` (stored as a tree blob, sorted; names are
    /// kept as given, however hostile).
    fn dir(&mut self, name: &[u8], children: Vec<Node>) -> Node {
        let root = self.tree(children);
        let mut n = Node::new(name, NodeKind::Dir);
        n.mode = 0o755;
        n.mtime_ns = 1_700_000_000_000_000_000;
        n.subtree = Some(root);
        n
    }

    fn tree(&mut self, children: Vec<Node>) -> ChunkId {
        let mut t = Tree::new();
        t.nodes = children;
        t.sort();
        let bytes = t.encode();
        self.put(BlobKind::Tree, &bytes)
    }
}

fn symlink(name: &[u8], target: &[u8]) -> Node {
    let mut n = Node::new(name, NodeKind::Symlink);
    n.mode = 0o777;
    n.size = target.len() as u64;
    n.link_target = Some(ByteBuf::from(target.to_vec()));
    n
}

/// Commits a snapshot whose root directory holds `build`'s nodes, as any (hostile) vault
/// writer could; returns its id.
fn commit(repo: &Path, build: impl FnOnce(&mut Blobs) -> Vec<Node>) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let repo: Arc<dyn Repository> = Arc::new(LocalRepository::open(repo).await.unwrap());
        let (codec, _) = repo.config().codec(None).unwrap();
        let mut blobs = Blobs {
            codec,
            blobs: Vec::new(),
        };
        let nodes = build(&mut blobs);
        let root = blobs.tree(nodes);
        let session = repo.open_session(None).await.unwrap();
        let mut pack = PackWriter::new();
        let mut seen = HashSet::new();
        for (id, kind, data) in &blobs.blobs {
            if seen.insert(*id) {
                let sealed = blobs.codec.seal(id, data).unwrap();
                pack.add(*id, *kind, &sealed, data.len() as u32);
            }
        }
        let (_, bytes, _) = pack.finish();
        repo.put_pack(&session, Bytes::from(bytes)).await.unwrap();
        let refs = ReferenceList::from_ids(seen.into_iter().collect());
        let body = ManifestBody {
            paths: vec!["/".into()],
            root,
        };
        let (body_id, body_blob) = body.seal(&blobs.codec).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            kind: SnapshotKind::Files,
            time_ns: now,
            end_time_ns: now,
            host: "hostile".into(),
            source: "hostile".into(),
            tags: vec![],
            parent: None,
            stats: SnapshotStats::default(),
            reference_count: refs.ids().len() as u64,
            references_hash: ByteBuf::from(refs.hash().to_vec()),
            body_id,
            body: ByteBuf::from(body_blob),
        };
        repo.commit(&session, manifest.encode(), refs.encode())
            .await
            .unwrap()
            .to_hex()
    })
}

/// A vault, a restore area holding only the target, and a directory outside it.
struct Area {
    tmp: tempfile::TempDir,
    kura: Kura,
}

impl Area {
    fn new() -> Self {
        let tmp = tempdir();
        let kura = Kura::new(tmp.path().join("vault"));
        kura.init();
        fs::create_dir_all(tmp.path().join("area")).unwrap();
        fs::create_dir_all(tmp.path().join("outside")).unwrap();
        write(&tmp.path().join("outside/victim"), b"original");
        Area { tmp, kura }
    }
    fn target(&self) -> std::path::PathBuf {
        self.tmp.path().join("area/target")
    }
    fn outside(&self) -> std::path::PathBuf {
        self.tmp.path().join("outside")
    }
    /// Nothing was written next to the target or in the outside directory.
    fn assert_nothing_outside(&self) {
        assert_eq!(
            list_files(&self.tmp.path().join("area"))
                .iter()
                .filter(|f| !f.starts_with("target"))
                .count(),
            0,
            "written next to the target: {:?}",
            list_files(&self.tmp.path().join("area"))
        );
        assert_eq!(list_files(&self.outside()), vec!["victim".to_string()]);
        assert_eq!(fs::read(self.outside().join("victim")).unwrap(), b"original");
        let mut top: Vec<String> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(
            top,
            vec!["area", "outside", "vault"],
            "written into the test's root"
        );
    }
}

#[test]
fn names_that_could_escape_are_refused() {
    let area = Area::new();
    let hostile: &[&[u8]] = &[b"..", b"a/b", b"../escaped", b".", b"", b"nul\0byte", b"/abs"];
    for (i, name) in hostile.iter().enumerate() {
        for nested in [false, true] {
            let id = commit(&area.kura.repo, |b| {
                let ok = b.file(b"fine", b"harmless");
                let bad_file = b.file(b"escaped", b"pwned");
                let evil = if name.is_empty() || *name == b"." || *name == b".." {
                    // As a directory, whose content would land in the target's parent.
                    b.dir(name, vec![bad_file])
                } else {
                    b.file(name, b"pwned")
                };
                if nested {
                    vec![ok, b.dir(b"sub", vec![evil])]
                } else {
                    vec![ok, evil]
                }
            });
            let target = area.target();
            let out = area.kura.restore(&id, &target, &[]);
            let text = assert_exit(&out, 1);
            assert!(
                text.contains("refusing to restore"),
                "name {i} {:?} (nested: {nested}):\n{text}",
                String::from_utf8_lossy(name)
            );
            area.assert_nothing_outside();
            // A listing shows the entry without harm.
            area.kura.ok(["ls", &id]);
            let _ = fs::remove_dir_all(&target);
        }
    }
}

#[test]
fn a_restored_symlink_is_never_written_through() {
    let area = Area::new();
    let outside = area.outside();
    let victim = outside.join("victim");
    // Snapshot 1: `s` links to the outside directory, `f` to the outside file.
    let s1 = commit(&area.kura.repo, |_| {
        vec![
            symlink(b"s", outside.as_os_str().as_encoded_bytes()),
            symlink(b"f", victim.as_os_str().as_encoded_bytes()),
        ]
    });
    // Snapshot 2: a directory `s` with a file in it, and a file `f`.
    let s2 = commit(&area.kura.repo, |b| {
        let pwned = b.file(b"pwned", b"pwned");
        let victim = b.file(b"victim", b"pwned");
        vec![b.dir(b"s", vec![pwned, victim]), b.file(b"f", b"pwned")]
    });
    let target = area.target();

    area.kura.restore_ok(&s1, &target, &[]);
    assert_eq!(fs::read_link(target.join("s")).unwrap(), outside);
    area.kura.restore_ok(&s2, &target, &["--overwrite"]);
    area.assert_nothing_outside();
    assert!(fs::symlink_metadata(target.join("s")).unwrap().is_dir());
    assert_eq!(fs::read(target.join("s/pwned")).unwrap(), b"pwned");
    assert!(fs::symlink_metadata(target.join("f")).unwrap().is_file());

    // The same with only a sub-path included.
    fs::remove_dir_all(&target).unwrap();
    area.kura.restore_ok(&s1, &target, &[]);
    area.kura
        .restore_ok(&s2, &target, &["--overwrite", "--include", "s/pwned"]);
    area.kura
        .restore_ok(&s2, &target, &["--overwrite", "--include", "f"]);
    area.assert_nothing_outside();
    assert_eq!(fs::read(target.join("s/pwned")).unwrap(), b"pwned");

    // A symlink planted in the target by someone else is not followed either.
    fs::remove_dir_all(&target).unwrap();
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("s")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("f")).unwrap();
    area.kura.restore_ok(&s2, &target, &["--overwrite"]);
    area.assert_nothing_outside();
}

#[test]
fn hard_links_and_special_files_stay_inside() {
    let area = Area::new();
    let outside = area.outside();
    let victim = outside.join("victim");
    // Two files claim the same inode (a hard-link group); the first is where a symlink to
    // an outside file already sits in the target.
    let id = commit(&area.kura.repo, |b| {
        let mut first = b.file(b"first", b"pwned");
        first.nlink = 2;
        first.dev = 1;
        first.inode = 77;
        let mut second = b.file(b"second", b"pwned");
        second.nlink = 2;
        second.dev = 1;
        second.inode = 77;
        let mut fifo = Node::new(b"fifo", NodeKind::Fifo);
        fifo.mode = 0o644;
        vec![first, second, fifo]
    });
    let target = area.target();
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("first")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("second")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("fifo")).unwrap();
    area.kura.restore_ok(&id, &target, &["--overwrite"]);
    area.assert_nothing_outside();
    use std::os::unix::fs::MetadataExt;
    let a = fs::symlink_metadata(target.join("first")).unwrap();
    let b = fs::symlink_metadata(target.join("second")).unwrap();
    assert!(a.is_file() && b.is_file());
    assert_eq!(a.ino(), b.ino(), "restored as one hard-link group");
}
