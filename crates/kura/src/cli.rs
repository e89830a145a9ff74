//! The command line: every flag and subcommand of `kura`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Kura backup agent: back up files to a vault, list, browse and restore snapshots.
#[derive(Parser, Debug)]
#[command(name = "kura", version, about, long_about = None)]
pub struct Cli {
    /// A local vault (a directory). Without it, commands use the server this machine is
    /// registered with (`kura register`).
    #[arg(long, global = true, env = "KURA_REPO", value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// The agent configuration file written by `kura register` (default
    /// ~/.config/kura/agent.toml).
    #[arg(long, global = true, env = "KURA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the vault passphrase from this file (otherwise KURA_PASSWORD, or a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Machine-readable output; for commands that do work the summary is the last line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors and results.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Register this machine with a Kura server, using a one-time registration token.
    Register {
        /// The server's customer URL, e.g. https://backup.example.com:8443.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The one-time registration token from the portal or your provider.
        #[arg(long, value_name = "TOKEN", env = "KURA_REGISTRATION_TOKEN")]
        token: String,
        /// The CA certificate (PEM) that signed the server's certificate, when it is not a
        /// public one (the quick start prints its path).
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// This machine's name as the tenant sees it (default: the host name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Create a vault (a local one with --repo, or the tenant's vault on the server).
    Init {
        /// Encrypt the vault (client side; the passphrase and recovery key never leave you).
        #[arg(long)]
        encrypt: bool,
        /// Chunk size of image backups in this vault: a power of two from 4KiB to 16MiB
        /// (e.g. 64KiB, 256KiB, 1MiB). Smaller stores less after scattered writes; larger
        /// keeps the index smaller.
        #[arg(long, value_name = "SIZE", value_parser = parse_chunk_size)]
        image_chunk_size: Option<u32>,
    },
    /// Back up files and directories.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots,
    /// List the contents of a snapshot (no file data is read); for an image snapshot, its
    /// partitions, or with --partition the files inside one.
    Ls(LsArgs),
    /// Restore a snapshot, or parts of it: files into a directory, an image into a file
    /// or onto a device, or files from inside an image with --partition.
    Restore(RestoreArgs),
    /// Forget snapshots, by id or by retention policy.
    Forget(ForgetArgs),
    /// Delete unreferenced data and repack mostly-dead packs.
    Gc {
        /// Repack packs with more than this percentage of dead bytes.
        #[arg(long, default_value_t = 10.0)]
        max_unused: f64,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify the vault's structure, and with --read-data every stored byte.
    Check {
        /// Read back and verify every blob.
        #[arg(long)]
        read_data: bool,
    },
    /// Heal what the vault can heal from its own bytes: reads every pack, rewrites packs
    /// whose bytes changed, clears damage that backups have uploaded again, and lists what
    /// is lost because it exists nowhere else. Exit 3 when something is still lost.
    Repair,
    /// Manage the passphrases that open an encrypted vault.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Space used by the vault.
    Stats,
    /// The agent daemon, which runs this machine's protection plans on schedule.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Print a completion script for a shell, e.g.
    /// `kura completions bash > /etc/bash_completion.d/kura`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or with --dir write one page per command there, e.g.
    /// `kura man --dir /usr/local/share/man/man1`.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Measure this machine's speed at each pipeline stage.
    Bench {
        /// MiB of generated data per measurement.
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Run the daemon in the foreground until SIGTERM or Ctrl-C: it asks the server which
    /// plans are due (at least every 30 s), backs them up and reports every run. Logs go to
    /// stderr, as JSON lines with --json. An encrypted vault is opened with
    /// --password-file or KURA_PASSWORD.
    Run {
        /// Where reports the server could not take yet wait (default
        /// $XDG_STATE_HOME/kura or ~/.local/state/kura).
        #[arg(long, env = "KURA_STATE_DIR", value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Where restore drills put their scratch copies, each deleted when its drill
        /// ends (default: drills/ in the state directory). Needs room for the largest
        /// files snapshot of the machine's plans that drill.
        #[arg(long, env = "KURA_DRILL_DIR", value_name = "DIR")]
        drill_dir: Option<PathBuf>,
        /// Seconds between looks at the plans, 1 to 30.
        #[arg(long, default_value_t = 30, value_name = "SECONDS",
              value_parser = clap::value_parser!(u64).range(1..=30))]
        poll: u64,
    },
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id prefix or `latest`.
    pub snapshot: String,
    /// Path inside the snapshot (or inside the partition).
    pub path: Option<PathBuf>,
    /// Only the entries directly in PATH.
    #[arg(long)]
    pub no_recurse: bool,
    /// Image snapshots: list files of this partition (as numbered by `kura ls SNAP`; 0 is
    /// a file system on the whole image).
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id prefix or `latest`.
    pub snapshot: String,
    /// Files: the directory to restore into (created if missing; must be empty unless
    /// --overwrite). Images: the file or block device to write.
    #[arg(long, value_name = "DIR|FILE|DEVICE")]
    pub target: PathBuf,
    /// Restore only this path inside the snapshot or partition (repeatable).
    #[arg(long, value_name = "PATH")]
    pub include: Vec<PathBuf>,
    /// Restore into a non-empty target, replacing what is in the way (for images: write
    /// over an existing file or device).
    #[arg(long)]
    pub overwrite: bool,
    /// Files snapshots: read every file back once written and compare it with the
    /// snapshot; files that differ are named and the exit code is 3.
    #[arg(long)]
    pub verify: bool,
    /// Image snapshots: the format to write.
    #[arg(long, value_enum, default_value_t = ImageFormatArg::Raw)]
    pub format: ImageFormatArg,
    /// Image snapshots: restore files from inside this partition instead of the image.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

/// Image file formats `kura restore` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormatArg {
    Raw,
    Qcow2,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up; with --image, one image file or block device.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Back up a disk image (raw or qcow2 file) or a block device, block by block.
    #[arg(long)]
    pub image: bool,
    /// Shell command to run before reading (e.g. freeze a file system or take an LVM
    /// snapshot); if it fails, nothing is backed up.
    #[arg(long, value_name = "CMD")]
    pub pre_hook: Option<String>,
    /// Shell command to run after reading, even if reading failed.
    #[arg(long, value_name = "CMD")]
    pub post_hook: Option<String>,
    /// Leave out what matches this glob (a name anywhere, or a path with `/`).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Name of what is backed up (default: host and paths); the parent is looked up by it.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Do not descend into other file systems.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read every file, ignoring the parent snapshot.
    #[arg(long)]
    pub force: bool,
    /// Pace the upload to the server to this rate: `20MiB/s`, `500KiB/s`, `1.5GB/s`
    /// (the syntax of a plan's upload limit).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_upload: Option<kura_api::rate::BandwidthLimit>,
    /// Record this time as the snapshot's time (RFC 3339, e.g. 2026-01-31T23:00:00Z),
    /// for importing old data; default now.
    #[arg(long, value_name = "TIME")]
    pub time: Option<jiff::Timestamp>,
}

/// A rate for `--limit-upload`.
fn parse_rate(text: &str) -> Result<kura_api::rate::BandwidthLimit, String> {
    kura_api::rate::BandwidthLimit::parse(text)
        .ok_or_else(|| format!("{text:?} is not a rate above zero; write e.g. 20MiB/s, 500KiB/s or 1.5GB/s"))
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to forget (id prefixes).
    pub snapshots: Vec<String>,
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Run gc afterwards.
    #[arg(long)]
    pub prune: bool,
    /// Only show what would be forgotten.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a passphrase (from KURA_NEW_PASSWORD, --new-password-file or a prompt).
    Add {
        #[arg(long, default_value = "added passphrase")]
        label: String,
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        /// Instead of a passphrase, give this registered machine a key slot of its own,
        /// kept in its agent config, so its daemon opens the vault unattended.
        #[arg(long, conflicts_with_all = ["label", "new_password_file"])]
        machine: bool,
    },
    /// List key slots.
    List,
    /// Remove a key slot by id (the last one cannot be removed).
    Remove { id: String },
}

/// A chunk size such as `65536`, `64KiB` or `1MiB`.
fn parse_chunk_size(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u32 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 256KiB"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        other => return Err(format!("unknown unit {other:?}: use KiB or MiB")),
    };
    let size = n
        .checked_mul(factor)
        .filter(|s| (4096..=16 << 20).contains(s) && s.is_power_of_two())
        .ok_or_else(|| format!("{text} is not a power of two from 4KiB to 16MiB"))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::parse_chunk_size;

    #[test]
    fn chunk_sizes_take_units_and_must_be_powers_of_two() {
        assert_eq!(parse_chunk_size("64KiB"), Ok(65536));
        assert_eq!(parse_chunk_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_chunk_size("4096"), Ok(4096));
        assert!(parse_chunk_size("100KiB").is_err());
        assert!(parse_chunk_size("32MiB").is_err());
        assert!(parse_chunk_size("2KiB").is_err());
        assert!(parse_chunk_size("big").is_err());
    }
}
