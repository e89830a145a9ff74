//! Real images: partitioned with `sfdisk`, filesystems made by `mkfs.ext4 -d` from a
//! generated tree, then listed and extracted through `kura-image` and compared with the
//! tree and with what `sfdisk` itself reports. Skips (and says so) without the tools.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use common::*;
use kura_image::{
    DiskImage, EntryKind, Ext4Volume, FsKind, ImageError, ImageSource, PartitionType, TableScheme,
};

macro_rules! require_tools {
    () => {
        if let Some(message) = tools_missing() {
            eprintln!("{message}");
            return;
        }
    };
}

const MBR_SCRIPT: &str = "label: dos
start=2048, size=20480, type=83
start=22528, size=8192, type=82
start=30720, type=5
start=32768, size=20480, type=83
start=55296, size=8192, type=83
";

const GPT_SCRIPT: &str = "label: gpt
start=2048, size=20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"root\"
start=22528, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"data\"
start=30720, size=24576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"home\"
";

fn open(image: &Path) -> DiskImage {
    let source: Arc<dyn ImageSource> = Arc::new(fs::File::open(image).unwrap());
    DiskImage::open(source).unwrap()
}

fn assert_table_matches_sfdisk(disk: &DiskImage, image: &Path) {
    let expected = sfdisk_partitions(image);
    let found: std::collections::BTreeMap<u32, (u64, u64, String)> = disk
        .table()
        .partitions
        .iter()
        .map(|p| {
            let kind = match p.kind {
                PartitionType::Mbr(byte) => format!("{byte:x}"),
                PartitionType::Gpt(guid) => guid.to_string(),
            };
            (p.number, (p.start / 512, p.len / 512, kind))
        })
        .collect();
    assert_eq!(found, expected);
    assert!(disk.table().warnings.is_empty(), "{:?}", disk.table().warnings);
}

/// Extracts `/` and checks the result against the source tree entry by entry.
fn assert_extracts_like(volume: &Ext4Volume, tree: &Path, out: &Path) {
    let stats = volume.extract("/", out).unwrap();
    assert_eq!(stats.skipped, vec!["run/fifo".to_string()]);
    assert_eq!(stats.symlinks, 3);
    assert!(stats.bytes > 3 * 1024 * 1024, "{stats:?}");
    let want = observe(tree, &["run/fifo"]);
    let got = observe(out, &["lost+found"]);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (path, want) in &want {
        assert_eq!(&got[path], want, "{}", path.display());
    }
}

#[test]
fn mbr_image_with_a_logical_partition_lists_and_extracts() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("disk.img"));
    make_tree(&tree);
    partitioned_image(&image, 40, MBR_SCRIPT);
    mkfs_ext4_at(&image, 2048, 20480, &tree, &[]);
    mkfs_ext4_at(&image, 32768, 20480, &tree, &["-t", "ext4", "-O", "^has_journal"]);
    write_at(&image, 22528 * 512 + 4086, b"SWAPSPACE2");

    let disk = open(&image);
    assert_eq!(disk.table().scheme, TableScheme::Mbr);
    assert_table_matches_sfdisk(&disk, &image);
    assert_eq!(
        disk.table()
            .partitions
            .iter()
            .map(|p| p.number)
            .collect::<Vec<_>>(),
        [1, 2, 3, 5, 6]
    );
    assert_eq!(disk.detect(1).unwrap(), Some(FsKind::Ext4));
    assert_eq!(disk.detect(6).unwrap(), None);

    let err = disk.open_ext4(2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported filesystem swap on partition 2 (only ext2/3/4 can be browsed)"
    );
    assert!(matches!(
        disk.open_ext4(6),
        Err(ImageError::UnknownFilesystem { partition: 6 })
    ));
    let err = disk.open_ext4(4).unwrap_err();
    assert!(err.to_string().contains("partitions: 1, 2, 3, 5, 6"), "{err}");

    for number in [1, 5] {
        let volume = disk.open_ext4(number).unwrap();
        assert_extracts_like(&volume, &tree, &dir.path().join(format!("out{number}")));
    }
}

#[test]
fn gpt_image_lists_like_the_source_tree() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("disk.img"));
    make_tree(&tree);
    partitioned_image(&image, 32, GPT_SCRIPT);
    mkfs_ext4_at(&image, 2048, 20480, &tree, &["-b", "1024"]);
    write_at(&image, 22528 * 512, b"XFSB");
    mkfs_ext4_at(
        &image,
        30720,
        24576,
        &tree,
        &["-O", "64bit,metadata_csum,^resize_inode"],
    );

    let disk = open(&image);
    assert_eq!(disk.table().scheme, TableScheme::Gpt);
    assert_table_matches_sfdisk(&disk, &image);
    let names: Vec<&str> = disk.table().partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["root", "data", "home"]);
    assert_eq!(
        disk.open_ext4(2).unwrap_err().to_string(),
        "unsupported filesystem xfs on partition 2 (only ext2/3/4 can be browsed)"
    );

    for number in [1, 3] {
        let volume = disk.open_ext4(number).unwrap();
        let listed = volume.list_dir("/etc").unwrap();
        let mut expected: Vec<_> = fs::read_dir(tree.join("etc"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().as_bytes().to_vec(),
                    fs::symlink_metadata(e.path()).unwrap(),
                )
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed.len(), expected.len());
        for (entry, (name, meta)) in listed.iter().zip(&expected) {
            assert_eq!(&entry.name, name);
            assert_eq!(entry.kind == EntryKind::Dir, meta.is_dir());
            assert_eq!(u32::from(entry.mode), meta.mode() & 0o7777);
            assert_eq!((entry.uid, entry.gid), (meta.uid(), meta.gid()));
            assert_eq!(entry.mtime, meta.mtime());
            if meta.is_file() {
                assert_eq!(entry.size, meta.len());
            }
        }

        let link = volume.stat("/links/rel").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink);
        assert_eq!(link.name, b"rel");
        assert_eq!(link.symlink_target.as_deref(), Some(&b"../etc/hostname"[..]));
        assert_eq!(volume.read_link("/links/abs").unwrap(), b"/etc/passwd");

        let mut big = Vec::new();
        let copied = volume.copy_file("/var/big.bin", &mut big).unwrap();
        assert_eq!(copied, big.len() as u64);
        assert_eq!(big, fs::read(tree.join("var/big.bin")).unwrap());
        let mut reader = volume.open_file("/etc/passwd").unwrap();
        let mut passwd = String::new();
        std::io::Read::read_to_string(&mut reader, &mut passwd).unwrap();
        assert_eq!(passwd.as_bytes(), fs::read(tree.join("etc/passwd")).unwrap());

        let mut walked = Vec::new();
        volume
            .walk("/names", |rel, entry| {
                walked.push((rel.to_vec(), entry.kind));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            walked,
            vec![
                (b"".to_vec(), EntryKind::Dir),
                (b"bytes-\xff\xfe".to_vec(), EntryKind::File),
                (
                    "\u{fc}n\u{ef}c\u{f6}d\u{e9} file.txt".as_bytes().to_vec(),
                    EntryKind::File
                ),
            ]
        );
        assert_extracts_like(&volume, &tree, &dir.path().join(format!("out{number}")));
    }
}

#[test]
fn whole_disk_filesystem_is_partition_zero() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &["-t", "ext2"]);

    let disk = open(&image);
    assert_eq!(disk.table().scheme, TableScheme::None);
    assert_eq!(disk.detect(0).unwrap(), Some(FsKind::Ext2));
    let volume = disk.open_ext4(0).unwrap();
    assert_extracts_like(&volume, &tree, &dir.path().join("out"));
}

#[test]
fn nanosecond_mtimes_are_listed_and_extracted() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &[]);
    // mke2fs -d drops nanoseconds; debugfs sets them (the extra field holds nsec << 2).
    let nanos = 123_456_789u32;
    let request = format!("set_inode_field /etc/hostname mtime_extra {}", nanos << 2);
    run(
        "debugfs",
        &["-w".as_ref(), "-R".as_ref(), request.as_ref(), image.as_os_str()],
        None,
    );

    let volume = Ext4Volume::open(Arc::new(fs::File::open(&image).unwrap())).unwrap();
    let entry = volume.stat("/etc/hostname").unwrap();
    let source = fs::metadata(tree.join("etc/hostname")).unwrap();
    assert_eq!((entry.mtime, entry.mtime_nanos), (source.mtime(), nanos));
    let out = dir.path().join("hostname");
    volume.extract("/etc/hostname", &out).unwrap();
    let extracted = fs::metadata(&out).unwrap();
    assert_eq!(
        (extracted.mtime(), extracted.mtime_nsec()),
        (source.mtime(), i64::from(nanos))
    );
}

#[test]
fn extraction_of_a_subtree_or_file_never_overwrites() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &[]);
    let volume = Ext4Volume::open(Arc::new(fs::File::open(&image).unwrap())).unwrap();

    let etc = dir.path().join("etc");
    let stats = volume.extract("/etc", &etc).unwrap();
    assert_eq!((stats.files, stats.dirs), (3, 3));
    assert_eq!(
        fs::read(etc.join("ssl/private/key.pem")).unwrap(),
        b"-----BEGIN NOTHING-----\n"
    );
    assert_eq!(
        fs::metadata(etc.join("ssl/private")).unwrap().mode() & 0o7777,
        0o700
    );

    let suid = dir.path().join("suid");
    volume.extract("/bin/suid", &suid).unwrap();
    assert_eq!(
        fs::metadata(&suid).unwrap().mode() & 0o7777,
        0o755,
        "setuid is dropped"
    );

    let err = volume.extract("/etc", &etc).unwrap_err();
    assert!(matches!(err, ImageError::TargetExists(_)), "{err}");
    let planted = dir.path().join("planted");
    std::os::unix::fs::symlink("/tmp", &planted).unwrap();
    let err = volume.extract("/etc/hostname", &planted).unwrap_err();
    assert!(matches!(err, ImageError::TargetExists(_)), "{err}");
}

#[test]
fn unreadable_ext4_features_are_named() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &["-O", "inline_data"]);
    let err = open(&image).open_ext4(0).unwrap_err();
    assert!(
        matches!(err, ImageError::Ext4Features { partition: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("uses inline_data, which kura-image cannot read yet"),
        "{err}"
    );
}

#[test]
fn damaged_primary_gpt_on_a_real_image_uses_the_backup() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    partitioned_image(&image, 32, GPT_SCRIPT);
    write_at(&image, 512 + 40, &[0xff; 8]);
    let disk = open(&image);
    assert_eq!(disk.table().partitions.len(), 3);
    assert!(
        disk.table().warnings[0].contains("using the backup"),
        "{:?}",
        disk.table().warnings
    );
}

#[test]
fn truncated_image_refuses_the_partition_past_its_end() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    partitioned_image(&image, 40, MBR_SCRIPT);
    fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(40_000 * 512)
        .unwrap();
    let disk = open(&image);
    assert!(disk.partition(1).is_ok());
    let err = disk.partition(5).unwrap_err();
    assert!(
        matches!(err, ImageError::PartitionOutOfRange { number: 5, .. }),
        "{err}"
    );
    assert!(!disk.table().warnings.is_empty());
}

#[test]
fn a_directory_cycle_ends_the_walk_with_an_error() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &[]);
    // debugfs links directories where the kernel never would: /etc/ssl/loop is /etc.
    run(
        "debugfs",
        &[
            "-w".as_ref(),
            "-R".as_ref(),
            "link /etc /etc/ssl/loop".as_ref(),
            image.as_os_str(),
        ],
        None,
    );

    let volume = Ext4Volume::open(Arc::new(fs::File::open(&image).unwrap())).unwrap();
    let err = volume.walk("/", |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, ImageError::WalkLimit { .. }), "{err}");
    assert!(err.to_string().contains("256 directory levels"), "{err}");
    assert!(volume.extract("/etc", &dir.path().join("out")).is_err());

    // No cycle, but each of 20 directories is linked twice from the one above: 2^20
    // paths. The directory budget (the inode count) ends the walk.
    let mut commands: Vec<String> = (0..=20).map(|i| format!("mkdir /dag{i}")).collect();
    for i in 0..20 {
        commands.push(format!("link /dag{} /dag{i}/a", i + 1));
        commands.push(format!("link /dag{} /dag{i}/b", i + 1));
    }
    let script = dir.path().join("dag.debugfs");
    fs::write(&script, commands.join("\n")).unwrap();
    run(
        "debugfs",
        &[
            "-w".as_ref(),
            "-f".as_ref(),
            script.as_os_str(),
            image.as_os_str(),
        ],
        None,
    );
    let volume = Ext4Volume::open(Arc::new(fs::File::open(&image).unwrap())).unwrap();
    let err = volume.walk("/dag0", |_, _| Ok(())).unwrap_err();
    assert!(
        err.to_string().contains("the inode count of the filesystem"),
        "{err}"
    );
}

#[test]
fn a_name_with_a_slash_is_never_extracted() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::write(tree.join("etc/zz.slash.zz"), b"planted\n").unwrap();
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    // Without metadata checksums the edited directory block is not refused as corrupt.
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &["-O", "^metadata_csum"]);
    let mut bytes = fs::read(&image).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"zz.slash.zz\0" || w.starts_with(b"zz.slash.zz"))
        .unwrap();
    bytes[at + 2] = b'/';
    bytes[at + 3] = b'.';
    fs::write(&image, &bytes).unwrap();

    let volume = Ext4Volume::open(Arc::new(fs::File::open(&image).unwrap())).unwrap();
    let out = dir.path().join("out");
    let err = volume.extract("/etc", &out).unwrap_err();
    assert!(err.to_string().contains("path separator"), "{err}");
    let escaped: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|(rel, _)| rel.to_string_lossy().contains("slash"))
        .collect();
    assert_eq!(
        escaped.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        vec![Path::new("tree/etc/zz.slash.zz").to_path_buf()]
    );
}

#[test]
fn a_symlink_claiming_a_huge_target_is_refused_not_allocated() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
    make_tree(&tree);
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    mkfs_ext4_at(&image, 0, 16 * 2048, &tree, &[]);
    // Found by the property test: ext4-view allocates whatever size the inode claims.
    let request = "set_inode_field /links/dangling size 871878361102";
    run(
        "debugfs",
        &["-w".as_ref(), "-R".as_ref(), request.as_ref(), image.as_os_str()],
        None,
    );

    let volume = Ext4Volume::open(Arc::new(fs::File::open(&image).unwrap())).unwrap();
    for err in [
        volume.read_link("/links/dangling").unwrap_err(),
        volume.stat("/links/dangling").unwrap_err(),
        volume.list_dir("/links").unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                ImageError::SymlinkTooLong {
                    len: 871878361102,
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(volume.read_link("/links/abs").unwrap(), b"/etc/passwd");
}
