//! Operator accounts over the real management API, on SQLite and PostgreSQL: creation
//! with a one-time password, the first sign-in (own password and TOTP, nothing else
//! before), sign-in with TOTP, CSRF, API tokens with a role no higher than the owner's,
//! disabling (sessions end, tokens stop), the last operator-admin, lockout, the
//! management networks, the operator work log, and `kura-server operator create`.

use kura_testing::TestServer;
use kura_testing::user::Session;
use reqwest::Method;
use serde_json::{Value, json};

async fn events_of_operators(server: &TestServer) -> Vec<(String, String, String, String)> {
    kura_service::db::events::all(&server.server.service().db)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.chain == "operators")
        .map(|event| {
            (
                event.event.action,
                event.event.actor,
                event.event.target,
                event.event.result,
            )
        })
        .collect()
}

async fn post(session: &Session, path: &str, body: Value) -> (u16, Value) {
    session.call(Method::POST, path, Some(body)).await
}

async fn accounts_work(server: TestServer) {
    // Creation: a one-time password; a bad role or a taken login ID is refused.
    let (status, body) = server
        .operator(
            Method::POST,
            "/api/v1/operator/operators",
            Some(json!({ "login": "alice", "role": "root" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("role"), "{body}");
    let created = server.create_operator("Alice", "operator-admin").await;
    assert_eq!(created["login"], "alice");
    assert_eq!(created["totp_enrolled"], false);
    let one_time = created["password"].as_str().unwrap().to_owned();
    let (status, _) = server
        .operator(
            Method::POST,
            "/api/v1/operator/operators",
            Some(json!({ "login": "alice", "role": "operator" })),
        )
        .await;
    assert_eq!(status, 409);

    // The first sign-in opens a session that may only finish the setup.
    let (status, body, session) = server
        .operator_sign_in(json!({ "login": "alice", "password": "not her password" }))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(session.is_none());
    let (status, body, session) = server
        .operator_sign_in(json!({ "login": "alice", "password": one_time }))
        .await;
    assert_eq!((status, &body["setup_required"]), (200, &json!(true)), "{body}");
    let first = session.unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(first.set_cookie.contains(attribute), "{}", first.set_cookie);
    }
    let (status, body) = first.get("/api/v1/operator/tenants").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("first sign-in"),
        "{body}"
    );
    let (status, me) = first.get("/api/v1/operator/me").await;
    assert_eq!((status, &me["setup_required"]), (200, &json!(true)), "{me}");
    // A password of her own: the current one must be right and the new one good.
    let (status, body) = post(
        &first,
        "/api/v1/operator/account/password",
        json!({ "current_password": "wrong", "new_password": "a fine long passphrase here" }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        &first,
        "/api/v1/operator/account/password",
        json!({ "current_password": one_time, "new_password": "short" }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let password = "a long passphrase of ours";
    let (status, body) = post(
        &first,
        "/api/v1/operator/account/password",
        json!({ "current_password": one_time, "new_password": password }),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // Still not set up without TOTP.
    assert_eq!(first.get("/api/v1/operator/tenants").await.0, 403);
    let (status, enrolment) = post(&first, "/api/v1/operator/account/totp/enroll", json!({})).await;
    assert_eq!(status, 200, "{enrolment}");
    assert!(
        enrolment["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/"),
        "{enrolment}"
    );
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let (status, body) = post(
        &first,
        "/api/v1/operator/account/totp/confirm",
        json!({ "code": "000000" }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let code = server.next_totp_code(&secret);
    let (status, body) = post(
        &first,
        "/api/v1/operator/account/totp/confirm",
        json!({ "code": code }),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(first.get("/api/v1/operator/tenants").await.0, 200);

    // From now on a sign-in needs the code; a used code does not work twice.
    let (status, body, _) = server
        .operator_sign_in(json!({ "login": "alice", "password": password }))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("TOTP"), "{body}");
    let (status, _, _) = server
        .operator_sign_in(json!({ "login": "alice", "password": password, "totp": code }))
        .await;
    assert_eq!(status, 401, "a used code must not work again");
    let code = server.next_totp_code(&secret);
    let (status, body, session) = server
        .operator_sign_in(json!({ "login": "alice", "password": password, "totp": code }))
        .await;
    assert_eq!((status, &body["setup_required"]), (200, &json!(false)), "{body}");
    let alice = session.unwrap();

    // CSRF: a cookie without its token changes nothing.
    let no_csrf = Session {
        csrf: String::new(),
        ..alice.clone()
    };
    let (status, body) = post(
        &no_csrf,
        "/api/v1/operator/operators",
        json!({ "login": "mallory", "role": "operator-admin" }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("CSRF"), "{body}");

    // Sessions: two of alice's; she ends the first one.
    let (status, sessions) = alice.get("/api/v1/operator/account/sessions").await;
    assert_eq!(status, 200);
    let sessions = sessions.as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let path = format!(
        "/api/v1/operator/account/sessions/{}",
        other["id"].as_str().unwrap()
    );
    assert_eq!(alice.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(first.get("/api/v1/operator/me").await.0, 401);

    // Tokens: of alice's own, with a role no higher than hers, for a limited time.
    let (status, body) = post(
        &alice,
        "/api/v1/operator/tokens",
        json!({ "name": "monitoring", "role": "operator", "days": 400 }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, issued) = post(
        &alice,
        "/api/v1/operator/tokens",
        json!({ "name": "monitoring", "role": "operator", "days": 30 }),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["owner"], "alice");
    let token = issued["token"].as_str().unwrap().to_owned();
    let with_token = |method: Method, path: &str, body: Option<Value>| {
        let mut request = server
            .http
            .request(method, format!("{}{path}", server.management))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { kura_testing::parts(request.send().await.unwrap()).await }
    };
    assert_eq!(
        with_token(Method::GET, "/api/v1/operator/tenants", None).await.0,
        200
    );
    let (status, body) = with_token(
        Method::POST,
        "/api/v1/operator/tenants",
        Some(json!({ "service_code": "X-1", "name": "X", "quota_bytes": 1, "max_machines": 1 })),
    )
    .await;
    assert_eq!(status, 403, "an operator token may not create tenants: {body}");
    let (status, body) = with_token(
        Method::POST,
        "/api/v1/operator/tokens",
        Some(json!({ "name": "more", "role": "operator" })),
    )
    .await;
    assert_eq!(status, 403, "a token cannot issue tokens: {body}");
    let (status, me) = with_token(Method::GET, "/api/v1/operator/me", None).await;
    assert_eq!(
        (status, &me["name"], &me["credential"]),
        (200, &json!("alice"), &json!("token"))
    );

    // An operator (not admin) cannot manage operators nor issue an admin token.
    let bob = server.set_up_operator("bob", "operator").await;
    let (status, _) = bob.session.get("/api/v1/operator/operators").await;
    assert_eq!(status, 403);
    let (status, body) = post(
        &bob.session,
        "/api/v1/operator/tokens",
        json!({ "name": "escalate", "role": "operator-admin" }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Bob sees only his own tokens, alice every one.
    let (status, bob_tokens) = bob.session.get("/api/v1/operator/tokens").await;
    assert_eq!(
        (status, bob_tokens.as_array().unwrap().len()),
        (200, 0),
        "{bob_tokens}"
    );
    let (_, all_tokens) = alice.get("/api/v1/operator/tokens").await;
    assert!(
        all_tokens.as_array().unwrap().len() >= 2,
        "bootstrap and alice's: {all_tokens}"
    );

    // Disabling: not oneself, not the last operator-admin; a disabled account's sessions
    // end and its tokens stop working.
    let alice_id = created["id"].as_str().unwrap();
    let (status, body) = post(
        &alice,
        &format!("/api/v1/operator/operators/{alice_id}/disable"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server
        .operator(
            Method::POST,
            &format!("/api/v1/operator/operators/{alice_id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 409, "the last operator-admin: {body}");
    assert!(body["error"].as_str().unwrap().contains("last"), "{body}");
    let (_, operators) = alice.get("/api/v1/operator/operators").await;
    let bob_id = operators
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["login"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post(
        &alice,
        &format!("/api/v1/operator/operators/{bob_id}/disable"),
        json!({}),
    )
    .await;
    assert_eq!((status, body["disabled"].is_string()), (200, true), "{body}");
    assert_eq!(bob.session.get("/api/v1/operator/me").await.0, 401);
    let code = server.next_totp_code(&bob.totp_secret);
    let (status, _, _) = server
        .operator_sign_in(json!({ "login": "bob", "password": bob.password, "totp": code }))
        .await;
    assert_eq!(status, 401, "a disabled operator cannot sign in");
    // Reset of TOTP: bob enrols again at his next sign-in.
    assert_eq!(
        post(
            &alice,
            &format!("/api/v1/operator/operators/{bob_id}/enable"),
            json!({})
        )
        .await
        .0,
        200
    );
    let (status, body) = post(
        &alice,
        &format!("/api/v1/operator/operators/{bob_id}/reset-totp"),
        json!({}),
    )
    .await;
    assert_eq!((status, &body["totp_enrolled"]), (200, &json!(false)), "{body}");
    let (status, body, _) = server
        .operator_sign_in(json!({ "login": "bob", "password": bob.password }))
        .await;
    assert_eq!((status, &body["setup_required"]), (200, &json!(true)), "{body}");

    // Revoking alice's token; the bootstrap token can revoke any.
    let path = format!("/api/v1/operator/tokens/{}", issued["id"].as_str().unwrap());
    assert_eq!(alice.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(
        with_token(Method::GET, "/api/v1/operator/tenants", None).await.0,
        401
    );

    // Sign-out ends the session.
    assert_eq!(post(&alice, "/api/v1/operator/logout", json!({})).await.0, 204);
    assert_eq!(alice.get("/api/v1/operator/me").await.0, 401);

    // Everything is in the operator work log, and the chain verifies.
    let log = events_of_operators(&server).await;
    let has = |action: &str, result: &str| {
        log.iter()
            .any(|(a, _, _, r)| a == action && r.starts_with(result))
    };
    assert!(has("operator.account.create", "ok: operator-admin"), "{log:#?}");
    assert!(has("operator.login", "ok: first sign-in"), "{log:#?}");
    assert!(has("operator.login", "failed"), "{log:#?}");
    assert!(has("operator.login", "refused: TOTP code missing"), "{log:#?}");
    assert!(has("operator.password", "refused: wrong password"), "{log:#?}");
    assert!(has("operator.password", "ok"), "{log:#?}");
    assert!(has("operator.totp.enable", "ok"), "{log:#?}");
    assert!(has("operator.token.create", "ok: operator, expires"), "{log:#?}");
    assert!(has("operator.token.revoke", "ok"), "{log:#?}");
    assert!(has("operator.account.update", "disabled"), "{log:#?}");
    assert!(has("operator.account.update", "TOTP reset"), "{log:#?}");
    assert!(has("operator.session.revoke", "ok"), "{log:#?}");
    assert!(has("operator.logout", "ok"), "{log:#?}");
    assert!(has("session.csrf_refused", "refused"), "{log:#?}");
    assert!(
        log.iter()
            .any(|(a, actor, _, _)| a == "operator.get" && actor == "operator:alice"),
        "console and API calls are logged under the operator's login: {log:#?}"
    );
    let verified = kura_service::audit::verify(&server.server.service().db)
        .await
        .unwrap();
    assert!(verified.is_ok(), "the event log's chains must verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_accounts_on_sqlite() {
    accounts_work(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_accounts_on_postgres() {
    accounts_work(kura_testing::start_on_postgres(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operator_sign_ins_lock_the_login() {
    let server = kura_testing::start(|config| {
        config.login_throttle_after = 100;
        config.login_lockout_after = 3;
    })
    .await;
    let alice = server.set_up_operator("alice", "operator-admin").await;
    for _ in 0..3 {
        let (status, _, _) = server
            .operator_sign_in(json!({ "login": "alice", "password": "guess-guess-guess" }))
            .await;
        assert_eq!(status, 401);
    }
    let code = server.next_totp_code(&alice.totp_secret);
    let (status, body, _) = server
        .operator_sign_in(json!({ "login": "alice", "password": alice.password, "totp": code }))
        .await;
    assert_eq!(status, 429, "locked even with the right password: {body}");
    // A tenant user with the same login ID is not locked by the operator's failures.
    let (_, admin) = server.tenant_admin("ACME-0001").await;
    let (_, tenant_password) = server.add_user(&admin, "alice", "auditor").await;
    server.login("alice", &tenant_password).await;
    let log = events_of_operators(&server).await;
    assert!(
        log.iter()
            .any(|(a, _, _, r)| a == "operator.login.lockout" && r.starts_with("locked until")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_outside_the_management_networks_are_refused() {
    let server = kura_testing::start(|config| {
        config.operator_networks = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (status, body) = server
        .operator(Method::GET, "/api/v1/operator/tenants", None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1 is not in them"),
        "{body}"
    );
    let (status, body, _) = server
        .operator_sign_in(json!({ "login": "nobody", "password": "whatever-whatever" }))
        .await;
    assert_eq!(status, 403, "{body}");
    // Health stays reachable for load balancers; the metrics, which name tenants, want
    // the management network (or a scrape token).
    let health = server
        .http
        .get(format!("{}/healthz", server.management))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = server
        .http
        .get(format!("{}/metrics", server.management))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 403);
    assert!(metrics.text().await.unwrap().contains("operator_networks"));
    let log = events_of_operators(&server).await;
    assert!(
        log.iter()
            .any(|(a, _, _, r)| a == "operator.access" && r.contains("outside")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_owner_creates_the_first_operator_account() {
    let server = kura_testing::start(|_| ()).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kura-server"))
        .args(["operator", "create", "--data"])
        .arg(server.data_dir())
        .args(["--login", "root-ops", "--role", "operator-admin", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created["role"], "operator-admin");
    let (status, body, _) = server
        .operator_sign_in(json!({ "login": "root-ops", "password": created["password"] }))
        .await;
    assert_eq!((status, &body["setup_required"]), (200, &json!(true)), "{body}");
    // A bad role is refused by the command line, naming the choices.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kura-server"))
        .args(["operator", "create", "--data"])
        .arg(server.data_dir())
        .args(["--login", "x-ops", "--role", "god"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("operator-admin"));
    let log = events_of_operators(&server).await;
    assert!(
        log.iter()
            .any(|(a, actor, target, _)| a == "operator.account.create"
                && actor == "process-owner"
                && target == "root-ops"),
        "{log:#?}"
    );
}
