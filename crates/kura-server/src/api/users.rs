//! Tenant-user API (customer listener): sign-in and sign-out, the caller's own sessions,
//! password and API tokens, user administration, the admin allow-list and the event log
//! export. Every handler but `login` takes a [`User`], which has already checked the
//! route's permission; every rule and event is the service operation's.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kura_service::authz;
use kura_service::ops::{events as event_ops, tenants, users};
use kura_service::{duration_ms, rfc3339};

use super::ApiJson;
use super::event_log::EventsQuery;
use super::types::EventView;
use super::types::{
    AdminNetworks, ChangePasswordRequest, CreateTokenRequest, CreateUserRequest, CreatedToken, CreatedUser,
    LoginRequest, LoginResponse, MeView, SessionView, TokenView, UpdateMeRequest, UpdateUserRequest,
    UserView,
};
use crate::app::AppState;
use crate::auth::{CallerInfo, SESSION_COOKIE, User};
use crate::error::ApiError;
use crate::web::set_cookie;

/// Signs in with login ID and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "accounts",
    request_body = LoginRequest,
    responses((status = 200, description = "signed in; the session is in the `kura_session` cookie", body = LoginResponse)))]
pub(super) async fn login(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let signed_in = authz::sign_in(
        &state.service,
        &caller,
        &request.login,
        request.password,
        request.totp.as_deref(),
    )
    .await?;
    let max_age = duration_ms(state.config.session_absolute_timeout) / 1000;
    let cookie = set_cookie(SESSION_COOKIE, &signed_in.session_cookie, max_age);
    let body = LoginResponse {
        tenant_id: signed_in.tenant_id.to_string(),
        user_id: signed_in.user_id.to_string(),
        login: signed_in.login,
        role: signed_in.role.as_str().to_owned(),
        csrf_token: signed_in.csrf_token,
        expires: rfc3339(signed_in.expires_ms),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Ends the caller's session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/logout", tag = "accounts",
    responses((status = 204, description = "signed out; the cookie is cleared")))]
pub(super) async fn logout(State(state): State<AppState>, user: User) -> Result<Response, ApiError> {
    users::logout(&state.service, &user).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    Ok(response)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    responses((status = 200, body = MeView)))]
pub(super) async fn me(State(state): State<AppState>, user: User) -> Result<Json<MeView>, ApiError> {
    let record = users::get(&state.service, &user.scope, user.user_id.as_str()).await?;
    Ok(Json(MeView {
        tenant_id: user.scope.tenant_id().to_string(),
        user_id: user.user_id.to_string(),
        login: user.login.clone(),
        role: user.role.as_str().to_owned(),
        credential: users::credential_kind(&user).to_owned(),
        language: record.language.map(|l| l.as_str().to_owned()),
        alert_mail: record.alert_mail,
        email: record.email,
    }))
}

/// `PATCH /api/v1/me`: the caller changes their own settings (the language of pages and
/// mail, whether alerts are mailed to them).
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts",
    request_body = UpdateMeRequest,
    responses((status = 200, body = MeView)))]
pub(super) async fn update_me(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<UpdateMeRequest>,
) -> Result<Json<MeView>, ApiError> {
    if let Some(language) = &request.language {
        users::set_language(&state.service, &user, language.as_deref()).await?;
    }
    if let Some(on) = request.alert_mail {
        users::set_alert_mail(&state.service, &user, on).await?;
    }
    me(State(state), user).await
}

/// Changes the caller's password; ends every other session and revokes their API tokens.
#[utoipa::path(post, path = "/api/v1/password", tag = "accounts",
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "the password is changed")))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    users::change_password(&state.service, &user, request.old_password, request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's sessions, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "accounts",
    responses((status = 200, body = Vec<SessionView>)))]
pub(super) async fn sessions(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let current = user.session_id().ok();
    let sessions = users::sessions(&state.service, &user).await?;
    Ok(Json(
        sessions
            .iter()
            .map(|session| SessionView {
                id: session.id.clone(),
                source: session.source.clone(),
                created: rfc3339(session.created_ms),
                last_seen: rfc3339(session.last_seen_ms),
                current: current == Some(session.id.as_str()),
                revoked: session.revoked_ms.map(rfc3339),
            })
            .collect(),
    ))
}

/// Ends one of the caller's sessions (e.g. one left open elsewhere).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "accounts",
    responses((status = 204, description = "the session ended")))]
pub(super) async fn revoke_session(
    State(state): State<AppState>,
    user: User,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    users::revoke_session(&state.service, &user, &session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "accounts",
    responses((status = 200, body = Vec<TokenView>)))]
pub(super) async fn tokens(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = users::tokens(&state.service, &user).await?;
    Ok(Json(tokens.iter().map(TokenView::from).collect()))
}

/// Creates an API token for the caller, with a role no higher than theirs.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "accounts",
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken)))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = users::create_token(
        &state.service,
        &user,
        &request.name,
        request.role,
        request.expires_in_days,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: created.token,
            view: TokenView::from(&created.record),
        }),
    ))
}

/// Revokes one of the caller's tokens; user admins may revoke any token of the tenant.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "accounts",
    responses((status = 204, description = "the token no longer works")))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    user: User,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    users::revoke_token(&state.service, &user, &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's users, with their lockout state.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserView>)))]
pub(super) async fn list_users(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let states = users::list(&state.service, &user.scope).await?;
    Ok(Json(
        states
            .iter()
            .map(|state| {
                let mut view = UserView::from(&state.user);
                view.locked_until = state.locked_until_ms.map(rfc3339);
                view
            })
            .collect(),
    ))
}

/// Adds a user to the caller's tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser)))]
pub(super) async fn create_user(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let created = users::create(
        &state.service,
        &user,
        &request.login,
        request.password,
        request.role,
        request.email,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserView::from(&created.user),
            password: created.password,
        }),
    ))
}

/// Changes a user's role, disables or enables them, or lifts a lockout.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserView)))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let change = users::UserChange {
        role: request.role,
        disabled: request.disabled,
        email: request.email,
        unlock: request.unlock,
        reset_totp: request.reset_totp,
    };
    let record = users::update(&state.service, &user, &id, change).await?;
    Ok(Json(UserView::from(&record)))
}

/// Deletes a user with their sessions and API tokens.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 204, description = "the user is deleted")))]
pub(super) async fn delete_user(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    users::delete(&state.service, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The admin allow-list.
#[utoipa::path(get, path = "/api/v1/tenant/admin-networks", tag = "security",
    responses((status = 200, body = AdminNetworks)))]
pub(super) async fn admin_networks(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<AdminNetworks>, ApiError> {
    let tenant = tenants::current(&state.service, &user.scope).await?;
    Ok(Json(AdminNetworks {
        cidrs: tenant.admin_networks.iter().map(ToString::to_string).collect(),
    }))
}

/// Replaces the admin allow-list; refuses a list that would shut out the caller.
#[utoipa::path(put, path = "/api/v1/tenant/admin-networks", tag = "security",
    request_body = AdminNetworks,
    responses((status = 200, body = AdminNetworks)))]
pub(super) async fn set_admin_networks(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<AdminNetworks>,
) -> Result<Json<AdminNetworks>, ApiError> {
    let networks = users::set_admin_networks(&state.service, &user, &request.cidrs).await?;
    Ok(Json(AdminNetworks {
        cidrs: networks.iter().map(ToString::to_string).collect(),
    }))
}

/// The tenant's event log between `from` and `to`, as JSON or CSV, with times in the
/// tenant's time zone.
#[utoipa::path(get, path = "/api/v1/events", tag = "security", params(EventsQuery),
    responses((status = 200, description = "the event log, oldest first", content((Vec<EventView> = "application/json"), (String = "text/csv")))))]
pub(super) async fn events(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, format) = EventsQuery::read(query, state.clock().now_ms())?;
    let tenant = tenants::current(&state.service, &user.scope).await?;
    let zone = jiff::tz::TimeZone::get(&tenant.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let records = event_ops::export(&state.service, &user, &filter, format.as_str()).await?;
    Ok(format.answer(records, &zone, "events"))
}
