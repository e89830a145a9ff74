//! Durable jobs and the mail outbox, from outside: an agent's verify runs as a job it
//! follows; operators list runs and start one now; expiry deletes what has expired; mail
//! waits for a mail server that is down and arrives in the recipient's language; two
//! `kura-server serve` processes on one PostgreSQL run each job once, and a job whose
//! server died is taken over when its lease runs out.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kura_server::config::SecretString;
use kura_testing::agent::Agent;
use kura_testing::postgres::PgSchema;
use kura_testing::smtp::MailServer;
use kura_testing::{TestServer, client_trusting, error_of, parts};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kura-server");

/// A tenant with a registered machine, a vault and one snapshot.
async fn tenant_with_backup(server: &TestServer, code: &str) -> (Value, Agent) {
    let created = server.create_tenant(code, 3, json!({})).await;
    let agent = Agent::register(server, created["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    agent.backup("etc", &[b"hostname", b"hosts"]).await;
    (created, agent)
}

async fn run_now(server: &TestServer, body: Value) -> (u16, Value) {
    server
        .operator(Method::POST, "/api/v1/operator/jobs", Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_records_usage_and_puts_backup_facts_right_on_sqlite() {
    meter_records_usage_and_puts_backup_facts_right(kura_testing::start(kura_testing::prompt_jobs).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_records_usage_and_puts_backup_facts_right_on_postgres() {
    meter_records_usage_and_puts_backup_facts_right(
        kura_testing::start_on_postgres(kura_testing::prompt_jobs).await,
    )
    .await;
}

async fn meter_records_usage_and_puts_backup_facts_right(server: TestServer) {
    let (created, agent) = tenant_with_backup(&server, "ACME-0001").await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let (_, machines) = admin.get("/api/v1/machines").await;
    assert_eq!(machines[0]["snapshots"], 1, "{machines}");
    let snapshot = machines[0]["sources"][0]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A commit the service did not get to mark (it crashed after the vault's commit).
    let svc = server.server.service().clone();
    let principal = kura_service::authz::agent(&svc, &agent.credential, None, &Default::default())
        .await
        .unwrap();
    kura_service::db::snapshots::set_committed(&svc.db, &principal.scope, &snapshot, false)
        .await
        .unwrap();
    let (_, machines) = admin.get("/api/v1/machines").await;
    assert_eq!(machines[0]["snapshots"], 0, "{machines}");

    let (status, queued) = run_now(&server, json!({ "kind": "meter", "tenant_id": tenant_id })).await;
    assert_eq!(status, 202, "{queued}");
    let job = server.finished_job(queued["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(
        (result["snapshots"].as_u64(), result["snapshots_marked"].as_u64()),
        (Some(1), Some(1)),
        "{job}"
    );
    assert!(result["stored_bytes"].as_u64().unwrap() > 0, "{job}");
    let (_, machines) = admin.get("/api/v1/machines").await;
    assert_eq!(machines[0]["snapshots"], 1, "{machines}");
    assert_eq!(machines[0]["sources"][0]["snapshot_id"], snapshot.as_str());

    // The day's row is what the history answers for earlier days; today is measured live.
    let (_, usage) = admin.get("/api/v1/usage").await;
    let history = usage["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{usage}");
    assert_eq!(history[0]["day"], result["day"], "{usage}");
    assert_eq!(history[0]["stored_bytes"], result["stored_bytes"], "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_runs_as_a_job_the_agent_follows_on_sqlite() {
    verify_runs_as_a_job_the_agent_follows(kura_testing::start(kura_testing::prompt_jobs).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_runs_as_a_job_the_agent_follows_on_postgres() {
    verify_runs_as_a_job_the_agent_follows(kura_testing::start_on_postgres(kura_testing::prompt_jobs).await)
        .await;
}

async fn verify_runs_as_a_job_the_agent_follows(server: TestServer) {
    let (created, agent) = tenant_with_backup(&server, "ACME-0001").await;
    let (status, queued) = agent
        .post_json("/api/v1/vault/verify", json!({ "read_data": true }))
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["kind"], "verify");
    assert_eq!(queued["requested_by"], format!("agent:{}", agent.machine_id));
    let job = agent.verify(true).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1);
    let report = &job["result"]["report"];
    assert_eq!(report["snapshots_checked"], 1, "{job}");
    assert!(report["packs_checked"].as_u64().unwrap() >= 1, "{job}");
    assert!(
        report["bytes_read"].as_u64().unwrap() > 0,
        "read_data reads the packs: {job}"
    );
    assert!(
        job["result"]["repair"].is_null(),
        "a clean vault needs no repair: {job}"
    );

    let tenant_id = created["tenant_id"].as_str().unwrap();
    let (status, runs) = server
        .operator(
            Method::GET,
            &format!("/api/v1/operator/jobs?kind=verify&tenant={tenant_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{runs}");
    let runs = runs.as_array().unwrap();
    assert!(runs.iter().any(|r| r["id"] == job["id"]), "{runs:?}");
    for field in [
        "id",
        "kind",
        "tenant_id",
        "status",
        "queued",
        "started",
        "finished",
        "attempts",
        "error",
    ] {
        assert!(runs[0].get(field).is_some(), "{field} missing: {}", runs[0]);
    }

    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let (_, events) = admin.get("/api/v1/events").await;
    let verified = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "vault.verify")
        .unwrap_or_else(|| panic!("no vault.verify event: {events}"));
    assert_eq!(verified["actor"], "service");
    assert!(
        verified["result"]
            .as_str()
            .unwrap()
            .starts_with("ok: 1 snapshots"),
        "{verified}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_run_jobs_now_and_see_every_run() {
    let server = kura_testing::start(kura_testing::prompt_jobs).await;
    let (created, _agent) = tenant_with_backup(&server, "ACME-0001").await;
    let tenant_id = created["tenant_id"].as_str().unwrap();

    let (status, gc) = run_now(&server, json!({ "kind": "gc", "tenant_id": tenant_id })).await;
    assert_eq!(status, 202, "{gc}");
    assert_eq!(
        (gc["kind"].as_str(), gc["tenant_id"].as_str()),
        (Some("gc"), Some(tenant_id))
    );
    assert_eq!(gc["requested_by"], "operator:bootstrap");
    let gc = server.finished_job(gc["id"].as_str().unwrap()).await;
    assert_eq!(gc["status"], "succeeded", "{gc}");
    assert!(gc["result"]["bytes_freed"].is_u64(), "{gc}");
    assert!(gc["runner"].as_str().unwrap().starts_with("server-"), "{gc}");
    let metrics = server
        .http
        .get(format!("{}/metrics", server.management))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kura_jobs_total{kind=\"gc\",status=\"succeeded\"}"),
        "{metrics}"
    );

    let (status, expiry) = run_now(&server, json!({ "kind": "expiry" })).await;
    assert_eq!(status, 202, "{expiry}");
    let expiry = server.finished_job(expiry["id"].as_str().unwrap()).await;
    assert_eq!(expiry["status"], "succeeded", "{expiry}");
    assert!(expiry["result"]["sessions"].is_u64(), "{expiry}");

    // Each mistake is named.
    let refused = [
        (json!({ "kind": "defrag" }), 422, "verify, gc, expiry, mail"),
        (json!({ "kind": "gc" }), 422, "give tenant_id"),
        (
            json!({ "kind": "expiry", "tenant_id": tenant_id }),
            422,
            "leave tenant_id out",
        ),
        (
            json!({ "kind": "gc", "tenant_id": "0".repeat(32) }),
            404,
            "no tenant",
        ),
        (json!({ "kind": "gc", "tenant": tenant_id }), 422, "unknown field"),
        (
            json!({ "kind": "purge", "tenant_id": tenant_id }),
            422,
            "terminating the tenant",
        ),
    ];
    for (body, want, says) in refused {
        let (status, answer) = run_now(&server, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(error_of(&answer).contains(says), "{body}: {answer}");
    }
    for (query, says) in [
        ("status=done", "queued, running, succeeded, failed"),
        ("tenant=ACME", "not a tenant id"),
        ("limit=0", "limit"),
        ("color=red", "unknown field"),
    ] {
        let (status, answer) = server
            .operator(Method::GET, &format!("/api/v1/operator/jobs?{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert!(error_of(&answer).contains(says), "{query}: {answer}");
    }
    let (status, _) = server
        .operator(
            Method::GET,
            &format!("/api/v1/operator/jobs/{}", "f".repeat(32)),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let (_, all) = server.operator(Method::GET, "/api/v1/operator/jobs", None).await;
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["expiry", "gc"], "newest first: {all}");
    let (_, succeeded_gc) = server
        .operator(
            Method::GET,
            "/api/v1/operator/jobs?kind=gc&status=succeeded",
            None,
        )
        .await;
    assert_eq!(succeeded_gc.as_array().unwrap().len(), 1, "{succeeded_gc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_rounds_are_queued_on_their_schedule() {
    let server = kura_testing::start(|config| {
        kura_testing::prompt_jobs(config);
        config.gc_interval = Duration::from_secs(1);
        config.expiry_interval = Duration::from_secs(1);
    })
    .await;
    let (created, _agent) = tenant_with_backup(&server, "ACME-0001").await;
    // The first round is due one interval after the start; then every interval.
    for _ in 0..100 {
        let (_, runs) = server
            .operator(Method::GET, "/api/v1/operator/jobs?status=succeeded", None)
            .await;
        let scheduled = |kind: &str| {
            runs.as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] == kind && r["requested_by"] == "schedule")
                .count()
        };
        let gc_of_tenant = runs
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "gc" && r["tenant_id"] == created["tenant_id"]);
        if scheduled("gc") >= 2 && scheduled("expiry") >= 2 && gc_of_tenant {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, runs) = server.operator(Method::GET, "/api/v1/operator/jobs", None).await;
    panic!("no two scheduled rounds of gc and expiry in 10 s: {runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_tokens_sessions_and_links_that_ended() {
    let server = kura_testing::start(kura_testing::prompt_jobs).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let (status, _) = admin.call(Method::POST, "/api/v1/logout", None).await;
    assert_eq!(status, 204);
    // The tenant's first registration token expires after 3 days.
    server
        .server
        .state()
        .clock()
        .advance(Duration::from_secs(3 * 24 * 3600 + 1));
    let (_, expiry) = run_now(&server, json!({ "kind": "expiry" })).await;
    let expiry = server.finished_job(expiry["id"].as_str().unwrap()).await;
    assert_eq!(expiry["status"], "succeeded", "{expiry}");
    assert_eq!(expiry["result"]["registration_tokens"], 1, "{expiry}");
    assert!(expiry["result"]["sessions"].as_u64().unwrap() >= 1, "{expiry}");
    let (status, body) = server
        .register(created["registration_token"].as_str().unwrap(), "late")
        .await;
    assert_eq!(status, 401, "an expired token stays refused once deleted: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_for_a_mail_server_that_is_down_and_speaks_the_users_language() {
    // A port where a mail server was and will be again.
    let port = MailServer::start().await.port;
    let server = kura_testing::start(|config| {
        kura_testing::prompt_jobs(config);
        config.smtp_url = SecretString::new(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let mia = server.add_user_with_mail(&admin, "mia").await;
    let forgot = server
        .http
        .post(format!("{}/api/v1/password/forgot", server.customer))
        .json(&json!({ "login": "mia" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status().as_u16(), 202);

    // The mail server is down: the message waits, nothing is lost.
    let deferred = wait_for_mail_run(&server, |result| result["deferred"] == 1).await;
    assert_eq!(deferred["status"], "succeeded", "{deferred}");

    // Back up: the next attempt (30 s later) delivers it, in Japanese for a Tokyo tenant.
    let mail = MailServer::start_on(port).await;
    server.server.state().clock().advance(Duration::from_secs(31));
    let messages = mail.wait_for(1).await;
    assert!(messages[0].to.contains("mia@example.com"), "{messages:?}");
    assert_eq!(messages[0].subject, "【Kura】パスワード再発行のご案内");
    assert!(messages[0].text.contains("30分以内"), "{}", messages[0].text);
    assert!(
        messages[0].text.contains("/reset-password?token=kura_reset_"),
        "{}",
        messages[0].text
    );
    assert!(
        messages[0].html.contains("<a href=\"https://localhost:"),
        "{}",
        messages[0].html
    );

    // Mia chooses English; the admin's forced reset reaches her in English.
    let password = mia["password"].as_str().unwrap();
    let session = server.login("mia", password).await;
    let (status, me) = session
        .call(Method::PATCH, "/api/v1/me", Some(json!({ "language": "en" })))
        .await;
    assert_eq!((status, me["language"].as_str()), (200, Some("en")), "{me}");
    let (status, refused) = session
        .call(Method::PATCH, "/api/v1/me", Some(json!({ "language": "fr" })))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(error_of(&refused).contains("\"ja\" or \"en\""), "{refused}");
    let path = format!("/api/v1/users/{}/reset-password", mia["id"].as_str().unwrap());
    let (status, body) = admin.call(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{body}");
    let messages = mail.wait_for(2).await;
    assert_eq!(
        messages[1].subject,
        "Kura: your password was reset by an administrator"
    );
    assert!(
        messages[1]
            .text
            .contains(created["admin_login"].as_str().unwrap()),
        "{}",
        messages[1].text
    );

    let (_, events) = admin.get("/api/v1/events").await;
    let sent = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "mail.sent" && e["target"] == "mia@example.com")
        .count();
    assert_eq!(sent, 2, "{events}");
}

/// Waits for a finished `mail` run whose result passes `wanted`.
async fn wait_for_mail_run(server: &TestServer, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, runs) = server
            .operator(Method::GET, "/api/v1/operator/jobs?kind=mail", None)
            .await;
        if let Some(run) = runs.as_array().unwrap().iter().find(|r| wanted(&r["result"])) {
            return run.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail run as wanted");
}

/// A `kura-server serve` process, killed if the test ends without stopping it.
struct Serve {
    child: Child,
    management: String,
    customer: String,
}

impl Serve {
    /// Starts `serve` with `config` (TOML) on ports of its own, and waits until it answers.
    async fn start(dir: &std::path::Path, name: &str, shared: &str) -> Serve {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (customer, management) = (free(), free());
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "{shared}\ncustomer_listen = \"127.0.0.1:{customer}\"\nmanagement_listen = \"127.0.0.1:{management}\"\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The log says when both listeners are up.
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("kura-server listening") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name} did not start"));
        Serve {
            child,
            management: format!("https://localhost:{management}"),
            customer: format!("https://localhost:{customer}"),
        }
    }

    /// SIGTERM; a graceful stop exits with success.
    fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "serve exited with {exit}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgresql_run_each_job_once() {
    let schema = PgSchema::create("jobs").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shared = format!(
        "data_dir = \"{}\"\ndatabase_url = \"{}\"\njob_tick = \"100ms\"\njob_lease = \"2s\"\n\
         gc_interval = \"0s\"\nverify_interval = \"0s\"\nexpiry_interval = \"0s\"\nmeter_interval = \"0s\"\n",
        data.display(),
        schema.url()
    );
    // The first server makes the CA and the bootstrap token the second then uses.
    let mut a = Serve::start(dir.path(), "a", &shared).await;
    let mut b = Serve::start(dir.path(), "b", &shared).await;
    let http = client_trusting(&data.join("tls").join("ca.pem"));
    let token = std::fs::read_to_string(data.join("operator-token")).unwrap();
    let operator = |base: &str, method: Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token.trim());
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { parts(request.send().await.unwrap()).await }
    };

    let mut tenants = Vec::new();
    for n in 0..6 {
        let body = json!({
            "service_code": format!("TWO-{n:04}"), "name": "Two", "quota_bytes": 1u64 << 30, "max_machines": 1,
        });
        let (status, created) = operator(
            &a.management,
            Method::POST,
            "/api/v1/operator/tenants",
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let agent = Agent::register_at(
            &http,
            &a.customer,
            created["registration_token"].as_str().unwrap(),
            "m",
        )
        .await;
        agent.create_vault().await;
        tenants.push(created["tenant_id"].as_str().unwrap().to_owned());
    }
    // Every job is asked for at both servers at once.
    let mut asked = Vec::new();
    for tenant in &tenants {
        for kind in ["gc", "verify"] {
            let body = json!({ "kind": kind, "tenant_id": tenant });
            let (at_a, at_b) = tokio::join!(
                operator(
                    &a.management,
                    Method::POST,
                    "/api/v1/operator/jobs",
                    Some(body.clone())
                ),
                operator(&b.management, Method::POST, "/api/v1/operator/jobs", Some(body)),
            );
            assert_eq!((at_a.0, at_b.0), (202, 202), "{at_a:?} {at_b:?}");
            asked.push(at_a.1["id"].as_str().unwrap().to_owned());
            asked.push(at_b.1["id"].as_str().unwrap().to_owned());
        }
    }
    let mut waited = 0;
    let runs = loop {
        waited += 1;
        assert!(waited < 300, "the jobs did not all finish within a minute");
        let (_, runs) = operator(&b.management, Method::GET, "/api/v1/operator/jobs", None).await;
        let runs = runs.as_array().unwrap().clone();
        if runs
            .iter()
            .all(|r| r["status"] == "succeeded" || r["status"] == "failed")
            && runs.len() >= 12
        {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        runs.iter()
            .all(|r| r["status"] == "succeeded" && r["attempts"] == 1),
        "{runs:?}"
    );
    assert!(
        asked
            .iter()
            .all(|id| runs.iter().any(|r| r["id"] == *id.as_str()))
    );
    let runners: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r["runner"].as_str().unwrap()).collect();
    eprintln!("{} runs by {runners:?}", runs.len());

    // Each run did its work once: one event per run.
    let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT tenant_id, action, COUNT(*) FROM events WHERE action IN ('vault.gc', 'vault.verify') \
         GROUP BY tenant_id, action",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // (A request reaching one server after the other's run of it ended queues a second run.)
    assert_eq!(counts.len(), 12, "{counts:?}");
    for (tenant, action, events) in &counts {
        let kind = action.trim_start_matches("vault.");
        let ran = runs
            .iter()
            .filter(|r| r["tenant_id"] == *tenant.as_str() && r["kind"] == kind)
            .count();
        assert_eq!(*events as usize, ran, "{tenant} {action}: {counts:?} {runs:?}");
    }

    // A server dies holding a job: once its lease has run out, the other takes it over.
    let victim = runs.iter().find(|r| r["kind"] == "gc").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now_ms: i64 = sqlx::query_scalar("SELECT MAX(finished_ms) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'running', lease_owner = 'server-that-died', lease_until_ms = $1, \
         finished_ms = NULL WHERE id = $2",
    )
    .bind(now_ms + 1000)
    .bind(&victim)
    .execute(&pool)
    .await
    .unwrap();
    let mut waited = 0;
    let taken = loop {
        waited += 1;
        assert!(waited < 300, "the cut-off job was not taken over within a minute");
        let (_, run) = operator(
            &a.management,
            Method::GET,
            &format!("/api/v1/operator/jobs/{victim}"),
            None,
        )
        .await;
        if run["status"] == "succeeded" {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(taken["attempts"], 2, "{taken}");
    let runner = taken["runner"].as_str().unwrap();
    assert!(
        runner.starts_with("server-") && runner != "server-that-died",
        "{taken}"
    );
    pool.close().await;
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metering_exports_what_tenants_stored_and_moved_on_sqlite() {
    metering_exports_what_tenants_stored_and_moved(kura_testing::start(kura_testing::prompt_jobs).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metering_exports_what_tenants_stored_and_moved_on_postgres() {
    metering_exports_what_tenants_stored_and_moved(
        kura_testing::start_on_postgres(kura_testing::prompt_jobs).await,
    )
    .await;
}

/// Uploads and restores are counted as the bytes move; the meter job adds what is
/// stored; the export has both, per tenant and day, as JSON and as CSV.
async fn metering_exports_what_tenants_stored_and_moved(server: TestServer) {
    let (acme, agent) = tenant_with_backup(&server, "ACME-0001").await;
    let (beta, _) = tenant_with_backup(&server, "BETA-0002").await;
    let chunks: [&[u8]; 3] = [b"metered one", b"metered two", b"metered three"];
    let session = agent.open_session().await;
    let (ids, pack) = agent.pack(&chunks);
    let pack_bytes = pack.len() as u64;
    assert_eq!(agent.put_pack(&session, pack).await.0, 200);
    let logical: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let (manifest, refs) = agent.manifest_of_size("srv", &ids, logical);
    assert_eq!(agent.commit(&session, &manifest, &refs).await.0, 201);
    // A restore reads the blobs back.
    let restored = agent.read_blobs(&ids).await.len() as u64;
    assert!(restored > 0);
    for tenant in [&acme, &beta] {
        let (status, job) = run_now(
            &server,
            json!({ "kind": "meter", "tenant_id": tenant["tenant_id"] }),
        )
        .await;
        assert_eq!(status, 202, "{job}");
        let job = server.finished_job(job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }

    let (status, rows) = server.operator(Method::GET, "/api/v1/operator/usage", None).await;
    assert_eq!(status, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per tenant today: {rows:?}");
    let row = &rows[0];
    assert_eq!(row["service_code"], "ACME-0001");
    assert_eq!(row["snapshots"], 2);
    assert_eq!(row["machines"], 1);
    assert!(row["stored_bytes"].as_u64().unwrap() > pack_bytes, "{row}");
    assert_eq!(row["logical_bytes"], logical, "the snapshots' own sizes: {row}");
    assert!(
        row["uploaded_bytes"].as_u64().unwrap() > pack_bytes,
        "both packs were counted: {row}"
    );
    assert_eq!(row["restored_bytes"].as_u64().unwrap(), restored, "{row}");
    assert_eq!(rows[1]["service_code"], "BETA-0002");
    assert_eq!(rows[1]["restored_bytes"], 0);

    // CSV: a header, then the same figures.
    let response = server
        .http
        .get(format!("{}/api/v1/operator/usage?format=csv", server.management))
        .bearer_auth(&server.operator_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        response.headers()
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], kura_service::ops::metering::CSV_HEADER);
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].contains(&format!(",ACME-0001,{},", row["stored_bytes"])),
        "{csv}"
    );
    assert!(lines[1].ends_with(&format!(",{restored}")), "{csv}");

    // Ranges: days outside hold nothing; bad ranges say what to give.
    let (status, rows) = server
        .operator(
            Method::GET,
            "/api/v1/operator/usage?from=2020-01-01&to=2020-01-31",
            None,
        )
        .await;
    assert_eq!((status, rows), (200, json!([])));
    for (query, words) in [
        ("from=2026-13-01", "YYYY-MM-DD"),
        ("from=2026-02-01&to=2026-01-01", "after"),
        ("from=2024-01-01&to=2026-01-01", "366"),
        ("format=xml", "json or csv"),
    ] {
        let (status, answer) = server
            .operator(Method::GET, &format!("/api/v1/operator/usage?{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert!(error_of(&answer).contains(words), "{query}: {answer}");
    }
}
