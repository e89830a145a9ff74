//! Alerts through the agent, user and operator APIs, on SQLite and PostgreSQL, with mail
//! delivered to a real SMTP server on loopback (aiosmtpd) and the server's clock moved
//! forward instead of waiting. A failed run raises `backup-failed` and mails the tenant's
//! admins and operators that have an address, each in their language, once: a repeat is
//! counted, not mailed. A slot nobody ran raises `backup-missed`; the next success
//! resolves both and says so by mail. A user who turns alert mail off gets none. Storage
//! passing 90 % of the quota mails once (80 % is raised with it, silently) and falling
//! back under 80 % mails once. A machine with a plan that stops calling is `silent`
//! until it calls again. Revoking the machine resolves what was open about it. Another
//! tenant sees none of it. Damage that verify cannot heal is an alert too.

use std::time::Duration;

use kura_testing::TestServer;
use kura_testing::agent::Agent;
use kura_testing::smtp::{Delivered, MailServer};
use kura_testing::user::Session;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_on_sqlite() {
    let mail = MailServer::start().await;
    let server = kura_testing::start(with_mail(mail.port)).await;
    alerts_are_raised_mailed_once_and_resolved(server, mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_on_postgres() {
    let mail = MailServer::start().await;
    let server = kura_testing::start_on_postgres(with_mail(mail.port)).await;
    alerts_are_raised_mailed_once_and_resolved(server, mail).await;
}

fn with_mail(port: u16) -> impl FnOnce(&mut kura_server::ServerConfig) {
    move |config| {
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
        // The test moves the clock by hours; sessions must outlive that.
        config.session_idle_timeout = Duration::from_secs(24 * 3600);
        config.session_absolute_timeout = Duration::from_secs(48 * 3600);
    }
}

async fn alerts(session: &Session, query: &str) -> Vec<Value> {
    let (status, found) = session.get(&format!("/api/v1/alerts?{query}")).await;
    assert_eq!(status, 200, "{found}");
    found.as_array().unwrap().clone()
}

/// Moves the server's clock to `seconds` after the plan's next slot.
async fn after_next_slot(server: &TestServer, agent: &Agent, seconds: i64) -> Value {
    let (_, plans) = agent.get("/api/v1/agent/plans").await;
    let next: jiff::Timestamp = plans["plans"][0]["next_run"].as_str().unwrap().parse().unwrap();
    let clock = server.server.state().clock();
    let by = next.as_millisecond() + seconds * 1000 - clock.now_ms();
    clock.advance(Duration::from_millis(u64::try_from(by).unwrap()));
    plans["plans"][0]["next_run"].clone()
}

/// Runs the plan's next slot to the end `outcome` gives.
async fn run_next_slot(server: &TestServer, agent: &Agent, plan: &str, outcome: Value) {
    let slot = after_next_slot(server, agent, 1).await;
    let (status, run) = agent
        .post_json(
            "/api/v1/agent/runs",
            json!({ "plan_id": plan, "scheduled": slot }),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let path = format!("/api/v1/agent/runs/{}", run["id"].as_str().unwrap());
    let (status, body) = agent.patch_json(&path, outcome).await;
    assert_eq!(status, 200, "{body}");
}

async fn sweep(server: &TestServer) -> kura_service::ops::runs::SweepReport {
    kura_service::ops::runs::sweep(server.server.service())
        .await
        .unwrap()
}

/// The messages that arrived after the first `seen`, once `count` of them have; and no
/// more arrive for a moment.
async fn new_mail(mail: &MailServer, seen: &mut usize, count: usize) -> Vec<Delivered> {
    let all = mail.wait_for(*seen + count).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all_now = mail.messages();
    assert_eq!(
        all_now.len(),
        *seen + count,
        "unexpected mail: {:?}",
        &all_now[*seen..]
    );
    let fresh = all[*seen..].to_vec();
    *seen += count;
    fresh
}

fn to<'a>(messages: &'a [Delivered], address: &str) -> &'a Delivered {
    messages
        .iter()
        .find(|m| m.to.contains(address))
        .unwrap_or_else(|| panic!("no mail to {address}: {messages:?}"))
}

async fn alerts_are_raised_mailed_once_and_resolved(server: TestServer, mail: MailServer) {
    let mut seen = 0;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let tenant_id = created["tenant_id"].as_str().unwrap().to_owned();
    // Mia (an operator, Japanese by the tenant's zone) and Leo (an operator who reads
    // English) are mailed; the admin has no address and the auditor is not mailed.
    server.add_user_with_mail(&admin, "mia").await;
    let leo = server.add_user_with_mail(&admin, "leo").await;
    let leo = server.login("leo", leo["password"].as_str().unwrap()).await;
    let (status, me) = leo
        .call(Method::PATCH, "/api/v1/me", Some(json!({ "language": "en" })))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["language"].as_str(), me["alert_mail"].as_bool()),
        (Some("en"), Some(true))
    );
    let (status, auditor) = admin
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "login": "aya", "role": "auditor", "email": "aya@example.com" })),
        )
        .await;
    assert_eq!(status, 201, "{auditor}");

    let agent = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    let plan = json!({ "name": "nightly", "kind": "files", "sources": ["/srv"],
        "schedule": "*/10 * * * *", "machines": [agent.machine_id] });
    let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    let plan = plan["id"].as_str().unwrap().to_owned();
    assert!(alerts(&admin, "").await.is_empty());

    // A failed run: one alert, one mail to each of Mia and Leo, in their languages.
    let failed = json!({ "status": "failed", "error": "source /srv: No such file or directory" });
    run_next_slot(&server, &agent, &plan, failed.clone()).await;
    let open = alerts(&admin, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let alert = &open[0];
    assert_eq!(alert["kind"], "backup-failed");
    assert_eq!(
        (alert["machine_id"].as_str(), alert["plan_id"].as_str()),
        (Some(agent.machine_id.as_str()), Some(plan.as_str()))
    );
    assert_eq!(
        (alert["resolved"].as_bool(), alert["occurrences"].as_u64()),
        (Some(false), Some(1))
    );
    assert!(
        alert["message"].as_str().unwrap().contains("No such file"),
        "{alert}"
    );
    let messages = new_mail(&mail, &mut seen, 2).await;
    let ja = to(&messages, "mia@example.com");
    assert!(
        ja.subject.contains("バックアップ失敗") && ja.subject.contains("web-01"),
        "{}",
        ja.subject
    );
    assert!(
        ja.text.contains("No such file") && ja.text.contains("nightly"),
        "{}",
        ja.text
    );
    let en = to(&messages, "leo@example.com");
    assert!(en.subject.contains("Backup failed"), "{}", en.subject);
    assert!(en.html.contains("/alerts"), "{}", en.html);

    // The same failure again is counted on the open alert, not mailed.
    run_next_slot(&server, &agent, &plan, failed.clone()).await;
    let open = alerts(&admin, "").await;
    assert_eq!(
        (open.len(), open[0]["occurrences"].as_u64()),
        (1, Some(2)),
        "{open:?}"
    );
    new_mail(&mail, &mut seen, 0).await;

    // A slot nobody runs is missed once its grace is over: a second alert, mailed.
    after_next_slot(&server, &agent, 61).await;
    assert_eq!(sweep(&server).await.missed, 1);
    let open = alerts(&admin, "kind=backup-missed").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        open[0]["message"].as_str().unwrap().contains("kura agent run"),
        "{open:?}"
    );
    let messages = new_mail(&mail, &mut seen, 2).await;
    assert!(to(&messages, "leo@example.com").subject.contains("Backup missed"));
    assert!(to(&messages, "mia@example.com").subject.contains("未実行"));

    // The next success resolves both, and says so by mail.
    let snapshot = agent.backup("/srv", &[b"the files of /srv"]).await;
    let succeeded = json!({ "status": "succeeded", "files": 1, "snapshot_id": snapshot });
    run_next_slot(&server, &agent, &plan, succeeded.clone()).await;
    assert!(alerts(&admin, "").await.is_empty());
    let resolved = alerts(&admin, "state=resolved").await;
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    assert!(
        resolved.iter().all(|a| a["resolved"] == true
            && a["resolved_time"].is_string()
            && a["resolution"].as_str().unwrap().contains("saved a snapshot")),
        "{resolved:?}"
    );
    let messages = new_mail(&mail, &mut seen, 4).await;
    assert!(
        messages
            .iter()
            .filter(|m| m.to.contains("leo@"))
            .all(|m| m.subject.contains("resolved")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .filter(|m| m.to.contains("mia@"))
            .all(|m| m.subject.contains("解決")),
        "{messages:?}"
    );

    // Leo turns alert mail off: the next failure mails only Mia.
    let (status, me) = leo
        .call(Method::PATCH, "/api/v1/me", Some(json!({ "alert_mail": false })))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["alert_mail"].as_bool(), me["language"].as_str()),
        (Some(false), Some("en")),
        "the language stays"
    );
    run_next_slot(&server, &agent, &plan, failed.clone()).await;
    let messages = new_mail(&mail, &mut seen, 1).await;
    assert!(messages[0].to.contains("mia@"), "{messages:?}");
    let partial = json!({ "status": "partial", "files": 1, "snapshot_id": snapshot, "error": "2 files could not be read" });
    run_next_slot(&server, &agent, &plan, partial).await;
    let open = alerts(&admin, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0]["kind"], "backup-partial",
        "a partial run resolves the failure and raises its own"
    );
    new_mail(&mail, &mut seen, 2).await;

    // Storage at 95 % of the quota: 80 % and 90 % are open, and only 90 % was mailed.
    let (_, usage) = admin.get("/api/v1/usage").await;
    let stored = usage["stored_bytes"].as_u64().unwrap();
    let tenant_path = format!("/api/v1/operator/tenants/{tenant_id}");
    let set_quota =
        |quota: u64| server.operator(Method::PATCH, &tenant_path, Some(json!({ "quota_bytes": quota })));
    assert_eq!(set_quota(stored * 100 / 95).await.0, 200);
    let quota = alerts(&admin, "kind=quota-warning").await;
    assert_eq!(quota.len(), 2, "{quota:?}");
    let messages = new_mail(&mail, &mut seen, 1).await;
    assert!(messages[0].subject.contains("保存容量"), "{messages:?}");
    assert!(messages[0].text.contains("90 %"), "{}", messages[0].text);
    // A larger quota resolves both, with one mail.
    assert_eq!(set_quota(stored * 10).await.0, 200);
    assert!(alerts(&admin, "kind=quota-warning").await.is_empty());
    let messages = new_mail(&mail, &mut seen, 1).await;
    assert!(messages[0].subject.contains("解決"), "{messages:?}");

    // A machine with a plan that stops calling for half an hour is silent (and its
    // slots missed); calling again resolves the silence.
    server
        .server
        .state()
        .clock()
        .advance(Duration::from_secs(31 * 60));
    let report = sweep(&server).await;
    assert_eq!(report.silent_machines, 1, "{report:?}");
    assert_eq!(alerts(&admin, "kind=machine-silent").await.len(), 1);
    let messages = new_mail(&mail, &mut seen, 2).await;
    assert!(
        messages.iter().any(|m| m.subject.contains("マシンから連絡なし")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.subject.contains("未実行")),
        "{messages:?}"
    );
    assert_eq!(agent.get("/api/v1/agent/plans").await.0, 200);
    assert_eq!(sweep(&server).await.silent_machines, 0);
    assert!(alerts(&admin, "kind=machine-silent").await.is_empty());
    new_mail(&mail, &mut seen, 1).await;

    // Another tenant sees none of it, even by naming the machine.
    let (_, other) = server.tenant_admin("BETA-0002").await;
    assert!(alerts(&other, "state=all").await.is_empty());
    assert!(
        alerts(&other, &format!("state=all&machine={}", agent.machine_id))
            .await
            .is_empty()
    );
    // Bad filters are refused with the field named.
    let (status, refused) = admin.get("/api/v1/alerts?state=closed").await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().starts_with("state:"),
        "{refused}"
    );
    let (status, refused) = admin.get("/api/v1/alerts?kind=fire").await;
    assert_eq!(status, 422, "{refused}");

    // Revoking the machine resolves what was open about it, without mail.
    assert!(!alerts(&admin, "").await.is_empty());
    let (status, _) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/machines/{}", agent.machine_id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        alerts(&admin, "").await.is_empty(),
        "{:?}",
        alerts(&admin, "").await
    );
    new_mail(&mail, &mut seen, 0).await;

    // Raising and resolving are in the tenant's event log.
    let (_, events) = admin.get("/api/v1/events?action=alert.raise").await;
    assert!(events.as_array().is_some_and(|e| e.len() >= 5), "{events}");
}

/// Every file under `dir` whose path contains `packs/`.
fn pack_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(pack_files(&path));
        } else if path.to_string_lossy().contains("/packs/") {
            found.push(path);
        }
    }
    found
}

/// A flipped byte in the only copy of a chunk: verify finds damage that repair cannot
/// heal, which is an alert, mailed; the data itself is named in the alert's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_that_verify_cannot_heal_is_an_alert() {
    let mail = MailServer::start().await;
    let server = kura_testing::start(with_mail(mail.port)).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    server.add_user_with_mail(&admin, "mia").await;
    let agent = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    agent.backup("/srv", &[b"the only copy of these bytes"]).await;
    let clean = agent.verify(true).await;
    assert_eq!(clean["status"], "succeeded", "{clean}");
    assert!(
        alerts(&admin, "state=all").await.is_empty(),
        "a clean vault raises nothing"
    );

    let packs = pack_files(server.data_dir());
    assert_eq!(packs.len(), 1, "{packs:?}");
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&packs[0], bytes).unwrap();
    let damaged = agent.verify(true).await;
    assert_eq!(damaged["status"], "succeeded", "{damaged}");
    let open = alerts(&admin, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["kind"], "verify-failed");
    let message = open[0]["message"].as_str().unwrap();
    assert!(
        message.contains("damage found") && message.contains("still damaged"),
        "{message}"
    );
    let messages = mail.wait_for(1).await;
    assert!(messages[0].subject.contains("データの損傷を検出"), "{messages:?}");
    // Another round finding the same damage counts it on the open alert.
    agent.verify(true).await;
    let open = alerts(&admin, "").await;
    assert_eq!(
        (open.len(), open[0]["occurrences"].as_u64()),
        (1, Some(2)),
        "{open:?}"
    );
}
