//! Vaults where the service keeps them: with a PostgreSQL `database_url`, catalogs in
//! PostgreSQL and objects under `DATA/objects/t/<tenant>/v/default/`, driven through the
//! vault protocol of a real server.

use kura_api::frames::decode_frames;
use kura_format::ChunkId;
use kura_testing::agent::Agent;
use kura_testing::postgres::PgSchema;
use reqwest::Method;

/// Rows of `table` (a catalog table) in `schema` that belong to `vault`.
async fn vault_rows(schema: &PgSchema, table: &str, vault: &str) -> i64 {
    let admin = sqlx::PgPool::connect(&kura_testing::postgres::admin_url())
        .await
        .unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}.{table} WHERE vault = $1",
        schema.name()
    )))
    .bind(vault)
    .fetch_one(&admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaults_live_in_postgresql_when_the_service_does() {
    let schema = PgSchema::create("v").await;
    let url = schema.url();
    let server = kura_testing::start(|config| config.database_url = Some(url)).await;
    let tenant = server.create_tenant("ACME-0001", 2, serde_json::json!({})).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap();
    let agent = Agent::register(&server, tenant["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;

    let data: [&[u8]; 2] = [b"first chunk of the backup", b"second chunk of the backup"];
    let first = agent.backup("etc", &data).await;
    let second = agent.backup("etc", &data).await;
    assert_eq!(agent.snapshot_ids().await, vec![first, second.clone()]);
    let (status, latest) = agent.get("/api/v1/vault/snapshots/latest").await;
    assert_eq!((status, latest["id"].as_str()), (200, Some(second.as_str())));

    // Restore: the blobs come back and open to the data.
    let ids: Vec<ChunkId> = data.iter().map(|d| agent.codec.id(d)).collect();
    let blobs = agent.read_blobs(&ids).await;
    let ranges = decode_frames(&blobs).unwrap();
    for ((id, range), want) in ids.iter().zip(ranges).zip(data) {
        assert_eq!(agent.codec.open(id, &blobs[range]).unwrap(), want);
    }

    // The catalog rows are in PostgreSQL, the objects in the shared store, no per-tenant
    // directory on disk.
    let vault = format!("{tenant_id}/default");
    assert_eq!(vault_rows(&schema, "vault_snapshots", &vault).await, 2);
    let chunks = vault_rows(&schema, "vault_chunks", &vault).await;
    assert!(chunks >= 2, "{chunks} chunks indexed");
    let packs = server
        .data_dir()
        .join("objects/t")
        .join(tenant_id)
        .join("v/default/packs");
    assert!(
        std::fs::read_dir(&packs).unwrap().next().is_some(),
        "no pack in {packs:?}"
    );
    assert!(!server.data_dir().join("vaults").exists());

    server.server.shutdown().await.unwrap();
}

/// Everything the service writes is its owner's alone, whatever the umask it was started
/// with: the data directory `0700`, the database and every vault file `0600`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_vault_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = kura_testing::start(|_| ()).await;
    let tenant = server.create_tenant("ACME-0001", 2, serde_json::json!({})).await;
    let agent = Agent::register(&server, tenant["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    agent.backup("etc", &[b"a chunk of private data"]).await;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let data = server.data_dir();
    assert_eq!(mode(data), 0o700);
    assert_eq!(mode(&data.join("service.db")), 0o600);
    let mut files = 0;
    let mut stack = vec![data.join("vaults")];
    while let Some(dir) = stack.pop() {
        assert_eq!(mode(&dir), 0o700, "{dir:?}");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{path:?}");
                files += 1;
            }
        }
    }
    assert!(files >= 2, "{files} vault files checked");
}

/// A running backup keeps its session with heartbeats; a session that is gone answers
/// 404, and another machine's session is as unknown as a missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_session_of_the_callers_machine() {
    let server = kura_testing::start(|_| ()).await;
    let tenant = server.create_tenant("ACME-0001", 2, serde_json::json!({})).await;
    let token = tenant["registration_token"].as_str().unwrap();
    let agent = Agent::register(&server, token, "web-01").await;
    agent.create_vault().await;
    let session = agent.open_session().await;
    let path = format!("/api/v1/vault/sessions/{session}/heartbeat");
    assert_eq!(agent.send(Method::POST, &path, Vec::new()).await.0, 204);
    let (_, issued) = server
        .operator(
            Method::POST,
            &format!(
                "/api/v1/operator/tenants/{}/registration-tokens",
                tenant["tenant_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let other = Agent::register(&server, issued["registration_token"].as_str().unwrap(), "web-02").await;
    assert_eq!(other.send(Method::POST, &path, Vec::new()).await.0, 404);
    let session_path = format!("/api/v1/vault/sessions/{session}");
    assert_eq!(agent.send(Method::DELETE, &session_path, Vec::new()).await.0, 204);
    assert_eq!(agent.send(Method::POST, &path, Vec::new()).await.0, 404);
}
