//! Crash safety: backups killed with SIGKILL at several points leave a vault that passes
//! `check`, with no snapshot, and the next backup resumes; a full disk gives a clear
//! error and a consistent vault.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Complete pack objects in the vault (temporary upload files excluded).
fn packs(repo: &Path) -> usize {
    pack_files(repo)
        .iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .count()
}

enum Kill {
    /// After this long.
    After(Duration),
    /// Once this many new packs have appeared.
    NewPacks(usize),
}

/// Starts a backup and kills it with SIGKILL at `when`. Returns its summary if it
/// finished first.
fn killed_backup(kura: &Kura, src: &Path, when: &Kill) -> Option<serde_json::Value> {
    let before = packs(&kura.repo);
    let mut child = kura
        .command(["backup", src.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "the backup failed on its own:\n{}",
                describe(&out)
            );
            return Some(last_json(&out));
        }
        let due = match when {
            Kill::After(d) => start.elapsed() >= *d,
            Kill::NewPacks(n) => packs(&kura.repo) >= before + n,
        };
        if due {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return None;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "backup hangs");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killed_backups_leave_a_sound_vault_and_the_next_backup_resumes() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let mut total = 0u64;
    for i in 0..15u64 {
        write_random(&src.join(format!("big/{i:02}.bin")), 1000 + i, 10 << 20);
        total += 10 << 20;
    }
    total += generate_tree(&src.join("small"), 5, 60, 20 << 10);
    let tree = scan(&src);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();

    // About ten packs in all: the kills below use up about half of them.
    let points = [
        Kill::After(Duration::from_millis(30)),
        Kill::NewPacks(1),
        Kill::After(Duration::from_millis(150)),
        Kill::NewPacks(2),
        Kill::NewPacks(1),
    ];
    let mut kills = 0;
    let mut finished = None;
    let mut stored = 0;
    for (i, when) in points.iter().enumerate() {
        stored = kura.stats()["stored_bytes"].as_u64().unwrap();
        if let Some(summary) = killed_backup(&kura, &src, when) {
            eprintln!("note: backup {i} finished before it could be killed");
            finished = Some(summary);
            break;
        }
        kills += 1;
        eprintln!("kill {i}: {} packs stored", packs(&kura.repo));
        kura.ok(["check"]);
        assert!(
            kura.snapshots().is_empty(),
            "a killed backup left a snapshot (kill {i})"
        );
    }
    assert!(kills >= 3, "only {kills} backups could be killed");
    let s = match finished {
        Some(s) => s,
        None => {
            kura.ok(["check", "--read-data"]);
            stored = kura.stats()["stored_bytes"].as_u64().unwrap();
            kura.backup(&[&src], &[])
        }
    };
    assert!(
        stored > total / 4,
        "the killed runs stored some packs: {stored} of {total}"
    );
    assert_eq!(s["bytes_read"].as_u64(), Some(total), "{s}");
    let added = s["bytes_added"].as_u64().unwrap();
    // Resume: what the killed runs stored is not uploaded again.
    let overhead = total / 50 + (1 << 20);
    assert!(
        added + stored <= total + overhead,
        "resume: the final run added {added} on top of {stored} already stored, for {total} of data"
    );
    let after = kura.stats()["stored_bytes"].as_u64().unwrap();
    assert!(
        after <= total + overhead,
        "nothing is stored twice: {after} for {total}"
    );
    assert_eq!(kura.snapshots().len(), 1);
    kura.ok(["check", "--read-data"]);

    kura.json(["gc"]);
    kura.ok(["check", "--read-data"]);
    let target = tmp.path().join("t");
    kura.restore_ok("latest", &target, &[]);
    assert_same_tree(&tree, &scan(&restored(&target, &src)), Compare::default());
}

#[test]
fn a_full_disk_gives_a_clear_error_and_a_consistent_vault() {
    let tmp = tempdir();
    let Some(_mount) = mount_tmpfs(&tmp.path().join("small-disk"), "20m") else {
        return;
    };
    let src = tmp.path().join("src");
    for i in 0..5u64 {
        write_random(&src.join(format!("{i}.bin")), 70 + i, 10 << 20);
    }
    let kura = Kura::new(tmp.path().join("small-disk/vault"));
    kura.init();
    let out = kura.run(["backup", src.to_str().unwrap()]);
    let text = assert_exit(&out, 1);
    assert!(
        text.contains("no space left on the vault's file system"),
        "{text}"
    );
    assert!(kura.snapshots().is_empty());
    kura.ok(["check"]);

    // gc gives the space of the failed run back, and a backup that fits then works.
    kura.json(["gc"]);
    let small = tmp.path().join("small-src");
    write_random(&small.join("f"), 1, 2 << 20);
    kura.backup(&[&small], &[]);
    kura.ok(["check", "--read-data"]);
    let target = tmp.path().join("t");
    kura.restore_ok("latest", &target, &[]);
    assert_dirs_equal(&small, &restored(&target, &small), Compare::default());
}
