//! Notices from the provider: an operator publishes a service change, a maintenance
//! window or a security incident to every tenant or to some; it shows at once in the
//! tenants' portal and API, and is mailed to each tenant's admins in their language
//! through the outbox, in the same transaction. An update (an incident's follow-up)
//! raises the notice's revision, is mailed again and shows as unread again. Tenant users
//! mark notices read.

use std::time::Duration;

use crate::audit::Action;
use crate::authz::{Caller, ContractScope, OperatorPrincipal, UserPrincipal};
use crate::db::notices::{self, NoticeContent};
use crate::db::{Tx, outbox, tenants, users};
use crate::ids::{NoticeId, TenantId};
use crate::mail::MailContent;
use crate::model::{
    MailAudience, NewMail, NoticeKind, NoticeRecord, NoticeText, TenantNotice, TenantRecord, TenantStatus,
};
use crate::ops::record_in;
use crate::{Service, ServiceError, ServiceResult, duration_ms};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY: usize = 20_000;
/// How long a notice's mail may wait for the mail server before it is given up.
const MAIL_GIVE_UP: Duration = Duration::from_secs(3 * 24 * 3600);
/// How many notices a list shows.
pub const LIST_LIMIT: u32 = 200;

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    All,
    /// Tenants by id or service code.
    Tenants(Vec<String>),
}

/// A notice as an operator writes it.
#[derive(Debug, Clone)]
pub struct NoticeDraft {
    pub kind: NoticeKind,
    pub text: NoticeText,
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
}

/// Trims the words and checks them: at least one language, each language with both a
/// title and a body, within the lengths; a window that ends after it starts.
fn checked(draft: NoticeDraft) -> ServiceResult<NoticeDraft> {
    let clean = |text: Option<String>| text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let text = NoticeText {
        title_ja: clean(draft.text.title_ja),
        title_en: clean(draft.text.title_en),
        body_ja: clean(draft.text.body_ja),
        body_en: clean(draft.text.body_en),
    };
    for (language, title, body) in [
        ("ja", &text.title_ja, &text.body_ja),
        ("en", &text.title_en, &text.body_en),
    ] {
        if title.is_some() != body.is_some() {
            return Err(ServiceError::invalid(format!(
                "title_{language}, body_{language}: give both the title and the body in a language, or neither"
            )));
        }
        if title.as_ref().is_some_and(|t| t.chars().count() > MAX_TITLE) {
            return Err(ServiceError::invalid(format!(
                "title_{language}: at most {MAX_TITLE} characters"
            )));
        }
        if body.as_ref().is_some_and(|b| b.chars().count() > MAX_BODY) {
            return Err(ServiceError::invalid(format!(
                "body_{language}: at most {MAX_BODY} characters"
            )));
        }
    }
    if text.title_ja.is_none() && text.title_en.is_none() {
        return Err(ServiceError::invalid(
            "title_ja, title_en: write the notice in Japanese, English or both",
        ));
    }
    if let (Some(starts), Some(ends)) = (draft.starts_ms, draft.ends_ms)
        && ends < starts
    {
        return Err(ServiceError::invalid("ends: the window must end after it starts"));
    }
    Ok(NoticeDraft { text, ..draft })
}

/// The tenants a notice is for, each found by id or service code; an unknown one is named.
async fn resolve(svc: &Service, audience: &Audience) -> ServiceResult<(bool, Vec<TenantId>)> {
    let names = match audience {
        Audience::All => return Ok((true, Vec::new())),
        Audience::Tenants(names) => names,
    };
    if names.is_empty() {
        return Err(ServiceError::invalid(
            "tenants: give \"all\" or a list of tenant ids or service codes",
        ));
    }
    let every = tenants::list(&svc.db).await?;
    let mut found: Vec<TenantId> = Vec::new();
    for name in names {
        let name = name.trim();
        let tenant = every
            .iter()
            .find(|t| t.id.as_str() == name || t.service_code == name)
            .ok_or_else(|| {
                ServiceError::invalid(format!("tenants: no tenant has the id or service code {name:?}"))
            })?;
        if !found.contains(&tenant.id) {
            found.push(tenant.id.clone());
        }
    }
    Ok((false, found))
}

/// Publishes a notice; answers it as stored.
pub async fn publish(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    draft: NoticeDraft,
    audience: &Audience,
) -> ServiceResult<NoticeRecord> {
    let draft = checked(draft)?;
    let (all, targets) = resolve(svc, audience).await?;
    let id = NoticeId::generate();
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    notices::insert(
        &mut tx,
        &id,
        &content_of(&draft),
        all,
        &targets,
        operator.name(),
        now,
    )
    .await?;
    let notice = notices::get(&mut tx, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found("the new notice vanished"))?;
    announce(svc, operator, caller, &mut tx, &notice, Action::NoticePublish).await?;
    tx.commit().await?;
    svc.wake_runner();
    Ok(notice)
}

/// Rewrites a notice (an update or follow-up): its revision rises, it is mailed again
/// and shows as unread again. Who it is for does not change.
pub async fn update(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    id: &str,
    draft: NoticeDraft,
) -> ServiceResult<NoticeRecord> {
    let not_found = || ServiceError::not_found(format!("no notice {id}"));
    let id = NoticeId::parse(id).ok_or_else(not_found)?;
    let draft = checked(draft)?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    if !notices::update(&mut tx, &id, &content_of(&draft), now).await? {
        return Err(not_found());
    }
    let notice = notices::get(&mut tx, &id).await?.ok_or_else(not_found)?;
    announce(svc, operator, caller, &mut tx, &notice, Action::NoticeUpdate).await?;
    tx.commit().await?;
    svc.wake_runner();
    Ok(notice)
}

fn content_of(draft: &NoticeDraft) -> NoticeContent<'_> {
    NoticeContent {
        kind: draft.kind,
        text: &draft.text,
        starts_ms: draft.starts_ms,
        ends_ms: draft.ends_ms,
    }
}

/// Writes the notice's publication (or update) into the operator work log and the log of
/// each tenant it is for, and queues its mail to each tenant's admins. Terminated
/// tenants are not told.
async fn announce(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    tx: &mut Tx,
    notice: &NoticeRecord,
    action: Action,
) -> ServiceResult<()> {
    let now = svc.now_ms();
    let actor = operator.actor(caller);
    let every = tenants::list(&mut *tx).await?;
    let targets: Vec<&TenantRecord> = every
        .iter()
        .filter(|t| t.status != TenantStatus::Terminated)
        .filter(|t| notice.all_tenants || notice.tenants.contains(&t.id))
        .collect();
    let (title, _) = notice.text.in_language(crate::model::Language::En);
    let target = format!("{} {} {title:?}", notice.kind.as_str(), notice.id);
    let mut mails = 0;
    for tenant in &targets {
        let scope = ContractScope::new(operator, tenant.id.clone());
        let recipients = if svc.settings.mail_enabled {
            users::mail_recipients(tx, &scope, MailAudience::Admins).await?
        } else {
            Vec::new()
        };
        for recipient in &recipients {
            let (title, body) = notice.text.in_language(recipient.language);
            let mail = NewMail {
                recipient: recipient.email.clone(),
                language: recipient.language,
                content: MailContent::Notice {
                    notice_kind: notice.kind.as_str().to_owned(),
                    tenant: tenant.name.clone(),
                    title: title.to_owned(),
                    body: body.to_owned(),
                    starts_ms: notice.starts_ms,
                    ends_ms: notice.ends_ms,
                    revision: notice.revision,
                    time_zone: tenant.time_zone.clone(),
                    link: format!("{}/notices", svc.public_url),
                },
                give_up_ms: now + duration_ms(MAIL_GIVE_UP),
            };
            outbox::queue(&mut *tx, &scope, &mail, now).await?;
        }
        mails += recipients.len();
        let result = format!(
            "ok: revision {}, mailed to {} admins",
            notice.revision,
            recipients.len()
        );
        record_in(tx, &actor, now, &scope, action, &target, &result).await?;
    }
    let result = format!(
        "ok: revision {}, {} tenants, {mails} mails",
        notice.revision,
        targets.len()
    );
    crate::audit::record(
        tx,
        &actor,
        now,
        crate::audit::Entry {
            chain: crate::audit::Chain::operators(),
            action,
            target: &target,
            result: &result,
        },
    )
    .await?;
    Ok(())
}

/// Every notice, newest first, for operators.
pub async fn list(svc: &Service, _operator: &OperatorPrincipal) -> ServiceResult<Vec<NoticeRecord>> {
    Ok(notices::list(&svc.db, LIST_LIMIT).await?)
}

/// One notice, for operators.
pub async fn get(svc: &Service, _operator: &OperatorPrincipal, id: &str) -> ServiceResult<NoticeRecord> {
    let not_found = || ServiceError::not_found(format!("no notice {id}"));
    let id = NoticeId::parse(id).ok_or_else(not_found)?;
    let mut tx = svc.db.begin().await?;
    let notice = notices::get(&mut tx, &id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(notice)
}

/// The notices for the user's tenant, newest first, with what the user has read.
pub async fn for_user(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<TenantNotice>> {
    Ok(notices::for_tenant(&svc.db, &user.scope, &user.user_id, LIST_LIMIT).await?)
}

/// The language the user reads in: their own choice, else the tenant's.
pub async fn language_of(svc: &Service, user: &UserPrincipal) -> ServiceResult<crate::model::Language> {
    Ok(users::mail_language(&svc.db, &user.scope, &user.user_id).await?)
}

/// Marks a notice read by the user (its current revision).
pub async fn mark_read(svc: &Service, user: &UserPrincipal, id: &str) -> ServiceResult<()> {
    let not_found = || ServiceError::not_found(format!("no notice {id}"));
    let id = NoticeId::parse(id).ok_or_else(not_found)?;
    let mut tx = svc.db.begin().await?;
    if !notices::mark_read(&mut tx, &user.scope, &user.user_id, &id, svc.now_ms()).await? {
        return Err(not_found());
    }
    tx.commit().await?;
    Ok(())
}

/// How soon before a maintenance window its notice is shown as a banner.
pub const BANNER_AHEAD: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whether a notice belongs in the portal's banner at `now_ms`: unread, or a maintenance
/// window that is under way or starts within [`BANNER_AHEAD`].
pub fn in_banner(notice: &TenantNotice, now_ms: i64) -> bool {
    let window_near = notice.notice.kind == NoticeKind::Maintenance
        && notice.notice.ends_ms.is_none_or(|ends| ends > now_ms)
        && notice
            .notice
            .starts_ms
            .is_some_and(|starts| starts <= now_ms + duration_ms(BANNER_AHEAD));
    !notice.read || window_near
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(title_ja: Option<&str>, body_ja: Option<&str>) -> NoticeDraft {
        NoticeDraft {
            kind: NoticeKind::Maintenance,
            text: NoticeText {
                title_ja: title_ja.map(str::to_owned),
                title_en: None,
                body_ja: body_ja.map(str::to_owned),
                body_en: None,
            },
            starts_ms: Some(1000),
            ends_ms: Some(2000),
        }
    }

    #[test]
    fn drafts_need_a_language_with_title_and_body() {
        assert!(checked(draft(Some(" 定期メンテナンス "), Some("本文"))).is_ok());
        let trimmed = checked(draft(Some(" 定期メンテナンス "), Some("本文"))).unwrap();
        assert_eq!(trimmed.text.title_ja.as_deref(), Some("定期メンテナンス"));
        assert!(checked(draft(None, None)).is_err());
        assert!(checked(draft(Some("題"), None)).is_err());
        assert!(checked(draft(Some("  "), Some("本文"))).is_err());
        let long = "あ".repeat(MAX_TITLE + 1);
        assert!(checked(draft(Some(&long), Some("本文"))).is_err());
        let mut backwards = draft(Some("題"), Some("本文"));
        backwards.ends_ms = Some(500);
        assert!(checked(backwards).is_err());
    }

    #[test]
    fn the_banner_shows_unread_notices_and_near_windows() {
        let notice = |read, starts: Option<i64>, ends: Option<i64>| TenantNotice {
            read,
            notice: NoticeRecord {
                id: NoticeId::generate(),
                kind: NoticeKind::Maintenance,
                text: NoticeText::default(),
                starts_ms: starts,
                ends_ms: ends,
                all_tenants: true,
                tenants: Vec::new(),
                author: "ops".into(),
                published_ms: 0,
                updated_ms: 0,
                revision: 1,
            },
        };
        let day = 86_400_000;
        let now = 100 * day;
        assert!(in_banner(&notice(false, None, None), now), "unread");
        assert!(!in_banner(&notice(true, None, None), now), "read, no window");
        assert!(
            in_banner(&notice(true, Some(now + 2 * day), Some(now + 3 * day)), now),
            "in two days"
        );
        assert!(
            in_banner(&notice(true, Some(now - day), Some(now + day)), now),
            "under way"
        );
        assert!(
            !in_banner(&notice(true, Some(now + 30 * day), Some(now + 31 * day)), now),
            "next month"
        );
        assert!(
            !in_banner(&notice(true, Some(now - 2 * day), Some(now - day)), now),
            "over"
        );
    }
}
