//! Protection plans through the JSON API and the portal's `/plans`, on SQLite and
//! PostgreSQL: a plan is created for the tenant's machines, shown with its next run in
//! the tenant's time zone, changed, refused when any field is wrong (naming the field,
//! changing nothing), out of reach of another tenant and of roles that only read, and
//! every change is in the event log.

use kura_testing::TestServer;
use kura_testing::portal::sign_in;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_managed_through_the_api_on_sqlite() {
    plans_are_managed_through_the_api(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_managed_through_the_api_on_postgres() {
    plans_are_managed_through_the_api(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn plans_are_managed_through_the_api(server: TestServer) {
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let (status, web) = server
        .register(created["registration_token"].as_str().unwrap(), "web-01")
        .await;
    assert_eq!(status, 201, "{web}");
    let web_credential = web["credential"].as_str().unwrap().to_owned();
    let web = web["machine_id"].as_str().unwrap().to_owned();
    let token = server.new_registration_token(tenant_id).await;
    let (_, db) = server.register(&token, "db-01").await;
    let db_credential = db["credential"].as_str().unwrap().to_owned();
    let db = db["machine_id"].as_str().unwrap().to_owned();

    // Created for one machine, with its next run in Tokyo time (02:00 JST = 17:00 UTC).
    let body = json!({
        "name": "nightly web",
        "kind": "files",
        "sources": ["/srv/www", "/etc"],
        "excludes": ["*.tmp"],
        "schedule": "0 2 * * *",
        "retention": { "keep_daily": 7, "keep_weekly": 4 },
        "bandwidth_limit": "20MiB/s",
        "machines": [web],
    });
    let (status, plan) = admin
        .call(Method::POST, "/api/v1/plans", Some(body.clone()))
        .await;
    assert_eq!(status, 201, "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    assert_eq!(plan["sources"], json!(["/srv/www", "/etc"]));
    assert_eq!(plan["retention"]["keep_daily"], 7);
    assert_eq!(plan["retention"]["keep_last"], 0);
    assert_eq!(plan["bandwidth_limit"], "20MiB/s");
    assert_eq!(plan["enabled"], true);
    assert_eq!(plan["machines"], json!([web]));
    assert!(
        plan["next_run"].as_str().unwrap().ends_with("T17:00:00Z"),
        "{plan}"
    );
    // Each machine's agent fetches the plans it runs, with the zone of their schedules.
    let (status, fetched) = server.agent_get(&web_credential, "/api/v1/agent/plans").await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["time_zone"], "Asia/Tokyo");
    assert_eq!(fetched["plans"][0]["id"], id.as_str());
    assert_eq!(fetched["plans"][0]["bandwidth_limit"], 20 << 20);
    assert_eq!(
        server.agent_get(&db_credential, "/api/v1/agent/plans").await.1["plans"],
        json!([])
    );
    let (status, listed) = admin.get("/api/v1/plans").await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        admin.get(&format!("/api/v1/plans/{id}")).await.1["name"],
        "nightly web"
    );

    // PATCH replaces what it gives; null removes the limit.
    let (status, changed) = admin
        .call(
            Method::PATCH,
            &format!("/api/v1/plans/{id}"),
            Some(json!({ "schedule": "30 1 * * 1-5", "bandwidth_limit": null, "machines": [web, db] })),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["schedule"], "30 1 * * 1-5");
    assert!(changed.get("bandwidth_limit").is_none(), "{changed}");
    assert_eq!(changed["machines"].as_array().unwrap().len(), 2);
    let fetched = server.agent_get(&db_credential, "/api/v1/agent/plans").await.1;
    assert_eq!(fetched["plans"][0]["schedule"], "30 1 * * 1-5", "{fetched}");
    assert_eq!(changed["sources"], json!(["/srv/www", "/etc"]));

    // Bad input: refused naming the field, nothing stored.
    let mut bad_cases = vec![
        (json!({ "schedule": "every night" }), 422, "schedule"),
        (json!({ "schedule": "0 2 * * * *" }), 422, "schedule"),
        (json!({ "schedule": "61 2 * * *" }), 422, "schedule"),
        (json!({ "sources": [] }), 422, "sources"),
        (json!({ "sources": ["relative/path"] }), 422, "sources"),
        (json!({ "kind": "image" }), 422, "sources"),
        (json!({ "pre_hook": "systemctl stop db" }), 422, "pre_hook"),
        (json!({ "bandwidth_limit": "fast" }), 422, "bandwidth_limit"),
        (json!({ "kind": "tape" }), 422, "kind"),
        (
            json!({ "machines": ["00000000000000000000000000000000"] }),
            404,
            "machines",
        ),
        (json!({ "machines": ["not-an-id"] }), 404, "machines"),
        (json!({ "name": "" }), 422, "name"),
        (json!({ "retention": { "keep_forever": 1 } }), 422, "keep_forever"),
    ];
    let (other, _) = server.tenant_admin("BETA-0002").await;
    let (_, beta_machine) = server
        .register(other["registration_token"].as_str().unwrap(), "beta-01")
        .await;
    let beta_machine = beta_machine["machine_id"].as_str().unwrap().to_owned();
    bad_cases.push((json!({ "machines": [beta_machine] }), 404, "machines"));
    for (patch, want, field) in bad_cases {
        let (status, answer) = admin
            .call(Method::PATCH, &format!("/api/v1/plans/{id}"), Some(patch.clone()))
            .await;
        assert_eq!(status, want, "{patch}: {answer}");
        assert!(answer.to_string().contains(field), "{patch}: {answer}");
    }
    let mut second = body.clone();
    second["schedule"] = json!("not cron");
    assert_eq!(
        admin.call(Method::POST, "/api/v1/plans", Some(second)).await.0,
        422
    );
    let (status, answer) = admin
        .call(Method::POST, "/api/v1/plans", Some(body.clone()))
        .await;
    assert_eq!(status, 409, "the name is taken: {answer}");
    let (_, unchanged) = admin.get(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(unchanged["schedule"], "30 1 * * 1-5");
    assert_eq!(admin.get("/api/v1/plans").await.1.as_array().unwrap().len(), 1);

    // An image plan: one device, hooks allowed; disabled plans have no next run.
    let (status, image) = admin
        .call(
            Method::POST,
            "/api/v1/plans",
            Some(json!({
                "name": "db disk",
                "kind": "image",
                "sources": ["/dev/vdb"],
                "schedule": "0 3 * * 0",
                "pre_hook": "systemctl stop postgresql",
                "post_hook": "systemctl start postgresql",
                "enabled": false,
                "machines": [db],
            })),
        )
        .await;
    assert_eq!(status, 201, "{image}");
    assert!(image.get("next_run").is_none(), "{image}");

    // Another tenant sees none of it and reaches none of it.
    let beta = server
        .login(
            other["admin_login"].as_str().unwrap(),
            other["admin_password"].as_str().unwrap(),
        )
        .await;
    assert_eq!(beta.get("/api/v1/plans").await.1, json!([]));
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({ "name": "taken over" }))),
        (Method::DELETE, None),
    ] {
        let (status, answer) = beta
            .call(method.clone(), &format!("/api/v1/plans/{id}"), body)
            .await;
        assert_eq!(status, 404, "{method}: {answer}");
        assert!(!answer.to_string().contains("nightly"), "{answer}");
    }
    let mut foreign = body.clone();
    foreign["name"] = json!("beta's plan");
    let (status, _) = beta.call(Method::POST, "/api/v1/plans", Some(foreign)).await;
    assert_eq!(status, 404, "A's machine is unknown to B");

    // An auditor reads plans and changes none.
    let (_, password) = server.add_user(&admin, "audrey", "auditor").await;
    let auditor = server.login("audrey", &password).await;
    assert_eq!(auditor.get("/api/v1/plans").await.1.as_array().unwrap().len(), 2);
    let (status, answer) = auditor
        .call(Method::DELETE, &format!("/api/v1/plans/{id}"), None)
        .await;
    assert_eq!(status, 403, "{answer}");

    // Deleted; each change is in the event log.
    let (status, _) = admin
        .call(Method::DELETE, &format!("/api/v1/plans/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(admin.get(&format!("/api/v1/plans/{id}")).await.0, 404);
    let (_, events) = admin.get("/api/v1/events").await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["plan.create", "plan.update", "plan.delete"], "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_managed_in_the_portal() {
    let server = kura_testing::start(|_| ()).await;
    let (created, _) = server.tenant_admin("ACME-0001").await;
    let (_, web) = server
        .register(created["registration_token"].as_str().unwrap(), "web-01")
        .await;
    let web = web["machine_id"].as_str().unwrap().to_owned();
    let browser = sign_in(
        &server,
        "ja",
        created["admin_login"].as_str().unwrap(),
        created["admin_password"].as_str().unwrap(),
    )
    .await;
    let csrf = browser.cookie("kura_csrf").unwrap();
    let page = browser.get("/plans").await;
    assert!(
        page.says("保護計画はまだありません") && page.says("web-01"),
        "{}",
        page.html
    );

    // A wrong schedule: the form comes back with what was typed and the reason.
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("name", "毎晩のWeb"),
        ("kind", "files"),
        ("sources", "/srv/www\r\n/etc\r\n"),
        ("excludes", "*.tmp"),
        ("schedule", "every night"),
        ("keep_daily", "7"),
        ("keep_weekly", "4"),
        ("bandwidth_limit", "20MiB/s"),
        ("machines", web.as_str()),
        ("enabled", "on"),
    ];
    let page = browser.post("/plans", &fields).await;
    assert_eq!(page.status, 422, "{}", page.html);
    assert!(page.says("schedule") && page.says("毎晩のWeb"), "{}", page.html);
    assert!(browser.get("/plans").await.says("保護計画はまだありません"));

    // Right: back to the list, which says so once and shows the next run in JST.
    fields[5] = ("schedule", "0 2 * * *");
    let page = browser.submit("/plans", &fields).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.says("保護計画「毎晩のWeb」を追加しました。")
            && page.says("0 2 * * *")
            && page.says("02:00")
            && page.says("毎日 7, 毎週 4")
            && page.says("web-01"),
        "{}",
        page.html
    );
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let (_, plans) = admin.get("/api/v1/plans").await;
    let plan: &Value = &plans[0];
    assert_eq!(plan["sources"], json!(["/srv/www", "/etc"]));
    assert_eq!(plan["machines"], json!([web]));
    let id = plan["id"].as_str().unwrap();

    // Changed from its own page: unticked "enabled" disables it.
    let page = browser.get(&format!("/plans/{id}")).await;
    assert!(page.says("毎晩のWeb の変更"), "{}", page.html);
    fields.retain(|(name, _)| *name != "enabled");
    let page = browser.submit(&format!("/plans/{id}"), &fields).await;
    assert!(page.says("を変更しました") && page.says("無効"), "{}", page.html);
    assert_eq!(
        admin.get(&format!("/api/v1/plans/{id}")).await.1["enabled"],
        false
    );

    // Deleted.
    let page = browser
        .submit(&format!("/plans/{id}/delete"), &[("csrf_token", &csrf)])
        .await;
    assert!(page.says("保護計画を削除しました"), "{}", page.html);
    assert_eq!(admin.get("/api/v1/plans").await.1, json!([]));
}
