//! `kura-server doctor` against a running installation: each check passes on a sound one
//! and fails, naming what to fix, when the installation is not (a key readable by others,
//! the management listener on the customer's address, a mail server that is down, no
//! recent metadata backup).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kura_server::ServerConfig;
use kura_testing::TestServer;
use kura_testing::smtp::MailServer;
use serde_json::Value;

/// Writes a configuration keeping the data in `dir` itself, with the customer listener
/// on 127.0.0.2 (so that the management listener's loopback address is not the
/// customer's) plus `extra`.
fn write_config(dir: &Path, management_ip: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \".\"\ncustomer_listen = \"127.0.0.2:{}\"\nmanagement_listen = \"{management_ip}:{}\"\n\
             job_tick = \"100ms\"\n{extra}",
            kura_testing::free_port(),
            kura_testing::free_port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Starts a server from the configuration file in `dir`, as `kura-server serve` would.
async fn started(dir: tempfile::TempDir, config: &Path) -> TestServer {
    let config = ServerConfig::load(config).unwrap();
    kura_testing::start_in(dir, move |c| *c = config).await
}

/// Runs the doctor (on a blocking thread: the server it examines runs in this process):
/// its exit code and findings.
async fn doctor(config: &Path) -> (i32, Vec<Value>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kura-server"));
    command.args(["doctor", "--json", "--config", config.to_str().unwrap()]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let findings: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap(), findings)
}

fn level<'a>(findings: &'a [Value], check: &str, containing: &str) -> &'a str {
    findings
        .iter()
        .find(|f| f["check"] == check && f["detail"].as_str().unwrap().contains(containing))
        .unwrap_or_else(|| panic!("no {check} finding with {containing:?}: {findings:#?}"))["level"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_finds_what_an_auditor_would() {
    let dir = tempfile::tempdir().unwrap();
    let mail = MailServer::start().await;
    let passphrase = dir.path().join("passphrase");
    std::fs::write(&passphrase, "a long metadata passphrase\n").unwrap();
    std::fs::set_permissions(&passphrase, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!(
        "smtp_url = \"smtp://127.0.0.1:{}\"\nmetadata_backup_passphrase_file = \"passphrase\"\n\
         operator_networks = [\"127.0.0.0/8\"]\n",
        mail.port
    );
    let config_path = write_config(dir.path(), "127.0.0.1", &extra);
    let root = dir.path().to_owned();
    let server = started(dir, &config_path).await;

    let (_, findings) = doctor(&config_path).await;
    assert_eq!(level(&findings, "files", "alone"), "ok");
    assert_eq!(level(&findings, "config", "600"), "ok");
    assert_eq!(level(&findings, "certificate", "valid until"), "ok");
    assert_eq!(
        level(&findings, "listeners", "customer listener answers at 127.0.0.2"),
        "ok"
    );
    assert_eq!(level(&findings, "listeners", "TLS 1.3, TLS 1.2"), "ok");
    assert_eq!(
        level(&findings, "separation", "absent on the customer listener"),
        "ok"
    );
    assert_eq!(
        level(
            &findings,
            "separation",
            "does not answer on the customer's addresses"
        ),
        "ok"
    );
    assert_eq!(level(&findings, "mail", "accepts connections"), "ok");
    assert_eq!(level(&findings, "operator networks", "127.0.0.0/8"), "ok");
    assert_eq!(level(&findings, "metadata backup", "no copy"), "fail");

    // A metadata backup taken: the check passes.
    let job = server.run_job("metadata-backup", None).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, findings) = doctor(&config_path).await;
    assert_eq!(level(&findings, "metadata backup", "h old"), "ok");

    // A key readable by others, the mail server down: named, and the exit code says so.
    let key = root.join("service-key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(mail);
    let (code, findings) = doctor(&config_path).await;
    assert_eq!(code, 1);
    assert_eq!(level(&findings, "files", "service-key is 644"), "fail");
    assert_eq!(level(&findings, "mail", "does not accept connections"), "fail");
    let TestServer { server: running, .. } = server;
    running.shutdown().await.unwrap();

    // The management listener on every address answers on the customer's too.
    let open = tempfile::tempdir().unwrap();
    let config_path = write_config(open.path(), "0.0.0.0", "");
    let server = started(open, &config_path).await;
    let (code, findings) = doctor(&config_path).await;
    assert_eq!(code, 1);
    assert_eq!(
        level(
            &findings,
            "separation",
            "answers on the customer's address (127.0.0.2:"
        ),
        "fail"
    );
    assert_eq!(level(&findings, "mail", "no smtp_url"), "warn");
    assert_eq!(
        level(&findings, "metadata backup", "no scheduled metadata backup"),
        "warn"
    );
    assert_eq!(level(&findings, "operator networks", "empty"), "warn");
    let TestServer { server: running, .. } = server;
    running.shutdown().await.unwrap();
}
