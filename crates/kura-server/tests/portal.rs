//! The customer portal over real HTTPS, as a browser without JavaScript uses it: sign-in
//! in one and two steps, the refusals a person meets (wrong password, lockout, allow-list),
//! the CSRF field and the double-submit token of every form, machines (add, rename,
//! revoke), the language switch and sign-out; and the same machine operations on the JSON
//! API, where another tenant's ids are "not found". On SQLite and PostgreSQL.

use std::time::Duration;

use kura_server::api::{Access, customer_route_table};
use kura_server::totp::{STEP_MS, code_at};
use kura_testing::TestServer;
use kura_testing::portal::{Page, PortalBrowser, sign_in};
use reqwest::Method;
use serde_json::json;

/// Signs a browser in with a password (one step); fails the test otherwise.
/// A new tenant and its first admin signed in to the portal.
async fn tenant_admin_browser(
    server: &TestServer,
    code: &str,
    language: &str,
) -> (serde_json::Value, PortalBrowser) {
    let created = server.create_tenant(code, 3, json!({})).await;
    let browser = sign_in(
        server,
        language,
        created["admin_login"].as_str().unwrap(),
        created["admin_password"].as_str().unwrap(),
    )
    .await;
    (created, browser)
}

fn registration_token(page: &Page) -> String {
    let start = page
        .html
        .find("kura_reg_")
        .expect("the page shows a registration token");
    page.html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_sign_in_machines_and_forms_on_sqlite() {
    sign_in_machines_and_forms(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_sign_in_machines_and_forms_on_postgres() {
    sign_in_machines_and_forms(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn sign_in_machines_and_forms(server: TestServer) {
    let created = server.create_tenant("ACME-0001", 3, json!({})).await;
    let login = created["admin_login"].as_str().unwrap();
    let password = created["admin_password"].as_str().unwrap();
    let browser = PortalBrowser::new(&server, "ja,en;q=0.5");

    // Not signed in: a page sends the browser to sign in, and back afterwards.
    let page = browser.get("/machines").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/login?next=%2Fmachines"))
    );
    let page = browser.get("/login?next=%2Fmachines").await;
    assert_eq!(page.status, 200);
    assert!(page.says("ログインID"), "Japanese for ja: {}", page.html);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let form_token = page.field("form_token").unwrap();
    assert_eq!(browser.cookie("kura_form").as_deref(), Some(form_token.as_str()));

    // Another site's form cannot sign this browser in: it cannot know the token.
    let page = browser
        .post(
            "/login",
            &[("login", login), ("password", password), ("form_token", "forged")],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(browser.cookie("kura_session").is_none());

    // A wrong password: a clear sentence in the page's language, the login ID kept.
    let page = browser
        .post(
            "/login",
            &[
                ("login", login),
                ("password", "not the password"),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(
        page.says("ログインIDまたはパスワードが正しくない"),
        "{}",
        page.html
    );
    assert_eq!(page.field("login").as_deref(), Some(login));

    let page = browser
        .post(
            "/login",
            &[
                ("login", login),
                ("password", password),
                ("next", "/machines"),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/machines")));
    let csrf = browser.cookie("kura_csrf").expect("the CSRF cookie is set");

    // A form without its CSRF field changes nothing and says why.
    let page = browser.post("/machines/add", &[]).await;
    assert_eq!(page.status, 403);
    assert!(page.says("フォームの有効期限"), "{}", page.html);

    // Add a machine: a token, and the command that uses it.
    let page = browser.post("/machines/add", &[("csrf_token", &csrf)]).await;
    assert_eq!(page.status, 201, "{}", page.html);
    assert!(page.says(&format!(
        "kura register --server {}",
        server.server.service().public_url
    )));
    assert!(page.says("--ca-cert ca.pem"), "the service uses its own CA");
    let (status, registered) = server.register(&registration_token(&page), "web-01").await;
    assert_eq!(status, 201, "{registered}");
    let machine = registered["machine_id"].as_str().unwrap().to_owned();
    let page = browser.get("/ca.pem").await;
    assert!(page.status == 200 && page.html.starts_with("-----BEGIN CERTIFICATE-----"));

    // Rename it; the dashboard shows the new name and the events.
    let page = browser
        .post(
            &format!("/machines/{machine}/rename"),
            &[("csrf_token", &csrf), ("name", "web-01 (東京)")],
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/machines")));
    let page = browser.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.says("web-01 (東京)"), "{}", page.html);
    // The next page says what the form did, once.
    assert!(
        page.says("マシン名を「web-01 (東京)」に変更しました。"),
        "{}",
        page.html
    );
    assert!(browser.cookie("kura_notice").is_none());
    for action in [
        "不正なフォーム送信の拒否",
        "登録トークンの発行",
        "マシンの登録",
        "マシン名の変更",
    ] {
        assert!(page.says(action), "recent events name {action}: {}", page.html);
    }

    // The event log: filtered by action, a page at a time, and downloaded as filtered.
    let code = |action: &str| format!("<code class=\"id\">{action}</code>");
    let page = browser.get("/events?action=machine.rename").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.says("マシン名の変更") && page.says(&code("machine.rename")));
    assert!(!page.says(&code("machine.register")), "{}", page.html);
    assert!(
        page.says("/api/v1/events?format=csv&action=machine.rename"),
        "{}",
        page.html
    );
    let csv = browser
        .get("/api/v1/events?format=csv&action=machine.rename")
        .await;
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.html.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.html);
    assert!(lines[1].contains("machine.rename") && lines[1].contains("web-01 (東京)"));
    let page = browser.get("/events?actor=nobody").await;
    assert!(page.says("条件に一致するイベントはありません"), "{}", page.html);
    let page = browser.get("/events?from=yesterday").await;
    assert_eq!(page.status, 422, "{}", page.html);
    // Paging: below the export just recorded, the older events.
    let page = browser.get("/events?before=2").await;
    assert!(
        page.says(&code("login")) && !page.says(&code("events.export")),
        "{}",
        page.html
    );

    // Another tenant's admin: ACME's machine is "not found", and stays as it was.
    let (_, intruder) = tenant_admin_browser(&server, "BETA-0002", "en").await;
    let intruder_csrf = intruder.cookie("kura_csrf").unwrap();
    for action in ["rename", "revoke"] {
        let page = intruder
            .post(
                &format!("/machines/{machine}/{action}"),
                &[("csrf_token", &intruder_csrf), ("name", "taken")],
            )
            .await;
        assert_eq!(page.status, 404, "{action}: {}", page.html);
    }
    let page = intruder.get("/machines").await;
    assert!(!page.says("web-01") && page.says("No machine is registered yet"));
    let page = browser.get("/machines").await;
    assert!(page.says("web-01 (東京)") && page.says("有効"));

    // The language switch is kept with the user: English from now on, whatever the browser asks.
    let page = browser
        .post(
            "/account/language",
            &[("csrf_token", &csrf), ("language", "en"), ("next", "/contract")],
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/contract")));
    let page = browser.get("/contract").await;
    assert!(page.says("Service code") && page.says("ACME-0001") && page.says("Who is responsible for what"));

    // Revoke: the agent's credential stops working at once.
    let page = browser
        .post(&format!("/machines/{machine}/revoke"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, 303);
    let credential = registered["credential"].as_str().unwrap();
    assert_eq!(server.whoami(credential).await.0, 401);

    // Account: an API token is shown once; mismatched new passwords change nothing.
    let page = browser
        .post(
            "/account/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "nightly report"),
                ("role", "auditor"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.says("shown only once") && page.says("kura_api_"),
        "{}",
        page.html
    );
    let page = browser
        .post(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("old_password", password),
                ("new_password", "a new long passphrase"),
                ("confirm_password", "another long passphrase"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.says("The two new passwords differ"));

    // Sign out: the session is over, pages send to the sign-in page again.
    let page = browser.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")));
    assert!(browser.cookie("kura_session").is_none());
    let page = browser.get("/").await;
    assert_eq!(page.status, 303);
    // Unknown pages are pages, unknown API routes JSON.
    let page = browser.get("/no-such-page").await;
    assert!(page.status == 404 && page.html.contains("<html"));
    let page = browser.get("/api/v1/no-such-route").await;
    assert!(page.status == 404 && page.html.starts_with('{'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_refusals_on_sqlite() {
    refusals(kura_testing::start(refusal_config).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_refusals_on_postgres() {
    refusals(kura_testing::start_on_postgres(refusal_config).await).await;
}

/// Lockout after three failures; the test plays clients behind a proxy on loopback.
fn refusal_config(config: &mut kura_server::ServerConfig) {
    config.login_lockout_after = 3;
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// Two-step sign-in with TOTP, lockout with the time it lifts, and the admin allow-list.
async fn refusals(server: TestServer) {
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let login = created["admin_login"].as_str().unwrap();
    let password = created["admin_password"].as_str().unwrap();
    let clock = server.server.state().clock().clone();

    // TOTP enrolled over the API.
    let (status, enrolment) = admin.call(Method::POST, "/api/v1/totp/enroll", None).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let code = code_at(&secret, clock.now_ms()).unwrap();
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/totp/confirm",
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    clock.advance(Duration::from_millis(STEP_MS as u64));

    let browser = PortalBrowser::new(&server, "en");
    let form_token = browser.get("/login").await.field("form_token").unwrap();
    let page = browser
        .post(
            "/login",
            &[
                ("login", login),
                ("password", password),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.says("Two-factor authentication"), "{}", page.html);
    assert!(
        browser.cookie("kura_session").is_none(),
        "no session before the code"
    );
    let pending = page.field("pending").unwrap();
    assert!(!page.html.contains(password), "the password is not sent back");

    // A wrong code: the same step again, with a clear message.
    let page = browser
        .post(
            "/login/totp",
            &[
                ("pending", &pending),
                ("totp", "000000"),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(
        page.says("The code is wrong or was already used"),
        "{}",
        page.html
    );
    assert_eq!(page.field("pending").as_deref(), Some(pending.as_str()));
    // A forged proof starts over.
    let page = browser
        .post(
            "/login/totp",
            &[
                ("pending", "forged"),
                ("totp", "000000"),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert!(page.says("This sign-in took too long"), "{}", page.html);
    let fresh = code_at(&secret, clock.now_ms()).unwrap();
    let page = browser
        .post(
            "/login/totp",
            &[
                ("pending", &pending),
                ("totp", &fresh),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/")));
    assert!(browser.cookie("kura_session").is_some());
    // The proof is only good for a while.
    clock.advance(Duration::from_secs(6 * 60));
    let later = code_at(&secret, clock.now_ms()).unwrap();
    let page = browser
        .post(
            "/login/totp",
            &[
                ("pending", &pending),
                ("totp", &later),
                ("form_token", &form_token),
            ],
        )
        .await;
    assert!(page.says("This sign-in took too long"), "{}", page.html);

    // The allow-list: an admin from elsewhere is refused, and told the address.
    let (status, body) = admin
        .call(
            Method::PUT,
            "/api/v1/tenant/admin-networks",
            Some(json!({ "cidrs": ["127.0.0.1/32"] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut outsider = PortalBrowser::new(&server, "ja");
    outsider.forwarded_for = Some("198.51.100.7".to_owned());
    let outsider_token = outsider.get("/login").await.field("form_token").unwrap();
    let page = outsider
        .post(
            "/login",
            &[
                ("login", login),
                ("password", password),
                ("form_token", &outsider_token),
            ],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(
        page.says("198.51.100.7") && page.says("アクセス元IPアドレス制限"),
        "{}",
        page.html
    );

    // Lockout after three failures, with the time it lifts in the tenant's zone.
    let (_, other) = server.tenant_admin("BETA-0002").await;
    let beta_login = other.info["login"].as_str().unwrap().to_owned();
    let mut last = None;
    for _ in 0..4 {
        let page = browser
            .post(
                "/login",
                &[
                    ("login", &beta_login),
                    ("password", "wrong wrong"),
                    ("form_token", &form_token),
                ],
            )
            .await;
        last = Some(page);
        clock.advance(Duration::from_secs(120));
    }
    let page = last.unwrap();
    assert_eq!(page.status, 429, "{}", page.html);
    assert!(page.says("locked") && page.says("(JST)"), "{}", page.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_api_reaches_only_the_tenants_own_machines() {
    let server = kura_testing::start(|_| ()).await;
    let (_, acme) = server.tenant_admin("ACME-0001").await;
    let (_, beta) = server.tenant_admin("BETA-0002").await;
    let (status, token) = acme.call(Method::POST, "/api/v1/registration-tokens", None).await;
    assert_eq!(status, 201, "{token}");
    let (status, machine) = server
        .register(token["registration_token"].as_str().unwrap(), "db-01")
        .await;
    assert_eq!(status, 201, "{machine}");
    let id = machine["machine_id"].as_str().unwrap();

    let (status, list) = acme.get("/api/v1/machines").await;
    assert_eq!((status, list[0]["name"].as_str()), (200, Some("db-01")), "{list}");
    let (status, list) = beta.get("/api/v1/machines").await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(0)), "{list}");
    let path = format!("/api/v1/machines/{id}");
    let (status, _) = beta
        .call(Method::PATCH, &path, Some(json!({ "name": "mine" })))
        .await;
    assert_eq!(status, 404);
    assert_eq!(beta.call(Method::DELETE, &path, None).await.0, 404);

    let (status, renamed) = acme
        .call(Method::PATCH, &path, Some(json!({ "name": "db-01 (primary)" })))
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("db-01 (primary)")),
        "{renamed}"
    );
    let (status, body) = acme
        .call(Method::PATCH, &path, Some(json!({ "name": "a\u{202e}b" })))
        .await;
    assert_eq!(status, 422, "{body}");

    // An auditor reads, but adds and revokes nothing.
    let (_, auditor_password) = server.add_user(&acme, "acme-auditor", "auditor").await;
    let auditor = server.login("acme-auditor", &auditor_password).await;
    assert_eq!(auditor.get("/api/v1/machines").await.0, 200);
    assert_eq!(
        auditor
            .call(Method::POST, "/api/v1/registration-tokens", None)
            .await
            .0,
        403
    );
    assert_eq!(auditor.call(Method::DELETE, &path, None).await.0, 403);
    // The portal offers the auditor no machine actions.
    let browser = sign_in(&server, "en", "acme-auditor", &auditor_password).await;
    let page = browser.get("/machines").await;
    assert!(page.says("db-01 (primary)") && !page.says("Add a machine") && !page.says("Revoke"));

    assert_eq!(acme.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(
        acme.call(Method::DELETE, &path, None).await.0,
        404,
        "already revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_users_and_security_on_sqlite() {
    users_and_security(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_users_and_security_on_postgres() {
    users_and_security(kura_testing::start_on_postgres(|_| ()).await).await;
}

/// User administration and security settings as a tenant admin does them in the portal;
/// what an auditor and another tenant's admin may not do.
async fn users_and_security(server: TestServer) {
    let (_, admin) = tenant_admin_browser(&server, "ACME-0001", "en").await;
    let csrf = admin.cookie("kura_csrf").unwrap();

    let page = admin.get("/users").await;
    assert_eq!(page.status, 200);
    assert!(page.says("What each role may do") && page.says("Restore data"));
    // Add a user with a generated password, shown once; it signs in.
    let page = admin
        .post(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("login", "acme-ops"),
                ("role", "operator"),
                ("password", "generate"),
            ],
        )
        .await;
    assert_eq!(page.status, 201, "{}", page.html);
    let start = page.html.find("id=\"new-password\">").unwrap() + "id=\"new-password\">".len();
    let password: String = page.html[start..].chars().take_while(|c| *c != '<').collect();
    let ops = server.login("acme-ops", &password).await;
    let ops_id = ops.info["user_id"].as_str().unwrap().to_owned();
    // A link by mail needs an address and a mail server: said, nothing created.
    let page = admin
        .post(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("login", "acme-mailed"),
                ("role", "auditor"),
                ("password", "mail"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.says("needs the user's email address") && !page.says("acme-mailed"));

    // Change role, disable (sign-in refused), enable.
    let change = |what: &'static str, role: &'static str| {
        let (admin, csrf, path) = (&admin, csrf.clone(), format!("/users/{ops_id}"));
        async move {
            admin
                .submit(&path, &[("csrf_token", &csrf), ("change", what), ("role", role)])
                .await
        }
    };
    let page = change("role", "auditor").await;
    assert!(
        page.status == 200 && page.says("The user was changed"),
        "{}",
        page.html
    );
    // The notice is shown once: reloading the page neither repeats it nor the change.
    let page = admin.get("/users").await;
    assert!(
        page.status == 200 && !page.says("The user was changed"),
        "{}",
        page.html
    );
    let page = change("disable", "").await;
    assert!(page.says("Disabled"), "{}", page.html);
    let (status, _, _) =
        kura_testing::user::try_login(&server.http, &server.customer, "acme-ops", &password).await;
    assert_eq!(status, 401);
    change("enable", "").await;
    let auditor = sign_in(&server, "en", "acme-ops", &password).await;
    // The auditor is not offered the page, and is refused it.
    assert!(!auditor.get("/").await.says("href=\"/users\""));
    let page = auditor.get("/users").await;
    assert_eq!(page.status, 403);
    assert!(page.says("manage-users"), "{}", page.html);

    // Another tenant's admin cannot touch ACME's users.
    let (_, intruder) = tenant_admin_browser(&server, "BETA-0002", "en").await;
    let intruder_csrf = intruder.cookie("kura_csrf").unwrap();
    let page = intruder
        .post(
            &format!("/users/{ops_id}"),
            &[("csrf_token", &intruder_csrf), ("change", "delete")],
        )
        .await;
    assert!(page.status == 404 && !page.says("acme-ops"), "{}", page.html);
    let page = change("delete", "").await;
    assert!(page.says("The user was deleted"), "{}", page.html);
    assert!(!admin.get("/users").await.says("acme-ops"));

    // Security: a list without the admin's own address is refused, with the address.
    let page = admin.get("/security").await;
    assert!(page.says("You are connecting from 127.0.0.1"), "{}", page.html);
    let page = admin
        .submit(
            "/security",
            &[
                ("csrf_token", &csrf),
                ("change", "networks"),
                ("networks", "198.51.100.0/24"),
            ],
        )
        .await;
    assert_eq!(page.status, 409);
    assert!(
        page.says("127.0.0.1") && page.says("lock you out"),
        "{}",
        page.html
    );
    let page = admin
        .submit(
            "/security",
            &[
                ("csrf_token", &csrf),
                ("change", "networks"),
                ("networks", "127.0.0.1/32\n198.51.100.0/24"),
            ],
        )
        .await;
    assert!(
        page.status == 200 && page.says("198.51.100.0/24"),
        "{}",
        page.html
    );
    let page = admin
        .submit(
            "/security",
            &[
                ("csrf_token", &csrf),
                ("change", "support-grant"),
                ("hours", "24"),
            ],
        )
        .await;
    assert!(page.says("Support access is granted until"), "{}", page.html);
    let page = admin
        .submit(
            "/security",
            &[("csrf_token", &csrf), ("change", "support-withdraw")],
        )
        .await;
    assert!(page.says("Support access is not granted"), "{}", page.html);

    // Requiring TOTP of admins sends this admin to enrol before anything else.
    let page = admin
        .post(
            "/security",
            &[
                ("csrf_token", &csrf),
                ("change", "totp-policy"),
                ("policy", "admins"),
            ],
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/security")));
    let page = admin.get("/machines").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/account#totp"))
    );
    let page = admin.get("/account").await;
    assert!(
        page.says("requires two-factor authentication for your role") && page.says("Saved."),
        "{}",
        page.html
    );
    let page = admin.post("/account/totp/enroll", &[("csrf_token", &csrf)]).await;
    assert!(page.html.contains("<svg"), "a QR code: {}", page.html);
    let secret = page.field("secret").unwrap();
    let clock = server.server.state().clock().clone();
    let page = admin
        .post(
            "/account/totp/confirm",
            &[("csrf_token", &csrf), ("secret", &secret), ("code", "000000")],
        )
        .await;
    assert!(
        page.status == 422 && page.html.contains("<svg"),
        "the QR code again: {}",
        page.html
    );
    let code = code_at(&secret, clock.now_ms()).unwrap();
    let page = admin
        .post(
            "/account/totp/confirm",
            &[("csrf_token", &csrf), ("secret", &secret), ("code", &code)],
        )
        .await;
    assert!(page.says("Two-factor authentication is on"), "{}", page.html);
    let start = page.html.find("id=\"recovery-codes\">").unwrap();
    assert_eq!(
        page.html[start..].split("</pre>").next().unwrap().lines().count(),
        10
    );
    assert_eq!(admin.get("/machines").await.status, 200);
    let events = admin.get("/events").await;
    for action in [
        "tenant.admin_networks",
        "tenant.totp_policy",
        "support.revoke",
        "user.delete",
    ] {
        assert!(
            events.says(&format!("<code class=\"id\">{action}</code>")),
            "{action} in the event log: {}",
            events.html
        );
    }
}

/// Every portal route that needs a role, with every tenant role: refused with a `403`
/// page naming the permission exactly when the role lacks it (the API's matrix is in
/// tests/identity.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_role_matrix_matches_the_table() {
    let server = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let mut browsers = vec![(
        "admin",
        sign_in(
            &server,
            "en",
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await,
    )];
    for role in ["operator", "restore-operator", "auditor"] {
        let login = format!("user-{role}");
        let (_, password) = server.add_user(&admin, &login, role).await;
        browsers.push((role, sign_in(&server, "en", &login, &password).await));
    }
    let mut checked = 0;
    for (method, pattern, access) in customer_route_table() {
        let Access::Role(permission) = access else {
            continue;
        };
        // Signing out ends the session; the sign-in tests cover it.
        if pattern.starts_with("/api/") || pattern == "/logout" {
            continue;
        }
        for (role, browser) in &browsers {
            let csrf = browser.cookie("kura_csrf").unwrap();
            // Harmless targets: ids that name nothing, fields that change nothing.
            let path = pattern.replace("{id}", "00000000000000000000000000000000");
            let page = if method == Method::GET {
                browser.get(&path).await
            } else {
                browser
                    .post(&path, &[("csrf_token", &csrf), ("language", "en")])
                    .await
            };
            let allowed = kura_service::authz::TenantRole::parse(role)
                .unwrap()
                .allows(permission);
            if allowed {
                // A form may still refuse its content (a missing password): not the role.
                let role_refused = page.status == 403 && page.says("may not do this");
                assert!(
                    !role_refused && page.location.as_deref().is_none_or(|l| !l.starts_with("/login")),
                    "{role}: {method} {path} should pass, got {}: {}",
                    page.status,
                    page.html
                );
            } else {
                assert_eq!(page.status, 403, "{role}: {method} {path} should be refused");
                assert!(page.says(permission.as_str()), "{}", page.html);
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "{checked}");
}
