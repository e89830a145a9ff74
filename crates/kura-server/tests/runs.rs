//! Runs of protection plans through the agent and user API, on SQLite and PostgreSQL,
//! with the server's clock moved forward instead of waiting: a due slot is started once,
//! reported on and listed; a slot nobody ran is missed after its grace and run late once;
//! a slot that comes while the plan still runs is skipped; a run whose agent falls silent
//! is failed; a machine back from a long downtime has one slot to run, not one per slot
//! it slept through; and every bad report is refused without changing the run. Restore
//! drills are offered at quiet times, judged, and alert when they fail.

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
    agent.patch_json(&format!("/api/v1/agent/runs/{run}"), body).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_on_sqlite() {
    let mail = kura_testing::smtp::MailServer::start().await;
    let server = kura_testing::start(drill_config(mail.port)).await;
    drills_are_offered_at_quiet_times_and_judged(server, mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_on_postgres() {
    let mail = kura_testing::smtp::MailServer::start().await;
    let server = kura_testing::start_on_postgres(drill_config(mail.port)).await;
    drills_are_offered_at_quiet_times_and_judged(server, mail).await;
}

fn drill_config(port: u16) -> impl FnOnce(&mut kura_server::ServerConfig) {
    move |config| {
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
        // The test moves the clock by days; sessions must outlive that.
        config.session_idle_timeout = Duration::from_secs(30 * 24 * 3600);
        config.session_absolute_timeout = Duration::from_secs(30 * 24 * 3600);
    }
}

/// The snapshot the machine's plan offers to drill now, if any.
async fn drill_offered(agent: &Agent) -> Option<String> {
    let (status, plans) = agent.get("/api/v1/agent/plans").await;
    assert_eq!(status, 200, "{plans}");
    plans["plans"][0]["drill"].as_str().map(str::to_owned)
}

async fn report_drill(agent: &Agent, id: &str, body: Value) -> (u16, Value) {
    agent
        .patch_json(&format!("/api/v1/agent/drills/{id}"), body)
        .await
}

/// A plan's restore drill is offered to its machine when one is due and the machine is
/// quiet, with the latest snapshot a run of the plan saved; retention keeps a snapshot
/// while it is drilled; a failed drill raises `drill-failed` and mails it, the next
/// drill that passes resolves it; a drill whose machine falls silent is abandoned without
/// an alert; bad input is refused naming the field; another tenant sees nothing.
async fn drills_are_offered_at_quiet_times_and_judged(
    server: TestServer,
    mail: kura_testing::smtp::MailServer,
) {
    let clock = server.server.state().clock().clone();
    let created = server
        .create_tenant("ACME-0001", 3, json!({ "immutable_days": 0 }))
        .await;
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    server.add_user_with_mail(&admin, "mia").await;
    let web = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    web.create_vault().await;
    let (other, other_admin) = server.tenant_admin("OTHR-0002").await;
    let stranger = Agent::register(&server, other["registration_token"].as_str().unwrap(), "x-01").await;

    // A drill is weekly or monthly, nothing else.
    let plan = json!({ "name": "nightly", "kind": "files", "sources": ["/srv"],
        "schedule": "*/10 * * * *", "retention": { "keep_last": 1 }, "drill": "daily",
        "machines": [web.machine_id] });
    let (status, refused) = admin
        .call(Method::POST, "/api/v1/plans", Some(plan.clone()))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().starts_with("drill:"),
        "{refused}"
    );
    let mut plan = plan;
    plan["drill"] = json!("weekly");
    let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!((status, plan["drill"].as_str()), (201, Some("weekly")), "{plan}");
    let plan = plan["id"].as_str().unwrap().to_owned();

    // Nothing to drill before a run of the plan saved a snapshot.
    assert_eq!(drill_offered(&web).await, None);
    let first = run_once(&server, &web, &plan, "srv", 0).await;
    assert_eq!(drill_offered(&web).await.as_deref(), Some(first.as_str()));

    // A machine with a restore job waiting is not quiet.
    let (status, job) = admin
        .call(
            Method::POST,
            "/api/v1/restores",
            Some(json!({ "snapshot_id": first, "machine_id": web.machine_id, "target": "/srv/r" })),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(drill_offered(&web).await, None, "busy with a restore job");
    let job_path = format!("/api/v1/agent/restores/{}", job["id"].as_str().unwrap());
    for status in ["running", "failed"] {
        let (code, job) = web.patch_json(&job_path, json!({ "status": status })).await;
        assert_eq!(code, 200, "{job}");
    }
    assert_eq!(drill_offered(&web).await.as_deref(), Some(first.as_str()));

    // Starting: only this machine's plan and its own kept snapshot.
    let start = |plan_id: &str, snapshot: &str| {
        web.post_json(
            "/api/v1/agent/drills",
            json!({ "plan_id": plan_id, "snapshot_id": snapshot }),
        )
    };
    let (status, refused) = start(&"0".repeat(32), &first).await;
    assert_eq!(status, 404, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().starts_with("plan_id:"),
        "{refused}"
    );
    let (status, refused) = start(&plan, &"ab".repeat(32)).await;
    assert_eq!(status, 404, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().starts_with("snapshot_id:"),
        "{refused}"
    );
    let (status, drill) = start(&plan, &first).await;
    assert_eq!(
        (status, drill["status"].as_str()),
        (201, Some("running")),
        "{drill}"
    );
    let drill = drill["id"].as_str().unwrap().to_owned();
    assert_eq!(start(&plan, &first).await.0, 409, "one drill of a plan at a time");
    assert_eq!(drill_offered(&web).await, None, "not while one runs");
    assert_eq!(
        report_drill(&stranger, &drill, json!({ "status": "running" }))
            .await
            .0,
        404
    );

    // While the drill reads the first snapshot, retention keeps it.
    let progress = json!({ "status": "running", "files": 1, "bytes": 10 });
    assert_eq!(report_drill(&web, &drill, progress.clone()).await.0, 200);
    clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(report_drill(&web, &drill, progress).await.0, 200);
    let second = run_once(&server, &web, &plan, "srv", 1).await;
    let mut kept = web.snapshot_ids().await;
    kept.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(kept, expected, "keep_last 1, but the first is being drilled");

    // A drill that found mismatches has failed: an alert, mailed once.
    let (status, refused) = report_drill(
        &web,
        &drill,
        json!({ "status": "passed", "files": 1, "mismatches": 1 }),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let failed = json!({ "status": "failed", "files": 1, "bytes": 10, "mismatches": 1,
        "error": "1 not restored as backed up: /srv/a: its content on disk differs from the snapshot" });
    let (status, ended) = report_drill(&web, &drill, failed.clone()).await;
    assert_eq!(
        (status, ended["status"].as_str()),
        (200, Some("failed")),
        "{ended}"
    );
    assert_eq!(
        report_drill(&web, &drill, failed).await.0,
        200,
        "the outcome again"
    );
    let (_, open) = admin.get("/api/v1/alerts?kind=drill-failed").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert!(
        open[0]["message"].as_str().unwrap().contains("1 of 1 files"),
        "{open}"
    );
    let messages = drill_mail(&mail, 1).await;
    assert!(messages[0].to.contains("mia@example.com"), "{messages:?}");

    // Once the drill ended, the next run's retention forgets what the rules drop.
    let third = run_once(&server, &web, &plan, "srv", 2).await;
    assert_eq!(web.snapshot_ids().await, [third]);

    // A failed drill is tried again a day later, with the latest snapshot.
    assert_eq!(drill_offered(&web).await, None, "not within a day");
    clock.advance(Duration::from_secs(24 * 3600));
    let fourth = run_once(&server, &web, &plan, "srv", 3).await;
    assert_eq!(drill_offered(&web).await.as_deref(), Some(fourth.as_str()));
    let (_, again) = start(&plan, &fourth).await;
    let again = again["id"].as_str().unwrap().to_owned();
    let passed = json!({ "status": "passed", "files": 1, "bytes": 10 });
    assert_eq!(report_drill(&web, &again, passed).await.0, 200);
    let (_, open) = admin.get("/api/v1/alerts?kind=drill-failed").await;
    assert!(open.as_array().unwrap().is_empty(), "resolved: {open}");
    let messages = drill_mail(&mail, 2).await;
    assert!(messages[1].text.contains("解決"), "{messages:?}");

    // A week later the next is due; a drill whose machine falls silent is abandoned,
    // without an alert, and offered again within the hour.
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    let fifth = run_once(&server, &web, &plan, "srv", 4).await;
    let (status, silent) = start(&plan, &fifth).await;
    assert_eq!(status, 201, "{silent}");
    clock.advance(Duration::from_secs(11 * 60));
    kura_service::ops::drills::sweep(server.server.service())
        .await
        .unwrap();
    run_once(&server, &web, &plan, "srv", 5).await;
    assert_eq!(drill_offered(&web).await, None, "not within the hour");
    clock.advance(Duration::from_secs(3600));
    let seventh = run_once(&server, &web, &plan, "srv", 6).await;
    assert_eq!(drill_offered(&web).await, Some(seventh), "offered again");

    // The tenant reads its drills, the latest first; filters are checked.
    let (status, drills) = admin.get("/api/v1/drills").await;
    assert_eq!(status, 200, "{drills}");
    let statuses: Vec<&str> = drills
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["abandoned", "passed", "failed"], "{drills}");
    assert_eq!(drills[2]["mismatches"], 1);
    assert_eq!(drills[2]["snapshot_id"], first.as_str());
    assert_eq!(drills[2]["plan_name"], "nightly");
    assert!(drills[2]["duration_s"].as_f64().unwrap() >= 300.0, "{drills}");
    let (_, failed) = admin.get("/api/v1/drills?status=failed").await;
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    let (status, refused) = admin.get("/api/v1/drills?status=broken").await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().starts_with("status:"),
        "{refused}"
    );
    let (_, theirs) = other_admin.get("/api/v1/drills").await;
    assert_eq!(theirs, json!([]), "another tenant sees none");
    let (_, alerts) = admin.get("/api/v1/alerts?state=all&kind=drill-failed").await;
    assert_eq!(
        alerts.as_array().unwrap().len(),
        1,
        "the abandoned drill raised none"
    );
    assert_eq!(
        drill_mail(&mail, 2).await.len(),
        2,
        "nothing mailed for the abandoned one"
    );
}

/// The mail about drills (the clock moves by days, so missed slots are mailed too), once
/// `count` have come; waits up to ten seconds.
async fn drill_mail(
    mail: &kura_testing::smtp::MailServer,
    count: usize,
) -> Vec<kura_testing::smtp::Delivered> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let about: Vec<_> = mail
            .messages()
            .into_iter()
            .filter(|m| m.text.contains("リストア訓練"))
            .collect();
        if about.len() >= count || std::time::Instant::now() > deadline {
            assert_eq!(about.len(), count, "{about:?}");
            return about;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
