//! Turning a credential into a principal, or refusing it with a precise reason.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{AgentPrincipal, Caller, ContractScope, TenantScope, UserCredential, UserPrincipal};
use crate::audit::{self, Action, Actor, Chain, Entry};
use crate::authz::TenantRole;
use crate::db::{machines, sessions, tenants, tokens};
use crate::ids::{TenantId, UserId};
use crate::model::{LAST_SEEN_RESOLUTION_MS, TenantStatus};
use crate::secrets::token_hash;
use crate::totp::TotpPolicy;
use crate::{Refusal, Service, ServiceError, ServiceResult, duration_ms, rfc3339};

/// The agent holding this credential, if its tenant is active and `peer` is inside the
/// tenant's agent networks.
pub async fn agent(
    svc: &Service,
    credential: &str,
    peer: Option<IpAddr>,
    caller: &Caller,
) -> ServiceResult<AgentPrincipal> {
    let agent = machines::agent_by_credential(&svc.db, &token_hash(credential))
        .await?
        .ok_or_else(|| ServiceError::unauthenticated("unknown agent credential"))?;
    if agent.credential_revoked {
        return Err(ServiceError::unauthenticated(
            "this agent's credential was revoked; register the machine again",
        ));
    }
    refuse_inactive_tenant(agent.tenant_status)?;
    if !machines::network_allows(&agent.agent_networks, peer) {
        return Err(outside_agent_networks(peer));
    }
    let scope = TenantScope::authenticated(agent.tenant_id);
    let now = svc.now_ms();
    if agent
        .last_seen_ms
        .is_none_or(|seen| now.saturating_sub(seen) >= LAST_SEEN_RESOLUTION_MS)
    {
        machines::touch(&svc.db, &scope, &agent.machine_id, now).await?;
    }
    Ok(AgentPrincipal {
        scope,
        actor: Actor {
            name: format!("agent:{}", agent.machine_id),
            source: peer,
            request_id: caller.request_id.clone(),
        },
        machine_id: agent.machine_id,
        time_zone: agent.tenant_time_zone,
    })
}

/// What the request asks of a user's credential besides being valid.
#[derive(Debug, Clone, Copy)]
pub struct UserCheck<'a> {
    /// The CSRF token sent with a cookie session (header or form field).
    pub csrf_token: Option<&'a str>,
    /// The request changes something, so a cookie session must prove it with the CSRF token.
    pub changes_state: bool,
    /// The route is one a user who must still enrol in TOTP may use (to enrol, or to leave).
    pub open_before_totp_enrolment: bool,
}

/// The user holding this session cookie.
pub async fn session(
    svc: &Service,
    cookie: &str,
    check: UserCheck<'_>,
    caller: &Caller,
) -> ServiceResult<UserPrincipal> {
    let now = svc.now_ms();
    let signed_out = || {
        ServiceError::unauthenticated("not signed in: POST /api/v1/login, or send an API token as Bearer")
            .because(Refusal::SessionEnded)
    };
    let session = sessions::identity(&svc.db, &token_hash(cookie))
        .await?
        .ok_or_else(signed_out)?;
    let idle = duration_ms(svc.settings.session_idle_timeout);
    let absolute = duration_ms(svc.settings.session_absolute_timeout);
    if session.revoked
        || session.user_disabled
        || now >= session.last_seen_ms.saturating_add(idle)
        || now >= session.created_ms.saturating_add(absolute)
    {
        return Err(
            ServiceError::unauthenticated("your session has ended; sign in again")
                .because(Refusal::SessionEnded),
        );
    }
    refuse_inactive_tenant(session.tenant_status)?;
    refuse_before_totp_enrolment(check, session.totp_policy, session.role, session.totp_enrolled)?;
    if check.changes_state
        && check
            .csrf_token
            .is_none_or(|csrf| token_hash(csrf) != session.csrf_hash)
    {
        // A forged form or a page from an ended session: worth a line in the tenant's log.
        audit::record_alone(
            &svc.db,
            &caller.actor(session.login.clone()),
            now,
            Entry {
                chain: Chain::tenant(&TenantScope::authenticated(session.tenant_id.clone())),
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
    let user = user_principal(
        svc,
        caller,
        Resolved {
            tenant_id: session.tenant_id,
            user_id: session.user_id,
            login: session.login,
            role: session.role,
            admin_networks: &session.admin_networks,
            credential: UserCredential::Session(session.session_id.clone()),
        },
    )
    .await?;
    // Activity is written at most once a minute per session: a page that loads with its
    // assets, or a script polling the API, would otherwise write on every request.
    if now >= session.last_seen_ms.saturating_add(TOUCH_EVERY_MS) {
        sessions::touch(&svc.db, &user.scope, &session.session_id, now).await?;
    }
    Ok(user)
}

/// How stale a session's recorded activity may be: the idle timeout counts from it, so a
/// session may end up to this much before its idle timeout after the last request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The user holding this API token, acting with the token's role.
pub async fn api_token(
    svc: &Service,
    token: &str,
    check: UserCheck<'_>,
    caller: &Caller,
) -> ServiceResult<UserPrincipal> {
    let now = svc.now_ms();
    let token = tokens::identity(&svc.db, &token_hash(token))
        .await?
        .ok_or_else(|| {
            ServiceError::unauthenticated("unknown API token; check that it was copied completely")
        })?;
    if token.revoked {
        return Err(ServiceError::unauthenticated(
            "this API token was revoked; create a new one",
        ));
    }
    if now >= token.expires_ms {
        return Err(ServiceError::unauthenticated(format!(
            "this API token expired at {}; create a new one",
            rfc3339(token.expires_ms)
        )));
    }
    if token.user_disabled {
        return Err(ServiceError::unauthenticated(
            "the account owning this API token is disabled",
        ));
    }
    if !token.user_role.covers(token.token_role) {
        return Err(ServiceError::unauthenticated(
            "this API token's role is above its owner's current role; create a new token",
        ));
    }
    refuse_inactive_tenant(token.tenant_status)?;
    refuse_before_totp_enrolment(check, token.totp_policy, token.user_role, token.totp_enrolled)?;
    let user = user_principal(
        svc,
        caller,
        Resolved {
            tenant_id: token.tenant_id,
            user_id: token.user_id,
            login: token.login,
            role: token.token_role,
            admin_networks: &token.admin_networks,
            credential: UserCredential::ApiToken(token.token_id.clone()),
        },
    )
    .await?;
    tokens::touch(&svc.db, &user.scope, &token.token_id, now).await?;
    Ok(user)
}

/// A user credential the database resolved, with the role in force.
struct Resolved<'a> {
    tenant_id: TenantId,
    user_id: UserId,
    login: String,
    role: TenantRole,
    admin_networks: &'a [IpNet],
    credential: UserCredential,
}

/// The principal of a resolved credential; an admin role must come from the tenant's
/// admin networks.
async fn user_principal(
    svc: &Service,
    caller: &Caller,
    resolved: Resolved<'_>,
) -> ServiceResult<UserPrincipal> {
    let scope = TenantScope::authenticated(resolved.tenant_id);
    let actor = caller.actor(resolved.login.clone());
    if resolved.role == TenantRole::Admin {
        refuse_outside_admin_networks(svc, &scope, &actor, resolved.admin_networks).await?;
    }
    Ok(UserPrincipal {
        scope,
        user_id: resolved.user_id,
        login: resolved.login,
        role: resolved.role,
        credential: resolved.credential,
        actor,
    })
}

/// The scope in which an operator may read a tenant's customer data: only while the
/// tenant's admins grant support access.
pub async fn support_scope(svc: &Service, contract: &ContractScope) -> ServiceResult<TenantScope> {
    let tenant = tenants::get(&svc.db, contract).await?.ok_or_else(|| {
        ServiceError::not_found(format!("no tenant with id {:?}", contract.tenant_id().as_str()))
    })?;
    if tenant.support_until_ms.is_some_and(|until| svc.now_ms() < until) {
        Ok(TenantScope::authenticated(tenant.id))
    } else {
        Err(ServiceError::forbidden(
            "this tenant has not granted support access (or the grant has expired); \
             ask a tenant admin to grant it (PUT /api/v1/tenant/support-access)",
        ))
    }
}

/// A suspended or terminated tenant is locked out at once.
pub fn refuse_inactive_tenant(status: TenantStatus) -> ServiceResult<()> {
    match status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(ServiceError::forbidden(
            "this tenant is suspended; contact your service provider",
        )
        .because(Refusal::TenantSuspended)),
        TenantStatus::Terminated => Err(ServiceError::forbidden(
            "this tenant's contract has been terminated",
        )
        .because(Refusal::TenantTerminated)),
    }
}

pub(crate) fn outside_agent_networks(peer: Option<IpAddr>) -> ServiceError {
    let peer = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    ServiceError::forbidden(format!(
        "this tenant accepts agents only from its configured networks, and {peer} is not in them"
    ))
}

/// The tenant's TOTP policy: a user it covers who has not enrolled can only enrol.
fn refuse_before_totp_enrolment(
    check: UserCheck<'_>,
    policy: TotpPolicy,
    role: TenantRole,
    enrolled: bool,
) -> ServiceResult<()> {
    if enrolled || !policy.requires(role) || check.open_before_totp_enrolment {
        return Ok(());
    }
    Err(ServiceError::forbidden(
        "your tenant requires TOTP for your role: enrol first (POST /api/v1/totp/enroll, then /api/v1/totp/confirm)",
    )
    .because(Refusal::TotpEnrolmentRequired))
}

/// The admin allow-list: refused requests say so and are logged in the tenant's log.
pub(crate) async fn refuse_outside_admin_networks(
    svc: &Service,
    scope: &TenantScope,
    actor: &Actor,
    networks: &[IpNet],
) -> ServiceResult<()> {
    if machines::network_allows(networks, actor.source) {
        return Ok(());
    }
    audit::record_alone(
        &svc.db,
        actor,
        svc.now_ms(),
        Entry {
            chain: Chain::tenant(scope),
            action: Action::AdminAccess,
            target: &actor.name,
            result: "refused: outside admin networks",
        },
    )
    .await?;
    let peer = actor
        .source
        .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    Err(ServiceError::forbidden(format!(
        "admins of this tenant may sign in only from its admin networks, and {peer} is not in them; \
         ask another admin to add it"
    ))
    .because(Refusal::OutsideAdminNetworks { address: peer }))
}
