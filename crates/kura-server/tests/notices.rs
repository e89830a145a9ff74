//! Notices over the real APIs, on SQLite and PostgreSQL, with mail read from a real SMTP
//! server: an operator publishes to every tenant and to one by service code; tenant users
//! read them in their language and mark them read; an update is mailed again and unread
//! again; bad requests name their field; another tenant neither sees nor marks a notice
//! that is not for it; the portal lists them and the dashboard shows the banner; both
//! event logs record the publication.

use kura_testing::TestServer;
use kura_testing::portal::sign_in;
use kura_testing::smtp::{Delivered, MailServer};
use kura_testing::user::Session;
use reqwest::Method;
use serde_json::{Value, json};

fn with_mail(port: u16) -> impl FnOnce(&mut kura_server::ServerConfig) {
    move |config| {
        config.smtp_url = kura_server::config::SecretString::new(format!("smtp://127.0.0.1:{port}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_on_sqlite() {
    let mail = MailServer::start().await;
    notices_work(kura_testing::start(with_mail(mail.port)).await, mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_on_postgres() {
    let mail = MailServer::start().await;
    notices_work(kura_testing::start_on_postgres(with_mail(mail.port)).await, mail).await;
}

/// Adds an admin with an address; answers their password.
async fn admin_with_mail(admin: &Session, login: &str) -> String {
    let body = json!({ "login": login, "role": "admin", "email": format!("{login}@example.com") });
    let (status, user) = admin.call(Method::POST, "/api/v1/users", Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user["password"].as_str().unwrap().to_owned()
}

fn to<'a>(messages: &'a [Delivered], address: &str) -> Vec<&'a Delivered> {
    messages.iter().filter(|m| m.to.contains(address)).collect()
}

async fn notices_of(session: &Session) -> Vec<Value> {
    let (status, body) = session.get("/api/v1/notices").await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

async fn notices_work(server: TestServer, mail: MailServer) {
    let (acme, acme_admin) = server.tenant_admin("ACME-0001").await;
    let (_, beta_admin) = server.tenant_admin("BETA-0002").await;
    admin_with_mail(&acme_admin, "mia").await;
    let ben_password = admin_with_mail(&beta_admin, "ben").await;
    // Ben reads English: his own setting.
    let ben_session = server.login("ben", &ben_password).await;
    let (status, body) = ben_session
        .call(Method::PATCH, "/api/v1/me", Some(json!({ "language": "en" })))
        .await;
    assert_eq!(status, 200, "{body}");

    // Refusals name the field; nothing is published.
    for (body, field) in [
        (
            json!({ "kind": "outage", "title_ja": "t", "body_ja": "b", "tenants": "all" }),
            "kind",
        ),
        (json!({ "kind": "change", "tenants": "all" }), "title_ja"),
        (
            json!({ "kind": "change", "title_en": "t", "tenants": "all" }),
            "body_en",
        ),
        (
            json!({ "kind": "change", "title_en": "t", "body_en": "b" }),
            "tenants",
        ),
        (
            json!({ "kind": "change", "title_en": "t", "body_en": "b", "tenants": ["NOPE-9"] }),
            "NOPE-9",
        ),
        (
            json!({ "kind": "maintenance", "title_en": "t", "body_en": "b", "tenants": "all",
            "starts": "2027-01-02T03:00:00+09:00", "ends": "2027-01-01T03:00:00+09:00" }),
            "ends",
        ),
        (
            json!({ "kind": "maintenance", "title_en": "t", "body_en": "b", "tenants": "all",
            "starts": "tomorrow" }),
            "starts",
        ),
    ] {
        let (status, answer) = server
            .operator(Method::POST, "/api/v1/operator/notices", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    assert!(notices_of(&acme_admin).await.is_empty());

    // A maintenance window for every tenant, in both languages.
    let (status, maintenance) = server
        .operator(
            Method::POST,
            "/api/v1/operator/notices",
            Some(json!({
                "kind": "maintenance",
                "title_ja": "ストレージの定期メンテナンス",
                "body_ja": "ディスクを交換します。\nバックアップは待機し、終了後に再開します。",
                "title_en": "Scheduled storage maintenance",
                "body_en": "We replace disks.\nBackups wait and resume afterwards.",
                "starts": "2030-01-05T01:00:00+09:00",
                "ends": "2030-01-05T05:00:00+09:00",
                "tenants": "all",
            })),
        )
        .await;
    assert_eq!(status, 201, "{maintenance}");
    assert_eq!(
        (&maintenance["tenants"], &maintenance["revision"]),
        (&json!("all"), &json!(1))
    );
    let maintenance_id = maintenance["id"].as_str().unwrap().to_owned();
    // An incident for ACME only, by service code, in Japanese only.
    let staff = server.set_up_operator("staff", "operator").await;
    let (status, incident) = staff
        .session
        .call(
            Method::POST,
            "/api/v1/operator/notices",
            Some(json!({
                "kind": "incident",
                "title_ja": "不正アクセスの試行について",
                "body_ja": "管理画面への不正なサインインの試行を検知し、遮断しました。",
                "tenants": ["ACME-0001"],
            })),
        )
        .await;
    assert_eq!(status, 201, "an operator may publish: {incident}");
    assert_eq!(incident["tenants"], json!([acme["tenant_id"]]));
    let incident_id = incident["id"].as_str().unwrap().to_owned();

    // Tenants see what is for them, in their language, unread.
    let acme_notices = notices_of(&acme_admin).await;
    assert_eq!(acme_notices.len(), 2, "{acme_notices:?}");
    assert_eq!(acme_notices[0]["title"], "不正アクセスの試行について");
    assert_eq!(acme_notices[1]["title"], "ストレージの定期メンテナンス");
    assert!(acme_notices.iter().all(|n| n["read"] == false));
    let beta_notices = notices_of(&ben_session).await;
    assert_eq!(
        beta_notices.len(),
        1,
        "BETA sees only the notice for all: {beta_notices:?}"
    );
    assert_eq!(beta_notices[0]["title"], "Scheduled storage maintenance");
    assert_eq!(beta_notices[0]["starts"], "2030-01-04T16:00:00Z");
    // BETA cannot mark ACME's incident read: for BETA it does not exist.
    let (status, _) = beta_admin
        .call(Method::POST, &format!("/api/v1/notices/{incident_id}/read"), None)
        .await;
    assert_eq!(status, 404);

    // Mail: each tenant's admins with an address, in their language.
    let messages = mail.wait_for(3).await;
    let mia = to(&messages, "mia@example.com");
    assert_eq!(mia.len(), 2, "{messages:?}");
    assert!(
        mia.iter()
            .any(|m| m.subject.contains("メンテナンス") && m.text.contains("2030年1月5日 01:00 (JST)")),
        "{mia:?}"
    );
    assert!(mia.iter().any(|m| m.subject.contains("セキュリティインシデント")));
    let ben = to(&messages, "ben@example.com");
    assert_eq!(ben.len(), 1, "{messages:?}");
    assert!(
        ben[0]
            .subject
            .starts_with("[Kura] Maintenance: Scheduled storage maintenance")
            && ben[0].text.contains("5 Jan 2030 01:00 (JST)"),
        "{:?}",
        ben[0]
    );

    // Read, then an update: revision 2, unread again, mailed again.
    let (status, _) = acme_admin
        .call(
            Method::POST,
            &format!("/api/v1/notices/{maintenance_id}/read"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let read: Vec<bool> = notices_of(&acme_admin)
        .await
        .iter()
        .map(|n| n["read"].as_bool().unwrap())
        .collect();
    assert_eq!(read, vec![false, true]);
    let (status, updated) = server
        .operator(
            Method::PATCH,
            &format!("/api/v1/operator/notices/{maintenance_id}"),
            Some(json!({
                "kind": "maintenance",
                "title_ja": "ストレージの定期メンテナンス（時間変更）",
                "body_ja": "終了時刻を 06:00 に変更します。",
                "title_en": "Scheduled storage maintenance (new time)",
                "body_en": "It now ends at 06:00.",
                "starts": "2030-01-05T01:00:00+09:00",
                "ends": "2030-01-05T06:00:00+09:00",
            })),
        )
        .await;
    assert_eq!((status, &updated["revision"]), (200, &json!(2)), "{updated}");
    let (status, body) = server
        .operator(
            Method::PATCH,
            &format!("/api/v1/operator/notices/{maintenance_id}"),
            Some(json!({ "kind": "maintenance", "title_en": "x", "body_en": "y", "tenants": "all" })),
        )
        .await;
    assert_eq!(status, 422, "the audience cannot change: {body}");
    let acme_notices = notices_of(&acme_admin).await;
    let again = acme_notices
        .iter()
        .find(|n| n["id"] == maintenance_id.as_str())
        .unwrap();
    assert_eq!((&again["read"], &again["revision"]), (&json!(false), &json!(2)));
    let messages = mail.wait_for(5).await;
    let updates: Vec<&Delivered> = messages[3..].iter().collect();
    assert!(
        updates
            .iter()
            .any(|m| m.to.contains("mia@") && m.subject.contains("（更新）") && m.text.contains("06:00")),
        "{updates:?}"
    );

    // The portal: the notices page and the dashboard's banner.
    let browser = sign_in(
        &server,
        "ja",
        acme["admin_login"].as_str().unwrap(),
        acme["admin_password"].as_str().unwrap(),
    )
    .await;
    let dashboard = browser.get("/").await;
    assert!(
        dashboard.says("サービス提供者からのお知らせが 2 件あります"),
        "{}",
        dashboard.html
    );
    let page = browser.get("/notices").await;
    assert!(
        page.says("不正アクセスの試行について") && page.says("第2版"),
        "{}",
        page.html
    );
    let csrf = page.field("csrf_token").unwrap();
    let marked = browser
        .submit(&format!("/notices/{incident_id}/read"), &[("csrf_token", &csrf)])
        .await;
    assert!(marked.says("既読にしました"), "{}", marked.html);
    // Still in the banner: the maintenance is unread (updated) — and its window is years away.
    let dashboard = browser.get("/").await;
    assert!(dashboard.says("お知らせが 1 件あります"), "{}", dashboard.html);

    // The operator work log and each tenant's log record the publication.
    let events = kura_service::db::events::all(&server.server.service().db)
        .await
        .unwrap();
    let published = |chain: &str| {
        events
            .iter()
            .filter(|e| e.chain == chain && e.event.action.starts_with("notice."))
            .count()
    };
    assert_eq!(published("operators"), 3, "publish, publish, update");
    assert_eq!(published(acme["tenant_id"].as_str().unwrap()), 3, "{events:#?}");
    let (status, listed) = server
        .operator(Method::GET, "/api/v1/operator/notices", None)
        .await;
    assert_eq!((status, listed.as_array().unwrap().len()), (200, 2));
}
