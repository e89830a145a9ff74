//! `forget` policies on a fixed calendar (restic's semantics), and `--prune`/`gc` freeing
//! space while keeping everything the remaining snapshots need.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::Value;

/// Snapshot letter → time (UTC). ISO week 2026-W01 runs from 2025-12-29 to 2026-01-04.
const CALENDAR: &[(&str, &str)] = &[
    ("A", "2025-11-15T10:00:00Z"),
    ("B", "2025-12-10T10:00:00Z"),
    ("C", "2025-12-31T22:00:00Z"),
    ("D", "2026-01-01T10:00:00Z"),
    ("E", "2026-01-01T18:00:00Z"),
    ("F", "2026-01-02T09:00:00Z"),
    ("G", "2026-01-03T08:00:00Z"),
    ("H", "2026-01-03T20:00:00Z"),
];

struct Calendar {
    _tmp: tempfile::TempDir,
    kura: Kura,
    /// Letter → snapshot id.
    ids: BTreeMap<String, String>,
    /// A snapshot of another source, older than all.
    other: String,
}

fn calendar() -> Calendar {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let mut ids = BTreeMap::new();
    // Out of order on purpose: retention goes by snapshot time, not by creation order.
    let mut order: Vec<usize> = (0..CALENDAR.len()).collect();
    order.reverse();
    order.swap(1, 5);
    for i in order {
        let (letter, time) = CALENDAR[i];
        write(&src.join("f"), format!("state {letter}").as_bytes());
        let s = kura.backup(&[&src], &["--time", time]);
        ids.insert(letter.to_string(), s["snapshot_id"].as_str().unwrap().to_string());
    }
    let other = kura.backup(&[&src], &["--time", "2025-01-01T00:00:00Z", "--source", "other"]);
    let snaps = kura.snapshots();
    assert_eq!(snaps.len(), CALENDAR.len() + 1);
    // The recorded times are the given ones.
    for (letter, time) in CALENDAR {
        let s = snaps.iter().find(|s| s["id"] == ids[*letter].as_str()).unwrap();
        assert_eq!(s["time"], *time, "{s}");
    }
    Calendar {
        _tmp: tmp,
        kura,
        ids,
        other: other["snapshot_id"].as_str().unwrap().to_string(),
    }
}

fn letters(cal: &Calendar, ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter()
        .filter(|id| *id != cal.other)
        .map(|id| {
            cal.ids
                .iter()
                .find(|(_, v)| **v == id)
                .map(|(k, _)| k.clone())
                .unwrap_or_else(|| panic!("unknown id {id}"))
        })
        .collect()
}

fn set(s: &str) -> BTreeSet<String> {
    s.chars().map(|c| c.to_string()).collect()
}

/// Runs a dry-run forget with `rules`; returns the letters kept.
fn dry_run(cal: &Calendar, kura: &Kura, rules: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["forget", "--dry-run"];
    args.extend(rules);
    let report = kura.json(&args);
    assert_eq!(report["dry_run"], true);
    let forgotten: Vec<String> = report["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        !forgotten.contains(&cal.other),
        "the other source is judged on its own: {report}"
    );
    let decisions = report["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), CALENDAR.len() + 1, "{report}");
    let kept: BTreeSet<String> = letters(
        cal,
        decisions
            .iter()
            .filter(|d| d["keep"] == true)
            .map(|d| d["id"].as_str().unwrap().to_string()),
    );
    let gone = letters(cal, forgotten);
    assert!(kept.is_disjoint(&gone));
    assert_eq!(kept.len() + gone.len(), CALENDAR.len(), "{report}");
    kept
}

#[test]
fn forget_policies_on_a_fixed_calendar() {
    let cal = calendar();
    let utc = &cal.kura;
    assert_eq!(
        dry_run(&cal, utc, &["--keep-daily", "2", "--keep-monthly", "2"]),
        set("CFH")
    );
    assert_eq!(dry_run(&cal, utc, &["--keep-last", "3"]), set("FGH"));
    assert_eq!(dry_run(&cal, utc, &["--keep-hourly", "3"]), set("FGH"));
    assert_eq!(dry_run(&cal, utc, &["--keep-daily", "4"]), set("CEFH"));
    // 2025-12-31 lies in ISO week 2026-W01 with the January snapshots.
    assert_eq!(dry_run(&cal, utc, &["--keep-weekly", "2"]), set("BH"));
    assert_eq!(dry_run(&cal, utc, &["--keep-monthly", "5"]), set("ACH"));
    assert_eq!(dry_run(&cal, utc, &["--keep-yearly", "5"]), set("CH"));
    assert_eq!(
        dry_run(&cal, utc, &["--keep-last", "1", "--keep-yearly", "2"]),
        set("CH")
    );
    // Calendar buckets follow the local time zone: in Tokyo (UTC+9) C falls on
    // 2026-01-01 and H on 2026-01-04.
    if std::path::Path::new("/usr/share/zoneinfo/Asia/Tokyo").exists() {
        let tokyo = cal.kura.with_env("TZ", "Asia/Tokyo");
        assert_eq!(
            dry_run(&cal, &tokyo, &["--keep-daily", "2", "--keep-monthly", "2"]),
            set("BGH")
        );
    } else {
        eprintln!("note: no time zone database; the TZ part is skipped");
    }
    // Reasons are reported per snapshot.
    let report = utc.json(["forget", "--dry-run", "--keep-daily", "2", "--keep-monthly", "2"]);
    let h = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == cal.ids["H"].as_str())
        .unwrap()
        .clone();
    assert_eq!(h["reasons"], serde_json::json!(["daily", "monthly"]), "{h}");

    // A dry run forgets nothing.
    assert_eq!(cal.kura.snapshots().len(), CALENDAR.len() + 1);

    // The real run forgets exactly what the dry run said.
    let report = utc.json(["forget", "--keep-daily", "2", "--keep-monthly", "2"]);
    assert_eq!(report["dry_run"], false);
    let gone = letters(
        &cal,
        report["forgotten"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string()),
    );
    assert_eq!(gone, set("ABDEG"));
    let left: BTreeSet<String> = cal.kura.snapshot_ids().into_iter().collect();
    let mut want: BTreeSet<String> = ["C", "F", "H"].iter().map(|l| cal.ids[*l].clone()).collect();
    want.insert(cal.other.clone());
    assert_eq!(left, want);

    // Forgetting by id prefix; a forgotten snapshot is gone for restore and ls.
    let f = cal.ids["F"].clone();
    utc.json(["forget", &f[..12]]);
    let text = assert_exit(&utc.run(["ls", &f[..12]]), 1);
    assert!(text.contains("no snapshot matches"), "{text}");
    assert_eq!(cal.kura.snapshots().len(), 3);
    cal.kura.ok(["check", "--read-data"]);
}

fn replaced_tree(src: &std::path::Path, round: u64) {
    for i in 0..4u64 {
        write_random(&src.join(format!("changing-{i}")), 1000 * round + i, 3 << 19);
    }
}

#[test]
fn prune_frees_space_and_keeps_what_remaining_snapshots_need() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    // Two MiB stay the same in every snapshot; 6 MiB are replaced each time.
    write_random(&src.join("stable.bin"), 7, 2 << 20);
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let mut ids = Vec::new();
    for round in 1..=3 {
        replaced_tree(&src, round);
        ids.push(
            kura.backup(&[&src], &[])["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let tree = scan(&src);
    let full: Value = kura.stats();
    let stored_full = full["stored_bytes"].as_u64().unwrap();
    assert!(stored_full >= 20 << 20, "{full}");

    // Forget the middle one; a dry-run gc reports without deleting.
    kura.json(["forget", &ids[1][..16]]);
    let dry = kura.json(["gc", "--dry-run"]);
    assert!(dry["chunks_deleted"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(
        kura.stats()["stored_bytes"].as_u64(),
        Some(stored_full),
        "a dry run frees nothing"
    );

    // Keep only the newest, with --prune.
    let report = kura.json(["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(report["forgotten"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        report["gc"]["bytes_freed"].as_u64().unwrap() > 10 << 20,
        "{report}"
    );
    let after = kura.stats();
    let stored = after["stored_bytes"].as_u64().unwrap();
    let needed: u64 = (2 << 20) + 4 * (3 << 19);
    assert!(stored >= needed, "data still needed was freed: {after}");
    assert!(
        stored <= needed + needed / 20 + (512 << 10),
        "space of forgotten snapshots was not freed: {after} (needed {needed})"
    );
    assert_eq!(after["snapshots"].as_u64(), Some(1), "{after}");

    // What is left restores, and every byte checks.
    kura.ok(["check", "--read-data"]);
    let t = tmp.path().join("t");
    kura.restore_ok("latest", &t, &[]);
    assert_same_tree(&tree, &scan(&restored(&t, &src)), Compare::default());
    assert_eq!(kura.snapshot_ids(), vec![ids[2].clone()]);

    // The next backup still finds its parent and adds nothing.
    let s = kura.backup(&[&src], &[]);
    assert_eq!(s["parent"], ids[2].as_str());
    assert_eq!(s["bytes_read"].as_u64(), Some(0), "{s}");
}
