//! The isolation suite: tenant A has machines, snapshots and an open upload session;
//! every route of the customer listener is called with tenant B's credential (and with
//! another machine of tenant A) and A's ids. Each answers 403/404 or the caller's own
//! data, and no answer carries A's ids, names or sources.
//!
//! The routes come from [`customer_route_table`], which the router is built from: a new
//! route without a case here fails the suite.

use kura_server::api::customer_route_table;
use kura_testing::agent::Agent;
use kura_testing::{TestServer, parts};
use reqwest::Method;
use serde_json::{Value, json};

/// What tenant A has, for the intruders to aim at.
struct Victim {
    agent: Agent,
    used_token: String,
    snapshots: Vec<String>,
    session: String,
    chunk_ids: Vec<u8>,
    /// Strings of A's that a tenant B answer must never contain.
    tenant_markers: Vec<String>,
    /// Strings of A's machine that another machine's answer must never contain.
    machine_markers: Vec<String>,
    /// A's first admin, whom the user routes aim at.
    admin_user_id: String,
    /// A verify job A's first machine asked for.
    job: String,
    /// A's plan, and the run A's first machine started of it.
    plan: String,
    run: String,
    /// A restore job for A's first machine.
    restore: String,
    /// A restore drill A's first machine started.
    drill: String,
    /// A notice for A only, and a support request of A's admin.
    notice: String,
    request: String,
}

enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
    /// An HTML form (`application/x-www-form-urlencoded`).
    Form(String),
}

/// The request for one route, aimed at A's ids, and the statuses a foreign caller may get.
fn case(method: &Method, pattern: &str, a: &Victim, same_tenant: bool) -> (String, Body, &'static [u16]) {
    const OWN: &[u16] = &[200];
    const NOT_FOUND: &[u16] = &[404];
    const FORBIDDEN: &[u16] = &[403];
    const UNAUTHORIZED: &[u16] = &[401];
    // The portal sends a browser without a session to the sign-in page (303, followed).
    const SIGN_IN_PAGE: &[u16] = &[200];
    let session = &a.session;
    let machine = &a.agent.machine_id;
    let snapshot = &a.snapshots[0];
    let (path, body, expected): (String, Body, &[u16]) = match (method.as_str(), pattern) {
        ("POST", "/api/v1/agents/register") => (
            pattern.into(),
            Body::Json(json!({ "token": a.used_token, "name": "intruder" })),
            &[401],
        ),
        // The same document for everyone: it names no tenant.
        ("GET", "/api/v1/openapi.json") => (pattern.into(), Body::None, OWN),
        ("GET", "/api/v1/agent/whoami" | "/api/v1/agent/plans") => (pattern.into(), Body::None, OWN),
        ("GET", "/api/v1/vault") => (pattern.into(), Body::None, OWN),
        ("POST", "/api/v1/vault") => (
            pattern.into(),
            Body::Json(json!({ "config": "00", "key_slots": [] })),
            &[409, 422],
        ),
        ("GET", "/api/v1/vault/key-slots") => (pattern.into(), Body::None, OWN),
        ("POST", "/api/v1/vault/key-slots") => (pattern.into(), Body::Json(json!({ "slot": "00" })), &[422]),
        // The machine's own slot only: a malformed one is refused before anything else.
        ("PUT", "/api/v1/vault/machine-key-slot") => {
            (pattern.into(), Body::Json(json!({ "slot": "00" })), &[422])
        }
        ("DELETE", "/api/v1/vault/key-slots/{id}") => {
            ("/api/v1/vault/key-slots/0123abcd".into(), Body::None, FORBIDDEN)
        }
        ("POST", "/api/v1/vault/sessions") => (
            pattern.into(),
            Body::Json(json!({ "parent": snapshot })),
            NOT_FOUND,
        ),
        ("DELETE", "/api/v1/vault/sessions/{session}") => {
            (format!("/api/v1/vault/sessions/{session}"), Body::None, NOT_FOUND)
        }
        ("POST", "/api/v1/vault/sessions/{session}/heartbeat") => (
            format!("/api/v1/vault/sessions/{session}/heartbeat"),
            Body::None,
            NOT_FOUND,
        ),
        ("POST", "/api/v1/vault/sessions/{session}/missing") => (
            format!("/api/v1/vault/sessions/{session}/missing"),
            Body::Bytes(a.chunk_ids.clone()),
            NOT_FOUND,
        ),
        ("PUT", "/api/v1/vault/sessions/{session}/packs") => (
            format!("/api/v1/vault/sessions/{session}/packs"),
            Body::Bytes(a.agent.pack(&[b"an intruder's chunk"]).1),
            NOT_FOUND,
        ),
        ("POST", "/api/v1/vault/sessions/{session}/commit") => {
            let ids: Vec<_> = a
                .chunk_ids
                .chunks(32)
                .map(|c| kura_format::ChunkId(c.try_into().unwrap()))
                .collect();
            let (manifest, refs) = a.agent.manifest("intruder", &ids);
            (
                format!("/api/v1/vault/sessions/{session}/commit"),
                Body::Bytes(kura_api::frames::encode_frames([
                    manifest.as_slice(),
                    refs.as_slice(),
                ])),
                NOT_FOUND,
            )
        }
        ("GET", "/api/v1/vault/snapshots") => (pattern.into(), Body::None, OWN),
        ("GET", "/api/v1/vault/snapshots/{spec}") => (
            format!("/api/v1/vault/snapshots/{snapshot}"),
            Body::None,
            NOT_FOUND,
        ),
        ("POST", "/api/v1/vault/snapshots/{spec}/restores") => (
            format!("/api/v1/vault/snapshots/{snapshot}/restores"),
            Body::None,
            NOT_FOUND,
        ),
        // Chunks are shared inside a tenant (dedup), never across tenants.
        ("POST", "/api/v1/vault/blobs") => (
            pattern.into(),
            Body::Bytes(a.chunk_ids.clone()),
            if same_tenant { OWN } else { NOT_FOUND },
        ),
        ("POST", "/api/v1/vault/forget") => (
            pattern.into(),
            Body::Json(json!({ "ids": a.snapshots })),
            FORBIDDEN,
        ),
        ("POST", "/api/v1/vault/gc") => (pattern.into(), Body::Json(json!({})), FORBIDDEN),
        ("POST", "/api/v1/vault/verify") => {
            (pattern.into(), Body::Json(json!({ "read_data": true })), &[202])
        }
        // A job is followed by the machine that asked for it.
        ("GET", "/api/v1/jobs/{id}") => (format!("/api/v1/jobs/{}", a.job), Body::None, NOT_FOUND),
        ("GET", "/api/v1/vault/usage") => (pattern.into(), Body::None, OWN),
        // User routes: an agent credential is no user credential, whatever it aims at.
        ("POST", "/api/v1/login") => (
            pattern.into(),
            Body::Json(json!({ "login": "acme-0001-admin", "password": "not the password" })),
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/logout" | "/api/v1/totp/enroll")
        | ("DELETE", "/api/v1/totp" | "/api/v1/tenant/support-access")
        | ("GET", "/api/v1/tenant/support-access")
        | ("GET", "/api/v1/me" | "/api/v1/sessions" | "/api/v1/tokens" | "/api/v1/users")
        | ("GET", "/api/v1/tenant/admin-networks" | "/api/v1/tenant/totp-policy" | "/api/v1/events") => {
            (pattern.into(), Body::None, UNAUTHORIZED)
        }
        ("POST", "/api/v1/totp/confirm") => (
            pattern.into(),
            Body::Json(json!({ "code": "123456" })),
            UNAUTHORIZED,
        ),
        ("PUT", "/api/v1/tenant/support-access") => {
            (pattern.into(), Body::Json(json!({ "hours": 72 })), UNAUTHORIZED)
        }
        ("PUT", "/api/v1/tenant/totp-policy") => (
            pattern.into(),
            Body::Json(json!({ "policy": "optional" })),
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/password") => (
            pattern.into(),
            Body::Json(json!({ "old_password": "x", "new_password": "y" })),
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/password/forgot") => (
            pattern.into(),
            Body::Json(json!({ "login": "acme-0001-admin" })),
            // No mail server in this suite: the service says so instead of pretending.
            &[503],
        ),
        ("POST", "/api/v1/password/reset") => (
            pattern.into(),
            Body::Json(json!({ "token": a.used_token, "new_password": "an intruder's passphrase" })),
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/users/{id}/reset-password") => (
            pattern.replace("{id}", &a.admin_user_id),
            Body::None,
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/tokens") => (pattern.into(), Body::Json(json!({ "name": "x" })), UNAUTHORIZED),
        ("POST", "/api/v1/users") => (
            pattern.into(),
            Body::Json(json!({ "login": "intruder", "role": "admin" })),
            UNAUTHORIZED,
        ),
        ("PUT", "/api/v1/tenant/admin-networks") => (
            pattern.into(),
            Body::Json(json!({ "cidrs": ["0.0.0.0/0"] })),
            UNAUTHORIZED,
        ),
        ("DELETE", "/api/v1/sessions/{id}" | "/api/v1/tokens/{id}" | "/api/v1/users/{id}") => (
            pattern.replace("{id}", &a.admin_user_id),
            Body::None,
            UNAUTHORIZED,
        ),
        // Tenant users' snapshot routes: an agent credential is no user credential.
        ("GET", "/api/v1/snapshots") => (pattern.into(), Body::None, UNAUTHORIZED),
        ("GET", "/api/v1/snapshots/{id}" | "/api/v1/snapshots/{id}/tree") => {
            (pattern.replace("{id}", snapshot), Body::None, UNAUTHORIZED)
        }
        ("GET", "/api/v1/snapshots/{id}/download") => (
            format!("/api/v1/snapshots/{snapshot}/download?path=/"),
            Body::None,
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/snapshots/{id}/tree" | "/api/v1/snapshots/{id}/download") => (
            pattern.replace("{id}", snapshot),
            Body::Json(json!({ "path": "/" })),
            UNAUTHORIZED,
        ),
        ("PATCH", "/api/v1/me") => (
            pattern.into(),
            Body::Json(json!({ "language": "en" })),
            UNAUTHORIZED,
        ),
        ("PATCH", "/api/v1/users/{id}") => (
            pattern.replace("{id}", &a.admin_user_id),
            Body::Json(json!({ "role": "auditor" })),
            UNAUTHORIZED,
        ),
        ("GET", "/api/v1/machines" | "/api/v1/usage") | ("POST", "/api/v1/registration-tokens") => {
            (pattern.into(), Body::None, UNAUTHORIZED)
        }
        ("PATCH", "/api/v1/machines/{id}") => (
            format!("/api/v1/machines/{machine}"),
            Body::Json(json!({ "name": "taken over" })),
            UNAUTHORIZED,
        ),
        ("DELETE", "/api/v1/machines/{id}") => {
            (format!("/api/v1/machines/{machine}"), Body::None, UNAUTHORIZED)
        }
        ("GET" | "POST", "/api/v1/plans") => (
            pattern.into(),
            Body::Json(
                json!({ "name": "x", "kind": "files", "sources": ["/"], "schedule": "0 2 * * *", "machines": [machine] }),
            ),
            UNAUTHORIZED,
        ),
        // Another machine's plan and run are not found, in this tenant or another.
        ("POST", "/api/v1/agent/runs") => (
            pattern.into(),
            Body::Json(json!({ "plan_id": a.plan, "scheduled": "2026-01-01T02:00:00Z" })),
            NOT_FOUND,
        ),
        ("PATCH", "/api/v1/agent/runs/{id}") => (
            format!("/api/v1/agent/runs/{}", a.run),
            Body::Json(json!({ "status": "failed", "error": "taken over" })),
            NOT_FOUND,
        ),
        ("GET", "/api/v1/runs") => (format!("/api/v1/runs?plan={}", a.plan), Body::None, UNAUTHORIZED),
        ("POST", "/api/v1/restores") => (
            pattern.into(),
            Body::Json(json!({ "snapshot_id": snapshot, "machine_id": machine, "target": "/tmp/x" })),
            UNAUTHORIZED,
        ),
        ("GET", "/api/v1/restores") => (
            format!("/api/v1/restores?snapshot={snapshot}"),
            Body::None,
            UNAUTHORIZED,
        ),
        ("GET", "/api/v1/restores/{id}") => (
            format!("/api/v1/restores/{}", a.restore),
            Body::None,
            UNAUTHORIZED,
        ),
        // Another machine's restore job is not found, in this tenant or another.
        ("PATCH", "/api/v1/agent/restores/{id}") => (
            format!("/api/v1/agent/restores/{}", a.restore),
            Body::Json(json!({ "status": "running" })),
            NOT_FOUND,
        ),
        // Another machine's plan and drill are not found, in this tenant or another.
        ("POST", "/api/v1/agent/drills") => (
            pattern.into(),
            Body::Json(json!({ "plan_id": a.plan, "snapshot_id": snapshot })),
            NOT_FOUND,
        ),
        ("PATCH", "/api/v1/agent/drills/{id}") => (
            format!("/api/v1/agent/drills/{}", a.drill),
            Body::Json(json!({ "status": "passed" })),
            NOT_FOUND,
        ),
        ("GET", "/api/v1/drills") => (
            format!("/api/v1/drills?plan={}&machine={machine}", a.plan),
            Body::None,
            UNAUTHORIZED,
        ),
        ("GET", "/api/v1/notices" | "/api/v1/support-requests") => (pattern.into(), Body::None, UNAUTHORIZED),
        ("POST", "/api/v1/notices/{id}/read") => (
            format!("/api/v1/notices/{}/read", a.notice),
            Body::None,
            UNAUTHORIZED,
        ),
        ("POST", "/api/v1/support-requests") => (
            pattern.into(),
            Body::Json(json!({ "category": "question", "subject": "s", "body": "b" })),
            UNAUTHORIZED,
        ),
        ("GET" | "POST", "/api/v1/support-requests/{id}" | "/api/v1/support-requests/{id}/replies") => (
            pattern.replace("{id}", &a.request),
            Body::Json(json!({ "body": "taken over", "close": true })),
            UNAUTHORIZED,
        ),
        ("GET", "/api/v1/alerts") => (
            format!("/api/v1/alerts?state=all&machine={machine}"),
            Body::None,
            UNAUTHORIZED,
        ),
        ("GET" | "PATCH" | "DELETE", "/api/v1/plans/{id}") => (
            "/api/v1/plans/0123456789abcdef0123456789abcdef".into(),
            Body::Json(json!({ "machines": [machine] })),
            UNAUTHORIZED,
        ),
        // The portal's open pages and files name no tenant.
        ("GET", "/static/{name}") => ("/static/portal.css".into(), Body::None, OWN),
        ("GET", "/login" | "/forgot-password" | "/reset-password" | "/ca.pem") => {
            (pattern.into(), Body::None, OWN)
        }
        // Forms before sign-in need the browser's own double-submit token.
        ("POST", "/login" | "/login/totp" | "/forgot-password" | "/reset-password" | "/language") => (
            pattern.into(),
            Body::Form(format!(
                "login=acme-0001-admin&password=x&pending=x&token={}&language=en",
                a.used_token
            )),
            FORBIDDEN,
        ),
        (
            "GET",
            "/" | "/machines" | "/account" | "/contract" | "/users" | "/security" | "/snapshots" | "/events"
            | "/help" | "/plans" | "/alerts" | "/notices" | "/support",
        )
        | (
            "POST",
            "/logout"
            | "/machines/add"
            | "/account/password"
            | "/account/language"
            | "/account/tokens"
            | "/users"
            | "/security"
            | "/account/totp/enroll"
            | "/account/totp/confirm"
            | "/account/totp/disable"
            | "/account/alert-mail"
            | "/plans"
            | "/support",
        ) => (pattern.into(), Body::None, SIGN_IN_PAGE),
        ("GET" | "POST", "/plans/{id}" | "/plans/{id}/delete") => (
            pattern.replace("{id}", "0123456789abcdef0123456789abcdef"),
            Body::Form(format!("name=taken+over&machines={machine}")),
            SIGN_IN_PAGE,
        ),
        ("GET" | "POST", "/snapshots/{id}" | "/snapshots/{id}/download" | "/snapshots/{id}/restore") => (
            pattern.replace("{id}", snapshot),
            Body::Form("path=%2F&passphrase=x".into()),
            SIGN_IN_PAGE,
        ),
        ("POST", "/notices/{id}/read") => (pattern.replace("{id}", &a.notice), Body::None, SIGN_IN_PAGE),
        ("GET" | "POST", "/support/{id}") => (
            pattern.replace("{id}", &a.request),
            Body::Form("body=taken+over&close=1".into()),
            SIGN_IN_PAGE,
        ),
        ("POST", "/machines/{id}/rename" | "/machines/{id}/revoke") => (
            pattern.replace("{id}", machine),
            Body::Form("name=taken+over".into()),
            SIGN_IN_PAGE,
        ),
        ("POST", "/account/sessions/{id}/revoke" | "/account/tokens/{id}/revoke" | "/users/{id}") => (
            pattern.replace("{id}", &a.admin_user_id),
            Body::None,
            SIGN_IN_PAGE,
        ),
        (method, path) => panic!("the isolation suite has no case for {method} {path}: add one"),
    };
    (path, body, expected)
}

async fn call(intruder: &Agent, method: &Method, path: &str, body: Body) -> (u16, String) {
    let request = intruder.request(method.clone(), path);
    let request = match body {
        Body::None => request,
        Body::Json(value) => request.json(&value),
        Body::Bytes(bytes) => request.body(bytes),
        Body::Form(text) => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(text),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned(),
    )
}

async fn setup() -> (TestServer, Victim, Agent, Agent) {
    let server = kura_testing::start(|_| ()).await;
    let a_tenant = server.create_tenant("ACME-0001", 3, json!({})).await;
    let a_token = a_tenant["registration_token"].as_str().unwrap().to_owned();
    let a1 = Agent::register(&server, &a_token, "acme-web-01").await;
    a1.create_vault().await;
    let a_chunks: [&[u8]; 2] = [b"acme payroll 2026", b"acme customer list"];
    let snapshots = vec![
        a1.backup("acme-payroll", &a_chunks).await,
        a1.backup("acme-payroll", &a_chunks[..1]).await,
    ];
    let session = a1.open_session().await;
    let (status, job) = a1
        .post_json("/api/v1/vault/verify", json!({ "read_data": false }))
        .await;
    assert_eq!(status, 202, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    let a2_token = server
        .new_registration_token(a_tenant["tenant_id"].as_str().unwrap())
        .await;
    let a2 = Agent::register(&server, &a2_token, "acme-mail-01").await;
    // A plan of A's first machine, which no other machine's plans may show.
    let a_admin = server
        .login(
            a_tenant["admin_login"].as_str().unwrap(),
            a_tenant["admin_password"].as_str().unwrap(),
        )
        .await;
    let plan = json!({ "name": "acme-nightly", "kind": "files", "sources": ["/srv/acme"],
        "schedule": "*/5 * * * *", "drill": "monthly", "machines": [a1.machine_id] });
    let (status, plan) = a_admin.call(Method::POST, "/api/v1/plans", Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    // Five minutes on, a slot is due, and A's first machine starts its run.
    server
        .server
        .state()
        .clock()
        .advance(std::time::Duration::from_secs(300));
    let (status, plans) = a1.get("/api/v1/agent/plans").await;
    assert_eq!(status, 200, "{plans}");
    let (status, run) = a1
        .post_json(
            "/api/v1/agent/runs",
            json!({ "plan_id": plan["id"], "scheduled": plans["plans"][0]["due"] }),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let (status, restore) = a_admin
        .call(
            Method::POST,
            "/api/v1/restores",
            Some(json!({ "snapshot_id": snapshots[0], "machine_id": a1.machine_id, "target": "/srv/acme-restore" })),
        )
        .await;
    assert_eq!(status, 202, "{restore}");
    let (status, drill) = a1
        .post_json(
            "/api/v1/agent/drills",
            json!({ "plan_id": plan["id"], "snapshot_id": snapshots[0] }),
        )
        .await;
    assert_eq!(status, 201, "{drill}");
    let (status, notice) = server
        .operator(
            Method::POST,
            "/api/v1/operator/notices",
            Some(
                json!({ "kind": "incident", "title_en": "acme breach notice", "body_en": "acme only",
                "tenants": ["ACME-0001"] }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{notice}");
    let (status, request) = a_admin
        .call(
            Method::POST,
            "/api/v1/support-requests",
            Some(json!({ "category": "security-event", "subject": "acme secret request", "body": "acme only" })),
        )
        .await;
    assert_eq!(status, 201, "{request}");

    let b_tenant = server.create_tenant("BETA-0002", 3, json!({})).await;
    let b = Agent::register(
        &server,
        b_tenant["registration_token"].as_str().unwrap(),
        "beta-01",
    )
    .await;
    b.create_vault().await;
    b.backup("beta-docs", &[b"beta's own data"]).await;

    let ids: Vec<_> = a_chunks.iter().map(|c| a1.codec.id(c)).collect();
    let chunk_hex: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let mut machine_markers = snapshots.clone();
    machine_markers.extend([
        session.clone(),
        a1.machine_id.clone(),
        "acme-payroll".to_owned(),
        job.clone(),
        "acme-nightly".to_owned(),
        plan["id"].as_str().unwrap().to_owned(),
        run["id"].as_str().unwrap().to_owned(),
        restore["id"].as_str().unwrap().to_owned(),
        "acme-restore".to_owned(),
        drill["id"].as_str().unwrap().to_owned(),
    ]);
    let mut tenant_markers = machine_markers.clone();
    tenant_markers.extend(chunk_hex.iter().cloned());
    tenant_markers.extend([
        notice["id"].as_str().unwrap().to_owned(),
        "acme breach notice".to_owned(),
        request["id"].as_str().unwrap().to_owned(),
        "acme secret request".to_owned(),
        a_tenant["tenant_id"].as_str().unwrap().to_owned(),
        a2.machine_id.clone(),
        "ACME".to_owned(),
        "acme".to_owned(),
    ]);
    let (status, shown) = server
        .operator(
            Method::GET,
            &format!(
                "/api/v1/operator/tenants/{}",
                a_tenant["tenant_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    let victim = Victim {
        admin_user_id: shown["users"][0]["id"].as_str().unwrap().to_owned(),
        chunk_ids: ids.iter().flat_map(|id| id.as_bytes().to_vec()).collect(),
        agent: a1,
        used_token: a_token,
        snapshots,
        session,
        tenant_markers,
        machine_markers,
        job,
        plan: plan["id"].as_str().unwrap().to_owned(),
        run: run["id"].as_str().unwrap().to_owned(),
        restore: restore["id"].as_str().unwrap().to_owned(),
        drill: drill["id"].as_str().unwrap().to_owned(),
        notice: notice["id"].as_str().unwrap().to_owned(),
        request: request["id"].as_str().unwrap().to_owned(),
    };
    (server, victim, a2, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_customer_route_reaches_another_tenants_or_machines_data() {
    let (server, a, a2, b) = setup().await;
    let b_usage = b.get("/api/v1/vault/usage").await;
    let routes = customer_route_table();
    assert!(routes.len() >= 47, "{routes:?}");

    for (intruder, same_tenant, markers) in [(&b, false, &a.tenant_markers), (&a2, true, &a.machine_markers)]
    {
        for (method, pattern, _) in &routes {
            let (path, body, expected) = case(method, pattern, &a, same_tenant);
            // An error may echo what the caller sent; only what it did not send is a leak.
            let sent = match &body {
                Body::Json(value) => format!("{path} {value}"),
                Body::Bytes(bytes) => format!("{path} {}", hex::encode(bytes)),
                Body::Form(text) => format!("{path} {text}"),
                Body::None => path.clone(),
            };
            let (status, text) = call(intruder, method, &path, body).await;
            let who = if same_tenant {
                "another machine of tenant A"
            } else {
                "tenant B"
            };
            assert!(
                expected.contains(&status),
                "{who}: {method} {path} answered {status}, expected {expected:?}: {text}"
            );
            for marker in markers.iter().filter(|m| !sent.contains(m.as_str())) {
                assert!(
                    !text.contains(marker.as_str()),
                    "{who}: {method} {path} leaked {marker:?}: {text}"
                );
            }
        }
    }

    // Nothing of A changed: its session still commits, its snapshots are all there, and
    // B stored nothing through A's ids.
    let (ids, pack) = a.agent.pack(&[b"acme payroll 2027"]);
    let (status, body) = a.agent.put_pack(&a.session, pack).await;
    assert_eq!(status, 200, "{body}");
    let (manifest, refs) = a.agent.manifest("acme-payroll", &ids);
    let (status, body) = a.agent.commit(&a.session, &manifest, &refs).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(a.agent.snapshot_ids().await.len(), 3);
    assert!(a2.snapshot_ids().await.is_empty());
    assert_eq!(b.get("/api/v1/vault/usage").await, b_usage);
    assert_eq!(b.snapshot_ids().await.len(), 1);
    let (status, _) = parts(
        server
            .http
            .get(format!("{}/api/v1/vault/usage", server.customer))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "no credential, no data");
}
