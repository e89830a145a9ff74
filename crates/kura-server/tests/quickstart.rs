//! The real `kura-server` binary: `quickstart --json`, the `tenant` CLI against it, and a
//! restart that reuses the demo tenant.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kura-server");

/// Starts quickstart on free ports (with `extra` options) and returns the process and
/// its first stdout line.
fn quickstart(data: &Path, extra: &[&str]) -> (Child, Value) {
    let mut child = Command::new(BIN)
        .args(["quickstart", "--json", "--data"])
        .arg(data)
        .args(extra)
        .args([
            "--customer-listen",
            "127.0.0.1:0",
            "--management-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line:?}"));
    (child, info)
}

/// SIGTERM, then the exit status must be success (graceful shutdown).
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "quickstart exited with {exit}");
}

fn cli(info: &Value, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("KURA_MANAGEMENT_URL", info["management_url"].as_str().unwrap())
        .env("KURA_CA_CERT", info["ca_cert"].as_str().unwrap())
        .env("KURA_OPERATOR_TOKEN", info["operator_token"].as_str().unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test]
async fn quickstart_runs_the_service_and_the_cli_manages_tenants() {
    let data = tempfile::tempdir().unwrap();
    let mail = kura_testing::smtp::MailServer::start().await;
    let smtp = format!("smtp://127.0.0.1:{}", mail.port);
    let (child, info) = quickstart(data.path(), &["--smtp-url", &smtp]);
    for key in [
        "customer_url",
        "management_url",
        "ca_cert",
        "operator_token",
        "tenant_id",
        "service_code",
        "admin_login",
        "admin_password",
        "registration_token",
    ] {
        assert!(
            info[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} missing in {info}"
        );
    }
    assert_eq!(info["service_code"], "DEMO-0001");
    let http = kura_testing::client_trusting(Path::new(info["ca_cert"].as_str().unwrap()));
    let health = http
        .get(format!("{}/healthz", info["management_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let created = cli(
        &info,
        &[
            "tenant",
            "create",
            "--service-code",
            "ACME-0001",
            "--name",
            "ACME Corp",
            "--quota",
            "500GiB",
            "--max-machines",
            "3",
            "--agent-networks",
            "10.0.0.0/8,192.0.2.0/24",
            "--json",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["tenant"]["quota_bytes"], 500u64 << 30);
    assert_eq!(created["tenant"]["agent_networks"].as_array().unwrap().len(), 2);
    assert_eq!(created["admin_login"], "acme-0001-admin");

    let duplicate = cli(
        &info,
        &[
            "tenant",
            "create",
            "--service-code",
            "ACME-0001",
            "--name",
            "x",
            "--quota",
            "1GB",
            "--max-machines",
            "1",
        ],
    );
    assert!(!duplicate.status.success());
    let stderr = String::from_utf8_lossy(&duplicate.stderr);
    assert!(
        stderr.contains("service code ACME-0001 is already in use (HTTP 409"),
        "{stderr}"
    );

    let bad_size = cli(
        &info,
        &[
            "tenant",
            "create",
            "--service-code",
            "BETA-0002",
            "--name",
            "x",
            "--quota",
            "5 parsecs",
            "--max-machines",
            "1",
        ],
    );
    assert!(!bad_size.status.success());
    assert!(String::from_utf8_lossy(&bad_size.stderr).contains("unknown unit"));

    let updated = cli(
        &info,
        &["tenant", "update", "ACME-0001", "--quota", "2TiB", "--json"],
    );
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    let updated: Value = serde_json::from_slice(&updated.stdout).unwrap();
    assert_eq!(updated["quota_bytes"], 2u64 << 40);

    let suspended = cli(&info, &["tenant", "suspend", "ACME-0001", "--json"]);
    assert!(suspended.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&suspended.stdout).unwrap()["status"],
        "suspended"
    );

    let listed = cli(&info, &["tenant", "list"]);
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("ACME-0001") && text.contains("DEMO-0001") && text.contains("2TiB"),
        "{text}"
    );

    let shown = cli(&info, &["tenant", "show", "DEMO-0001"]);
    assert!(shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("demo-0001-admin"));

    // The demo registration token works on the customer listener.
    let registered = http
        .post(format!(
            "{}/api/v1/agents/register",
            info["customer_url"].as_str().unwrap()
        ))
        .json(&serde_json::json!({"token": info["registration_token"], "name": "laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    // Operators run a job now and see it among the service's runs.
    let ran = cli(&info, &["jobs", "run", "expiry", "--wait", "--json"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let ran: Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(
        (ran["kind"].as_str(), ran["status"].as_str()),
        (Some("expiry"), Some("succeeded")),
        "{ran}"
    );
    let gc = cli(&info, &["jobs", "run", "gc", "--tenant", "DEMO-0001", "--wait"]);
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    assert!(String::from_utf8_lossy(&gc.stdout).contains("(gc) is succeeded"));
    let no_tenant = cli(&info, &["jobs", "run", "gc"]);
    assert!(!no_tenant.status.success());
    assert!(String::from_utf8_lossy(&no_tenant.stderr).contains("give tenant_id"));
    let listed = cli(&info, &["jobs", "list", "--kind", "expiry"]);
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(ran["id"].as_str().unwrap()) && text.contains("succeeded"),
        "{text}"
    );

    // The printed admin account is real: it signs in on the customer listener, and with
    // --smtp-url the service mails (a reset link to a user it adds).
    let customer = info["customer_url"].as_str().unwrap();
    let (status, body, admin) = kura_testing::user::try_login(
        &http,
        customer,
        info["admin_login"].as_str().unwrap(),
        info["admin_password"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user = serde_json::json!({ "login": "mia", "role": "operator", "email": "mia@example.com" });
    let (status, body) = admin
        .unwrap()
        .call(reqwest::Method::POST, "/api/v1/users", Some(user))
        .await;
    assert_eq!(status, 201, "{body}");
    let forgot = http
        .post(format!("{customer}/api/v1/password/forgot"))
        .json(&serde_json::json!({ "login": "mia" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status(), 202);
    let (_, token) = mail.reset_token(1).await;
    assert!(token.starts_with("kura_reset_"), "{token}");
    stop(child);

    // A second start reuses the tenant and secrets, with a fresh registration token
    // because the first was used.
    let (child, again) = quickstart(data.path(), &[]);
    for key in [
        "tenant_id",
        "admin_login",
        "admin_password",
        "operator_token",
        "ca_cert",
    ] {
        assert_eq!(again[key], info[key], "{key} changed across restarts");
    }
    assert_ne!(again["registration_token"], info["registration_token"]);
    let listed = cli(&again, &["tenant", "list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    stop(child);

    let (child, third) = quickstart(data.path(), &[]);
    assert_eq!(
        third["registration_token"], again["registration_token"],
        "an unused token is kept"
    );
    stop(child);
}
