//! Bad input gets a clear error, the right exit code, and loses nothing.

mod common;

use std::fs;
use std::path::Path;

use common::*;

#[test]
fn missing_vault_says_where_and_how_to_create_one() {
    let tmp = tempdir();
    let repo = tmp.path().join("no-vault-here");
    let kura = Kura::new(&repo);
    let src = tmp.path().join("src");
    write(&src.join("f"), b"x");
    for args in [
        vec!["snapshots".to_string()],
        vec!["backup".to_string(), src.display().to_string()],
        vec![
            "restore".to_string(),
            "latest".to_string(),
            "--target".to_string(),
            tmp.path().join("t").display().to_string(),
        ],
        vec!["check".to_string()],
        vec!["gc".to_string()],
        vec!["stats".to_string()],
    ] {
        let text = assert_exit(&kura.run(&args), 1);
        assert!(text.contains("no vault at"), "{args:?}: {text}");
        assert!(text.contains(repo.to_str().unwrap()), "{args:?}: {text}");
        assert!(text.contains("kura init"), "{args:?}: {text}");
        assert!(!repo.exists(), "{args:?} created the vault directory");
        assert!(!tmp.path().join("t").exists());
    }
    // With --json the error is also the last line of stdout, as JSON.
    let out = kura.run(["snapshots", "--json"]);
    assert_exit(&out, 1);
    let j = last_json(&out);
    assert!(j["error"].as_str().unwrap().contains("no vault at"), "{j}");

    // No vault given at all.
    let out = kura
        .command(["snapshots"])
        .env_remove("KURA_REPO")
        .output()
        .unwrap();
    let text = assert_exit(&out, 1);
    assert!(text.contains("--repo"), "{text}");
}

#[test]
fn init_twice_is_refused_and_the_vault_survives() {
    let tmp = tempdir();
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let src = tmp.path().join("src");
    write(&src.join("f"), b"precious");
    kura.backup(&[&src], &[]);
    let config = fs::read(kura.repo.join("objects/config")).unwrap();
    for args in [vec!["init"], vec!["init", "--encrypt"]] {
        let text = assert_exit(&kura.with_password("pw").run(&args), 1);
        assert!(text.contains("already exists"), "{text}");
    }
    assert_eq!(fs::read(kura.repo.join("objects/config")).unwrap(), config);
    assert_eq!(kura.snapshots().len(), 1);
    kura.ok(["check", "--read-data"]);

    // A directory holding other files keeps them, whatever init decides.
    let other = tmp.path().join("other");
    write(&other.join("my-file"), b"mine");
    let _ = Kura::new(&other).run(["init"]);
    assert_eq!(fs::read(other.join("my-file")).unwrap(), b"mine");
}

#[test]
fn missing_source_path_is_an_error_and_creates_no_snapshot() {
    let tmp = tempdir();
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let src = tmp.path().join("src");
    write(&src.join("f"), b"x");
    let missing = tmp.path().join("does-not-exist");
    for paths in [vec![&missing], vec![&src, &missing]] {
        let mut args = vec!["backup".to_string()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let text = assert_exit(&kura.run(&args), 1);
        assert!(text.contains(missing.to_str().unwrap()), "{text}");
        assert!(text.contains("No such file"), "{text}");
    }
    assert!(kura.snapshots().is_empty());
    assert!(
        pack_files(&kura.repo).is_empty(),
        "a refused backup uploads nothing"
    );

    let text = assert_exit(
        &kura.run(["backup", src.to_str().unwrap(), "--exclude", "a[b"]),
        1,
    );
    assert!(text.contains("bad exclude pattern"), "{text}");
    assert!(kura.snapshots().is_empty());
    kura.ok(["check"]);
}

/// Prepares a directory the (possibly unprivileged) child may write to.
fn writable_dir(path: &Path, uid: Option<u32>) {
    fs::create_dir_all(path).unwrap();
    if let Some(uid) = uid {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    }
}

/// A vault the child can write, and a source with an unreadable file and directory.
/// Root reads everything, so as root the child runs as `nobody` (65534) instead: then
/// mode 000 really makes an entry unreadable, as it does for any ordinary user.
fn unreadable_setup(tmp: &Path) -> (Kura, std::path::PathBuf, std::path::PathBuf) {
    let uid = is_root().then_some(65534u32);
    let work = tmp.join("work");
    writable_dir(&work, uid);
    let mut kura = Kura::new(work.join("vault"));
    kura.user = uid.map(|u| (u, u));
    kura.init();
    let src = tmp.join("src");
    write(&src.join("ok.txt"), b"readable");
    write(&src.join("secret"), b"unreadable");
    chmod(&src.join("secret"), 0o000);
    write(&src.join("locked/inside"), b"unreachable");
    chmod(&src.join("locked"), 0o000);
    write(&src.join("z-last.txt"), b"also readable");
    (kura, work, src)
}

#[test]
fn an_unreadable_directory_is_reported_once() {
    // One line per unreadable entry: not a second one about its `.kuraignore`.
    let tmp = tempdir();
    let (kura, _work, src) = unreadable_setup(tmp.path());
    let out = kura.run(["backup", src.to_str().unwrap(), "--json"]);
    assert_exit(&out, 3);
    let errors = last_json(&out)["errors"].clone();
    let errors = errors.as_array().unwrap();
    assert_eq!(
        errors.len(),
        2,
        "one error for `secret`, one for `locked`: {errors:?}"
    );
}

#[test]
fn unreadable_files_are_listed_and_give_exit_code_3() {
    let tmp = tempdir();
    let (kura, work, src) = unreadable_setup(tmp.path());
    let out = kura.run(["backup", src.to_str().unwrap(), "--json"]);
    let text = assert_exit(&out, 3);
    let summary = last_json(&out);
    let errors: Vec<String> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("secret") && e.contains("Permission denied")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("locked") && e.contains("Permission denied")),
        "{errors:?}"
    );
    assert!(
        text.contains("secret") && text.contains("could not be read"),
        "{text}"
    );

    // The snapshot exists and holds everything that could be read.
    assert_eq!(kura.snapshots().len(), 1);
    let target = work.join("t");
    kura.restore_ok("latest", &target, &[]);
    let files = list_files(&restored(&target, &src));
    assert!(files.contains(&"ok.txt".to_string()), "{files:?}");
    assert!(files.contains(&"z-last.txt".to_string()), "{files:?}");
    assert!(!files.contains(&"secret".to_string()), "{files:?}");
    assert!(!files.contains(&"locked/inside".to_string()), "{files:?}");
    assert_eq!(
        fs::read(restored(&target, &src).join("ok.txt")).unwrap(),
        b"readable"
    );
    kura.ok(["check", "--read-data"]);

    // Human output lists them too (exit 3 again).
    let out = kura.run(["backup", src.to_str().unwrap()]);
    let text = assert_exit(&out, 3);
    assert!(
        text.contains("not backed up") && text.contains("secret"),
        "{text}"
    );
}

#[test]
fn restore_errors_unknown_snapshot_file_target_and_forget_without_arguments() {
    let tmp = tempdir();
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let src = tmp.path().join("src");
    write(&src.join("f"), b"x");
    let id = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let target = tmp.path().join("t");
    let text = assert_exit(&kura.restore("abcdef0123", &target, &[]), 1);
    assert!(text.contains("no snapshot matches"), "{text}");
    assert!(!target.exists());

    let file_target = tmp.path().join("a-file");
    write(&file_target, b"keep me");
    let text = assert_exit(&kura.restore(&id, &file_target, &["--overwrite"]), 1);
    assert!(text.contains("not a directory"), "{text}");
    assert_eq!(fs::read(&file_target).unwrap(), b"keep me");

    let text = assert_exit(
        &kura.run([
            "restore",
            &id,
            "--target",
            target.to_str().unwrap(),
            "--include",
            "../etc",
        ]),
        1,
    );
    assert!(text.contains(".."), "{text}");

    let text = assert_exit(&kura.run(["forget"]), 1);
    assert!(text.contains("give either"), "{text}");
    let text = assert_exit(&kura.run(["forget", &id[..12], "--keep-last", "1"]), 1);
    assert!(text.contains("give either"), "{text}");
    let text = assert_exit(&kura.run(["forget", "0123456789abcdef"]), 1);
    assert!(text.contains("no snapshot matches"), "{text}");
    assert_eq!(kura.snapshot_ids(), vec![id.clone()], "nothing was forgotten");

    let text = assert_exit(&kura.run(["gc", "--max-unused", "150"]), 1);
    assert!(text.contains("percentage"), "{text}");

    // An encrypted vault with an empty passphrase is refused before anything is created.
    let enc = Kura::new(tmp.path().join("enc")).with_password("");
    let text = assert_exit(&enc.run(["init", "--encrypt"]), 1);
    assert!(text.contains("empty"), "{text}");
    assert!(!tmp.path().join("enc").join("objects").exists());
}

/// `kura ls latest DIR | head -1` ends quietly when `head` closes the pipe: no panic, no
/// message (the shell sees SIGPIPE, as with `ls`).
#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    let tmp = tempdir();
    let kura = Kura::new(tmp.path().join("vault"));
    kura.init();
    let src = tmp.path().join("src");
    for i in 0..5000 {
        write(
            &src.join(format!("file-{i:05}-with-a-long-name-to-fill-the-pipe")),
            b"x",
        );
    }
    kura.backup(&[&src], &[]);
    let kura_bin = env!("CARGO_BIN_EXE_kura");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "\"{kura_bin}\" --repo \"{}\" ls latest \"{}\" | head -1",
            tmp.path().join("vault").display(),
            src.display()
        ))
        .env_remove("KURA_REPO")
        .env_remove("KURA_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}
