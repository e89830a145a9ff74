//! Writes a small seed corpus of valid structures into `fuzz/corpus/<target>/` (which is
//! not committed), so the fuzzer starts from real encodings instead of finding CBOR maps
//! with the right field names by chance:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use kura_format::keys::KdfParams;
use kura_format::manifest::{MANIFEST_VERSION, SnapshotStats};
use kura_format::tree::Extent;
use kura_format::{
    BlobCodec, BlobKind, ChunkId, KeySlot, Manifest, ManifestBody, MasterKey, Node, NodeKind, PackWriter,
    RecoveryKey, ReferenceList, SnapshotKind, Tree, VaultConfig,
};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("create corpus dir");
    fs::write(d.join(name), bytes).expect("write seed");
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let master = MasterKey::generate().expect("key");
    let plain = BlobCodec::plain(3);
    let enc = BlobCodec::encrypted(&master, 3);

    // blob: 32-byte id, then the blob.
    for (i, data) in [&b"hello"[..], &[7u8; 500][..], b""].iter().enumerate() {
        for (j, codec) in [&plain, &enc].into_iter().enumerate() {
            let id = codec.id(data);
            let mut seed = id.as_bytes().to_vec();
            seed.extend(codec.seal(&id, data).expect("seal"));
            write(&dir, "blob", &format!("blob-{i}-{j}"), &seed);
        }
    }

    // pack_trailer: mode byte 0 then a whole pack; and mode 1 with blob area + entries.
    let mut w = PackWriter::new();
    let mut area = Vec::new();
    for data in [&b"one"[..], &[1u8; 300][..]] {
        let id = plain.id(data);
        let blob = plain.seal(&id, data).expect("seal");
        w.add(id, BlobKind::Data, &blob, data.len() as u32);
        area.extend_from_slice(&blob);
    }
    let (_, pack, _) = w.finish();
    let mut seed = vec![0u8];
    seed.extend_from_slice(&pack);
    write(&dir, "pack_trailer", "pack", &seed);
    let trailer = &pack[area.len()..pack.len() - kura_format::pack::FOOTER_LEN];
    let mut seed = vec![1u8];
    seed.extend_from_slice(&(area.len() as u16).to_le_bytes());
    seed.extend_from_slice(&area);
    seed.extend_from_slice(trailer);
    write(&dir, "pack_trailer", "fixup", &seed);
    write(
        &dir,
        "pack_trailer",
        "empty",
        &[&[0u8][..], &PackWriter::new().finish().1].concat(),
    );

    // tree
    let mut tree = Tree::new();
    let mut f = Node::new(b"file", NodeKind::File);
    f.mode = 0o644;
    f.size = 10;
    f.content = vec![Extent::Chunk(ChunkId([1; 32])), Extent::Hole(4096)];
    f.xattrs = vec![(b"user.a".to_vec().into(), b"v".to_vec().into())];
    let mut d = Node::new(b"dir", NodeKind::Dir);
    d.subtree = Some(ChunkId([2; 32]));
    let mut l = Node::new(b"link", NodeKind::Symlink);
    l.link_target = Some(b"file".to_vec().into());
    tree.nodes = vec![f, d, l];
    tree.sort();
    write(&dir, "tree", "tree", &tree.encode());
    write(&dir, "tree", "empty", &Tree::new().encode());

    // manifest and reference list
    let refs = ReferenceList::from_ids(vec![ChunkId([1; 32]), ChunkId([2; 32])]);
    write(&dir, "manifest", "refs", &refs.encode());
    for (j, codec) in [&plain, &enc].into_iter().enumerate() {
        let body = ManifestBody {
            paths: vec!["/home".into()],
            root: ChunkId([9; 32]),
        };
        let (body_id, blob) = body.seal(codec).expect("seal body");
        let m = Manifest {
            version: MANIFEST_VERSION,
            kind: SnapshotKind::Files,
            time_ns: 1,
            end_time_ns: 2,
            host: "h".into(),
            source: "h:/home".into(),
            tags: vec!["t".into()],
            parent: Some(Manifest::id_of(b"parent")),
            stats: SnapshotStats::default(),
            reference_count: refs.ids().len() as u64,
            references_hash: refs.hash().to_vec().into(),
            body_id,
            body: blob.into(),
        };
        write(&dir, "manifest", &format!("manifest-{j}"), &m.encode());
    }

    // key slots
    let tiny = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let slot = KeySlot::for_passphrase(&master, b"x", "default", tiny, 0).expect("slot");
    write(&dir, "key_slot", "passphrase", &slot.encode());
    let rk = RecoveryKey::generate().expect("rk");
    write(
        &dir,
        "key_slot",
        "recovery",
        &KeySlot::for_recovery(&master, &rk, 0).expect("slot").encode(),
    );

    // vault configs
    for enc in [false, true] {
        let c = VaultConfig::new(enc, 0).expect("config");
        write(&dir, "vault_config", &format!("config-{enc}"), &c.encode());
    }
    image_seeds(&dir);
    println!("seeds written to {}", dir.display());
}

/// Tiny real images for the `kura-image` targets, made with `sfdisk` and `mkfs.ext4`
/// when they are installed (Debian: fdisk, e2fsprogs).
fn image_seeds(dir: &Path) {
    let work = std::env::temp_dir().join(format!("kura-fuzz-seeds-{}", std::process::id()));
    fs::create_dir_all(work.join("tree/d")).expect("seed tree");
    fs::write(work.join("tree/d/f"), b"x\n").expect("seed file");
    let _ = std::os::unix::fs::symlink("f", work.join("tree/d/l"));
    let tables = [
        (
            "mbr-logical",
            "label: dos\nstart=1, size=20, type=83\nstart=21, size=60, type=5\nstart=23, size=10, type=83\nstart=35, size=10, type=82\n",
        ),
        (
            "gpt",
            "label: gpt\nstart=40, size=30, type=linux, name=\"a\"\nstart=70, size=20, type=swap\n",
        ),
    ];
    for (name, script) in tables {
        let image = work.join(name);
        fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 10))
            .expect("seed image");
        if run_tool(
            "sfdisk",
            &["--quiet", image.to_str().expect("utf-8 temp dir")],
            script,
        ) {
            write(
                dir,
                "partition_table",
                name,
                &fs::read(&image).expect("seed image"),
            );
        }
    }
    let image = work.join("ext4");
    fs::File::create(&image)
        .and_then(|f| f.set_len(96 << 10))
        .expect("seed image");
    let tree = work.join("tree");
    let args = ["-q", "-F", "-O", "^has_journal,^resize_inode", "-N", "16", "-d"];
    let mut args: Vec<&str> = args.to_vec();
    args.extend([tree.to_str().expect("utf-8"), image.to_str().expect("utf-8")]);
    if run_tool("mkfs.ext4", &args, "") {
        write(dir, "ext4_image", "small", &fs::read(&image).expect("seed image"));
    }
    let _ = fs::remove_dir_all(&work);
}

fn run_tool(tool: &str, args: &[&str], stdin: &str) -> bool {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default());
    let Ok(mut child) = Command::new(tool)
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::piped())
        .spawn()
    else {
        eprintln!("{tool} not installed: no seeds for it");
        return false;
    };
    let fed = child
        .stdin
        .take()
        .is_some_and(|mut s| s.write_all(stdin.as_bytes()).is_ok());
    fed && child.wait().is_ok_and(|status| status.success())
}
