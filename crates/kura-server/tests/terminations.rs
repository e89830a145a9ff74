//! Termination and erasure over the real API, on SQLite (vaults in `DATA/vaults`) and on
//! PostgreSQL (objects in `DATA/objects`): terminating locks the tenant out at once
//! (sessions, API tokens, agents, registration tokens, sign-in); it can be withdrawn until
//! the purge starts; the purge runs when its grace ends (the service clock moved on),
//! leaves nothing of the tenant in storage or in its rows but the event log, and writes a
//! deletion record that checks with the service's public key — through the library and
//! through the real `kura-server deletion verify` — and fails once altered. Another
//! tenant's vault stays whole; the tenant's admins are told by mail (a real SMTP server)
//! when their data is erased. (The same purge against S3 is in `crates/kura/tests/s3.rs`.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kura_testing::agent::Agent;
use kura_testing::smtp::MailServer;
use kura_testing::user::with_token;
use kura_testing::{TestServer, error_of};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kura-server");
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Prompt jobs, and mail to the SMTP server on `port`.
fn with_mail(port: u16) -> impl FnOnce(&mut kura_server::ServerConfig) {
    move |config| {
        kura_testing::prompt_jobs(config);
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_and_purge_on_sqlite() {
    let mail = MailServer::start().await;
    termination_and_purge(kura_testing::start(with_mail(mail.port)).await, "vaults", &mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_and_purge_on_postgres() {
    let mail = MailServer::start().await;
    termination_and_purge(
        kura_testing::start_on_postgres(with_mail(mail.port)).await,
        "objects/t",
        &mail,
    )
    .await;
}

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                out.push((entry.path().display().to_string(), meta.len()));
            }
        }
    }
    out
}

async fn tenant_with_backups(server: &TestServer, code: &str) -> (Value, Agent) {
    let created = server.create_tenant(code, 3, json!({})).await;
    let agent = Agent::register(server, created["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    agent.backup("etc", &[b"hostname", b"hosts"]).await;
    agent.backup("etc", &[b"hostname", b"hosts", b"passwd"]).await;
    (created, agent)
}

async fn terminate(server: &TestServer, tenant: &str, body: Value) -> (u16, Value) {
    server
        .operator(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant}/terminate"),
            Some(body),
        )
        .await
}

async fn cancel(server: &TestServer, tenant: &str) -> (u16, Value) {
    server
        .operator(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant}/cancel-termination"),
            None,
        )
        .await
}

async fn deletions(server: &TestServer) -> Vec<Value> {
    let (status, list) = server
        .operator(Method::GET, "/api/v1/operator/deletions", None)
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

async fn termination_and_purge(server: TestServer, vault_root: &str, mail: &MailServer) {
    let (acme, agent) = tenant_with_backups(&server, "ACME-0001").await;
    let (beta, beta_agent) = tenant_with_backups(&server, "BETA-0002").await;
    let acme_id = acme["tenant_id"].as_str().unwrap().to_owned();
    let admin_login = acme["admin_login"].as_str().unwrap().to_owned();
    let admin_password = acme["admin_password"].as_str().unwrap().to_owned();
    let admin = server.login(&admin_login, &admin_password).await;
    let (status, token) = admin
        .call(Method::POST, "/api/v1/tokens", Some(json!({ "name": "script" })))
        .await;
    assert_eq!(status, 201, "{token}");
    let api_token = token["token"].as_str().unwrap().to_owned();
    let (status, mia) = admin
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "login": "mia", "role": "admin", "email": "mia@example.com" })),
        )
        .await;
    assert_eq!(status, 201, "{mia}");
    let registration = server.new_registration_token(&acme_id).await;
    let stored_at = server.data_dir().join(vault_root).join(&acme_id);
    let stored = files(&stored_at);
    assert!(
        stored.len() >= 6,
        "the vault is on disk at {}: {stored:?}",
        stored_at.display()
    );

    // Refusals name what is wrong and change nothing.
    let (status, answer) = terminate(&server, &acme_id, json!({ "purge_after_days": 31 })).await;
    assert_eq!(status, 422, "{answer}");
    assert!(error_of(&answer).contains("0 to 30"), "{answer}");
    let (status, answer) = terminate(&server, &"f".repeat(32), json!({})).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = cancel(&server, &acme_id).await;
    assert_eq!(
        (status, error_of(&answer).contains("not terminated")),
        (409, true),
        "{answer}"
    );
    assert_eq!(server.whoami(&agent.credential).await.0, 200);

    // Terminated: locked out at once, everywhere; the purge is due in 30 days.
    let (status, done) = terminate(&server, &acme_id, json!({})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["tenant"]["status"], "terminated");
    let due = jiff::Timestamp::from_millisecond(
        server.server.state().clock().now_ms() + 30 * DAY.as_millis() as i64,
    )
    .unwrap();
    let purge_due: jiff::Timestamp = done["termination"]["purge_due"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(purge_due.duration_since(due).as_secs().abs() < 5, "{done}");
    // The admin with a mail address is told, in Japanese (the tenant's zone), when.
    let told = mail.wait_for(1).await;
    assert_eq!(told.len(), 1, "only admins with an address");
    assert!(told[0].to.contains("mia@example.com"), "{}", told[0].to);
    assert!(told[0].subject.contains("ACME-0001"), "{}", told[0].subject);
    assert!(told[0].text.contains("消去されます"), "{}", told[0].text);
    // Japan keeps UTC+9 all year.
    let in_tokyo = jiff::Timestamp::from_second(purge_due.as_second() + 9 * 3600).unwrap();
    let day = in_tokyo.strftime("%Y年%-m月%-d日").to_string();
    assert!(told[0].text.contains(&day), "{day}: {}", told[0].text);
    let (status, answer) = admin.get("/api/v1/me").await;
    assert_eq!(status, 401, "the portal session ended: {answer}");
    let (status, answer) = with_token(&server, &api_token, Method::GET, "/api/v1/machines", None).await;
    assert_eq!(status, 403, "{answer}");
    assert!(error_of(&answer).contains("terminated"), "{answer}");
    let (status, answer) = server.whoami(&agent.credential).await;
    assert_eq!(
        (status, error_of(&answer).contains("terminated")),
        (403, true),
        "{answer}"
    );
    let (status, answer) = server.register(&registration, "web-02").await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer, _) =
        kura_testing::user::try_login(&server.http, &server.customer, &admin_login, &admin_password).await;
    assert_eq!(
        (status, error_of(&answer).contains("terminated")),
        (403, true),
        "{answer}"
    );
    let (status, answer) = terminate(&server, &acme_id, json!({})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(error_of(&answer).contains("already terminated"), "{answer}");
    // The other tenant works on.
    assert_eq!(server.whoami(&beta_agent.credential).await.0, 200);

    // Withdrawn before the purge: back as it was (sessions ended stay ended).
    let (status, back) = cancel(&server, &acme_id).await;
    assert_eq!((status, back["status"].as_str()), (200, Some("active")), "{back}");
    assert_eq!(server.whoami(&agent.credential).await.0, 200);
    assert_eq!(
        with_token(&server, &api_token, Method::GET, "/api/v1/machines", None)
            .await
            .0,
        200
    );
    server.login(&admin_login, &admin_password).await;
    let purge_job = done["termination"]["purge_job"].as_str().unwrap();
    let (status, _) = server
        .operator(Method::GET, &format!("/api/v1/operator/jobs/{purge_job}"), None)
        .await;
    assert_eq!(status, 404, "the withdrawn purge left the queue");

    // Terminated again with one day's grace: nothing happens before it ends...
    let (status, done) = terminate(&server, &acme_id, json!({ "purge_after_days": 1 })).await;
    assert_eq!(status, 200, "{done}");
    let purge_job = done["termination"]["purge_job"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, job) = server
        .operator(Method::GET, &format!("/api/v1/operator/jobs/{purge_job}"), None)
        .await;
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("purge"), Some("queued")),
        "{job}"
    );
    assert!(deletions(&server).await.is_empty());
    assert_eq!(
        files(&stored_at).len(),
        stored.len(),
        "nothing erased during the grace"
    );

    // ...then the purge runs and leaves a signed record.
    server
        .server
        .state()
        .clock()
        .advance(DAY + Duration::from_secs(60));
    let mut listed = Vec::new();
    for _ in 0..300 {
        listed = deletions(&server).await;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed.len(), 1, "no deletion record after the grace: {listed:?}");
    assert_eq!(listed[0]["service_code"], "ACME-0001");
    let record_id = listed[0]["id"].as_str().unwrap().to_owned();
    let response = server
        .http
        .get(format!(
            "{}/api/v1/operator/deletions/{record_id}",
            server.management
        ))
        .bearer_auth(&server.operator_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record_text = response.text().await.unwrap();
    let signed: Value = serde_json::from_str(&record_text).unwrap();
    let record = &signed["record"];
    let (bytes, objects): (u64, u64) = (stored.iter().map(|(_, size)| size).sum(), stored.len() as u64);
    assert_eq!(
        (
            record["tenant_id"].as_str(),
            record["snapshots_deleted"].as_u64(),
            record["machines_deleted"].as_u64(),
            record["users_deleted"].as_u64(),
            record["job_id"].as_str(),
        ),
        (
            Some(acme_id.as_str()),
            Some(2),
            Some(1),
            Some(2),
            Some(purge_job.as_str())
        ),
        "{record_text}"
    );
    // The vault's objects (SQLite: its catalog file and WAL besides).
    assert!(
        record["objects_deleted"].as_u64().unwrap() <= objects
            && record["objects_deleted"].as_u64().unwrap() >= objects - 3,
        "{record_text} vs {stored:?}"
    );
    assert!(
        record["bytes_deleted"].as_u64().unwrap() <= bytes,
        "{record_text}"
    );
    assert!(record["bytes_deleted"].as_u64().unwrap() > 0, "{record_text}");

    // Nothing of the tenant is left in storage; the other tenant's vault is whole.
    assert!(
        !stored_at.exists(),
        "{} is still there: {:?}",
        stored_at.display(),
        files(&stored_at)
    );
    let beta_stored = server
        .data_dir()
        .join(vault_root)
        .join(beta["tenant_id"].as_str().unwrap());
    assert!(files(&beta_stored).len() >= 6);
    let verified = beta_agent.verify(true).await;
    assert_eq!(verified["status"], "succeeded", "{verified}");
    assert_eq!(beta_agent.snapshot_ids().await.len(), 2);

    // Its users, machines and contract data are gone; the termination stays on record.
    let (status, detail) = server
        .operator(Method::GET, &format!("/api/v1/operator/tenants/{acme_id}"), None)
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["users"], json!([]), "{detail}");
    assert_eq!(detail["machines"], json!([]), "{detail}");
    assert!(detail["termination"]["purged"].is_string(), "{detail}");
    let (status, answer) = cancel(&server, &acme_id).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        error_of(&answer).contains("purge of this tenant has started"),
        "{answer}"
    );
    let (status, answer, _) =
        kura_testing::user::try_login(&server.http, &server.customer, &admin_login, &admin_password).await;
    assert_eq!(status, 401, "the admin's account is erased: {answer}");

    // The event log is kept, its chains intact, with the termination and the purge.
    let service = server.server.service();
    let events = kura_service::db::events::all(&service.db).await.unwrap();
    let count = |chain: &str, action: &str| {
        events
            .iter()
            .filter(|e| e.chain == chain && e.event.action == action)
            .count()
    };
    for chain in ["operators", acme_id.as_str()] {
        assert_eq!(count(chain, "tenant.terminate"), 2, "{chain}");
        assert_eq!(count(chain, "tenant.termination.cancel"), 1, "{chain}");
        assert_eq!(count(chain, "tenant.purge"), 1, "{chain}");
    }
    assert!(
        count(&acme_id, "backup.commit") >= 2,
        "the tenant's history stays"
    );
    kura_service::audit::verify(&service.db).await.unwrap().unwrap();

    // The record checks with the service's key: through the library, and offline with
    // the real binary; altered, it does not.
    let (status, key) = server
        .operator(Method::GET, "/api/v1/operator/deletion-key", None)
        .await;
    assert_eq!(
        (status, key["algorithm"].as_str()),
        (200, Some("ed25519")),
        "{key}"
    );
    let public_key = key["public_key"].as_str().unwrap();
    let checked = kura_service::ops::terminations::check_record(&record_text, public_key).unwrap();
    assert_eq!(checked.id, record_id);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("record.json");
    std::fs::write(&file, &record_text).unwrap();
    let printed = Command::new(BIN)
        .args(["deletion", "public-key", "--data"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), public_key);
    let verify = |path: &Path| {
        Command::new(BIN)
            .args(["deletion", "verify"])
            .arg(path)
            .args(["--public-key", public_key])
            .output()
            .unwrap()
    };
    let good = verify(&file);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let said = String::from_utf8_lossy(&good.stdout);
    assert!(
        said.starts_with("valid: deletion record") && said.contains("ACME-0001"),
        "{said}"
    );
    let objects_line = format!("\"objects_deleted\": {}", record["objects_deleted"]);
    let altered = record_text.replace(&objects_line, "\"objects_deleted\": 0");
    assert_ne!(altered, record_text, "{record_text}");
    std::fs::write(&file, altered).unwrap();
    let bad = verify(&file);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("INVALID: the signature does not match"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operator_admins_terminate() {
    let server = kura_testing::start(kura_testing::prompt_jobs).await;
    let created = server.create_tenant("ACME-0001", 3, json!({})).await;
    let tenant = created["tenant_id"].as_str().unwrap();
    let operator = server.set_up_operator("olivia", "operator").await;
    let (status, answer) = operator
        .session
        .call(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant}/terminate"),
            Some(json!({ "purge_after_days": 0 })),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(error_of(&answer).contains("manage-tenants"), "{answer}");
    // Reading the records and the key is for both roles.
    assert_eq!(operator.session.get("/api/v1/operator/deletions").await.0, 200);
    assert_eq!(operator.session.get("/api/v1/operator/deletion-key").await.0, 200);
    let (status, tenant) = server
        .operator(Method::GET, &format!("/api/v1/operator/tenants/{tenant}"), None)
        .await;
    assert_eq!((status, tenant["status"].as_str()), (200, Some("active")));
}
