//! Shared helpers of the integration tests: running the real `kura` binary, generating
//! deterministic trees, and comparing trees with all their metadata.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kura_format::pack::parse_pack;
use kura_format::{BlobCodec, PackEntry};
use serde_json::Value;

/// The binary under test.
pub const KURA: &str = env!("CARGO_BIN_EXE_kura");

/// A copy of the binary any user can run: the build directory may sit where an
/// unprivileged user cannot reach it (e.g. under root's home).
fn shared_exe() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        // One copy per build of the binary, shared by every test process.
        let meta = fs::metadata(KURA).unwrap();
        let dir = std::env::temp_dir().join("kura-it-bin");
        fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        let exe = dir.join(format!(
            "kura-{}-{}",
            meta.len(),
            meta.mtime_nsec() ^ meta.mtime()
        ));
        if !exe.exists() {
            // Copies of earlier builds are dead weight (50 MB each): drop them.
            // (Other processes' half-written `part-*` files are left alone.)
            for old in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if old.file_name().to_string_lossy().starts_with("kura-") {
                    let _ = fs::remove_file(old.path());
                }
            }
            let part = dir.join(format!("part-{}", std::process::id()));
            fs::copy(KURA, &part).unwrap();
            chmod(&part, 0o755);
            fs::rename(&part, &exe).unwrap();
        }
        exe
    })
    .clone()
}

/// A vault and how to run `kura` against it.
#[derive(Clone, Debug)]
pub struct Kura {
    pub repo: PathBuf,
    pub password: Option<String>,
    /// Extra environment for every run (e.g. `TZ`).
    pub env: Vec<(OsString, OsString)>,
    /// Run the child as this user and group (used to drop root privileges).
    pub user: Option<(u32, u32)>,
}

impl Kura {
    /// An unencrypted vault at `repo` (not created yet: call [`Kura::init`]).
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        Kura {
            repo: repo.into(),
            password: None,
            env: vec![("TZ".into(), "UTC".into())],
            user: None,
        }
    }

    /// The same vault, opened with `password` (for encrypted vaults).
    pub fn with_password(&self, password: &str) -> Self {
        let mut k = self.clone();
        k.password = Some(password.to_string());
        k
    }

    /// The same vault, with one more environment variable for the child.
    pub fn with_env(&self, key: &str, value: impl AsRef<OsStr>) -> Self {
        let mut k = self.clone();
        k.env.retain(|(k2, _)| k2 != key);
        k.env.push((key.into(), value.as_ref().to_os_string()));
        k
    }

    /// A command ready to run, with a clean environment for kura's own variables.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let exe = if self.user.is_some() {
            shared_exe()
        } else {
            PathBuf::from(KURA)
        };
        let mut c = Command::new(exe);
        c.args(args)
            .env_remove("KURA_REPO")
            .env_remove("KURA_CONFIG")
            .env_remove("KURA_PASSWORD")
            .env_remove("KURA_NEW_PASSWORD")
            .stdin(Stdio::null());
        // An empty repo means "no local vault": the agent config decides.
        if !self.repo.as_os_str().is_empty() {
            c.env("KURA_REPO", &self.repo);
        }
        if let Some(p) = &self.password {
            c.env("KURA_PASSWORD", p);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c
    }

    /// Runs kura with `args` and returns what it did.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().expect("kura runs")
    }

    /// Runs kura and asserts it succeeded.
    pub fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let out = self.run(&args);
        assert!(out.status.success(), "kura {args:?} failed:\n{}", describe(&out));
        out
    }

    /// Runs kura with `--json`, asserts success, returns the summary (last stdout line).
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        args.push("--json".into());
        let out = self.ok(&args);
        last_json(&out)
    }

    /// Creates the vault (unencrypted unless a password is set and `encrypt`).
    pub fn init(&self) -> Value {
        self.json(["init"])
    }

    /// Backs up `paths` with extra arguments; returns the JSON summary.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let mut args: Vec<OsString> = vec!["backup".into()];
        args.extend(paths.iter().map(|p| p.as_os_str().to_os_string()));
        args.extend(extra.iter().map(OsString::from));
        self.json(&args)
    }

    /// The snapshot list.
    pub fn snapshots(&self) -> Vec<Value> {
        self.json(["snapshots"])
            .as_array()
            .expect("snapshots --json gives an array")
            .clone()
    }

    /// Snapshot ids, in the order `kura snapshots` lists them.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.snapshots()
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// Restores `snap` into `target` with extra arguments (not asserted).
    pub fn restore(&self, snap: &str, target: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<OsString> = vec!["restore".into(), snap.into(), "--target".into()];
        args.push(target.as_os_str().to_os_string());
        args.extend(extra.iter().map(OsString::from));
        self.run(&args)
    }

    /// Restores and asserts success.
    pub fn restore_ok(&self, snap: &str, target: &Path, extra: &[&str]) -> Output {
        let out = self.restore(snap, target, extra);
        assert!(
            out.status.success(),
            "restore {snap} into {} failed:\n{}",
            target.display(),
            describe(&out)
        );
        out
    }

    /// `kura stats --json`.
    pub fn stats(&self) -> Value {
        self.json(["stats"])
    }
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status and both streams, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// The last line of stdout, parsed as JSON.
pub fn last_json(out: &Output) -> Value {
    let text = stdout(out);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no output:\n{}", describe(out)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}):\n{}", describe(out)))
}

/// Asserts an exit code and returns stdout + stderr for message checks.
pub fn assert_exit(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit code:\n{}",
        describe(out)
    );
    format!("{}\n{}", stdout(out), stderr(out))
}

/// Where a source directory lands inside a restore target (snapshots keep absolute paths).
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("absolute source path"))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ----- deterministic data -----

/// SplitMix64: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

/// Incompressible bytes from `seed`.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

/// Text-like, well compressible bytes from `seed`.
pub fn compressible_bytes(seed: u64, n: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "backup", "vault", "chunk", "pack", "tree", "snapshot", "restore", "kura", "the", "a", "of", "and",
        "data", "file", "\n", "fn", "let", "mut", "{", "}", ";",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

/// Writes `data` to `path`, creating parent directories.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `n` random bytes from `seed` to `path`.
pub fn write_random(path: &Path, seed: u64, n: usize) {
    write(path, &random_bytes(seed, n));
}

/// Sets the mtime (and an atime) of `path` without following symlinks.
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
    let t = |s: i64, n: i64| Timespec {
        tv_sec: s,
        tv_nsec: n as _,
    };
    let ts = Timestamps {
        last_access: t(secs - 1000, 1),
        last_modification: t(secs, nanos),
    };
    rustix::fs::utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// Sets the permission bits of `path` (not for symlinks).
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Creates a FIFO.
pub fn mkfifo(path: &Path, mode: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(mode),
        0,
    )
    .unwrap();
    chmod(path, mode);
}

/// Whether `dir`'s file system accepts `user.*` extended attributes.
pub fn xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"x").unwrap();
    let ok = xattr::set(&probe, "user.kura.probe", b"1").is_ok();
    fs::remove_file(&probe).unwrap();
    ok
}

/// A file of `size` bytes whose data are only the given islands (offset, length); the rest
/// are holes.
pub fn write_sparse(path: &Path, size: u64, islands: &[(u64, usize)], seed: u64) {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::create(path).unwrap();
    for (i, (off, len)) in islands.iter().enumerate() {
        f.seek(SeekFrom::Start(*off)).unwrap();
        f.write_all(&random_bytes(seed + i as u64, *len)).unwrap();
    }
    f.set_len(size).unwrap();
}

/// A plain generated tree of `files` files in nested directories, random sizes up to
/// `max_size`; returns the total bytes. Deterministic in `seed`.
pub fn generate_tree(root: &Path, seed: u64, files: usize, max_size: usize) -> u64 {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    fs::create_dir_all(root).unwrap();
    for i in 0..files {
        let depth = rng.below(3);
        let mut p = root.to_path_buf();
        for _ in 0..depth {
            p.push(format!("d{}", rng.below(3)));
        }
        let size = rng.below(max_size as u64 + 1) as usize;
        p.push(format!("f{i:03}.bin"));
        let data = if i % 3 == 0 {
            compressible_bytes(rng.next_u64(), size)
        } else {
            random_bytes(rng.next_u64(), size)
        };
        write(&p, &data);
        total += size as u64;
    }
    total
}

// ----- tree comparison -----

/// Everything compared about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub size: u64,
    pub hash: Option<String>,
    pub link: Option<Vec<u8>>,
    /// `user.*` attributes, sorted.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Other paths of the tree sharing the inode (hard links), sorted; empty if none.
    pub links: Vec<Vec<u8>>,
    /// Allocated bytes (`st_blocks * 512`): compared loosely, see [`assert_same_tree`].
    pub allocated: u64,
}

/// A scanned tree: relative path bytes (`.` for the root) → entry.
pub type Scan = BTreeMap<Vec<u8>, Entry>;

/// What to compare.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    pub xattrs: bool,
    pub root_metadata: bool,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            xattrs: true,
            root_metadata: true,
        }
    }
}

/// Reads a whole tree with all metadata. Does not follow symlinks.
pub fn scan(root: &Path) -> Scan {
    let mut out = Scan::new();
    let mut inodes: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    scan_into(root, b".".to_vec(), &mut out, &mut inodes);
    for paths in inodes.values() {
        if paths.len() > 1 {
            for p in paths {
                let mut others: Vec<Vec<u8>> = paths.iter().filter(|o| *o != p).cloned().collect();
                others.sort();
                out.get_mut(p).unwrap().links = others;
            }
        }
    }
    out
}

fn scan_into(path: &Path, rel: Vec<u8>, out: &mut Scan, inodes: &mut HashMap<(u64, u64), Vec<Vec<u8>>>) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "device"
    };
    let hash = ft.is_file().then(|| {
        let data = fs::read(path).unwrap();
        blake3::hash(&data).to_hex().to_string()
    });
    let link = ft
        .is_symlink()
        .then(|| fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec());
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = match xattr::list(path) {
        Ok(names) => names
            .filter(|n| n.as_bytes().starts_with(b"user."))
            .map(|n| {
                let v = xattr::get(path, &n).ok().flatten().unwrap_or_default();
                (n.as_bytes().to_vec(), v)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    xattrs.sort();
    if ft.is_file() && m.nlink() > 1 {
        inodes.entry((m.dev(), m.ino())).or_default().push(rel.clone());
    }
    out.insert(
        rel.clone(),
        Entry {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            size: if ft.is_dir() { 0 } else { m.len() },
            hash,
            link,
            xattrs,
            links: Vec::new(),
            allocated: m.blocks() * 512,
        },
    );
    if ft.is_dir() {
        let mut names: Vec<OsString> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let child_rel = if rel == b"." {
                n.as_bytes().to_vec()
            } else {
                let mut r = rel.clone();
                r.push(b'/');
                r.extend_from_slice(n.as_bytes());
                r
            };
            scan_into(&path.join(&n), child_rel, out, inodes);
        }
    }
}

/// A path of a scan, readable.
pub fn show(p: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(p))
}

/// Asserts two scans describe the same tree: same paths, and per entry the same type,
/// mode, owner, mtime (ns), size, content, link target, `user.*` xattrs and hard-link
/// group. Sparse files of `expected` (allocated < half their size) must stay sparse.
pub fn assert_same_tree(expected: &Scan, actual: &Scan, cmp: Compare) {
    let mut problems = Vec::new();
    for p in expected.keys() {
        if !actual.contains_key(p) {
            problems.push(format!("missing: {}", show(p)));
        }
    }
    for p in actual.keys() {
        if !expected.contains_key(p) {
            problems.push(format!("unexpected: {}", show(p)));
        }
    }
    for (p, e) in expected {
        let Some(a) = actual.get(p) else { continue };
        let is_root = p == b".";
        let mut diff = |what: &str, x: String, y: String| {
            if x != y {
                problems.push(format!("{}: {what}: expected {x}, got {y}", show(p)));
            }
        };
        diff("type", e.kind.into(), a.kind.into());
        if is_root && !cmp.root_metadata {
            continue;
        }
        diff("mode", format!("{:o}", e.mode), format!("{:o}", a.mode));
        diff("uid", e.uid.to_string(), a.uid.to_string());
        diff("gid", e.gid.to_string(), a.gid.to_string());
        diff("mtime_ns", e.mtime_ns.to_string(), a.mtime_ns.to_string());
        diff("size", e.size.to_string(), a.size.to_string());
        diff("content", format!("{:?}", e.hash), format!("{:?}", a.hash));
        diff(
            "link target",
            format!(
                "{:?}",
                e.link.as_ref().map(|l| String::from_utf8_lossy(l).into_owned())
            ),
            format!(
                "{:?}",
                a.link.as_ref().map(|l| String::from_utf8_lossy(l).into_owned())
            ),
        );
        if cmp.xattrs {
            diff("xattrs", format!("{:?}", e.xattrs), format!("{:?}", a.xattrs));
        }
        diff(
            "hard links",
            format!("{:?}", e.links.iter().map(|l| show(l)).collect::<Vec<_>>()),
            format!("{:?}", a.links.iter().map(|l| show(l)).collect::<Vec<_>>()),
        );
        if e.kind == "file" && e.size >= 1 << 20 && e.allocated < e.size / 2 {
            // Sparse: the restored file may allocate a little more (block rounding), but
            // its holes must stay holes.
            let limit = e.allocated * 2 + (256 << 10);
            if a.allocated > limit || a.allocated >= a.size / 2 {
                problems.push(format!(
                    "{}: not sparse any more: {} bytes allocated of {} (source: {})",
                    show(p),
                    a.allocated,
                    a.size,
                    e.allocated
                ));
            }
        }
    }
    assert!(problems.is_empty(), "trees differ:\n  {}", problems.join("\n  "));
}

/// Scans both and compares.
pub fn assert_dirs_equal(expected: &Path, actual: &Path, cmp: Compare) {
    assert_same_tree(&scan(expected), &scan(actual), cmp);
}

/// Every file below `dir` (recursively), relative, sorted.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                go(base, &p, out);
            }
        }
    }
    if dir.exists() {
        go(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// Every byte of every file below `dir` contains `needle`? Returns the files that do.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    fn go(dir: &Path, needle: &[u8], hits: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                go(&p, needle, hits);
            } else if ft.is_file() {
                let data = fs::read(&p).unwrap();
                if data.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    go(dir, needle, &mut hits);
    hits
}

/// Pack files of a vault (`objects/packs/<xx>/<id>`), sorted.
pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dir = repo.join("objects/packs");
    if let Ok(rd) = fs::read_dir(&dir) {
        for sub in rd {
            let sub = sub.unwrap().path();
            if sub.is_dir() {
                for f in fs::read_dir(&sub).unwrap() {
                    out.push(f.unwrap().path());
                }
            }
        }
    }
    out.sort();
    out
}

/// A tmpfs mounted for a test's lifetime; unmounted when dropped, however the test ends.
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (e.g. `8m`) at `dir`, or says loudly why it cannot (not root,
/// no mount) and returns `None`: the caller skips its test.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .ok()?;
    if out.status.success() {
        Some(Mount(dir.to_path_buf()))
    } else {
        eprintln!(
            "NOTE: cannot mount a tmpfs ({}); this full-disk test is SKIPPED",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        None
    }
}

/// `OsStr` from raw bytes.
pub fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// A temporary directory whose path every user can traverse (tempfile makes them 0700).
pub fn tempdir() -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix("kura-it-").tempdir().unwrap();
    chmod(t.path(), 0o755);
    t
}

/// Every blob of the vault: (pack file, its entry).
pub fn blobs(repo: &Path) -> Vec<(PathBuf, PackEntry)> {
    pack_files(repo)
        .into_iter()
        .flat_map(|p| {
            let entries = parse_pack(&fs::read(&p).unwrap()).unwrap();
            entries.into_iter().map(move |e| (p.clone(), e))
        })
        .collect()
}

/// The plaintext of a blob of an unencrypted vault.
pub fn plaintext(pack: &Path, e: &PackEntry) -> Vec<u8> {
    let bytes = fs::read(pack).unwrap();
    BlobCodec::plain(3)
        .open(&e.id, &bytes[e.offset as usize..(e.offset + e.length) as usize])
        .unwrap()
}

/// Flips one bit of the byte at `offset` of a file.
pub fn flip(file: &Path, offset: usize) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset] ^= 0x10;
    fs::write(file, &bytes).unwrap();
}

/// Flips a byte in the middle of a blob.
pub fn damage(pack: &Path, e: &PackEntry) {
    flip(pack, (e.offset + e.length / 2) as usize);
}
