//! One function per subcommand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use kura_agent::backup::{self, BackupOptions, BackupProgress};
use kura_agent::browse;
use kura_agent::hooks;
use kura_agent::image::inside::{self, EntryKind, ImageLayout};
use kura_agent::image::restore::{ImageFormat, ImageRestoreOptions};
use kura_agent::image::{self, backup::ImageBackupOptions};
use kura_agent::restore::{self, RestoreOptions, RestoreProgress};
use kura_agent::{LocalRepository, OpenVault, RemoteRepository, Repository, init_vault, register};
use kura_format::keys::{KdfParams, SlotKind};
use kura_format::tree::NodeKind;
use kura_format::{KeySlot, SnapshotId, SnapshotKind};
use kura_store::retention::{self, RetentionPolicy};
use kura_store::{GcOptions, VerifyScope};
use serde_json::json;
use tokio::runtime::Handle;

use crate::EXIT_PARTIAL;
use crate::agent_config::AgentConfig;
use crate::cli::{
    AgentCommand, BackupArgs, Cli, Command, ForgetArgs, ImageFormatArg, KeyCommand, LsArgs, RestoreArgs,
};
use crate::ui::{self, Ui, counters};

/// Runs one command; returns the exit code.
pub fn run(cli: Cli, ui: Ui, rt: Handle) -> Result<u8> {
    let ctx = Ctx {
        repo: cli.repo,
        config: cli.config,
        password_file: cli.password_file,
        ui,
        rt,
        target: std::cell::OnceCell::new(),
    };
    match cli.command {
        Command::Register {
            server,
            token,
            ca_cert,
            name,
        } => ctx.register(&server, &token, ca_cert.as_deref(), name),
        Command::Init {
            encrypt,
            image_chunk_size,
        } => ctx.init(encrypt, image_chunk_size),
        Command::Backup(args) => ctx.backup(args),
        Command::Snapshots => ctx.snapshots(),
        Command::Ls(args) => ctx.ls(args),
        Command::Restore(args) => ctx.restore(args),
        Command::Forget(args) => ctx.forget(args),
        Command::Gc { max_unused, dry_run } => ctx.gc(max_unused, dry_run),
        Command::Check { read_data } => ctx.check(read_data),
        Command::Repair => ctx.repair(),
        Command::Key { command } => ctx.key(command),
        Command::Stats => ctx.stats(),
        Command::Agent {
            command:
                AgentCommand::Run {
                    state_dir,
                    drill_dir,
                    poll,
                },
        } => ctx.agent_run(state_dir, drill_dir, poll),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kura", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => manual_pages(dir.as_deref()),
        Command::Bench { mib } => ctx.bench(mib),
    }
}

struct Ctx {
    repo: Option<PathBuf>,
    config: Option<PathBuf>,
    password_file: Option<PathBuf>,
    ui: Ui,
    rt: Handle,
    /// Where this command goes, read once (the agent config file) when first asked.
    target: std::cell::OnceCell<Target>,
}

impl Ctx {
    fn config_path(&self) -> Result<PathBuf> {
        self.config
            .clone()
            .or_else(AgentConfig::default_path)
            .context("no agent config: give --config FILE or set KURA_CONFIG")
    }

    /// Where commands go: the local vault given with `--repo`, else the server this
    /// machine is registered with.
    fn target(&self) -> Result<&Target> {
        if let Some(target) = self.target.get() {
            return Ok(target);
        }
        let target = self.read_target()?;
        Ok(self.target.get_or_init(|| target))
    }

    fn read_target(&self) -> Result<Target> {
        if let Some(path) = &self.repo {
            return Ok(Target::Local(path.clone()));
        }
        let path = self.config_path()?;
        match AgentConfig::load(&path)? {
            Some(config) => Ok(Target::Server(Box::new(config))),
            None => bail!(
                "no vault given and no agent config at {}: use --repo PATH (or set KURA_REPO) for a \
                 local vault, register this machine with a server (`kura register --server URL --token \
                 TOKEN`), or point to its config with --config FILE (or KURA_CONFIG)",
                path.display()
            ),
        }
    }

    /// The host name snapshots record: the name this machine was registered under (what
    /// the portal shows, and stable when the host is renamed), or for a local vault the
    /// host name.
    fn snapshot_host(&self) -> String {
        match self.target() {
            Ok(Target::Server(config)) => config.machine_name.clone(),
            _ => hostname(),
        }
    }

    /// Said before figures about the whole vault: on a server they count every machine of
    /// the tenant, while `kura snapshots` lists this machine's own.
    fn whole_vault(&self) -> &'static str {
        match self.target() {
            Ok(Target::Server(_)) => "the tenant's vault (all machines): ",
            _ => "",
        }
    }

    fn open_repo(&self) -> Result<Arc<dyn Repository>> {
        Ok(match self.target()? {
            Target::Local(path) => Arc::new(self.rt.block_on(LocalRepository::open(path))?),
            Target::Server(config) => {
                Arc::new(self.rt.block_on(RemoteRepository::open(&config.connection()))?)
            }
        })
    }

    fn register(
        &self,
        server: &str,
        token: &str,
        ca_cert: Option<&Path>,
        name: Option<String>,
    ) -> Result<u8> {
        let path = self.config_path()?;
        let ca_cert_pem = ca_cert
            .map(|f| {
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read the CA certificate {}", f.display()))
            })
            .transpose()?;
        let name = name.unwrap_or_else(hostname);
        let registered = self
            .rt
            .block_on(register(server, ca_cert_pem.as_deref(), token, &name))?;
        let config = AgentConfig {
            server_url: server.trim_end_matches('/').to_string(),
            ca_cert_pem,
            tenant_id: registered.tenant_id.clone(),
            machine_id: registered.machine_id.clone(),
            machine_name: name.clone(),
            credential: registered.credential,
            machine_key: None,
        };
        config.save(&path)?;
        self.ui.result(format!(
            "registered this machine as {name:?} (machine {}) with {server}\nthe credential is in {} (mode 0600); \
             next: `kura init --encrypt` once per tenant, then `kura backup PATH`",
            registered.machine_id,
            path.display()
        ));
        self.ui.json(&json!({
            "machine_id": registered.machine_id,
            "tenant_id": registered.tenant_id,
            "name": name,
            "config": path.display().to_string(),
        }));
        Ok(0)
    }

    /// `kura agent run`: the daemon, until SIGTERM or Ctrl-C.
    fn agent_run(&self, state_dir: Option<PathBuf>, drill_dir: Option<PathBuf>, poll: u64) -> Result<u8> {
        let config = match self.target()? {
            Target::Server(config) => config,
            Target::Local(_) => bail!(
                "the agent daemon runs the plans of a server; register this machine with \
                 `kura register` and leave out --repo"
            ),
        };
        let state_dir = state_dir
            .or_else(default_state_dir)
            .context("no state directory: give --state-dir DIR or set KURA_STATE_DIR")?;
        // Never a prompt: a daemon has no one to answer it. Without a passphrase given,
        // the machine's own key slot opens the vault.
        let passphrase = match (&self.password_file, std::env::var_os("KURA_PASSWORD")) {
            (None, None) => config.machine_key.clone().map(String::into_bytes),
            _ => Some(ui::passphrase(self.password_file.as_deref(), false)?),
        };
        let options = kura_agent::daemon::DaemonOptions {
            connection: config.connection(),
            host: config.machine_name.clone(),
            drill_dir: drill_dir.unwrap_or_else(|| state_dir.join("drills")),
            state_dir,
            passphrase,
            poll: std::time::Duration::from_secs(poll),
        };
        let log = ui::daemon_log(self.ui.json);
        self.rt
            .block_on(kura_agent::daemon::run(options, log, stop_signal()))?;
        Ok(0)
    }

    /// The vault with its uploads paced to `limit` (a connection of its own to the server).
    fn paced(&self, vault: OpenVault, limit: Option<kura_api::rate::BandwidthLimit>) -> Result<OpenVault> {
        let Some(limit) = limit else { return Ok(vault) };
        let Target::Server(config) = self.target()? else {
            bail!("--limit-upload paces uploads to a server; this vault is a local directory (--repo)");
        };
        let repo = self
            .rt
            .block_on(RemoteRepository::open(&config.connection()))?
            .with_upload_limit(Some(limit.0));
        Ok(OpenVault {
            repo: Arc::new(repo),
            ..vault
        })
    }

    fn unlock(&self) -> Result<OpenVault> {
        let repo = self.open_repo()?;
        let _guard = self.rt.enter();
        // A machine with its own key slot opens the vault without the passphrase.
        if let Ok(Target::Server(config)) = self.target()
            && let Some(secret) = &config.machine_key
        {
            let opened = self.rt.block_on(OpenVault::unlock(Arc::clone(&repo), || {
                Ok(secret.clone().into_bytes())
            }));
            match opened {
                Ok(vault) => return Ok(vault),
                Err(kura_agent::AgentError::WrongPassphrase) => self.ui.warn(
                    "this machine's own key no longer opens the vault (its slot was removed); \
                     using the passphrase. `kura key add --machine` gives it a new one",
                ),
                Err(err) => return Err(err.into()),
            }
        }
        let file = self.password_file.clone();
        Ok(self.rt.block_on(OpenVault::unlock(repo, || {
            ui::passphrase(file.as_deref(), false).map_err(|e| kura_agent::AgentError::Usage(e.to_string()))
        }))?)
    }

    fn init(&self, encrypt: bool, image_chunk_size: Option<u32>) -> Result<u8> {
        let target = self.target()?;
        let pass = if encrypt {
            Some(ui::passphrase(self.password_file.as_deref(), true)?)
        } else {
            None
        };
        let (mut config, slots, recovery) = init_vault(encrypt, pass.as_deref(), KdfParams::default())?;
        if let Some(size) = image_chunk_size {
            config.image_chunk_size = size;
        }
        let vault_id = config.vault_id.clone();
        let location = match &target {
            Target::Local(path) => {
                self.rt.block_on(LocalRepository::create(path, config, &slots))?;
                path.display().to_string()
            }
            Target::Server(agent) => {
                let repo = self
                    .rt
                    .block_on(RemoteRepository::create(&agent.connection(), config, &slots))?;
                if let Some(recovery) = &recovery {
                    // The recovery slot opens cheaply: the master key for this machine's slot.
                    let master = slots
                        .iter()
                        .find_map(|slot| slot.open(recovery.to_string().as_bytes()).ok())
                        .context("the new recovery key does not open its own slot")?;
                    self.give_machine_key(&repo, agent, &master)?;
                }
                repo.location()
            }
        };
        self.ui.result(format!(
            "created {} vault {vault_id} at {location}",
            if encrypt { "encrypted" } else { "unencrypted" },
        ));
        if !encrypt {
            self.ui.warn(
                "this vault is NOT encrypted: whoever stores it can read your data. For client-side \
                 encryption, start again with a new vault and `kura init --encrypt`",
            );
        }
        if let Some(rk) = &recovery {
            self.ui.result(format!(
                "\nRecovery key (shown only now; store it somewhere safe — it opens the vault if the passphrase is lost):\n\n    {rk}\n"
            ));
        }
        self.ui.json(&json!({
            "vault_id": vault_id,
            "path": location,
            "encrypted": encrypt,
            "recovery_key": recovery.map(|r| r.to_string()),
        }));
        Ok(0)
    }

    /// Adds this machine's own key slot and keeps its secret in the agent config.
    fn give_machine_key(
        &self,
        repo: &RemoteRepository,
        config: &AgentConfig,
        master: &kura_format::keys::MasterKey,
    ) -> Result<()> {
        let (slot, secret) = kura_agent::machine_key_slot(master, &config.machine_name)?;
        self.rt.block_on(repo.set_machine_key_slot(&slot))?;
        let path = self.config_path()?;
        let mut config = config.clone();
        config.machine_key = Some(secret);
        config.save(&path)?;
        self.ui.say(format!(
            "this machine has its own key slot {} (its secret is in {}, mode 0600): its daemon \
             opens the vault without the passphrase; revoking the machine removes the slot",
            slot.id,
            path.display()
        ));
        Ok(())
    }

    fn backup(&self, args: BackupArgs) -> Result<u8> {
        let vault = self.paced(self.unlock()?, args.limit_upload)?;
        if let Some(cmd) = &args.pre_hook {
            hooks::run_hook("pre-hook", cmd)?;
        }
        let progress = Arc::new(BackupProgress::default());
        let result = {
            let _bar = self.ui.progress("backing up", vec![counters(&progress)]);
            let p = Arc::clone(&progress);
            let host = self.snapshot_host();
            std::thread::scope(|s| s.spawn(|| run_backup(&vault, &args, host, p)).join())
                .map_err(|_| anyhow::anyhow!("the backup thread panicked"))?
        };
        let post_hook = args
            .post_hook
            .as_deref()
            .and_then(|cmd| hooks::run_hook("post-hook", cmd).err());
        let mut summary = result?;
        for e in &summary.errors {
            self.ui.warn(format!("not backed up: {e}"));
        }
        for c in &summary.changed_while_reading {
            self.ui.warn(format!("changed while being read: {c}"));
        }
        let unread = summary.errors.len();
        if let Some(e) = post_hook {
            self.ui.warn(format!("{e} (the snapshot was saved)"));
            summary.errors.push(e.to_string());
        }
        if args.image {
            self.ui.say(format!(
                "image of {} ({} read, {} added) in {:.1}s",
                ui::size(summary.bytes),
                ui::size(summary.bytes_read),
                ui::size(summary.bytes_added),
                summary.duration_s
            ));
        } else {
            self.ui.say(format!(
                "{} files, {} dirs, {} ({} read, {} added) in {:.1}s",
                summary.files,
                summary.dirs,
                ui::size(summary.bytes),
                ui::size(summary.bytes_read),
                ui::size(summary.bytes_added),
                summary.duration_s
            ));
        }
        self.ui
            .result(format!("snapshot {} saved", &summary.snapshot_id[..12]));
        self.ui.json(&summary);
        if unread > 0 {
            self.ui.warn(format!(
                "{unread} files could not be read (listed above); the snapshot lacks them"
            ));
        }
        Ok(if summary.errors.is_empty() {
            0
        } else {
            EXIT_PARTIAL
        })
    }

    fn snapshots(&self) -> Result<u8> {
        let vault = self.unlock()?;
        let snaps = self.rt.block_on(vault.repo.snapshots())?;
        let mut rows = Vec::new();
        for s in &snaps {
            let m = &s.manifest;
            let paths = m.open_body(&vault.codec).map(|b| b.paths).unwrap_or_default();
            rows.push(json!({
                "id": s.id.to_hex(),
                "time": ui::utc_time(m.time_ns),
                "host": m.host,
                "source": m.source,
                "kind": m.kind.to_string(),
                "paths": paths,
                "tags": m.tags,
                "parent": m.parent.map(|p| p.to_hex()),
                "files": m.stats.files,
                "bytes": m.stats.bytes,
                "bytes_added": m.stats.bytes_added,
            }));
            self.ui.result(format!(
                "{}  {}  {:<5}  {:>10}  {}  {}{}",
                s.id.short(),
                ui::local_time(m.time_ns),
                m.kind.to_string(),
                ui::size(m.stats.bytes),
                m.source,
                paths.join(" "),
                if m.tags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", m.tags.join(","))
                }
            ));
        }
        if snaps.is_empty() {
            self.ui.say("no snapshots yet");
        }
        self.ui.json(&rows);
        Ok(0)
    }

    fn resolve(&self, vault: &OpenVault, spec: &str) -> Result<SnapshotId> {
        Ok(self.rt.block_on(vault.repo.resolve(spec))?)
    }

    fn ls(&self, args: LsArgs) -> Result<u8> {
        let vault = self.unlock()?;
        let id = self.resolve(&vault, &args.snapshot)?;
        let path = args.path.as_deref().unwrap_or(Path::new("/"));
        let recursive = !args.no_recurse;
        if self.kind_of(&vault, &id)? == SnapshotKind::Image {
            return self.ls_image(&vault, &id, &args);
        }
        if args.partition.is_some() {
            bail!(
                "snapshot {} holds files; --partition applies to image snapshots",
                id.short()
            );
        }
        let listing = self.rt.block_on(async {
            let root = browse::root_of(&vault, &id).await?;
            browse::list(&vault, &root, path, recursive).await
        })?;
        let listed: Vec<Listed> = listing
            .entries
            .iter()
            .map(|e| {
                let n = &e.node;
                Listed {
                    path: &e.path,
                    kind: match n.kind {
                        NodeKind::File => "file",
                        NodeKind::Dir => "dir",
                        NodeKind::Symlink => "symlink",
                        NodeKind::Fifo => "fifo",
                        NodeKind::CharDevice => "chardev",
                        NodeKind::BlockDevice => "blockdev",
                        NodeKind::Socket => "socket",
                    },
                    mode: n.mode,
                    uid: n.uid,
                    gid: n.gid,
                    size: n.size,
                    mtime_ns: n.mtime_ns,
                    link_target: n.link_target.as_ref().map(|t| t.as_slice()),
                }
            })
            .collect();
        self.print_listing(&listed);
        for d in &listing.damaged {
            self.ui.warn(format!("not listed: {d}"));
        }
        if listing.damaged.is_empty() {
            return Ok(0);
        }
        self.ui.warn(format!(
            "{} directories are damaged in the vault (listed above); `kura check --read-data` tells more",
            listing.damaged.len()
        ));
        Ok(EXIT_PARTIAL)
    }

    fn print_listing(&self, entries: &[Listed]) {
        let mut rows = Vec::new();
        for e in entries {
            let link = e.link_target.map(|t| String::from_utf8_lossy(t).into_owned());
            if self.ui.json {
                rows.push(json!({
                    "path": e.path, "type": e.kind, "size": e.size, "mode": format!("{:o}", e.mode),
                    "uid": e.uid, "gid": e.gid, "mtime": ui::utc_time(e.mtime_ns),
                    "link_target": link,
                }));
            } else {
                println!(
                    "{:<8} {:>5o} {:>6}:{:<6} {:>10}  {}  {}{}",
                    e.kind,
                    e.mode,
                    e.uid,
                    e.gid,
                    e.size,
                    ui::local_time(e.mtime_ns),
                    e.path,
                    link.map(|l| format!(" -> {l}")).unwrap_or_default()
                );
            }
        }
        self.ui.json(&rows);
    }

    fn restore(&self, args: RestoreArgs) -> Result<u8> {
        let vault = self.unlock()?;
        let id = self.resolve(&vault, &args.snapshot)?;
        self.rt.block_on(vault.repo.note_restore(&id))?;
        if self.kind_of(&vault, &id)? == SnapshotKind::Image {
            return self.restore_image(&vault, &id, args);
        }
        if args.partition.is_some() || args.format != ImageFormatArg::Raw {
            bail!(
                "snapshot {} holds files; --partition and --format apply to image snapshots",
                id.short()
            );
        }
        let options = RestoreOptions {
            target: args.target,
            includes: args.include,
            overwrite: args.overwrite,
            verify: args.verify,
        };
        let progress = Arc::new(RestoreProgress::default());
        let summary = {
            let _bar = self.ui.progress("restoring", vec![counters(&progress)]);
            let p = Arc::clone(&progress);
            std::thread::scope(|s| s.spawn(|| restore::run(&vault, &id, &options, p)).join())
                .map_err(|_| anyhow::anyhow!("the restore thread panicked"))??
        };
        for e in &summary.errors {
            self.ui.warn(e);
        }
        for d in &summary.damaged {
            self.ui.warn(format!("not restored: {d}"));
        }
        if !summary.damaged.is_empty() {
            self.ui.warn(format!(
                "{} files or directories were not restored because their data in the vault is damaged (listed above); \
                 everything else was restored. A backup of the same files stores them again; `kura repair` then tells what is still lost",
                summary.damaged.len()
            ));
        }
        for m in &summary.mismatches {
            self.ui.warn(format!("not as backed up: {m}"));
        }
        if !summary.mismatches.is_empty() {
            self.ui.warn(format!(
                "{} files read back differently from the snapshot (listed above): the target's disk or file system did not keep what was written",
                summary.mismatches.len()
            ));
        }
        self.ui.result(format!(
            "restored {}{} files, {} dirs, {} from {} to {} in {:.1}s",
            if options.verify { "and checked " } else { "" },
            summary.files,
            summary.dirs,
            ui::size(summary.bytes),
            &summary.snapshot_id[..12],
            options.target.display(),
            summary.duration_s
        ));
        self.ui.json(&summary);
        Ok(
            if summary.errors.is_empty() && summary.damaged.is_empty() && summary.mismatches.is_empty() {
                0
            } else {
                EXIT_PARTIAL
            },
        )
    }

    fn ls_image(&self, vault: &OpenVault, id: &SnapshotId, args: &LsArgs) -> Result<u8> {
        let Some(partition) = args.partition else {
            let layout = inside::layout(vault, id)?;
            if args.path.is_some() {
                bail!(
                    "an image snapshot holds partitions: add --partition N to list files\n{}",
                    layout_text(&layout)
                );
            }
            for w in &layout.warnings {
                self.ui.warn(format!("partition table: {w}"));
            }
            self.ui.result(layout_text(&layout));
            self.ui.json(&layout);
            return Ok(0);
        };
        let path = args.path.as_deref().unwrap_or(Path::new("/"));
        let entries = inside::list(vault, id, partition, path, !args.no_recurse)?;
        let listed: Vec<Listed> = entries
            .iter()
            .map(|e| {
                let n = &e.entry;
                Listed {
                    path: &e.path,
                    kind: match n.kind {
                        EntryKind::File => "file",
                        EntryKind::Dir => "dir",
                        EntryKind::Symlink => "symlink",
                        EntryKind::Fifo => "fifo",
                        EntryKind::CharDevice => "chardev",
                        EntryKind::BlockDevice => "blockdev",
                        EntryKind::Socket => "socket",
                    },
                    mode: u32::from(n.mode),
                    uid: n.uid,
                    gid: n.gid,
                    size: n.size,
                    mtime_ns: n.mtime * 1_000_000_000 + i64::from(n.mtime_nanos),
                    link_target: n.symlink_target.as_deref(),
                }
            })
            .collect();
        self.print_listing(&listed);
        Ok(0)
    }

    fn restore_from_partition(&self, vault: &OpenVault, id: &SnapshotId, args: RestoreArgs) -> Result<u8> {
        let partition = args.partition.expect("called with --partition");
        if args.format != ImageFormatArg::Raw {
            bail!("--format applies to restoring the whole image, not files from a partition");
        }
        if args.overwrite {
            bail!(
                "files from inside an image are restored into an empty directory; --overwrite does not apply"
            );
        }
        let summary = {
            let _bar = self.ui.progress("restoring files from the image", vec![]);
            std::thread::scope(|s| {
                s.spawn(|| inside::restore(vault, id, partition, &args.include, &args.target))
                    .join()
            })
            .map_err(|_| anyhow::anyhow!("the restore thread panicked"))??
        };
        for s in &summary.skipped {
            self.ui
                .warn(format!("not restored (device, fifo or socket): {s}"));
        }
        for d in &summary.damaged {
            self.ui.warn(format!("not restored: {d}"));
        }
        if !summary.damaged.is_empty() {
            self.ui.warn(format!(
                "{} files or directories were not restored because their data in the vault is damaged (listed above); \
                 everything else was restored. A backup of the image stores them again",
                summary.damaged.len()
            ));
        }
        self.ui.result(format!(
            "restored {} files, {} dirs, {} symlinks, {} from partition {} of {} to {} in {:.1}s",
            summary.files,
            summary.dirs,
            summary.symlinks,
            ui::size(summary.bytes),
            partition,
            id.short(),
            args.target.display(),
            summary.duration_s
        ));
        self.ui.json(&summary);
        Ok(if summary.damaged.is_empty() {
            0
        } else {
            EXIT_PARTIAL
        })
    }

    fn kind_of(&self, vault: &OpenVault, id: &SnapshotId) -> Result<SnapshotKind> {
        Ok(self.rt.block_on(vault.repo.manifest(id))?.kind)
    }

    fn restore_image(&self, vault: &OpenVault, id: &SnapshotId, args: RestoreArgs) -> Result<u8> {
        if args.partition.is_some() {
            return self.restore_from_partition(vault, id, args);
        }
        if !args.include.is_empty() {
            bail!(
                "--include picks files; for files inside an image add --partition N (see `kura ls {}`)",
                id.short()
            );
        }
        let options = ImageRestoreOptions {
            target: args.target,
            overwrite: args.overwrite,
            format: match args.format {
                ImageFormatArg::Raw => ImageFormat::Raw,
                ImageFormatArg::Qcow2 => ImageFormat::Qcow2,
            },
        };
        let progress = Arc::new(RestoreProgress::default());
        let summary = {
            let _bar = self.ui.progress("restoring image", vec![counters(&progress)]);
            let p = Arc::clone(&progress);
            std::thread::scope(|s| s.spawn(|| image::restore::run(vault, id, &options, p)).join())
                .map_err(|_| anyhow::anyhow!("the restore thread panicked"))??
        };
        for r in &summary.damaged {
            self.ui.warn(format!(
                "not restored: image bytes {}..{} ({} damaged in the vault; left zero)",
                r.start, r.end, r.cause
            ));
        }
        if !summary.damaged.is_empty() {
            self.ui.warn(
                "parts of the image are damaged in the vault (listed above); every other byte was restored",
            );
        }
        self.ui.result(format!(
            "restored image of {} from {} to {} in {:.1}s",
            ui::size(summary.bytes),
            id.short(),
            summary.target,
            summary.duration_s
        ));
        self.ui.json(&summary);
        Ok(if summary.damaged.is_empty() {
            0
        } else {
            EXIT_PARTIAL
        })
    }

    fn forget(&self, args: ForgetArgs) -> Result<u8> {
        let policy = RetentionPolicy {
            keep_last: args.keep_last.unwrap_or(0),
            keep_hourly: args.keep_hourly.unwrap_or(0),
            keep_daily: args.keep_daily.unwrap_or(0),
            keep_weekly: args.keep_weekly.unwrap_or(0),
            keep_monthly: args.keep_monthly.unwrap_or(0),
            keep_yearly: args.keep_yearly.unwrap_or(0),
        };
        if args.snapshots.is_empty() == policy.is_empty() {
            bail!("give either snapshot ids or --keep-* rules (not both, not neither)");
        }
        let vault = self.unlock()?;
        let (ids, decisions) = if policy.is_empty() {
            let ids = args
                .snapshots
                .iter()
                .map(|s| self.resolve(&vault, s))
                .collect::<Result<Vec<_>>>()?;
            (ids, Vec::new())
        } else {
            let snaps = self.rt.block_on(vault.repo.snapshots())?;
            let decisions = policy.apply(&snaps, &jiff::tz::TimeZone::system())?;
            for d in &decisions {
                self.ui.say(format!(
                    "{} {}  {}  {}  {}",
                    if d.keep { "keep  " } else { "forget" },
                    &d.id[..12],
                    d.time,
                    d.source,
                    d.reasons.join(",")
                ));
            }
            (retention::forgotten(&decisions)?, decisions)
        };
        if !args.dry_run && !ids.is_empty() {
            self.rt.block_on(vault.repo.forget(&ids))?;
        }
        let gc = if args.prune && !args.dry_run {
            Some(self.rt.block_on(vault.repo.gc(GcOptions::default()))?)
        } else {
            None
        };
        self.ui.result(format!(
            "{} {} snapshots{}",
            if args.dry_run { "would forget" } else { "forgot" },
            ids.len(),
            gc.map(|g| format!("; gc freed {}", ui::size(g.bytes_freed)))
                .unwrap_or_default()
        ));
        self.ui.json(&json!({
            "forgotten": ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            "decisions": decisions,
            "dry_run": args.dry_run,
            "gc": gc,
        }));
        Ok(0)
    }

    fn gc(&self, max_unused: f64, dry_run: bool) -> Result<u8> {
        let repo = self.open_repo()?;
        if !(0.0..=100.0).contains(&max_unused) {
            bail!("--max-unused is a percentage from 0 to 100");
        }
        let report = self.rt.block_on(repo.gc(GcOptions {
            max_unused: max_unused / 100.0,
            dry_run,
        }))?;
        self.ui.result(format!(
            "{}: {} chunks, {} packs deleted, {} repacked, {} snapshots purged, {} orphans, {} freed",
            if dry_run { "gc (dry run)" } else { "gc" },
            report.chunks_deleted,
            report.packs_deleted,
            report.packs_repacked,
            report.snapshots_purged,
            report.orphans_deleted,
            ui::size(report.bytes_freed)
        ));
        self.ui.json(&report);
        Ok(0)
    }

    fn check(&self, read_data: bool) -> Result<u8> {
        let vault = self.unlock()?;
        let report = {
            let _bar = self.ui.progress(
                if read_data {
                    "reading all data"
                } else {
                    "checking structure"
                },
                vec![],
            );
            self.rt
                .block_on(vault.repo.verify(VerifyScope { read_data }, Some(&vault.codec)))?
        };
        let damaged_images = self.show_damage(&vault, &report)?;
        self.ui.result(format!(
            "{}checked {} snapshots, {} packs, {} blobs, read {}: {}",
            self.whole_vault(),
            report.snapshots_checked,
            report.packs_checked,
            report.blobs_checked,
            ui::size(report.bytes_read),
            if report.is_clean() {
                "no errors"
            } else {
                "ERRORS FOUND (the next backup re-uploads damaged chunks; `kura repair` then heals the vault)"
            }
        ));
        let mut json = serde_json::to_value(&report)?;
        json["damaged_image_ranges"] = serde_json::to_value(&damaged_images)?;
        self.ui.json(&json);
        Ok(if report.is_clean() { 0 } else { 1 })
    }

    /// Prints what a verification found; returns the lost byte ranges of damaged image
    /// snapshots.
    fn show_damage(
        &self,
        vault: &OpenVault,
        report: &kura_store::VerifyReport,
    ) -> Result<std::collections::BTreeMap<String, Vec<image::DamagedRange>>> {
        for p in &report.problems {
            self.ui.warn(p);
        }
        for w in &report.warnings {
            self.ui.warn(w);
        }
        for c in &report.damaged_chunks {
            self.ui.result(format!("damaged chunk {c}"));
        }
        for p in &report.damaged_packs {
            self.ui.result(format!("damaged pack {p}"));
        }
        let damaged_images = self.damaged_images(vault, report)?;
        for s in &report.damaged_snapshots {
            self.ui.result(format!("damaged snapshot {s}"));
            for r in damaged_images.get(s).into_iter().flatten() {
                self.ui.result(format!(
                    "  image bytes {}..{} ({} damaged)",
                    r.start, r.end, r.cause
                ));
            }
        }
        Ok(damaged_images)
    }

    fn repair(&self) -> Result<u8> {
        let vault = self.unlock()?;
        let report = {
            let _bar = self.ui.progress("reading all data to repair it", vec![]);
            self.rt.block_on(vault.repo.repair(Some(&vault.codec)))?
        };
        for p in &report.packs_rewritten {
            self.ui.say(format!("rewrote pack {p} without its damaged bytes"));
        }
        for p in &report.packs_kept {
            self.ui.warn(format!(
                "pack {p} is damaged but kept: it holds the only copy of some chunks"
            ));
        }
        let damaged_images = self.show_damage(&vault, &report.remaining)?;
        self.ui.result(format!(
            "repair: read {} packs ({}), rewrote {}, {} damaged chunks whole again, {} newly found damaged: {}",
            report.packs_checked,
            ui::size(report.bytes_read),
            report.packs_rewritten.len(),
            report.marks_cleared,
            report.chunks_marked,
            if report.is_healed() {
                "the vault is whole".to_string()
            } else {
                format!(
                    "{} snapshots lack data that exists nowhere else (listed above) — back up the same data again \
                     (damaged chunks are uploaded anew) and run `kura repair` again, or forget those snapshots",
                    report.remaining.damaged_snapshots.len()
                )
            }
        ));
        let mut json = serde_json::to_value(&report)?;
        json["damaged_image_ranges"] = serde_json::to_value(&damaged_images)?;
        self.ui.json(&json);
        Ok(if report.is_healed() { 0 } else { EXIT_PARTIAL })
    }

    /// For each damaged image snapshot, the byte ranges of the image that are lost.
    fn damaged_images(
        &self,
        vault: &OpenVault,
        report: &kura_store::VerifyReport,
    ) -> Result<std::collections::BTreeMap<String, Vec<image::DamagedRange>>> {
        let damaged: std::collections::HashSet<kura_format::ChunkId> = report
            .damaged_chunks
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let mut out = std::collections::BTreeMap::new();
        for s in &report.damaged_snapshots {
            let id: SnapshotId = s.parse()?;
            if self.kind_of(vault, &id)? == SnapshotKind::Image {
                let ranges = self.rt.block_on(image::damaged_ranges(vault, &id, &damaged))?;
                out.insert(s.clone(), ranges);
            }
        }
        Ok(out)
    }

    fn key(&self, command: KeyCommand) -> Result<u8> {
        let vault = self.unlock()?;
        match command {
            KeyCommand::List => {
                let slots = self.rt.block_on(vault.repo.key_slots())?;
                let rows: Vec<_> = slots
                    .iter()
                    .map(|s| {
                        let kind = match s.kind {
                            SlotKind::Passphrase { .. } => "passphrase",
                            SlotKind::Recovery => "recovery",
                        };
                        self.ui.result(format!("{}  {:<10}  {}  {}", s.id, kind, ui::utc_time(s.created * 1_000_000_000), s.label));
                        json!({"id": s.id, "kind": kind, "label": s.label, "created": ui::utc_time(s.created * 1_000_000_000)})
                    })
                    .collect();
                self.ui.json(&rows);
            }
            KeyCommand::Add { machine: true, .. } => {
                let key = vault
                    .key
                    .as_ref()
                    .context("the vault is not encrypted: it has no keys")?;
                let Target::Server(config) = self.target()? else {
                    bail!(
                        "--machine is for a machine registered with a server; a local vault has no machines"
                    );
                };
                let repo = self.rt.block_on(RemoteRepository::open(&config.connection()))?;
                self.give_machine_key(&repo, config, key)?;
                self.ui.json(&json!({"machine_key": true}));
            }
            KeyCommand::Add {
                label,
                new_password_file,
                ..
            } => {
                let key = vault
                    .key
                    .as_ref()
                    .context("the vault is not encrypted: it has no keys")?;
                let pass = ui::read_secret(
                    new_password_file.as_deref(),
                    "KURA_NEW_PASSWORD",
                    "new passphrase",
                    true,
                )?;
                let now = jiff::Timestamp::now().as_second();
                let slot = KeySlot::for_passphrase(key, &pass, &label, KdfParams::default(), now)?;
                self.rt.block_on(vault.repo.add_key_slot(&slot))?;
                self.ui.result(format!("added key slot {}", slot.id));
                self.ui.json(&json!({"id": slot.id, "label": label}));
            }
            KeyCommand::Remove { id } => {
                self.rt.block_on(vault.repo.remove_key_slot(&id))?;
                self.ui.result(format!("removed key slot {id}"));
                self.ui.json(&json!({"removed": id}));
            }
        }
        Ok(0)
    }

    fn stats(&self) -> Result<u8> {
        let repo = self.open_repo()?;
        let u = self.rt.block_on(repo.usage())?;
        self.ui.result(format!(
            "{}{} snapshots, {} logical, {} unique ({} chunks), {} stored in {} packs",
            self.whole_vault(),
            u.snapshots,
            ui::size(u.logical_bytes),
            ui::size(u.raw_bytes),
            u.chunks,
            ui::size(u.stored_bytes),
            u.packs
        ));
        self.ui.json(&u);
        Ok(0)
    }

    fn bench(&self, mib: usize) -> Result<u8> {
        self.ui.say(format!("measuring on {mib} MiB of generated data…"));
        let rt = self.rt.clone();
        let results = std::thread::scope(|s| s.spawn(|| kura_agent::speed::run(mib, rt)).join())
            .map_err(|_| anyhow::anyhow!("the bench thread panicked"))??;
        for r in &results {
            self.ui
                .result(format!("{:<42} {:>9.0} MB/s  {}", r.stage, r.mb_per_s, r.note));
        }
        self.ui.json(&results);
        Ok(0)
    }
}

/// Runs a file or image backup as `args` asks. Call from a thread outside the runtime.
fn run_backup(
    vault: &OpenVault,
    args: &BackupArgs,
    host: String,
    progress: Arc<BackupProgress>,
) -> kura_agent::Result<backup::BackupSummary> {
    if args.image {
        if !args.exclude.is_empty() || args.one_file_system || args.time.is_some() {
            return Err(kura_agent::AgentError::Usage(
                "--exclude, --one-file-system and --time apply to file backups, not --image".into(),
            ));
        }
        let [path] = args.paths.as_slice() else {
            return Err(kura_agent::AgentError::Usage(
                "--image takes exactly one image file or block device".into(),
            ));
        };
        let options = ImageBackupOptions {
            path: path.clone(),
            tags: args.tag.clone(),
            source: args.source.clone(),
            host,
            force_full: args.force,
        };
        return image::backup::run(vault, &options, progress);
    }
    let options = BackupOptions {
        paths: args.paths.clone(),
        excludes: args.exclude.clone(),
        tags: args.tag.clone(),
        source: args.source.clone(),
        one_file_system: args.one_file_system,
        force_full: args.force,
        host,
        time_ns: args.time.map(|t| t.as_nanosecond() as i64),
    };
    backup::run(vault, &options, progress)
}

/// The partition table of an image snapshot as a table for people.
fn layout_text(layout: &ImageLayout) -> String {
    let mut text = format!(
        "image of {} ({} bytes), partition table: {}\n{:>4}  {:>14}  {:>10}  {:<10}  type",
        ui::size(layout.size),
        layout.size,
        layout.table,
        "part",
        "start",
        "size",
        "filesystem"
    );
    for p in &layout.partitions {
        text.push_str(&format!(
            "\n{:>4}  {:>14}  {:>10}  {:<10}  {}{}",
            p.number,
            p.start,
            ui::size(p.length),
            p.filesystem.as_deref().unwrap_or("-"),
            p.kind,
            if p.name.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.name)
            }
        ));
    }
    text
}

/// One line of `kura ls`, from a snapshot tree or a file system inside an image.
struct Listed<'a> {
    path: &'a str,
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime_ns: i64,
    link_target: Option<&'a [u8]>,
}

/// `kura man`: the page of `kura` on stdout, or every command's page written into `dir`.
fn manual_pages(dir: Option<&Path>) -> Result<u8> {
    let command = Cli::command();
    match dir {
        None => clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .context("cannot write the manual page")?,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
        }
    }
    Ok(0)
}

/// `$XDG_STATE_HOME/kura`, or `~/.local/state/kura`.
fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|base| base.join("kura"))
}

/// Completes at SIGTERM (systemd stopping the unit) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the daemon is stopped by the default action instead.
        _ => std::future::pending().await,
    }
}

fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// Where the commands of one run go.
enum Target {
    Local(PathBuf),
    Server(Box<AgentConfig>),
}
