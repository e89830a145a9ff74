//! The `kura-server` command: run the service (`serve`, `quickstart`) or manage tenants
//! through the operator API (`tenant ...`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use kura_api::jobs::RunJob;
use kura_server::api::types::{ApprovalView, CreateTenantRequest, TenantView, UpdateTenantRequest};
use kura_server::client::{Gated, ManagementClient, WorkLogFilter};
use kura_server::config::parse_size;
use kura_server::{RunningServer, Server, ServerConfig, quickstart};
use kura_service::model::Language;
use kura_service::ops::operator_accounts::NewAccount;

#[derive(Parser)]
#[command(name = "kura-server", version, about = "Kura multi-tenant backup service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service from a configuration file.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the whole service on SQLite and a local directory, with a demo tenant.
    Quickstart {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Print one JSON object with URLs and credentials as the first line of stdout.
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        customer_listen: SocketAddr,
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9443")]
        management_listen: SocketAddr,
        /// An SMTP server for the service's mail (password reset links), e.g.
        /// smtp://127.0.0.1:2525; without it the service sends no mail.
        #[arg(long, value_name = "URL", env = "KURA_SMTP_URL", hide_env_values = true)]
        smtp_url: Option<String>,
    },
    /// Manage tenants through the operator API.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// See the service's jobs and run one now, through the operator API.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Check the event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Operator accounts, on the server itself (the process owner's way to make the first).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Deletion records of purged tenants: list and fetch them (operator API), print the
    /// key that signs them and check one offline.
    Deletion {
        #[command(subcommand)]
        command: DeletionCommand,
    },
    /// Export every tenant's metered usage for billing (operator API): per day, stored and
    /// logical bytes, machines, snapshots, bytes uploaded and restored.
    Usage {
        #[command(flatten)]
        connection: Connection,
        /// First day, YYYY-MM-DD (default: 30 days before --to).
        #[arg(long, value_name = "DAY")]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today, UTC).
        #[arg(long, value_name = "DAY")]
        to: Option<String>,
        /// CSV (a header line, then one line per tenant and day) instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The two-person rule: requests waiting for a second operator-admin; approve or
    /// reject one (operator API, with a token issued to your own account).
    Approval {
        #[command(subcommand)]
        command: ApprovalCommand,
    },
    /// The service's own backup: its database, keys, TLS material, vault catalogs and
    /// configuration in one file sealed under a passphrase; and a service rebuilt from one.
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
    /// Check this installation as an auditor would: file modes of data and keys, TLS
    /// versions and certificate expiry, listeners, the management listener apart from
    /// the customer's address, mail, the newest metadata backup. Exit 1 on a failure.
    Doctor {
        #[command(flatten)]
        source: ServiceSource,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Notices to tenants (operator API): list, publish, update.
    Notice {
        #[command(subcommand)]
        command: NoticeCommand,
    },
    /// Operator API tokens for scripts (operator API): list, issue, revoke.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Tenants' vaults (operator API).
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
}

/// Where the passphrase of a metadata backup comes from: a file, or the environment;
/// never the command line (`ps` and shell history would keep it).
#[derive(Args)]
struct Passphrase {
    /// A file holding the passphrase (at least 12 characters; one line).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    #[arg(
        long = "passphrase-from-env",
        env = "KURA_METADATA_PASSPHRASE",
        hide = true,
        hide_env_values = true
    )]
    from_env: Option<String>,
}

impl Passphrase {
    fn read(&self) -> Result<String> {
        match (&self.passphrase_file, &self.from_env) {
            (Some(file), _) => Ok(std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the passphrase file {}", file.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned()),
            (None, Some(text)) => Ok(text.clone()),
            (None, None) => anyhow::bail!(
                "give the passphrase with --passphrase-file FILE or in the environment variable KURA_METADATA_PASSPHRASE"
            ),
        }
    }
}

#[derive(Subcommand)]
enum MetadataCommand {
    /// Write a consistent copy of the running service's metadata into a new file.
    Backup {
        #[command(flatten)]
        source: ServiceSource,
        /// The file to write (refused when it exists).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        passphrase: Passphrase,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a service in DIR from a metadata backup (the vault objects stay where they
    /// are: in S3, or a data disk moved into DIR).
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The new data directory (empty, or holding only vault objects).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// For a PostgreSQL service: the empty database to restore into.
        #[arg(long, value_name = "URL", env = "KURA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        #[command(flatten)]
        passphrase: Passphrase,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Rebuild a tenant's vault catalog from the objects in storage (after it was lost,
    /// or after a metadata restore from an older copy), following the job to its end.
    RebuildCatalog {
        #[command(flatten)]
        connection: Connection,
        /// A tenant's id or service code.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        tenant: Option<String>,
        /// Every tenant that is not terminated, one after another.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum ApprovalCommand {
    /// List the waiting requests and those decided in the last 30 days.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Approve another operator-admin's request: it is carried out as asked.
    Approve {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
    /// Reject a request (or withdraw your own).
    Reject {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
}

#[derive(Subcommand)]
enum DeletionCommand {
    /// List the deletion records, newest first.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Fetch one signed record (JSON), to keep or hand to an auditor.
    Show {
        #[command(flatten)]
        connection: Connection,
        id: String,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the service's public key (Ed25519, base64) that signs deletion records.
    PublicKey {
        #[command(flatten)]
        source: ServiceSource,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a signed deletion record offline: exit 0 when the service signed it and it is
    /// unchanged, 1 when not.
    Verify {
        /// The record (JSON), as `deletion show` or the console saved it.
        file: PathBuf,
        /// The service's public key (base64), as `deletion public-key` or
        /// GET /api/v1/operator/deletion-key gave it.
        #[arg(long, value_name = "BASE64", required_unless_present_any = ["config", "data"], conflicts_with_all = ["config", "data"])]
        public_key: Option<String>,
        /// Read the key from this service's configuration instead.
        #[arg(long, value_name = "FILE", conflicts_with = "data")]
        config: Option<PathBuf>,
        /// Read the key from this service's data directory instead.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create an operator account and print its one-time password. The operator signs
    /// in to the console, sets a password of their own and enrols TOTP.
    Create {
        #[command(flatten)]
        source: ServiceSource,
        /// Login ID: 3 to 64 characters a-z, 0-9, '.', '_', '@', '-'.
        #[arg(long)]
        login: String,
        /// `operator-admin` (may manage tenants and operators) or `operator`.
        #[arg(long, value_parser = ["operator-admin", "operator"])]
        role: String,
        /// Where the service may write to the operator (new support requests, approvals
        /// waiting).
        #[arg(long)]
        email: Option<String>,
        /// The language of the operator's mail.
        #[arg(long, value_parser = ["ja", "en"], default_value = "ja")]
        language: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List runs, newest first.
    List {
        #[command(flatten)]
        connection: Connection,
        /// verify, gc, expiry or mail.
        #[arg(long)]
        kind: Option<String>,
        /// queued, running, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        /// A tenant's id or service code.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Queue a run now (gc, verify or meter of one tenant, expiry or mail for the
    /// service); with --wait, follow it to its end and exit 1 if it failed.
    Run {
        #[command(flatten)]
        connection: Connection,
        /// verify, gc, meter, expiry or mail.
        kind: String,
        /// A tenant's id or service code (for verify, gc and meter).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every hash chain of the event log (each tenant's and the operators'); name
    /// the first broken row and exit with status 1 if one is broken.
    Verify {
        #[command(flatten)]
        source: ServiceSource,
    },
    /// Have the running service check every chain (operator API, operator-admins); exit
    /// with status 1 if one is broken. The check is recorded in the work log.
    Check {
        #[command(flatten)]
        connection: Connection,
    },
    /// Export the operator work log (operator API, operator-admins), oldest first; the
    /// export is recorded in the work log.
    WorkLog {
        #[command(flatten)]
        connection: Connection,
        /// From this moment (RFC 3339, e.g. 2026-12-01T00:00:00+09:00).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Until this moment, exclusive (RFC 3339; default: now).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Only this action, e.g. operator.login (docs/events.md).
        #[arg(long)]
        action: Option<String>,
        /// Only this operator's rows (a login ID, exactly).
        #[arg(long)]
        actor: Option<String>,
        /// CSV (a header line, then one line per row) instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Which service's data to open: a config file (as for `serve`) or a data directory (as
/// for `quickstart`).
#[derive(Args)]
#[group(required = true, multiple = false)]
struct ServiceSource {
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

impl ServiceSource {
    fn load(self) -> Result<ServerConfig> {
        match (self.config, self.data) {
            (Some(config), _) => Ok(ServerConfig::load(&config)?),
            (None, Some(data)) => Ok(ServerConfig::with_data_dir(data)),
            (None, None) => anyhow::bail!("give --config FILE or --data DIR"),
        }
    }
}

#[derive(Args)]
struct Connection {
    /// The management listener, e.g. https://localhost:9443.
    #[arg(long, env = "KURA_MANAGEMENT_URL")]
    management_url: String,
    /// CA certificate to trust (the server's DATA/tls/ca.pem when self-signed).
    #[arg(long, env = "KURA_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[arg(long, env = "KURA_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Connection {
    fn client(&self) -> Result<ManagementClient> {
        Ok(ManagementClient::new(
            &self.management_url,
            self.ca_cert.as_deref(),
            &self.operator_token,
        )?)
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant with its first admin and registration token.
    Create {
        #[command(flatten)]
        connection: Connection,
        /// The contract id: 3-32 characters A-Z, 0-9 and '-'.
        #[arg(long)]
        service_code: String,
        #[arg(long)]
        name: String,
        /// Storage quota, e.g. 500GiB, 2TiB, 10GB.
        #[arg(long, value_parser = parse_size)]
        quota: u64,
        #[arg(long)]
        max_machines: u32,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        encryption_required: bool,
        #[arg(long, default_value_t = 0)]
        immutable_days: u32,
        /// Networks agents must connect from, comma-separated CIDRs.
        #[arg(long, value_delimiter = ',')]
        agent_networks: Vec<String>,
        /// IANA time zone (default Asia/Tokyo).
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show one tenant (by id or service code) with its users and machines.
    Show {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// Change a tenant's contract; only the options given change.
    Update {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_size)]
        quota: Option<u64>,
        #[arg(long)]
        max_machines: Option<u32>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        encryption_required: Option<bool>,
        #[arg(long)]
        immutable_days: Option<u32>,
        /// Replaces the list; pass an empty string to allow agents from anywhere.
        #[arg(long, value_delimiter = ',')]
        agent_networks: Option<Vec<String>>,
        #[arg(long)]
        time_zone: Option<String>,
        /// The tenant's default language for pages and mail: ja or en.
        #[arg(long)]
        language: Option<String>,
    },
    /// Lock a tenant out (its data is kept).
    Suspend {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// Lift a suspension.
    Resume {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// Terminate a tenant's contract: it is locked out at once and its data purged after
    /// the grace period, leaving a signed deletion record.
    Terminate {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
        /// Days until the purge, 0 to 30 (default 30).
        #[arg(long, value_name = "DAYS")]
        purge_after_days: Option<u32>,
    },
    /// Purge a terminated tenant now instead of when its grace period ends.
    PurgeNow {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// Withdraw a termination whose purge has not started.
    CancelTermination {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// Issue a new one-time agent registration token.
    RegistrationToken {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// List a tenant's machines (revoked ones too).
    Machines {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
    },
    /// Revoke a machine's credential at once (a compromised host, say); the machine must
    /// register again with a new token.
    RevokeMachine {
        #[command(flatten)]
        connection: Connection,
        tenant: String,
        /// The machine's id or name.
        machine: String,
    },
}

#[derive(Subcommand)]
enum NoticeCommand {
    /// List notices, newest first.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Publish a notice: shown in the portal at once and mailed to each tenant's admins.
    Publish {
        #[command(flatten)]
        connection: Connection,
        /// change, maintenance or incident.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        text: NoticeText,
        /// `all`, or tenant ids or service codes separated by commas.
        #[arg(long, default_value = "all")]
        tenants: String,
    },
    /// Update a notice (an incident's follow-up): mailed again.
    Update {
        #[command(flatten)]
        connection: Connection,
        id: String,
        /// change, maintenance or incident.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        text: NoticeText,
    },
}

/// A notice's text, in Japanese and/or English, and its window.
#[derive(Args)]
struct NoticeText {
    #[arg(long)]
    title_ja: Option<String>,
    #[arg(long)]
    title_en: Option<String>,
    #[arg(long)]
    body_ja: Option<String>,
    #[arg(long)]
    body_en: Option<String>,
    /// When a maintenance window starts (RFC 3339).
    #[arg(long)]
    starts: Option<String>,
    /// When it ends (RFC 3339).
    #[arg(long)]
    ends: Option<String>,
}

impl NoticeText {
    fn body(&self, kind: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": kind,
            "title_ja": self.title_ja,
            "title_en": self.title_en,
            "body_ja": self.body_ja,
            "body_en": self.body_en,
            "starts": self.starts,
            "ends": self.ends,
        })
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// List operator API tokens (never their secrets).
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Issue a token of your own for a script; it is printed this once. Only a person
    /// signed in with password and TOTP may issue one: give your login, the password in
    /// KURA_OPERATOR_PASSWORD (or on standard input) and the current TOTP code.
    Issue {
        /// The management listener, e.g. https://localhost:9443.
        #[arg(long, env = "KURA_MANAGEMENT_URL")]
        management_url: String,
        /// CA certificate to trust (the server's DATA/tls/ca.pem when self-signed).
        #[arg(long, env = "KURA_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// Your operator login ID.
        #[arg(long)]
        login: String,
        /// The current code of your authenticator app.
        #[arg(long)]
        totp: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// What uses it.
        #[arg(long)]
        name: String,
        /// operator-admin or operator (no higher than your own).
        #[arg(long, value_parser = ["operator-admin", "operator"])]
        role: String,
        /// Days it lives (1-365, default 90).
        #[arg(long)]
        days: Option<u32>,
    },
    /// Revoke a token at once.
    Revoke {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    kura_server::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve { config } => {
            let signals = StopSignals::listen()?;
            let config = ServerConfig::load(&config)?;
            let server = Server::start(config).await?;
            run_until_signal(server, signals).await
        }
        Command::Quickstart {
            data,
            json,
            customer_listen,
            management_listen,
            smtp_url,
        } => {
            let signals = StopSignals::listen()?;
            let mut config = quickstart::config(&data, customer_listen, management_listen);
            if let Some(url) = smtp_url {
                config.smtp_url = kura_server::config::SecretString::new(url);
            }
            let (server, info) = quickstart::start(config).await?;
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                print_quickstart(&info, &data);
            }
            run_until_signal(server, signals).await
        }
        Command::Tenant { command } => tenant(command).await,
        Command::Jobs { command } => jobs(command).await,
        Command::Audit {
            command: AuditCommand::Verify { source },
        } => audit_verify(source.load()?).await,
        Command::Audit {
            command: AuditCommand::Check { connection },
        } => audit_check(&connection).await,
        Command::Audit {
            command:
                AuditCommand::WorkLog {
                    connection,
                    from,
                    to,
                    action,
                    actor,
                    csv,
                    output,
                },
        } => {
            let filter = WorkLogFilter {
                from,
                to,
                action,
                actor,
            };
            work_log(&connection, &filter, csv, output).await
        }
        Command::Operator {
            command:
                OperatorCommand::Create {
                    source,
                    login,
                    role,
                    email,
                    language,
                    json,
                },
        } => {
            let role = kura_service::authz::ProviderRole::parse(&role)
                .context("role: write operator-admin or operator")?;
            let account = NewAccount {
                login: &login,
                role,
                email: email.as_deref(),
                language: Language::parse(&language).context("language: write ja or en")?,
            };
            operator_create(source.load()?, account, json).await
        }
        Command::Deletion { command } => deletion(command).await,
        Command::Approval { command } => approval(command).await,
        Command::Usage {
            connection,
            from,
            to,
            csv,
            output,
        } => usage(&connection, from.as_deref(), to.as_deref(), csv, output).await,
        Command::Metadata { command } => metadata(command).await,
        Command::Doctor { source, json } => doctor(source.load()?, json).await,
        Command::Notice { command } => notice(command).await,
        Command::Token { command } => token(command).await,
        Command::Vault {
            command:
                VaultCommand::RebuildCatalog {
                    connection,
                    tenant,
                    all,
                },
        } => rebuild_catalog(&connection, tenant, all).await,
    }
}

async fn notice(command: NoticeCommand) -> Result<()> {
    let (connection, notices) = match command {
        NoticeCommand::List { connection } => {
            let notices = connection.client()?.notices().await?;
            (connection, notices)
        }
        NoticeCommand::Publish {
            connection,
            kind,
            text,
            tenants,
        } => {
            let mut body = text.body(&kind);
            body["tenants"] = if tenants == "all" {
                serde_json::Value::from("all")
            } else {
                tenants
                    .split(',')
                    .map(|t| t.trim())
                    .filter(|t| !t.is_empty())
                    .collect()
            };
            let notice = connection.client()?.publish_notice(&body).await?;
            (connection, vec![notice])
        }
        NoticeCommand::Update {
            connection,
            id,
            kind,
            text,
        } => {
            let notice = connection.client()?.update_notice(&id, &text.body(&kind)).await?;
            (connection, vec![notice])
        }
    };
    if connection.json {
        println!("{}", serde_json::to_string(&notices)?);
        return Ok(());
    }
    println!(
        "{:<32} {:<11} {:>3} {:<25} {:<12} TITLE",
        "ID", "KIND", "REV", "UPDATED", "TENANTS"
    );
    for n in &notices {
        let tenants = match n.tenants.as_array() {
            Some(list) => format!("{} tenants", list.len()),
            None => "all".to_owned(),
        };
        let title = n.title_ja.as_deref().or(n.title_en.as_deref()).unwrap_or("");
        println!(
            "{:<32} {:<11} {:>3} {:<25} {:<12} {title}",
            n.id, n.kind, n.revision, n.updated, tenants
        );
    }
    Ok(())
}

async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::List { connection } => {
            let tokens = connection.client()?.operator_tokens().await?;
            if connection.json {
                println!("{}", serde_json::to_string(&tokens)?);
                return Ok(());
            }
            println!(
                "{:<32} {:<20} {:<15} {:<12} {:<25} STATE",
                "ID", "NAME", "ROLE", "OWNER", "EXPIRES"
            );
            for t in &tokens {
                let state = match (&t.revoked, &t.last_used) {
                    (Some(when), _) => format!("revoked {when}"),
                    (None, Some(when)) => format!("last used {when}"),
                    (None, None) => "never used".to_owned(),
                };
                println!(
                    "{:<32} {:<20} {:<15} {:<12} {:<25} {state}",
                    t.id,
                    t.name,
                    t.role,
                    t.owner.as_deref().unwrap_or("-"),
                    t.expires.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Issue {
            management_url,
            ca_cert,
            login,
            totp,
            json,
            name,
            role,
            days,
        } => {
            let password = operator_password()?;
            let client = ManagementClient::sign_in(
                &management_url,
                ca_cert.as_deref(),
                &login,
                &password,
                Some(&totp),
            )
            .await?;
            let issued = client.issue_operator_token(&name, &role, days).await;
            client.sign_out().await?;
            let issued = issued?;
            if json {
                println!("{}", serde_json::to_string(&issued)?);
            } else {
                println!("{}", issued.token);
                println!(
                    "(token {} for {name}, {role}, expires {}; shown this once: give it to the script in \
                     KURA_OPERATOR_TOKEN, never on a command line)",
                    issued.view.id,
                    issued.view.expires.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Revoke { connection, id } => {
            connection.client()?.revoke_operator_token(&id).await?;
            if !connection.json {
                println!("token {id} revoked");
            }
        }
    }
    Ok(())
}

/// The operator's password: KURA_OPERATOR_PASSWORD, else one line of standard input
/// (asked for, and not echoed, on a terminal).
fn operator_password() -> Result<String> {
    use std::io::{BufRead, Write};
    if let Ok(password) = std::env::var("KURA_OPERATOR_PASSWORD") {
        return Ok(password);
    }
    // SAFETY: tcgetattr fills a plain C struct, all-zero valid, for standard input.
    let mut terminal: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a non-terminal answers -1 and is left alone.
    let on_terminal = unsafe { libc::tcgetattr(0, &mut terminal) } == 0;
    if on_terminal {
        let mut quiet = terminal;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: settings read from this terminal, with echo off.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        eprint!("password: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if on_terminal {
        // SAFETY: puts back the settings read above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &terminal) };
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "give your password in KURA_OPERATOR_PASSWORD or on standard input"
    );
    Ok(password)
}

async fn doctor(config: ServerConfig, json: bool) -> Result<()> {
    use kura_server::doctor::Level;
    let findings = kura_server::doctor::examine(&config).await;
    if json {
        println!("{}", serde_json::to_string(&findings)?);
    } else {
        for f in &findings {
            let level = match f.level {
                Level::Ok => "ok",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{level:<5} {:<18} {}", f.check, f.detail);
        }
    }
    if findings.iter().any(|f| f.level == Level::Fail) {
        std::process::exit(1);
    }
    Ok(())
}

async fn metadata(command: MetadataCommand) -> Result<()> {
    match command {
        MetadataCommand::Backup {
            source,
            to,
            passphrase,
            json,
        } => {
            let config = source.load()?;
            let clock = kura_service::Clock::default();
            let passphrase = passphrase.read()?;
            let summary = kura_server::metadata::backup(&config, &to, passphrase.as_bytes(), &clock).await?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "metadata backup written: {} ({}, {} files: {} database, {} vault catalogs)",
                    summary.file.display(),
                    human_size(summary.bytes),
                    summary.files,
                    summary.manifest.database,
                    summary.manifest.vault_catalogs
                );
                println!(
                    "Keep it, and its passphrase, away from this server. Restore with: \
                     kura-server metadata restore --from FILE --data DIR"
                );
            }
        }
        MetadataCommand::Restore {
            from,
            data,
            database_url,
            passphrase,
            json,
        } => {
            let summary = kura_server::metadata::restore(
                &from,
                &data,
                passphrase.read()?.as_bytes(),
                database_url.as_deref(),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
                return Ok(());
            }
            println!(
                "restored {} files of the backup made {} on {} ({} database) into {}",
                summary.files,
                summary.manifest.created,
                summary.manifest.host,
                summary.manifest.database,
                data.display()
            );
            for kept in &summary.catalogs_kept {
                println!("  kept the catalog already there: {kept}");
            }
            for vault in &summary.vaults_without_objects {
                println!(
                    "  WARNING: no objects/ folder in {vault}: move the vault's objects there before starting"
                );
            }
            let start = match &summary.config {
                Some(config) => format!("kura-server serve --config {}", config.display()),
                None => format!("kura-server quickstart --data {}", data.display()),
            };
            println!("Next: start the service ({start}), then bring every catalog in line with storage");
            println!(
                "(backups made after this copy are in storage only): kura-server vault rebuild-catalog --all"
            );
        }
    }
    Ok(())
}

async fn rebuild_catalog(connection: &Connection, tenant: Option<String>, all: bool) -> Result<()> {
    let client = connection.client()?;
    let tenants = if all {
        client
            .list_tenants()
            .await?
            .into_iter()
            .filter(|t| t.status != "terminated")
            .map(|t| t.id)
            .collect()
    } else {
        vec![
            client
                .resolve_tenant(tenant.as_deref().unwrap_or_default())
                .await?,
        ]
    };
    let mut failed = 0;
    let mut runs = Vec::new();
    for tenant_id in tenants {
        let request = RunJob {
            kind: "rebuild-catalog".into(),
            tenant_id: Some(tenant_id.clone()),
        };
        let mut run = client.run_job(&request).await?;
        while !run.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            run = client.job(&run.id).await?;
        }
        if run.status == "failed" {
            failed += 1;
        }
        if !connection.json {
            let outcome = match (&run.error, &run.result) {
                (Some(error), _) => error.clone(),
                (None, Some(result)) => result.to_string(),
                (None, None) => String::new(),
            };
            println!("{tenant_id}: {} {outcome}", run.status);
        }
        runs.push(run);
    }
    if connection.json {
        println!("{}", serde_json::to_string(&runs)?);
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn usage(
    connection: &Connection,
    from: Option<&str>,
    to: Option<&str>,
    csv: bool,
    output: Option<PathBuf>,
) -> Result<()> {
    let client = connection.client()?;
    let text = if csv {
        client.usage_csv(from, to).await?
    } else {
        let rows = client.usage(from, to).await?;
        if connection.json {
            format!("{}\n", serde_json::to_string(&rows)?)
        } else {
            let mut text = format!(
                "{:<10}  {:<20} {:>10} {:>10} {:>8} {:>9} {:>10} {:>10}\n",
                "DAY", "SERVICE CODE", "STORED", "LOGICAL", "MACHINES", "SNAPSHOTS", "UPLOADED", "RESTORED"
            );
            for r in &rows {
                text.push_str(&format!(
                    "{:<10}  {:<20} {:>10} {:>10} {:>8} {:>9} {:>10} {:>10}\n",
                    r.day,
                    r.service_code,
                    human_size(r.stored_bytes),
                    human_size(r.logical_bytes),
                    r.machines,
                    r.snapshots,
                    human_size(r.uploaded_bytes),
                    human_size(r.restored_bytes)
                ));
            }
            text
        }
    };
    emit(&text, output)
}

/// Writes a command's output to the file asked for, else to standard output.
fn emit(text: &str, output: Option<PathBuf>) -> Result<()> {
    match output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn work_log(
    connection: &Connection,
    filter: &WorkLogFilter,
    csv: bool,
    output: Option<PathBuf>,
) -> Result<()> {
    let client = connection.client()?;
    let text = if csv {
        client.work_log_csv(filter).await?
    } else {
        let rows = client.work_log(filter).await?;
        if connection.json {
            format!("{}\n", serde_json::to_string(&rows)?)
        } else {
            let mut text = format!(
                "{:>6}  {:<25} {:<16} {:<28} {:<15} {} -> {}\n",
                "SEQ", "TIME (UTC)", "ACTOR", "ACTION", "SOURCE", "TARGET", "RESULT"
            );
            for r in &rows {
                text.push_str(&format!(
                    "{:>6}  {:<25} {:<16} {:<28} {:<15} {} -> {}\n",
                    r.seq, r.time_utc, r.actor, r.action, r.source, r.target, r.result
                ));
            }
            text
        }
    };
    emit(&text, output)
}

async fn audit_check(connection: &Connection) -> Result<()> {
    let check = connection.client()?.check_chains().await?;
    if connection.json {
        println!("{}", serde_json::to_string(&check)?);
    } else if check.intact {
        println!(
            "event log intact: {} chains, {} events",
            check.chains, check.events
        );
    } else {
        eprintln!(
            "event log BROKEN: {}",
            check.problem.as_deref().unwrap_or("unknown")
        );
    }
    if !check.intact {
        std::process::exit(1);
    }
    Ok(())
}

async fn approval(command: ApprovalCommand) -> Result<()> {
    let (connection, decision) = match command {
        ApprovalCommand::List { connection } => {
            let all = connection.client()?.approvals().await?;
            if connection.json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!(
                    "{:<32} {:<26} {:<9} {:<16} {:<21} SUMMARY",
                    "REQUEST", "ACTION", "STATUS", "REQUESTED BY", "EXPIRES"
                );
                for a in &all {
                    println!(
                        "{:<32} {:<26} {:<9} {:<16} {:<21} {}",
                        a.id, a.action, a.status, a.requested_by, a.expires, a.summary
                    );
                }
            }
            return Ok(());
        }
        ApprovalCommand::Approve { connection, id } => (connection, ("approve", id)),
        ApprovalCommand::Reject { connection, id } => (connection, ("reject", id)),
    };
    let decided = connection.client()?.decide(&decision.1, decision.0).await?;
    if connection.json {
        println!("{}", serde_json::to_string(&decided)?);
    } else {
        println!(
            "Request {} ({}) is {}: {}",
            decided.id, decided.action, decided.status, decided.summary
        );
        if let Some(outcome) = &decided.outcome {
            println!("{outcome}");
        }
    }
    Ok(())
}

/// Prints a gated call's answer: `done` prints what was done; a request that waits says
/// how it goes on.
fn print_gated<T: serde::Serialize>(answer: &Gated<T>, json: bool, done: impl FnOnce(&T)) -> Result<()> {
    match answer {
        Gated::Done(value) if json => println!("{}", serde_json::to_string(value)?),
        Gated::Done(value) => done(value),
        Gated::AwaitingApproval(request) if json => println!("{}", serde_json::to_string(request)?),
        Gated::AwaitingApproval(request) => print_awaiting(request),
    }
    Ok(())
}

fn print_awaiting(request: &ApprovalView) {
    println!(
        "Waiting for a second operator-admin (two-person rule): {}.",
        request.summary
    );
    println!(
        "Request {} expires {}; another operator-admin approves it in the console (Approvals) or with `kura-server approval approve {}`.",
        request.id, request.expires, request.id
    );
}

async fn deletion(command: DeletionCommand) -> Result<()> {
    match command {
        DeletionCommand::List { connection } => {
            let records = connection.client()?.deletions().await?;
            if connection.json {
                println!("{}", serde_json::to_string(&records)?);
            } else {
                println!(
                    "{:<32} {:<34} {:<26} TENANT ID",
                    "RECORD", "SERVICE CODE", "PURGED"
                );
                for r in &records {
                    println!(
                        "{:<32} {:<34} {:<26} {}",
                        r.id, r.service_code, r.created, r.tenant_id
                    );
                }
            }
        }
        DeletionCommand::Show {
            connection,
            id,
            output,
        } => {
            let record = connection.client()?.deletion(&id).await?;
            let text = serde_json::to_string_pretty(&record)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote deletion record {id} to {}", path.display());
                }
                None => println!("{text}"),
            }
        }
        DeletionCommand::PublicKey { source, json } => {
            let key = kura_server::app::existing_service_key(&source.load()?)?;
            let public_key = kura_service::ops::terminations::encode_key(&key);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"algorithm": "ed25519", "public_key": public_key})
                );
            } else {
                println!("{public_key}");
            }
        }
        DeletionCommand::Verify {
            file,
            public_key,
            config,
            data,
            json,
        } => {
            let public_key = match public_key {
                Some(key) => key,
                None => {
                    let source = ServiceSource { config, data };
                    let key = kura_server::app::existing_service_key(&source.load()?)?;
                    kura_service::ops::terminations::encode_key(&key)
                }
            };
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            match kura_service::ops::terminations::check_record(&text, &public_key) {
                Ok(record) => {
                    if json {
                        println!("{}", serde_json::json!({"valid": true, "record": record}));
                    } else {
                        println!(
                            "valid: deletion record {} of tenant {} ({}), signed by the service's key",
                            record.id, record.service_code, record.tenant_id
                        );
                        println!(
                            "  terminated {} by {}; purged {}",
                            record.terminated_at, record.terminated_by, record.purged_at
                        );
                        println!(
                            "  deleted {} objects ({} bytes), {} snapshots, {} users, {} machines from {}",
                            record.objects_deleted,
                            record.bytes_deleted,
                            record.snapshots_deleted,
                            record.users_deleted,
                            record.machines_deleted,
                            record.storage
                        );
                    }
                }
                Err(err) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"valid": false, "error": err.to_string()})
                        );
                    } else {
                        eprintln!("INVALID: {err}");
                    }
                    std::process::exit(1);
                }
            }
        }
    }
    Ok(())
}

async fn operator_create(config: ServerConfig, account: NewAccount<'_>, json: bool) -> Result<()> {
    let role = account.role;
    let db = kura_service::db::Db::connect(&config.effective_database_url())
        .await
        .context("cannot open the service database")?;
    let now = kura_service::Clock::default().now_ms();
    let created = kura_service::ops::operator_accounts::create_as_owner(&db, now, account).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": created.operator.id.to_string(),
                "login": created.operator.login,
                "role": role.as_str(),
                "password": created.password,
            })
        );
    } else {
        println!(
            "operator account {} ({}) created",
            created.operator.login,
            role.as_str()
        );
        println!("one-time password: {}", created.password);
        println!(
            "Sign in to the console on the management listener (https://HOST:9443/) with it: you will set a \
             password of your own and enrol TOTP (an authenticator app) before anything else."
        );
    }
    Ok(())
}

async fn audit_verify(config: ServerConfig) -> Result<()> {
    let db = kura_service::db::Db::connect(&config.effective_database_url())
        .await
        .context("cannot open the service database")?;
    match kura_service::audit::verify(&db).await? {
        Ok(verified) => {
            println!(
                "event log intact: {} chains, {} events",
                verified.chains, verified.events
            );
            Ok(())
        }
        Err(broken) => {
            eprintln!("event log BROKEN: {broken}");
            std::process::exit(1);
        }
    }
}

/// SIGINT and SIGTERM, listened for before the service starts: one that arrives while
/// it starts (a supervisor that gives up, a test that has read the address it printed)
/// must stop it gracefully, not kill it by the default action.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully.
async fn run_until_signal(server: RunningServer, mut signals: StopSignals) -> Result<()> {
    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        tokio::select! {
            _ = signals.interrupt.recv() => {}
            _ = signals.terminate.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.shutdown();
    });
    server.wait().await?;
    Ok(())
}

/// What quickstart prints. The operator token is named by its file, never printed into a
/// command line, where `ps` and the shell's history would keep it.
fn print_quickstart(info: &quickstart::QuickstartInfo, data: &std::path::Path) {
    let ca = info.ca_cert.display();
    let token_file = kura_server::app::operator_token_path(data);
    let token_file = token_file.display();
    let data = data.display();
    println!(
        "Kura is running.

  customer portal  {customer}/   (sign in with the demo admin below; Japanese or English)
  customer API     {customer}/api/v1
  management API   {management}   (operators only)
  CA certificate   {ca}   (the browser will ask you to accept it)

Demo tenant {code} (id {tenant})
  admin login      {login}
  admin password   {password}
  registration token (registers one machine; valid for up to 3 days):
    {token}

Operator console   {management}/   (the provider's side; operators sign in with TOTP)
Operator token     in {token_file} (mode 0600; for scripts, keep it secret)

What to do next:
  - Open the portal: {customer}/login and sign in as {login}
  - Make your operator account, then sign in to the console at {management}/:
      kura-server operator create --data {data} --login YOUR-LOGIN --role operator-admin
  - Check the service:
      curl --cacert {ca} {management}/healthz
  - Use the management API from this shell (the token stays out of ps and history):
      export KURA_MANAGEMENT_URL={management} KURA_CA_CERT={ca}
      export KURA_OPERATOR_TOKEN=\"$(cat {token_file})\"
  - Create a tenant:
      kura-server tenant create --service-code ACME-0001 --name 'ACME Corp' --quota 500GiB --max-machines 10
  - See the service's background jobs (gc, verify, expiry, mail) and the metered usage:
      kura-server jobs list
      kura-server usage
  - Back up a machine (agent side; the passphrase never leaves it):
      kura register --server {customer} --ca-cert {ca} --token {token}
      kura init --encrypt
      kura backup /etc
      kura snapshots

Press Ctrl-C to stop; starting again with the same --data reuses everything.",
        customer = info.customer_url,
        management = info.management_url,
        code = info.service_code,
        tenant = info.tenant_id,
        login = info.admin_login,
        password = info.admin_password,
        token = info.registration_token,
    );
}

async fn tenant(command: TenantCommand) -> Result<()> {
    let client = Connection::client;
    match command {
        TenantCommand::Create {
            connection,
            service_code,
            name,
            quota,
            max_machines,
            region,
            encryption_required,
            immutable_days,
            agent_networks,
            time_zone,
        } => {
            let request = CreateTenantRequest {
                service_code,
                name,
                quota_bytes: quota,
                max_machines,
                region,
                encryption_required,
                immutable_days,
                agent_networks: agent_networks.into_iter().filter(|net| !net.is_empty()).collect(),
                time_zone,
            };
            let created = client(&connection)?.create_tenant(&request).await?;
            if connection.json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!(
                    "Created tenant {} (id {})",
                    created.service_code, created.tenant_id
                );
                println!("  admin login         {}", created.admin_login);
                println!("  admin password      {}   (shown once)", created.admin_password);
                println!("  registration token  {}", created.registration_token);
                println!(
                    "                      (one machine, expires {})",
                    created.registration_token_expires
                );
            }
        }
        TenantCommand::List { connection } => {
            let tenants = client(&connection)?.list_tenants().await?;
            if connection.json {
                println!("{}", serde_json::to_string(&tenants)?);
            } else {
                println!(
                    "{:<34} {:<32} {:<10} {:>14} {:>8}  NAME",
                    "SERVICE CODE", "ID", "STATUS", "QUOTA", "MACHINES"
                );
                for tenant in &tenants {
                    println!(
                        "{:<34} {:<32} {:<10} {:>14} {:>8}  {}",
                        tenant.service_code,
                        tenant.id,
                        tenant.status,
                        human_size(tenant.quota_bytes),
                        tenant.max_machines,
                        tenant.name
                    );
                }
            }
        }
        TenantCommand::Show { connection, tenant } => {
            let client = client(&connection)?;
            let detail = client.show_tenant(&client.resolve_tenant(&tenant).await?).await?;
            if connection.json {
                println!("{}", serde_json::to_string(&detail)?);
            } else {
                print_tenant(&detail.tenant);
                for user in &detail.users {
                    println!("  user                {} ({})", user.login, user.role);
                }
                for machine in &detail.machines {
                    let state = machine
                        .revoked
                        .as_deref()
                        .map_or("active".to_owned(), |at| format!("revoked {at}"));
                    println!("  machine             {} {} ({state})", machine.id, machine.name);
                }
            }
        }
        TenantCommand::Update {
            connection,
            tenant,
            name,
            quota,
            max_machines,
            region,
            encryption_required,
            immutable_days,
            agent_networks,
            time_zone,
            language,
        } => {
            let update = UpdateTenantRequest {
                name,
                quota_bytes: quota,
                max_machines,
                region,
                encryption_required,
                immutable_days,
                agent_networks: agent_networks
                    .map(|nets| nets.into_iter().filter(|net| !net.is_empty()).collect()),
                time_zone,
                language,
            };
            let client = client(&connection)?;
            let answer = client
                .update_tenant(&client.resolve_tenant(&tenant).await?, &update)
                .await?;
            print_gated(&answer, connection.json, print_tenant)?;
        }
        TenantCommand::Suspend { connection, tenant } => {
            let client = client(&connection)?;
            let view = client
                .suspend_tenant(&client.resolve_tenant(&tenant).await?)
                .await?;
            print_view(&view, connection.json)?;
        }
        TenantCommand::Resume { connection, tenant } => {
            let client = client(&connection)?;
            let view = client
                .resume_tenant(&client.resolve_tenant(&tenant).await?)
                .await?;
            print_view(&view, connection.json)?;
        }
        TenantCommand::Terminate {
            connection,
            tenant,
            purge_after_days,
        } => {
            let client = client(&connection)?;
            let answer = client
                .terminate_tenant(&client.resolve_tenant(&tenant).await?, purge_after_days)
                .await?;
            print_gated(&answer, connection.json, |done| {
                println!(
                    "Terminated tenant {} (id {}): locked out now; its data is purged {} (job {}).",
                    done.tenant.service_code,
                    done.tenant.id,
                    done.termination.purge_due,
                    done.termination.purge_job
                );
                println!(
                    "Until then `kura-server tenant cancel-termination {}` withdraws it.",
                    done.tenant.service_code
                );
            })?;
        }
        TenantCommand::PurgeNow { connection, tenant } => {
            let client = client(&connection)?;
            let answer = client.purge_now(&client.resolve_tenant(&tenant).await?).await?;
            print_gated(&answer, connection.json, |tenant| {
                println!(
                    "The purge of tenant {} runs now; `kura-server deletion list` shows its record once done.",
                    tenant.service_code
                );
            })?;
        }
        TenantCommand::CancelTermination { connection, tenant } => {
            let client = client(&connection)?;
            let view = client
                .cancel_termination(&client.resolve_tenant(&tenant).await?)
                .await?;
            print_view(&view, connection.json)?;
        }
        TenantCommand::Machines { connection, tenant } => {
            let client = client(&connection)?;
            let machines = client.machines(&client.resolve_tenant(&tenant).await?).await?;
            if connection.json {
                println!("{}", serde_json::to_string(&machines)?);
            } else {
                println!("{:<32} {:<24} {:<25} STATE", "ID", "NAME", "REGISTERED");
                for m in &machines {
                    let state = m
                        .revoked
                        .as_deref()
                        .map_or("active".to_owned(), |when| format!("revoked {when}"));
                    println!("{:<32} {:<24} {:<25} {state}", m.id, m.name, m.created);
                }
            }
        }
        TenantCommand::RevokeMachine {
            connection,
            tenant,
            machine,
        } => {
            let client = client(&connection)?;
            let tenant_id = client.resolve_tenant(&tenant).await?;
            let machines = client.machines(&tenant_id).await?;
            let found = machines
                .iter()
                .find(|m| m.id == machine || m.name == machine)
                .with_context(|| {
                    format!(
                        "{tenant} has no machine {machine:?} (see `kura-server tenant machines {tenant}`)"
                    )
                })?;
            client.revoke_machine(&tenant_id, &found.id).await?;
            if !connection.json {
                println!(
                    "machine {} ({}) revoked: its agent's credential no longer works",
                    found.name, found.id
                );
            }
        }
        TenantCommand::RegistrationToken { connection, tenant } => {
            let client = client(&connection)?;
            let token = client
                .issue_registration_token(&client.resolve_tenant(&tenant).await?)
                .await?;
            if connection.json {
                println!("{}", serde_json::to_string(&token)?);
            } else {
                println!("{}", token.registration_token);
                println!("(one machine, expires {})", token.expires);
            }
        }
    }
    Ok(())
}

async fn jobs(command: JobsCommand) -> Result<()> {
    match command {
        JobsCommand::List {
            connection,
            kind,
            status,
            tenant,
        } => {
            let client = connection.client()?;
            let tenant = tenant_id(&client, tenant).await?;
            let runs = client
                .list_jobs(kind.as_deref(), status.as_deref(), tenant.as_deref())
                .await?;
            if connection.json {
                println!("{}", serde_json::to_string(&runs)?);
            } else {
                println!(
                    "{:<32} {:<7} {:<10} {:<25} {:>3}  {:<32} ERROR",
                    "ID", "KIND", "STATUS", "QUEUED", "TRY", "TENANT"
                );
                for run in &runs {
                    println!(
                        "{:<32} {:<7} {:<10} {:<25} {:>3}  {:<32} {}",
                        run.id,
                        run.kind,
                        run.status,
                        run.queued,
                        run.attempts,
                        run.tenant_id.as_deref().unwrap_or("-"),
                        run.error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        JobsCommand::Run {
            connection,
            kind,
            tenant,
            wait,
        } => {
            let client = connection.client()?;
            let tenant_id = tenant_id(&client, tenant).await?;
            let mut run = client.run_job(&RunJob { kind, tenant_id }).await?;
            while wait && !run.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                run = client.job(&run.id).await?;
            }
            if connection.json {
                println!("{}", serde_json::to_string(&run)?);
            } else {
                println!("Job {} ({}) is {}", run.id, run.kind, run.status);
                if let Some(result) = &run.result {
                    println!("  result  {result}");
                }
                if let Some(error) = &run.error {
                    println!("  error   {error}");
                }
            }
            if run.status == "failed" {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// The id of a tenant named by id or service code, if one is named.
async fn tenant_id(client: &ManagementClient, tenant: Option<String>) -> Result<Option<String>> {
    Ok(match tenant {
        Some(tenant) => Some(client.resolve_tenant(&tenant).await?),
        None => None,
    })
}

fn print_view(view: &TenantView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        print_tenant(view);
    }
    Ok(())
}

fn print_tenant(tenant: &TenantView) {
    let networks = if tenant.agent_networks.is_empty() {
        "any".to_owned()
    } else {
        tenant.agent_networks.join(", ")
    };
    println!("Tenant {} (id {})", tenant.service_code, tenant.id);
    println!("  name                {}", tenant.name);
    println!("  status              {}", tenant.status);
    println!("  quota               {}", human_size(tenant.quota_bytes));
    println!("  max machines        {}", tenant.max_machines);
    println!("  region              {}", tenant.region);
    println!("  encryption required {}", tenant.encryption_required);
    println!("  immutable days      {}", tenant.immutable_days);
    println!("  agent networks      {networks}");
    println!("  time zone           {}", tenant.time_zone);
    println!(
        "  language            {}",
        tenant.language.as_deref().unwrap_or("(by time zone)")
    );
    println!("  created             {}", tenant.created);
}

/// Binary units, exact when the size is a whole number of them.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["PiB", "TiB", "GiB", "MiB", "KiB"];
    for (index, unit) in UNITS.iter().enumerate() {
        let size = 1u64 << (10 * (5 - index));
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}
