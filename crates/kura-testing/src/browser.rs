//! The browser tests' driver: the whole service started as the quick start does (SQLite,
//! a local data directory, the demo tenant), and a script of `tests/e2e` run with node
//! against it (Debian's chromium through playwright-core; `scripts/test.sh` installs
//! them). The script gets the quick start's URLs and credentials in `KURA_URL`,
//! `KURA_LOGIN`, `KURA_PASSWORD`, `KURA_MANAGEMENT_URL`, `KURA_OPERATOR_TOKEN` and
//! `KURA_SERVICE_CODE`, and `KURA_SHOTS` when `shots_var` names a directory for its
//! screenshots. `KURA_TEST_BROWSER=skip` skips it, loudly.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use kura_server::quickstart;

use kura_format::manifest::SnapshotStats;

use crate::agent::Agent;

/// What the demo tenant holds when the script starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// As the quick start leaves it: no machine yet (the script may add one).
    AsStarted,
    /// A machine `web-01` with two snapshots, so pages that list snapshots have rows.
    WithBackups,
}

/// Runs `tests/e2e/SCRIPT.mjs` against a quick-start service; fails the test unless the
/// script succeeds and prints `WHAT browser checks passed`.
pub fn run_e2e(script: &str, what: &str, shots_var: &str, extra: &[(&str, &OsStr)], demo: Demo) {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    if std::env::var("KURA_TEST_BROWSER").as_deref() == Ok("skip") {
        eprintln!("WARNING: KURA_TEST_BROWSER=skip: the {what} was NOT tested in a browser");
        return;
    }
    assert!(
        e2e.join("node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs chromium and tests/e2e/node_modules: run scripts/test.sh, which installs them"
    );
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (server, info) = runtime
        .block_on(quickstart::start(quickstart::config(
            data.path(),
            loopback,
            loopback,
        )))
        .expect("the service starts");
    if demo == Demo::WithBackups {
        runtime.block_on(async {
            let http = crate::server::client_trusting(&info.ca_cert);
            let agent =
                Agent::register_at(&http, &info.customer_url, &info.registration_token, "web-01").await;
            agent.create_vault().await;
            let stats = |files, bytes| SnapshotStats {
                files,
                bytes,
                ..SnapshotStats::default()
            };
            agent
                .backup_with(
                    "/srv/www",
                    &[b"index.html", b"style.css"],
                    stats(1_284, 48_500_000),
                )
                .await;
            agent
                .backup_with("/etc", &[b"hosts"], stats(312, 2_100_000))
                .await;
        });
    }
    let mut node = Command::new("node");
    node.arg(e2e.join(format!("{script}.mjs")))
        .current_dir(&e2e)
        .env("KURA_URL", &info.customer_url)
        .env("KURA_LOGIN", &info.admin_login)
        .env("KURA_PASSWORD", &info.admin_password)
        .env("KURA_MANAGEMENT_URL", &info.management_url)
        .env("KURA_OPERATOR_TOKEN", &info.operator_token)
        .env("KURA_SERVICE_CODE", &info.service_code);
    for (name, value) in extra {
        node.env(name, value);
    }
    if let Some(shots) = std::env::var_os(shots_var) {
        node.env("KURA_SHOTS", shots);
    }
    let output = node.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{what} browser checks passed")),
        "{stdout}\n{stderr}"
    );
    runtime.block_on(server.shutdown()).unwrap();
}
