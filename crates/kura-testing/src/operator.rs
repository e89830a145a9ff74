//! Operator accounts over the real management API: created with the bootstrap token,
//! through the first sign-in (own password, TOTP enrolment), signed in to the console.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::TestServer;
use crate::user::{Session, sign_in_at};

/// The console session cookie.
pub const CONSOLE_COOKIE: &str = "kura_console_session";

/// An operator who finished the first sign-in: the session, the password and the TOTP
/// secret (to sign in again).
pub struct SignedInOperator {
    pub session: Session,
    pub login: String,
    pub password: String,
    pub totp_secret: String,
}

impl TestServer {
    /// Creates an operator account with the bootstrap token; answers the creation
    /// (with its one-time `password`).
    pub async fn create_operator(&self, login: &str, role: &str) -> Value {
        self.create_operator_with(json!({ "login": login, "role": role }))
            .await
    }

    /// Creates an operator account from a whole request (`login`, `role`, `email`,
    /// `language`).
    pub async fn create_operator_with(&self, account: Value) -> Value {
        let (status, body) = self
            .operator(Method::POST, "/api/v1/operator/operators", Some(account))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// `POST /api/v1/operator/login`: status, body and the console session.
    pub async fn operator_sign_in(&self, body: Value) -> (u16, Value, Option<Session>) {
        sign_in_at(
            &self.http,
            &self.management,
            "/api/v1/operator/login",
            CONSOLE_COOKIE,
            body,
        )
        .await
    }

    /// The current TOTP code of `secret` by the server's clock, one step on from the
    /// last code used (codes work once).
    pub fn next_totp_code(&self, secret: &str) -> String {
        let clock = self.server.state().clock();
        clock.advance(std::time::Duration::from_millis(
            kura_server::totp::STEP_MS as u64,
        ));
        kura_server::totp::code_at(secret, clock.now_ms()).unwrap()
    }

    /// Creates an operator and takes them through the first sign-in: a password of their
    /// own, then TOTP enrolment.
    pub async fn set_up_operator(&self, login: &str, role: &str) -> SignedInOperator {
        self.set_up_operator_with(json!({ "login": login, "role": role }))
            .await
    }

    /// [`Self::set_up_operator`] for an account created from a whole request.
    pub async fn set_up_operator_with(&self, account: Value) -> SignedInOperator {
        let login = account["login"]
            .as_str()
            .expect("the request names a login")
            .to_owned();
        let login = login.as_str();
        let created = self.create_operator_with(account).await;
        let one_time = created["password"].as_str().unwrap().to_owned();
        let (status, body, session) = self
            .operator_sign_in(json!({ "login": login, "password": one_time }))
            .await;
        assert_eq!((status, &body["setup_required"]), (200, &json!(true)), "{body}");
        let session = session.unwrap();
        let password = "a passphrase of our operators 42".to_owned();
        let (status, body) = session
            .call(
                Method::POST,
                "/api/v1/operator/account/password",
                Some(json!({ "current_password": one_time, "new_password": password })),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        let (status, enrolment) = session
            .call(Method::POST, "/api/v1/operator/account/totp/enroll", None)
            .await;
        assert_eq!(status, 200, "{enrolment}");
        let secret = enrolment["secret"].as_str().unwrap().to_owned();
        let code = self.next_totp_code(&secret);
        let (status, body) = session
            .call(
                Method::POST,
                "/api/v1/operator/account/totp/confirm",
                Some(json!({ "code": code })),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        SignedInOperator {
            session,
            login: login.to_owned(),
            password,
            totp_secret: secret,
        }
    }
}
