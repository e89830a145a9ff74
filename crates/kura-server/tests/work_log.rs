//! The operator work log from outside: operator-admins read it filtered, download it as
//! JSON or CSV (each download recorded), and have the service check every event chain,
//! which names a row edited behind its back; operators without the role are refused;
//! the same through `kura-server audit work-log` and `audit check`.

use kura_testing::{TestServer, error_of};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kura-server");

async fn work_log(server: &TestServer, query: &str) -> Vec<Value> {
    let (status, rows) = server
        .operator(Method::GET, &format!("/api/v1/operator/events{query}"), None)
        .await;
    assert_eq!(status, 200, "{rows}");
    rows.as_array().unwrap().clone()
}

async fn operators_read_and_download_the_work_log(server: TestServer) {
    server.create_tenant("LOG-0001", 1, json!({})).await;
    let rows = work_log(&server, "").await;
    let created = rows
        .iter()
        .find(|row| row["action"] == "operator.post" && row["target"] == "/api/v1/operator/tenants")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(created["result"], "201");
    assert!(created["time"].as_str().unwrap().ends_with("+00:00"), "{created}");
    // Oldest first, numbered without gaps.
    let seqs: Vec<i64> = rows.iter().map(|row| row["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|pair| pair[1] == pair[0] + 1), "{seqs:?}");

    let posts = work_log(&server, "?action=operator.post").await;
    assert!(!posts.is_empty() && posts.iter().all(|row| row["action"] == "operator.post"));
    assert!(work_log(&server, "?from=2999-01-01T00:00:00Z").await.is_empty());
    let (status, body) = server
        .operator(Method::GET, "/api/v1/operator/events?from=yesterday", None)
        .await;
    assert_eq!(status, 422, "{body}");

    let response = server
        .http
        .get(format!("{}/api/v1/operator/events?format=csv", server.management))
        .bearer_auth(&server.operator_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("kura-work-log.csv")
    );
    let csv = response.text().await.unwrap();
    assert!(csv.starts_with("seq,time,time_utc,actor,source,action,target,result,request_id\r\n"));
    assert!(
        csv.contains(",operator.post,/api/v1/operator/tenants,201,"),
        "{csv}"
    );
    // Each download is in the log, with its format and filter.
    let exports = work_log(&server, "?action=operator.log.export").await;
    let targets: Vec<&str> = exports
        .iter()
        .map(|row| row["target"].as_str().unwrap())
        .collect();
    assert!(targets.contains(&"csv"), "{targets:?}");
    assert!(targets.contains(&"json action=operator.post"), "{targets:?}");

    // Reading the log is for operator-admins.
    let tanaka = server.set_up_operator("tanaka", "operator").await;
    let (status, body) = tanaka
        .session
        .call(Method::GET, "/api/v1/operator/events", None)
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = tanaka
        .session
        .call(Method::GET, "/api/v1/operator/events/verify", None)
        .await;
    assert_eq!(status, 403, "{}", error_of(&body));

    // A console page about a tenant is in that tenant's own log as well: its admins see
    // which operator looked at it, and when.
    let (looked_at, admin) = server.tenant_admin("LOOK-0002").await;
    let page = format!("/tenants/{}", looked_at["tenant_id"].as_str().unwrap());
    let (status, _) = tanaka.session.get(&page).await;
    assert_eq!(status, 200);
    let (status, events) = admin.get("/api/v1/events").await;
    assert_eq!(status, 200, "{events}");
    let looks: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "operator.get" && e["target"] == page.as_str())
        .collect();
    assert_eq!(looks.len(), 1, "{events}");
    assert_eq!(looks[0]["actor"], "operator:tanaka", "{}", looks[0]);
    assert_eq!(looks[0]["result"], "200", "{}", looks[0]);
    let (_, other) = server.tenant_admin("LOOK-0003").await;
    let (_, events) = other.get("/api/v1/events").await;
    assert!(
        !events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "operator.get"),
        "another tenant's log does not hear of it: {events}"
    );

    let (status, check) = server
        .operator(Method::GET, "/api/v1/operator/events/verify", None)
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["intact"], true, "{check}");
    assert!(check["events"].as_u64().unwrap() >= rows.len() as u64, "{check}");
    let checks = work_log(&server, "?action=operator.log.verify").await;
    assert!(
        checks[0]["result"].as_str().unwrap().starts_with("intact: "),
        "{checks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_and_download_the_work_log_on_sqlite() {
    operators_read_and_download_the_work_log(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_and_download_the_work_log_on_postgres() {
    operators_read_and_download_the_work_log(kura_testing::start_on_postgres(|_| ()).await).await;
}

fn cli(server: &TestServer, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("KURA_MANAGEMENT_URL", &server.management)
        .env("KURA_CA_CERT", server.server.ca_cert().unwrap())
        .env("KURA_OPERATOR_TOKEN", &server.operator_token)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_check_names_a_row_edited_behind_the_services_back() {
    let server = kura_testing::start(|_| ()).await;
    server.create_tenant("LOG-0002", 1, json!({})).await;

    let ok = cli(&server, &["audit", "check"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("event log intact"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.csv");
    let export = cli(
        &server,
        &[
            "audit",
            "work-log",
            "--csv",
            "--action",
            "operator.post",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(
        csv.contains(",operator.post,/api/v1/operator/tenants,201,"),
        "{csv}"
    );
    let table = cli(&server, &["audit", "work-log"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("operator.log.export"));

    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir().join("service.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE events SET result = 'forged' WHERE chain = 'operators' AND seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    let (status, check) = server
        .operator(Method::GET, "/api/v1/operator/events/verify", None)
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["intact"], false, "{check}");
    assert!(
        check["problem"]
            .as_str()
            .unwrap()
            .contains("chain operators: row 1 was altered"),
        "{check}"
    );
    let broken = cli(&server, &["audit", "check"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("row 1 was altered"));
    let checks = work_log(&server, "?action=operator.log.verify").await;
    assert!(
        checks
            .iter()
            .any(|row| row["result"].as_str().unwrap().starts_with("broken: ")),
        "{checks:#?}"
    );
}
