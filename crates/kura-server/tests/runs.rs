//! Runs of protection plans through the agent and user API, on SQLite and PostgreSQL,
//! with the server's clock moved forward instead of waiting: a due slot is started once,
//! reported on and listed; a slot nobody ran is missed after its grace and run late once;
//! a slot that comes while the plan still runs is skipped; a run whose agent falls silent
//! is failed; a machine back from a long downtime has one slot to run, not one per slot
//! it slept through; and every bad report is refused without changing the run.

use std::time::Duration;

use kura_testing::TestServer;
use kura_testing::agent::Agent;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_sqlite() {
    runs_follow_the_schedule(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_postgres() {
    runs_follow_the_schedule(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn due(agent: &Agent) -> Value {
    let (status, plans) = agent.get("/api/v1/agent/plans").await;
    assert_eq!(status, 200, "{plans}");
    plans["plans"][0]["due"].clone()
}

/// Moves the server's clock to `seconds` after the plan's next slot.
async fn after_next_slot(server: &TestServer, agent: &Agent, seconds: i64) {
    let (_, plans) = agent.get("/api/v1/agent/plans").await;
    let next: jiff::Timestamp = plans["plans"][0]["next_run"].as_str().unwrap().parse().unwrap();
    let clock = server.server.state().clock();
    let by = next.as_millisecond() + seconds * 1000 - clock.now_ms();
    clock.advance(Duration::from_millis(u64::try_from(by).unwrap()));
}

async fn start(agent: &Agent, plan: &str, scheduled: &Value, skipped: bool) -> (u16, Value) {
    agent
        .post_json(
            "/api/v1/agent/runs",
            json!({ "plan_id": plan, "scheduled": scheduled, "skipped": skipped }),
        )
        .await
}

async fn report(agent: &Agent, run: &str, body: Value) -> (u16, Value) {
    let response = agent
        .request(Method::PATCH, &format!("/api/v1/agent/runs/{run}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    kura_testing::parts(response).await
}

async fn sweep(server: &TestServer) -> kura_service::ops::runs::SweepReport {
    kura_service::ops::runs::sweep(server.server.service())
        .await
        .unwrap()
}

async fn runs_follow_the_schedule(server: TestServer) {
    let clock = server.server.state().clock().clone();
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let agent = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    let plan = json!({ "name": "every ten", "kind": "files", "sources": ["/srv"],
        "schedule": "*/10 * * * *", "machines": [agent.machine_id] });
    let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    let plan = plan["id"].as_str().unwrap().to_owned();

    // Slots before the plan existed are not the machine's to run.
    assert_eq!(due(&agent).await, Value::Null);
    assert_eq!(sweep(&server).await.missed, 0);

    // Just after the next slot, it is due; it starts once.
    after_next_slot(&server, &agent, 1).await;
    let slot = due(&agent).await;
    assert!(slot.is_string(), "{slot}");
    let (status, run) = start(&agent, &plan, &slot, false).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "running");
    let run_id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(due(&agent).await, Value::Null, "a started slot is not due again");
    let (status, again) = start(&agent, &plan, &slot, false).await;
    assert_eq!(status, 409, "{again}");
    let (status, off_slot) = start(&agent, &plan, &json!("2026-01-01T00:03:00Z"), false).await;
    assert_eq!(status, 422, "{off_slot}");
    assert!(
        off_slot["error"].as_str().unwrap().starts_with("scheduled:"),
        "{off_slot}"
    );

    // Progress, then the outcome; a success names its snapshot.
    let (status, _) = report(
        &agent,
        &run_id,
        json!({ "status": "running", "files": 10, "bytes_read": 1000 }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, refused) = report(&agent, &run_id, json!({ "status": "succeeded", "files": 20 })).await;
    assert_eq!(status, 422, "{refused}");
    let (status, refused) = report(&agent, &run_id, json!({ "status": "missed" })).await;
    assert_eq!(status, 422, "{refused}");
    let done = json!({ "status": "succeeded", "files": 20, "bytes_read": 2000, "bytes_added": 500,
        "snapshot_id": "ab".repeat(32) });
    let (status, finished) = report(&agent, &run_id, done.clone()).await;
    assert_eq!(status, 200, "{finished}");
    assert!(finished["finished"].is_string());
    // Sent again (the answer was lost): the same run; anything else: refused.
    assert_eq!(report(&agent, &run_id, done).await.0, 200);
    let (status, late) = report(&agent, &run_id, json!({ "status": "failed", "error": "late" })).await;
    assert_eq!(status, 409, "{late}");
    let (status, runs) = admin.get(&format!("/api/v1/runs?plan={plan}")).await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["files"], 20);
    assert_eq!(runs[0]["bytes_added"], 500);
    assert_eq!(runs[0]["machine_id"], agent.machine_id.as_str());
    assert_eq!(runs[0]["plan_name"], "every ten");
    assert_eq!(admin.get("/api/v1/runs?status=failed").await.1, json!([]));
    assert_eq!(admin.get("/api/v1/runs?status=late").await.0, 422);
    assert_eq!(admin.get("/api/v1/runs?machine=web-01").await.0, 422);
    assert_eq!(admin.get("/api/v1/runs?from=yesterday").await.0, 422);

    // The next slot passes with no run: within its grace (a minute) it is not missed yet,
    // after it it is, once; the machine then runs it late, in the same record.
    after_next_slot(&server, &agent, 30).await;
    assert_eq!(sweep(&server).await.missed, 0, "still within the grace");
    clock.advance(Duration::from_secs(40));
    assert_eq!(sweep(&server).await.missed, 1);
    assert_eq!(sweep(&server).await.missed, 0);
    let (_, missed) = admin.get("/api/v1/runs?status=missed").await;
    assert_eq!(missed.as_array().unwrap().len(), 1, "{missed}");
    let slot = due(&agent).await;
    assert_eq!(slot, missed[0]["scheduled"], "a missed slot is run late");
    let (status, late) = start(&agent, &plan, &slot, false).await;
    assert_eq!(status, 201, "{late}");
    assert_eq!(late["id"], missed[0]["id"]);
    assert_eq!(late["status"], "running");
    let late_id = late["id"].as_str().unwrap().to_owned();

    // The following slot comes while that run still goes: the agent skips it.
    after_next_slot(&server, &agent, 1).await;
    let next = due(&agent).await;
    let (status, skipped) = start(&agent, &plan, &next, true).await;
    assert_eq!(status, 201, "{skipped}");
    assert_eq!(skipped["status"], "skipped");
    assert_eq!(due(&agent).await, Value::Null);

    // The late run's agent falls silent for ten minutes: the run is failed.
    clock.advance(Duration::from_secs(601));
    assert_eq!(sweep(&server).await.silent, 1);
    let (_, failed) = admin.get("/api/v1/runs?status=failed").await;
    assert_eq!(failed[0]["id"], late_id.as_str(), "{failed}");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("stopped reporting"),
        "{failed}"
    );
    let (status, _) = report(
        &agent,
        &late_id,
        json!({ "status": "succeeded", "snapshot_id": "cd".repeat(32) }),
    )
    .await;
    assert_eq!(status, 409, "a run failed for silence stays failed");

    // A day of downtime: one missed slot is recorded (the latest), and one is due.
    let (_, before) = admin.get("/api/v1/runs").await;
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(sweep(&server).await.missed, 1);
    // (The admin's session ended meanwhile.)
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let (_, after) = admin.get("/api/v1/runs").await;
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1
    );
    assert!(due(&agent).await.is_string());

    // A disabled plan has nothing due, and refuses runs.
    let (status, _) = admin
        .call(
            Method::PATCH,
            &format!("/api/v1/plans/{plan}"),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(due(&agent).await, Value::Null);
    let (status, refused) = start(&agent, &plan, &after[0]["scheduled"], false).await;
    assert_eq!(status, 409, "{refused}");
}

/// The portal shows each plan's last runs (`/plans`), a plan's recent runs (its own page),
/// each machine's plans with their last result (`/machines`) and the dashboard's list of
/// last runs with those that need attention first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_show_in_the_portal() {
    let server = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let web = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    let token = server
        .new_registration_token(created["tenant_id"].as_str().unwrap())
        .await;
    let db = Agent::register(&server, &token, "db-01").await;
    let plan = json!({ "name": "毎晩のWeb", "kind": "files", "sources": ["/srv"],
        "schedule": "*/10 * * * *", "machines": [web.machine_id, db.machine_id] });
    let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    let plan = plan["id"].as_str().unwrap().to_owned();
    // web-01 runs its slot and succeeds; db-01 is off, and the slot passes it by.
    after_next_slot(&server, &web, 1).await;
    let (_, run) = start(&web, &plan, &due(&web).await, false).await;
    let done = json!({ "status": "succeeded", "files": 1234, "bytes_added": 5_000_000,
        "snapshot_id": "ab".repeat(32) });
    assert_eq!(report(&web, run["id"].as_str().unwrap(), done).await.0, 200);
    server.server.state().clock().advance(Duration::from_secs(120));
    assert_eq!(sweep(&server).await.missed, 1);
    let browser = kura_testing::portal::sign_in(
        &server,
        "ja",
        created["admin_login"].as_str().unwrap(),
        created["admin_password"].as_str().unwrap(),
    )
    .await;

    let page = browser.get("/plans").await;
    assert!(
        page.says("前回の実行") && page.says("成功") && page.says("未実行"),
        "{}",
        page.html
    );
    let page = browser.get(&format!("/plans/{plan}")).await;
    assert!(page.says("毎晩のWeb の最近の実行"), "{}", page.html);
    assert!(
        page.says("1,234") && page.says("db-01") && page.says("スナップショットを開く"),
        "{}",
        page.html
    );
    let page = browser.get("/machines").await;
    assert!(
        page.says("保護計画") && page.says("毎晩のWeb") && page.says("未実行"),
        "{}",
        page.html
    );
    let page = browser.get("/").await;
    assert!(page.says("保護計画の前回の実行"), "{}", page.html);
    let missed = page.html.find("未実行").unwrap();
    let succeeded = page.html.find("成功").unwrap();
    assert!(
        missed < succeeded,
        "what needs attention comes first: {}",
        page.html
    );
    // The machines API carries the same.
    let (_, machines) = admin.get("/api/v1/machines").await;
    let statuses: Vec<&str> = machines
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["last_runs"][0]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "missed"], "{machines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_sqlite() {
    retention_follows_each_successful_run(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_postgres() {
    retention_follows_each_successful_run(kura_testing::start_on_postgres(|_| ()).await).await;
}

/// One scheduled run of the machine's only plan that backs up `source` and succeeds.
async fn run_once(server: &TestServer, agent: &Agent, plan: &str, source: &str, n: u8) -> String {
    after_next_slot(server, agent, 1).await;
    let (status, run) = start(agent, plan, &due(agent).await, false).await;
    assert_eq!(status, 201, "{run}");
    let snapshot = agent
        .backup(source, &[format!("{source} generation {n}").as_bytes()])
        .await;
    let done = json!({ "status": "succeeded", "files": 1, "snapshot_id": snapshot });
    let (status, body) = report(agent, run["id"].as_str().unwrap(), done).await;
    assert_eq!(status, 200, "{body}");
    snapshot
}

/// After each successful run the service applies the plan's retention to that machine
/// and source, on its own authority (the agent cannot delete): the newest snapshots the
/// rules keep stay, the rest are forgotten and logged; another source is not touched; a
/// tenant's immutability period holds everything younger back, and says so.
async fn retention_follows_each_successful_run(server: TestServer) {
    for (code, immutable_days) in [("ACME-0001", 0), ("IMMU-0002", 7)] {
        let created = server
            .create_tenant(code, 3, json!({ "immutable_days": immutable_days }))
            .await;
        let admin = server
            .login(
                created["admin_login"].as_str().unwrap(),
                created["admin_password"].as_str().unwrap(),
            )
            .await;
        let agent = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
        agent.create_vault().await;
        let other = agent
            .backup("by hand", &[b"a manual backup of another source"])
            .await;
        let plan = json!({ "name": "nightly", "kind": "files", "sources": ["/srv"],
            "schedule": "*/10 * * * *", "retention": { "keep_last": 2 },
            "machines": [agent.machine_id] });
        let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
        assert_eq!(status, 201, "{plan}");
        let plan = plan["id"].as_str().unwrap().to_owned();
        let mut made = Vec::new();
        for n in 0..4 {
            made.push(run_once(&server, &agent, &plan, "srv", n).await);
        }
        let mut left = agent.snapshot_ids().await;
        left.sort();
        let mut expected: Vec<String> = if immutable_days == 0 {
            vec![made[2].clone(), made[3].clone(), other.clone()]
        } else {
            let mut all = made.clone();
            all.push(other.clone());
            all
        };
        expected.sort();
        assert_eq!(left, expected, "{code}");
        // (The clock has moved past the admin's session.)
        let admin = server
            .login(
                created["admin_login"].as_str().unwrap(),
                created["admin_password"].as_str().unwrap(),
            )
            .await;
        let (status, events) = admin.get("/api/v1/events").await;
        assert_eq!(status, 200, "{events}");
        let applied: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "retention.apply")
            .map(|e| e["result"].as_str().unwrap())
            .collect();
        if immutable_days == 0 {
            // Two runs found one snapshot too many each.
            assert_eq!(applied.len(), 2, "{events:#}");
            assert!(
                applied
                    .iter()
                    .all(|r| r.starts_with("ok: forgot 1 of 3 snapshots")),
                "{applied:?}"
            );
        } else {
            assert!(!applied.is_empty(), "{events:#}");
            assert!(
                applied[0].contains("kept back by the 7-day deletion lock"),
                "{applied:?}"
            );
        }
    }
}
