//! Encrypted vaults: recovery key, wrong passphrase, key slots, and nothing of the
//! source readable in the stored bytes.

mod common;

use std::fs;

use common::*;

const NAME_MARKER: &str = "zebracornNAMEmarker";
const CONTENT_MARKER: &[u8] = b"zebracornCONTENTmarker";
const DIR_MARKER: &str = "zebracornDIRmarker";

/// A source whose file names and contents carry markers. The content marker sits inside
/// random bytes, so compression cannot hide it: only encryption can.
fn marked_source(root: &std::path::Path) -> std::path::PathBuf {
    let src = root.join("src");
    let mut data = random_bytes(1, 100_000);
    data.extend_from_slice(CONTENT_MARKER);
    data.extend_from_slice(&random_bytes(2, 100_000));
    write(&src.join(format!("{NAME_MARKER}.txt")), &data);
    write(&src.join("small.txt"), CONTENT_MARKER);
    write(&src.join(format!("dir-{NAME_MARKER}/inner")), b"x");
    std::os::unix::fs::symlink(format!("target-{NAME_MARKER}"), src.join("link")).unwrap();
    src
}

#[test]
fn encrypted_vault_keys_passphrases_and_recovery() {
    let tmp = tempdir();
    let src = marked_source(tmp.path());
    let vault = Kura::new(tmp.path().join("vault")).with_password("first passphrase");
    let init = vault.json(["init", "--encrypt"]);
    assert_eq!(init["encrypted"], true);
    let recovery = init["recovery_key"].as_str().expect("a recovery key").to_string();
    assert!(recovery.len() >= 20, "{recovery}");

    let s = vault.backup(&[&src], &[]);
    let id = s["snapshot_id"].as_str().unwrap().to_string();

    // Wrong passphrase: exit 1 with a clear message, for reading and for writing.
    let wrong = vault.with_password("not the passphrase");
    for args in [vec!["snapshots"], vec!["backup", src.to_str().unwrap()]] {
        let text = assert_exit(&wrong.run(&args), 1);
        assert!(text.contains("wrong passphrase"), "{text}");
    }
    // No passphrase at all (stdin is not a terminal).
    let mut none = vault.clone();
    none.password = None;
    let text = assert_exit(&none.run(["snapshots"]), 1);
    assert!(text.contains("KURA_PASSWORD"), "{text}");

    // The recovery key opens the vault; the restore is exact.
    let by_recovery = vault.with_password(&recovery);
    let t = tmp.path().join("t-recovery");
    by_recovery.restore_ok(&id, &t, &[]);
    assert_dirs_equal(&src, &restored(&t, &src), Compare::default());

    // A second passphrase.
    let out = vault
        .with_env("KURA_NEW_PASSWORD", "second passphrase")
        .json(["key", "add", "--label", "laptop"]);
    let added = out["id"].as_str().unwrap().to_string();
    let second = vault.with_password("second passphrase");
    let slots = second.json(["key", "list"]);
    let slots = slots.as_array().unwrap();
    assert_eq!(slots.len(), 3, "{slots:?}");
    let kinds: Vec<&str> = slots.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "passphrase").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "recovery").count(), 1, "{kinds:?}");
    assert!(
        slots
            .iter()
            .any(|s| s["id"] == added.as_str() && s["label"] == "laptop")
    );

    // Remove the first passphrase's slot: it stops working, the second still works.
    let first_slot = slots
        .iter()
        .find(|s| s["kind"] == "passphrase" && s["id"] != added.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    second.json(["key", "remove", &first_slot]);
    let text = assert_exit(&vault.run(["snapshots"]), 1);
    assert!(text.contains("wrong passphrase"), "{text}");
    assert_eq!(second.json(["key", "list"]).as_array().unwrap().len(), 2);
    let t2 = tmp.path().join("t-second");
    second.restore_ok("latest", &t2, &[]);
    assert_dirs_equal(&src, &restored(&t2, &src), Compare::default());
    let text = assert_exit(&second.run(["key", "remove", "no-such-slot"]), 1);
    assert!(text.contains("no-such-slot"), "{text}");

    // Every stored byte verifies with the key.
    let report = second.json(["check", "--read-data"]);
    assert!(report["blobs_checked"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["damaged_chunks"], serde_json::json!([]));
}

#[test]
fn no_plaintext_name_or_content_in_an_encrypted_vault() {
    let tmp = tempdir();
    let src = marked_source(tmp.path());

    // Control: the markers are findable in an unencrypted vault, so the search works.
    let plain = Kura::new(tmp.path().join("plain"));
    plain.init();
    plain.backup(&[&src], &[]);
    assert!(
        !files_containing(&plain.repo, CONTENT_MARKER).is_empty(),
        "control: the content marker should be visible in an unencrypted vault"
    );

    let vault = Kura::new(tmp.path().join("vault")).with_password("pw");
    vault.json(["init", "--encrypt"]);
    vault.backup(&[&src], &["--tag", "nightly"]);
    vault.ok(["check", "--read-data"]);
    for marker in [NAME_MARKER.as_bytes(), CONTENT_MARKER] {
        let hits = files_containing(&vault.repo, marker);
        assert!(
            hits.is_empty(),
            "{:?} readable in {hits:?}",
            String::from_utf8_lossy(marker)
        );
    }
    // Tags are declared server-readable; they are found (proves the search reads the
    // catalog and the manifests).
    assert!(!files_containing(&vault.repo, b"nightly").is_empty());
}

#[test]
fn the_backed_up_path_is_not_readable_in_an_encrypted_vault() {
    // The manifest body (paths, root) is sealed so only key holders read it; the default
    // source name must not repeat those paths in the clear.
    let tmp = tempdir();
    let src = tmp.path().join(DIR_MARKER);
    write(&src.join("f"), b"data");
    let vault = Kura::new(tmp.path().join("vault")).with_password("pw");
    vault.json(["init", "--encrypt"]);
    vault.backup(&[&src], &[]);
    let hits = files_containing(&vault.repo, DIR_MARKER.as_bytes());
    assert!(hits.is_empty(), "the backed-up path is readable in {hits:?}");
    // The key holder still sees the path.
    let snaps = vault.snapshots();
    assert_eq!(snaps[0]["paths"][0], src.to_str().unwrap());
    let _ = fs::remove_dir_all(&src);
}
