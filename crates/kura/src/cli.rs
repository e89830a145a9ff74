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
    },
    /// Back up files and directories.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots,
    /// List the contents of a snapshot (no file data is read).
    Ls {
        /// Snapshot id prefix or `latest`.
        snapshot: String,
        /// Path inside the snapshot.
        path: Option<PathBuf>,
        /// Only the entries directly in PATH.
        #[arg(long)]
        no_recurse: bool,
    },
    /// Restore a snapshot, or parts of it.
    Restore {
        /// Snapshot id prefix or `latest`.
        snapshot: String,
        /// Directory to restore into (created if missing; must be empty unless --overwrite).
        #[arg(long, value_name = "DIR")]
        target: PathBuf,
        /// Restore only this path inside the snapshot (repeatable).
        #[arg(long, value_name = "PATH")]
        include: Vec<PathBuf>,
        /// Restore into a non-empty target, replacing what is in the way.
        #[arg(long)]
        overwrite: bool,
    },
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
    /// Manage the passphrases that open an encrypted vault.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Space used by the vault.
    Stats,
    /// Measure this machine's speed at each pipeline stage.
    Bench {
        /// MiB of generated data per measurement.
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
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
    /// Record this time as the snapshot's time (RFC 3339, e.g. 2026-01-31T23:00:00Z),
    /// for importing old data; default now.
    #[arg(long, value_name = "TIME")]
    pub time: Option<jiff::Timestamp>,
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
    },
    /// List key slots.
    List,
    /// Remove a key slot by id (the last one cannot be removed).
    Remove { id: String },
}
