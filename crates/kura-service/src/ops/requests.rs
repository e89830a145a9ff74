//! Support requests: a tenant user reports an event or asks for help (a question, an
//! incident with the service, a security event they noticed); operators see every
//! tenant's requests, reply and close them; a reply is mailed to the requester in their
//! language through the outbox. Users see their own requests, admins all of their
//! tenant's. A security event is flagged in the operator work log as well as in the
//! tenant's log.

use std::time::Duration;

use crate::audit::{self, Action, Chain, Entry};
use crate::authz::{Caller, ContractScope, OperatorPrincipal, Permission, UserPrincipal};
use crate::db::requests::{self, NewRequest};
use crate::db::{Tx, operators, outbox, tenants, users};
use crate::ids::{RequestId, TenantId};
use crate::mail::MailContent;
use crate::model::{
    NewMail, RequestCategory, RequestFilter, RequestStatus, SupportMessage, SupportRequestRecord,
};
use crate::ops::record_in;
use crate::{Service, ServiceError, ServiceResult, duration_ms};

/// Longest subject, in characters.
pub const MAX_SUBJECT: usize = 200;
/// Longest message, in characters.
pub const MAX_MESSAGE: usize = 20_000;
/// How many requests a list shows at most.
pub const MAX_LIMIT: u32 = 500;
const MAIL_GIVE_UP: Duration = Duration::from_secs(3 * 24 * 3600);

/// A request with its thread.
#[derive(Debug, Clone)]
pub struct RequestThread {
    pub request: SupportRequestRecord,
    pub messages: Vec<SupportMessage>,
}

fn text(field: &str, value: &str, max: usize) -> ServiceResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ServiceError::invalid(format!("{field}: write something")));
    }
    if value.chars().count() > max {
        return Err(ServiceError::invalid(format!(
            "{field}: at most {max} characters"
        )));
    }
    Ok(value.to_owned())
}

fn parse_id(id: &str) -> ServiceResult<RequestId> {
    RequestId::parse(id).ok_or_else(|| ServiceError::not_found(format!("no support request {id}")))
}

/// Opens a request with its first message.
pub async fn open(
    svc: &Service,
    user: &UserPrincipal,
    category: RequestCategory,
    subject: &str,
    body: &str,
) -> ServiceResult<RequestThread> {
    let subject = text("subject", subject, MAX_SUBJECT)?;
    let body = text("body", body, MAX_MESSAGE)?;
    let id = RequestId::generate();
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    requests::open(
        &mut tx,
        &user.scope,
        &NewRequest {
            id: &id,
            user_id: &user.user_id,
            requester: &user.login,
            category,
            subject: &subject,
            body: &body,
        },
        now,
    )
    .await?;
    let target = format!("{id} {subject:?}");
    let result = format!("opened: {}", category.as_str());
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::SupportRequest,
        &target,
        &result,
    )
    .await?;
    // Operators see every request in the console; a security event also goes into their
    // work log, so it stands out in what they review.
    if category == RequestCategory::SecurityEvent {
        let target = format!("{} {target}", user.scope.tenant_id());
        audit::record(
            &mut tx,
            &user.actor,
            now,
            Entry {
                chain: Chain::operators(),
                action: Action::SupportRequest,
                target: &target,
                result: "opened: security-event (flagged)",
            },
        )
        .await?;
    }
    let thread = thread_in(&mut tx, &user.scope, &id).await?;
    mail_operators(svc, &mut tx, user, &thread.request, &body, false, now).await?;
    tx.commit().await?;
    Ok(thread)
}

/// Tells every operator with a mail address that a tenant user opened a request or wrote
/// again in one (`body`), so nobody has to watch the console for it.
async fn mail_operators(
    svc: &Service,
    tx: &mut Tx,
    user: &UserPrincipal,
    request: &SupportRequestRecord,
    body: &str,
    follow_up: bool,
    now: i64,
) -> ServiceResult<()> {
    if !svc.settings.mail_enabled {
        return Ok(());
    }
    let recipients = operators::mailboxes(&mut *tx, None).await?;
    if recipients.is_empty() {
        return Ok(());
    }
    let tenant = tenants::get(&mut *tx, &user.scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    for mailbox in &recipients {
        let mail = NewMail {
            recipient: mailbox.email.clone(),
            language: mailbox.language,
            content: MailContent::OperatorSupportRequest {
                login: mailbox.login.clone(),
                tenant: tenant.name.clone(),
                service_code: tenant.service_code.clone(),
                requester: user.login.clone(),
                category: request.category.as_str().to_owned(),
                subject: request.subject.clone(),
                body: body.to_owned(),
                follow_up,
                link: format!("{}/support/{}", svc.console_url, request.id),
            },
            give_up_ms: now + duration_ms(MAIL_GIVE_UP),
        };
        outbox::queue_to_operator(&mut *tx, &mail, now).await?;
    }
    Ok(())
}

async fn thread_in(
    tx: &mut Tx,
    scope: &impl crate::authz::TenantKey,
    id: &RequestId,
) -> ServiceResult<RequestThread> {
    let request = requests::get(&mut *tx, scope, id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no support request {id}")))?;
    let messages = requests::messages(&mut *tx, scope, id).await?;
    Ok(RequestThread { request, messages })
}

/// Whether the user may see a request: their own, or any of the tenant's for a user
/// admin. Others are "not found", like another tenant's.
fn visible_to(user: &UserPrincipal, request: &SupportRequestRecord) -> bool {
    user.role.allows(Permission::ManageUsers) || request.user_id.as_ref() == Some(&user.user_id)
}

/// The user's requests (all of the tenant's for a user admin), most recently active first.
pub async fn for_user(
    svc: &Service,
    user: &UserPrincipal,
    mut filter: RequestFilter,
) -> ServiceResult<Vec<SupportRequestRecord>> {
    filter.limit = filter.limit.clamp(1, MAX_LIMIT);
    if !user.role.allows(Permission::ManageUsers) {
        filter.user = Some(user.user_id.clone());
    }
    Ok(requests::for_tenant(&svc.db, &user.scope, &filter).await?)
}

/// One request and its thread, for a tenant user.
pub async fn get_for_user(svc: &Service, user: &UserPrincipal, id: &str) -> ServiceResult<RequestThread> {
    let id = parse_id(id)?;
    let mut tx = svc.db.begin().await?;
    let thread = thread_in(&mut tx, &user.scope, &id).await?;
    tx.commit().await?;
    if !visible_to(user, &thread.request) {
        return Err(ServiceError::not_found(format!("no support request {id}")));
    }
    Ok(thread)
}

/// A tenant user adds to a request (it is open again for the provider), or closes it.
pub async fn reply_by_user(
    svc: &Service,
    user: &UserPrincipal,
    id: &str,
    body: Option<&str>,
    close: bool,
) -> ServiceResult<RequestThread> {
    let thread = get_for_user(svc, user, id).await?;
    let body = body.map(|body| text("body", body, MAX_MESSAGE)).transpose()?;
    if body.is_none() && !close {
        return Err(ServiceError::invalid(
            "body: write something, or close the request",
        ));
    }
    let id = thread.request.id.clone();
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    if let Some(body) = &body {
        requests::add_message(&mut tx, &user.scope, &id, &user.login, false, body, now).await?;
        mail_operators(svc, &mut tx, user, &thread.request, body, true, now).await?;
    }
    let status = if close {
        RequestStatus::Closed
    } else {
        RequestStatus::Open
    };
    requests::set_status(&mut tx, &user.scope, &id, status, now).await?;
    let target = format!("{id} {:?}", thread.request.subject);
    let result = if close {
        "closed by the tenant"
    } else {
        "replied by the tenant"
    };
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::SupportRequest,
        &target,
        result,
    )
    .await?;
    let thread = thread_in(&mut tx, &user.scope, &id).await?;
    tx.commit().await?;
    Ok(thread)
}

/// Every tenant's requests that match `filter`, for operators.
pub async fn list(
    svc: &Service,
    _operator: &OperatorPrincipal,
    mut filter: RequestFilter,
) -> ServiceResult<Vec<SupportRequestRecord>> {
    filter.limit = filter.limit.clamp(1, MAX_LIMIT);
    filter.user = None;
    Ok(requests::all(&svc.db, &filter).await?)
}

/// The contract scope of the tenant a request belongs to.
async fn scope_of(
    svc: &Service,
    operator: &OperatorPrincipal,
    id: &RequestId,
) -> ServiceResult<ContractScope> {
    let tenant: TenantId = requests::tenant_of(&svc.db, id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no support request {id}")))?;
    Ok(ContractScope::new(operator, tenant))
}

/// One request and its thread, for operators.
pub async fn get(svc: &Service, operator: &OperatorPrincipal, id: &str) -> ServiceResult<RequestThread> {
    let id = parse_id(id)?;
    let scope = scope_of(svc, operator, &id).await?;
    let mut tx = svc.db.begin().await?;
    let thread = thread_in(&mut tx, &scope, &id).await?;
    tx.commit().await?;
    Ok(thread)
}

/// An operator replies (mailed to the requester, if they have an address) and/or closes
/// the request.
pub async fn reply(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    id: &str,
    body: Option<&str>,
    close: bool,
) -> ServiceResult<RequestThread> {
    let id = parse_id(id)?;
    let body = body.map(|body| text("body", body, MAX_MESSAGE)).transpose()?;
    if body.is_none() && !close {
        return Err(ServiceError::invalid("body: write a reply, or close the request"));
    }
    let scope = scope_of(svc, operator, &id).await?;
    let now = svc.now_ms();
    let actor = operator.actor(caller);
    let mut tx = svc.db.begin().await?;
    let before = thread_in(&mut tx, &scope, &id).await?;
    if let Some(body) = &body {
        requests::add_message(&mut tx, &scope, &id, &actor.name, true, body, now).await?;
    }
    let status = if close {
        RequestStatus::Closed
    } else {
        RequestStatus::Answered
    };
    requests::set_status(&mut tx, &scope, &id, status, now).await?;
    let mailed = match (&body, &before.request.user_id) {
        (Some(body), Some(user_id)) if svc.settings.mail_enabled => {
            mail_reply(svc, &mut tx, &scope, &before.request, user_id, body, close, now).await?
        }
        _ => false,
    };
    let target = format!("{id} {:?}", before.request.subject);
    let result = match (body.is_some(), close) {
        (true, true) => "replied and closed",
        (true, false) => "replied",
        _ => "closed",
    };
    let result = if mailed {
        format!("{result}; mailed to the requester")
    } else {
        result.to_owned()
    };
    record_in(
        &mut tx,
        &actor,
        now,
        &scope,
        Action::SupportReply,
        &target,
        &result,
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        now,
        Entry {
            chain: Chain::operators(),
            action: Action::SupportReply,
            target: &format!("{} {target}", scope.tenant_id()),
            result: &result,
        },
    )
    .await?;
    let thread = thread_in(&mut tx, &scope, &id).await?;
    tx.commit().await?;
    if mailed {
        svc.wake_runner();
    }
    Ok(thread)
}

/// Queues the reply's mail to the requester, in their language. `false` when they have
/// no address (or no longer an enabled account).
#[allow(clippy::too_many_arguments)]
async fn mail_reply(
    svc: &Service,
    tx: &mut Tx,
    scope: &ContractScope,
    request: &SupportRequestRecord,
    user_id: &crate::ids::UserId,
    body: &str,
    closed: bool,
    now: i64,
) -> ServiceResult<bool> {
    let Some(user) = users::get(&mut *tx, scope, user_id).await? else {
        return Ok(false);
    };
    let Some(email) = user.email.filter(|_| user.disabled_ms.is_none()) else {
        return Ok(false);
    };
    let tenant = tenants::get(&mut *tx, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let mail = NewMail {
        recipient: email,
        language: users::mail_language(&mut *tx, scope, user_id).await?,
        content: MailContent::SupportReply {
            tenant: tenant.name,
            login: request.requester.clone(),
            subject: request.subject.clone(),
            reply: body.to_owned(),
            closed,
            link: format!("{}/support/{}", svc.public_url, request.id),
        },
        give_up_ms: now + duration_ms(MAIL_GIVE_UP),
    };
    outbox::queue(&mut *tx, scope, &mail, now).await?;
    Ok(true)
}
