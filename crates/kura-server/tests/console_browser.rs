//! The operator console in a real browser: starts the service as the quick start does
//! and runs `tests/e2e/console.mjs` (playwright-core driving Debian's chromium, axe-core
//! for accessibility), which takes a new operator-admin through the first sign-in (own
//! password, TOTP enrolment from the page), the tenants, a notice published to every
//! tenant (and seen on the demo tenant's dashboard and notices page in the portal), the
//! operators and the account pages in Japanese and English, and signs in again with a
//! TOTP code.
//!
//! `scripts/test.sh` installs chromium, a Japanese font and the npm packages. Set
//! `KURA_CONSOLE_SCREENSHOTS=DIR` to keep the screenshots (`docs/console/` holds the
//! published ones); `KURA_TEST_BROWSER=skip` skips the test, loudly.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use kura_server::quickstart;

#[test]
fn the_console_works_in_a_real_browser() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    if std::env::var("KURA_TEST_BROWSER").as_deref() == Ok("skip") {
        eprintln!("WARNING: KURA_TEST_BROWSER=skip: the console was NOT tested in a browser");
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

    let mut node = Command::new("node");
    node.arg(e2e.join("console.mjs"))
        .current_dir(&e2e)
        .env("KURA_MANAGEMENT_URL", &info.management_url)
        .env("KURA_OPERATOR_TOKEN", &info.operator_token)
        .env("KURA_SERVICE_CODE", &info.service_code)
        .env("KURA_URL", &info.customer_url)
        .env("KURA_LOGIN", &info.admin_login)
        .env("KURA_PASSWORD", &info.admin_password);
    if let Some(shots) = std::env::var_os("KURA_CONSOLE_SCREENSHOTS") {
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
        stdout.contains("console browser checks passed"),
        "{stdout}\n{stderr}"
    );
    runtime.block_on(server.shutdown()).unwrap();
}
