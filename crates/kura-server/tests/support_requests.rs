//! Support requests over the real APIs, on SQLite and PostgreSQL, with mail read from a
//! real SMTP server: a tenant user opens a question and a security event; operators list
//! and filter them, reply (mailed to the requester in their language) and close; users see
//! their own requests and admins all of their tenant's; another tenant and another user
//! get 404; the portal shows the conversation; the logs record it, the security event
//! flagged in the operator work log; operators with a mail address are mailed each new
//! request and each follow-up, in their own language, with a link to the console.

use kura_testing::TestServer;
use kura_testing::portal::sign_in;
use kura_testing::smtp::MailServer;
use reqwest::Method;
use serde_json::json;

fn with_mail(port: u16) -> impl FnOnce(&mut kura_server::ServerConfig) {
    move |config| {
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_requests_on_sqlite() {
    let mail = MailServer::start().await;
    support_requests_work(kura_testing::start(with_mail(mail.port)).await, mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_requests_on_postgres() {
    let mail = MailServer::start().await;
    support_requests_work(kura_testing::start_on_postgres(with_mail(mail.port)).await, mail).await;
}

async fn support_requests_work(server: TestServer, mail: MailServer) {
    let (acme, admin) = server.tenant_admin("ACME-0001").await;
    let (_, beta_admin) = server.tenant_admin("BETA-0002").await;
    let mia = server.add_user_with_mail(&admin, "mia").await;
    let mia = server.login("mia", mia["password"].as_str().unwrap()).await;
    let (_, noa_password) = server.add_user(&admin, "noa", "auditor").await;
    let noa = server.login("noa", &noa_password).await;
    // The provider's desk reads English; a disabled account and one without an address
    // get nothing.
    for (login, email) in [("desk", Some("desk@provider.example")), ("quiet", None)] {
        let (status, body) = server
            .operator(
                Method::POST,
                "/api/v1/operator/operators",
                Some(json!({ "login": login, "role": "operator", "email": email, "language": "en" })),
            )
            .await;
        assert_eq!((status, &body["language"]), (201, &json!("en")), "{body}");
    }
    let (status, body) = server
        .operator(
            Method::POST,
            "/api/v1/operator/operators",
            Some(json!({ "login": "gone", "role": "operator", "email": "gone@provider.example" })),
        )
        .await;
    assert_eq!((status, &body["language"]), (201, &json!("ja")), "{body}");
    let gone = body["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .operator(
            Method::POST,
            &format!("/api/v1/operator/operators/{gone}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .operator(
            Method::POST,
            "/api/v1/operator/operators",
            Some(json!({ "login": "odd", "role": "operator", "language": "fr" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("language"), "{body}");

    // Refusals name the field.
    for (body, field) in [
        (
            json!({ "category": "rant", "subject": "s", "body": "b" }),
            "category",
        ),
        (
            json!({ "category": "question", "subject": " ", "body": "b" }),
            "subject",
        ),
        (
            json!({ "category": "question", "subject": "s", "body": "" }),
            "body",
        ),
    ] {
        let (status, answer) = mia
            .call(Method::POST, "/api/v1/support-requests", Some(body))
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(field), "{answer}");
    }
    let (status, question) = mia
        .call(
            Method::POST,
            "/api/v1/support-requests",
            Some(json!({ "category": "question", "subject": "リストアが遅い", "body": "web-01 のリストアに3時間かかります。" })),
        )
        .await;
    assert_eq!(status, 201, "{question}");
    assert_eq!(
        (&question["status"], &question["requester"]),
        (&json!("open"), &json!("mia"))
    );
    let question_id = question["id"].as_str().unwrap().to_owned();
    let (status, event) = noa
        .call(
            Method::POST,
            "/api/v1/support-requests",
            Some(json!({ "category": "security-event", "subject": "Unknown sign-ins", "body": "We saw sign-ins from 203.0.113.9." })),
        )
        .await;
    assert_eq!(status, 201, "any role may report: {event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let to_desk = mail.wait_for(2).await;
    assert!(
        to_desk.iter().all(|m| m.to.contains("desk@provider.example")),
        "only the enabled account with an address: {to_desk:?}"
    );
    let opened = to_desk
        .iter()
        .find(|m| m.subject.contains("リストアが遅い"))
        .unwrap();
    assert_eq!(
        opened.subject,
        "[Kura] Support request from ACME-0001: リストアが遅い"
    );
    assert!(
        opened.text.contains("From: mia")
            && opened.text.contains("web-01 のリストアに3時間かかります。")
            && opened.text.contains(&format!("/support/{question_id}")),
        "{}",
        opened.text
    );
    let flagged = to_desk
        .iter()
        .find(|m| m.subject.contains("Unknown sign-ins"))
        .unwrap();
    assert!(
        flagged.subject.contains("[SECURITY EVENT]"),
        "{}",
        flagged.subject
    );

    // Users see their own; a user admin all of the tenant's; other tenants nothing.
    let listed = |session: kura_testing::user::Session| async move {
        let (status, body) = session.get("/api/v1/support-requests").await;
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().len()
    };
    assert_eq!(listed(mia.clone()).await, 1);
    assert_eq!(listed(noa.clone()).await, 1);
    assert_eq!(listed(admin.clone()).await, 2);
    assert_eq!(listed(beta_admin.clone()).await, 0);
    for (session, id) in [(&beta_admin, &question_id), (&noa, &question_id)] {
        let (status, _) = session.get(&format!("/api/v1/support-requests/{id}")).await;
        assert_eq!(status, 404);
        let (status, _) = session
            .call(
                Method::POST,
                &format!("/api/v1/support-requests/{id}/replies"),
                Some(json!({ "body": "me too" })),
            )
            .await;
        assert_eq!(status, 404);
    }

    // Operators: every tenant's, filtered; the security event flagged in the work log.
    let (status, all) = server
        .operator(Method::GET, "/api/v1/operator/support-requests?status=open", None)
        .await;
    assert_eq!((status, all.as_array().unwrap().len()), (200, 2), "{all}");
    let (_, security) = server
        .operator(
            Method::GET,
            "/api/v1/operator/support-requests?category=security-event",
            None,
        )
        .await;
    assert_eq!(security.as_array().unwrap().len(), 1, "{security}");
    let (status, flagged) = server
        .operator(
            Method::GET,
            &format!("/api/v1/operator/support-requests/{event_id}"),
            None,
        )
        .await;
    assert_eq!((status, &flagged["requester"]), (200, &json!("noa")), "{flagged}");
    assert_eq!(
        flagged["messages"][0]["body"],
        "We saw sign-ins from 203.0.113.9."
    );
    let (status, body) = server
        .operator(Method::GET, "/api/v1/operator/support-requests?status=late", None)
        .await;
    assert_eq!(status, 422, "{body}");

    // A reply by an operator (not admin): mailed to Mia in Japanese; the request is answered.
    let staff = server.set_up_operator("staff", "operator").await;
    let (status, thread) = staff
        .session
        .call(
            Method::POST,
            &format!("/api/v1/operator/support-requests/{question_id}/replies"),
            Some(json!({ "body": "原因を特定しました。\n帯域制限の設定をご確認ください。" })),
        )
        .await;
    assert_eq!(status, 200, "{thread}");
    assert_eq!(thread["status"], "answered");
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2);
    assert_eq!(thread["messages"][1]["author"], "operator:staff");
    let replies: Vec<String> = kura_service::db::events::all(&server.server.service().db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "support.reply")
        .map(|e| e.event.result)
        .collect();
    assert!(
        replies.iter().all(|r| r.ends_with("mailed to the requester")),
        "{replies:?}"
    );
    let messages = mail.wait_for(3).await;
    let to_mia = messages
        .iter()
        .find(|m| m.to.contains("mia@example.com"))
        .unwrap();
    assert!(to_mia.subject.contains("お問い合わせへの回答") && to_mia.subject.contains("リストアが遅い"));
    assert!(to_mia.text.contains("帯域制限の設定"), "{}", to_mia.text);
    // Mia follows up (open again), then the operator closes it.
    let (status, thread) = mia
        .call(
            Method::POST,
            &format!("/api/v1/support-requests/{question_id}/replies"),
            Some(json!({ "body": "ありがとうございます。確認します。" })),
        )
        .await;
    assert_eq!((status, &thread["status"]), (200, &json!("open")), "{thread}");
    let follow_up = mail.wait_for(4).await.pop().unwrap();
    assert!(
        follow_up.to.contains("desk@provider.example")
            && follow_up.text.contains("wrote again")
            && follow_up.text.contains("ありがとうございます。確認します。"),
        "{follow_up:?}"
    );
    let (status, thread) = server
        .operator(
            Method::POST,
            &format!("/api/v1/operator/support-requests/{question_id}/replies"),
            Some(json!({ "close": true })),
        )
        .await;
    assert_eq!((status, &thread["status"]), (200, &json!("closed")), "{thread}");
    assert!(thread["closed"].is_string());
    let (status, body) = server
        .operator(
            Method::POST,
            &format!("/api/v1/operator/support-requests/{question_id}/replies"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 422, "nothing to do: {body}");

    // The portal shows the conversation to Mia.
    let portal = sign_in(
        &server,
        "ja",
        acme["admin_login"].as_str().unwrap(),
        acme["admin_password"].as_str().unwrap(),
    )
    .await;
    let page = portal.get(&format!("/support/{question_id}")).await;
    assert!(
        page.says("帯域制限の設定") && page.says("サービス提供者") && page.says("完了"),
        "{}",
        page.html
    );
    let list = portal.get("/support").await;
    assert!(
        list.says("Unknown sign-ins") && list.says("セキュリティ事象の報告"),
        "{}",
        list.html
    );

    // The logs: the tenant's records each step; the operators' the flagged event and the replies.
    let events = kura_service::db::events::all(&server.server.service().db)
        .await
        .unwrap();
    let of = |chain: &str, action: &str| {
        events
            .iter()
            .filter(|e| e.chain == chain && e.event.action == action)
            .map(|e| e.event.result.clone())
            .collect::<Vec<_>>()
    };
    let tenant = acme["tenant_id"].as_str().unwrap();
    assert_eq!(of(tenant, "support.request").len(), 3, "opened, opened, replied");
    assert_eq!(of(tenant, "support.reply").len(), 2);
    assert_eq!(
        of("operators", "support.request"),
        vec!["opened: security-event (flagged)".to_owned()]
    );
    assert!(
        of("operators", "support.reply")
            .iter()
            .any(|r| r == "replied; mailed to the requester")
    );
}
