//! The agent daemon (`kura agent run`) against a real server, with the server's clock
//! moved forward instead of waiting for slots: due plans are backed up and reported, a
//! missing source is a failed run that says why, SIGTERM stops it cleanly, and after
//! downtime a missed plan runs once, late, in the missed slot's own record. The failure
//! and the downtime raise alerts mailed to a real SMTP server; the late success resolves
//! its plan's. Restore jobs and drills are performed and reported; upload limits pace.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use kura_testing::TestServer;
use kura_testing::user::Session;
use reqwest::Method;
use serde_json::{Value, json};

/// A daemon started as `kura agent run`, its log going to a file.
struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(kura: &Kura, state: &Path, log: &Path) -> Daemon {
        let file = std::fs::File::create(log).unwrap();
        let child = kura
            .command(["--json", "agent", "run", "--poll", "1", "--state-dir"])
            .arg(state)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the daemon starts");
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    /// The log lines so far, as JSON.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
            .collect()
    }

    /// SIGTERM, and the exit status within ten seconds.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to a minute) until the runs of the tenant satisfy `done`.
async fn runs_until(admin: &Session, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, runs) = admin.get("/api/v1/runs").await;
        assert_eq!(status, 200, "{runs}");
        let runs = runs.as_array().unwrap().clone();
        if done(&runs) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `kura` registered as `web-01` of the tenant `created` (config in `dir`), with an
/// unencrypted vault; and what `kura register` answered.
fn registered_machine(server: &TestServer, created: &Value, dir: &Path) -> (Kura, Value) {
    let mut kura = Kura::new(std::path::PathBuf::new());
    kura.env
        .push(("KURA_CONFIG".into(), dir.join("agent.toml").into()));
    let ca = server.server.ca_cert().unwrap().to_str().unwrap().to_owned();
    let registered = kura.json([
        "register",
        "--server",
        &server.customer,
        "--token",
        created["registration_token"].as_str().unwrap(),
        "--ca-cert",
        &ca,
        "--name",
        "web-01",
    ]);
    kura.ok(["init"]);
    (kura, registered)
}

/// Creates `plan` (assigned to the machine `kura` runs as), starts a daemon for it, moves
/// the server's clock to its first slot and answers the run once it has ended.
async fn first_run(server: &TestServer, admin: &Session, kura: &Kura, dir: &Path, plan: Value) -> Value {
    let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    let daemon = Daemon::start(kura, &dir.join("state"), &dir.join("daemon.log"));
    server.server.state().clock().advance(Duration::from_secs(300));
    let runs = runs_until(admin, "the plan's first run to end", |runs| {
        runs.len() == 1 && ended(&runs[0])
    })
    .await;
    assert!(daemon.terminate().success());
    runs[0].clone()
}

/// `kura key list`, and the slots' labels.
fn slot_labels(kura: &Kura) -> (Value, Vec<String>) {
    let slots = kura.json(["key", "list"]);
    let labels = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_owned())
        .collect();
    (slots, labels)
}

fn of_plan<'a>(runs: &'a [Value], plan: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["plan_name"] == plan).collect()
}

fn ended(run: &Value) -> bool {
    !matches!(run["status"].as_str(), Some("running" | "missed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_due_plans_and_reports_every_run() {
    let mail = kura_testing::smtp::MailServer::start().await;
    let smtp_port = mail.port;
    // Sessions that outlast the hours the clock is moved by.
    let server: TestServer = kura_testing::start(move |config| {
        config.session_idle_timeout = Duration::from_secs(24 * 3600);
        config.session_absolute_timeout = Duration::from_secs(24 * 3600);
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{smtp_port}"));
    })
    .await;
    let clock = server.server.state().clock().clone();
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    server.add_user_with_mail(&admin, "mia").await;
    let dir = tempfile::tempdir().unwrap();
    let (kura, registered) = registered_machine(&server, &created, dir.path());
    let source = dir.path().join("www");
    let bytes = generate_tree(&source, 7, 40, 20_000);
    for (name, sources) in [
        ("www", json!([source.to_str().unwrap()])),
        ("broken", json!(["/nonexistent/kura-daemon-test"])),
    ] {
        let plan = json!({ "name": name, "kind": "files", "sources": sources,
            "schedule": "*/5 * * * *", "machines": [registered["machine_id"]] });
        let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
        assert_eq!(status, 201, "{plan}");
    }

    let state = dir.path().join("state");
    let daemon = Daemon::start(&kura, &state, &dir.path().join("daemon-1.log"));
    // Five minutes on (for the server), both plans have a slot due.
    clock.advance(Duration::from_secs(300));
    let runs = runs_until(&admin, "both runs to end", |runs| {
        runs.len() == 2 && runs.iter().all(ended)
    })
    .await;
    let www = of_plan(&runs, "www")[0];
    assert_eq!(www["status"], "succeeded", "{www:#}");
    assert_eq!(www["files"], 40, "{www:#}");
    assert_eq!(www["bytes_read"], bytes, "{www:#}");
    assert!(www["bytes_added"].as_u64().unwrap() > 0, "{www:#}");
    let snapshot = www["snapshot_id"].as_str().unwrap();
    let broken = of_plan(&runs, "broken")[0];
    assert_eq!(broken["status"], "failed", "{broken:#}");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/kura-daemon-test"),
        "the error names the missing source: {broken:#}"
    );
    // The snapshot is the machine's, tagged with its plan.
    let listed = kura.json(["snapshots"]);
    let saved = listed.as_array().unwrap().iter().find(|s| s["id"] == snapshot);
    let saved = saved.unwrap_or_else(|| panic!("{snapshot} not in {listed:#}"));
    assert_eq!(saved["tags"], json!(["plan:www"]));
    // The failure is an alert, mailed.
    let (_, open) = admin.get("/api/v1/alerts").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open:#}");
    assert_eq!(
        (open[0]["kind"].as_str(), open[0]["plan_name"].as_str()),
        (Some("backup-failed"), Some("broken"))
    );
    let messages = mail.wait_for(1).await;
    assert!(
        messages[0].text.contains("/nonexistent/kura-daemon-test"),
        "{}",
        messages[0].text
    );

    // SIGTERM: a clean stop, said in the log.
    let lines = daemon.lines();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "backup succeeded" && l["plan"] == "www"),
        "{lines:#?}"
    );
    let log_path = daemon.log.clone();
    let status = daemon.terminate();
    assert!(
        status.success(),
        "{status:?}: {}",
        std::fs::read_to_string(log_path).unwrap()
    );

    // An hour of downtime (to two minutes after a slot, past its grace): the server
    // records that slot of each plan missed, and only that one.
    let (_, plans) = admin.get("/api/v1/plans").await;
    let next: jiff::Timestamp = plans[0]["next_run"].as_str().unwrap().parse().unwrap();
    let target = next.as_millisecond() + (55 + 2) * 60_000;
    clock.advance(Duration::from_millis(
        u64::try_from(target - clock.now_ms()).unwrap(),
    ));
    kura_service::ops::runs::sweep(server.server.service())
        .await
        .unwrap();
    let (_, missed) = admin.get("/api/v1/runs?status=missed").await;
    assert_eq!(missed.as_array().unwrap().len(), 2, "{missed:#}");
    let (_, open) = admin.get("/api/v1/alerts?kind=backup-missed").await;
    assert_eq!(open.as_array().unwrap().len(), 2, "{open:#}");
    // …and the machine, silent for an hour, is an alert of its own.
    let messages = mail.wait_for(4).await;
    let subjects: Vec<&str> = messages[1..].iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects.iter().filter(|s| s.contains("未実行")).count(),
        2,
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("マシンから連絡なし")),
        "{subjects:?}"
    );
    let missed_www = of_plan(missed.as_array().unwrap(), "www")[0]["id"].clone();
    // …and a daemon back on duty runs each once, late, in that record.
    let daemon = Daemon::start(&kura, &state, &dir.path().join("daemon-2.log"));
    let runs = runs_until(&admin, "the missed runs to end", |runs| {
        runs.len() == 4 && runs.iter().all(ended)
    })
    .await;
    let late = of_plan(&runs, "www");
    assert_eq!(late.len(), 2, "one run per slot, not one per slot slept through");
    assert_eq!(late[0]["id"], missed_www);
    assert_eq!(late[0]["status"], "succeeded", "{:#}", late[0]);
    assert!(late[0]["started"].as_str() > late[0]["scheduled"].as_str());
    // Nothing changed in the source: no file was read again.
    assert_eq!(late[0]["bytes_read"], 0, "{:#}", late[0]);
    // The late success resolves its plan's missed alert, and the machine calling again
    // its silence (at the server's next sweep); the broken plan's stay open.
    kura_service::ops::runs::sweep(server.server.service())
        .await
        .unwrap();
    let messages = mail.wait_for(6).await;
    let resolved: Vec<&str> = messages[4..].iter().map(|m| m.subject.as_str()).collect();
    assert!(resolved.iter().all(|s| s.contains("解決")), "{resolved:?}");
    assert!(resolved.iter().any(|s| s.contains("www")), "{resolved:?}");
    let (_, open) = admin.get("/api/v1/alerts").await;
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|a| a["plan_name"] == "broken"),
        "{open:#}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        admin.get("/api/v1/runs").await.1.as_array().unwrap().len(),
        4,
        "no run twice"
    );
    assert!(daemon.terminate().success());
}

/// A plan's upload limit paces its backups: 3 MiB of incompressible data at 1 MiB/s
/// takes three seconds, and the rate over the run stays within 10 % of the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plans_upload_limit_paces_its_backup() {
    let server: TestServer = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let (kura, registered) = registered_machine(&server, &created, dir.path());
    let source = dir.path().join("data");
    write_random(&source.join("random.bin"), 3, 3 << 20);
    let plan = json!({ "name": "slow link", "kind": "files", "sources": [source.to_str().unwrap()],
        "schedule": "*/5 * * * *", "bandwidth_limit": "1MiB/s", "machines": [registered["machine_id"]] });
    let run = first_run(&server, &admin, &kura, dir.path(), plan).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let time = |field: &str| run[field].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let seconds = (time("finished").as_millisecond() - time("started").as_millisecond()) as f64 / 1000.0;
    assert_paced(run["bytes_added"].as_u64().unwrap(), seconds);
}

/// At least 3 MiB sent in `seconds`, within 10 % over a limit of 1 MiB/s and not far
/// below it.
fn assert_paced(sent: u64, seconds: f64) {
    assert!(sent >= 3 << 20, "{sent} bytes sent");
    let rate = sent as f64 / seconds / 1048576.0;
    eprintln!("paced: {rate:.2} MiB/s over {seconds:.1} s ({sent} bytes)");
    assert!(
        rate <= 1.1,
        "{rate:.2} MiB/s over {seconds:.1} s against a limit of 1 MiB/s"
    );
    assert!(rate >= 0.5, "{rate:.2} MiB/s: paced far below the limit");
}

/// `kura backup --limit-upload` paces a backup by hand as a plan's limit paces the
/// daemon's; a rate that is not one, or a local vault, is refused saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_limit_upload_paces_the_upload() {
    let server: TestServer = kura_testing::start(|_| ()).await;
    let (created, _admin) = server.tenant_admin("ACME-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let (kura, _) = registered_machine(&server, &created, dir.path());
    let source = dir.path().join("data");
    write_random(&source.join("random.bin"), 4, 3 << 20);
    let src = source.to_str().unwrap();

    let refused = kura.run(["backup", "--limit-upload", "fast", src]);
    let said = assert_exit(&refused, 2);
    assert!(
        said.contains("not a rate above zero") && said.contains("20MiB/s"),
        "{said}"
    );
    let local = Kura::new(dir.path().join("local-vault"));
    local.init();
    let refused = local.run(["backup", "--limit-upload", "1MiB/s", src]);
    assert!(
        !refused.status.success() && stderr(&refused).contains("paces uploads to a server"),
        "{}",
        describe(&refused)
    );

    let started = Instant::now();
    let backed = kura.json(["backup", "--limit-upload", "1MiB/s", src]);
    assert_paced(
        backed["bytes_added"].as_u64().unwrap(),
        started.elapsed().as_secs_f64(),
    );
}

/// Unattended unlock: `kura init --encrypt` gives the machine a key slot of its own (its
/// secret in the agent config), so backups and the daemon open the encrypted vault with
/// no passphrase; a second machine gets one with `kura key add --machine`; revoking a
/// machine removes its slot, and the passphrase still opens the vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_open_an_encrypted_vault_with_their_own_key() {
    let server: TestServer = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = server.server.ca_cert().unwrap().to_str().unwrap().to_owned();
    let machine = |name: &str, token: &str| {
        let mut kura = Kura::new(std::path::PathBuf::new());
        kura.env.push((
            "KURA_CONFIG".into(),
            dir.path().join(format!("{name}.toml")).into(),
        ));
        let registered = kura.json([
            "register",
            "--server",
            &server.customer,
            "--token",
            token,
            "--ca-cert",
            &ca,
            "--name",
            name,
        ]);
        (kura, registered)
    };
    let (web, web_registered) = machine("web-01", created["registration_token"].as_str().unwrap());
    let out = web
        .with_password("the tenant's passphrase")
        .ok(["init", "--encrypt"]);
    assert!(stdout(&out).contains("its own key slot"), "{}", describe(&out));
    let config = std::fs::read_to_string(dir.path().join("web-01.toml")).unwrap();
    assert!(config.contains("machine_key"), "{config}");
    // No passphrase anywhere: the machine's key opens the vault.
    let source = dir.path().join("data");
    write_random(&source.join("a.bin"), 1, 100 << 10);
    web.backup(&[&source], &[]);
    let (slots, labels) = slot_labels(&web);
    assert!(labels.iter().any(|l| l == "machine web-01"), "{slots}");

    // A second machine: the passphrase once, then its own key.
    let token = server
        .new_registration_token(created["tenant_id"].as_str().unwrap())
        .await;
    let (mail, mail_registered) = machine("mail-01", &token);
    mail.with_password("the tenant's passphrase")
        .ok(["key", "add", "--machine"]);
    let listed = mail.json(["snapshots"]);
    assert_eq!(listed, json!([]), "mail-01 opens the vault with its own key");
    assert_eq!(web.json(["key", "list"]).as_array().unwrap().len(), 4);

    // Revoked: its slot is gone, the others and the passphrase still open the vault.
    let mail_id = mail_registered["machine_id"].as_str().unwrap();
    let (status, body) = admin
        .call(Method::DELETE, &format!("/api/v1/machines/{mail_id}"), None)
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (slots, labels) = slot_labels(&web);
    assert_eq!(labels.len(), 3, "{slots}");
    assert!(!labels.iter().any(|l| l == "machine mail-01"), "{slots}");
    web.with_password("the tenant's passphrase").ok(["snapshots"]);

    // The daemon runs a plan on the encrypted vault with no --password-file.
    let plan = json!({ "name": "www", "kind": "files", "sources": [source.to_str().unwrap()],
        "schedule": "*/5 * * * *", "machines": [web_registered["machine_id"]] });
    let run = first_run(&server, &admin, &web, dir.path(), plan).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
}

/// Without a server, the daemon keeps trying and says so; it does not exit.
#[test]
fn the_daemon_waits_for_a_server_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "server_url = \"https://127.0.0.1:9\"\ntenant_id = \"t\"\nmachine_id = \"m\"\n\
         machine_name = \"web-01\"\ncredential = \"kura_agent_x\"\n",
    )
    .unwrap();
    let mut kura = Kura::new(std::path::PathBuf::new());
    kura.env.push(("KURA_CONFIG".into(), config.into()));
    let daemon = Daemon::start(&kura, &dir.path().join("state"), &dir.path().join("daemon.log"));
    std::thread::sleep(Duration::from_secs(4));
    let lines = daemon.lines();
    let retries: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "cannot reach the server; trying again")
        .collect();
    assert!(retries.len() >= 2, "{lines:#?}");
    assert_eq!(retries[0]["level"], "warn");
    assert!(
        retries[0]["error"].as_str().unwrap().contains("127.0.0.1:9"),
        "{lines:#?}"
    );
    assert!(daemon.terminate().success());
}

/// `kura agent run` refuses a local vault: plans come from a server.
#[test]
fn the_daemon_needs_a_registered_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = Kura::new(dir.path().join("vault")).run(["agent", "run"]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("kura register"), "{text}");
}

/// Waits (up to a minute) until the restore job has ended; answers it.
async fn restore_ended(admin: &Session, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = admin.get(&format!("/api/v1/restores/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
            return job;
        }
        assert!(Instant::now() < deadline, "the restore job did not end: {job:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Restore jobs: a user asks the machine to restore a snapshot and its daemon restores
/// bytes that match; a non-empty target without `overwrite` fails the job with the
/// restore's own refusal, and nothing in it is touched; some paths with `overwrite`
/// restore just those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_performs_restore_jobs() {
    let server: TestServer = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let (kura, registered) = registered_machine(&server, &created, dir.path());
    let source = dir.path().join("www");
    generate_tree(&source, 11, 24, 30_000);
    let backed = kura.json(["backup", source.to_str().unwrap()]);
    let snapshot = backed["snapshot_id"].as_str().unwrap();
    let daemon = Daemon::start(&kura, &dir.path().join("state"), &dir.path().join("daemon.log"));
    let ask = |target: &Path, paths: Value, overwrite: bool| {
        let body = json!({ "snapshot_id": snapshot, "machine_id": registered["machine_id"],
            "target": target.to_str().unwrap(), "paths": paths, "overwrite": overwrite });
        let admin = &admin;
        async move {
            let (status, job) = admin.call(Method::POST, "/api/v1/restores", Some(body)).await;
            assert_eq!(status, 202, "{job}");
            assert_eq!(job["status"], "queued");
            job["id"].as_str().unwrap().to_owned()
        }
    };

    let target = dir.path().join("restored");
    let job = restore_ended(&admin, &ask(&target, json!([]), false).await).await;
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["files"], 24, "{job:#}");
    assert!(
        job["started"].is_string() && job["finished"].is_string(),
        "{job:#}"
    );
    assert_dirs_equal(&source, &restored(&target, &source), Compare::default());

    // Into the same, now non-empty, directory without overwrite: refused, untouched.
    let marker = target.join("keep-me.txt");
    std::fs::write(&marker, b"mine").unwrap();
    let job = restore_ended(&admin, &ask(&target, json!([]), false).await).await;
    assert_eq!(job["status"], "failed", "{job:#}");
    assert!(job["error"].as_str().unwrap().contains("is not empty"), "{job:#}");
    assert_eq!(std::fs::read(&marker).unwrap(), b"mine");

    // One file, with overwrite, into another directory.
    let inside = list_files(&source)
        .into_iter()
        .map(|f| source.join(f))
        .find(|f| f.is_file())
        .unwrap();
    let partial = dir.path().join("one");
    let job = restore_ended(
        &admin,
        &ask(&partial, json!([inside.to_str().unwrap()]), true).await,
    )
    .await;
    assert_eq!(
        (job["status"].as_str(), job["files"].as_u64()),
        (Some("succeeded"), Some(1)),
        "{job:#}"
    );
    assert_eq!(
        std::fs::read(restored(&partial, &inside)).unwrap(),
        std::fs::read(&inside).unwrap()
    );

    let (_, jobs) = admin.get(&format!("/api/v1/restores?snapshot={snapshot}")).await;
    assert_eq!(jobs.as_array().unwrap().len(), 3, "{jobs:#}");
    assert!(daemon.terminate().success());
}

/// The drills of the tenant once `done` holds for them (waiting up to a minute).
async fn drills_until(admin: &Session, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, drills) = admin.get("/api/v1/drills").await;
        assert_eq!(status, 200, "{drills}");
        let drills = drills.as_array().unwrap().clone();
        if done(&drills) {
            return drills;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {drills:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The vault directories under the server's data directory (each has `objects/packs`).
fn server_vaults(data: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![data.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if dir.join("objects/packs").is_dir() {
            found.push(dir);
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    found
}

/// Moves the server's clock to just after the next slot of the tenant's only plan.
async fn to_next_slot(server: &TestServer, admin: &Session) {
    let (_, plans) = admin.get("/api/v1/plans").await;
    let next: jiff::Timestamp = plans[0]["next_run"].as_str().unwrap().parse().unwrap();
    let clock = server.server.state().clock();
    let by = next.as_millisecond() + 1000 - clock.now_ms();
    clock.advance(Duration::from_millis(u64::try_from(by).unwrap()));
}

/// Creates `plan` (with a drill, assigned to the machine `kura` runs as), starts a daemon
/// for it, moves the server's clock to its first slot and answers the daemon and the
/// plan's first drill once that has ended.
async fn first_drill(
    server: &TestServer,
    admin: &Session,
    kura: &Kura,
    dir: &Path,
    plan: Value,
) -> (Daemon, Value) {
    let (status, plan) = admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    let daemon = Daemon::start(kura, &dir.join("state"), &dir.join("daemon.log"));
    to_next_slot(server, admin).await;
    let drills = drills_until(admin, "the first drill to end", |d| {
        d.first().is_some_and(|d| d["status"] != "running")
    })
    .await;
    (daemon, drills[0].clone())
}

/// Restore drills by the real daemon: after the plan's first backup, at a quiet time, the
/// daemon restores the snapshot into a scratch directory of its own, checks every file
/// and reports a pass with its counts, leaving no copy behind. A byte flipped in the
/// server's only copy of the data makes the next drill fail, naming the damaged files,
/// which is a `drill-failed` alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_performs_restore_drills() {
    let server: TestServer = kura_testing::start(|config| {
        // The test moves the clock by a week; the admin's session must outlive that.
        config.session_idle_timeout = Duration::from_secs(30 * 24 * 3600);
        config.session_absolute_timeout = Duration::from_secs(30 * 24 * 3600);
    })
    .await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let (kura, registered) = registered_machine(&server, &created, dir.path());
    let source = dir.path().join("www");
    generate_tree(&source, 12, 24, 30_000);
    let plan = json!({ "name": "drilled", "kind": "files", "sources": [source.to_str().unwrap()],
        "schedule": "*/5 * * * *", "drill": "weekly", "machines": [registered["machine_id"]] });
    let (daemon, drill) = first_drill(&server, &admin, &kura, dir.path(), plan).await;
    let state = dir.path().join("state");
    assert_eq!(drill["status"], "passed", "{drill:#}");
    assert_eq!(
        (drill["files"].as_u64(), drill["mismatches"].as_u64()),
        (Some(24), Some(0))
    );
    assert!(drill["bytes"].as_u64().unwrap() > 100_000, "{drill:#}");
    let runs = runs_until(&admin, "the backup", |runs| runs.iter().any(ended)).await;
    assert_eq!(
        drill["snapshot_id"], runs[0]["snapshot_id"],
        "the plan's latest snapshot"
    );
    let scratch = state.join("drills");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "no copy is left");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&scratch).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(
        daemon.lines().iter().any(|l| l["message"] == "drill passed"),
        "{:#?}",
        daemon.lines()
    );

    // Damage in the server's only copy: a week on, the next drill fails and says where.
    for vault in server_vaults(server.data_dir()) {
        for pack in pack_files(&vault) {
            flip(&pack, 100);
        }
    }
    server
        .server
        .state()
        .clock()
        .advance(Duration::from_secs(7 * 24 * 3600));
    to_next_slot(&server, &admin).await;
    let drills = drills_until(&admin, "the second drill to end", |d| {
        d.len() == 2 && d[0]["status"] != "running"
    })
    .await;
    let drill = &drills[0];
    assert_eq!(drill["status"], "failed", "{drill:#}");
    assert!(drill["mismatches"].as_u64().unwrap() > 0, "{drill:#}");
    assert!(
        drill["error"]
            .as_str()
            .unwrap()
            .contains("not restored as backed up"),
        "{drill:#}"
    );
    let (_, alerts) = admin.get("/api/v1/alerts?kind=drill-failed").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts:#}");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "no copy is left");
    assert!(daemon.terminate().success());
}

/// An image plan's drill reads the whole image through the restore path without
/// writing it anywhere: it passes, counts the image's stored bytes, and leaves no scratch
/// copy (none is made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_plans_drill_reads_the_image_without_writing() {
    let server: TestServer = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let (kura, registered) = registered_machine(&server, &created, dir.path());
    let disk = dir.path().join("disk.raw");
    write_random(&disk, 13, 4 << 20);
    let plan = json!({ "name": "disk", "kind": "image", "sources": [disk.to_str().unwrap()],
        "schedule": "*/5 * * * *", "drill": "monthly", "machines": [registered["machine_id"]] });
    let (daemon, drill) = first_drill(&server, &admin, &kura, dir.path(), plan).await;
    let state = dir.path().join("state");
    assert_eq!(drill["status"], "passed", "{drill:#}");
    assert_eq!(
        (drill["files"].as_u64(), drill["mismatches"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        drill["bytes"].as_u64(),
        Some(4 << 20),
        "every byte of the image read"
    );
    assert_eq!(std::fs::read_dir(state.join("drills")).unwrap().count(), 0);
    assert!(daemon.terminate().success());
}
