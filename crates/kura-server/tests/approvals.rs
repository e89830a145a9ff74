//! The two-person rule over the real management API, on SQLite and PostgreSQL: with one
//! operator-admin, destructive actions run at once; with two, terminating a tenant,
//! purging one now, lowering a tenant's immutability period and deleting an operator wait
//! for the other operator-admin, who approves (the action is then carried out unchanged)
//! or rejects. Nobody approves their own request, nor does an operator or an accountless
//! token; a request expires after 24 hours; both names are in the operator work log; the
//! other operator-admins are mailed each request, in their language (a real SMTP server).

use std::time::Duration;

use kura_testing::agent::Agent;
use kura_testing::smtp::MailServer;
use kura_testing::user::Session;
use kura_testing::{TestServer, error_of};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_person_rule_on_sqlite() {
    let mail = MailServer::start().await;
    two_person_rule(kura_testing::start(with_mail(mail.port)).await, mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_person_rule_on_postgres() {
    let mail = MailServer::start().await;
    two_person_rule(kura_testing::start_on_postgres(with_mail(mail.port)).await, mail).await;
}

fn with_mail(port: u16) -> impl FnOnce(&mut kura_server::ServerConfig) {
    move |config| {
        kura_testing::prompt_jobs(config);
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
        config.console_url = Some("https://kura-admin.example:8444/".to_owned());
    }
}

async fn call(session: &Session, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    session.call(method, path, body).await
}

fn approval_path(approval: &Value, verb: &str) -> String {
    format!(
        "/api/v1/operator/approvals/{}/{verb}",
        approval["id"].as_str().unwrap()
    )
}

async fn tenant(server: &TestServer, id: &str) -> Value {
    let (status, detail) = server
        .operator(Method::GET, &format!("/api/v1/operator/tenants/{id}"), None)
        .await;
    assert_eq!(status, 200, "{detail}");
    detail
}

async fn work_log(server: &TestServer) -> Vec<(String, String, String)> {
    kura_service::db::events::all(&server.server.service().db)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.chain == "operators")
        .map(|event| (event.event.action, event.event.actor, event.event.result))
        .collect()
}

async fn two_person_rule(server: TestServer, mail: MailServer) {
    let acme = server
        .create_tenant("ACME-0001", 2, json!({ "immutable_days": 14 }))
        .await;
    let acme_id = acme["tenant_id"].as_str().unwrap().to_owned();
    let agent = Agent::register(&server, acme["registration_token"].as_str().unwrap(), "web-01").await;
    let tenant_path = format!("/api/v1/operator/tenants/{acme_id}");

    // One operator-admin: nobody to ask, so a lowering runs at once.
    let operator = |login: &str, role: &str, language: &str| json!({ "login": login, "role": role, "email": format!("{login}@provider.example"), "language": language });
    let sato = server
        .set_up_operator_with(operator("sato", "operator-admin", "ja"))
        .await;
    let (status, body) = call(
        &sato.session,
        Method::PATCH,
        &tenant_path,
        Some(json!({ "immutable_days": 10 })),
    )
    .await;
    assert_eq!((status, &body["immutable_days"]), (200, &json!(10)), "{body}");

    // Two: the same request waits for the other one.
    let suzuki = server
        .set_up_operator_with(operator("suzuki", "operator-admin", "en"))
        .await;
    let tanaka = server
        .set_up_operator_with(operator("tanaka", "operator", "ja"))
        .await;
    let (status, held) = call(
        &sato.session,
        Method::PATCH,
        &tenant_path,
        Some(json!({ "immutable_days": 3 })),
    )
    .await;
    assert_eq!(status, 202, "{held}");
    assert_eq!(
        (&held["status"], &held["action"], &held["requested_by"]),
        (
            &json!("pending"),
            &json!("tenant.immutability.lower"),
            &json!("sato")
        ),
        "{held}"
    );
    assert_eq!(tenant(&server, &acme_id).await["immutable_days"], 10);
    // Only the other operator-admin is asked, in English as his account says.
    let asked = mail.wait_for(1).await;
    assert!(asked[0].to.contains("suzuki@provider.example"), "{asked:?}");
    assert_eq!(
        asked[0].subject,
        "[Kura] Approval needed: Lower the immutability period (asked by sato)"
    );
    assert!(
        asked[0].text.contains("ACME-0001")
            && asked[0]
                .text
                .contains("https://kura-admin.example:8444/approvals"),
        "{}",
        asked[0].text
    );
    // Raising needs nobody.
    let (status, body) = call(
        &sato.session,
        Method::PATCH,
        &tenant_path,
        Some(json!({ "immutable_days": 20 })),
    )
    .await;
    assert_eq!((status, &body["immutable_days"]), (200, &json!(20)), "{body}");
    // Rejected: nothing changes.
    let (status, rejected) = call(
        &suzuki.session,
        Method::POST,
        &approval_path(&held, "reject"),
        None,
    )
    .await;
    assert_eq!(
        (status, &rejected["status"]),
        (200, &json!("rejected")),
        "{rejected}"
    );
    assert_eq!(tenant(&server, &acme_id).await["immutable_days"], 20);
    let (status, answer) = call(
        &suzuki.session,
        Method::POST,
        &approval_path(&held, "approve"),
        None,
    )
    .await;
    assert_eq!(status, 409, "a rejected request is not approved later: {answer}");

    // Terminating waits; asking again answers the same request.
    let terminate = format!("{tenant_path}/terminate");
    let (status, held) = call(
        &sato.session,
        Method::POST,
        &terminate,
        Some(json!({ "purge_after_days": 30 })),
    )
    .await;
    assert_eq!(
        (status, &held["action"]),
        (202, &json!("tenant.terminate")),
        "{held}"
    );
    let (status, again) = call(
        &sato.session,
        Method::POST,
        &terminate,
        Some(json!({ "purge_after_days": 30 })),
    )
    .await;
    assert_eq!((status, &again["id"]), (202, &held["id"]), "{again}");
    let asked = mail.wait_for(2).await;
    assert!(
        asked.iter().all(|m| m.to.contains("suzuki@provider.example")),
        "neither the requester nor an operator, and the same request once: {asked:?}"
    );
    assert!(
        asked[1].subject.contains("Terminate a tenant"),
        "{}",
        asked[1].subject
    );
    assert_eq!(tenant(&server, &acme_id).await["status"], "active");
    assert_eq!(
        server.whoami(&agent.credential).await.0,
        200,
        "the agent still works"
    );
    let (status, list) = call(&tanaka.session, Method::GET, "/api/v1/operator/approvals", None).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == held["id"] && a["status"] == "pending"),
        "every operator sees what waits: {list}"
    );

    // Who may not approve: the one who asked, an operator, an accountless token.
    let approve = approval_path(&held, "approve");
    let (status, answer) = call(&sato.session, Method::POST, &approve, None).await;
    assert_eq!(status, 403, "{answer}");
    assert!(error_of(&answer).contains("yourself"), "{answer}");
    let (status, answer) = call(&tanaka.session, Method::POST, &approve, None).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = server.operator(Method::POST, &approve, None).await;
    assert_eq!(status, 403, "{answer}");
    assert!(error_of(&answer).contains("person"), "{answer}");
    let (status, answer) = call(
        &suzuki.session,
        Method::POST,
        "/api/v1/operator/approvals/0123/approve",
        None,
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(tenant(&server, &acme_id).await["status"], "active");

    // The second operator-admin approves: carried out as asked, both names on it.
    let (status, approved) = call(&suzuki.session, Method::POST, &approve, None).await;
    assert_eq!(
        (status, &approved["status"]),
        (200, &json!("approved")),
        "{approved}"
    );
    assert_eq!(approved["decided_by"], "suzuki");
    assert!(
        approved["outcome"].as_str().unwrap().starts_with("done: "),
        "{approved}"
    );
    let detail = tenant(&server, &acme_id).await;
    assert_eq!(detail["status"], "terminated");
    assert_eq!(
        detail["termination"]["terminated_by"],
        "sato (approved by suzuki)"
    );
    assert_eq!(
        server.whoami(&agent.credential).await.0,
        403,
        "the agent is locked out"
    );
    let (status, answer) = call(&suzuki.session, Method::POST, &approve, None).await;
    assert_eq!(status, 409, "approved once only: {answer}");

    // Purging now waits too; once approved, the purge runs and leaves its record.
    let (status, held) = call(
        &suzuki.session,
        Method::POST,
        &format!("{tenant_path}/purge-now"),
        None,
    )
    .await;
    assert_eq!(
        (status, &held["action"]),
        (202, &json!("tenant.purge-now")),
        "{held}"
    );
    let (status, approved) = call(
        &sato.session,
        Method::POST,
        &approval_path(&held, "approve"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    let mut purged = false;
    for _ in 0..200 {
        if tenant(&server, &acme_id).await["termination"]["purged"].is_string() {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "the purge ran at once");

    // Deleting an operator waits; approved, the account and its session are gone.
    let (status, operators) = call(&sato.session, Method::GET, "/api/v1/operator/operators", None).await;
    assert_eq!(status, 200, "{operators}");
    let tanaka_id = operators
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["login"] == "tanaka")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, held) = call(
        &sato.session,
        Method::DELETE,
        &format!("/api/v1/operator/operators/{tanaka_id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, &held["action"]),
        (202, &json!("operator.delete")),
        "{held}"
    );
    assert_eq!(
        call(&tanaka.session, Method::GET, "/api/v1/operator/me", None)
            .await
            .0,
        200
    );
    let (status, approved) = call(
        &suzuki.session,
        Method::POST,
        &approval_path(&held, "approve"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(
        call(&tanaka.session, Method::GET, "/api/v1/operator/me", None)
            .await
            .0,
        401
    );
    let (_, operators) = call(&sato.session, Method::GET, "/api/v1/operator/operators", None).await;
    assert!(!operators.to_string().contains("tanaka"), "{operators}");

    // A request nobody decides expires after 24 hours.
    let beta = server
        .create_tenant("BETA-0002", 1, json!({ "immutable_days": 7 }))
        .await;
    let beta_path = format!("/api/v1/operator/tenants/{}", beta["tenant_id"].as_str().unwrap());
    let (status, held) = call(
        &sato.session,
        Method::PATCH,
        &beta_path,
        Some(json!({ "immutable_days": 0 })),
    )
    .await;
    assert_eq!(status, 202, "{held}");
    server
        .server
        .state()
        .clock()
        .advance(Duration::from_secs(24 * 3600 + 60));
    // A day later the sessions have ended too: suzuki signs in again.
    let code = server.next_totp_code(&suzuki.totp_secret);
    let (status, answer, session) = server
        .operator_sign_in(json!({ "login": suzuki.login, "password": suzuki.password, "totp": code }))
        .await;
    assert_eq!(status, 200, "{answer}");
    let suzuki_again = session.unwrap();
    let (status, answer) = call(
        &suzuki_again,
        Method::POST,
        &approval_path(&held, "approve"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(error_of(&answer).contains("expired"), "{answer}");
    let (status, shown) = call(
        &suzuki_again,
        Method::GET,
        &format!("/api/v1/operator/approvals/{}", held["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((status, &shown["status"]), (200, &json!("expired")), "{shown}");
    assert_eq!(
        tenant(&server, beta["tenant_id"].as_str().unwrap()).await["immutable_days"],
        7
    );

    // The operator work log names both people of each decision.
    let log = work_log(&server).await;
    let find = |action: &str, actor: &str| {
        log.iter()
            .filter(|(a, who, _)| a == action && who == actor)
            .map(|(_, _, result)| result.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(find("approval.request", "operator:sato").len(), 4, "{log:?}");
    assert_eq!(find("approval.request", "operator:suzuki").len(), 1, "{log:?}");
    assert!(
        find("approval.approve", "operator:suzuki")
            .iter()
            .any(|r| r.contains("of sato") && r.contains("terminate")),
        "{log:?}"
    );
    assert_eq!(find("approval.reject", "operator:suzuki").len(), 1, "{log:?}");
    assert!(
        find("tenant.terminate", "operator:suzuki")
            .iter()
            .any(|r| r.contains("requested by sato and approved by suzuki")),
        "{log:?}"
    );
    assert_eq!(
        find("operator.account.delete", "operator:suzuki").len(),
        1,
        "{log:?}"
    );
}
