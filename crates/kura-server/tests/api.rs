//! The service over real HTTPS: listeners, operator API, agent registration and the
//! agent extractor, error bodies.

use kura_testing::{error_of, parts, start};
use reqwest::Method;
use serde_json::json;

/// Each listener serves its own OpenAPI document, and only its own.
#[tokio::test]
async fn each_listener_serves_its_openapi_document() {
    let test = start(|_| {}).await;
    let get = |url: String| {
        let http = test.http.clone();
        async move { parts(http.get(url).send().await.unwrap()).await }
    };
    let (status, customer) = get(format!("{}/api/v1/openapi.json", test.customer)).await;
    assert_eq!(status, 200);
    assert_eq!(customer["openapi"], "3.1.0");
    assert_eq!(
        customer["paths"]["/api/v1/login"]["post"]["x-kura-access"],
        "open"
    );
    assert!(
        customer["paths"]["/api/v1/operator/tenants"].is_null(),
        "{customer}"
    );
    let (status, management) = get(format!("{}/api/v1/operator/openapi.json", test.management)).await;
    assert_eq!(status, 200);
    assert_eq!(
        management["paths"]["/api/v1/operator/tenants"]["post"]["x-kura-access"],
        "manage-tenants"
    );
    assert!(management["paths"]["/api/v1/login"].is_null(), "{management}");
    let (status, _) = get(format!("{}/api/v1/operator/openapi.json", test.customer)).await;
    assert_eq!(status, 404);
    let (status, _) = get(format!("{}/api/v1/openapi.json", test.management)).await;
    assert_eq!(status, 404);
    test.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn operator_routes_and_metrics_exist_only_on_the_management_listener() {
    let test = start(|_| {}).await;
    for path in ["/api/v1/operator/tenants", "/metrics", "/healthz"] {
        let response = test
            .http
            .get(format!("{}{path}", test.customer))
            .bearer_auth(&test.operator_token)
            .send()
            .await
            .unwrap();
        let (status, body) = parts(response).await;
        assert_eq!(status, 404, "{path} on the customer listener");
        // Outside `/api/` the customer listener answers with the portal's page.
        if path.starts_with("/api/") {
            assert_eq!(error_of(&body), format!("no such API route: {path}"));
        }
    }
    let (status, body) = test
        .operator(Method::POST, "/api/v1/operator/tenants", Some(json!({})))
        .await;
    assert_eq!(
        status, 422,
        "the same route answers on the management listener: {body}"
    );

    let health = test
        .http
        .get(format!("{}/healthz", test.management))
        .send()
        .await
        .unwrap();
    let (status, body) = parts(health).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");
    assert_eq!(body["database"], "sqlite");
    assert!(body["storage"].as_str().unwrap().ends_with("vaults"), "{body}");
    // This machine's kernel says either way; what it says is reported, and as a metric.
    let synced = body["clock_synchronized"].as_bool().expect("Linux tells");

    let metrics = test
        .http
        .get(format!("{}/metrics", test.management))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("kura_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
    let gauge = format!("kura_clock_synchronized {}", u8::from(synced));
    assert!(text.contains(&gauge), "{gauge} in {text}");

    let agent_route_on_management = test
        .http
        .post(format!("{}/api/v1/agents/register", test.management))
        .json(&json!({"token": "x", "name": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(agent_route_on_management.status(), 404);
    test.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn both_listeners_speak_http2() {
    let test = start(|_| {}).await;
    for base in [&test.customer, &test.management] {
        let response = test.http.get(format!("{base}/nowhere")).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        // Every answer forbids caching (many carry secrets) and keeps browsers on TLS.
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("cache-control").as_deref(), Some("no-store"));
        assert!(header("strict-transport-security").is_some_and(|v| v.starts_with("max-age=")));
    }
}

#[tokio::test]
async fn operator_api_requires_a_valid_operator_token() {
    let test = start(|_| {}).await;
    let url = format!("{}/api/v1/operator/tenants", test.management);
    let (status, body) = parts(test.http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(error_of(&body).starts_with("missing credentials"), "{body}");
    let (status, body) = parts(
        test.http
            .get(&url)
            .bearer_auth("kura_op_wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body), "invalid or revoked operator token");
}

#[tokio::test]
async fn tenants_are_created_listed_shown_updated_and_suspended() {
    let test = start(|config| config.default_region = "osaka-2".to_owned()).await;
    let created = test
        .create_tenant(
            "ACME-0001",
            3,
            json!({"encryption_required": true, "immutable_days": 14, "agent_networks": ["127.0.0.0/8"]}),
        )
        .await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    assert_eq!(created["service_code"], "ACME-0001");
    assert_eq!(created["admin_login"], "acme-0001-admin");
    assert_eq!(created["admin_password"].as_str().unwrap().len(), 20);
    assert!(
        created["registration_token"]
            .as_str()
            .unwrap()
            .starts_with("kura_reg_")
    );
    let tenant = &created["tenant"];
    assert_eq!(tenant["region"], "osaka-2");
    assert_eq!(tenant["time_zone"], "Asia/Tokyo");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["encryption_required"], true);
    assert_eq!(tenant["immutable_days"], 14);
    assert_eq!(tenant["agent_networks"], json!(["127.0.0.0/8"]));
    assert_eq!(tenant["quota_bytes"], 1u64 << 40);

    let (status, list) = test.operator(Method::GET, "/api/v1/operator/tenants", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], tenant_id);

    let path = format!("/api/v1/operator/tenants/{tenant_id}");
    let (status, shown) = test.operator(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["service_code"], "ACME-0001");
    assert_eq!(shown["users"][0]["login"], "acme-0001-admin");
    assert_eq!(shown["users"][0]["role"], "admin");
    assert!(shown["users"][0].get("password_hash").is_none());
    assert_eq!(shown["machines"], json!([]));

    let (status, updated) = test
        .operator(
            Method::PATCH,
            &path,
            Some(json!({"quota_bytes": 2u64 << 40, "name": "ACME Holdings", "agent_networks": []})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["quota_bytes"], 2u64 << 40);
    assert_eq!(updated["name"], "ACME Holdings");
    assert_eq!(updated["agent_networks"], json!([]));
    assert_eq!(updated["max_machines"], 3, "fields not given are kept");

    let (status, suspended) = test
        .operator(Method::POST, &format!("{path}/suspend"), None)
        .await;
    assert_eq!((status, suspended["status"].as_str()), (200, Some("suspended")));
    let (status, body) = test
        .operator(Method::POST, &format!("{path}/registration-tokens"), None)
        .await;
    assert_eq!(status, 403, "no tokens for a suspended tenant: {body}");
    let (status, resumed) = test.operator(Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!((status, resumed["status"].as_str()), (200, Some("active")));

    let unknown = "/api/v1/operator/tenants/00000000000000000000000000000000";
    let (status, body) = test.operator(Method::GET, unknown, None).await;
    assert_eq!(status, 404);
    assert!(error_of(&body).starts_with("no tenant with id"), "{body}");
    let (status, _) = test
        .operator(Method::GET, "/api/v1/operator/tenants/not-an-id", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn service_codes_are_validated_and_unique() {
    let test = start(|_| {}).await;
    test.create_tenant("ACME-0001", 1, json!({})).await;
    let body = json!({"service_code": "ACME-0001", "name": "Again", "quota_bytes": 1000, "max_machines": 1});
    let (status, answer) = test
        .operator(Method::POST, "/api/v1/operator/tenants", Some(body))
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_of(&answer), "service code ACME-0001 is already in use");

    for bad in ["acme-1", "AB", "-ACME", "ACME_0001"] {
        let body = json!({"service_code": bad, "name": "x", "quota_bytes": 1000, "max_machines": 1});
        let (status, answer) = test
            .operator(Method::POST, "/api/v1/operator/tenants", Some(body))
            .await;
        assert_eq!(status, 422, "{bad}");
        assert!(
            error_of(&answer).starts_with(&format!("invalid service code \"{bad}\"")),
            "{answer}"
        );
    }
    let body = json!({"service_code": "BETA-0002", "name": "x", "quota_bytes": 1000, "max_machines": 1,
                      "agent_networks": ["10.0.0.0/40"]});
    let (status, answer) = test
        .operator(Method::POST, "/api/v1/operator/tenants", Some(body))
        .await;
    assert_eq!(status, 422);
    assert!(
        error_of(&answer).starts_with("invalid agent network \"10.0.0.0/40\""),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_request_bodies_get_precise_json_errors() {
    let test = start(|config| config.max_body = 4096).await;
    let url = format!("{}/api/v1/operator/tenants", test.management);
    let send = |body: String, content_type: &'static str| {
        test.http
            .post(&url)
            .bearer_auth(&test.operator_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let (status, body) = parts(
        send("{\"service_code\": ".into(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).starts_with("malformed JSON: "), "{body}");
    assert!(
        error_of(&body).contains("EOF while parsing a value at line 1 column 17"),
        "{body}"
    );

    let missing = json!({"service_code": "ACME-0001", "quota_bytes": 1, "max_machines": 1}).to_string();
    let (status, body) = parts(send(missing, "application/json").await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(
        error_of(&body).starts_with("invalid request body: missing field `name`"),
        "{body}"
    );

    let mistyped =
        json!({"service_code": "ACME-0001", "name": "x", "quota_bytes": "lots", "max_machines": 1})
            .to_string();
    let (status, body) = parts(send(mistyped, "application/json").await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(
        error_of(&body).contains("quota_bytes"),
        "the field is named: {body}"
    );

    let unknown = json!({"service_code": "ACME-0001", "name": "x", "quota_bytes": 1, "max_machines": 1,
                         "colour": "blue"})
    .to_string();
    let (status, body) = parts(send(unknown, "application/json").await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(error_of(&body).contains("unknown field `colour`"), "{body}");

    let oversized = json!({"service_code": "ACME-0001", "name": "x".repeat(5000), "quota_bytes": 1,
                           "max_machines": 1})
    .to_string();
    let (status, body) = parts(send(oversized, "application/json").await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(
        error_of(&body),
        "request body is too large: the limit is 4096 bytes"
    );

    let (status, body) = parts(send("{}".into(), "text/plain").await.unwrap()).await;
    assert_eq!(status, 415);
    assert!(
        error_of(&body).contains("Content-Type: application/json"),
        "{body}"
    );

    let wrong_method = test.http.delete(&url).send().await.unwrap();
    let (status, body) = parts(wrong_method).await;
    assert_eq!(status, 405);
    assert!(!error_of(&body).is_empty());
}

#[tokio::test]
async fn registration_tokens_are_one_time_and_credentials_authenticate_agents() {
    let test = start(|_| {}).await;
    let created = test.create_tenant("ACME-0001", 5, json!({})).await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let token = created["registration_token"].as_str().unwrap();

    let (status, registered) = test.register(token, "web-01").await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["tenant_id"], tenant_id);
    let credential = registered["credential"].as_str().unwrap();
    assert!(credential.starts_with("kura_agent_"));

    let (status, me) = test.whoami(credential).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"tenant_id": tenant_id, "machine_id": registered["machine_id"]})
    );

    let (status, body) = test.register(token, "web-02").await;
    assert_eq!(status, 401);
    assert_eq!(
        error_of(&body),
        "this registration token has already been used; each token registers one machine"
    );
    let (status, body) = test.register("kura_reg_made_up", "web-02").await;
    assert_eq!(status, 401);
    assert!(
        error_of(&body).starts_with("unknown registration token"),
        "{body}"
    );
    let (status, body) = test.whoami("kura_agent_made_up").await;
    assert_eq!((status, error_of(&body)), (401, "unknown agent credential"));
    let no_credential = test
        .http
        .get(format!("{}/api/v1/agent/whoami", test.customer))
        .send()
        .await
        .unwrap();
    assert_eq!(no_credential.status(), 401);
    assert_eq!(no_credential.headers()["www-authenticate"], "Bearer");

    let machine_id = registered["machine_id"].as_str().unwrap();
    let (status, machines) = test
        .operator(
            Method::GET,
            &format!("/api/v1/operator/tenants/{tenant_id}/machines"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(machines[0]["name"], "web-01");
    let revoke = format!("/api/v1/operator/tenants/{tenant_id}/machines/{machine_id}/revoke");
    let (status, _) = test.operator(Method::POST, &revoke, None).await;
    assert_eq!(status, 204);
    let (status, body) = test.whoami(credential).await;
    assert_eq!(status, 401);
    assert_eq!(
        error_of(&body),
        "this agent's credential was revoked; register the machine again"
    );
    let (status, _) = test.operator(Method::POST, &revoke, None).await;
    assert_eq!(status, 404, "already revoked");
}

#[tokio::test]
async fn registration_tokens_expire() {
    let test = start(|config| config.registration_token_ttl = std::time::Duration::from_secs(1)).await;
    let created = test.create_tenant("ACME-0001", 5, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = test
        .register(created["registration_token"].as_str().unwrap(), "web-01")
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        error_of(&body),
        "this registration token has expired; ask your tenant admin for a new one"
    );
}

#[tokio::test]
async fn the_machine_quota_is_enforced() {
    let test = start(|_| {}).await;
    let created = test.create_tenant("ACME-0001", 1, json!({})).await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let (status, _) = test
        .register(created["registration_token"].as_str().unwrap(), "web-01")
        .await;
    assert_eq!(status, 201);
    let second = test.new_registration_token(tenant_id).await;
    let (status, body) = test.register(&second, "web-02").await;
    assert_eq!(status, 409);
    assert_eq!(
        error_of(&body),
        "the tenant's machine limit is reached (1 machines); revoke a machine or ask the provider for a larger plan"
    );
    let (status, _) = test
        .operator(
            Method::PATCH,
            &format!("/api/v1/operator/tenants/{tenant_id}"),
            Some(json!({"max_machines": 2})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = test.register(&second, "web-02").await;
    assert_eq!(status, 201, "the refused token is still valid: {body}");
}

#[tokio::test]
async fn suspended_tenants_are_locked_out() {
    let test = start(|_| {}).await;
    let created = test.create_tenant("ACME-0001", 5, json!({})).await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let (_, registered) = test
        .register(created["registration_token"].as_str().unwrap(), "web-01")
        .await;
    let credential = registered["credential"].as_str().unwrap();
    let spare = test.new_registration_token(tenant_id).await;

    let path = format!("/api/v1/operator/tenants/{tenant_id}");
    test.operator(Method::POST, &format!("{path}/suspend"), None)
        .await;
    let (status, body) = test.whoami(credential).await;
    assert_eq!(status, 403);
    assert_eq!(
        error_of(&body),
        "this tenant is suspended; contact your service provider"
    );
    let (status, body) = test.register(&spare, "web-02").await;
    assert_eq!(
        (status, error_of(&body)),
        (403, "this tenant is suspended; contact your service provider")
    );

    test.operator(Method::POST, &format!("{path}/resume"), None).await;
    let (status, _) = test.whoami(credential).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn agents_outside_the_tenants_networks_are_refused() {
    let test = start(|_| {}).await;
    let created = test
        .create_tenant(
            "ACME-0001",
            5,
            json!({"agent_networks": ["10.0.0.0/8", "2001:db8::/32"]}),
        )
        .await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let token = created["registration_token"].as_str().unwrap();
    let (status, body) = test.register(token, "web-01").await;
    assert_eq!(status, 403);
    assert_eq!(
        error_of(&body),
        "this tenant accepts agents only from its configured networks, and 127.0.0.1 is not in them"
    );

    let path = format!("/api/v1/operator/tenants/{tenant_id}");
    let allow_loopback = json!({"agent_networks": ["10.0.0.0/8", "127.0.0.0/8"]});
    test.operator(Method::PATCH, &path, Some(allow_loopback)).await;
    let (status, registered) = test.register(token, "web-01").await;
    assert_eq!(status, 201, "the refused token was not used up: {registered}");
    let credential = registered["credential"].as_str().unwrap();
    assert_eq!(test.whoami(credential).await.0, 200);

    test.operator(
        Method::PATCH,
        &path,
        Some(json!({"agent_networks": ["10.0.0.0/8"]})),
    )
    .await;
    let (status, body) = test.whoami(credential).await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("127.0.0.1 is not in them"));
}

#[tokio::test]
async fn one_tenants_credential_sees_only_its_own_tenant() {
    let test = start(|_| {}).await;
    let acme = test.create_tenant("ACME-0001", 5, json!({})).await;
    let beta = test.create_tenant("BETA-0002", 5, json!({})).await;
    let (_, acme_agent) = test
        .register(acme["registration_token"].as_str().unwrap(), "a")
        .await;
    let (_, beta_agent) = test
        .register(beta["registration_token"].as_str().unwrap(), "b")
        .await;
    let (_, me) = test.whoami(acme_agent["credential"].as_str().unwrap()).await;
    assert_eq!(me["tenant_id"], acme["tenant_id"]);
    let (_, me) = test.whoami(beta_agent["credential"].as_str().unwrap()).await;
    assert_eq!(me["tenant_id"], beta["tenant_id"]);

    // An operator revoking with the wrong tenant in the path changes nothing.
    let wrong = format!(
        "/api/v1/operator/tenants/{}/machines/{}/revoke",
        acme["tenant_id"].as_str().unwrap(),
        beta_agent["machine_id"].as_str().unwrap()
    );
    let (status, _) = test.operator(Method::POST, &wrong, None).await;
    assert_eq!(status, 404);
    assert_eq!(
        test.whoami(beta_agent["credential"].as_str().unwrap()).await.0,
        200
    );
}
