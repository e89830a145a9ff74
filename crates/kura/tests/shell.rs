//! Shell completions and manual pages, generated from the command-line definitions: bash
//! parses the completion script, zsh and fish get theirs, and `kura man --dir` writes a
//! page for every command that `man` can render.

mod common;

use std::process::Command;

use common::*;

#[test]
fn completions_for_each_shell() {
    let kura = Kura::new(std::path::PathBuf::new());
    let bash = stdout(&kura.ok(["completions", "bash"]));
    assert!(bash.contains("_kura()") && bash.contains("backup"), "{bash}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kura.bash");
    std::fs::write(&script, &bash).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(checked.status.success(), "bash -n: {}", describe(&checked));
    assert!(stdout(&kura.ok(["completions", "zsh"])).contains("#compdef kura"));
    assert!(stdout(&kura.ok(["completions", "fish"])).contains("complete -c kura"));
    let text = assert_exit(&kura.run(["completions", "tcsh"]), 2);
    assert!(text.contains("possible values"), "{text}");
}

#[test]
fn a_manual_page_for_every_command() {
    let kura = Kura::new(std::path::PathBuf::new());
    let page = stdout(&kura.ok(["man"]));
    assert!(page.contains(".TH kura 1") && page.contains("backup"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    kura.ok([
        std::ffi::OsStr::new("man"),
        "--dir".as_ref(),
        dir.path().as_os_str(),
    ]);
    for name in ["kura.1", "kura-backup.1", "kura-agent-run.1", "kura-restore.1"] {
        let page = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{name}: {page}");
    }
    let backup = std::fs::read_to_string(dir.path().join("kura-backup.1")).unwrap();
    assert!(backup.contains("exclude"), "{backup}");
}
