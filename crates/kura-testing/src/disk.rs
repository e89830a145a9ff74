//! Real disk images for the image tests: partitioned by `sfdisk`, with a swap partition
//! from `mkswap` and an ext4 file system made by `mkfs.ext4 -d` from a tree (Debian's
//! fdisk, util-linux and e2fsprogs; `scripts/test.sh` installs them).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;

/// Runs a tool with `stdin`, failing the test with its output when it fails.
pub fn tool(program: &str, args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} cannot run: {e}"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dir/disk.img`, a disk of 48 MiB with a `label` (`gpt` or `dos`) partition table:
/// partition 1 is swap (8 MiB at 1 MiB), partition 2 an ext4 file system made from
/// `tree` (32 MiB at 9 MiB).
pub fn partitioned_disk(dir: &Path, tree: &Path, label: &str) -> PathBuf {
    let disk = dir.join("disk.img");
    fs::File::create(&disk).unwrap().set_len(48 * MIB).unwrap();
    let swap_type = if label == "gpt" { "S" } else { "82" };
    let script =
        format!("label: {label}\nstart=2048, size=16384, type={swap_type}\nstart=18432, size=65536\n");
    tool("sfdisk", &["-q", disk.to_str().unwrap()], &script);
    let swap = dir.join("swap.part");
    fs::File::create(&swap).unwrap().set_len(8 * MIB).unwrap();
    tool("mkswap", &["-q", swap.to_str().unwrap()], "");
    let ext4 = dir.join("ext4.part");
    fs::File::create(&ext4).unwrap().set_len(32 * MIB).unwrap();
    tool(
        "mkfs.ext4",
        &["-q", "-F", "-d", tree.to_str().unwrap(), ext4.to_str().unwrap()],
        "",
    );
    let f = fs::File::options().write(true).open(&disk).unwrap();
    f.write_all_at(&fs::read(&swap).unwrap(), MIB).unwrap();
    f.write_all_at(&fs::read(&ext4).unwrap(), 9 * MIB).unwrap();
    disk
}
