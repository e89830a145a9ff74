//! The service's own backup: everything but the tenants' vault objects — the service
//! database, the key that seals its secrets and signs deletion records, the TLS material,
//! the bootstrap files, each local vault's catalog and the configuration — in one file
//! sealed under a passphrase ([`backup`]), and a service rebuilt from such a file
//! ([`restore`]).
//!
//! The file is a [sealed stream](kura_format::sealed) of a zstd frame of an
//! [archive](kura_format::archive) (`docs/format.md`). Databases are copied consistently
//! while the service runs: SQLite files with `VACUUM INTO`, PostgreSQL with `pg_dump`
//! (custom format; restored with `pg_restore` in one transaction). Each database is one
//! instant, but not the same instant as the others: a vault catalog may be a little older
//! or newer than the service database. `kura-server vault rebuild-catalog` brings every
//! catalog in line with storage afterwards, which a restore from an older copy needs
//! anyway (backups made after the copy are in storage only).
//!
//! The scheduled `metadata-backup` job runs [`ScheduledBackup`], which writes into
//! `metadata_backup_dir` and keeps the newest `metadata_backup_keep` copies.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kura_format::archive::{ArchiveEntry, ArchiveReader, ArchiveWriter};
use kura_format::keys::KdfParams;
use kura_format::sealed::{SealedReader, SealedWriter};
use kura_service::Clock;
use kura_service::jobs::{MetadataBackupReport, MetadataBackupRun, MetadataBackupTask};
use kura_service::secrets::random_hex;
use serde::{Deserialize, Serialize};

use crate::config::{SecretString, ServerConfig};

/// The archive's format, in its `manifest.json`.
const ARCHIVE_FORMAT: u32 = 1;
/// A passphrase shorter than this is refused: the file may be kept anywhere.
pub const MIN_PASSPHRASE: usize = 12;
/// Names of the scheduled copies: `kura-metadata-<UTC time>.kura-backup`.
const SCHEDULED_PREFIX: &str = "kura-metadata-";
const SCHEDULED_SUFFIX: &str = ".kura-backup";
/// zstd level: databases compress well at a low level, and the copy runs beside the service.
const ZSTD_LEVEL: i32 = 3;

/// Why a metadata backup or restore failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the passphrase is shorter than {MIN_PASSPHRASE} characters: the backup may be kept anywhere, so choose a long one"
    )]
    ShortPassphrase,
    #[error("the passphrase does not open {0}: give the passphrase the backup was made with")]
    WrongPassphrase(PathBuf),
    #[error("{path} is not a whole Kura metadata backup: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("copying the database failed: {0}")]
    Database(String),
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        tool: &'static str,
        status: String,
        stderr: String,
    },
    #[error(
        "{0} already holds a service (service.db or service-key): restore into an empty directory, or move the old one away first"
    )]
    NotEmpty(PathBuf),
    #[error(
        "the backup holds a PostgreSQL dump: give --database-url of an empty database to restore it into"
    )]
    NeedsDatabaseUrl,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The first file of every archive: what it holds and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveManifest {
    pub format: u32,
    pub kura_version: String,
    /// When the copy began (RFC 3339, UTC).
    pub created: String,
    pub host: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// The service's data directory when the copy was made.
    pub data_dir: String,
    /// Local vault catalogs included (SQLite services).
    pub vault_catalogs: u64,
}

/// What [`backup`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub file: PathBuf,
    pub bytes: u64,
    pub files: u64,
    pub manifest: ArchiveManifest,
}

/// One file to put in the archive: its name there, and where its bytes are now.
struct Member {
    name: String,
    source: PathBuf,
}

/// Writes a metadata backup of the service configured by `config` into `to` (a new
/// file; written under a temporary name and renamed when whole).
pub async fn backup(
    config: &ServerConfig,
    to: &Path,
    passphrase: &[u8],
    clock: &Clock,
) -> Result<BackupSummary, MetadataError> {
    if passphrase.len() < MIN_PASSPHRASE {
        return Err(MetadataError::ShortPassphrase);
    }
    let folder = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = Staging::new(folder)?;
    let url = config.effective_database_url();
    let sqlite = config.sqlite_file();
    let mut members = Vec::new();
    if let Some(file) = &config.config_file {
        members.push(Member {
            name: "config.toml".into(),
            source: file.clone(),
        });
    }
    if let Some(file) = &sqlite {
        let copy = staging.path.join("service.db");
        copy_sqlite(file, &copy).await?;
        members.push(Member {
            name: "service.db".into(),
            source: copy,
        });
    } else {
        let dump = staging.path.join("service.pgdump");
        pg_dump(&url, &dump)?;
        members.push(Member {
            name: "service.pgdump".into(),
            source: dump,
        });
    }
    let data = &config.data_dir;
    for name in ["service-key", "operator-token", "quickstart.json"] {
        if data.join(name).is_file() {
            members.push(Member {
                name: name.into(),
                source: data.join(name),
            });
        }
    }
    for entry in read_dir_sorted(&data.join("tls"))? {
        if entry.is_file() {
            let name = entry
                .file_name()
                .expect("a listed file has a name")
                .to_string_lossy();
            members.push(Member {
                name: format!("tls/{name}"),
                source: entry.clone(),
            });
        }
    }
    for (name, file) in [
        ("configured/tls-cert.pem", &config.tls_cert),
        ("configured/tls-key.pem", &config.tls_key),
        ("configured/metrics-token", &config.metrics_token_file),
    ] {
        if let Some(file) = file {
            members.push(Member {
                name: name.into(),
                source: file.clone(),
            });
        }
    }
    let mut vault_catalogs = 0;
    for tenant in read_dir_sorted(&data.join("vaults"))? {
        let catalog = tenant.join("default").join("catalog.db");
        if !catalog.is_file() {
            continue;
        }
        let tenant = tenant
            .file_name()
            .expect("a listed folder has a name")
            .to_string_lossy()
            .into_owned();
        let copy = staging.path.join(format!("catalog-{tenant}.db"));
        copy_sqlite(&catalog, &copy).await?;
        members.push(Member {
            name: format!("vaults/{tenant}/default/catalog.db"),
            source: copy,
        });
        vault_catalogs += 1;
    }
    let manifest = ArchiveManifest {
        format: ARCHIVE_FORMAT,
        kura_version: env!("CARGO_PKG_VERSION").into(),
        created: kura_service::rfc3339(clock.now_ms()),
        host: crate::tls::hostname().unwrap_or_default(),
        database: if sqlite.is_some() { "sqlite" } else { "postgres" }.into(),
        data_dir: data.display().to_string(),
        vault_catalogs,
    };
    let target = to.to_owned();
    let passphrase = passphrase.to_vec();
    let written = manifest.clone();
    let files = members.len() as u64 + 1;
    let bytes = tokio::task::spawn_blocking(move || write_archive(&target, &passphrase, &written, &members))
        .await
        .map_err(|e| MetadataError::Database(format!("the backup stopped: {e}")))??;
    drop(staging);
    Ok(BackupSummary {
        file: to.to_owned(),
        bytes,
        files,
        manifest,
    })
}

/// Seals `manifest` and `members` into `to` (via `to.partial`, synced, then renamed).
/// Answers the file's size.
fn write_archive(
    to: &Path,
    passphrase: &[u8],
    manifest: &ArchiveManifest,
    members: &[Member],
) -> Result<u64, MetadataError> {
    let partial = to.with_extension("partial");
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io(&partial))?;
    let mut cleanup = RemoveOnDrop(Some(partial.clone()));
    let damaged = |e: kura_format::FormatError| MetadataError::Damaged {
        path: partial.clone(),
        reason: e.to_string(),
    };
    let sealed =
        SealedWriter::new(BufWriter::new(file), passphrase, KdfParams::default()).map_err(damaged)?;
    let zstd = zstd::stream::write::Encoder::new(sealed, ZSTD_LEVEL).map_err(io(&partial))?;
    let mut archive = ArchiveWriter::new(zstd);
    let manifest_json = serde_json::to_vec_pretty(manifest).expect("plain data");
    let head = ArchiveEntry {
        name: "manifest.json".into(),
        mode: 0o600,
        size: manifest_json.len() as u64,
    };
    archive
        .add(&head, &mut manifest_json.as_slice())
        .map_err(damaged)?;
    for member in members {
        let source = File::open(&member.source).map_err(io(&member.source))?;
        let meta = source.metadata().map_err(io(&member.source))?;
        let entry = ArchiveEntry {
            name: member.name.clone(),
            mode: meta.permissions().mode() & 0o777,
            size: meta.len(),
        };
        archive
            .add(&entry, &mut BufReader::new(source))
            .map_err(|e| MetadataError::Damaged {
                path: member.source.clone(),
                reason: e.to_string(),
            })?;
    }
    let zstd = archive.finish().map_err(damaged)?;
    let sealed = zstd.finish().map_err(io(&partial))?;
    let mut out = sealed.finish().map_err(io(&partial))?;
    out.flush().map_err(io(&partial))?;
    let file = out.into_inner().map_err(|e| MetadataError::Io {
        path: partial.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(&partial))?;
    let bytes = file.metadata().map_err(io(&partial))?.len();
    std::fs::rename(&partial, to).map_err(io(to))?;
    cleanup.0 = None;
    Ok(bytes)
}

/// What [`restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub manifest: ArchiveManifest,
    pub files: u64,
    /// The configuration written for the restored service, when the backup held one.
    pub config: Option<PathBuf>,
    /// Vault catalogs already in the data directory, kept instead of the backup's copy.
    pub catalogs_kept: Vec<String>,
    /// Restored local vault catalogs whose `objects/` folder is not (yet) there.
    pub vaults_without_objects: Vec<String>,
}

/// Rebuilds a service in `data_dir` from the metadata backup `from`. The vault objects
/// are not in a backup: they stay where they are (S3, or a data disk moved or mounted
/// into `data_dir`). A PostgreSQL dump goes into `database_url` (an empty database),
/// in one transaction. Nothing is written into `data_dir` until the whole file has been
/// read and checked.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    passphrase: &[u8],
    database_url: Option<&str>,
) -> Result<RestoreSummary, MetadataError> {
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(io(data_dir))?;
    if data_dir.join("service.db").exists() || data_dir.join("service-key").exists() {
        return Err(MetadataError::NotEmpty(data_dir.to_owned()));
    }
    let data_dir = std::path::absolute(data_dir).map_err(io(data_dir))?;
    let staging = Staging::new(&data_dir)?;
    let (from_path, dir, pass) = (from.to_owned(), staging.path.clone(), passphrase.to_vec());
    let (manifest, names) = tokio::task::spawn_blocking(move || unpack(&from_path, &dir, &pass))
        .await
        .map_err(|e| MetadataError::Database(format!("the restore stopped: {e}")))??;
    let postgres = names.iter().any(|n| n == "service.pgdump");
    if postgres {
        let url = database_url.ok_or(MetadataError::NeedsDatabaseUrl)?;
        pg_restore(url, &staging.path.join("service.pgdump"))?;
    }
    let mut summary = RestoreSummary {
        manifest,
        files: names.len() as u64,
        config: None,
        catalogs_kept: Vec::new(),
        vaults_without_objects: Vec::new(),
    };
    for name in &names {
        let target = match name.as_str() {
            "manifest.json" | "service.pgdump" | "config.toml" => continue,
            other => data_dir.join(other),
        };
        if name.starts_with("vaults/") {
            let vault = target.parent().expect("a catalog is in a vault folder");
            if target.exists() {
                summary.catalogs_kept.push(name.clone());
                continue;
            }
            if !vault.join("objects").is_dir() {
                summary.vaults_without_objects.push(vault.display().to_string());
            }
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::rename(staging.path.join(name), &target).map_err(io(&target))?;
    }
    if names.iter().any(|n| n == "config.toml") {
        let text = std::fs::read_to_string(staging.path.join("config.toml")).map_err(io(&staging.path))?;
        let postgres_url = database_url.filter(|_| postgres);
        let restored = restored_config(&text, &data_dir, postgres_url, &names).map_err(|reason| {
            MetadataError::Damaged {
                path: from.to_owned(),
                reason: format!("its config.toml: {reason}"),
            }
        })?;
        let path = data_dir.join("server.toml");
        kura_service::secrets::write_private_file(&path, restored.as_bytes()).map_err(io(&path))?;
        summary.config = Some(path);
    }
    Ok(summary)
}

/// Reads and checks the whole archive into `dir`; answers its manifest and file names.
fn unpack(
    from: &Path,
    dir: &Path,
    passphrase: &[u8],
) -> Result<(ArchiveManifest, Vec<String>), MetadataError> {
    let damaged = |reason: String| MetadataError::Damaged {
        path: from.to_owned(),
        reason,
    };
    let file = File::open(from).map_err(io(from))?;
    let sealed = match SealedReader::open(BufReader::new(file), passphrase) {
        Ok(reader) => reader,
        Err(kura_format::FormatError::WrongPassphrase) => {
            return Err(MetadataError::WrongPassphrase(from.to_owned()));
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    let zstd = zstd::stream::read::Decoder::new(sealed).map_err(|e| damaged(e.to_string()))?;
    let mut archive = ArchiveReader::new(zstd);
    let mut names = Vec::new();
    let mut manifest = None;
    while let Some((entry, mut content)) = archive.next_entry().map_err(|e| damaged(e.to_string()))? {
        if names.is_empty() && entry.name != "manifest.json" {
            return Err(damaged("it does not begin with manifest.json".into()));
        }
        let target = dir.join(&entry.name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(entry.mode & 0o700 | 0o600)
            .open(&target)
            .map_err(io(&target))?;
        std::io::copy(&mut content, &mut out).map_err(|e| damaged(format!("{}: {e}", entry.name)))?;
        out.sync_all().map_err(io(&target))?;
        if entry.name == "manifest.json" {
            let text = std::fs::read(&target).map_err(io(&target))?;
            let read: ArchiveManifest =
                serde_json::from_slice(&text).map_err(|e| damaged(format!("manifest.json: {e}")))?;
            if read.format != ARCHIVE_FORMAT {
                return Err(damaged(format!(
                    "archive format {} (this kura-server reads {ARCHIVE_FORMAT})",
                    read.format
                )));
            }
            manifest = Some(read);
        }
        names.push(entry.name);
    }
    let manifest = manifest.ok_or_else(|| damaged("it holds no manifest.json".into()))?;
    // Read on to the end, so that the sealed stream checks its final segment is there:
    // a file cut after the archive's end mark is damaged too.
    let mut rest = Vec::new();
    archive
        .into_inner()
        .read_to_end(&mut rest)
        .map_err(|e| damaged(e.to_string()))?;
    if !rest.is_empty() {
        return Err(damaged("bytes after the archive's end".into()));
    }
    Ok((manifest, names))
}

/// The backed-up configuration made to run from `data_dir`: paths point at the restored
/// files, and the database at `database_url` (or the default SQLite file).
fn restored_config(
    text: &str,
    data_dir: &Path,
    database_url: Option<&str>,
    names: &[String],
) -> Result<String, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let path = |p: PathBuf| toml::Value::String(p.display().to_string());
    table.insert("data_dir".into(), path(data_dir.to_owned()));
    match database_url {
        Some(url) => {
            table.insert("database_url".into(), toml::Value::String(url.to_owned()));
        }
        None => {
            // A SQLite file elsewhere was copied into the data directory.
            if table
                .get("database_url")
                .and_then(|v| v.as_str())
                .is_some_and(|u| u.starts_with("sqlite:"))
            {
                table.remove("database_url");
            }
        }
    }
    for (key, name) in [
        ("tls_cert", "configured/tls-cert.pem"),
        ("tls_key", "configured/tls-key.pem"),
        ("metrics_token_file", "configured/metrics-token"),
    ] {
        if names.iter().any(|n| n == name) {
            table.insert(key.into(), path(data_dir.join(name)));
        }
    }
    toml::to_string(&table).map_err(|e| e.to_string())
}

/// The metadata backup job's way: a copy into `metadata_backup_dir` named by its time,
/// keeping the newest `metadata_backup_keep`.
pub struct ScheduledBackup {
    config: ServerConfig,
    clock: Clock,
    dir: PathBuf,
    keep: u32,
    passphrase: SecretString,
}

impl ScheduledBackup {
    /// The job's backup for `config`, if it sets a passphrase file; an unreadable or short
    /// passphrase stops the server, naming the file.
    pub fn from_config(config: &ServerConfig, clock: &Clock) -> Result<Option<ScheduledBackup>, String> {
        let Some(file) = &config.metadata_backup_passphrase_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "metadata_backup_passphrase_file {}: cannot read it: {e}",
                file.display()
            )
        })?;
        let passphrase = text.trim_end_matches(['\n', '\r']);
        if passphrase.len() < MIN_PASSPHRASE {
            return Err(format!(
                "metadata_backup_passphrase_file {}: holds fewer than {MIN_PASSPHRASE} characters",
                file.display()
            ));
        }
        Ok(Some(ScheduledBackup {
            config: config.clone(),
            clock: clock.clone(),
            dir: scheduled_dir(config),
            keep: config.metadata_backup_keep.max(1),
            passphrase: SecretString::new(passphrase),
        }))
    }

    async fn take(&self) -> Result<MetadataBackupReport, MetadataError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let now = self.clock.now_ms();
        let stamp = jiff::Timestamp::from_millisecond(now)
            .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|_| now.to_string());
        let file = self
            .dir
            .join(format!("{SCHEDULED_PREFIX}{stamp}{SCHEDULED_SUFFIX}"));
        let passphrase = self.passphrase.expose().as_bytes();
        let summary = backup(&self.config, &file, passphrase, &self.clock).await?;
        let mut copies = scheduled_copies(&self.dir)?;
        let mut removed = Vec::new();
        while copies.len() > self.keep as usize {
            let oldest = copies.remove(0);
            std::fs::remove_file(&oldest).map_err(io(&oldest))?;
            removed.push(oldest.display().to_string());
        }
        Ok(MetadataBackupReport {
            file: summary.file.display().to_string(),
            bytes: summary.bytes,
            files: summary.files,
            removed,
        })
    }
}

impl MetadataBackupTask for ScheduledBackup {
    fn run(&self) -> MetadataBackupRun<'_> {
        Box::pin(async move { self.take().await.map_err(|e| e.to_string()) })
    }
}

/// Where the scheduled copies go: `metadata_backup_dir`, else `DATA/metadata-backups`.
pub fn scheduled_dir(config: &ServerConfig) -> PathBuf {
    config
        .metadata_backup_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("metadata-backups"))
}

/// The scheduled copies in `dir`, oldest first (their names sort by time).
pub fn scheduled_copies(dir: &Path) -> Result<Vec<PathBuf>, MetadataError> {
    let mut copies: Vec<PathBuf> = read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(SCHEDULED_SUFFIX))
        })
        .collect();
    copies.sort();
    Ok(copies)
}

/// The paths in `dir`, sorted; none when it does not exist.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, MetadataError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    paths.sort();
    Ok(paths)
}

async fn copy_sqlite(from: &Path, to: &Path) -> Result<(), MetadataError> {
    kura_service::db::copy_sqlite(from, to)
        .await
        .map_err(|e| MetadataError::Database(format!("{}: {e}", from.display())))
}

/// `pg_dump` of the service database (only its schema, when the URL chooses one with
/// `options=-c search_path=NAME`).
fn pg_dump(url: &str, to: &Path) -> Result<(), MetadataError> {
    let mut command = Command::new("pg_dump");
    command.args(["--format=custom", "--no-owner", "--file"]).arg(to);
    if let Some(schema) = search_path(url) {
        command.arg(format!("--schema={schema}"));
    }
    command.arg(format!("--dbname={}", without_options(url)));
    run_tool("pg_dump", &mut command)
}

/// `pg_restore` of a dump into an empty database, all or nothing.
fn pg_restore(url: &str, dump: &Path) -> Result<(), MetadataError> {
    let mut command = Command::new("pg_restore");
    command
        .args(["--no-owner", "--single-transaction", "--exit-on-error"])
        .arg(format!("--dbname={}", without_options(url)))
        .arg(dump);
    run_tool("pg_restore", &mut command)
}

fn run_tool(tool: &'static str, command: &mut Command) -> Result<(), MetadataError> {
    let output = command.output().map_err(|e| MetadataError::Tool {
        tool,
        status: "did not start".into(),
        stderr: format!("{e} (install the PostgreSQL client tools of the server's major version)"),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(MetadataError::Tool {
        tool,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// The schema a PostgreSQL URL chooses with `options=-c search_path=NAME`, if any.
fn search_path(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "options")
        .find_map(|(_, value)| {
            value
                .split_whitespace()
                .find_map(|part| part.strip_prefix("search_path=").map(str::to_owned))
        })
}

/// A PostgreSQL URL without its `options` parameter: the dump tools choose the schema
/// themselves, and a restore creates it.
fn without_options(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key != "options")
        .map(|(k, v)| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair(&k, &v)
                .finish()
        })
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// A private folder for the copies being made, removed with everything in it when done.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(beside: &Path) -> Result<Staging, MetadataError> {
        let path = beside.join(format!(".kura-metadata-{}", random_hex(6)));
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io(&path))?;
        Ok(Staging { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes a half-written file unless forgotten.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_and_options() {
        let url = "postgres://root@127.0.0.1:5432/test?sslmode=disable&options=-c%20search_path%3Dt_abc";
        assert_eq!(search_path(url).as_deref(), Some("t_abc"));
        assert_eq!(
            without_options(url),
            "postgres://root@127.0.0.1:5432/test?sslmode=disable"
        );
        assert_eq!(search_path("postgres://h/db"), None);
        assert_eq!(without_options("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn restored_config_points_at_the_new_place() {
        let names = vec!["configured/metrics-token".to_owned()];
        let text = "data_dir = \"/old\"\ndatabase_url = \"sqlite:///old/other.db\"\nmetrics_token_file = \"/etc/x\"\n";
        let out = restored_config(text, Path::new("/new"), None, &names).unwrap();
        let table: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(table["data_dir"].as_str(), Some("/new"));
        assert!(!table.contains_key("database_url"));
        assert_eq!(
            table["metrics_token_file"].as_str(),
            Some("/new/configured/metrics-token")
        );
        let out = restored_config(text, Path::new("/new"), Some("postgres://h/db"), &names).unwrap();
        assert!(out.contains("postgres://h/db"));
    }
}
