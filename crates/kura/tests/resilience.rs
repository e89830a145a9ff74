//! Resilience: a restore or a listing goes on around damage in the vault and names it
//! (exit 3); `kura repair` heals what a backup has uploaded again, and packs whose bytes
//! changed outside any blob; a killed backup pins no space; gc leaves whole packs alone.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kura_format::BlobKind;
use serde_json::Value;

/// Ten directories `dNN` of twenty small files `dNN-fMM` and one larger file `dNN-big`;
/// every name is unique, so a tree's entries tell which directory it is.
fn populate(src: &Path) {
    for d in 0..10u64 {
        let dir = src.join(format!("d{d:02}"));
        for f in 0..20u64 {
            write_random(
                &dir.join(format!("d{d:02}-f{f:02}")),
                d * 100 + f,
                2048 + 97 * f as usize,
            );
        }
        write_random(&dir.join(format!("d{d:02}-big")), 5000 + d, 300 << 10);
    }
    // Read once, so the atimes the trees record stay put (relatime): a later backup of the
    // same files then makes the same trees, and uploads a damaged one again.
    all_files(src);
}

/// The files of `src` (relative paths) whose restored copy under `target` is identical.
fn intact_files(src: &Path, target: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in fs::read_dir(src).unwrap() {
        let d = d.unwrap().path();
        for f in fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(src).unwrap();
            if fs::read(restored(target, src).join(rel)).ok() == Some(fs::read(&f).unwrap()) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn all_files(src: &Path) -> Vec<String> {
    intact_files(src, Path::new("/"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// `kura --json ARGS` expecting exit `code`: the summary.
fn json_exit(kura: &Kura, args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = kura.run(&args);
    assert_exit(&out, code);
    last_json(&out)
}

/// After the damaged data was uploaded again by a backup: `repair` leaves a vault that
/// checks clean, and the damaged snapshot restores whole.
fn heal_and_check(kura: &Kura, tmp: &Path, snap: &str, src: &Path) {
    let repair = json_exit(kura, &["repair"], 0);
    assert!(
        !strings(&repair["packs_rewritten"]).is_empty(),
        "the damaged pack is rewritten: {repair}"
    );
    let check = json_exit(kura, &["check", "--read-data"], 0);
    assert!(strings(&check["warnings"]).is_empty(), "{check}");
    assert!(strings(&check["damaged_chunks"]).is_empty(), "{check}");
    let t = tmp.join("after-repair");
    kura.restore_ok(snap, &t, &[]);
    assert_eq!(intact_files(src, &t), all_files(src));
}

#[test]
fn a_damaged_tree_costs_only_its_directory_and_repair_heals_it() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    populate(&src);
    let kura = Kura::new(tmp.path().join("vault")).with_password("resilience test");
    kura.json(["init", "--encrypt"]);
    let snap = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The largest tree is one of the ten leaf directories (twenty-one entries each).
    let (pack, tree) = blobs(&kura.repo)
        .into_iter()
        .filter(|(_, e)| e.kind == BlobKind::Tree)
        .max_by_key(|(_, e)| e.length)
        .unwrap();
    damage(&pack, &tree);

    // Listing goes on around the damaged directory and names it.
    let out = kura.run(["ls", "latest"]);
    let text = assert_exit(&out, 3);
    let named: Vec<&str> = text.lines().filter(|l| l.contains("damaged directory")).collect();
    assert_eq!(named.len(), 1, "one damaged directory is named:\n{text}");
    let lost_dir = named[0]
        .split("/src/")
        .nth(1)
        .map(|rest| rest[..3].to_string())
        .unwrap_or_else(|| panic!("the damaged directory's path is named: {}", named[0]));
    let others = (0..10).map(|d| format!("d{d:02}")).filter(|d| *d != lost_dir);
    for d in others.clone() {
        assert!(
            stdout(&out).contains(&format!("{d}-f19")),
            "{d} is listed:\n{text}"
        );
    }
    // Below the damaged directory nothing can be listed; it says which path and why.
    let below = src.join(&lost_dir).join(format!("{lost_dir}-f00"));
    let text = assert_exit(&kura.run(["ls", "latest", below.to_str().unwrap()]), 3);
    assert!(text.contains("a directory on its way is damaged"), "{text}");

    // Restore writes every file outside it, byte for byte, and names it.
    let t = tmp.path().join("damaged");
    let out = kura.restore(&snap, &t, &["--json"]);
    assert_exit(&out, 3);
    let summary = last_json(&out);
    let damaged = strings(&summary["damaged"]);
    assert_eq!(damaged.len(), 1, "{summary}");
    assert!(
        damaged[0].contains(&format!("/src/{lost_dir}: damaged directory")),
        "{summary}"
    );
    let expected: Vec<String> = all_files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(&lost_dir))
        .collect();
    assert_eq!(intact_files(&src, &t), expected);
    assert_eq!(expected.len(), 9 * 21);

    // A sub-path restore through the damaged directory names it and exits 3 too; one
    // beside it restores completely.
    let inside = src.join(&lost_dir).join(format!("{lost_dir}-f00"));
    let out = kura.restore(
        &snap,
        &tmp.path().join("inside"),
        &["--include", inside.to_str().unwrap()],
    );
    assert_exit(&out, 3);

    // The next backup uploads the directory's tree again; then repair heals the vault.
    assert_exit(&kura.run(["check", "--read-data"]), 1);
    kura.backup(&[&src], &[]);
    heal_and_check(&kura, tmp.path(), &snap, &src);
}

#[test]
fn a_damaged_data_blob_costs_only_its_file_and_repair_heals_it() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    populate(&src);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let snap = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = fs::read(src.join("d04/d04-f02")).unwrap();
    let (pack, blob) = blobs(&kura.repo)
        .into_iter()
        .find(|(p, e)| e.kind == BlobKind::Data && plaintext(p, e) == victim)
        .expect("the small file is one blob");
    damage(&pack, &blob);

    // Listing reads no file data: whole.
    kura.ok(["ls", "latest"]);
    let t = tmp.path().join("damaged");
    let out = kura.restore(&snap, &t, &["--json"]);
    let text = assert_exit(&out, 3);
    let summary = last_json(&out);
    let damaged = strings(&summary["damaged"]);
    assert_eq!(damaged.len(), 1, "{summary}");
    assert!(damaged[0].contains("d04/d04-f02: damaged file"), "{summary}");
    assert!(text.contains("not restored:"), "{text}");
    assert!(
        !restored(&t, &src).join("d04/d04-f02").exists(),
        "a damaged file is not left half-written"
    );
    let expected: Vec<String> = all_files(&src)
        .into_iter()
        .filter(|f| f != "d04/d04-f02")
        .collect();
    assert_eq!(intact_files(&src, &t), expected);

    // Repair before any backup: the chunk exists nowhere else, so it is named as lost.
    let repair = json_exit(&kura, &["repair"], 3);
    assert_eq!(
        strings(&repair["remaining"]["damaged_snapshots"]),
        vec![snap.clone()],
        "{repair}"
    );
    assert_eq!(
        strings(&repair["remaining"]["damaged_chunks"]).len(),
        1,
        "{repair}"
    );

    kura.backup(&[&src], &[]);
    heal_and_check(&kura, tmp.path(), &snap, &src);
}

#[test]
fn a_damaged_trailer_loses_nothing_and_repair_rewrites_the_pack() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    populate(&src);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let snap = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pack = pack_files(&kura.repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let len = fs::metadata(&pack).unwrap().len() as usize;
    // Inside the last trailer entry, before the 48-byte footer.
    flip(&pack, len - 48 - 20);

    let check = json_exit(&kura, &["check", "--read-data"], 0);
    assert!(strings(&check["damaged_chunks"]).is_empty(), "{check}");
    assert!(strings(&check["damaged_snapshots"]).is_empty(), "{check}");
    assert_eq!(strings(&check["repairable_packs"]).len(), 1, "{check}");
    let warnings = strings(&check["warnings"]).join("\n");
    assert!(
        warnings.contains("trailer") && warnings.contains("kura repair"),
        "{warnings}"
    );
    let t = tmp.path().join("t");
    kura.restore_ok(&snap, &t, &[]);
    assert_eq!(intact_files(&src, &t), all_files(&src));

    heal_and_check(&kura, tmp.path(), &snap, &src);
    // Rewritten with its blobs in the same order, the pack is the original again.
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(!pack.exists() || blake3::hash(&fs::read(&pack).unwrap()).to_hex().as_str() == name);
}

#[test]
fn a_damaged_image_chunk_costs_only_its_range() {
    let tmp = tempdir();
    let image = tmp.path().join("disk.img");
    write_random(&image, 77, 4 << 20);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let snap = kura.backup(&[&image], &["--image"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let source = fs::read(&image).unwrap();
    let chunk = 256 << 10;
    let victim = &source[3 * chunk..4 * chunk];
    let (pack, blob) = blobs(&kura.repo)
        .into_iter()
        .find(|(p, e)| e.kind == BlobKind::Data && plaintext(p, e) == victim)
        .expect("the fourth chunk");
    damage(&pack, &blob);

    let target = tmp.path().join("restored.img");
    let out = kura.restore(&snap, &target, &["--json"]);
    let text = assert_exit(&out, 3);
    assert!(
        text.contains(&format!("image bytes {}..{}", 3 * chunk, 4 * chunk)),
        "{text}"
    );
    let summary = last_json(&out);
    assert_eq!(summary["damaged"][0]["cause"], "data", "{summary}");
    let restored = fs::read(&target).unwrap();
    assert_eq!(restored.len(), source.len());
    assert_eq!(restored[..3 * chunk], source[..3 * chunk]);
    assert!(restored[3 * chunk..4 * chunk].iter().all(|&b| b == 0));
    assert_eq!(restored[4 * chunk..], source[4 * chunk..]);

    // Check marks the chunk bad, so the damaged snapshot is no parent and the next backup
    // reads the image and uploads the chunk again.
    assert_exit(&kura.run(["check", "--read-data"]), 1);
    kura.backup(&[&image], &["--image"]);
    json_exit(&kura, &["repair"], 0);
    json_exit(&kura, &["check", "--read-data"], 0);
    fs::remove_file(&target).unwrap();
    kura.restore_ok(&snap, &target, &[]);
    assert_eq!(fs::read(&target).unwrap(), source);
}

#[test]
fn gc_leaves_packs_without_dead_bytes_alone() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    populate(&src);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    kura.backup(&[&src], &[]);
    let before = pack_files(&kura.repo);
    for _ in 0..2 {
        let gc = kura.json(["gc", "--max-unused", "0"]);
        assert_eq!(gc["packs_repacked"], 0, "{gc}");
        assert_eq!(gc["bytes_freed"], 0, "{gc}");
    }
    assert_eq!(pack_files(&kura.repo), before);

    // A pack that did lose bytes is still repacked.
    fs::remove_dir_all(src.join("d03")).unwrap();
    kura.backup(&[&src], &[]);
    let first = kura.snapshot_ids()[0].clone();
    kura.json(["forget", &first]);
    let gc = kura.json(["gc", "--max-unused", "0"]);
    assert!(gc["packs_repacked"].as_u64().unwrap() > 0, "{gc}");
}

#[test]
fn gc_reclaims_the_packs_of_a_killed_backup_at_once() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    for i in 0..8u64 {
        write_random(&src.join(format!("{i}.bin")), 900 + i, 10 << 20);
    }
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let mut child = kura
        .command(["backup", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while pack_files(&kura.repo).len() < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "backup hangs");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let stored = kura.stats()["stored_bytes"].as_u64().unwrap();
    assert!(stored > 20 << 20, "the killed run stored packs: {stored}");

    let gc = kura.json(["gc"]);
    assert!(gc["bytes_freed"].as_u64().unwrap() >= stored, "{gc}");
    let stats = kura.stats();
    assert_eq!(stats["stored_bytes"], 0, "{stats}");
    assert_eq!(stats["packs"], 0, "{stats}");
    assert_eq!(pack_files(&kura.repo), Vec::<PathBuf>::new());
    assert_eq!(
        fs::read_dir(kura.repo.join("sessions")).unwrap().count(),
        0,
        "the killed run's session lock is gone"
    );
    kura.ok(["check", "--read-data"]);
}

#[test]
fn a_full_disk_leaves_the_vault_readable_and_says_so() {
    let tmp = tempdir();
    let Some(_mount) = mount_tmpfs(&tmp.path().join("disk"), "8m") else {
        return;
    };
    let src = tmp.path().join("src");
    populate(&src);
    let kura = Kura::new(tmp.path().join("disk/vault"));
    kura.init();
    let snap = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Fill the file system to the last byte.
    let mut filler = fs::File::create(tmp.path().join("disk/filler")).unwrap();
    let block = vec![0x5a; 64 << 10];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    while std::io::Write::write_all(&mut filler, &[1]).is_ok() {}
    drop(filler);

    assert_eq!(kura.snapshot_ids(), vec![snap.clone()]);
    kura.ok(["ls", "latest"]);
    kura.ok(["stats"]);
    kura.ok(["check"]);
    kura.ok(["check", "--read-data"]);
    let t = tmp.path().join("t");
    kura.restore_ok(&snap, &t, &[]);
    assert_eq!(intact_files(&src, &t), all_files(&src));

    let more = tmp.path().join("more");
    write_random(&more.join("new.bin"), 31337, 1 << 20);
    let text = assert_exit(&kura.run(["backup", more.to_str().unwrap()]), 1);
    assert!(
        text.contains("no space left on the vault's file system"),
        "{text}"
    );

    fs::remove_file(tmp.path().join("disk/filler")).unwrap();
    kura.backup(&[&more], &[]);
    kura.ok(["check", "--read-data"]);
}
