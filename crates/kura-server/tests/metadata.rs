//! The service's own backup, end to end through the `kura-server` binary: a metadata
//! backup taken while the service runs, restored into a new data directory beside the
//! surviving vault objects, serves the same tenants, users, operator token and snapshots;
//! `vault rebuild-catalog` then finds the backup made after the copy, and after a lost
//! catalog gets every snapshot back. Damaged files and wrong passphrases change nothing.
//! The scheduled `metadata-backup` job keeps the newest copies. On SQLite and PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kura_server::ServerConfig;
use kura_testing::agent::Agent;
use kura_testing::{TestServer, prompt_jobs};
use reqwest::Method;
use serde_json::{Value, json};

const PASSPHRASE: &str = "a long metadata passphrase";

/// Runs the binary on a blocking thread, so the in-process server keeps answering.
async fn kura_server(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kura-server"));
    command.args(args).env_remove("KURA_METADATA_PASSPHRASE");
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a restored service must still have: the tenant admin, the machine's credential and
/// the snapshots in its vault.
struct Before {
    tenant_id: String,
    code: String,
    admin_login: String,
    admin_password: String,
    credential: String,
    machine_id: String,
    snapshots: Vec<String>,
}

/// The machine of `before` talking to `server`.
fn agent_of(server: &TestServer, before: &Before) -> Agent {
    Agent {
        http: server.http.clone(),
        base: server.customer.clone(),
        credential: before.credential.clone(),
        machine_id: before.machine_id.clone(),
        codec: kura_format::BlobCodec::plain(3),
    }
}

/// Moves what a data disk would keep (the vault objects) from `from` into `to`.
fn move_objects(from: &Path, to: &Path) {
    let vaults = from.join("vaults");
    if vaults.is_dir() {
        for tenant in std::fs::read_dir(&vaults).unwrap() {
            let tenant = tenant.unwrap().path();
            let target = to
                .join("vaults")
                .join(tenant.file_name().unwrap())
                .join("default");
            std::fs::create_dir_all(&target).unwrap();
            std::fs::rename(tenant.join("default/objects"), target.join("objects")).unwrap();
        }
    }
    if from.join("objects").is_dir() {
        std::fs::rename(from.join("objects"), to.join("objects")).unwrap();
    }
}

async fn backup_restore_rebuild(database: Option<String>) {
    let postgres = database.is_some();
    let url = database.clone();
    let server = kura_testing::start(|config: &mut ServerConfig| {
        prompt_jobs(config);
        config.database_url = url;
    })
    .await;
    let created = server.create_tenant("META-0001", 3, json!({})).await;
    // The name the agent writes into its manifests (`kura` writes the machine's name).
    let agent = Agent::register(
        &server,
        created["registration_token"].as_str().unwrap(),
        "test-host",
    )
    .await;
    agent.create_vault().await;
    let first = agent.backup("etc", &[b"hostname", b"hosts"]).await;
    let data = server.data_dir().to_owned();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("meta.kura-backup");
    let file_arg = file.to_str().unwrap();
    let data_arg = data.to_str().unwrap();
    let mut source = vec!["--data", data_arg];
    let config_file = out.path().join("server.toml");
    if let Some(url) = &database {
        std::fs::write(
            &config_file,
            format!("data_dir = {data_arg:?}\ndatabase_url = {url:?}\n"),
        )
        .unwrap();
        source = vec!["--config", config_file.to_str().unwrap()];
    }

    // A short passphrase, or none, is refused before anything is written.
    let args = [&["metadata", "backup"][..], &source, &["--to", file_arg]].concat();
    let refused = kura_server(&args, &[("KURA_METADATA_PASSPHRASE", "short")]).await;
    assert!(
        !refused.status.success() && text(&refused).contains("shorter than 12"),
        "{}",
        text(&refused)
    );
    let refused = kura_server(&args, &[]).await;
    assert!(
        text(&refused).contains("KURA_METADATA_PASSPHRASE"),
        "{}",
        text(&refused)
    );
    assert!(!file.exists());

    // Taken while the service runs.
    let taken = kura_server(
        &[&args[..], &["--json"]].concat(),
        &[("KURA_METADATA_PASSPHRASE", PASSPHRASE)],
    )
    .await;
    assert!(taken.status.success(), "{}", text(&taken));
    let summary: Value = serde_json::from_slice(&taken.stdout).unwrap();
    assert_eq!(
        summary["manifest"]["database"],
        if postgres { "postgres" } else { "sqlite" }
    );
    assert_eq!(
        summary["manifest"]["vault_catalogs"],
        if postgres { 0 } else { 1 }
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let sealed = std::fs::read(&file).unwrap();
    assert!(sealed.starts_with(b"KURASEAL"));
    let key = std::fs::read(data.join("service-key")).unwrap();
    assert!(
        !sealed.windows(key.len()).any(|w| w == key.as_slice()),
        "the service key is not in the file in the clear"
    );

    // A backup after the copy: in storage only, until the catalog is rebuilt.
    let second = agent
        .backup("etc", &[b"hostname", b"hosts", b"resolv.conf"])
        .await;
    let before = Before {
        tenant_id: created["tenant_id"].as_str().unwrap().to_owned(),
        code: "META-0001".into(),
        admin_login: created["admin_login"].as_str().unwrap().to_owned(),
        admin_password: created["admin_password"].as_str().unwrap().to_owned(),
        credential: agent.credential.clone(),
        machine_id: agent.machine_id.clone(),
        snapshots: vec![first.clone(), second.clone()],
    };
    let operator_token = server.operator_token.clone();
    let TestServer { server: running, .. } = server;
    running.shutdown().await.unwrap();

    let restored = tempfile::tempdir().unwrap();
    move_objects(&data, restored.path());
    let target = restored.path().to_str().unwrap();
    let mut restore_args = vec!["metadata", "restore", "--from", file_arg, "--data", target];
    let new_database = match &database {
        Some(_) => Some(NewDatabase::create().await),
        None => None,
    };
    let restore_url = new_database.as_ref().map(|db| db.url(&database.clone().unwrap()));
    if let Some(url) = &restore_url {
        restore_args.extend(["--database-url", url.as_str()]);
    }

    // A wrong passphrase, or a damaged file, restores nothing.
    let wrong = kura_server(
        &restore_args,
        &[("KURA_METADATA_PASSPHRASE", "not the passphrase at all")],
    )
    .await;
    assert!(text(&wrong).contains("does not open"), "{}", text(&wrong));
    let cut = out.path().join("cut.kura-backup");
    std::fs::write(&cut, &sealed[..sealed.len() - 40]).unwrap();
    let mut flipped = sealed.clone();
    flipped[sealed.len() / 2] ^= 1;
    let flipped_file = out.path().join("flipped.kura-backup");
    std::fs::write(&flipped_file, &flipped).unwrap();
    for bad in [&cut, &flipped_file] {
        let mut args = restore_args.clone();
        args[3] = bad.to_str().unwrap();
        let damaged = kura_server(&args, &[("KURA_METADATA_PASSPHRASE", PASSPHRASE)]).await;
        assert!(
            !damaged.status.success() && text(&damaged).contains("is not a whole Kura metadata backup"),
            "{}",
            text(&damaged)
        );
    }
    let left: Vec<String> = std::fs::read_dir(restored.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "vaults" && n != "objects")
        .collect();
    assert!(left.is_empty(), "nothing written: {left:?}");

    let done = kura_server(&restore_args, &[("KURA_METADATA_PASSPHRASE", PASSPHRASE)]).await;
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("vault rebuild-catalog --all"),
        "{}",
        text(&done)
    );
    // Restoring over a service is refused.
    let again = kura_server(&restore_args, &[("KURA_METADATA_PASSPHRASE", PASSPHRASE)]).await;
    assert!(
        text(&again).contains("already holds a service"),
        "{}",
        text(&again)
    );

    let url = restore_url.clone();
    let server = kura_testing::start_in(restored, |config: &mut ServerConfig| {
        prompt_jobs(config);
        config.database_url = url;
    })
    .await;
    assert_eq!(
        server.operator_token, operator_token,
        "the bootstrap token file is back"
    );
    let mut server = server;
    server.operator_token = operator_token;
    let admin = server.login(&before.admin_login, &before.admin_password).await;
    let (status, usage) = admin.get("/api/v1/usage").await;
    assert_eq!(status, 200, "{usage}");
    let machine = agent_of(&server, &before);
    assert_eq!(
        machine.snapshot_ids().await,
        std::slice::from_ref(&first),
        "the copy's catalog"
    );

    // The backup made after the copy comes back from storage.
    let rebuilt = rebuild_catalog_cli(&server, &before.code).await;
    assert!(rebuilt.contains("succeeded"), "{rebuilt}");
    assert!(rebuilt.contains("\"snapshots_reattached\":1"), "{rebuilt}");
    let mut ids = machine.snapshot_ids().await;
    ids.sort();
    let mut want = before.snapshots.clone();
    want.sort();
    assert_eq!(ids, want);

    // A lost catalog: every snapshot back, and the data reads.
    lose_catalog(&server, &before, restore_url.as_deref()).await;
    let job = server.run_job("rebuild-catalog", Some(&before.tenant_id)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["snapshots"], 2, "{job}");
    assert_eq!(job["result"]["snapshots_restored"], 2, "{job}");
    let mut ids = machine.snapshot_ids().await;
    ids.sort();
    assert_eq!(ids, want);
    assert_eq!(machine.verify(true).await["status"], "succeeded");
    let third = machine.backup("etc", &[b"hostname", b"motd"]).await;
    assert_eq!(machine.snapshot_ids().await.len(), 3, "{third}");
    let (_, events) = admin.get("/api/v1/events?action=vault.rebuild").await;
    assert!(events.to_string().contains("vault.rebuild"), "{events}");
    drop(server);
    if let Some(db) = new_database {
        db.drop().await;
    }
}

/// Runs `kura-server vault rebuild-catalog --tenant CODE` against `server`; its output.
async fn rebuild_catalog_cli(server: &TestServer, code: &str) -> String {
    let ca = server.server.ca_cert().unwrap().to_str().unwrap().to_owned();
    let output = kura_server(
        &["vault", "rebuild-catalog", "--tenant", code],
        &[
            ("KURA_MANAGEMENT_URL", server.management.as_str()),
            ("KURA_CA_CERT", ca.as_str()),
            ("KURA_OPERATOR_TOKEN", server.operator_token.as_str()),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

/// Deletes the tenant's catalog: its `catalog.db` (SQLite), or every row of its vault
/// (PostgreSQL). The server still holds the vault open, so the rebuild must replace it.
async fn lose_catalog(server: &TestServer, before: &Before, url: Option<&str>) {
    let vault = format!("{}/default", before.tenant_id);
    match url {
        None => {
            let dir = server.data_dir().join("vaults").join(&vault);
            for name in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            for table in [
                "vault_snapshots",
                "vault_chunks",
                "vault_packs",
                "vault_key_slots",
                "vault_meta",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE vault = $1"
                )))
                .bind(&vault)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
    }
}

/// A fresh PostgreSQL database to restore a dump into, dropped at the end.
struct NewDatabase {
    name: String,
}

impl NewDatabase {
    const ADMIN: &str = "postgres://root@127.0.0.1:5432/test";

    async fn create() -> NewDatabase {
        let name = format!("kura_restore_{}", kura_server::secrets::random_hex(6));
        let pool = sqlx::PgPool::connect(Self::ADMIN).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        NewDatabase { name }
    }

    /// The URL of `original` (with its schema option) in this database instead.
    fn url(&self, original: &str) -> String {
        let (_, query) = original.split_once('?').unwrap_or((original, ""));
        format!("postgres://root@127.0.0.1:5432/{}?{query}", self.name)
    }

    async fn drop(self) {
        let pool = sqlx::PgPool::connect(Self::ADMIN).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_rebuild_on_sqlite() {
    backup_restore_rebuild(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_rebuild_on_postgres() {
    let schema = kura_testing::postgres::PgSchema::create("meta").await;
    backup_restore_rebuild(Some(schema.url())).await;
}

/// The scheduled job: a copy per run in `metadata_backup_dir`, the oldest beyond
/// `metadata_backup_keep` deleted, each run in the operator work log; without a
/// passphrase file the job is refused with what to set, and a short one stops the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_metadata_backups_keep_the_newest() {
    let secrets = tempfile::tempdir().unwrap();
    let passphrase_file = secrets.path().join("passphrase");
    std::fs::write(&passphrase_file, format!("{PASSPHRASE}\n")).unwrap();
    let copies: PathBuf = secrets.path().join("copies");
    let (file, dir) = (passphrase_file.clone(), copies.clone());
    let server = kura_testing::start(move |config: &mut ServerConfig| {
        prompt_jobs(config);
        config.metadata_backup_interval = std::time::Duration::ZERO;
        config.metadata_backup_passphrase_file = Some(file);
        config.metadata_backup_dir = Some(dir);
        config.metadata_backup_keep = 2;
    })
    .await;
    server.create_tenant("META-0002", 1, json!({})).await;
    let mut files = Vec::new();
    for _ in 0..3 {
        let job = server.run_job("metadata-backup", None).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        files.push(job["result"]["file"].as_str().unwrap().to_owned());
        // Copies are named by the second they were taken.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let mut kept: Vec<String> = std::fs::read_dir(&copies)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    kept.sort();
    assert_eq!(kept, files[1..], "the oldest copy was deleted");
    let (status, log) = server
        .operator(
            Method::GET,
            "/api/v1/operator/events?action=service.metadata_backup",
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log.as_array().unwrap().len(), 3, "{log}");
    assert!(log.to_string().contains("1 older copies removed"), "{log}");

    // The newest copy restores.
    let restored = tempfile::tempdir().unwrap();
    let done = kura_server(
        &[
            "metadata",
            "restore",
            "--from",
            &files[2],
            "--data",
            restored.path().to_str().unwrap(),
        ],
        &[("KURA_METADATA_PASSPHRASE", PASSPHRASE)],
    )
    .await;
    assert!(done.status.success(), "{}", text(&done));
    assert!(restored.path().join("service.db").is_file());

    // Without a passphrase file there is no schedule, and run-now says what to set.
    let plain = kura_testing::start(prompt_jobs).await;
    let (status, body) = plain
        .operator(
            Method::POST,
            "/api/v1/operator/jobs",
            Some(json!({ "kind": "metadata-backup" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("metadata_backup_passphrase_file"),
        "{body}"
    );

    // A passphrase file with too short a passphrase stops the server, naming it.
    std::fs::write(&passphrase_file, "short\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::with_data_dir(data.path());
    config.customer_listen = "127.0.0.1:0".parse().unwrap();
    config.management_listen = "127.0.0.1:0".parse().unwrap();
    config.metadata_backup_passphrase_file = Some(passphrase_file.clone());
    let err = kura_server::Server::start(config).await.err().expect("refused");
    assert!(err.to_string().contains("passphrase"), "{err}");
}
