//! Restore jobs through the user and agent APIs, on SQLite and PostgreSQL: a user with
//! `restore` queues a job for any active machine of the tenant; bad input is refused
//! naming the field; the machine claims, reports on and ends its job; a job for another
//! machine's snapshot grants the restoring machine that one snapshot while it runs, and
//! the event log says whose snapshot it was; other tenants and machines see nothing.

use kura_testing::TestServer;
use kura_testing::agent::Agent;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_jobs_on_sqlite() {
    restore_jobs(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_jobs_on_postgres() {
    restore_jobs(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn report(agent: &Agent, id: &str, body: Value) -> (u16, Value) {
    agent
        .patch_json(&format!("/api/v1/agent/restores/{id}"), body)
        .await
}

async fn restore_jobs(server: TestServer) {
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let web = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    web.create_vault().await;
    let snapshot = web.backup("/srv/www", &[b"the web site"]).await;
    let token = server
        .new_registration_token(created["tenant_id"].as_str().unwrap())
        .await;
    let spare = Agent::register(&server, &token, "spare-01").await;
    let ask = |body: Value| admin.call(Method::POST, "/api/v1/restores", Some(body));

    // Bad input is refused, naming the field.
    for (body, status, field) in [
        (
            json!({ "snapshot_id": snapshot, "machine_id": spare.machine_id, "target": "restore-here" }),
            422,
            "target:",
        ),
        (
            json!({ "snapshot_id": "ab".repeat(32), "machine_id": spare.machine_id, "target": "/srv/r" }),
            404,
            "snapshot_id:",
        ),
        (
            json!({ "snapshot_id": snapshot, "machine_id": "0".repeat(32), "target": "/srv/r" }),
            404,
            "machine_id:",
        ),
    ] {
        let (got, refused) = ask(body).await;
        assert_eq!(got, status, "{refused}");
        assert!(refused["error"].as_str().unwrap().starts_with(field), "{refused}");
    }
    let (status, refused) = ask(
        json!({ "snapshot_id": snapshot, "machine_id": spare.machine_id, "target": "/srv/r", "extra": 1 }),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    // An auditor reads jobs but may not ask for one.
    let (_, auditor_password) = server.add_user(&admin, "aya", "auditor").await;
    let auditor = server.login("aya", &auditor_password).await;
    let (status, refused) = auditor
        .call(
            Method::POST,
            "/api/v1/restores",
            Some(json!({ "snapshot_id": snapshot, "machine_id": spare.machine_id, "target": "/srv/r" })),
        )
        .await;
    assert_eq!(status, 403, "{refused}");

    // web-01's snapshot, restored onto spare-01: the job grants spare-01 that snapshot.
    let path = format!("/api/v1/vault/snapshots/{snapshot}");
    assert_eq!(spare.get(&path).await.0, 404, "not spare-01's before a job");
    let (status, job) = ask(json!({ "snapshot_id": snapshot, "machine_id": spare.machine_id,
        "target": "/srv/restore", "paths": ["/srv/www/index.html"], "overwrite": true }))
    .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        (job["status"].as_str(), job["snapshot_machine_id"].as_str()),
        (Some("queued"), Some(web.machine_id.as_str()))
    );
    let id = job["id"].as_str().unwrap().to_owned();
    let (_, plans) = spare.get("/api/v1/agent/plans").await;
    assert_eq!(plans["restores"][0]["id"], id.as_str(), "{plans}");
    assert_eq!(plans["restores"][0]["paths"], json!(["/srv/www/index.html"]));
    assert!(
        web.get("/api/v1/agent/plans").await.1["restores"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(spare.get(&path).await.0, 200, "granted while the job waits");
    assert_eq!(
        spare.get("/api/v1/vault/snapshots/latest").await.0,
        404,
        "`latest` is never another machine's"
    );

    // Only the restoring machine reports; running comes first; the outcome once.
    assert_eq!(report(&web, &id, json!({ "status": "running" })).await.0, 404);
    let (status, early) = report(&spare, &id, json!({ "status": "succeeded" })).await;
    assert_eq!(status, 409, "{early}");
    assert_eq!(report(&spare, &id, json!({ "status": "queued" })).await.0, 422);
    let (status, running) = report(&spare, &id, json!({ "status": "running" })).await;
    assert_eq!(
        (status, running["status"].as_str()),
        (200, Some("running")),
        "{running}"
    );
    assert!(
        spare.get("/api/v1/agent/plans").await.1["restores"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a started job is not offered again"
    );
    let done = json!({ "status": "succeeded", "files": 1, "bytes": 12 });
    let (status, ended) = report(&spare, &id, done.clone()).await;
    assert_eq!(
        (status, ended["status"].as_str()),
        (200, Some("succeeded")),
        "{ended}"
    );
    assert_eq!(
        report(&spare, &id, done).await.0,
        200,
        "the same outcome again is answered"
    );
    assert_eq!(report(&spare, &id, json!({ "status": "failed" })).await.0, 409);
    let (status, shown) = auditor.get(&format!("/api/v1/restores/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        (shown["files"].as_u64(), shown["bytes"].as_u64()),
        (Some(1), Some(12))
    );
    assert!(shown["finished"].is_string(), "{shown}");
    assert_eq!(spare.get(&path).await.0, 404, "the grant ends with the job");

    // The event log says who asked, and whose snapshot it was.
    let (_, events) = admin.get("/api/v1/events?action=restore.request").await;
    let result = events[0]["result"].as_str().unwrap();
    assert!(
        result.contains("spare-01") && result.contains(&web.machine_id),
        "{events}"
    );

    // Another tenant sees none of it.
    let (_, other) = server.tenant_admin("BETA-0002").await;
    assert_eq!(other.get(&format!("/api/v1/restores/{id}")).await.0, 404);
    assert!(
        other
            .get("/api/v1/restores")
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, refused) = other
        .call(
            Method::POST,
            "/api/v1/restores",
            Some(json!({ "snapshot_id": snapshot, "machine_id": spare.machine_id, "target": "/srv/r" })),
        )
        .await;
    assert_eq!(status, 404, "{refused}");
}
