//! Back up a tree with every kind of entry and metadata, restore it, compare everything.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::*;

/// A tree with every kind of entry Kura must keep. Returns whether xattrs were set.
fn rich_tree(src: &Path) -> bool {
    fs::create_dir_all(src).unwrap();
    let xattrs = xattrs_supported(src);
    // Regular files around the chunker's minimum size, large random and compressible.
    write(&src.join("empty"), b"");
    write(&src.join("one"), b"1");
    write_random(&src.join("min-1"), 1, 64 * 1024 - 1);
    write_random(&src.join("min"), 2, 64 * 1024);
    write_random(&src.join("big.bin"), 3, 3 * 1024 * 1024 + 123);
    write(&src.join("text.txt"), &compressible_bytes(4, 2 * 1024 * 1024));
    // Nested directories.
    write(&src.join("d1/d2/d3/deep.txt"), b"deep down\n");
    write(&src.join("d1/sibling"), b"sib");
    fs::create_dir_all(src.join("d1/empty-dir")).unwrap();
    // Symlinks: relative, absolute, dangling, to a directory.
    std::os::unix::fs::symlink("one", src.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("d1/d2", src.join("link-dir")).unwrap();
    // Hard links across directories.
    write(&src.join("hl-a"), b"hard linked content");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::hard_link(src.join("hl-a"), src.join("sub/hl-b")).unwrap();
    fs::hard_link(src.join("hl-a"), src.join("sub/deeper/hl-c")).unwrap();
    // A FIFO.
    mkfifo(&src.join("fifo"), 0o640);
    // A sparse file: 10 MiB with three data islands, ending in a hole.
    write_sparse(
        &src.join("sparse.img"),
        10 << 20,
        &[(0, 4096), (3 << 20, 100 << 10), ((7 << 20) + 123, 50 << 10)],
        5,
    );
    // Names with arbitrary bytes.
    let odd: &[&[u8]] = &[
        b"caf\xe9.txt",
        b"with space",
        b"new\nline",
        b"glob*?[x]",
        b"-dash",
        "日本語.txt".as_bytes(),
        b"back\\slash",
        b"\x01\x7f\xff",
    ];
    for (i, name) in odd.iter().enumerate() {
        write(&src.join(os(name)), format!("odd name {i}").as_bytes());
    }
    write(
        &src.join(os(b"dir-\xfe")).join("inside"),
        b"in a non-UTF-8 directory",
    );
    // Modes.
    write(&src.join("setuid"), b"#!/bin/sh\n");
    chmod(&src.join("setuid"), 0o4755);
    write(&src.join("private"), b"secret");
    chmod(&src.join("private"), 0o600);
    write(&src.join("no-perms"), b"nobody may read me");
    chmod(&src.join("no-perms"), 0o000);
    fs::create_dir_all(src.join("setgid-dir")).unwrap();
    write(&src.join("setgid-dir/f"), b"g");
    chmod(&src.join("setgid-dir"), 0o2775);
    fs::create_dir_all(src.join("sticky")).unwrap();
    chmod(&src.join("sticky"), 0o1777);
    fs::create_dir_all(src.join("closed")).unwrap();
    write(&src.join("closed/f"), b"c");
    chmod(&src.join("closed"), 0o700);
    // Owners (only root can give files away).
    if is_root() {
        write(&src.join("owned"), b"owned by someone else");
        std::os::unix::fs::chown(src.join("owned"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::chown(src.join("sticky"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::lchown(src.join("link-rel"), Some(111), Some(222)).unwrap();
    }
    // Extended attributes.
    if xattrs {
        xattr::set(src.join("one"), "user.comment", b"hello world").unwrap();
        xattr::set(src.join("one"), "user.binary", b"\x00\x01\xff").unwrap();
        xattr::set(src.join("one"), "user.empty", b"").unwrap();
        xattr::set(src.join("d1"), "user.dir", b"yes").unwrap();
        xattr::set(src.join("big.bin"), "user.big", &random_bytes(9, 2000)).unwrap();
    }
    // Times with nanoseconds on everything, directories last and deepest first.
    let all = scan(src);
    let mut paths: Vec<&Vec<u8>> = all.keys().collect();
    paths.sort_by_key(|p| (all[*p].kind == "dir", std::cmp::Reverse(p.len())));
    for (i, p) in paths.iter().enumerate() {
        let path = if p.as_slice() == b"." {
            src.to_path_buf()
        } else {
            src.join(os(p))
        };
        set_mtime(&path, 1_600_000_000 + 1000 * i as i64, 123_456_789 + i as i64);
    }
    set_mtime(src, 1_700_000_000, 987_654_321);
    xattrs
}

fn setup() -> (tempfile::TempDir, Kura, std::path::PathBuf, bool) {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let xattrs = rich_tree(&src);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    (tmp, kura, src, xattrs)
}

#[test]
fn full_round_trip_keeps_every_entry_and_its_metadata() {
    let (tmp, kura, src, xattrs) = setup();
    if !xattrs {
        eprintln!("note: the temporary file system does not take user.* xattrs; not compared");
    }
    let before = scan(&src);
    let summary = kura.backup(&[&src], &[]);
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let files = before.values().filter(|e| e.kind == "file").count() as u64;
    assert_eq!(summary["files"].as_u64(), Some(files), "{summary}");
    assert!(summary["bytes_read"].as_u64().unwrap() > 5 << 20, "{summary}");
    // The sparse file's holes are not read.
    assert!(summary["bytes_read"].as_u64().unwrap() < 9 << 20, "{summary}");

    let target = tmp.path().join("restore");
    let out = kura.restore_ok("latest", &target, &[]);
    assert!(stderr(&out).is_empty(), "restore warned:\n{}", describe(&out));
    let after = scan(&restored(&target, &src));
    assert_same_tree(
        &before,
        &after,
        Compare {
            xattrs,
            root_metadata: true,
        },
    );
    // The source was not changed by the backup.
    assert_same_tree(&before, &scan(&src), Compare::default());
}

#[test]
fn restore_of_a_sub_path_and_of_a_single_file() {
    let (tmp, kura, src, xattrs) = setup();
    let id = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cmp = Compare {
        xattrs,
        root_metadata: true,
    };

    let t1 = tmp.path().join("sub");
    let inc = src.join("d1");
    kura.restore_ok(&id, &t1, &["--include", inc.to_str().unwrap()]);
    assert_dirs_equal(&src.join("d1"), &restored(&t1, &src).join("d1"), cmp);
    let top: Vec<String> = fs::read_dir(restored(&t1, &src))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top,
        vec!["d1".to_string()],
        "only the included directory is restored"
    );

    let t2 = tmp.path().join("single");
    let inc = src.join("big.bin");
    kura.restore_ok(&id, &t2, &["--include", inc.to_str().unwrap()]);
    let files = list_files(&restored(&t2, &src));
    assert_eq!(files, vec!["big.bin".to_string()]);
    let a = scan(&src.join("big.bin"));
    let b = scan(&restored(&t2, &src).join("big.bin"));
    assert_same_tree(&a, &b, cmp);

    // A sparse file alone, and the relative form of the include path.
    let t3 = tmp.path().join("sparse");
    let rel = src.join("sparse.img");
    let rel = rel.to_str().unwrap().trim_start_matches('/');
    kura.restore_ok(&id, &t3, &["--include", rel]);
    assert_same_tree(
        &scan(&src.join("sparse.img")),
        &scan(&restored(&t3, &src).join("sparse.img")),
        cmp,
    );

    // A path that is not in the snapshot is a clear error.
    let t4 = tmp.path().join("missing");
    let out = kura.restore(&id, &t4, &["--include", src.join("no-such").to_str().unwrap()]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("not in this snapshot"), "{text}");
}

#[test]
fn restore_of_a_single_file_with_a_non_utf8_name() {
    // Names may hold any bytes, and restoring a single file is supported: both together.
    let (tmp, kura, src, _) = setup();
    kura.backup(&[&src], &[]);
    let target = tmp.path().join("t");
    let mut inc = src.as_os_str().as_bytes().to_vec();
    inc.extend_from_slice(b"/caf\xe9.txt");
    let out = kura.run([
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
        "--include".as_ref(),
        os(&inc),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        fs::read(restored(&target, &src).join(os(b"caf\xe9.txt"))).unwrap(),
        b"odd name 0"
    );
}

#[test]
fn non_empty_target_needs_overwrite_and_overwrite_replaces_what_is_in_the_way() {
    let (tmp, kura, src, xattrs) = setup();
    kura.backup(&[&src], &[]);
    let target = tmp.path().join("t");
    let dest = restored(&target, &src);
    fs::create_dir_all(&dest).unwrap();
    write(&target.join("stale.txt"), b"left alone");
    // Things in the way: a file where a directory belongs, a non-empty directory where a
    // file belongs, a symlink to a file outside the target where a file belongs, and a
    // symlink to an outside directory where a directory belongs.
    let outside = tmp.path().join("outside");
    write(&outside.join("victim"), b"must not change");
    write(&dest.join("d1"), b"a file in the way");
    write(&dest.join("big.bin/x"), b"a directory in the way");
    std::os::unix::fs::symlink(outside.join("victim"), dest.join("one")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("sub")).unwrap();
    write(&dest.join("text.txt"), b"old content");

    let out = kura.restore("latest", &target, &[]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("--overwrite"), "{text}");
    assert!(text.contains("not empty"), "{text}");
    assert_eq!(fs::read(dest.join("text.txt")).unwrap(), b"old content");

    kura.restore_ok("latest", &target, &["--overwrite"]);
    assert_same_tree(
        &scan(&src),
        &scan(&dest),
        Compare {
            xattrs,
            // The root was created by this test before the restore; its metadata is
            // restored too, but compare it like any other directory.
            root_metadata: true,
        },
    );
    assert_eq!(fs::read(target.join("stale.txt")).unwrap(), b"left alone");
    assert_eq!(list_files(&outside), vec!["victim".to_string()]);
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"must not change");

    // Restoring again over an identical tree is fine too.
    kura.restore_ok("latest", &target, &["--overwrite"]);
    assert_same_tree(
        &scan(&src),
        &scan(&dest),
        Compare {
            xattrs,
            root_metadata: true,
        },
    );
}

#[test]
fn ls_lists_entries_with_types_and_metadata() {
    let (_tmp, kura, src, _) = setup();
    kura.backup(&[&src], &[]);
    let rows = kura.json(["ls", "latest"]);
    let rows = rows.as_array().expect("array");
    let s = src.to_str().unwrap();
    let find = |rel: &str| {
        let want = format!("{s}/{rel}");
        rows.iter()
            .find(|r| r["path"] == want.as_str())
            .unwrap_or_else(|| panic!("{want} not listed"))
            .clone()
    };
    assert_eq!(find("d1/d2/d3/deep.txt")["type"], "file");
    assert_eq!(find("d1/d2/d3/deep.txt")["size"], 10);
    assert_eq!(find("d1/d2")["type"], "dir");
    assert_eq!(find("link-rel")["type"], "symlink");
    assert_eq!(find("link-rel")["link_target"], "one");
    assert_eq!(find("dangling")["link_target"], "does/not/exist");
    assert_eq!(find("fifo")["type"], "fifo");
    assert_eq!(find("fifo")["mode"], "640");
    assert_eq!(find("setuid")["mode"], "4755");
    assert_eq!(find("sparse.img")["size"], 10 << 20);
    assert_eq!(find("glob*?[x]")["type"], "file");
    // Every entry of the source is listed once (plus the source's ancestors).
    let tree = scan(&src);
    let under: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with(&format!("{s}/")))
        .collect();
    assert_eq!(under.len(), tree.len() - 1, "one row per entry below the source");

    // A sub-path, non-recursive.
    let rows = kura.json(["ls", "latest", &format!("{s}/d1"), "--no-recurse"]);
    let mut paths: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    let want: Vec<String> = ["", "/d2", "/empty-dir", "/sibling"]
        .iter()
        .map(|x| format!("{s}/d1{x}"))
        .collect();
    assert_eq!(paths, want);

    // Human output names the entries too.
    let out = kura.ok(["ls", "latest", &format!("{s}/d1/d2/d3")]);
    assert!(stdout(&out).contains("deep.txt"), "{}", describe(&out));
}

#[test]
fn snapshot_prefixes_latest_and_unknown_ids() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write(&src.join("f"), b"version 1");
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let first = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    write(&src.join("f"), b"version 2");
    let second = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first.len(), 64);

    let t1 = tmp.path().join("t1");
    kura.restore_ok(&first[..10], &t1, &[]);
    assert_eq!(fs::read(restored(&t1, &src).join("f")).unwrap(), b"version 1");
    let t2 = tmp.path().join("t2");
    kura.restore_ok("latest", &t2, &[]);
    assert_eq!(fs::read(restored(&t2, &src).join("f")).unwrap(), b"version 2");
    let t3 = tmp.path().join("t3");
    kura.restore_ok(&second.to_uppercase(), &t3, &[]);
    assert_eq!(fs::read(restored(&t3, &src).join("f")).unwrap(), b"version 2");

    for bad in [
        "zz",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let t = tmp.path().join("bad");
        let out = kura.restore(bad, &t, &[]);
        let text = assert_exit(&out, 1);
        assert!(text.contains("no snapshot matches"), "{text}");
        assert!(!t.exists(), "a failed restore must not create the target");
        let out = kura.run(["ls", bad]);
        assert!(assert_exit(&out, 1).contains("no snapshot matches"));
    }

    // An ambiguous prefix: make snapshots until two share their first digit.
    let mut ids = vec![first, second];
    let shared = loop {
        if let Some(c) = ids
            .iter()
            .map(|i| &i[..1])
            .find(|c| ids.iter().filter(|i| i.starts_with(*c)).count() > 1)
        {
            break c.to_string();
        }
        write(&src.join("f"), format!("version {}", ids.len() + 1).as_bytes());
        ids.push(
            kura.backup(&[&src], &[])["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert!(ids.len() <= 17);
    };
    let out = kura.run(["ls", &shared]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("ambiguous"), "{text}");
}

#[test]
fn the_comparison_itself_notices_differences() {
    // Guards the helper: a comparison that always passed would make every test above moot.
    let tmp = tempdir();
    let a = tmp.path().join("a");
    rich_tree(&a);
    let base = scan(&a);
    type Mutation = Box<dyn Fn(&Path)>;
    let mutate: Vec<Mutation> = vec![
        Box::new(|p| set_mtime(&p.join("one"), 1_600_000_000, 1)),
        Box::new(|p| chmod(&p.join("private"), 0o644)),
        Box::new(|p| {
            fs::remove_file(p.join("sub/hl-b")).unwrap();
            write(&p.join("sub/hl-b"), b"hard linked content");
        }),
        Box::new(|p| {
            fs::remove_file(p.join("link-rel")).unwrap();
            std::os::unix::fs::symlink("min", p.join("link-rel")).unwrap();
        }),
        Box::new(|p| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(p.join("sparse.img"))
                .unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, &vec![7u8; 8 << 20], 1 << 20).unwrap();
        }),
        Box::new(|p| {
            let m = fs::symlink_metadata(p.join("big.bin")).unwrap();
            let mut data = fs::read(p.join("big.bin")).unwrap();
            data[1000] ^= 1;
            fs::write(p.join("big.bin"), data).unwrap();
            use std::os::unix::fs::MetadataExt;
            set_mtime(&p.join("big.bin"), m.mtime(), m.mtime_nsec());
        }),
    ];
    for (i, m) in mutate.iter().enumerate() {
        let b = tmp.path().join(format!("b{i}"));
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&a)
            .arg(&b)
            .status()
            .unwrap();
        assert!(status.success());
        // `cp -a` keeps everything that matters here, so the copy compares equal first.
        let mut copy = scan(&b);
        copy.get_mut(b".".as_slice()).unwrap().mtime_ns = base[b".".as_slice()].mtime_ns;
        assert_same_tree(
            &base,
            &copy,
            Compare {
                xattrs: false,
                root_metadata: false,
            },
        );
        m(&b);
        let changed = scan(&b);
        let r = std::panic::catch_unwind(|| {
            assert_same_tree(
                &base,
                &changed,
                Compare {
                    xattrs: false,
                    root_metadata: false,
                },
            )
        });
        assert!(r.is_err(), "mutation {i} went unnoticed");
    }
}
