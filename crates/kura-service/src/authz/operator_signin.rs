//! Provider staff's credentials: console sign-in (login ID and password, then a TOTP
//! code, which is mandatory: an account enrols at its first sign-in, together with a
//! password of its own in place of the one-time password it was created with), console
//! sessions, API tokens, and the management networks every operator must come from.
//!
//! Failures are throttled and locked out like tenant users' (counted by the login ID
//! under an `operator:` prefix, so an operator and a tenant user with the same login ID
//! do not lock each other out, and by source address), and every outcome is in the
//! operator work log.

use ipnet::IpNet;

use super::signin::{recent_failures, source_key, throttle, throttled};
use super::{Caller, OperatorCredential, OperatorPrincipal, Throttle, UserCheck};
use crate::audit::{self, Action, Actor, Chain, Entry};
use crate::db::{logins, machines, operators};
use crate::ids::OperatorId;
use crate::model::{LoginFailures, OperatorCandidate};
use crate::ops::accounts::{normalize_login, verify_password_blocking};
use crate::secrets::{TokenKind, new_token, random_hex, token_hash};
use crate::{Refusal, Service, ServiceError, ServiceResult, duration_ms, rfc3339, totp};

/// A console session just opened: the cookie and CSRF token are shown once.
pub struct OperatorSignedIn {
    pub operator_id: OperatorId,
    pub login: String,
    pub role: super::ProviderRole,
    pub session_cookie: String,
    pub csrf_token: String,
    pub expires_ms: i64,
    /// `false` at the first sign-in: the session may only set a password and enrol TOTP.
    pub set_up: bool,
}

/// Where the first step of the console's sign-in leads.
pub enum OperatorSignIn {
    SignedIn(OperatorSignedIn),
    /// The password was right: the TOTP code follows with this proof (sealed with the
    /// service key, good for [`super::SECOND_FACTOR_WINDOW_MS`]).
    SecondFactor {
        pending: String,
    },
}

/// The context a pending operator sign-in is sealed under.
const PENDING_CONTEXT: &str = "pending operator sign-in";

/// The context an operator's TOTP secret is sealed under.
pub(crate) fn totp_context(id: &OperatorId) -> String {
    format!("totp:operator:{id}")
}

/// Login IDs of operators count failures apart from tenant users'.
fn failure_key(login: &str) -> String {
    format!("operator:{login}")
}

/// Refuses an operator outside the management networks, and logs it.
async fn refuse_outside_networks(svc: &Service, actor: &Actor, now: i64) -> ServiceResult<()> {
    let networks: &[IpNet] = &svc.settings.operator_networks;
    if networks.is_empty() || machines::network_allows(networks, actor.source) {
        return Ok(());
    }
    audit::record_alone(
        &svc.db,
        actor,
        now,
        Entry {
            chain: Chain::operators(),
            action: Action::OperatorAccess,
            target: &actor.name,
            result: "refused: outside the operator networks",
        },
    )
    .await?;
    let address = actor
        .source
        .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    Err(ServiceError::forbidden(format!(
        "operators may work only from the management networks (operator_networks), and {address} is not in them"
    ))
    .because(Refusal::OutsideOperatorNetworks { address }))
}

/// The operator holding this API token, acting with the token's role.
pub async fn operator(svc: &Service, token: &str, caller: &Caller) -> ServiceResult<OperatorPrincipal> {
    let identity = operators::by_hash(&svc.db, &token_hash(token))
        .await?
        .ok_or_else(|| ServiceError::unauthenticated("invalid or revoked operator token"))?;
    let token = identity.token;
    let now = svc.now_ms();
    let name = token.owner_login.clone().unwrap_or_else(|| token.name.clone());
    refuse_outside_networks(svc, &caller.actor(format!("operator:{name}")), now).await?;
    if let Some(expires) = token.expires_ms
        && now >= expires
    {
        return Err(ServiceError::unauthenticated(format!(
            "this operator token expired at {}; issue a new one",
            rfc3339(expires)
        )));
    }
    if token.operator_id.is_some() {
        if identity.owner_disabled {
            return Err(ServiceError::unauthenticated(
                "the operator account owning this token is disabled",
            ));
        }
        if !identity.owner_role.is_some_and(|owner| owner.covers(token.role)) {
            return Err(ServiceError::unauthenticated(
                "this token's role is above its owner's current role; issue a new token",
            ));
        }
    }
    if token
        .last_used_ms
        .is_none_or(|used| now.saturating_sub(used) >= TOUCH_EVERY_MS)
    {
        operators::touch_token(&svc.db, &token.id, now).await?;
    }
    Ok(OperatorPrincipal {
        name,
        role: token.role,
        account: token.operator_id,
        credential: OperatorCredential::Token(token.id),
        set_up: true,
    })
}

/// How stale recorded activity may be (sessions' idle timeout, tokens' last use).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The operator of this console session.
pub async fn operator_session(
    svc: &Service,
    cookie: &str,
    check: UserCheck<'_>,
    caller: &Caller,
) -> ServiceResult<OperatorPrincipal> {
    let now = svc.now_ms();
    let ended = || {
        ServiceError::unauthenticated("your session has ended; sign in again").because(Refusal::SessionEnded)
    };
    let session = operators::session(&svc.db, &token_hash(cookie))
        .await?
        .ok_or_else(ended)?;
    let idle = duration_ms(svc.settings.session_idle_timeout);
    let absolute = duration_ms(svc.settings.session_absolute_timeout);
    if session.revoked
        || session.disabled
        || now >= session.last_seen_ms.saturating_add(idle)
        || now >= session.created_ms.saturating_add(absolute)
    {
        return Err(ended());
    }
    let actor = caller.actor(format!("operator:{}", session.login));
    refuse_outside_networks(svc, &actor, now).await?;
    if check.changes_state
        && check
            .csrf_token
            .is_none_or(|csrf| token_hash(csrf) != session.csrf_hash)
    {
        audit::record_alone(
            &svc.db,
            &actor,
            now,
            Entry {
                chain: Chain::operators(),
                action: Action::CsrfRefused,
                target: &session.login,
                result: "refused: missing or wrong CSRF token",
            },
        )
        .await?;
        return Err(ServiceError::forbidden(
            "missing or wrong CSRF token: send the csrf_token returned at sign-in as the X-CSRF-Token header \
             (or the csrf_token form field)",
        )
        .because(Refusal::FormExpired));
    }
    let set_up = session.totp_enrolled && session.password_changed;
    if !set_up && !check.open_before_totp_enrolment {
        return Err(ServiceError::forbidden(
            "finish your first sign-in first: set your own password (POST /api/v1/operator/account/password) \
             and enrol TOTP (POST /api/v1/operator/account/totp/enroll, then …/confirm)",
        )
        .because(Refusal::OperatorSetupRequired));
    }
    if now >= session.last_seen_ms.saturating_add(TOUCH_EVERY_MS) {
        operators::touch_session(&svc.db, &session.session_id, now).await?;
    }
    Ok(OperatorPrincipal {
        name: session.login,
        role: session.role,
        account: Some(session.operator_id),
        credential: OperatorCredential::Session(session.session_id),
        set_up,
    })
}

/// One sign-in attempt.
struct Attempt {
    now: i64,
    login: String,
    failure_key: String,
    source: String,
    actor: Actor,
}

impl Attempt {
    async fn start(
        svc: &Service,
        caller: &Caller,
        login: &str,
    ) -> ServiceResult<(Attempt, Option<OperatorCandidate>)> {
        let login = normalize_login(login);
        let candidate = operators::candidate(&svc.db, &login).await?;
        let attempt = Attempt {
            now: svc.now_ms(),
            failure_key: failure_key(&login),
            source: source_key(caller.source),
            actor: caller.actor(format!("operator:{login}")),
            login,
        };
        refuse_outside_networks(svc, &attempt.actor, attempt.now).await?;
        Ok((attempt, candidate))
    }

    async fn log(&self, svc: &Service, action: Action, result: &str) -> ServiceResult<()> {
        audit::record_alone(
            &svc.db,
            &self.actor,
            self.now,
            Entry {
                chain: Chain::operators(),
                action,
                target: &self.login,
                result,
            },
        )
        .await?;
        Ok(())
    }

    async fn refuse_if_throttled(&self, svc: &Service) -> ServiceResult<LoginFailures> {
        let failures = recent_failures(svc, &self.failure_key, &self.source, self.now).await?;
        if let Some((refusal, result)) = throttled(throttle(&svc.settings, &failures, self.now), self.now) {
            self.log(svc, Action::OperatorLogin, result).await?;
            return Err(refusal);
        }
        Ok(failures)
    }

    /// Counts and logs a failure; a lockout it causes is logged too.
    async fn fail(&self, svc: &Service, failures: &LoginFailures, result: &str) -> ServiceResult<()> {
        logins::record_failure(&svc.db, &self.failure_key, &self.source, self.now).await?;
        self.log(svc, Action::OperatorLogin, result).await?;
        let after = LoginFailures {
            by_login: failures.by_login + 1,
            last_by_login_ms: Some(self.now),
            by_source: failures.by_source + 1,
            last_by_source_ms: Some(self.now),
        };
        if let Throttle::Locked { until_ms } = throttle(&svc.settings, &after, self.now) {
            self.log(
                svc,
                Action::OperatorLoginLockout,
                &format!("locked until {}", rfc3339(until_ms)),
            )
            .await?;
        }
        Ok(())
    }
}

fn wrong_credentials() -> ServiceError {
    ServiceError::unauthenticated(
        "sign-in failed: the login ID or password is wrong, or the account is disabled; \
         ask an operator-admin if you cannot sign in",
    )
    .because(Refusal::WrongCredentials)
}

/// Throttling, the networks and the password.
async fn first_factor(
    svc: &Service,
    caller: &Caller,
    login: &str,
    password: String,
) -> ServiceResult<(Attempt, LoginFailures, OperatorCandidate)> {
    let (attempt, candidate) = Attempt::start(svc, caller, login).await?;
    let failures = attempt.refuse_if_throttled(svc).await?;
    let stored = candidate
        .as_ref()
        .filter(|account| !account.disabled)
        .map(|account| account.password_hash.clone());
    let password_ok = verify_password_blocking(password, stored).await?;
    let Some(account) = candidate.filter(|_| password_ok) else {
        attempt.fail(svc, &failures, "failed").await?;
        return Err(wrong_credentials());
    };
    Ok((attempt, failures, account))
}

/// The JSON API's sign-in: password and, once enrolled, the TOTP code in one request.
/// An account that has not finished its first sign-in gets a session that may only do that.
pub async fn operator_sign_in(
    svc: &Service,
    caller: &Caller,
    login: &str,
    password: String,
    totp_code: Option<&str>,
) -> ServiceResult<OperatorSignedIn> {
    let (attempt, failures, account) = first_factor(svc, caller, login, password).await?;
    if account.totp_secret.is_some() && totp_code.is_none() {
        attempt
            .log(svc, Action::OperatorLogin, "refused: TOTP code missing")
            .await?;
        return Err(ServiceError::unauthenticated(
            "operators sign in with a TOTP code: send the current code of your authenticator app as \"totp\"",
        ));
    }
    finish(svc, &attempt, &failures, account, totp_code).await
}

/// The console's first step: the password; an enrolled account gets a proof to send
/// with its code to [`operator_second_factor`].
pub async fn operator_sign_in_step(
    svc: &Service,
    caller: &Caller,
    login: &str,
    password: String,
) -> ServiceResult<OperatorSignIn> {
    let (attempt, failures, account) = first_factor(svc, caller, login, password).await?;
    if account.totp_secret.is_none() {
        return Ok(OperatorSignIn::SignedIn(
            finish(svc, &attempt, &failures, account, None).await?,
        ));
    }
    let expires = attempt.now.saturating_add(super::SECOND_FACTOR_WINDOW_MS);
    let plain = format!("{} {expires} {}", account.id, attempt.login);
    Ok(OperatorSignIn::SecondFactor {
        pending: svc.key.seal(&plain, PENDING_CONTEXT),
    })
}

/// The console's second step: the proof of the first and the TOTP code.
pub async fn operator_second_factor(
    svc: &Service,
    caller: &Caller,
    pending: &str,
    code: &str,
) -> ServiceResult<OperatorSignedIn> {
    let expired = || {
        ServiceError::unauthenticated(
            "this sign-in took too long or was not started here; enter your password again",
        )
        .because(Refusal::SignInExpired)
    };
    let plain = svc.key.open(pending, PENDING_CONTEXT).map_err(|_| expired())?;
    let mut fields = plain.splitn(3, ' ');
    let (Some(id), Some(expires), Some(login)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(expired());
    };
    let (attempt, candidate) = Attempt::start(svc, caller, login).await?;
    if expires.parse::<i64>().is_ok_and(|expires| attempt.now >= expires) {
        return Err(expired());
    }
    let failures = attempt.refuse_if_throttled(svc).await?;
    let account = candidate
        .filter(|account| account.id.as_str() == id && !account.disabled)
        .ok_or_else(expired)?;
    finish(svc, &attempt, &failures, account, Some(code)).await
}

/// Checks the TOTP code of an enrolled account and opens the session.
async fn finish(
    svc: &Service,
    attempt: &Attempt,
    failures: &LoginFailures,
    account: OperatorCandidate,
    code: Option<&str>,
) -> ServiceResult<OperatorSignedIn> {
    if let Some(secret) = &account.totp_secret
        && !use_code(
            svc,
            &account.id,
            secret,
            account.totp_last_step,
            code.unwrap_or_default(),
        )
        .await?
    {
        attempt.fail(svc, failures, "failed: wrong TOTP code").await?;
        return Err(ServiceError::unauthenticated(
            "the TOTP code is wrong or was already used; enter the next code your app shows",
        )
        .because(Refusal::WrongSecondFactor));
    }
    let set_up = account.totp_secret.is_some() && account.password_changed;
    let session_cookie = new_token(TokenKind::Session);
    let csrf_token = random_hex(32);
    let session_id = random_hex(16);
    let source = attempt.actor.source.map(|ip| ip.to_string()).unwrap_or_default();
    let mut tx = svc.db.begin().await?;
    logins::clear_failures(&mut tx, &attempt.failure_key).await?;
    operators::create_session(
        &mut tx,
        &operators::NewOperatorSession {
            id: &session_id,
            operator_id: &account.id,
            session_hash: &token_hash(&session_cookie),
            csrf_hash: &token_hash(&csrf_token),
            source: &source,
        },
        attempt.now,
    )
    .await?;
    let result = if set_up {
        "ok"
    } else {
        "ok: first sign-in, setup required"
    };
    audit::record(
        &mut tx,
        &attempt.actor,
        attempt.now,
        Entry {
            chain: Chain::operators(),
            action: Action::OperatorLogin,
            target: &attempt.login,
            result,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(OperatorSignedIn {
        operator_id: account.id,
        login: attempt.login.clone(),
        role: account.role,
        session_cookie,
        csrf_token,
        expires_ms: attempt
            .now
            .saturating_add(duration_ms(svc.settings.session_absolute_timeout)),
        set_up,
    })
}

/// Uses a TOTP code of an operator: `false` if it is wrong or was used.
pub(crate) async fn use_code(
    svc: &Service,
    id: &OperatorId,
    sealed: &str,
    last_step: Option<i64>,
    code: &str,
) -> ServiceResult<bool> {
    let secret = svc.key.open(sealed, &totp_context(id)).map_err(|err| {
        ServiceError::internal(
            "cannot open a stored TOTP secret (is service_key the one that sealed it?)",
            &err,
        )
    })?;
    Ok(
        match totp::matching_step(&secret, code.trim(), svc.now_ms(), last_step) {
            Some(step) => operators::use_totp_step(&svc.db, id, step).await?,
            None => false,
        },
    )
}

/// Checks a signed-in operator's password again (before changing it), throttled like a
/// sign-in; a wrong one is counted and logged as `action` refused.
pub async fn verify_operator_password(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    password: String,
    action: Action,
) -> ServiceResult<()> {
    let (id, _) = operator.session()?;
    let (attempt, _) = Attempt::start(svc, caller, operator.name()).await?;
    attempt.refuse_if_throttled(svc).await?;
    let stored = operators::password_hash(&svc.db, id).await?;
    if verify_password_blocking(password, stored).await? {
        return Ok(());
    }
    logins::record_failure(&svc.db, &attempt.failure_key, &attempt.source, attempt.now).await?;
    attempt.log(svc, action, "refused: wrong password").await?;
    Err(ServiceError::forbidden("the current password is wrong"))
}
