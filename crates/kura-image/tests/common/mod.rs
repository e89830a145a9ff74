//! Builders for real disk images, made with the same tools an administrator uses
//! (`truncate`, `sfdisk`, `mkfs.ext4 -d`), and a generated source tree to compare with.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};

/// The external tools the image tests need, or a message naming what is missing.
pub fn tools_missing() -> Option<String> {
    let missing: Vec<&str> = ["mkfs.ext4", "sfdisk", "mkfifo"]
        .into_iter()
        .filter(|tool| {
            Command::new("sh")
                .args([
                    "-c",
                    &format!("command -v {tool} || test -x /usr/sbin/{tool} || test -x /sbin/{tool}"),
                ])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "SKIPPED: {} not installed (apt-get install -y e2fsprogs fdisk coreutils)",
            missing.join(", ")
        )
    })
}

/// Runs a tool (looked up in PATH and the sbin folders), failing the test with its
/// output when it fails.
pub fn run(tool: &str, args: &[&OsStr], stdin: Option<&str>) -> String {
    use std::io::Write;
    let path = std::env::var("PATH").unwrap_or_default();
    let mut child = Command::new(tool)
        .args(args)
        .env("PATH", format!("{path}:/usr/sbin:/sbin"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic pseudo-random bytes (xorshift), so file contents differ block to block.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        last_modification: Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// Writes a tree with every kind of entry the extractor handles: nested directories
/// with tight modes, empty/small/multi-megabyte files, relative, absolute and dangling
/// symlinks, non-UTF-8 and Unicode names, a setuid file, a fifo, and nanosecond mtimes.
pub fn make_tree(root: &Path) {
    let file = |rel: &str, content: &[u8], mode: u32| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::create_dir_all(root).unwrap();
    file("etc/hostname", b"kura-test\n", 0o644);
    file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nkura:x:1000:1000::/home/kura:/bin/sh\n",
        0o644,
    );
    file("etc/ssl/private/key.pem", b"-----BEGIN NOTHING-----\n", 0o600);
    file("bin/tool", &pseudo_random(300 * 1024, 1), 0o755);
    file("bin/suid", b"#!/bin/sh\n", 0o4755);
    file("var/big.bin", &pseudo_random(3 * 1024 * 1024 + 123, 2), 0o640);
    file("var/empty", b"", 0o444);
    file("names/\u{fc}n\u{ef}c\u{f6}d\u{e9} file.txt", b"unicode\n", 0o644);
    let non_utf8 = root.join("names").join(OsStr::from_bytes(b"bytes-\xff\xfe"));
    fs::write(&non_utf8, b"not utf-8\n").unwrap();
    fs::create_dir_all(root.join("links")).unwrap();
    std::os::unix::fs::symlink("../etc/hostname", root.join("links/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("links/abs")).unwrap();
    std::os::unix::fs::symlink("nowhere/at all", root.join("links/dangling")).unwrap();
    fs::create_dir_all(root.join("run")).unwrap();
    run("mkfifo", &[root.join("run/fifo").as_os_str()], None);
    fs::set_permissions(root.join("etc/ssl/private"), fs::Permissions::from_mode(0o700)).unwrap();
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::lchown(root.join("etc/passwd"), Some(1234), Some(5678)).unwrap();
    }
    // Children before parents, so setting a file's time does not change its directory's.
    let mut paths = walk(root);
    paths.reverse();
    for (i, (rel, _)) in paths.iter().enumerate() {
        set_mtime(
            &root.join(rel),
            1_600_000_000 + i as i64 * 3_600,
            100_000_007 * (i as i64 % 9),
        );
    }
}

/// Relative paths of everything below `root`, sorted, parents first.
pub fn walk(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(root.join(&child)).unwrap();
            if meta.is_dir() {
                stack.push(child.clone());
            }
            out.push((child, meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What extraction must reproduce of one entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    pub kind: &'static str,
    pub mode: u32,
    /// Seconds only: `mke2fs -d` (1.47) does not copy nanoseconds.
    pub mtime: i64,
    pub content: Option<Vec<u8>>,
    pub link: Option<PathBuf>,
}

/// `walk` of a tree as comparable values; setuid/setgid bits are masked because the
/// extractor drops them, and `skip` names entries to leave out.
pub fn observe(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Observed> {
    walk(root)
        .into_iter()
        .filter(|(rel, _)| !skip.iter().any(|s| rel.starts_with(s)))
        .map(|(rel, meta)| {
            let path = root.join(&rel);
            let kind = if meta.is_dir() {
                "dir"
            } else if meta.is_symlink() {
                "symlink"
            } else if meta.is_file() {
                "file"
            } else {
                "special"
            };
            let observed = Observed {
                kind,
                mode: meta.mode() & 0o1777,
                mtime: meta.mtime(),
                content: meta.is_file().then(|| fs::read(&path).unwrap()),
                link: meta.is_symlink().then(|| fs::read_link(&path).unwrap()),
            };
            (rel, observed)
        })
        .collect()
}

/// `start` and `size` (sectors) and `type` of each partition per `sfdisk --dump`, by
/// partition number: the numbering the crate must reproduce.
pub fn sfdisk_partitions(image: &Path) -> BTreeMap<u32, (u64, u64, String)> {
    let dump = run("sfdisk", &[OsStr::new("--dump"), image.as_os_str()], None);
    let prefix = image.display().to_string();
    dump.lines()
        .filter_map(|line| {
            let (node, fields) = line.split_once(" : ")?;
            let number = node.trim().strip_prefix(&prefix)?.parse().ok()?;
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.trim().strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            Some((
                number,
                (
                    field("start=")?.parse().ok()?,
                    field("size=")?.parse().ok()?,
                    field("type=")?,
                ),
            ))
        })
        .collect()
}

/// Creates a sparse image of `mib` MiB partitioned by the `sfdisk` script.
pub fn partitioned_image(path: &Path, mib: u64, script: &str) {
    fs::File::create(path).unwrap().set_len(mib << 20).unwrap();
    run("sfdisk", &[OsStr::new("--quiet"), path.as_os_str()], Some(script));
}

/// Makes an ext4 filesystem of `sectors` 512-byte sectors from `tree`, inside `image`
/// at sector `start`, with extra `mkfs.ext4` options.
pub fn mkfs_ext4_at(image: &Path, start: u64, sectors: u64, tree: &Path, options: &[&str]) {
    let offset = format!("offset={}", start * 512);
    let size_k = format!("{}k", sectors / 2);
    // 256-byte inodes store nanosecond timestamps; small filesystems default to 128.
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("-q"),
        OsStr::new("-F"),
        OsStr::new("-I"),
        OsStr::new("256"),
    ];
    args.extend(options.iter().map(OsStr::new));
    args.extend([
        OsStr::new("-E"),
        OsStr::new(&offset),
        OsStr::new("-d"),
        tree.as_os_str(),
    ]);
    args.extend([image.as_os_str(), OsStr::new(&size_k)]);
    run("mkfs.ext4", &args, None);
}

/// Writes `bytes` into `image` at `offset`, as `dd conv=notrunc` would.
pub fn write_at(image: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    fs::OpenOptions::new()
        .write(true)
        .open(image)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}
