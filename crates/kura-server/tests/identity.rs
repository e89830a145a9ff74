//! Identity, access control and audit over the real HTTPS API: sign-in and sessions,
//! user administration, the role matrix (every role route × every role, as
//! `kura_server::roles` says), the admin allow-list from a second loopback address,
//! lockout, API tokens, the event log export and `kura-server audit verify`.

use std::time::Duration;

use kura_server::api::{Access, customer_route_table, management_route_table};
use kura_server::roles::{ProviderRole, TenantRole};
use kura_testing::agent::Agent;
use kura_testing::smtp::MailServer;
use kura_testing::user::{Session, try_login, try_login_with, with_token};
use kura_testing::{TestServer, error_of};
use reqwest::Method;
use serde_json::{Value, json};

const WRONG_LOGIN: &str = "sign-in failed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_signs_in_and_manages_users() {
    let server = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(admin.set_cookie.contains(attribute), "{}", admin.set_cookie);
    }
    let (status, me) = admin.get("/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["login"], created["admin_login"]);
    assert_eq!(me["tenant_id"], created["tenant_id"]);

    // Policy: short, common and login-containing passwords are refused.
    for password in ["short", "password1234", "carol-is-my-name-ok"] {
        let (status, body) = admin
            .call(
                Method::POST,
                "/api/v1/users",
                Some(json!({ "login": "carol", "role": "operator", "password": password })),
            )
            .await;
        assert_eq!(status, 422, "{password}: {body}");
    }
    // Without a password, one is generated and shown once; it works.
    let (status, carol) = admin
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "login": "Carol", "role": "operator" })),
        )
        .await;
    assert_eq!(status, 201, "{carol}");
    assert_eq!(carol["login"], "carol");
    let carol_session = server.login("carol", carol["password"].as_str().unwrap()).await;
    assert_eq!(carol_session.get("/api/v1/me").await.1["role"], "operator");

    // Login IDs are unique across the service.
    let (_, other_admin) = server.tenant_admin("BETA-0002").await;
    let (status, body) = other_admin
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "login": "carol", "role": "auditor" })),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // Role change, disable (ends the session; the error is that of a wrong password),
    // enable, delete.
    let carol_path = format!("/api/v1/users/{}", carol["id"].as_str().unwrap());
    let (status, body) = admin
        .call(Method::PATCH, &carol_path, Some(json!({ "role": "auditor" })))
        .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("auditor")), "{body}");
    assert_eq!(carol_session.get("/api/v1/me").await.1["role"], "auditor");
    let (status, _) = admin
        .call(Method::PATCH, &carol_path, Some(json!({ "disabled": true })))
        .await;
    assert_eq!(status, 200);
    assert_eq!(carol_session.get("/api/v1/me").await.0, 401);
    let (status, body, _) = try_login(
        &server.http,
        &server.customer,
        "carol",
        carol["password"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(error_of(&body).starts_with(WRONG_LOGIN), "{body}");
    let (status, _) = admin
        .call(Method::PATCH, &carol_path, Some(json!({ "disabled": false })))
        .await;
    assert_eq!(status, 200);
    server.login("carol", carol["password"].as_str().unwrap()).await;
    // Tenant B's admin cannot reach tenant A's user.
    assert_eq!(other_admin.call(Method::DELETE, &carol_path, None).await.0, 404);
    assert_eq!(
        other_admin
            .call(Method::PATCH, &carol_path, Some(json!({ "role": "admin" })))
            .await
            .0,
        404
    );
    assert_eq!(admin.call(Method::DELETE, &carol_path, None).await.0, 204);
    let (status, users) = admin.get("/api/v1/users").await;
    assert_eq!(status, 200);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    // An admin cannot demote, disable or delete themselves.
    let self_path = format!("/api/v1/users/{}", me["user_id"].as_str().unwrap());
    let (status, body) = admin
        .call(Method::PATCH, &self_path, Some(json!({ "role": "auditor" })))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(admin.call(Method::DELETE, &self_path, None).await.0, 409);

    // CSRF: a cookie without the header cannot change anything.
    let no_csrf = Session {
        csrf: String::new(),
        ..admin.clone()
    };
    let (status, body) = no_csrf
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "login": "dave", "role": "auditor" })),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("X-CSRF-Token"));

    // Password change needs the old one and ends other sessions.
    let admin_login = created["admin_login"].as_str().unwrap();
    let second = server
        .login(admin_login, created["admin_password"].as_str().unwrap())
        .await;
    let (status, _) = admin
        .call(
            Method::POST,
            "/api/v1/password",
            Some(json!({ "old_password": "wrong", "new_password": "a brand new passphrase" })),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/password",
            Some(json!({
                "old_password": created["admin_password"],
                "new_password": "a brand new passphrase"
            })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(second.get("/api/v1/me").await.0, 401);
    assert_eq!(admin.get("/api/v1/me").await.0, 200);
    server.login(admin_login, "a brand new passphrase").await;

    // Sessions: listed, revocable, and logout ends the current one.
    let (status, sessions) = admin.get("/api/v1/sessions").await;
    assert_eq!(status, 200);
    let open: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("revoked").is_none())
        .collect();
    assert_eq!(open.len(), 2, "{sessions}");
    let other = open.iter().find(|s| s["current"] == false).unwrap();
    let path = format!("/api/v1/sessions/{}", other["id"].as_str().unwrap());
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 404);
    assert_eq!(admin.call(Method::POST, "/api/v1/logout", None).await.0, 204);
    assert_eq!(admin.get("/api/v1/me").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_logins_and_wrong_passwords_look_alike() {
    let server = kura_testing::start(|_| ()).await;
    let created = server.create_tenant("ACME-0001", 1, json!({})).await;
    let admin_login = created["admin_login"].as_str().unwrap();
    let (status_known, known, _) =
        try_login(&server.http, &server.customer, admin_login, "wrong password!").await;
    let (status_unknown, unknown, _) =
        try_login(&server.http, &server.customer, "nobody-here", "wrong password!").await;
    assert_eq!((status_known, status_unknown), (401, 401));
    assert_eq!(known, unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_after_idle_and_absolute_timeouts() {
    let server = kura_testing::start(|config| {
        config.session_idle_timeout = Duration::from_secs(600);
        config.session_absolute_timeout = Duration::from_secs(1800);
    })
    .await;
    let (_, admin) = server.tenant_admin("ACME-0001").await;
    let clock = server.server.state().clock().clone();
    clock.advance(Duration::from_secs(500));
    assert_eq!(admin.get("/api/v1/me").await.0, 200, "activity keeps it alive");
    clock.advance(Duration::from_secs(500));
    assert_eq!(admin.get("/api/v1/me").await.0, 200);
    clock.advance(Duration::from_secs(601));
    let (status, body) = admin.get("/api/v1/me").await;
    assert_eq!(status, 401, "idle: {body}");

    let created = server.create_tenant("BETA-0002", 1, json!({})).await;
    let beta = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(450));
        assert_eq!(beta.get("/api/v1/me").await.0, 200);
    }
    clock.advance(Duration::from_secs(460));
    assert_eq!(beta.get("/api/v1/me").await.0, 401, "absolute timeout");
}

/// A request for `route` that a permitted caller gets past authorisation with and that
/// changes nothing: invalid bodies (422) and unknown ids (404).
fn harmless_request(method: &Method, pattern: &str, tenant_id: &str) -> (String, Option<Value>) {
    let bogus = "0123456789abcdef0123456789abcdef";
    // Only reads and invalid updates aim at the real tenant; actions aim at no tenant.
    let path = pattern
        .replace(
            "{tenant_id}",
            if pattern.ends_with("{tenant_id}") {
                tenant_id
            } else {
                bogus
            },
        )
        .replace("{machine_id}", bogus)
        .replace("{id}", bogus);
    let body = match *method {
        Method::GET | Method::DELETE => None,
        _ => Some(json!({ "unexpected": true })),
    };
    (path, body)
}

fn tenant_role(name: &str) -> TenantRole {
    TenantRole::ALL.into_iter().find(|r| r.as_str() == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_matches_the_table_on_sqlite() {
    role_matrix_matches_the_table(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_matches_the_table_on_postgres() {
    role_matrix_matches_the_table(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn role_matrix_matches_the_table(server: TestServer) {
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let mut sessions = vec![("admin", admin.clone())];
    for role in ["operator", "restore-operator", "auditor"] {
        let login = format!("user-{role}");
        let (_, password) = server.add_user(&admin, &login, role).await;
        sessions.push((role, server.login(&login, &password).await));
    }
    let mut checked = 0;
    // The portal's pages have their own matrix test (tests/portal.rs).
    for (method, pattern, access) in customer_route_table() {
        let Access::Role(permission) = access else {
            continue;
        };
        if !pattern.starts_with("/api/") {
            continue;
        }
        for (role, session) in &sessions {
            // Logout ends the session it is called with: use a fresh one.
            let session = if pattern == "/api/v1/logout" {
                let login = session.info["login"].as_str().unwrap().to_owned();
                let password = if *role == "admin" {
                    created["admin_password"].as_str().unwrap().to_owned()
                } else {
                    format!("{login} has a long passphrase").replace(&login, "someone")
                };
                server.login(&login, &password).await
            } else {
                session.clone()
            };
            let (path, body) = harmless_request(&method, pattern, tenant_id);
            let (status, answer) = session.call(method.clone(), &path, body).await;
            let allowed = tenant_role(role).allows(permission);
            if allowed {
                assert!(
                    ![401, 403].contains(&status),
                    "{role}: {method} {path} should pass, got {status}: {answer}"
                );
            } else {
                assert_eq!(status, 403, "{role}: {method} {path} should be refused: {answer}");
                assert!(error_of(&answer).contains(permission.as_str()), "{answer}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 24 * 4, "{checked}");

    // Provider roles on the management listener: console sessions of both roles on every
    // route, and tokens of both roles on every route that is not about one's own account.
    let operator_token = "kura_op_test_operator_role_token";
    kura_service::db::operators::insert(
        &server.server.service().db,
        &kura_service::db::operators::NewOperatorToken {
            operator_id: None,
            name: "staff",
            role: ProviderRole::Operator,
            token_hash: &kura_server::secrets::token_hash(operator_token),
            expires_ms: None,
        },
        0,
    )
    .await
    .unwrap();
    let admin_operator = server.set_up_operator("matrix-admin", "operator-admin").await;
    let staff_operator = server.set_up_operator("matrix-staff", "operator").await;
    for (method, pattern, access) in management_route_table() {
        let Access::Role(permission) = access else {
            continue;
        };
        for (role, token, signed_in) in [
            (
                ProviderRole::OperatorAdmin,
                server.operator_token.as_str(),
                &admin_operator,
            ),
            (ProviderRole::Operator, operator_token, &staff_operator),
        ] {
            let check = |how: &str, status: u16, answer: &Value| {
                if role.allows(permission) {
                    assert!(
                        ![401, 403].contains(&status),
                        "{} by {how}: {method} {pattern} should pass, got {status}: {answer}",
                        role.as_str()
                    );
                } else {
                    assert_eq!(
                        status,
                        403,
                        "{} by {how}: {method} {pattern}: {answer}",
                        role.as_str()
                    );
                }
            };
            let (path, body) = harmless_request(&method, pattern, tenant_id);
            // Sign-out ends the session it is called with: use a fresh one.
            let session = if pattern.ends_with("logout") {
                let code = server.next_totp_code(&signed_in.totp_secret);
                let (status, answer, session) = server
                    .operator_sign_in(
                        json!({ "login": signed_in.login, "password": signed_in.password, "totp": code }),
                    )
                    .await;
                assert_eq!(status, 200, "{answer}");
                session.unwrap()
            } else {
                signed_in.session.clone()
            };
            let (status, answer) = session.call(method.clone(), &path, body.clone()).await;
            check("session", status, &answer);
            if permission == kura_server::roles::Permission::OwnAccount {
                continue;
            }
            let mut request = server
                .http
                .request(method.clone(), format!("{}{path}", server.management))
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let (status, answer) = kura_testing::parts(request.send().await.unwrap()).await;
            check("token", status, &answer);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_allow_list_from_127_0_0_2_on_sqlite() {
    admin_allow_list_is_enforced_from_a_second_loopback_address(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_allow_list_from_127_0_0_2_on_postgres() {
    admin_allow_list_is_enforced_from_a_second_loopback_address(
        kura_testing::start_on_postgres(|_| ()).await,
    )
    .await;
}

async fn admin_allow_list_is_enforced_from_a_second_loopback_address(server: TestServer) {
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let (_, auditor_password) = server.add_user(&admin, "audrey", "auditor").await;
    let (status, token) = admin
        .call(Method::POST, "/api/v1/tokens", Some(json!({ "name": "script" })))
        .await;
    assert_eq!(status, 201, "{token}");
    let admin_token = token["token"].as_str().unwrap().to_owned();

    // A list that leaves out the caller's own address is refused.
    let (status, body) = admin
        .call(
            Method::PUT,
            "/api/v1/tenant/admin-networks",
            Some(json!({ "cidrs": ["127.0.0.2/32"] })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(error_of(&body).contains("127.0.0.1"), "{body}");
    let (status, body) = admin
        .call(
            Method::PUT,
            "/api/v1/tenant/admin-networks",
            Some(json!({ "cidrs": ["127.0.0.1", "2001:db8::/32"] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cidrs"], json!(["127.0.0.1/32", "2001:db8::/32"]));

    let from_second = client_from(&server, "127.0.0.2");
    let admin_login = created["admin_login"].as_str().unwrap();
    let (status, body, _) = try_login(
        &from_second,
        &server.customer,
        admin_login,
        created["admin_password"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("127.0.0.2"), "{body}");
    // The admin API token is refused from there too; a non-admin signs in fine.
    let response = from_second
        .get(format!("{}/api/v1/users", server.customer))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let (status, body, _) = try_login(&from_second, &server.customer, "audrey", &auditor_password).await;
    assert_eq!(status, 200, "{body}");
    // From the listed address everything works, and the refusals are in the log.
    assert_eq!(
        with_token(&server, &admin_token, Method::GET, "/api/v1/users", None)
            .await
            .0,
        200
    );
    let (_, events) = admin.get("/api/v1/events").await;
    let refused: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"] == "refused: outside admin networks")
        .collect();
    assert_eq!(refused.len(), 2, "{events}");
    assert!(refused.iter().all(|e| e["source"] == "127.0.0.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_throttle_then_lock_on_sqlite() {
    failed_logins_throttle_then_lock_and_the_admin_sees_it(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_throttle_then_lock_on_postgres() {
    failed_logins_throttle_then_lock_and_the_admin_sees_it(kura_testing::start_on_postgres(|_| ()).await)
        .await;
}

/// A client bound to `address` (another loopback address), trusting the test server.
fn client_from(server: &TestServer, address: &str) -> reqwest::Client {
    let pem = std::fs::read(server.server.ca_cert().unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .local_address(Some(address.parse().unwrap()))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_stuffing_from_one_address_is_slowed() {
    let server = kura_testing::start(|_| ()).await;
    let (_, admin) = server.tenant_admin("ACME-0001").await;
    let (_, password) = server.add_user(&admin, "victor", "operator").await;
    // Many login IDs, one wrong password each, from one address.
    let mut first_refusal = None;
    for i in 0..10 {
        let login = format!("guess-{i}");
        let (status, body, _) = try_login(&server.http, &server.customer, &login, "Winter2026!pass").await;
        if status == 429 {
            assert!(error_of(&body).contains("wait"), "{body}");
            first_refusal = Some(i);
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    assert!(
        first_refusal.is_some(),
        "ten failures from one address were never slowed"
    );
    // Another address is not affected.
    let other = client_from(&server, "127.0.0.3");
    let (status, body, _) = try_login(&other, &server.customer, "victor", &password).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_outside_the_admin_networks_do_not_lock_the_admin() {
    let server = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let (status, body) = admin
        .call(
            Method::PUT,
            "/api/v1/tenant/admin-networks",
            Some(json!({ "cidrs": ["127.0.0.1/32"] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let admin_login = created["admin_login"].as_str().unwrap();
    let outsider = client_from(&server, "127.0.0.4");
    let clock = server.server.state().clock().clone();
    for _ in 0..12 {
        let (status, _, _) = try_login(&outsider, &server.customer, admin_login, "not-the-password-1").await;
        assert!(status == 401 || status == 429, "{status}");
        clock.advance(Duration::from_secs(120));
    }
    // The outsider's address is slowed or locked; the admin's login is not.
    let (status, body, _) = try_login(
        &server.http,
        &server.customer,
        admin_login,
        created["admin_password"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        status, 200,
        "the admin must not be locked out from outside: {body}"
    );
}

async fn failed_logins_throttle_then_lock_and_the_admin_sees_it(server: TestServer) {
    let (_, admin) = server.tenant_admin("ACME-0001").await;
    let (victim, password) = server.add_user(&admin, "victor", "operator").await;
    let clock = server.server.state().clock().clone();
    let attempt = |login: &'static str, password: String| {
        let http = server.http.clone();
        let base = server.customer.clone();
        async move { try_login(&http, &base, login, &password).await }
    };
    // Three failures are free; then each attempt must wait 1, 2, 4, … seconds.
    for _ in 0..3 {
        assert_eq!(attempt("victor", "wrong".into()).await.0, 401);
    }
    let (status, body, _) = attempt("victor", password.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert!(error_of(&body).contains("wait"), "{body}");
    // Keep failing, waiting out each delay, up to the lockout at ten.
    let wait_out = |failures: u32| clock.advance(Duration::from_secs((1 << (failures - 3)) + 1));
    for failures in 3..10 {
        wait_out(failures);
        assert_eq!(attempt("victor", "wrong".into()).await.0, 401);
    }
    wait_out(10);
    let (status, body, _) = attempt("victor", password.clone()).await;
    assert_eq!(
        status, 429,
        "even the right password is refused while locked: {body}"
    );
    assert!(error_of(&body).contains("try again after"), "{body}");
    let (_, users) = admin.get("/api/v1/users").await;
    let shown = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "victor")
        .unwrap();
    assert!(shown["locked_until"].is_string(), "{users}");
    // The admin lifts the lockout.
    let path = format!("/api/v1/users/{}", victim["id"].as_str().unwrap());
    let (status, _) = admin
        .call(Method::PATCH, &path, Some(json!({ "unlock": true })))
        .await;
    assert_eq!(status, 200);
    assert_eq!(attempt("victor", password.clone()).await.0, 200);
    // An unknown login ID locks the same way, so lockout reveals nothing. (The failures
    // above also count against this address; let them age out first.)
    clock.advance(Duration::from_secs(16 * 60));
    for failures in 0..10 {
        if failures >= 3 {
            wait_out(failures);
        }
        assert_eq!(attempt("nobody", "wrong".into()).await.0, 401);
    }
    wait_out(10);
    let (status_unknown, unknown, _) = attempt("nobody", "wrong".into()).await;
    assert_eq!(status_unknown, 429, "{unknown}");

    let (_, events) = admin.get("/api/v1/events").await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "victor")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"login.lockout"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_scoped_expire_and_revoke_on_sqlite() {
    api_tokens_are_scoped_shown_once_expire_and_revoke(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_scoped_expire_and_revoke_on_postgres() {
    api_tokens_are_scoped_shown_once_expire_and_revoke(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn api_tokens_are_scoped_shown_once_expire_and_revoke(server: TestServer) {
    let (tenant, admin) = server.tenant_admin("ACME-0001").await;
    let (_, password) = server.add_user(&admin, "olga", "operator").await;
    let olga = server.login("olga", &password).await;
    let (status, body) = olga
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "x", "role": "admin" })),
        )
        .await;
    assert_eq!(status, 403, "not above one's own role: {body}");

    let (status, created) = admin
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "auditing script", "role": "auditor", "expires_in_days": 30 })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("kura_api_"));
    let (status, me) = with_token(&server, token, Method::GET, "/api/v1/me", None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("auditor")), "{me}");
    assert_eq!(
        with_token(&server, token, Method::GET, "/api/v1/events", None)
            .await
            .0,
        200
    );
    assert_eq!(
        with_token(&server, token, Method::GET, "/api/v1/users", None)
            .await
            .0,
        403
    );
    // Tokens cannot mint tokens.
    let (status, _) = with_token(
        &server,
        token,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({ "name": "y" })),
    )
    .await;
    assert_eq!(status, 403);
    // Listed without the secret, with its last use.
    let (_, listed) = admin.get("/api/v1/tokens").await;
    assert!(!listed.to_string().contains(token));
    assert!(listed[0]["last_used"].is_string(), "{listed}");

    let clock = server.server.state().clock().clone();
    clock.advance(Duration::from_secs(31 * 24 * 3600));
    let (status, body) = with_token(&server, token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(error_of(&body).contains("expired"));

    // (The admin's session has timed out meanwhile.)
    let admin = server
        .login(
            tenant["admin_login"].as_str().unwrap(),
            tenant["admin_password"].as_str().unwrap(),
        )
        .await;
    let (_, created) = admin
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "short-lived" })),
        )
        .await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        with_token(&server, token, Method::GET, "/api/v1/users", None)
            .await
            .0,
        200
    );
    let path = format!("/api/v1/tokens/{}", created["id"].as_str().unwrap());
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 204);
    let (status, body) = with_token(&server, token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(error_of(&body).contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_export_in_the_tenant_time_zone_and_verify_detects_tampering() {
    let server = kura_testing::start(|_| ()).await;
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let (_, password) = server.add_user(&admin, "auditor-anna", "auditor").await;
    let anna = server.login("auditor-anna", &password).await;
    let agent = Agent::register(&server, created["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    let snapshot = agent.backup("web-01:/etc", &[b"config".as_slice()]).await;
    let (status, body) = agent
        .send(
            Method::POST,
            &format!("/api/v1/vault/snapshots/{snapshot}/restores"),
            Vec::new(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // An operator action on the tenant shows in the tenant's log.
    let tenant_id = created["tenant_id"].as_str().unwrap();
    server
        .operator(
            Method::GET,
            &format!("/api/v1/operator/tenants/{tenant_id}"),
            None,
        )
        .await;

    let (status, events) = anna.get("/api/v1/events?format=json").await;
    assert_eq!(status, 200, "{events}");
    let rows = events.as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for wanted in [
        "machine.register",
        "login",
        "user.create",
        "operator.get",
        "backup.commit",
        "restore.start",
    ] {
        assert!(actions.contains(&wanted), "{wanted} missing from {actions:?}");
    }
    let login = rows.iter().find(|e| e["action"] == "login").unwrap();
    assert!(login["time"].as_str().unwrap().ends_with("+09:00"), "{login}");
    assert!(login["time_utc"].as_str().unwrap().ends_with('Z'), "{login}");
    assert_eq!(login["source"], "127.0.0.1");
    assert_eq!(login["request_id"].as_str().unwrap().len(), 16);

    let response = server
        .http
        .get(format!(
            "{}/api/v1/events?format=csv&from=2000-01-01T00:00:00Z",
            server.customer
        ))
        .header("cookie", format!("kura_session={}", anna.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    assert!(csv.starts_with("seq,time,time_utc,actor,source,action,target,result,request_id\r\n"));
    assert!(csv.contains(",user.create,auditor-anna,"), "{csv}");
    let (status, future) = anna.get("/api/v1/events?from=2999-01-01T00:00:00Z").await;
    assert_eq!((status, future), (200, json!([])));
    assert_eq!(anna.get("/api/v1/events?from=yesterday").await.0, 422);

    // `kura-server audit verify --data DIR` passes, then names the edited row.
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kura-server"))
            .args(["audit", "verify", "--data"])
            .arg(server.data_dir())
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("event log intact"));
    let db_path = server.data_dir().join("service.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE events SET result = 'ok' WHERE chain = $1 AND seq = 2")
        .bind(tenant_id)
        .execute(&pool)
        .await
        .unwrap();
    let broken = verify();
    assert_eq!(broken.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains(&format!("chain {tenant_id}: row 2 was altered")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_with_the_servers_clock_on_sqlite() {
    totp_enrolment_policy_and_single_use_codes_follow_the_servers_clock(kura_testing::start(|_| ()).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_with_the_servers_clock_on_postgres() {
    totp_enrolment_policy_and_single_use_codes_follow_the_servers_clock(
        kura_testing::start_on_postgres(|_| ()).await,
    )
    .await;
}

async fn totp_enrolment_policy_and_single_use_codes_follow_the_servers_clock(server: TestServer) {
    use kura_server::totp::{STEP_MS, code_at};
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let login = created["admin_login"].as_str().unwrap();
    let password = created["admin_password"].as_str().unwrap();
    let clock = server.server.state().clock().clone();
    let step = Duration::from_millis(STEP_MS as u64);

    // The policy makes TOTP mandatory for admins: until enrolled, only enrolment works.
    let (status, body) = admin
        .call(
            Method::PUT,
            "/api/v1/tenant/totp-policy",
            Some(json!({ "policy": "admins" })),
        )
        .await;
    assert_eq!((status, body["policy"].as_str()), (200, Some("admins")), "{body}");
    let (status, body) = admin.get("/api/v1/users").await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("TOTP"), "{body}");
    assert_eq!(admin.get("/api/v1/me").await.0, 200);

    let (status, enrolment) = admin.call(Method::POST, "/api/v1/totp/enroll", None).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolment["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Kura:")
    );
    let (status, _) = admin
        .call(
            Method::POST,
            "/api/v1/totp/confirm",
            Some(json!({ "code": "abcdef" })),
        )
        .await;
    assert_eq!(status, 422);
    let code = code_at(&secret, clock.now_ms()).unwrap();
    let (status, recovery) = admin
        .call(
            Method::POST,
            "/api/v1/totp/confirm",
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(status, 200, "{recovery}");
    let recovery: Vec<String> = recovery["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (status, users) = admin.get("/api/v1/users").await;
    assert_eq!(status, 200);
    assert_eq!(users[0]["totp"], true);
    assert_eq!(
        admin.call(Method::DELETE, "/api/v1/totp", None).await.0,
        409,
        "the policy keeps it on"
    );

    // Sign-in now needs a code; each step's code works once.
    let attempt = |totp: Option<String>| {
        let mut body = json!({ "login": login, "password": password });
        if let Some(totp) = totp {
            body["totp"] = json!(totp);
        }
        try_login_with(&server.http, &server.customer, body)
    };
    let (status, body, _) = attempt(None).await;
    assert_eq!(status, 401);
    assert!(error_of(&body).contains("TOTP"), "{body}");
    let (status, _, _) = attempt(Some(code.clone())).await;
    assert_eq!(status, 401, "the code used to confirm cannot sign in");
    clock.advance(step);
    let fresh = code_at(&secret, clock.now_ms()).unwrap();
    assert_eq!(attempt(Some(fresh.clone())).await.0, 200);
    assert_eq!(attempt(Some(fresh)).await.0, 401, "replayed");
    clock.advance(step * 3);
    let stale = code_at(&secret, clock.now_ms() - 2 * STEP_MS).unwrap();
    assert_eq!(attempt(Some(stale)).await.0, 401, "two steps old");
    // A device running one step behind still works.
    let behind = code_at(&secret, clock.now_ms() - STEP_MS).unwrap();
    assert_eq!(attempt(Some(behind)).await.0, 200);

    // Recovery codes work once each.
    assert_eq!(attempt(Some(recovery[0].clone())).await.0, 200);
    assert_eq!(attempt(Some(recovery[0].clone())).await.0, 401);
    assert_eq!(attempt(Some(recovery[1].to_uppercase())).await.0, 200);

    let (_, events) = admin.get("/api/v1/events").await;
    let results: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login")
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert!(results.contains(&"failed: wrong TOTP code"), "{results:?}");

    // Turning TOTP off takes the password or a current code again, not just the session.
    let (status, _) = admin
        .call(
            Method::PUT,
            "/api/v1/tenant/totp-policy",
            Some(json!({ "policy": "optional" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = admin.call(Method::DELETE, "/api/v1/totp", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(error_of(&body).contains("password or a current code"), "{body}");
    let wrong = json!({ "password": "not the password at all" });
    let (status, body) = admin.call(Method::DELETE, "/api/v1/totp", Some(wrong)).await;
    assert_eq!(status, 403, "{body}");
    clock.advance(step);
    let current = code_at(&secret, clock.now_ms()).unwrap();
    let (status, body) = admin
        .call(Method::DELETE, "/api/v1/totp", Some(json!({ "code": current })))
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, users) = admin.get("/api/v1/users").await;
    assert_eq!(users[0]["totp"], false, "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_access_needs_a_live_grant_on_sqlite() {
    operators_see_tenant_data_only_under_a_live_support_grant(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_access_needs_a_live_grant_on_postgres() {
    operators_see_tenant_data_only_under_a_live_support_grant(kura_testing::start_on_postgres(|_| ()).await)
        .await;
}

async fn operators_see_tenant_data_only_under_a_live_support_grant(server: TestServer) {
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let (_, password) = server.add_user(&admin, "aud", "auditor").await;
    let auditor = server.login("aud", &password).await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let path = format!("/api/v1/operator/tenants/{tenant_id}/snapshots");
    let clock = server.server.state().clock().clone();

    let (status, body) = server.operator(Method::GET, &path, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("support access"), "{body}");
    let grant = |hours: u32| json!({ "hours": hours });
    assert_eq!(
        auditor
            .call(Method::PUT, "/api/v1/tenant/support-access", Some(grant(2)))
            .await
            .0,
        403
    );
    assert_eq!(
        admin
            .call(Method::PUT, "/api/v1/tenant/support-access", Some(grant(73)))
            .await
            .0,
        422,
        "at most 72 hours"
    );
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/tenant/support-access", Some(grant(2)))
        .await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)), "{body}");
    let (status, body) = server.operator(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["snapshots"], json!([]));
    // Under the grant: each snapshot's time, machine, source, kind and size, newest first.
    let agent = kura_testing::agent::Agent::register(
        &server,
        created["registration_token"].as_str().unwrap(),
        "web-01",
    )
    .await;
    agent.create_vault().await;
    let older = agent.backup("etc", &[b"hostname"]).await;
    let session = agent.open_session().await;
    let (ids, pack) = agent.pack(&[b"pg_dump"]);
    assert_eq!(agent.put_pack(&session, pack).await.0, 200);
    let (manifest, refs) = agent.manifest_of_size("db", &ids, 7_000_000);
    let (status, newer) = agent.commit(&session, &manifest, &refs).await;
    assert_eq!(status, 201, "{newer}");
    let (status, body) = server.operator(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let shown = body["snapshots"].as_array().unwrap();
    assert_eq!(shown.len(), 2, "{body}");
    assert_eq!(shown[0]["id"], newer["snapshot_id"]);
    assert_eq!(shown[1]["id"], older.as_str());
    assert_eq!(
        (
            &shown[0]["machine"],
            &shown[0]["source"],
            &shown[0]["kind"],
            &shown[0]["bytes"]
        ),
        (&json!("web-01"), &json!("db"), &json!("files"), &json!(7_000_000))
    );
    assert!(shown[0]["time"].as_str().unwrap().starts_with("20"), "{body}");
    assert_eq!(shown[0]["damaged"], false);

    clock.advance(Duration::from_secs(2 * 3600 + 1));
    assert_eq!(server.operator(Method::GET, &path, None).await.0, 403, "expired");
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        admin.get("/api/v1/tenant/support-access").await.1["active"],
        false
    );
    admin
        .call(Method::PUT, "/api/v1/tenant/support-access", Some(grant(72)))
        .await;
    assert_eq!(server.operator(Method::GET, &path, None).await.0, 200);
    let (status, body) = admin
        .call(Method::DELETE, "/api/v1/tenant/support-access", None)
        .await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(false)), "{body}");
    assert_eq!(
        server.operator(Method::GET, &path, None).await.0,
        403,
        "withdrawn"
    );

    // The tenant sees the grants and every operator request, refused or not.
    let (_, events) = admin.get("/api/v1/events").await;
    let rows = events.as_array().unwrap();
    let operator_calls: Vec<&str> = rows
        .iter()
        .filter(|e| e["action"] == "operator.get" && e["target"] == path.as_str())
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(operator_calls, ["403", "200", "200", "403", "200", "403"]);
    assert!(rows.iter().any(|e| e["action"] == "support.grant"));
    assert!(rows.iter().any(|e| e["action"] == "support.revoke"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reissue_by_mail_on_sqlite() {
    forgotten_passwords_are_reissued_by_mail_once_within_30_minutes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reissue_by_mail_on_postgres() {
    forgotten_passwords_are_reissued_by_mail_once_within_30_minutes(true).await;
}

async fn forgotten_passwords_are_reissued_by_mail_once_within_30_minutes(on_postgres: bool) {
    let mail = MailServer::start().await;
    let port = mail.port;
    let adjust = move |config: &mut kura_server::ServerConfig| {
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
        config.smtp_from = "Kura <kura@example.net>".to_owned();
    };
    let server = if on_postgres {
        kura_testing::start_on_postgres(adjust).await
    } else {
        kura_testing::start(adjust).await
    };
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let mia = server.add_user_with_mail(&admin, "mia").await;
    let old_password = mia["password"].as_str().unwrap().to_owned();
    let forgot = |login: &str| {
        let request = server
            .http
            .post(format!("{}/api/v1/password/forgot", server.customer))
            .json(&json!({ "login": login }));
        async move { kura_testing::parts(request.send().await.unwrap()).await }
    };
    let reset = |token: String, password: &str| {
        let request = server
            .http
            .post(format!("{}/api/v1/password/reset", server.customer))
            .json(&json!({ "token": token, "new_password": password }));
        async move { kura_testing::parts(request.send().await.unwrap()).await }
    };

    // Known and unknown login IDs get the same answer; only the known one gets mail.
    let (status_unknown, unknown) = forgot("nobody").await;
    let (status, known) = forgot("MIA").await;
    assert_eq!((status, status_unknown), (202, 202));
    assert_eq!(known, unknown);
    let (message, token) = mail.reset_token(1).await;
    assert!(message.contains("mia@example.com"), "{message}");
    assert!(message.contains("kura@example.net"), "{message}");
    assert!(token.starts_with("kura_reset_"), "{token}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mail.delivered().len(), 1, "no mail for an unknown login");

    // The policy holds; a refused password leaves the link usable; it works once.
    assert_eq!(reset(token.clone(), "short").await.0, 422);
    assert_eq!(
        reset(token.clone(), "mia has a new passphrase").await.0,
        422,
        "contains the login"
    );
    let (status, body) = reset(token.clone(), "a fresh passphrase here").await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = reset(token, "another fresh passphrase").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        try_login(&server.http, &server.customer, "mia", &old_password)
            .await
            .0,
        401
    );
    server.login("mia", "a fresh passphrase here").await;

    // At most one mail in 5 minutes; links expire after 30 minutes.
    let clock = server.server.state().clock().clone();
    clock.advance(Duration::from_secs(5 * 60));
    forgot("mia").await;
    let (_, token) = mail.reset_token(2).await;
    forgot("mia").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        mail.delivered().len(),
        2,
        "a second request within 5 minutes mails nothing"
    );
    server
        .server
        .state()
        .clock()
        .advance(Duration::from_secs(30 * 60 + 1));
    assert_eq!(reset(token, "a later passphrase here").await.0, 401, "expired");

    // An admin forces a reset: the old password and sessions stop at once, a link arrives.
    let session = server.login("mia", "a fresh passphrase here").await;
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let path = format!("/api/v1/users/{}/reset-password", mia["id"].as_str().unwrap());
    let (status, body) = admin.call(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(session.get("/api/v1/me").await.0, 401);
    assert_eq!(
        try_login(&server.http, &server.customer, "mia", "a fresh passphrase here")
            .await
            .0,
        401
    );
    let (_, token) = mail.reset_token(3).await;
    assert_eq!(reset(token, "a forced new passphrase").await.0, 204);
    server.login("mia", "a forced new passphrase").await;

    let (_, events) = admin.get("/api/v1/events").await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for wanted in ["password.forgot", "password.reset", "password.force_reset"] {
        assert!(actions.contains(&wanted), "{wanted} missing: {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_cannot_demote_each_other_at_once_on_sqlite() {
    a_tenant_always_keeps_an_admin(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_cannot_demote_each_other_at_once_on_postgres() {
    a_tenant_always_keeps_an_admin(kura_testing::start_on_postgres(|_| ()).await).await;
}

/// Two admins demoting (or deleting) each other at the same moment: one wins, the other
/// is refused, and the tenant keeps an admin who can manage users.
async fn a_tenant_always_keeps_an_admin(server: TestServer) {
    for round in 0..3 {
        let (created, first) = server.tenant_admin(&format!("RACE-{round:04}")).await;
        let first_id = {
            let (_, me) = first.get("/api/v1/me").await;
            me["user_id"].as_str().unwrap().to_owned()
        };
        let (second_user, password) = server.add_user(&first, &format!("second-{round}"), "admin").await;
        let second = server
            .login(second_user["login"].as_str().unwrap(), &password)
            .await;
        let second_path = format!("/api/v1/users/{}", second_user["id"].as_str().unwrap());
        let first_path = format!("/api/v1/users/{first_id}");
        let demote = json!({ "role": "operator" });
        let (a, b) = if round == 2 {
            // Deleting races the same way.
            tokio::join!(
                first.call(Method::DELETE, &second_path, None),
                second.call(Method::DELETE, &first_path, None)
            )
        } else {
            tokio::join!(
                first.call(Method::PATCH, &second_path, Some(demote.clone())),
                second.call(Method::PATCH, &first_path, Some(demote.clone()))
            )
        };
        let statuses = [a.0, b.0];
        let won = statuses.iter().filter(|s| matches!(s, 200 | 204)).count();
        assert_eq!(won, 1, "round {round}: exactly one may win: {a:?} {b:?}");
        // The loser is refused inside its transaction (409, the last admin), or, when the
        // winner committed before it was even authenticated, as no longer an admin (403)
        // or, once deleted, as no longer signed in (401: its sessions went with it).
        let refused = if matches!(a.0, 200 | 204) { &b } else { &a };
        match refused.0 {
            409 => assert!(error_of(&refused.1).contains("last active admin"), "{refused:?}"),
            403 => assert!(error_of(&refused.1).contains("manage-users"), "{refused:?}"),
            401 if round == 2 => {
                assert!(error_of(&refused.1).contains("not signed in"), "{refused:?}")
            }
            other => panic!("round {round}: the loser got {other}: {refused:?}"),
        }
        let admin_login = created["admin_login"].as_str().unwrap();
        let survivor = if matches!(a.0, 200 | 204) { &first } else { &second };
        let (status, users) = survivor.get("/api/v1/users").await;
        assert_eq!(status, 200, "the surviving admin still manages users: {users}");
        let admins = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin" && u["disabled"] != true)
            .count();
        assert_eq!(admins, 1, "round {round} ({admin_login}): {users}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_by_a_lowered_role_stays_revoked() {
    let server = kura_testing::start(|_| ()).await;
    let (_, admin) = server.tenant_admin("ACME-0001").await;
    let (user, password) = server.add_user(&admin, "taro", "admin").await;
    let taro = server.login("taro", &password).await;
    let (status, created) = taro
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "script", "role": "admin" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        with_token(&server, &token, Method::GET, "/api/v1/users", None)
            .await
            .0,
        200
    );
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    for role in ["operator", "admin"] {
        let (status, body) = admin
            .call(Method::PATCH, &path, Some(json!({ "role": role })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = with_token(&server, &token, Method::GET, "/api/v1/users", None).await;
    assert_eq!(
        status, 401,
        "raising the role again must not revive the token: {body}"
    );
    assert!(error_of(&body).contains("revoked"), "{body}");
}

/// HTML forms send the CSRF token as the hidden field `csrf_token`; a state-changing
/// request with neither the field nor the header is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csrf_token_comes_as_a_header_or_a_form_field() {
    let server = kura_testing::start(|_| ()).await;
    let (_, admin) = server.tenant_admin("ACME-0001").await;
    let form = |body: String| {
        server
            .http
            .post(format!("{}/api/v1/logout", server.customer))
            .header("cookie", format!("kura_session={}", admin.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let refused = form("csrf_token=wrong".to_owned()).await.unwrap();
    assert_eq!(refused.status(), 403);
    let refused = form(String::new()).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap();
    assert!(body.contains("csrf_token"), "{body}");
    let accepted = form(format!("csrf_token={}", admin.csrf)).await.unwrap();
    assert_eq!(accepted.status(), 204);
    assert_eq!(
        admin.get("/api/v1/me").await.0,
        401,
        "the form signed the session out"
    );
}
