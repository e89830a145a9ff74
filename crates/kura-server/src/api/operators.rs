//! Operator accounts (management listener): console sign-in and sign-out, the caller's
//! own password, TOTP, sessions and API tokens, and the accounts an operator-admin
//! manages. Every rule and event is the service operation's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kura_service::authz::{self, OperatorCredential, ProviderRole};
use kura_service::model::{Language, OperatorRecord, OperatorSessionRecord, OperatorTokenRecord};
use kura_service::ops::operator_accounts::{self as accounts, AccountChange, NewAccount};
use kura_service::{ServiceError, duration_ms, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{CONSOLE_SESSION_COOKIE, CallerInfo, Operator};
use crate::error::ApiError;
use crate::web::set_cookie;

/// `POST /api/v1/operator/login`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorLoginRequest {
    pub login: String,
    pub password: String,
    /// The current TOTP code; absent only at the first sign-in, before enrolment.
    #[serde(default)]
    pub totp: Option<String>,
}

/// Answer to an operator's sign-in. The session is in the `kura_console_session` cookie;
/// every request that changes something carries `csrf_token` in `X-CSRF-Token`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorLoginResponse {
    pub operator_id: String,
    pub login: String,
    pub role: String,
    pub csrf_token: String,
    /// When the session ends at the latest (RFC 3339, UTC).
    pub expires: String,
    /// `true` at the first sign-in: set a password of your own and enrol TOTP before
    /// anything else.
    pub setup_required: bool,
}

/// An operator account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    pub id: String,
    pub login: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The language of the operator's mail (`ja`, `en`).
    pub language: String,
    pub totp_enrolled: bool,
    /// Whether the one-time password of the account's creation has been replaced.
    pub password_changed: bool,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<String>,
}

impl From<&OperatorRecord> for OperatorView {
    fn from(record: &OperatorRecord) -> Self {
        OperatorView {
            id: record.id.to_string(),
            login: record.login.clone(),
            role: record.role.as_str().to_owned(),
            email: record.email.clone(),
            language: record.language.as_str().to_owned(),
            totp_enrolled: record.totp_enrolled,
            password_changed: record.password_changed,
            created: rfc3339(record.created_ms),
            disabled: record.disabled_ms.map(rfc3339),
        }
    }
}

/// `GET /api/v1/operator/me`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorMeView {
    /// The login ID, or the name of an accountless token (bootstrap, quickstart).
    pub name: String,
    pub role: String,
    /// `session` or `token`.
    pub credential: String,
    /// Whether the first sign-in is still to be finished (password, TOTP).
    pub setup_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<OperatorView>,
}

/// `POST /api/v1/operator/operators`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorRequest {
    pub login: String,
    /// `operator-admin` or `operator`.
    pub role: String,
    #[serde(default)]
    pub email: Option<String>,
    /// The language of the operator's mail: `ja` (the default) or `en`.
    #[serde(default)]
    pub language: Option<String>,
}

/// A new operator account and its one-time password (shown once; replaced at the
/// first sign-in).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedOperator {
    pub password: String,
    #[serde(flatten)]
    pub operator: OperatorView,
}

/// `POST /api/v1/operator/account/password`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorPasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// A TOTP secret to enrol (shown once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorTotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// `POST /api/v1/operator/account/totp/confirm`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorTotpConfirm {
    pub code: String,
}

/// One of the caller's console sessions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorSessionView {
    pub id: String,
    pub source: String,
    pub created: String,
    pub last_seen: String,
    /// The session making this request.
    pub current: bool,
}

/// `POST /api/v1/operator/tokens`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorTokenRequest {
    /// What uses the token (1–64 characters).
    pub name: String,
    /// `operator-admin` or `operator`, no higher than the caller's role.
    pub role: String,
    /// Days the token lives (1–365, default 90).
    #[serde(default)]
    pub days: Option<u32>,
}

/// An operator API token (never the token itself, but when it is issued).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorTokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The owner's login ID; absent for the tokens of a fresh service (bootstrap, quickstart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl From<&OperatorTokenRecord> for OperatorTokenView {
    fn from(token: &OperatorTokenRecord) -> Self {
        OperatorTokenView {
            id: token.id.clone(),
            name: token.name.clone(),
            role: token.role.as_str().to_owned(),
            owner: token.owner_login.clone(),
            created: rfc3339(token.created_ms),
            expires: token.expires_ms.map(rfc3339),
            last_used: token.last_used_ms.map(rfc3339),
            revoked: token.revoked_ms.map(rfc3339),
        }
    }
}

/// A token just issued: `token` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedOperatorToken {
    pub token: String,
    #[serde(flatten)]
    pub view: OperatorTokenView,
}

/// The default lifetime of an operator token.
const DEFAULT_TOKEN_DAYS: u32 = 90;

pub(crate) fn parse_role(text: &str) -> Result<ProviderRole, ServiceError> {
    ProviderRole::parse(text.trim())
        .ok_or_else(|| ServiceError::invalid("role: write operator-admin or operator"))
}

/// An operator's mail language; Japanese when not given.
pub(crate) fn parse_mail_language(text: Option<&str>) -> Result<Language, ServiceError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(Language::Ja),
        Some(text) => Language::parse(text).ok_or_else(|| {
            ServiceError::invalid(format!("language {text:?} is not offered: write ja or en"))
        }),
    }
}

/// Signs an operator in; sets the console session cookie.
#[utoipa::path(post, path = "/api/v1/operator/login", tag = "operator accounts",
    request_body = OperatorLoginRequest,
    responses((status = 200, description = "signed in; the session is in the `kura_console_session` cookie",
        body = OperatorLoginResponse)))]
pub(super) async fn login(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    ApiJson(request): ApiJson<OperatorLoginRequest>,
) -> Result<Response, ApiError> {
    let signed_in = authz::operator_sign_in(
        &state.service,
        &caller,
        &request.login,
        request.password,
        request.totp.as_deref(),
    )
    .await?;
    let max_age = duration_ms(state.config.session_absolute_timeout) / 1000;
    let body = OperatorLoginResponse {
        operator_id: signed_in.operator_id.to_string(),
        login: signed_in.login,
        role: signed_in.role.as_str().to_owned(),
        csrf_token: signed_in.csrf_token,
        expires: rfc3339(signed_in.expires_ms),
        setup_required: !signed_in.set_up,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(CONSOLE_SESSION_COOKIE, &signed_in.session_cookie, max_age),
    );
    Ok(response)
}

/// Ends the caller's console session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/operator/logout", tag = "operator accounts",
    responses((status = 204, description = "signed out; the cookie is cleared")))]
pub(super) async fn logout(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
) -> Result<Response, ApiError> {
    accounts::end_session(&state.service, &operator, &caller, None).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(CONSOLE_SESSION_COOKIE, "", 0));
    Ok(response)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/operator/me", tag = "operator accounts",
    responses((status = 200, body = OperatorMeView)))]
pub(super) async fn me(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<OperatorMeView>, ApiError> {
    let account = accounts::me(&state.service, &operator).await?;
    Ok(Json(OperatorMeView {
        name: operator.name().to_owned(),
        role: operator.role().as_str().to_owned(),
        credential: match operator.credential() {
            OperatorCredential::Session(_) => "session",
            OperatorCredential::Token(_) => "token",
        }
        .to_owned(),
        setup_required: !operator.is_set_up(),
        account: account.as_ref().map(OperatorView::from),
    }))
}

/// Sets the caller's own password (the current one is the one-time password at the
/// first sign-in).
#[utoipa::path(post, path = "/api/v1/operator/account/password", tag = "operator accounts",
    request_body = OperatorPasswordRequest,
    responses((status = 204, description = "the password is changed")))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    ApiJson(request): ApiJson<OperatorPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    accounts::change_password(
        &state.service,
        &operator,
        &caller,
        request.current_password,
        request.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts TOTP enrolment: a secret for the authenticator app, active after confirm.
#[utoipa::path(post, path = "/api/v1/operator/account/totp/enroll", tag = "operator accounts",
    responses((status = 200, body = OperatorTotpEnrolment)))]
pub(super) async fn totp_enroll(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
) -> Result<Json<OperatorTotpEnrolment>, ApiError> {
    let enrolment = accounts::enroll_totp(&state.service, &operator, &caller).await?;
    Ok(Json(OperatorTotpEnrolment {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

/// Finishes TOTP enrolment with a current code.
#[utoipa::path(post, path = "/api/v1/operator/account/totp/confirm", tag = "operator accounts",
    request_body = OperatorTotpConfirm,
    responses((status = 204, description = "TOTP is on")))]
pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    ApiJson(request): ApiJson<OperatorTotpConfirm>,
) -> Result<StatusCode, ApiError> {
    accounts::confirm_totp(&state.service, &operator, &caller, &request.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn session_views(
    operator: &Operator,
    sessions: &[OperatorSessionRecord],
) -> Vec<OperatorSessionView> {
    let current = match operator.credential() {
        OperatorCredential::Session(id) => Some(id.as_str()),
        OperatorCredential::Token(_) => None,
    };
    sessions
        .iter()
        .map(|session| OperatorSessionView {
            id: session.id.clone(),
            source: session.source.clone(),
            created: rfc3339(session.created_ms),
            last_seen: rfc3339(session.last_seen_ms),
            current: current == Some(session.id.as_str()),
        })
        .collect()
}

/// The caller's live console sessions.
#[utoipa::path(get, path = "/api/v1/operator/account/sessions", tag = "operator accounts",
    responses((status = 200, body = Vec<OperatorSessionView>)))]
pub(super) async fn sessions(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<OperatorSessionView>>, ApiError> {
    let sessions = accounts::sessions(&state.service, &operator).await?;
    Ok(Json(session_views(&operator, &sessions)))
}

/// Ends one of the caller's console sessions.
#[utoipa::path(delete, path = "/api/v1/operator/account/sessions/{id}", tag = "operator accounts",
    responses((status = 204, description = "the session has ended")))]
pub(super) async fn end_session(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    accounts::end_session(&state.service, &operator, &caller, Some(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Operator API tokens: every one for an operator-admin, one's own for an operator.
#[utoipa::path(get, path = "/api/v1/operator/tokens", tag = "operator accounts",
    responses((status = 200, body = Vec<OperatorTokenView>)))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<OperatorTokenView>>, ApiError> {
    let tokens = accounts::tokens(&state.service, &operator).await?;
    Ok(Json(tokens.iter().map(OperatorTokenView::from).collect()))
}

/// Issues an API token of the caller's own (console session only), for automation.
#[utoipa::path(post, path = "/api/v1/operator/tokens", tag = "operator accounts",
    request_body = CreateOperatorTokenRequest,
    responses((status = 201, body = CreatedOperatorToken)))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    ApiJson(request): ApiJson<CreateOperatorTokenRequest>,
) -> Result<(StatusCode, Json<CreatedOperatorToken>), ApiError> {
    let role = parse_role(&request.role)?;
    let issued = accounts::issue_token(
        &state.service,
        &operator,
        &caller,
        &request.name,
        role,
        request.days.unwrap_or(DEFAULT_TOKEN_DAYS),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOperatorToken {
            token: issued.token,
            view: OperatorTokenView::from(&issued.record),
        }),
    ))
}

/// Revokes an operator token: one's own, or as an operator-admin anyone's.
#[utoipa::path(delete, path = "/api/v1/operator/tokens/{id}", tag = "operator accounts",
    responses((status = 204, description = "the token no longer works")))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    accounts::revoke_token(&state.service, &operator, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every operator account.
#[utoipa::path(get, path = "/api/v1/operator/operators", tag = "operator accounts",
    responses((status = 200, body = Vec<OperatorView>)))]
pub(super) async fn list_operators(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<Vec<OperatorView>>, ApiError> {
    let operators = accounts::list(&state.service).await?;
    Ok(Json(operators.iter().map(OperatorView::from).collect()))
}

/// Creates an operator account with a one-time password.
#[utoipa::path(post, path = "/api/v1/operator/operators", tag = "operator accounts",
    request_body = CreateOperatorRequest,
    responses((status = 201, body = CreatedOperator)))]
pub(super) async fn create_operator(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    ApiJson(request): ApiJson<CreateOperatorRequest>,
) -> Result<(StatusCode, Json<CreatedOperator>), ApiError> {
    let account = NewAccount {
        login: &request.login,
        role: parse_role(&request.role)?,
        email: request.email.as_deref(),
        language: parse_mail_language(request.language.as_deref())?,
    };
    let created = accounts::create(&state.service, &operator, &caller, account).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOperator {
            password: created.password,
            operator: OperatorView::from(&created.operator),
        }),
    ))
}

async fn change_operator(
    state: &AppState,
    caller: &kura_service::authz::Caller,
    operator: &Operator,
    id: &str,
    change: AccountChange,
) -> Result<Json<OperatorView>, ApiError> {
    let account = accounts::change(&state.service, operator, caller, id, change).await?;
    Ok(Json(OperatorView::from(&account)))
}

/// Deletes an operator account with its sessions and tokens; while the two-person rule
/// holds it waits for a second operator-admin: `202` with the request.
#[utoipa::path(delete, path = "/api/v1/operator/operators/{id}", tag = "operator accounts",
    responses((status = 204), (status = 202, body = super::approvals::ApprovalView)))]
pub(super) async fn delete_operator(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let answer = accounts::delete(&state.service, &operator, &caller, &id).await?;
    Ok(super::approvals::gated(&state, answer, |_| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

/// Disables an operator account: its sessions end and its tokens stop working.
#[utoipa::path(post, path = "/api/v1/operator/operators/{id}/disable", tag = "operator accounts",
    responses((status = 200, body = OperatorView)))]
pub(super) async fn disable_operator(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<OperatorView>, ApiError> {
    change_operator(&state, &caller, &operator, &id, AccountChange::Disable).await
}

/// Enables a disabled operator account.
#[utoipa::path(post, path = "/api/v1/operator/operators/{id}/enable", tag = "operator accounts",
    responses((status = 200, body = OperatorView)))]
pub(super) async fn enable_operator(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<OperatorView>, ApiError> {
    change_operator(&state, &caller, &operator, &id, AccountChange::Enable).await
}

/// Resets an operator's TOTP (a lost device): they enrol again at the next sign-in.
#[utoipa::path(post, path = "/api/v1/operator/operators/{id}/reset-totp", tag = "operator accounts",
    responses((status = 200, body = OperatorView)))]
pub(super) async fn reset_operator_totp(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<OperatorView>, ApiError> {
    change_operator(&state, &caller, &operator, &id, AccountChange::ResetTotp).await
}
