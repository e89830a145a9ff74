//! The `kura-server` commands scripts use beside the console, driven as a script would
//! (the operator token in the environment, never on the command line): operator API
//! tokens (issue, list, use, revoke), a tenant's machines (list, revoke) and notices
//! (publish, update, list), each checked by its effect on the API.

use std::process::{Command, Output};

use kura_testing::TestServer;
use kura_testing::agent::Agent;
use serde_json::{Value, json};

/// Runs the binary against `server` with `token` in `KURA_OPERATOR_TOKEN`, on a blocking
/// thread so the in-process server keeps answering.
async fn cli(server: &TestServer, token: &str, args: &[&str]) -> Output {
    cli_with(server, &[("KURA_OPERATOR_TOKEN", token)], args).await
}

async fn cli_with(server: &TestServer, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kura-server"));
    command
        .args(args)
        .env("KURA_MANAGEMENT_URL", &server.management)
        .env("KURA_CA_CERT", server.server.ca_cert().unwrap());
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn scripts_manage_tokens_machines_and_notices(server: TestServer) {
    let admin_token = server.operator_token.clone();
    let created = server.create_tenant("CLI-0001", 2, json!({})).await;
    let agent = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;

    // A token for a billing script, issued by a person signed in with password and TOTP
    // (an API token may not mint tokens): listed without its secret, used, revoked.
    let sato = server.set_up_operator("sato", "operator-admin").await;
    let issue = |code: String| {
        let password = sato.password.clone();
        let server = &server;
        async move {
            let args = [
                "token", "issue", "--login", "sato", "--totp", &code, "--name", "billing", "--role",
                "operator", "--days", "7", "--json",
            ];
            cli_with(server, &[("KURA_OPERATOR_PASSWORD", password.as_str())], &args).await
        }
    };
    let refused = issue("000000".into()).await;
    assert!(!refused.status.success(), "a wrong TOTP code issues nothing");
    let issued = json_of(&issue(server.next_totp_code(&sato.totp_secret)).await);
    let secret = issued["token"].as_str().unwrap().to_owned();
    let id = issued["id"].as_str().unwrap().to_owned();
    assert_eq!(issued["role"], "operator");
    let listed = json_of(&cli(&server, &admin_token, &["token", "list", "--json"]).await);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!((&row["name"], &row["owner"]), (&json!("billing"), &json!("sato")));
    assert!(!listed.to_string().contains(&secret), "no secret in the list");
    let tenants = json_of(&cli(&server, &secret, &["tenant", "list", "--json"]).await);
    assert_eq!(tenants[0]["service_code"], "CLI-0001");
    let revoked = cli(&server, &admin_token, &["token", "revoke", &id]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let refused = cli(&server, &secret, &["tenant", "list"]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));

    // Machines: listed by code, revoked by name; the agent is locked out at once.
    let machines = json_of(
        &cli(
            &server,
            &admin_token,
            &["tenant", "machines", "CLI-0001", "--json"],
        )
        .await,
    );
    assert_eq!(machines[0]["name"], "web-01");
    assert!(machines[0]["revoked"].is_null());
    assert_eq!(server.whoami(&agent.credential).await.0, 200);
    let unknown = cli(
        &server,
        &admin_token,
        &["tenant", "revoke-machine", "CLI-0001", "db-99"],
    )
    .await;
    assert!(
        stderr(&unknown).contains("kura-server tenant machines CLI-0001"),
        "{}",
        stderr(&unknown)
    );
    let done = cli(
        &server,
        &admin_token,
        &["tenant", "revoke-machine", "CLI-0001", "web-01"],
    )
    .await;
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(server.whoami(&agent.credential).await.0, 401);
    let machines = json_of(
        &cli(
            &server,
            &admin_token,
            &["tenant", "machines", "CLI-0001", "--json"],
        )
        .await,
    );
    assert!(machines[0]["revoked"].is_string(), "{machines}");

    // A maintenance notice for this tenant, then a follow-up: both in the portal.
    let published = json_of(
        &cli(
            &server,
            &admin_token,
            &[
                "notice",
                "publish",
                "--kind",
                "maintenance",
                "--title-ja",
                "ストレージ増設",
                "--body-ja",
                "バックアップは止まりません。",
                "--title-en",
                "Storage upgrade",
                "--body-en",
                "Backups keep running.",
                "--starts",
                "2030-01-10T01:00:00Z",
                "--ends",
                "2030-01-10T03:00:00Z",
                "--tenants",
                "CLI-0001",
                "--json",
            ],
        )
        .await,
    );
    let notice = published[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(published[0]["tenants"][0], created["tenant_id"]);
    let updated = json_of(
        &cli(
            &server,
            &admin_token,
            &[
                "notice",
                "update",
                &notice,
                "--kind",
                "maintenance",
                "--title-ja",
                "ストレージ増設（延期）",
                "--body-ja",
                "1日延期します。",
                "--title-en",
                "Storage upgrade (moved)",
                "--body-en",
                "Moved by a day.",
                "--starts",
                "2030-01-11T01:00:00Z",
                "--ends",
                "2030-01-11T03:00:00Z",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(updated[0]["revision"], 2);
    let list = cli(&server, &admin_token, &["notice", "list"]).await;
    assert!(String::from_utf8_lossy(&list.stdout).contains(&notice));
    let session = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let (status, notices) = session.get("/api/v1/notices").await;
    assert_eq!(status, 200, "{notices}");
    assert!(notices.to_string().contains("1日延期します。"), "{notices}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_on_sqlite() {
    scripts_manage_tokens_machines_and_notices(kura_testing::start(|_| {}).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_on_postgres() {
    scripts_manage_tokens_machines_and_notices(kura_testing::start_on_postgres(|_| {}).await).await;
}
