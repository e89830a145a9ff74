//! [`ManagementClient`]: the operator API over HTTPS, as used by `kura-server tenant ...`,
//! `kura-server jobs ...` and `kura-server deletion ...`.

use std::path::Path;

use kura_api::jobs::{JobView, RunJob};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::notices::OperatorNoticeView;
use crate::api::operators::{CreatedOperatorToken, OperatorTokenView};
use crate::api::types::{
    ApprovalView, ChainCheck, CreateTenantRequest, CreatedTenant, DeletionSummaryView, EventView,
    MachineView, MeterRow, RegistrationTokenView, SignedDeletionRecord, TenantDetail, TenantView,
    TerminateRequest, TerminatedTenant, UpdateTenantRequest,
};

fn usage_path(from: Option<&str>, to: Option<&str>, format: &str) -> String {
    export_path("/api/v1/operator/usage", format, &[("from", from), ("to", to)])
}

/// `PATH?format=FORMAT&…` with the filters that are given.
fn export_path(path: &str, format: &str, filters: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("format", format);
    for (name, value) in filters {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    format!("{path}?{}", query.finish())
}

/// Which rows of the operator work log to export: RFC 3339 times, an action, an actor.
#[derive(Debug, Clone, Default)]
pub struct WorkLogFilter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
}

impl WorkLogFilter {
    fn path(&self, format: &str) -> String {
        export_path(
            "/api/v1/operator/events",
            format,
            &[
                ("from", self.from.as_deref()),
                ("to", self.to.as_deref()),
                ("action", self.action.as_deref()),
                ("actor", self.actor.as_deref()),
            ],
        )
    }
}

/// What a call under the two-person rule answered.
#[derive(Debug)]
pub enum Gated<T> {
    Done(T),
    /// `202`: the request waits for a second operator-admin.
    AwaitingApproval(Box<ApprovalView>),
}

/// Why an operator API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA certificate {path}: {message}")]
    CaCert { path: String, message: String },
    #[error("invalid management URL {0:?}: expected https://HOST:PORT")]
    Url(String),
    #[error("cannot reach the management API: {0}")]
    Http(#[from] reqwest::Error),
    /// The server's answer, with its own message.
    #[error("{message} (HTTP {status})")]
    Api { status: StatusCode, message: String },
    #[error("no tenant with service code {0}")]
    UnknownServiceCode(String),
    #[error("{0}")]
    SignIn(String),
}

/// A client of the management listener, authenticated by an operator token or, after
/// [`ManagementClient::sign_in`], by a console session.
pub struct ManagementClient {
    base_url: String,
    credential: Credential,
    http: reqwest::Client,
}

enum Credential {
    Token(String),
    /// The session cookie (`name=value`) and the CSRF token changes must carry.
    Session {
        cookie: String,
        csrf: String,
    },
}

impl ManagementClient {
    /// `ca_cert`: the CA to trust (the server's generated `ca.pem`); without it the
    /// system's roots are used.
    pub fn new(base_url: &str, ca_cert: Option<&Path>, operator_token: &str) -> Result<Self, ClientError> {
        crate::tls::install_crypto_provider();
        if !base_url.starts_with("https://") {
            return Err(ClientError::Url(base_url.to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .user_agent("kura-server-cli");
        if let Some(path) = ca_cert {
            let ca_error = |message: String| ClientError::CaCert {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|err| ca_error(err.to_string()))?;
            let certificate =
                reqwest::Certificate::from_pem(&pem).map_err(|err| ca_error(err.to_string()))?;
            builder = builder.tls_certs_only([certificate]);
        }
        Ok(ManagementClient {
            base_url: base_url.trim_end_matches('/').to_owned(),
            credential: Credential::Token(operator_token.to_owned()),
            http: builder.build()?,
        })
    }

    /// Signs an operator in with their password and TOTP code: the client then acts in
    /// that console session, which may do what an API token may not (issue tokens).
    /// End it with [`ManagementClient::sign_out`].
    pub async fn sign_in(
        base_url: &str,
        ca_cert: Option<&Path>,
        login: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<Self, ClientError> {
        let mut client = Self::new(base_url, ca_cert, "")?;
        let body = serde_json::json!({ "login": login, "password": password, "totp": totp });
        let response = client
            .http
            .post(format!("{}/api/v1/operator/login", client.base_url))
            .json(&body)
            .send()
            .await?;
        let response = refusal(response).await?;
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("kura_console_session="))
            .and_then(|value| value.split(';').next())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::SignIn("the sign-in answered without a session".into()))?;
        let answer: crate::api::operators::OperatorLoginResponse = response.json().await?;
        if answer.setup_required {
            return Err(ClientError::SignIn(format!(
                "{login} has not finished the first sign-in: set a password and enrol TOTP in the console first"
            )));
        }
        client.credential = Credential::Session {
            cookie,
            csrf: answer.csrf_token,
        };
        Ok(client)
    }

    /// Ends the console session of [`ManagementClient::sign_in`].
    pub async fn sign_out(&self) -> Result<(), ClientError> {
        self.send(Method::POST, "/api/v1/operator/logout", None::<&()>)
            .await
            .map(drop)
    }

    pub async fn create_tenant(&self, request: &CreateTenantRequest) -> Result<CreatedTenant, ClientError> {
        self.call(Method::POST, "/api/v1/operator/tenants", Some(request))
            .await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantView>, ClientError> {
        self.call(Method::GET, "/api/v1/operator/tenants", None::<&()>)
            .await
    }

    /// Accepts a tenant id or a service code.
    pub async fn resolve_tenant(&self, tenant: &str) -> Result<String, ClientError> {
        if kura_service::ids::TenantId::parse(tenant).is_some() {
            return Ok(tenant.to_owned());
        }
        self.list_tenants()
            .await?
            .into_iter()
            .find(|view| view.service_code == tenant)
            .map(|view| view.id)
            .ok_or_else(|| ClientError::UnknownServiceCode(tenant.to_owned()))
    }

    pub async fn show_tenant(&self, tenant_id: &str) -> Result<TenantDetail, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/v1/operator/tenants/{tenant_id}"),
            None::<&()>,
        )
        .await
    }

    pub async fn update_tenant(
        &self,
        tenant_id: &str,
        update: &UpdateTenantRequest,
    ) -> Result<Gated<TenantView>, ClientError> {
        self.call_gated(
            Method::PATCH,
            &format!("/api/v1/operator/tenants/{tenant_id}"),
            Some(update),
        )
        .await
    }

    pub async fn suspend_tenant(&self, tenant_id: &str) -> Result<TenantView, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant_id}/suspend"),
            None::<&()>,
        )
        .await
    }

    pub async fn resume_tenant(&self, tenant_id: &str) -> Result<TenantView, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant_id}/resume"),
            None::<&()>,
        )
        .await
    }

    /// Terminates the tenant; its purge is due after `purge_after_days` (30 when `None`).
    pub async fn terminate_tenant(
        &self,
        tenant_id: &str,
        purge_after_days: Option<u32>,
    ) -> Result<Gated<TerminatedTenant>, ClientError> {
        self.call_gated(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant_id}/terminate"),
            Some(&TerminateRequest { purge_after_days }),
        )
        .await
    }

    pub async fn purge_now(&self, tenant_id: &str) -> Result<Gated<TenantView>, ClientError> {
        self.call_gated(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant_id}/purge-now"),
            None::<&()>,
        )
        .await
    }

    /// The metering export (every tenant's metered days) for billing.
    pub async fn usage(&self, from: Option<&str>, to: Option<&str>) -> Result<Vec<MeterRow>, ClientError> {
        self.call(Method::GET, &usage_path(from, to, "json"), None::<&()>)
            .await
    }

    /// The metering export as CSV.
    pub async fn usage_csv(&self, from: Option<&str>, to: Option<&str>) -> Result<String, ClientError> {
        let response = self
            .send(Method::GET, &usage_path(from, to, "csv"), None::<&()>)
            .await?;
        Ok(response.text().await?)
    }

    /// The operator work log's rows the filter selects, oldest first.
    pub async fn work_log(&self, filter: &WorkLogFilter) -> Result<Vec<EventView>, ClientError> {
        self.call(Method::GET, &filter.path("json"), None::<&()>).await
    }

    /// The same as CSV.
    pub async fn work_log_csv(&self, filter: &WorkLogFilter) -> Result<String, ClientError> {
        let response = self.send(Method::GET, &filter.path("csv"), None::<&()>).await?;
        Ok(response.text().await?)
    }

    /// Has the service check every event chain.
    pub async fn check_chains(&self) -> Result<ChainCheck, ClientError> {
        self.call(Method::GET, "/api/v1/operator/events/verify", None::<&()>)
            .await
    }

    /// Every request waiting for approval, and those decided in the last 30 days.
    pub async fn approvals(&self) -> Result<Vec<ApprovalView>, ClientError> {
        self.call(Method::GET, "/api/v1/operator/approvals", None::<&()>)
            .await
    }

    /// Approves (`approve`) or rejects (`reject`) a request.
    pub async fn decide(&self, id: &str, decision: &str) -> Result<ApprovalView, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/operator/approvals/{id}/{decision}"),
            None::<&()>,
        )
        .await
    }

    pub async fn cancel_termination(&self, tenant_id: &str) -> Result<TenantView, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/operator/tenants/{tenant_id}/cancel-termination"),
            None::<&()>,
        )
        .await
    }

    pub async fn deletions(&self) -> Result<Vec<DeletionSummaryView>, ClientError> {
        self.call(Method::GET, "/api/v1/operator/deletions", None::<&()>)
            .await
    }

    pub async fn deletion(&self, id: &str) -> Result<SignedDeletionRecord, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/v1/operator/deletions/{id}"),
            None::<&()>,
        )
        .await
    }

    pub async fn issue_registration_token(
        &self,
        tenant_id: &str,
    ) -> Result<RegistrationTokenView, ClientError> {
        let path = format!("/api/v1/operator/tenants/{tenant_id}/registration-tokens");
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Runs, newest first; each filter is optional.
    pub async fn list_jobs(
        &self,
        kind: Option<&str>,
        status: Option<&str>,
        tenant_id: Option<&str>,
    ) -> Result<Vec<JobView>, ClientError> {
        let query: Vec<String> = [("kind", kind), ("status", status), ("tenant", tenant_id)]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
            .collect();
        let path = format!("/api/v1/operator/jobs?{}", query.join("&"));
        self.call(Method::GET, &path, None::<&()>).await
    }

    pub async fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.call(Method::GET, &format!("/api/v1/operator/jobs/{id}"), None::<&()>)
            .await
    }

    /// Queues a run now.
    pub async fn run_job(&self, request: &RunJob) -> Result<JobView, ClientError> {
        self.call(Method::POST, "/api/v1/operator/jobs", Some(request))
            .await
    }

    /// A tenant's machines, revoked ones included.
    pub async fn machines(&self, tenant_id: &str) -> Result<Vec<MachineView>, ClientError> {
        let path = format!("/api/v1/operator/tenants/{tenant_id}/machines");
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Revokes a machine's credential at once.
    pub async fn revoke_machine(&self, tenant_id: &str, machine_id: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/operator/tenants/{tenant_id}/machines/{machine_id}/revoke");
        self.send(Method::POST, &path, None::<&()>).await.map(drop)
    }

    pub async fn notices(&self) -> Result<Vec<OperatorNoticeView>, ClientError> {
        self.call(Method::GET, "/api/v1/operator/notices", None::<&()>)
            .await
    }

    /// Publishes a notice (`body` as `POST /api/v1/operator/notices` takes it).
    pub async fn publish_notice(&self, body: &serde_json::Value) -> Result<OperatorNoticeView, ClientError> {
        self.call(Method::POST, "/api/v1/operator/notices", Some(body))
            .await
    }

    /// Updates a notice (a follow-up, mailed again).
    pub async fn update_notice(
        &self,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<OperatorNoticeView, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/operator/notices/{id}"),
            Some(body),
        )
        .await
    }

    pub async fn operator_tokens(&self) -> Result<Vec<OperatorTokenView>, ClientError> {
        self.call(Method::GET, "/api/v1/operator/tokens", None::<&()>)
            .await
    }

    /// Issues an operator API token; its secret is in the answer only.
    pub async fn issue_operator_token(
        &self,
        name: &str,
        role: &str,
        days: Option<u32>,
    ) -> Result<CreatedOperatorToken, ClientError> {
        let body = serde_json::json!({ "name": name, "role": role, "days": days });
        self.call(Method::POST, "/api/v1/operator/tokens", Some(&body))
            .await
    }

    pub async fn revoke_operator_token(&self, id: &str) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &format!("/api/v1/operator/tokens/{id}"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body).await?;
        Ok(response.json().await?)
    }

    /// A call to a route of the two-person rule: `202` is the request that waits.
    async fn call_gated<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Gated<T>, ClientError> {
        let response = self.send(method, path, body).await?;
        if response.status() == StatusCode::ACCEPTED {
            return Ok(Gated::AwaitingApproval(Box::new(response.json().await?)));
        }
        Ok(Gated::Done(response.json().await?))
    }

    /// Sends a request; a refusal becomes the server's message.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        request = match &self.credential {
            Credential::Token(token) => request.bearer_auth(token),
            Credential::Session { cookie, csrf } => request
                .header(reqwest::header::COOKIE, cookie)
                .header(crate::auth::CSRF_HEADER, csrf),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        refusal(request.send().await?).await
    }
}

/// The response if it succeeded; else the server's message as the error.
async fn refusal(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| value.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(text);
    Err(ClientError::Api { status, message })
}
