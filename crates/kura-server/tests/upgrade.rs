//! A service database of the previous schema (migrations 0001–0003, as the release before
//! jobs and the mail outbox left it, with a plain-text TOTP secret) upgrades in place: the
//! server migrates it at start, seals the TOTP secret, and every account, machine and
//! operator token keeps working.

use std::path::Path;

use kura_server::ServerConfig;
use kura_testing::postgres::PgSchema;
use kura_testing::user::try_login_with;
use kura_testing::{TestServer, parts};
use serde_json::json;

const OPERATOR_TOKEN: &str = "kura_op_0000000000000000000000000000000000000000000000000000000000000001";
const AGENT_CREDENTIAL: &str = "kura_agent_00000000000000000000000000000000000000000000000000000000000002";
const PASSWORD: &str = "an old but long passphrase";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const TENANT: &str = "0123456789abcdef0123456789abcdef";
const USER: &str = "00000000000000000000000000000a01";
const MACHINE: &str = "00000000000000000000000000000b01";

/// The previous release's migrations, applied as it applied them.
async fn previous_migrator(engine: &str, dir: &Path) -> sqlx::migrate::Migrator {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kura-service/migrations")
        .join(engine);
    for name in ["0001_service.sql", "0002_owners.sql", "0003_identity.sql"] {
        std::fs::copy(source.join(name), dir.join(name)).unwrap();
    }
    sqlx::migrate::Migrator::new(dir).await.unwrap()
}

/// Rows as the previous release wrote them (one SQL text for both engines).
fn previous_rows() -> String {
    let hash = |token: &str| kura_server::secrets::token_hash(token);
    let password = kura_server::secrets::hash_password(PASSWORD);
    format!(
        "INSERT INTO operator_tokens (id, name, token_hash, created_ms, role) \
           VALUES ('op1', 'bootstrap', '{op}', 1, 'operator-admin');
         INSERT INTO tenants (id, service_code, name, quota_bytes, max_machines, region, encryption_required, \
           immutable_days, agent_networks, status, time_zone, created_ms) \
           VALUES ('{TENANT}', 'OLD-0001', 'Old Corp', 1073741824, 3, 'local', FALSE, 0, '[]', 'active', \
           'Asia/Tokyo', 1);
         INSERT INTO tenant_users (id, tenant_id, login, password_hash, role, created_ms, totp_secret) \
           VALUES ('{USER}', '{TENANT}', 'old-0001-admin', '{password}', 'admin', 1, '{TOTP_SECRET}');
         INSERT INTO machines (id, tenant_id, name, created_ms) VALUES ('{MACHINE}', '{TENANT}', 'web-01', 1);
         INSERT INTO agent_credentials (id, tenant_id, machine_id, credential_hash, created_ms) \
           VALUES ('c1', '{TENANT}', '{MACHINE}', '{agent}', 1);",
        op = hash(OPERATOR_TOKEN),
        agent = hash(AGENT_CREDENTIAL),
    )
}

/// Makes a database of the previous release at `$url` with `$pool`, starts a server on
/// it, and checks that everything still works and the TOTP secret is sealed.
macro_rules! upgrades_in_place {
    ($pool:ty, $engine:literal, $url:expr) => {{
        let url: String = $url;
        let migrations = tempfile::tempdir().unwrap();
        let pool = <$pool>::connect(&url).await.unwrap();
        previous_migrator($engine, migrations.path())
            .await
            .run(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(previous_rows()))
            .execute(&pool)
            .await
            .unwrap();
        let server = kura_testing::start(|config: &mut ServerConfig| config.database_url = Some(url)).await;
        still_works(&server).await;
        let (secret,): (String,) = sqlx::query_as("SELECT totp_secret FROM tenant_users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            secret.starts_with("k1:") && !secret.contains(TOTP_SECRET),
            "sealed at start: {secret}"
        );
        let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(jobs >= 1, "the new tables are there and used");
        pool.close().await;
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_schema_upgrades_in_place_on_sqlite() {
    let old = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", old.path().join("service.db").display());
    upgrades_in_place!(sqlx::SqlitePool, "sqlite", url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_schema_upgrades_in_place_on_postgres() {
    let schema = PgSchema::create("upgrade").await;
    upgrades_in_place!(sqlx::PgPool, "postgres", schema.url());
}

/// The operator token, the admin's password and TOTP, and the agent credential of the
/// old database all work on the upgraded one, as do the new job routes.
async fn still_works(server: &TestServer) {
    let listed = server
        .http
        .get(format!("{}/api/v1/operator/tenants", server.management))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, tenants) = parts(listed).await;
    assert_eq!(status, 200, "{tenants}");
    assert!(tenants.to_string().contains("OLD-0001"), "{tenants}");

    let now = server.server.state().clock().now_ms();
    let code = kura_server::totp::code_at(TOTP_SECRET, now).unwrap();
    let body = json!({ "login": "old-0001-admin", "password": PASSWORD, "totp": code });
    let (status, answer, session) = try_login_with(&server.http, &server.customer, body).await;
    assert_eq!(status, 200, "{answer}");
    let (status, me) = session.unwrap().get("/api/v1/me").await;
    assert_eq!((status, me["user_id"].as_str()), (200, Some(USER)), "{me}");

    let (status, whoami) = server.whoami(AGENT_CREDENTIAL).await;
    assert_eq!(
        (status, whoami["machine_id"].as_str()),
        (200, Some(MACHINE)),
        "{whoami}"
    );

    let run = server
        .http
        .post(format!("{}/api/v1/operator/jobs", server.management))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "kind": "gc", "tenant_id": TENANT }))
        .send()
        .await
        .unwrap();
    let (status, job) = parts(run).await;
    assert_eq!(status, 202, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_service_key_refuses_to_start_on_the_database() {
    let schema = PgSchema::create("keys").await;
    let url = schema.url();
    let first = kura_testing::start({
        let url = url.clone();
        move |config: &mut ServerConfig| config.database_url = Some(url)
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::with_data_dir(data.path());
    config.customer_listen = "127.0.0.1:0".parse().unwrap();
    config.management_listen = "127.0.0.1:0".parse().unwrap();
    config.database_url = Some(url);
    let refused = match kura_server::Server::start(config.clone()).await {
        Ok(_) => panic!("a server with its own new key started on a database sealed with another"),
        Err(err) => err.to_string(),
    };
    assert!(refused.contains("same service_key"), "{refused}");
    // Given the first server's key, it starts.
    let key = std::fs::read_to_string(first.data_dir().join("service-key")).unwrap();
    config.service_key = kura_server::config::SecretString::new(key);
    let second = kura_server::Server::start(config).await.unwrap();
    second.shutdown().await.unwrap();
}
