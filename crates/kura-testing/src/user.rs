//! A tenant user signed in over the real API: the session cookie and CSRF token from
//! `POST /api/v1/login`, sent the way a browser (cookie) and the portal (header) would.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{TestServer, parts};

/// A signed-in portal session.
#[derive(Clone)]
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    /// `kura_session` (portal) or `kura_console_session` (console).
    pub cookie_name: &'static str,
    pub cookie: String,
    pub csrf: String,
    /// The login answer.
    pub info: Value,
    /// The full `Set-Cookie` header, to check its attributes.
    pub set_cookie: String,
}

impl Session {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", format!("{}={}", self.cookie_name, self.cookie))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        parts(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }
}

/// `POST /api/v1/login`: status and body, with the session when it succeeded.
pub async fn try_login(
    http: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
) -> (u16, Value, Option<Session>) {
    try_login_with(http, base, json!({ "login": login, "password": password })).await
}

/// `POST /api/v1/login` with any body (e.g. with `totp`).
pub async fn try_login_with(
    http: &reqwest::Client,
    base: &str,
    body: Value,
) -> (u16, Value, Option<Session>) {
    sign_in_at(http, base, "/api/v1/login", "kura_session", body).await
}

/// A sign-in route answering a session cookie named `cookie_name` (the portal's or the
/// console's): status and body, with the session when it succeeded.
pub async fn sign_in_at(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    cookie_name: &'static str,
    body: Value,
) -> (u16, Value, Option<Session>) {
    let response = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|value| value.to_str().unwrap().to_owned());
    let (status, body) = parts(response).await;
    let session = set_cookie.filter(|_| status == 200).map(|set_cookie| {
        let cookie = set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix(&format!("{cookie_name}=")))
            .unwrap()
            .to_owned();
        Session {
            http: http.clone(),
            base: base.to_owned(),
            cookie_name,
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            info: body.clone(),
            set_cookie,
        }
    });
    (status, body, session)
}

/// An API token user: `Authorization: Bearer`.
pub async fn with_token(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method, format!("{}{path}", server.customer))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    parts(request.send().await.unwrap()).await
}

impl TestServer {
    /// Signs in or fails the test.
    pub async fn login(&self, login: &str, password: &str) -> Session {
        let (status, body, session) = try_login(&self.http, &self.customer, login, password).await;
        assert_eq!(status, 200, "sign-in of {login} failed: {body}");
        session.unwrap()
    }

    /// A tenant with its first admin signed in.
    pub async fn tenant_admin(&self, code: &str) -> (Value, Session) {
        let created = self.create_tenant(code, 3, json!({})).await;
        let admin = self
            .login(
                created["admin_login"].as_str().unwrap(),
                created["admin_password"].as_str().unwrap(),
            )
            .await;
        (created, admin)
    }

    /// Creates `login` (an operator) with the address `login@example.com`, where reset
    /// links go; returns the user with the password generated for it.
    pub async fn add_user_with_mail(&self, admin: &Session, login: &str) -> Value {
        let body = json!({ "login": login, "role": "operator", "email": format!("{login}@example.com") });
        let (status, user) = admin.call(Method::POST, "/api/v1/users", Some(body)).await;
        assert_eq!(status, 201, "{user}");
        user
    }

    /// Creates a user with `role` through the admin's session; returns the user and a
    /// password for them.
    pub async fn add_user(&self, admin: &Session, login: &str, role: &str) -> (Value, String) {
        let password = format!("{login} has a long passphrase");
        let password = password.replace(login, "someone");
        let (status, user) = admin
            .call(
                Method::POST,
                "/api/v1/users",
                Some(json!({ "login": login, "role": role, "password": password })),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        (user, password)
    }
}
