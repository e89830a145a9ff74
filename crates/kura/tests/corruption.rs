//! Damaged and missing packs: found by `check`, named down to the snapshots they hurt,
//! and healed by the next backup.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

struct Setup {
    tmp: tempfile::TempDir,
    kura: Kura,
    src: PathBuf,
    total: u64,
    snap: String,
}

fn setup() -> Setup {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let mut total = 0;
    for i in 0..6u64 {
        write_random(&src.join(format!("f{i}")), 100 + i, 1 << 20);
        total += 1 << 20;
    }
    write(&src.join("small.txt"), b"small file");
    total += 10;
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let s = kura.backup(&[&src], &[]);
    let snap = s["snapshot_id"].as_str().unwrap().to_string();
    Setup {
        tmp,
        kura,
        src,
        total,
        snap,
    }
}

fn largest_pack(repo: &Path) -> PathBuf {
    pack_files(repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .expect("a pack")
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// `check` with `--json`, whatever its exit code: (exit code, report).
fn check(kura: &Kura, read_data: bool) -> (i32, Value) {
    let mut args = vec!["check", "--json"];
    if read_data {
        args.push("--read-data");
    }
    let out = kura.run(&args);
    (out.status.code().unwrap(), last_json(&out))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_flipped_byte_is_found_named_and_healed_by_the_next_backup() {
    let Setup {
        tmp,
        kura,
        src,
        total,
        snap,
    } = setup();
    let tree = scan(&src);
    let pack = largest_pack(&kura.repo);
    let mut bytes = fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&pack, &bytes).unwrap();

    // Structure only: the pack is there with the right size; data is not read.
    let (code, report) = check(&kura, false);
    assert_eq!(code, 0, "a structural check does not read data: {report}");

    // Reading the data finds the chunk, the pack and the snapshot.
    let out = kura.run(["check", "--read-data"]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("damaged chunk "), "{text}");
    assert!(text.contains(&format!("damaged pack {}", name(&pack))), "{text}");
    assert!(text.contains(&format!("damaged snapshot {snap}")), "{text}");
    let (code, report) = check(&kura, true);
    assert_eq!(code, 1);
    assert_eq!(strings(&report["damaged_packs"]), vec![name(&pack)], "{report}");
    assert_eq!(
        strings(&report["damaged_snapshots"]),
        vec![snap.clone()],
        "{report}"
    );
    assert_eq!(
        strings(&report["damaged_chunks"]).len(),
        1,
        "one flipped byte damages one blob: {report}"
    );

    // Restoring the damaged snapshot restores what is intact and reports the rest.
    let t_damaged = tmp.path().join("damaged");
    let out = kura.restore(&snap, &t_damaged, &[]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let intact = (0..6)
        .filter(|i| {
            fs::read(restored(&t_damaged, &src).join(format!("f{i}"))).ok()
                == Some(random_bytes(100 + i, 1 << 20))
        })
        .count();
    assert_eq!(
        intact,
        5,
        "the five undamaged files are restored:\n{}",
        describe(&out)
    );

    // The next backup does not trust the damaged snapshot: it reads everything (no
    // parent) and uploads the damaged chunk again, and only that.
    let s2 = kura.backup(&[&src], &[]);
    assert_eq!(
        s2["parent"],
        Value::Null,
        "a damaged snapshot is never a parent: {s2}"
    );
    assert_eq!(s2["bytes_read"].as_u64(), Some(total), "{s2}");
    let added = s2["bytes_added"].as_u64().unwrap();
    assert!(added > 0, "the damaged chunk is uploaded again: {s2}");
    assert!(
        added < total / 2,
        "only the damaged chunk is uploaded again: {s2}"
    );
    let t_new = tmp.path().join("new");
    kura.restore_ok("latest", &t_new, &[]);
    assert_same_tree(&tree, &scan(&restored(&t_new, &src)), Compare::default());

    // The damaged chunk now has a good copy, so no snapshot is damaged any more — the old
    // one restores completely too.
    let (code, report) = check(&kura, true);
    assert_eq!(
        strings(&report["damaged_snapshots"]),
        Vec::<String>::new(),
        "{report}"
    );
    assert_eq!(
        strings(&report["damaged_chunks"]),
        Vec::<String>::new(),
        "{report}"
    );
    let t_old = tmp.path().join("old");
    kura.restore_ok(&snap, &t_old, &[]);
    assert_same_tree(&tree, &scan(&restored(&t_old, &src)), Compare::default());
    // The old pack still holds the bad copy. Every snapshot is whole, so a user expects
    // a clean check (the bad copy is dead space, for gc to reclaim), or at worst one that
    // gc makes clean.
    if code != 0 {
        let gc = kura.json(["gc"]);
        let (code, report) = check(&kura, true);
        assert_eq!(
            code, 0,
            "the vault was healed by a backup and gc ({gc}), yet `check --read-data` still fails: {report}"
        );
    }
}

#[test]
fn a_missing_pack_is_reported_and_healed_by_backup_and_gc() {
    let Setup {
        tmp,
        kura,
        src,
        total,
        snap,
    } = setup();
    let tree = scan(&src);
    let pack = largest_pack(&kura.repo);
    fs::remove_file(&pack).unwrap();

    for read_data in [false, true] {
        let (code, report) = check(&kura, read_data);
        assert_eq!(code, 1, "{report}");
        assert_eq!(strings(&report["damaged_packs"]), vec![name(&pack)], "{report}");
        assert_eq!(
            strings(&report["damaged_snapshots"]),
            vec![snap.clone()],
            "{report}"
        );
        assert!(!strings(&report["damaged_chunks"]).is_empty(), "{report}");
        let problems = strings(&report["problems"]).join("\n");
        assert!(
            problems.contains(&name(&pack)) && problems.contains("missing"),
            "{problems}"
        );
    }
    let text = assert_exit(&kura.run(["check"]), 1);
    assert!(text.contains(&format!("damaged snapshot {snap}")), "{text}");

    let s2 = kura.backup(&[&src], &[]);
    assert_eq!(s2["parent"], Value::Null, "{s2}");
    assert_eq!(s2["bytes_read"].as_u64(), Some(total), "{s2}");
    assert!(
        s2["bytes_added"].as_u64().unwrap() >= total,
        "everything is uploaded again: {s2}"
    );
    let t = tmp.path().join("t");
    kura.restore_ok("latest", &t, &[]);
    assert_same_tree(&tree, &scan(&restored(&t, &src)), Compare::default());

    // gc copes with the lost pack (it cannot read it, so must not try to repack it).
    let out = kura.run(["gc", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "gc after a lost pack:\n{}",
        describe(&out)
    );
    // The new snapshot is whole; the old one may still lack chunks no backup could
    // supply again (e.g. trees of directories that changed since).
    let (_, report) = check(&kura, true);
    let damaged = strings(&report["damaged_snapshots"]);
    assert!(
        !damaged.contains(&s2["snapshot_id"].as_str().unwrap().to_string()),
        "{report}"
    );
    assert!(damaged.iter().all(|d| *d == snap), "{report}");
    // Forgetting what is lost leaves a vault that checks clean.
    if !damaged.is_empty() {
        kura.json(["forget", &snap]);
    }
    kura.json(["gc"]);
    let (code, report) = check(&kura, true);
    assert_eq!(code, 0, "{report}");
    let t2 = tmp.path().join("t2");
    kura.restore_ok("latest", &t2, &[]);
    assert_same_tree(&tree, &scan(&restored(&t2, &src)), Compare::default());
}

#[test]
fn a_truncated_pack_is_found_by_the_structural_check() {
    let Setup {
        tmp: _tmp,
        kura,
        snap,
        ..
    } = setup();
    let pack = largest_pack(&kura.repo);
    let bytes = fs::read(&pack).unwrap();
    fs::write(&pack, &bytes[..bytes.len() - 100]).unwrap();
    let (code, report) = check(&kura, false);
    assert_eq!(code, 1, "{report}");
    assert_eq!(strings(&report["damaged_packs"]), vec![name(&pack)], "{report}");
    assert_eq!(strings(&report["damaged_snapshots"]), vec![snap], "{report}");
}
