//! Incremental backups (unchanged files are not read), mutation, old snapshots stay
//! intact, and excludes.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;

#[test]
fn unchanged_files_are_not_read_and_each_snapshot_restores_its_own_tree() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let total = generate_tree(&src, 42, 40, 300 << 10);
    write_random(&src.join("large.bin"), 7, 4 << 20);
    let total = total + (4 << 20);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();

    let old_tree = scan(&src);
    let s1 = kura.backup(&[&src], &[]);
    assert_eq!(s1["parent"], serde_json::Value::Null);
    assert_eq!(s1["bytes_read"].as_u64(), Some(total), "{s1}");

    // Nothing changed: nothing is read, and the first snapshot is the parent.
    let s2 = kura.backup(&[&src], &[]);
    assert_eq!(s2["bytes_read"].as_u64(), Some(0), "{s2}");
    assert_eq!(s2["parent"], s1["snapshot_id"], "{s2}");
    assert_eq!(s2["files"], s1["files"]);
    assert_eq!(s2["bytes"].as_u64(), Some(total));
    assert!(
        s2["bytes_added"].as_u64().unwrap() < 64 << 10,
        "an unchanged tree adds (almost) nothing: {s2}"
    );

    // Mutate: change 64 KiB in the middle of the large file, append to a small file, add
    // one file, delete one.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("large.bin"))
        .unwrap();
    f.write_all_at(&random_bytes(99, 64 << 10), 2 << 20).unwrap();
    drop(f);
    let small = src.join("f001.bin");
    let small = if small.exists() {
        small
    } else {
        // The generator may have put it in a subdirectory.
        find_file(&src, "f001.bin")
    };
    let mut data = fs::read(&small).unwrap();
    data.extend_from_slice(b"appended line\n");
    fs::write(&small, &data).unwrap();
    write_random(&src.join("d0/new-file.bin"), 1234, 100 << 10);
    let deleted = find_file(&src, "f002.bin");
    fs::remove_file(&deleted).unwrap();
    let new_tree = scan(&src);

    let s3 = kura.backup(&[&src], &[]);
    assert_eq!(s3["parent"], s2["snapshot_id"], "{s3}");
    let expected_read = (4 << 20) + data.len() as u64 + (100 << 10);
    assert_eq!(
        s3["bytes_read"].as_u64(),
        Some(expected_read),
        "only the changed and new files are read: {s3}"
    );
    let added = s3["bytes_added"].as_u64().unwrap();
    assert!(added > 100 << 10, "the new data is stored: {s3}");
    assert!(
        added < total / 4,
        "a small change adds little (chunk-level dedup): {added} of {total}: {s3}"
    );

    // Each snapshot restores exactly its own tree.
    let t_new = tmp.path().join("new");
    kura.restore_ok("latest", &t_new, &[]);
    assert_same_tree(&new_tree, &scan(&restored(&t_new, &src)), Compare::default());
    let t_old = tmp.path().join("old");
    kura.restore_ok(s1["snapshot_id"].as_str().unwrap(), &t_old, &[]);
    assert_same_tree(&old_tree, &scan(&restored(&t_old, &src)), Compare::default());

    // --force reads everything again but stores nothing new.
    let s4 = kura.backup(&[&src], &["--force"]);
    assert_eq!(s4["parent"], serde_json::Value::Null, "{s4}");
    assert_eq!(s4["bytes_read"], s4["bytes"], "{s4}");
    assert!(s4["bytes_added"].as_u64().unwrap() < 64 << 10, "{s4}");
}

#[test]
fn a_file_changed_in_place_with_the_same_size_and_mtime_is_still_read() {
    // The ctime and inode are part of the "unchanged" test: restoring the mtime after a
    // same-size rewrite (as some tools do) must not hide the change.
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_random(&src.join("f"), 1, 100_000);
    set_mtime(&src.join("f"), 1_650_000_000, 5);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    kura.backup(&[&src], &[]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_random(&src.join("f"), 2, 100_000);
    set_mtime(&src.join("f"), 1_650_000_000, 5);
    let s = kura.backup(&[&src], &[]);
    assert_eq!(s["bytes_read"].as_u64(), Some(100_000), "{s}");
    let t = tmp.path().join("t");
    kura.restore_ok("latest", &t, &[]);
    assert_eq!(
        fs::read(restored(&t, &src).join("f")).unwrap(),
        random_bytes(2, 100_000)
    );
}

fn find_file(root: &Path, name: &str) -> std::path::PathBuf {
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == name {
            return p;
        }
        if p.is_dir() {
            let found = find_file(&p, name);
            if found.exists() {
                return found;
            }
        }
    }
    root.join("not-found")
}

/// Paths in the latest snapshot below `src`, relative.
fn snapshot_paths(kura: &Kura, src: &Path) -> BTreeSet<String> {
    let prefix = format!("{}/", src.display());
    kura.json(["ls", "latest"])
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .strip_prefix(&prefix)
                .map(String::from)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn excludes_by_glob_by_absolute_path_and_by_kuraignore() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    for f in [
        "a.log",
        "keep.txt",
        "top.tmp",
        "sub/b.log",
        "sub/c.txt",
        "cache/x",
        "cache/deep/y",
        "cachet/z",
        "proj/x.tmp",
        "proj/main.rs",
        "proj/deep/y.tmp",
        "proj/deep/ok.rs",
        "proj/build/out/artifact",
        "proj/build/keep",
        "proj/other/build/out/w",
    ] {
        write(&src.join(f), f.as_bytes());
    }
    write(&src.join("proj/.kuraignore"), b"# comment\n\n*.tmp\nbuild/out\n");
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let cache = src.join("cache");
    let s = kura.backup(
        &[&src],
        &["--exclude", "*.log", "--exclude", cache.to_str().unwrap()],
    );
    assert_eq!(s["errors"], serde_json::json!([]));
    let got = snapshot_paths(&kura, &src);
    let want = set(&[
        "keep.txt",
        "top.tmp",
        "sub",
        "sub/c.txt",
        "cachet",
        "cachet/z",
        "proj",
        "proj/.kuraignore",
        "proj/main.rs",
        "proj/deep",
        "proj/deep/ok.rs",
        "proj/build",
        "proj/build/keep",
        "proj/other",
        "proj/other/build",
        "proj/other/build/out",
        "proj/other/build/out/w",
    ]);
    assert_eq!(
        got,
        want,
        "excluded: *.log anywhere, {}, and per .kuraignore",
        cache.display()
    );

    // A path named on the command line is backed up even if a glob matches it.
    let log = src.join("a.log");
    kura.backup(&[&log], &["--exclude", "*.log", "--source", "just-the-log"]);
    let rows = kura.json(["ls", "latest"]);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == log.to_str().unwrap()),
        "{rows}"
    );
}
