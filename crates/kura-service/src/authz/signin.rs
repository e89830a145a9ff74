//! The operations that start from a secret and end with a tenant scope: sign-in with
//! throttling and lockout, re-authentication, password reset links and agent
//! registration. They live here because only this module may make a [`TenantScope`].
//!
//! Sign-in answers the same for an unknown login ID, a wrong password and a disabled
//! account, takes as long (an unknown ID is checked against a dummy hash), and counts
//! failures by the login ID as typed and by source address (IPv6 by /64), so neither the
//! answer nor the lockout reveals whether a login exists, and an address that tries many
//! login IDs is slowed down like one that tries many passwords.

use std::net::IpAddr;

use super::authenticate::{outside_agent_networks, refuse_inactive_tenant, refuse_outside_admin_networks};
use super::{Caller, TenantRole, TenantScope, UserPrincipal};
use crate::audit::{self, Action, Actor, Chain, Entry};
use crate::db::{logins, machines, resets, sessions, users};
use crate::ids::{MachineId, TenantId, UserId};
use crate::model::{
    LoginCandidate, LoginFailures, NewMachine, NewUserSession, RegistrationOutcome, TenantStatus,
};
use crate::ops::accounts::{
    check_password_policy, hash_password_blocking, normalize_login, verify_password_blocking,
};
use crate::secrets::{TokenKind, new_token, random_hex, token_hash};
use crate::{Refusal, Service, ServiceError, ServiceResult, Settings, duration_ms, rfc3339, totp};

/// Failed attempts from one source after which each further attempt must wait, doubling
/// from one second: low enough that credential stuffing from one address meets a `429`
/// within its first ten failures.
const SOURCE_THROTTLE_AFTER: u32 = 5;

/// Whether a sign-in may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Allowed,
    /// Too many recent failures: wait until then.
    Wait {
        until_ms: i64,
    },
    /// Locked (this login ID or this source address) until then.
    Locked {
        until_ms: i64,
    },
}

/// How failures from `ip` are counted: IPv4 by address, IPv6 by /64 (one host owns a
/// whole /64 and can change address within it at will).
pub fn source_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => ipnet::Ipv6Net::new(v6, 64)
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
        Some(ip) => ip.to_string(),
        None => String::new(),
    }
}

/// Decides from the recent failures (counted over `login_lockout_period`).
pub fn throttle(settings: &Settings, failures: &LoginFailures, now_ms: i64) -> Throttle {
    let period = duration_ms(settings.login_lockout_period);
    let locked_until = |count: u32, threshold: u32, last: Option<i64>| {
        last.filter(|_| threshold > 0 && count >= threshold)
            .map(|last| last.saturating_add(period))
            .filter(|until| now_ms < *until)
    };
    let login_lock = locked_until(
        failures.by_login,
        settings.login_lockout_after,
        failures.last_by_login_ms,
    );
    let source_lock = locked_until(
        failures.by_source,
        settings.login_source_lockout_after,
        failures.last_by_source_ms,
    );
    if let Some(until_ms) = login_lock.max(source_lock) {
        return Throttle::Locked { until_ms };
    }
    let wait_until = |count: u32, after: u32, last: Option<i64>| {
        last.filter(|_| count >= after)
            .map(|last| last.saturating_add(1000_i64 << (count - after).min(20)))
            .filter(|until| now_ms < *until)
    };
    let login_wait = wait_until(
        failures.by_login,
        settings.login_throttle_after,
        failures.last_by_login_ms,
    );
    let source_wait = wait_until(
        failures.by_source,
        SOURCE_THROTTLE_AFTER,
        failures.last_by_source_ms,
    );
    match login_wait.max(source_wait) {
        Some(until_ms) => Throttle::Wait { until_ms },
        None => Throttle::Allowed,
    }
}

/// The refusal for a throttled attempt.
pub(super) fn throttled(throttle: Throttle, now_ms: i64) -> Option<(ServiceError, &'static str)> {
    match throttle {
        Throttle::Allowed => None,
        Throttle::Wait { until_ms } => {
            let seconds = (until_ms - now_ms).div_euclid(1000) + 1;
            Some((
                ServiceError::throttled(format!(
                    "too many failed sign-ins; wait {seconds} seconds before trying again"
                ))
                .because(Refusal::Throttled { until_ms }),
                "refused: throttled",
            ))
        }
        Throttle::Locked { until_ms } => Some((
            ServiceError::throttled(format!(
                "too many failed sign-ins for this login ID or from this address; try again after {} \
                 or ask your tenant admin to unlock the account",
                rfc3339(until_ms)
            ))
            .because(Refusal::Locked { until_ms }),
            "refused: locked",
        )),
    }
}

pub(super) async fn recent_failures(
    svc: &Service,
    login: &str,
    source: &str,
    now_ms: i64,
) -> ServiceResult<LoginFailures> {
    let since = now_ms.saturating_sub(duration_ms(svc.settings.login_lockout_period));
    Ok(logins::failures(&svc.db, login, source, since).await?)
}

/// A successful sign-in: the cookie and CSRF token are shown once, stored only hashed.
pub struct SignedIn {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    pub role: TenantRole,
    pub session_cookie: String,
    pub csrf_token: String,
    pub expires_ms: i64,
}

/// Where the first step of a sign-in in two steps (the portal's) leads.
pub enum SignInStep {
    SignedIn(SignedIn),
    /// The password was right and the account uses TOTP: the code follows with this
    /// proof ([`second_factor`]), so the password is not sent again. Sealed with the
    /// service key; good for [`SECOND_FACTOR_WINDOW_MS`].
    SecondFactor {
        pending: String,
    },
}

/// How long the proof of a right password waits for its second factor.
pub const SECOND_FACTOR_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The context a pending sign-in is sealed under, so no other sealed value passes for one.
const PENDING_CONTEXT: &str = "pending sign-in";

/// One sign-in attempt: when, by which login ID, from where, and whose log records it.
struct Attempt {
    now: i64,
    login: String,
    source: String,
    actor: Actor,
    /// The tenant of the login ID, if it names a user; the operator work log otherwise.
    scope: Option<TenantScope>,
}

impl Attempt {
    async fn start(
        svc: &Service,
        caller: &Caller,
        login: &str,
    ) -> ServiceResult<(Attempt, Option<LoginCandidate>)> {
        let login = normalize_login(login);
        let candidate = logins::candidate(&svc.db, &login).await?;
        let attempt = Attempt {
            now: svc.now_ms(),
            source: source_key(caller.source),
            actor: caller.actor(login.clone()),
            // The scope a failure is logged under; the caller has not proved anything yet.
            scope: candidate
                .as_ref()
                .map(|user| TenantScope::authenticated(user.tenant_id.clone())),
            login,
        };
        Ok((attempt, candidate))
    }

    async fn log(&self, svc: &Service, action: Action, result: &str) -> ServiceResult<()> {
        let chain = self.scope.as_ref().map_or_else(Chain::operators, Chain::tenant);
        audit::record_alone(
            &svc.db,
            &self.actor,
            self.now,
            Entry {
                chain,
                action,
                target: &self.login,
                result,
            },
        )
        .await?;
        Ok(())
    }

    /// Refuses a throttled or locked attempt (and logs it).
    async fn refuse_if_throttled(&self, svc: &Service) -> ServiceResult<LoginFailures> {
        let failures = recent_failures(svc, &self.login, &self.source, self.now).await?;
        if let Some((refusal, result)) = throttled(throttle(&svc.settings, &failures, self.now), self.now) {
            self.log(svc, Action::Login, result).await?;
            return Err(refusal);
        }
        Ok(failures)
    }
}

/// Checks a sign-in attempt and opens a session: the JSON API's sign-in, with the TOTP
/// code (if the account has one) in the same request. Every outcome is in the event log:
/// the tenant's when the login ID names a user, otherwise the operator work log.
pub async fn sign_in(
    svc: &Service,
    caller: &Caller,
    login: &str,
    password: String,
    totp_code: Option<&str>,
) -> ServiceResult<SignedIn> {
    let (attempt, user) = first_factor(svc, caller, login, password).await?;
    if user.totp_secret.is_some() && totp_code.is_none() {
        attempt
            .log(svc, Action::Login, "refused: TOTP code missing")
            .await?;
        return Err(ServiceError::unauthenticated(
            "this account uses TOTP: send the current code from your authenticator app (or a recovery code) as \"totp\"",
        ));
    }
    finish(svc, &attempt, user, totp_code).await
}

/// The first step of a sign-in in two steps: checks the password like [`sign_in`]; an
/// account with TOTP gets a proof to send with its code to [`second_factor`].
pub async fn sign_in_step(
    svc: &Service,
    caller: &Caller,
    login: &str,
    password: String,
) -> ServiceResult<SignInStep> {
    let (attempt, user) = first_factor(svc, caller, login, password).await?;
    if user.totp_secret.is_none() {
        return Ok(SignInStep::SignedIn(finish(svc, &attempt, user, None).await?));
    }
    let expires = attempt.now.saturating_add(SECOND_FACTOR_WINDOW_MS);
    let plain = format!("{} {expires} {}", user.user_id, attempt.login);
    Ok(SignInStep::SecondFactor {
        pending: svc.key.seal(&plain, PENDING_CONTEXT),
    })
}

/// The second step: the proof of [`sign_in_step`] and the TOTP (or recovery) code. The
/// account is checked again (disabled, tenant, admin networks) as it may have changed.
pub async fn second_factor(
    svc: &Service,
    caller: &Caller,
    pending: &str,
    code: &str,
) -> ServiceResult<SignedIn> {
    let expired = || {
        ServiceError::unauthenticated(
            "this sign-in took too long or was not started here; enter your password again",
        )
        .because(Refusal::SignInExpired)
    };
    let plain = svc.key.open(pending, PENDING_CONTEXT).map_err(|_| expired())?;
    let mut fields = plain.splitn(3, ' ');
    let (Some(user_id), Some(expires), Some(login)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(expired());
    };
    let (attempt, candidate) = Attempt::start(svc, caller, login).await?;
    if expires.parse::<i64>().is_ok_and(|expires| attempt.now >= expires) {
        return Err(expired());
    }
    attempt.refuse_if_throttled(svc).await?;
    let user = candidate
        .filter(|user| user.user_id.as_str() == user_id && !user.disabled)
        .ok_or_else(expired)?;
    admit(svc, &attempt, &user).await?;
    finish(svc, &attempt, user, Some(code)).await
}

/// Throttling, the password, the tenant and the admin networks.
async fn first_factor(
    svc: &Service,
    caller: &Caller,
    login: &str,
    password: String,
) -> ServiceResult<(Attempt, LoginCandidate)> {
    let (attempt, candidate) = Attempt::start(svc, caller, login).await?;
    let failures = attempt.refuse_if_throttled(svc).await?;
    // An admin signing in from outside the admin networks is refused anyway; failures
    // from there count against the address only, so nobody can lock an admin out from
    // anywhere by guessing at a predictable login ID.
    let counts_against_login = candidate.as_ref().is_none_or(|user| {
        user.role != TenantRole::Admin || machines::network_allows(&user.admin_networks, caller.source)
    });
    let failure_login = if counts_against_login {
        attempt.login.as_str()
    } else {
        ""
    };

    let stored_hash = candidate
        .as_ref()
        .filter(|user| !user.disabled)
        .map(|user| user.password_hash.clone());
    let password_ok = verify_password_blocking(password, stored_hash).await?;
    let Some(user) = candidate.filter(|_| password_ok) else {
        logins::record_failure(&svc.db, failure_login, &attempt.source, attempt.now).await?;
        attempt.log(svc, Action::Login, "failed").await?;
        let after = LoginFailures {
            by_login: failures.by_login + u32::from(counts_against_login),
            last_by_login_ms: Some(attempt.now),
            by_source: failures.by_source + 1,
            last_by_source_ms: Some(attempt.now),
        };
        if let Throttle::Locked { until_ms } = throttle(&svc.settings, &after, attempt.now) {
            attempt
                .log(
                    svc,
                    Action::LoginLockout,
                    &format!("locked until {}", rfc3339(until_ms)),
                )
                .await?;
        }
        return Err(ServiceError::unauthenticated(
            "sign-in failed: the login ID or password is wrong, or the account is disabled; \
             check them, or use \"forgot password\" or ask your tenant admin",
        )
        .because(Refusal::WrongCredentials));
    };
    admit(svc, &attempt, &user).await?;
    Ok((attempt, user))
}

/// The tenant is active, and an admin comes from the admin networks.
async fn admit(svc: &Service, attempt: &Attempt, user: &LoginCandidate) -> ServiceResult<()> {
    refuse_inactive_tenant(user.tenant_status)?;
    if user.role == TenantRole::Admin {
        let scope = TenantScope::authenticated(user.tenant_id.clone());
        refuse_outside_admin_networks(svc, &scope, &attempt.actor, &user.admin_networks).await?;
    }
    Ok(())
}

/// Checks the second factor of an account that has one and opens the session.
async fn finish(
    svc: &Service,
    attempt: &Attempt,
    user: LoginCandidate,
    totp_code: Option<&str>,
) -> ServiceResult<SignedIn> {
    let scope = TenantScope::authenticated(user.tenant_id.clone());
    if let Some(secret) = &user.totp_secret {
        let code = totp_code.map(str::trim).unwrap_or_default();
        if !use_second_factor(
            svc,
            &scope,
            &user.user_id,
            secret,
            user.totp_last_step,
            code,
            attempt.now,
        )
        .await?
        {
            logins::record_failure(&svc.db, &attempt.login, &attempt.source, attempt.now).await?;
            attempt.log(svc, Action::Login, "failed: wrong TOTP code").await?;
            return Err(ServiceError::unauthenticated(
                "the TOTP code is wrong or was already used; enter the next code your app shows",
            )
            .because(Refusal::WrongSecondFactor));
        }
    }
    let session_cookie = new_token(TokenKind::Session);
    let csrf_token = random_hex(32);
    let session = NewUserSession {
        id: random_hex(16),
        user_id: user.user_id.clone(),
        session_hash: token_hash(&session_cookie),
        csrf_hash: token_hash(&csrf_token),
        source: attempt.actor.source.map(|ip| ip.to_string()).unwrap_or_default(),
    };
    let mut tx = svc.db.begin().await?;
    logins::clear_failures(&mut tx, &attempt.login).await?;
    sessions::create(&mut tx, &scope, &session, attempt.now).await?;
    audit::record(
        &mut tx,
        &attempt.actor,
        attempt.now,
        Entry {
            chain: Chain::tenant(&scope),
            action: Action::Login,
            target: &attempt.login,
            result: "ok",
        },
    )
    .await?;
    tx.commit().await?;
    Ok(SignedIn {
        tenant_id: user.tenant_id,
        user_id: user.user_id,
        login: attempt.login.clone(),
        role: user.role,
        session_cookie,
        csrf_token,
        expires_ms: attempt
            .now
            .saturating_add(duration_ms(svc.settings.session_absolute_timeout)),
    })
}

/// Uses a TOTP code or a recovery code of the user; `false` if it is wrong or was used.
pub(crate) async fn use_second_factor(
    svc: &Service,
    scope: &TenantScope,
    user_id: &UserId,
    // Sealed with the service key.
    secret: &str,
    last_step: Option<i64>,
    code: &str,
    now_ms: i64,
) -> ServiceResult<bool> {
    if totp::looks_like_recovery_code(code) {
        let hash = token_hash(&code.to_ascii_lowercase());
        return Ok(users::use_recovery_code(&svc.db, scope, user_id, &hash, now_ms).await?);
    }
    let secret = crate::ops::totp::open_secret(svc, user_id, secret)?;
    Ok(match totp::matching_step(&secret, code, now_ms, last_step) {
        Some(step) => users::use_totp_step(&svc.db, scope, user_id, step).await?,
        None => false,
    })
}

/// Checks a signed-in user's password again before a sensitive change, throttled like a
/// sign-in; a wrong one is counted and recorded as `action` refused.
pub async fn verify_user_password(
    svc: &Service,
    user: &UserPrincipal,
    password: String,
    action: Action,
) -> ServiceResult<()> {
    reauthenticate(svc, user, action, "password", async {
        let stored = users::password_hash(&svc.db, &user.scope, &user.user_id).await?;
        verify_password_blocking(password, stored).await
    })
    .await
}

/// Checks a current TOTP code (or a recovery code, used up) of a signed-in user before a
/// sensitive change, throttled like a sign-in.
pub async fn verify_user_code(
    svc: &Service,
    user: &UserPrincipal,
    code: &str,
    action: Action,
) -> ServiceResult<()> {
    reauthenticate(svc, user, action, "code", async {
        let state = users::totp_state(&svc.db, &user.scope, &user.user_id).await?;
        let Some(secret) = state.secret else {
            return Ok(false);
        };
        use_second_factor(
            svc,
            &user.scope,
            &user.user_id,
            &secret,
            state.last_step,
            code,
            svc.now_ms(),
        )
        .await
    })
    .await
}

/// Runs `check` unless the user's login or address is throttled; counts and records a
/// failed check (`what` names the secret in the refusal).
async fn reauthenticate(
    svc: &Service,
    user: &UserPrincipal,
    action: Action,
    what: &str,
    check: impl Future<Output = ServiceResult<bool>>,
) -> ServiceResult<()> {
    let now = svc.now_ms();
    let source = source_key(user.actor.source);
    let failures = recent_failures(svc, &user.login, &source, now).await?;
    let record = |result: String| async move {
        let entry = Entry {
            chain: Chain::tenant(&user.scope),
            action,
            target: &user.login,
            result: &result,
        };
        audit::record_alone(&svc.db, &user.actor, now, entry).await
    };
    if let Some((refusal, result)) = throttled(throttle(&svc.settings, &failures, now), now) {
        record(result.to_owned()).await?;
        return Err(refusal);
    }
    if check.await? {
        return Ok(());
    }
    logins::record_failure(&svc.db, &user.login, &source, now).await?;
    record(format!("refused: wrong {what}")).await?;
    Err(ServiceError::forbidden(format!("the {what} is wrong")))
}

/// A user a "forgot password" request may mail a link to, or why not.
pub enum ForgotTarget {
    /// The login ID names no user; the operator log records the request.
    Unknown,
    /// The user exists but gets no link; the tenant's log records why.
    Refused {
        scope: TenantScope,
        reason: &'static str,
    },
    /// A link may go to `email`.
    Mail {
        scope: TenantScope,
        user_id: UserId,
        email: String,
    },
}

/// Resolves a "forgot password" request's login ID. Mails a user at most once in
/// `interval_ms`, so the route cannot flood a mailbox.
pub async fn forgot_target(svc: &Service, login: &str, interval_ms: i64) -> ServiceResult<ForgotTarget> {
    let Some(user) = logins::candidate(&svc.db, login).await? else {
        return Ok(ForgotTarget::Unknown);
    };
    // The login ID resolved to this tenant, whose log records the request.
    let scope = TenantScope::authenticated(user.tenant_id.clone());
    let refused = |reason| {
        Ok(ForgotTarget::Refused {
            scope: scope.clone(),
            reason,
        })
    };
    if user.disabled || user.tenant_status != TenantStatus::Active {
        return refused("refused: account disabled or tenant not active");
    }
    let Some(email) = user.email else {
        return refused("refused: no email address");
    };
    if resets::count_since(&svc.db, &scope, &user.user_id, svc.now_ms() - interval_ms).await? > 0 {
        return refused("refused: a link was sent less than 5 minutes ago");
    }
    Ok(ForgotTarget::Mail {
        scope,
        user_id: user.user_id,
        email,
    })
}

/// What a redeemed reset link changed.
pub struct RedeemedReset {
    pub login: String,
}

/// Sets a new password with a reset link: every session and API token of the user ends,
/// and failed sign-ins of the login are forgotten.
pub async fn redeem_reset(
    svc: &Service,
    caller: &Caller,
    token: &str,
    new_password: String,
) -> ServiceResult<RedeemedReset> {
    let now = svc.now_ms();
    let invalid = || {
        ServiceError::unauthenticated(
            "this reset link is unknown, already used or expired (links work once, for 30 minutes); ask for a new one",
        )
    };
    let hash = token_hash(token.trim());
    let (tenant_id, user_id, login) = resets::holder(&svc.db, &hash, now).await?.ok_or_else(invalid)?;
    check_password_policy(&login, &new_password)?;
    let scope = TenantScope::authenticated(tenant_id);
    let password_hash = hash_password_blocking(new_password).await?;
    let mut tx = svc.db.begin().await?;
    if !resets::consume(&mut tx, &scope, &hash, now).await? {
        return Err(invalid());
    }
    users::set_password(&mut tx, &scope, &user_id, &password_hash, None, now).await?;
    logins::clear_failures(&mut tx, &login).await?;
    audit::record(
        &mut tx,
        &caller.actor(login.clone()),
        now,
        Entry {
            chain: Chain::tenant(&scope),
            action: Action::PasswordReset,
            target: &login,
            result: "ok",
        },
    )
    .await?;
    tx.commit().await?;
    Ok(RedeemedReset { login })
}

/// A machine registered with a one-time token, and its credential (shown once).
pub struct RegisteredMachine {
    pub tenant_id: TenantId,
    pub machine_id: MachineId,
    pub credential: String,
}

/// Exchanges a registration token for a machine and its credential.
pub async fn register_machine(
    svc: &Service,
    caller: &Caller,
    token: &str,
    name: &str,
) -> ServiceResult<(RegistrationOutcome, Option<RegisteredMachine>)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 || crate::ops::has_hidden_characters(name) {
        return Err(ServiceError::invalid(
            "name must be 1 to 255 characters without control characters (e.g. the host name)",
        ));
    }
    let now = svc.now_ms();
    let credential = new_token(TokenKind::AgentCredential);
    let machine = NewMachine {
        registration_token_hash: token_hash(token.trim()),
        machine_id: MachineId::generate(),
        name: name.to_owned(),
        credential_hash: token_hash(&credential),
        peer: caller.source,
    };
    let mut tx = svc.db.begin().await?;
    let outcome = machines::register(&mut tx, &machine, now).await?;
    let RegistrationOutcome::Registered {
        tenant_id,
        machine_id,
    } = &outcome
    else {
        return Ok((outcome, None));
    };
    let scope = TenantScope::authenticated(tenant_id.clone());
    let actor = Actor {
        name: format!("agent:{machine_id}"),
        source: caller.source,
        request_id: caller.request_id.clone(),
    };
    audit::record(
        &mut tx,
        &actor,
        now,
        Entry {
            chain: Chain::tenant(&scope),
            action: Action::MachineRegister,
            target: name,
            result: "ok",
        },
    )
    .await?;
    tx.commit().await?;
    let registered = RegisteredMachine {
        tenant_id: tenant_id.clone(),
        machine_id: machine_id.clone(),
        credential,
    };
    Ok((outcome, Some(registered)))
}

/// The refusal for a registration outcome other than `Registered`.
pub fn registration_refusal(outcome: &RegistrationOutcome, peer: Option<IpAddr>) -> ServiceError {
    match outcome {
        RegistrationOutcome::Registered { .. } => ServiceError::conflict("the machine is registered"),
        RegistrationOutcome::UnknownToken => {
            ServiceError::unauthenticated("unknown registration token; check that it was copied completely")
        }
        RegistrationOutcome::TokenExpired => ServiceError::unauthenticated(
            "this registration token has expired; ask your tenant admin for a new one",
        ),
        RegistrationOutcome::TokenUsed => ServiceError::unauthenticated(
            "this registration token has already been used; each token registers one machine",
        ),
        RegistrationOutcome::MachineLimitReached { max_machines } => ServiceError::conflict(format!(
            "the tenant's machine limit is reached ({max_machines} machines); revoke a machine or ask the provider for a larger plan"
        )),
        RegistrationOutcome::TenantNotActive(status) => refuse_inactive_tenant(*status)
            .err()
            .unwrap_or_else(|| ServiceError::forbidden("this tenant is not active")),
        RegistrationOutcome::PeerOutsideAgentNetworks => outside_agent_networks(peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            registration_token_ttl: std::time::Duration::from_secs(3600),
            default_region: "jp".into(),
            session_idle_timeout: std::time::Duration::from_secs(3600),
            session_absolute_timeout: std::time::Duration::from_secs(3600),
            login_throttle_after: 3,
            login_lockout_after: 10,
            login_source_lockout_after: 50,
            login_lockout_period: std::time::Duration::from_secs(15 * 60),
            mail_enabled: false,
            gc_interval: std::time::Duration::ZERO,
            verify_interval: std::time::Duration::ZERO,
            expiry_interval: std::time::Duration::ZERO,
            meter_interval: std::time::Duration::ZERO,
            metadata_backup_interval: std::time::Duration::ZERO,
            operator_networks: Vec::new(),
        }
    }

    #[test]
    fn failures_throttle_then_lock() {
        let settings = settings();
        let failures = |by_login, by_source| LoginFailures {
            by_login,
            last_by_login_ms: Some(1_000_000),
            by_source,
            last_by_source_ms: Some(1_000_000),
        };
        assert_eq!(throttle(&settings, &failures(2, 2), 1_000_000), Throttle::Allowed);
        assert_eq!(
            throttle(&settings, &failures(3, 3), 1_000_500),
            Throttle::Wait { until_ms: 1_001_000 }
        );
        assert_eq!(throttle(&settings, &failures(5, 5), 1_004_000), Throttle::Allowed);
        let locked = Throttle::Locked {
            until_ms: 1_000_000 + 15 * 60_000,
        };
        assert_eq!(throttle(&settings, &failures(10, 10), 1_500_000), locked);
        assert_eq!(throttle(&settings, &failures(1, 50), 1_500_000), locked);
        assert_eq!(
            throttle(&settings, &failures(10, 10), 1_000_000 + 15 * 60_000),
            Throttle::Allowed
        );
    }

    #[test]
    fn many_login_ids_from_one_address_are_slowed() {
        let settings = settings();
        let from_one_address = |by_source| LoginFailures {
            by_login: 1,
            last_by_login_ms: Some(1_000_000),
            by_source,
            last_by_source_ms: Some(1_000_000),
        };
        assert_eq!(
            throttle(&settings, &from_one_address(4), 1_000_100),
            Throttle::Allowed
        );
        assert_eq!(
            throttle(&settings, &from_one_address(7), 1_000_100),
            Throttle::Wait { until_ms: 1_004_000 }
        );
    }

    #[test]
    fn ipv6_sources_count_by_64() {
        let a = source_key(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = source_key(Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_ne!(a, source_key(Some("2001:db8:1:3::1".parse().unwrap())));
        assert_eq!(source_key(Some("192.0.2.7".parse().unwrap())), "192.0.2.7");
    }
}
