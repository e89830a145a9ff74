//! The operator console in a real browser: `tests/e2e/console.mjs` (playwright-core
//! driving Debian's chromium, axe-core for accessibility) against a quick-start service
//! takes a new operator-admin through the first sign-in (own password, TOTP enrolment
//! from the page), the tenants, a notice published to every tenant (and seen on the demo
//! tenant's dashboard and notices page in the portal), a security event reported from
//! the portal and answered in the console, the operators and the account pages in
//! Japanese and English, and signs in again with a TOTP code. The demo tenant's machine
//! has two snapshots (a test agent's), which its page lists under a support grant.
//!
//! Set `KURA_CONSOLE_SCREENSHOTS=DIR` to keep the screenshots (`docs/console/` holds the
//! published ones); `KURA_TEST_BROWSER=skip` skips the test, loudly.

use kura_testing::browser::Demo;

#[test]
fn the_console_works_in_a_real_browser() {
    kura_testing::browser::run_e2e(
        "console",
        "console",
        "KURA_CONSOLE_SCREENSHOTS",
        &[],
        Demo::WithBackups,
    );
}
