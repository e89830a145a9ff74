//! The server's configuration file (TOML), its defaults, and the human-friendly units
//! (sizes like `500MiB`, durations like `3d`) used there and on the command line.
//!
//! Every field here is documented, with its default, in `docs/operator.md`; a test keeps
//! the two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Everything `kura-server serve` needs. Only `data_dir` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Service data: the SQLite database (by default), TLS material, bootstrap files.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; `None` means `sqlite://DATA_DIR/service.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Portal and agent API. Port 0 picks a free port.
    #[serde(default = "default_customer_listen")]
    pub customer_listen: SocketAddr,
    /// Operator API, metrics and health checks; keep it on a management network.
    #[serde(default = "default_management_listen")]
    pub management_listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`. Without both, a generated CA signs a server
    /// certificate kept in `DATA_DIR/tls/`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// How long an agent registration token stays valid.
    #[serde(default = "default_registration_token_ttl", deserialize_with = "de_duration")]
    pub registration_token_ttl: Duration,
    /// Largest request body the API accepts, in bytes.
    #[serde(default = "default_max_body", deserialize_with = "de_size")]
    pub max_body: u64,
    /// Region label given to new tenants that do not name one.
    #[serde(default = "default_region")]
    pub default_region: String,
    /// How long graceful shutdown waits for open requests.
    #[serde(default = "default_shutdown_grace", deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Where vault objects (packs, manifests) live when the database is PostgreSQL:
    /// `DATA_DIR/objects` or an S3 bucket. With SQLite each vault keeps its own directory.
    #[serde(default)]
    pub object_store: ObjectStoreKind,
    /// S3 endpoint URL, e.g. `https://s3.internal:3900` (with `object_store = "s3"`).
    #[serde(default)]
    pub s3_endpoint: String,
    /// S3 region name (Garage's default is `garage`).
    #[serde(default = "default_s3_region")]
    pub s3_region: String,
    /// The bucket holding every tenant's vault objects, each under `t/<tenant>/v/<vault>/`.
    #[serde(default)]
    pub s3_bucket: String,
    /// S3 access key id.
    #[serde(default)]
    pub s3_access_key: String,
    /// S3 secret key (never printed: `Debug` shows `<redacted>`).
    #[serde(default)]
    pub s3_secret_key: SecretString,
    /// Allows a plain-HTTP `s3_endpoint` (a store on a trusted private network only).
    #[serde(default)]
    pub s3_allow_http: bool,
    /// A portal session ends after this long without a request.
    #[serde(default = "default_session_idle_timeout", deserialize_with = "de_duration")]
    pub session_idle_timeout: Duration,
    /// A portal session ends this long after sign-in, however active.
    #[serde(
        default = "default_session_absolute_timeout",
        deserialize_with = "de_duration"
    )]
    pub session_absolute_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed; empty means the socket peer is
    /// the client.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where operators may sign in and call the management API from (CIDRs); empty means
    /// from wherever the management listener can be reached.
    #[serde(default)]
    pub operator_networks: Vec<ipnet::IpNet>,
    /// A file holding the token Prometheus sends as Bearer to read `/metrics`; `None`
    /// serves the metrics to callers inside `operator_networks` (anyone reaching the
    /// management listener when that is empty).
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// Failed logins of one login ID (inside `login_lockout_period`) after which each
    /// further attempt must wait, doubling from one second.
    #[serde(default = "default_login_throttle_after")]
    pub login_throttle_after: u32,
    /// Failed logins of one login ID after which it is locked for `login_lockout_period`.
    #[serde(default = "default_login_lockout_after")]
    pub login_lockout_after: u32,
    /// Failed logins from one source address after which it is locked likewise.
    #[serde(default = "default_login_source_lockout_after")]
    pub login_source_lockout_after: u32,
    /// The window in which failures count, and how long a lockout lasts.
    #[serde(default = "default_login_lockout_period", deserialize_with = "de_duration")]
    pub login_lockout_period: Duration,
    /// SMTP server for outgoing mail (password reset links), e.g.
    /// `smtp://mail.internal:25`; empty means no mail. May hold a password, so never
    /// printed.
    #[serde(default)]
    pub smtp_url: SecretString,
    /// The sender of outgoing mail.
    #[serde(default = "default_smtp_from")]
    pub smtp_from: String,
    /// The address users reach the customer listener at, for links in mail; `None` means
    /// `https://localhost:PORT`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The address operators reach the console at, for links in their mail; `None`
    /// means `https://localhost:PORT` (or the management listener's address when it is
    /// bound to one).
    #[serde(default)]
    pub console_url: Option<String>,
    /// How often the job runner looks for due work (it also wakes when this server
    /// queues some).
    #[serde(default = "default_job_tick", deserialize_with = "de_duration")]
    pub job_tick: Duration,
    /// How long a server holds a running job without renewing its lease; a job of a
    /// server that died is taken over by another once this has passed.
    #[serde(default = "default_job_lease", deserialize_with = "de_duration")]
    pub job_lease: Duration,
    /// Jobs one server runs at the same time.
    #[serde(default = "default_job_workers")]
    pub job_workers: u32,
    /// How often every tenant's vault is garbage-collected; `0s` turns the round off.
    #[serde(default = "default_gc_interval", deserialize_with = "de_duration")]
    pub gc_interval: Duration,
    /// How often every tenant's vault is read back in full and repaired where it can be;
    /// `0s` turns the round off.
    #[serde(default = "default_verify_interval", deserialize_with = "de_duration")]
    pub verify_interval: Duration,
    /// The key (64 hex digits) that seals the secrets the service must read back (TOTP
    /// secrets); empty means `DATA/service-key`, made on first start. Servers sharing one
    /// database must share it. Never printed.
    #[serde(default)]
    pub service_key: SecretString,
    /// How often ended sessions, spent reset links, expired registration tokens and old
    /// job and mail records are deleted.
    #[serde(default = "default_expiry_interval", deserialize_with = "de_duration")]
    pub expiry_interval: Duration,
    /// How often every tenant's usage is measured for the portal's 30-day history (one
    /// row per day keeps the day's last measurement); `0s` turns the round off.
    #[serde(default = "default_meter_interval", deserialize_with = "de_duration")]
    pub meter_interval: Duration,
    /// A file holding the passphrase (at least 12 characters) that seals the scheduled
    /// metadata backups; `None` takes none (`kura-server metadata backup` still works by
    /// hand). Keep a copy of it away from the server: without it no backup opens.
    #[serde(default)]
    pub metadata_backup_passphrase_file: Option<PathBuf>,
    /// Where the scheduled metadata backups go; `None` means `DATA_DIR/metadata-backups`.
    /// Better on another disk or a mounted remote folder.
    #[serde(default)]
    pub metadata_backup_dir: Option<PathBuf>,
    /// How often the metadata is backed up (with a passphrase file); `0s` turns it off.
    #[serde(
        default = "default_metadata_backup_interval",
        deserialize_with = "de_duration"
    )]
    pub metadata_backup_interval: Duration,
    /// How many scheduled copies are kept (the oldest beyond are deleted).
    #[serde(default = "default_metadata_backup_keep")]
    pub metadata_backup_keep: u32,
    /// The file this configuration was read from (the metadata backup keeps a copy). Not
    /// a key of the file.
    #[serde(skip)]
    pub(crate) config_file: Option<PathBuf>,
}

/// A secret from the configuration: read like a string, never shown by `Debug`, so a
/// logged or printed config cannot leak it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(secret.into())
    }

    /// The secret itself, for the one place that must hand it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<redacted>" })
    }
}

/// The object store of the vaults (see [`ServerConfig::object_store`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    /// A local directory, `DATA_DIR/objects`.
    #[default]
    Local,
    /// An S3-compatible bucket (Garage, Ceph RGW, AWS S3, …).
    S3,
}

fn default_customer_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}

fn default_management_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9443))
}

fn default_registration_token_ttl() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

fn default_max_body() -> u64 {
    1024 * 1024
}

fn default_region() -> String {
    "local".to_owned()
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}

fn default_session_idle_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_session_absolute_timeout() -> Duration {
    Duration::from_secs(12 * 3600)
}

fn default_login_throttle_after() -> u32 {
    3
}

fn default_login_lockout_after() -> u32 {
    10
}

fn default_login_source_lockout_after() -> u32 {
    50
}

fn default_login_lockout_period() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_smtp_from() -> String {
    "Kura <kura@localhost>".to_owned()
}

fn default_job_tick() -> Duration {
    Duration::from_secs(5)
}

fn default_job_lease() -> Duration {
    Duration::from_secs(60)
}

fn default_job_workers() -> u32 {
    2
}

fn default_gc_interval() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_verify_interval() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_expiry_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_meter_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_metadata_backup_interval() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_metadata_backup_keep() -> u32 {
    7
}

fn default_s3_region() -> String {
    "us-east-1".to_owned()
}

fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn de_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SizeValue {
        Bytes(u64),
        Text(String),
    }
    match SizeValue::deserialize(deserializer)? {
        SizeValue::Bytes(bytes) => Ok(bytes),
        SizeValue::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

impl ServerConfig {
    /// A configuration with every default, keeping its data in `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            database_url: None,
            customer_listen: default_customer_listen(),
            management_listen: default_management_listen(),
            tls_cert: None,
            tls_key: None,
            registration_token_ttl: default_registration_token_ttl(),
            max_body: default_max_body(),
            default_region: default_region(),
            shutdown_grace: default_shutdown_grace(),
            object_store: ObjectStoreKind::Local,
            s3_endpoint: String::new(),
            s3_region: default_s3_region(),
            s3_bucket: String::new(),
            s3_access_key: String::new(),
            s3_secret_key: SecretString::default(),
            s3_allow_http: false,
            session_idle_timeout: default_session_idle_timeout(),
            session_absolute_timeout: default_session_absolute_timeout(),
            trusted_proxies: Vec::new(),
            operator_networks: Vec::new(),
            metrics_token_file: None,
            login_throttle_after: default_login_throttle_after(),
            login_lockout_after: default_login_lockout_after(),
            login_source_lockout_after: default_login_source_lockout_after(),
            login_lockout_period: default_login_lockout_period(),
            smtp_url: SecretString::default(),
            smtp_from: default_smtp_from(),
            public_url: None,
            console_url: None,
            job_tick: default_job_tick(),
            job_lease: default_job_lease(),
            job_workers: default_job_workers(),
            gc_interval: default_gc_interval(),
            verify_interval: default_verify_interval(),
            expiry_interval: default_expiry_interval(),
            meter_interval: default_meter_interval(),
            service_key: SecretString::default(),
            metadata_backup_passphrase_file: None,
            metadata_backup_dir: None,
            metadata_backup_interval: default_metadata_backup_interval(),
            metadata_backup_keep: default_metadata_backup_keep(),
            config_file: None,
        }
    }

    /// Reads a TOML file. A relative `data_dir` is taken relative to the file's directory,
    /// so a config and its data can move together.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: ServerConfig = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        if config.data_dir.is_relative()
            && let Some(parent) = path.parent()
        {
            config.data_dir = parent.join(&config.data_dir);
        }
        for file in [
            config.metrics_token_file.as_mut(),
            config.metadata_backup_passphrase_file.as_mut(),
            config.metadata_backup_dir.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative()
                && let Some(parent) = path.parent()
            {
                *file = parent.join(&*file);
            }
        }
        config.config_file = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: "tls_cert and tls_key must be given together".to_owned(),
            });
        }
        Ok(config)
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("service.db").display()),
        }
    }

    /// The service database's file when it is SQLite (query options dropped); `None` for
    /// PostgreSQL.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let url = self.effective_database_url();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
    }
}

/// A size as [`parse_size`] reads it back exactly, in the largest binary unit that
/// divides it (`1 TiB`, `1536 MiB`, `1000 B`).
pub fn exact_size(bytes: u64) -> String {
    let unit = ["PiB", "TiB", "GiB", "MiB", "KiB"]
        .into_iter()
        .zip([50u32, 40, 30, 20, 10])
        .find(|(_, shift)| bytes != 0 && bytes.trailing_zeros() >= *shift);
    match unit {
        Some((name, shift)) => format!("{} {name}", bytes >> shift),
        None => format!("{bytes} B"),
    }
}

/// Parses a size: plain bytes (`1048576`), or a number with a unit: `B`, decimal `KB MB GB
/// TB PB` (powers of 1000) or binary `KiB MiB GiB TiB PiB` (powers of 1024). Case of the
/// unit letters is ignored except that `i` marks binary units; fractions are allowed
/// (`1.5GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000u64.pow(2),
        "g" | "gb" => 1000u64.pow(3),
        "t" | "tb" => 1000u64.pow(4),
        "p" | "pb" => 1000u64.pow(5),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "pib" => 1 << 50,
        _ => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {unit:?} (use B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB or PiB)"
            ));
        }
    };
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a number such as 500MiB or 2TiB"
        ));
    }
    let bytes = if let Ok(whole) = number.parse::<u64>() {
        whole.checked_mul(multiplier)
    } else {
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid size {text:?}: {number:?} is not a number"))?;
        let bytes = (value * multiplier as f64).round();
        (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
    };
    bytes.ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Parses a duration: a whole number with a unit `s`, `m`, `h` or `d` (`90s`, `72h`, `3d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: use a number with ms, s, m, h or d, e.g. 3d");
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    let count: u64 = number.parse().map_err(|_| invalid())?;
    count
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_printed() {
        let config: ServerConfig =
            toml::from_str("data_dir = \"d\"\ns3_secret_key = \"hunter2-s3\"\n").unwrap();
        assert_eq!(config.s3_secret_key.expose(), "hunter2-s3");
        assert!(!format!("{config:?}").contains("hunter2-s3"));
    }

    #[test]
    fn exact_sizes_read_back_as_they_were() {
        for bytes in [0, 1000, 1 << 40, 1536 << 20, (1 << 30) + 1, 3 << 50] {
            assert_eq!(
                parse_size(&exact_size(bytes)).unwrap(),
                bytes,
                "{}",
                exact_size(bytes)
            );
        }
        assert_eq!(exact_size(1 << 40), "1 TiB");
        assert_eq!(exact_size(1536 << 20), "1536 MiB");
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").unwrap_err().contains("expected a number"));
        assert!(parse_size("99999999PiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("3d").unwrap(), Duration::from_secs(259_200));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn config_file_fills_defaults_and_resolves_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kura.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\nmax_body = \"2MiB\"\nregistration_token_ttl = \"1h\"\n",
        )
        .unwrap();
        let config = ServerConfig::load(&path).unwrap();
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.max_body, 2 << 20);
        assert_eq!(config.registration_token_ttl, Duration::from_secs(3600));
        assert_eq!(config.customer_listen, default_customer_listen());
        assert!(config.effective_database_url().ends_with("data/service.db"));
        assert_eq!(config.sqlite_file(), Some(config.data_dir.join("service.db")));
        let elsewhere = ServerConfig {
            database_url: Some("sqlite:///srv/kura/db.sqlite?mode=rwc".to_owned()),
            ..config.clone()
        };
        assert_eq!(
            elsewhere.sqlite_file(),
            Some(PathBuf::from("/srv/kura/db.sqlite"))
        );
        let postgres = ServerConfig {
            database_url: Some("postgres://kura@db/kura".to_owned()),
            ..config
        };
        assert_eq!(postgres.sqlite_file(), None);

        std::fs::write(&path, "data_dir = \"d\"\ncolour = \"blue\"\n").unwrap();
        let err = ServerConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    /// Every key an operator can set is explained in the operator manual.
    #[test]
    fn every_config_key_is_documented() {
        let manual = include_str!("../../../docs/operator.md");
        let source = include_str!("config.rs");
        let struct_body = source
            .split("pub struct ServerConfig {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .unwrap();
        let fields: Vec<&str> = struct_body
            .lines()
            .filter_map(|line| line.trim().strip_prefix("pub "))
            .filter_map(|rest| rest.split(':').next())
            .collect();
        assert!(fields.len() >= 10, "{fields:?}");
        for field in fields {
            assert!(
                manual.contains(&format!("`{field}`")),
                "docs/operator.md does not document `{field}`"
            );
        }
    }
}
