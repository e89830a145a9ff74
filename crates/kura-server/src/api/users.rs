//! Tenant-user API (customer listener): sign-in and sign-out, the caller's own sessions,
//! password and API tokens, user administration, the admin allow-list and the event log
//! export. Every handler but `login` takes a [`UserPrincipal`], which has already checked
//! the route's permission; every change is written to the tenant's event log.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiJson;
use super::types::{
    AdminNetworks, ChangePasswordRequest, CreateTokenRequest, CreateUserRequest, CreatedToken, CreatedUser,
    EventView, LoginRequest, LoginResponse, MeView, SessionView, TokenView, UpdateUserRequest, UserView,
    rfc3339,
};
use crate::accounts::{
    self, Throttle, check_password_policy, hash_password_blocking, normalize_login, validate_login,
    verify_password_blocking,
};
use crate::app::AppState;
use crate::auth::{SESSION_COOKIE, UserCredential, UserPrincipal, client_ip, duration_ms, request_id};
use crate::db::{DbError, NewApiToken, NewTenantUser, TenantUpdate, TenantUserRecord, UserUpdate};
use crate::error::ApiError;
use crate::mail::parse_address;
use crate::secrets::{TokenKind, new_password, new_token, random_hex, token_hash};
use crate::tenancy::{UserId, agent_network_allows};
use crate::tenants::parse_networks;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The caller's address and request id, taken before the body is read.
pub(super) struct Caller {
    pub(super) source: Option<std::net::IpAddr>,
    pub(super) request_id: String,
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Caller {
            source: client_ip(parts, &state.config),
            request_id: request_id(parts),
        })
    }
}

fn session_cookie_header(value: &str, max_age_secs: i64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .map_err(|err| ApiError::internal("session cookie is not a header value", &err))
}

/// Signs in with login ID and password; sets the session cookie.
pub(super) async fn login(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let signed_in = accounts::sign_in(
        &state,
        caller.source,
        caller.request_id,
        &request.login,
        request.password,
        request.totp.as_deref(),
    )
    .await?;
    let max_age = duration_ms(state.config.session_absolute_timeout) / 1000;
    let cookie = session_cookie_header(&signed_in.session_cookie, max_age)?;
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
pub(super) async fn logout(State(state): State<AppState>, user: UserPrincipal) -> Result<Response, ApiError> {
    let session_id = user.session_id()?;
    let now = state.clock.now_ms();
    state
        .db
        .revoke_user_session(&user.scope, &user.user_id, session_id, now)
        .await?;
    user.audit
        .tenant(state.db.as_ref(), &user.scope, now, "logout", &user.login, "ok")
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie_header("", 0)?);
    Ok(response)
}

/// Who the caller is.
pub(super) async fn me(user: UserPrincipal) -> Json<MeView> {
    Json(MeView {
        tenant_id: user.scope.tenant_id().to_string(),
        user_id: user.user_id.to_string(),
        login: user.login.clone(),
        role: user.role.as_str().to_owned(),
        credential: match user.credential {
            UserCredential::Session(_) => "session",
            UserCredential::ApiToken(_) => "api-token",
        }
        .to_owned(),
    })
}

/// Changes the caller's password; ends every other session and revokes their API tokens.
pub(super) async fn change_password(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let session_id = user.session_id()?.to_owned();
    let now = state.clock.now_ms();
    let db = state.db.as_ref();
    let stored = db
        .login_candidate(&user.login)
        .await?
        .filter(|candidate| candidate.user_id == user.user_id)
        .map(|candidate| candidate.password_hash);
    if !verify_password_blocking(request.old_password, stored).await? {
        let source = user.audit.source.map(|ip| ip.to_string()).unwrap_or_default();
        db.record_login_failure(&user.login, &source, now).await?;
        user.audit
            .tenant(
                db,
                &user.scope,
                now,
                "user.password",
                &user.login,
                "refused: wrong old password",
            )
            .await?;
        return Err(ApiError::forbidden("the old password is wrong"));
    }
    check_password_policy(&user.login, &request.new_password)?;
    let hash = hash_password_blocking(request.new_password).await?;
    db.set_password(&user.scope, &user.user_id, &hash, Some(&session_id), now)
        .await?;
    user.audit
        .tenant(db, &user.scope, now, "user.password", &user.login, "ok")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's sessions, newest first.
pub(super) async fn sessions(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let current = match &user.credential {
        UserCredential::Session(id) => Some(id.as_str()),
        UserCredential::ApiToken(_) => None,
    };
    let sessions = state.db.user_sessions(&user.scope, &user.user_id).await?;
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
pub(super) async fn revoke_session(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now_ms();
    if !state
        .db
        .revoke_user_session(&user.scope, &user.user_id, &session_id, now)
        .await?
    {
        return Err(ApiError::not_found("you have no open session with this id"));
    }
    user.audit
        .record(&state, &user.scope, "session.revoke", &session_id, "ok")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API tokens.
pub(super) async fn tokens(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.db.api_tokens(&user.scope, Some(&user.user_id)).await?;
    Ok(Json(tokens.iter().map(TokenView::from).collect()))
}

/// Creates an API token for the caller, with a role no higher than theirs.
pub(super) async fn create_token(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    user.session_id()?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name must be 1 to 100 characters without control characters (say what the token is for)",
        ));
    }
    let role = request.role.unwrap_or(user.role);
    if !user.role.covers(role) {
        return Err(ApiError::forbidden(format!(
            "an API token's role cannot be above your own ({}); choose {} or a lower role",
            user.role.as_str(),
            user.role.as_str()
        )));
    }
    let days = request.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("expires_in_days must be between 1 and 365"));
    }
    let now = state.clock.now_ms();
    let token = new_token(TokenKind::ApiToken);
    let record = NewApiToken {
        id: random_hex(16),
        user_id: user.user_id.clone(),
        name: name.to_owned(),
        role,
        token_hash: token_hash(&token),
        expires_ms: now.saturating_add(i64::from(days) * DAY_MS),
    };
    state.db.create_api_token(&user.scope, &record, now).await?;
    user.audit
        .tenant(
            state.db.as_ref(),
            &user.scope,
            now,
            "token.create",
            &format!("{} ({})", record.name, record.id),
            &format!(
                "ok: role {}, expires {}",
                role.as_str(),
                rfc3339(record.expires_ms)
            ),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token,
            view: TokenView {
                id: record.id,
                name: record.name,
                role: role.as_str().to_owned(),
                created: rfc3339(now),
                expires: rfc3339(record.expires_ms),
                last_used: None,
                revoked: None,
            },
        }),
    ))
}

/// Revokes one of the caller's tokens; user admins may revoke any token of the tenant.
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now_ms();
    let owner = (!user.role.allows(crate::roles::Permission::ManageUsers)).then_some(&user.user_id);
    if !state
        .db
        .revoke_api_token(&user.scope, owner, &token_id, now)
        .await?
    {
        return Err(ApiError::not_found("no live API token with this id"));
    }
    user.audit
        .record(&state, &user.scope, "token.revoke", &token_id, "ok")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's users, with their lockout state.
pub(super) async fn list_users(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let now = state.clock.now_ms();
    let since = now.saturating_sub(duration_ms(state.config.login_lockout_period));
    let mut views = Vec::new();
    for record in state.db.tenant_users(&user.scope).await? {
        let mut failures = state.db.login_failures(&record.login, "", since).await?;
        failures.by_source = 0;
        let mut view = UserView::from(&record);
        if let Throttle::Locked { until_ms } = accounts::throttle(&state.config, &failures, now) {
            view.locked_until = Some(rfc3339(until_ms));
        }
        views.push(view);
    }
    Ok(Json(views))
}

/// Adds a user to the caller's tenant.
pub(super) async fn create_user(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let login = normalize_login(&request.login);
    validate_login(&login)?;
    let (password, generated) = match request.password {
        Some(password) => {
            check_password_policy(&login, &password)?;
            (password, None)
        }
        None => {
            let password = new_password();
            (password.clone(), Some(password))
        }
    };
    if let Some(email) = &request.email {
        parse_address(email).map_err(|err| ApiError::invalid(err.to_string()))?;
    }
    let new_user = NewTenantUser {
        login: login.clone(),
        password_hash: hash_password_blocking(password).await?,
        role: request.role,
        email: request.email,
    };
    let now = state.clock.now_ms();
    let record = match state.db.create_user(&user.scope, &new_user, now).await {
        Ok(record) => record,
        Err(DbError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "this login ID is not available; choose another (login IDs are unique across the service)",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    user.audit
        .record(
            &state,
            &user.scope,
            "user.create",
            &login,
            &format!("ok: role {}", record.role.as_str()),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserView::from(&record),
            password: generated,
        }),
    ))
}

/// The tenant's user named in the path; 404 otherwise.
pub(super) async fn target_user(
    state: &AppState,
    user: &UserPrincipal,
    id: &str,
) -> Result<TenantUserRecord, ApiError> {
    let not_found = || ApiError::not_found("this tenant has no user with this id");
    let id = UserId::parse(id).ok_or_else(not_found)?;
    state
        .db
        .tenant_users(&user.scope)
        .await?
        .into_iter()
        .find(|record| record.id == id)
        .ok_or_else(not_found)
}

fn refuse_self(user: &UserPrincipal, target: &TenantUserRecord, what: &str) -> Result<(), ApiError> {
    if target.id == user.user_id {
        return Err(ApiError::conflict(format!(
            "you cannot {what} yourself, so a tenant always keeps an admin; ask another admin"
        )));
    }
    Ok(())
}

/// Changes a user's role, disables or enables them, or lifts a lockout.
pub(super) async fn update_user(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    if request.role.is_none()
        && request.disabled.is_none()
        && request.email.is_none()
        && !request.unlock
        && !request.reset_totp
    {
        return Err(ApiError::invalid(
            "give at least one of role, disabled, email, unlock or reset_totp",
        ));
    }
    if let Some(email) = &request.email {
        parse_address(email).map_err(|err| ApiError::invalid(err.to_string()))?;
    }
    let target = target_user(&state, &user, &id).await?;
    if request.role.is_some_and(|role| role != target.role) || request.disabled == Some(true) {
        refuse_self(&user, &target, "change the role of or disable")?;
    }
    let now = state.clock.now_ms();
    let update = UserUpdate {
        role: request.role,
        disabled: request.disabled,
        email: request.email.clone(),
    };
    let mut record = state
        .db
        .update_user(&user.scope, &target.id, &update, now)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no user with this id"))?;
    if request.unlock {
        state.db.clear_login_failures(&record.login).await?;
    }
    if request.reset_totp {
        state.db.disable_totp(&user.scope, &record.id).await?;
        record.totp_enrolled = false;
    }
    let mut changes = Vec::new();
    if let Some(role) = request.role {
        changes.push(format!("role {}", role.as_str()));
    }
    if let Some(disabled) = request.disabled {
        changes.push(if disabled { "disabled" } else { "enabled" }.to_owned());
    }
    if request.unlock {
        changes.push("unlocked".to_owned());
    }
    if request.reset_totp {
        changes.push("TOTP reset".to_owned());
    }
    if let Some(email) = &request.email {
        changes.push(format!("email {email}"));
    }
    user.audit
        .record(
            &state,
            &user.scope,
            "user.update",
            &record.login,
            &format!("ok: {}", changes.join(", ")),
        )
        .await?;
    Ok(Json(UserView::from(&record)))
}

/// Deletes a user with their sessions and API tokens.
pub(super) async fn delete_user(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target = target_user(&state, &user, &id).await?;
    refuse_self(&user, &target, "delete")?;
    if !state.db.delete_user(&user.scope, &target.id).await? {
        return Err(ApiError::not_found("this tenant has no user with this id"));
    }
    user.audit
        .record(&state, &user.scope, "user.delete", &target.login, "ok")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The admin allow-list.
pub(super) async fn admin_networks(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<AdminNetworks>, ApiError> {
    let tenant = super::current_tenant(&state, &user.scope).await?;
    Ok(Json(AdminNetworks {
        cidrs: tenant.admin_networks.iter().map(ToString::to_string).collect(),
    }))
}

/// Replaces the admin allow-list; refuses a list that would shut out the caller.
pub(super) async fn set_admin_networks(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<AdminNetworks>,
) -> Result<Json<AdminNetworks>, ApiError> {
    let networks = parse_networks("admin network", &request.cidrs)?;
    if !agent_network_allows(&networks, user.audit.source) {
        let here = user
            .audit
            .source
            .map_or_else(|| "your address".to_owned(), |ip| ip.to_string());
        return Err(ApiError::conflict(format!(
            "this list does not include the address you are using ({here}), so saving it would lock you out; add it"
        )));
    }
    let update = TenantUpdate {
        admin_networks: Some(networks),
        ..TenantUpdate::default()
    };
    let tenant = state
        .db
        .update_tenant(&user.scope, &update)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant no longer exists"))?;
    let cidrs: Vec<String> = tenant.admin_networks.iter().map(ToString::to_string).collect();
    let shown = if cidrs.is_empty() {
        "anywhere".to_owned()
    } else {
        cidrs.join(" ")
    };
    user.audit
        .record(&state, &user.scope, "tenant.admin_networks", &shown, "ok")
        .await?;
    Ok(Json(AdminNetworks { cidrs }))
}

/// `GET /api/v1/events` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// RFC 3339; defaults to the beginning.
    from: Option<String>,
    /// RFC 3339, exclusive; defaults to now.
    to: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn parse_time(what: &str, text: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse::<jiff::Timestamp>()
        .map(|timestamp| timestamp.as_millisecond())
        .map_err(|_| {
            ApiError::invalid(format!(
                "{what} must be an RFC 3339 time such as 2026-04-01T00:00:00+09:00"
            ))
        })
}

/// The tenant's event log between `from` and `to`, as JSON or CSV, with times in the
/// tenant's time zone.
pub(super) async fn events(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::invalid(format!("invalid query: {}", err.body_text())))?;
    let now = state.clock.now_ms();
    let from = parse_time("from", query.from.as_deref(), 0)?;
    let to = parse_time("to", query.to.as_deref(), now.saturating_add(1))?;
    let csv = match query.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::invalid("format must be json or csv")),
    };
    let tenant = super::current_tenant(&state, &user.scope).await?;
    let zone = jiff::tz::TimeZone::get(&tenant.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let records = state.db.events(&user.scope, from, to).await?;
    let views: Vec<EventView> = records
        .into_iter()
        .map(|record| {
            let timestamp = jiff::Timestamp::from_millisecond(record.event.time_ms)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            EventView {
                seq: record.seq,
                time: timestamp
                    .to_zoned_datetime(zone.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string(),
                time_utc: rfc3339(record.event.time_ms),
                actor: record.event.actor,
                source: record.event.source,
                action: record.event.action,
                target: record.event.target,
                result: record.event.result,
                request_id: record.event.request_id,
            }
        })
        .collect();
    user.audit
        .record(
            &state,
            &user.scope,
            "events.export",
            if csv { "csv" } else { "json" },
            &format!("ok: {} rows", views.len()),
        )
        .await?;
    if !csv {
        return Ok(Json(views).into_response());
    }
    let mut out = String::from("seq,time,time_utc,actor,source,action,target,result,request_id\r\n");
    for view in &views {
        let fields = [
            view.seq.to_string(),
            view.time.clone(),
            view.time_utc.clone(),
            view.actor.clone(),
            view.source.clone(),
            view.action.clone(),
            view.target.clone(),
            view.result.clone(),
            view.request_id.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"events.csv\""),
        ],
        out,
    )
        .into_response())
}

/// One CSV field (RFC 4180 quoting). A field a spreadsheet would run as a formula gets a
/// leading apostrophe, since log fields carry what users typed.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
