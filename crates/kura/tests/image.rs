//! Image snapshots through the real `kura` binary: raw and qcow2 images back up and
//! restore bit-identically (compared by SHA-256), stay sparse, store only changed chunks,
//! run hooks, refuse targets that do not fit, and name the damaged byte ranges on check.

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::*;

const MIB: u64 = 1 << 20;
/// The vault's default image chunk size.
const CHUNK: u64 = 256 << 10;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "{}", describe(&out));
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

/// Bytes the file really occupies on disk.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

/// A 48 MiB image: random islands, a range of written (not sparse) zeros, holes between.
fn make_image(path: &Path) -> u64 {
    let size = 48 * MIB;
    write_sparse(
        path,
        size,
        &[
            (0, 3 * MIB as usize),
            (10 * MIB + 4097, 5 * MIB as usize),
            (40 * MIB, 1 << 20),
        ],
        11,
    );
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(&vec![0u8; 4 * MIB as usize], 20 * MIB)
        .unwrap();
    size
}

#[test]
fn raw_image_round_trips_bit_identical_and_sparse() {
    let tmp = tempdir();
    let image = tmp.path().join("disk.img");
    let size = make_image(&image);
    let kura = Kura::new(tmp.path().join("vault")).with_password("image pass");
    kura.ok(["init", "--encrypt"]);

    let s = kura.json(["backup", "--image", image.to_str().unwrap(), "--tag", "disk"]);
    assert_eq!(s["bytes"].as_u64(), Some(size), "{s}");
    // Holes are skipped without reading; written zeros are read but never stored.
    let read = s["bytes_read"].as_u64().unwrap();
    assert!(read < 16 * MIB, "holes must not be read: {s}");
    assert!(
        s["bytes_added"].as_u64().unwrap() < 10 * MIB,
        "zeros are not stored: {s}"
    );
    let snaps = kura.snapshots();
    assert_eq!(snaps[0]["kind"], "image");
    assert_eq!(snaps[0]["paths"][0], image.to_str().unwrap());

    let out = tmp.path().join("restored.img");
    kura.ok(["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(fs::metadata(&out).unwrap().len(), size);
    assert_eq!(sha256(&out), sha256(&image));
    // Sparse where the source was zero: the written zeros become a hole too.
    assert!(
        allocated(&out) <= allocated(&image),
        "restored image occupies {} bytes, source {}",
        allocated(&out),
        allocated(&image)
    );
    let hole = rustix::fs::seek(
        fs::File::open(&out).unwrap(),
        rustix::fs::SeekFrom::Hole(20 * MIB),
    )
    .unwrap();
    assert_eq!(hole, 20 * MIB, "the zero range must be a hole");

    // An existing target is refused without --overwrite, and left as it was.
    let refused = kura.run(["restore", "latest", "--target", out.to_str().unwrap()]);
    let err = assert_exit(&refused, 1);
    assert!(err.contains("--overwrite"), "{err}");
    fs::write(&out, b"something else").unwrap();
    kura.ok([
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(sha256(&out), sha256(&image));

    kura.ok(["check", "--read-data"]);
}

#[test]
fn changed_blocks_are_all_a_new_image_snapshot_stores() {
    let tmp = tempdir();
    let image = tmp.path().join("disk.img");
    write_random(&image, 5, 32 * MIB as usize);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let first = kura.json(["backup", "--image", image.to_str().unwrap()]);
    let v1 = tmp.path().join("v1.img");
    fs::copy(&image, &v1).unwrap();

    // Unchanged (same size, times and inode): not even read, nothing added, the first
    // snapshot is the parent; --force reads it all again.
    let same = kura.json(["backup", "--image", image.to_str().unwrap()]);
    assert_eq!(same["parent"], first["snapshot_id"], "{same}");
    assert_eq!(same["bytes_read"].as_u64(), Some(0), "{same}");
    assert!(same["bytes_added"].as_u64().unwrap() < 64 << 10, "{same}");
    let forced = kura.json(["backup", "--image", image.to_str().unwrap(), "--force"]);
    assert_eq!(forced["bytes_read"].as_u64(), Some(32 * MIB), "{forced}");
    assert!(forced["bytes_added"].as_u64().unwrap() < 64 << 10, "{forced}");

    // Rewrite 2 % of the 4 KiB blocks at random places.
    let f = fs::File::options().write(true).open(&image).unwrap();
    let mut rng = Rng::new(9);
    let blocks = 32 * MIB / 4096;
    let mut touched = std::collections::BTreeSet::new();
    for _ in 0..blocks / 50 {
        let b = rng.below(blocks);
        f.write_all_at(&rng.bytes(4096), b * 4096).unwrap();
        touched.insert(b * 4096 / CHUNK);
    }
    let changed = kura.json(["backup", "--image", image.to_str().unwrap()]);
    let added = changed["bytes_added"].as_u64().unwrap();
    let changed_chunks = touched.len() as u64;
    assert!(
        added <= changed_chunks * CHUNK + (256 << 10),
        "only the {changed_chunks} changed chunks may be stored, {added} bytes were: {changed}"
    );
    assert!(added >= changed_chunks * CHUNK / 2, "{changed}");

    // Both snapshots restore to their own content.
    let out1 = tmp.path().join("out1.img");
    let out2 = tmp.path().join("out2.img");
    let id1 = first["snapshot_id"].as_str().unwrap();
    kura.ok(["restore", id1, "--target", out1.to_str().unwrap()]);
    kura.ok(["restore", "latest", "--target", out2.to_str().unwrap()]);
    assert_eq!(sha256(&out1), sha256(&v1));
    assert_eq!(sha256(&out2), sha256(&image));
}

#[test]
fn qcow2_images_are_read_and_written_through_qemu_img() {
    let tmp = tempdir();
    let raw = tmp.path().join("disk.raw");
    make_image(&raw);
    let qcow = tmp.path().join("disk.qcow2");
    let conv = Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow)
        .output()
        .expect("qemu-img runs");
    assert!(conv.status.success(), "{}", describe(&conv));
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    kura.json(["backup", "--image", qcow.to_str().unwrap()]);

    let out = tmp.path().join("out.raw");
    kura.ok(["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(sha256(&out), sha256(&raw));

    let out_q = tmp.path().join("out.qcow2");
    kura.ok([
        "restore",
        "latest",
        "--target",
        out_q.to_str().unwrap(),
        "--format",
        "qcow2",
    ]);
    let cmp = Command::new("qemu-img")
        .arg("compare")
        .arg(&raw)
        .arg(&out_q)
        .output()
        .unwrap();
    assert!(cmp.status.success(), "qcow2 differs: {}", describe(&cmp));
    let info = Command::new("qemu-img").arg("info").arg(&out_q).output().unwrap();
    assert!(stdout(&info).contains("qcow2"), "{}", describe(&info));
}

#[test]
fn hooks_run_around_the_read_and_their_failure_is_clear() {
    let tmp = tempdir();
    let image = tmp.path().join("disk.img");
    write_random(&image, 3, 2 * MIB as usize);
    let log = tmp.path().join("hooks.log");
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();

    let pre = format!("echo pre >> {}", log.display());
    let post = format!("echo post >> {}", log.display());
    let img = image.to_str().unwrap();
    kura.json(["backup", "--image", img, "--pre-hook", &pre, "--post-hook", &post]);
    assert_eq!(fs::read_to_string(&log).unwrap(), "pre\npost\n");

    // A failing pre-hook stops the backup before anything is read: no snapshot.
    let failed = kura.run([
        "backup",
        "--image",
        img,
        "--pre-hook",
        "echo lvcreate failed >&2; exit 5",
    ]);
    let err = assert_exit(&failed, 1);
    assert!(
        err.contains("pre-hook") && err.contains("lvcreate failed"),
        "{err}"
    );
    assert_eq!(kura.snapshots().len(), 1);

    // A failing post-hook: the snapshot is saved, the exit code says something went wrong.
    let partial = kura.run(["backup", "--image", img, "--post-hook", "exit 7"]);
    let err = assert_exit(&partial, 3);
    assert!(err.contains("post-hook"), "{err}");
    assert_eq!(kura.snapshots().len(), 2);
}

#[test]
fn check_names_the_damaged_byte_ranges_of_an_image() {
    let tmp = tempdir();
    let image = tmp.path().join("disk.img");
    write_random(&image, 21, 4 * MIB as usize);
    let repo = tmp.path().join("vault");
    let kura = Kura::new(&repo);
    kura.init();
    kura.json(["backup", "--image", image.to_str().unwrap()]);

    // Flip a byte in the middle of the largest pack (image data, not the index).
    let pack = pack_files(&repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let f = fs::File::options().read(true).write(true).open(&pack).unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, 1 << 20).unwrap();
    f.write_all_at(&[byte[0] ^ 0xff], 1 << 20).unwrap();

    let out = kura.run(["check", "--read-data"]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("image bytes"), "{text}");
    let report = last_json(&kura.run(["--json", "check", "--read-data"]));
    let ranges = report["damaged_image_ranges"].as_object().unwrap();
    let r = &ranges.values().next().unwrap()[0];
    let (start, end) = (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap());
    assert_eq!(start % CHUNK, 0, "{r}");
    assert_eq!(end - start, CHUNK, "one chunk is damaged: {r}");
    assert_eq!(r["cause"], "data");
}

#[test]
fn a_device_smaller_than_the_image_is_refused_before_writing() {
    if !is_root() {
        eprintln!("SKIPPED: loop devices need root");
        return;
    }
    let tmp = tempdir();
    let image = tmp.path().join("disk.img");
    write_random(&image, 1, 8 * MIB as usize);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    kura.json(["backup", "--image", image.to_str().unwrap()]);

    let backing = tmp.path().join("small.dev");
    write_random(&backing, 2, 4 * MIB as usize);
    let before = sha256(&backing);
    let Some(device) = LoopDevice::attach(&backing) else {
        eprintln!("SKIPPED: no loop device could be attached here");
        return;
    };
    let out = kura.run(["restore", "latest", "--target", &device.path, "--overwrite"]);
    let err = assert_exit(&out, 1);
    assert!(err.contains("nothing was written"), "{err}");
    drop(device);
    assert_eq!(sha256(&backing), before, "the device must be untouched");

    // A device that is large enough receives the exact image, zeros included.
    let big = tmp.path().join("big.dev");
    write_random(&big, 3, 8 * MIB as usize);
    let device = LoopDevice::attach(&big).expect("a second loop device");
    kura.ok(["restore", "latest", "--target", &device.path, "--overwrite"]);
    drop(device);
    assert_eq!(sha256(&big), sha256(&image));
}

/// A loop device over a file, detached on drop.
struct LoopDevice {
    path: String,
}

impl LoopDevice {
    fn attach(file: &Path) -> Option<Self> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .ok()?;
        out.status.success().then(|| LoopDevice {
            path: stdout(&out).trim().to_string(),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
    }
}

#[test]
fn files_are_listed_and_restored_from_inside_an_image_without_restoring_it() {
    let tmp = tempdir();
    let tree = tmp.path().join("tree");
    generate_tree(&tree.join("etc"), 8, 20, 200 << 10);
    fs::write(tree.join("etc/hostname"), b"db-server-1\n").unwrap();
    write_random(&tree.join("var/lib/big.bin"), 4, 3 * MIB as usize);
    std::os::unix::fs::symlink("../etc/hostname", tree.join("var/name")).unwrap();
    for label in ["gpt", "dos"] {
        let dir = tmp.path().join(label);
        fs::create_dir(&dir).unwrap();
        let disk = kura_testing::disk::partitioned_disk(&dir, &tree, label);
        let kura = Kura::new(dir.join("vault")).with_password("p");
        kura.ok(["init", "--encrypt"]);
        kura.json(["backup", "--image", disk.to_str().unwrap()]);

        // The partition table, with the file system found on each partition.
        let layout = kura.json(["ls", "latest"]);
        let parts = layout["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{layout}");
        assert_eq!(parts[0]["filesystem"], "swap", "{layout}");
        assert_eq!(parts[1]["filesystem"], "ext4", "{layout}");
        assert_eq!(parts[1]["start"].as_u64(), Some(9 * MIB));
        assert_eq!(layout["table"], label, "{layout}");

        // Files of partition 2.
        let listing = kura.json(["ls", "latest", "--partition", "2", "/var"]);
        let paths: Vec<&str> = listing
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/var/lib/big.bin"), "{paths:?}");
        let link = listing
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/var/name")
            .unwrap();
        assert_eq!(link["link_target"], "../etc/hostname");

        // One file and one directory, restored with their paths and compared.
        let out = dir.join("out");
        kura.ok([
            "restore",
            "latest",
            "--partition",
            "2",
            "--include",
            "/etc/hostname",
            "--include",
            "var",
            "--target",
            out.to_str().unwrap(),
        ]);
        assert_eq!(fs::read(out.join("etc/hostname")).unwrap(), b"db-server-1\n");
        assert_eq!(
            sha256(&out.join("var/lib/big.bin")),
            sha256(&tree.join("var/lib/big.bin"))
        );
        assert_eq!(
            fs::read_link(out.join("var/name")).unwrap(),
            Path::new("../etc/hostname")
        );

        // The whole file system.
        let all = dir.join("all");
        kura.ok([
            "restore",
            "latest",
            "--partition",
            "2",
            "--target",
            all.to_str().unwrap(),
        ]);
        // Contents and names (mkfs.ext4 -d keeps whole seconds only, so not times).
        let diff = Command::new("diff")
            .arg("-r")
            .arg(&tree)
            .arg(&all)
            .output()
            .unwrap();
        let only_lost_found = stdout(&diff)
            .lines()
            .all(|l| l.starts_with("Only in") && l.ends_with("lost+found"));
        assert!(only_lost_found, "{}", describe(&diff));

        // Clear refusals: swap is no file system to browse, partitions that do not exist,
        // a non-empty target.
        let swap = kura.run(["ls", "latest", "--partition", "1"]);
        let err = assert_exit(&swap, 1);
        assert!(err.contains("unsupported filesystem swap"), "{err}");
        let missing = kura.run(["ls", "latest", "--partition", "7"]);
        let err = assert_exit(&missing, 1);
        assert!(err.contains('7'), "{err}");
        let again = kura.run([
            "restore",
            "latest",
            "--partition",
            "2",
            "--target",
            all.to_str().unwrap(),
        ]);
        let err = assert_exit(&again, 1);
        assert!(err.contains("not empty"), "{err}");
    }
}

#[test]
fn files_inside_an_image_are_restored_around_a_damaged_one() {
    let tmp = tempdir();
    let tree = tmp.path().join("tree");
    generate_tree(&tree.join("etc"), 4, 10, 64 << 10);
    write_random(&tree.join("var/lib/big.bin"), 9, 3 * MIB as usize);
    let disk = kura_testing::disk::partitioned_disk(tmp.path(), &tree, "gpt");
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    kura.json(["backup", "--image", disk.to_str().unwrap()]);

    // Damage the image chunk (fixed-size, at a chunk boundary) that lies inside big.bin's
    // data on the file system.
    let image = fs::read(&disk).unwrap();
    let big = fs::read(tree.join("var/lib/big.bin")).unwrap();
    let at = image
        .windows(4096)
        .position(|w| w == &big[..4096])
        .expect("big.bin's first block is in the image");
    let chunk = (at as u64).div_ceil(CHUNK) * CHUNK;
    assert!(
        chunk + CHUNK <= at as u64 + big.len() as u64,
        "a whole chunk inside big.bin"
    );
    let victim = &image[chunk as usize..(chunk + CHUNK) as usize];
    let (pack, blob) = blobs(&kura.repo)
        .into_iter()
        .find(|(p, e)| e.kind == kura_format::BlobKind::Data && plaintext(p, e) == victim)
        .expect("the chunk's blob");
    damage(&pack, &blob);

    let all = tmp.path().join("all");
    let out = kura.run([
        "--json",
        "restore",
        "latest",
        "--partition",
        "2",
        "--target",
        all.to_str().unwrap(),
    ]);
    let text = assert_exit(&out, 3);
    assert!(text.contains("not restored: /var/lib/big.bin"), "{text}");
    let summary = last_json(&out);
    assert_eq!(summary["damaged"].as_array().unwrap().len(), 1, "{summary}");
    assert!(
        !all.join("var/lib/big.bin").exists(),
        "no partial file that looks whole"
    );
    // Everything else is restored whole.
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(&all)
        .output()
        .unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&diff.stdout).unwrap().lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("lost+found") || l.ends_with(": big.bin")),
        "{lines:?}"
    );
}
