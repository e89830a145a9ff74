//! The customer portal in a real browser: starts the service as the quick start does and
//! runs `tests/e2e/portal.mjs` (playwright-core driving Debian's chromium, axe-core for
//! accessibility), which signs in, looks at every page in Japanese and English, and adds
//! a machine by running the `kura register` command the page shows, then backs it up.
//!
//! `scripts/test.sh` installs chromium, a Japanese font and the npm packages. Set
//! `KURA_SCREENSHOTS=DIR` to keep the screenshots (`docs/portal/` holds the published
//! ones); `KURA_TEST_BROWSER=skip` skips the test, loudly.

const KURA: &str = env!("CARGO_BIN_EXE_kura");

#[test]
fn the_portal_works_in_a_real_browser() {
    let work = tempfile::tempdir().unwrap();
    kura_testing::browser::run_e2e(
        "portal",
        "portal",
        "KURA_SCREENSHOTS",
        &[
            ("KURA_BIN", std::ffi::OsStr::new(KURA)),
            ("KURA_WORK", work.path().as_os_str()),
        ],
        kura_testing::browser::Demo::AsStarted,
    );
}
