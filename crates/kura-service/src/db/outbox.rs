//! `mail_outbox`: mail waiting to go, sent, or given up. Operations queue mail in their
//! own transaction; the `mail` job reads what is due and records each attempt. A
//! message's content is emptied (`{}`) once it is sent or given up.

use super::{DbError, DbResult, Query, Target, from_db_int};
use crate::authz::TenantKey;
use crate::ids::TenantId;
use crate::mail::MailContent;
use crate::model::{MailRecord, NewMail};
use crate::secrets::random_hex;

/// The columns of `mail_outbox`, in the order of [`MailRow`].
macro_rules! mail_columns {
    () => {
        "id, tenant_id, kind, recipient, language, content, status, created_ms, next_attempt_ms, \
         give_up_ms, attempts, last_error, finished_ms"
    };
}

#[derive(sqlx::FromRow)]
struct MailRow {
    id: String,
    tenant_id: Option<String>,
    kind: String,
    recipient: String,
    language: String,
    content: String,
    status: String,
    created_ms: i64,
    next_attempt_ms: i64,
    give_up_ms: i64,
    attempts: i64,
    last_error: Option<String>,
    finished_ms: Option<i64>,
}

impl MailRow {
    fn into_record(self) -> DbResult<MailRecord> {
        let content = if self.content == "{}" {
            None
        } else {
            Some(
                serde_json::from_str(&self.content)
                    .map_err(|err| DbError::Corrupt(format!("mail {}: {err}", self.id)))?,
            )
        };
        Ok(MailRecord {
            id: self.id,
            tenant_id: self.tenant_id.map(TenantId::from_db),
            kind: self.kind,
            recipient: self.recipient,
            language: self.language.parse()?,
            content,
            status: self.status.parse()?,
            created_ms: self.created_ms,
            next_attempt_ms: self.next_attempt_ms,
            give_up_ms: self.give_up_ms,
            attempts: from_db_int(self.attempts, "attempts")?,
            last_error: self.last_error,
            finished_ms: self.finished_ms,
        })
    }
}

fn content_json(content: &MailContent) -> String {
    serde_json::to_string(content).expect("mail contents are plain strings and numbers")
}

/// Queues a message to one of the tenant's people.
pub async fn queue<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    mail: &NewMail,
    now_ms: i64,
) -> DbResult<String> {
    let query = Query::tenant(
        scope,
        "INSERT INTO mail_outbox (tenant_id, id, kind, recipient, language, content, status, created_ms, \
         next_attempt_ms, give_up_ms) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $8)",
    );
    insert(on, query, mail, now_ms).await
}

/// Queues a message to one of the provider's operators (no tenant's).
pub async fn queue_to_operator<'c>(on: impl Target<'c>, mail: &NewMail, now_ms: i64) -> DbResult<String> {
    let query = Query::service(
        "INSERT INTO mail_outbox (id, kind, recipient, language, content, status, created_ms, \
         next_attempt_ms, give_up_ms) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $7)",
    );
    insert(on, query, mail, now_ms).await
}

async fn insert<'a, 'c>(
    on: impl Target<'c>,
    query: Query<'a>,
    mail: &'a NewMail,
    now_ms: i64,
) -> DbResult<String> {
    let id = random_hex(16);
    query
        .bind(id.clone())
        .bind(mail.content.kind())
        .bind(mail.recipient.as_str())
        .bind(mail.language.as_str())
        .bind(content_json(&mail.content))
        .bind(now_ms)
        .bind(mail.give_up_ms)
        .execute(on)
        .await?;
    Ok(id)
}

/// Pending messages due at `now_ms`, oldest first.
pub async fn due<'c>(on: impl Target<'c>, now_ms: i64, limit: u32) -> DbResult<Vec<MailRecord>> {
    let rows: Vec<MailRow> = Query::service(concat!(
        "SELECT ",
        mail_columns!(),
        " FROM mail_outbox WHERE status = 'pending' AND next_attempt_ms <= $1 ORDER BY next_attempt_ms, id LIMIT $2"
    ))
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(on)
    .await?;
    rows.into_iter().map(MailRow::into_record).collect()
}

/// Whether any message is due: the scheduler queues a `mail` job only then.
pub async fn any_due<'c>(on: impl Target<'c>, now_ms: i64) -> DbResult<bool> {
    let found: Option<(String,)> = Query::service(
        "SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_ms <= $1 LIMIT 1",
    )
    .bind(now_ms)
    .fetch_optional(on)
    .await?;
    Ok(found.is_some())
}

/// Messages to one tenant's people, newest first (what was sent, what is waiting).
pub async fn for_tenant<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    limit: u32,
) -> DbResult<Vec<MailRecord>> {
    let rows: Vec<MailRow> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            mail_columns!(),
            " FROM mail_outbox WHERE tenant_id = $1 ORDER BY created_ms DESC, id LIMIT $2"
        ),
    )
    .bind(i64::from(limit))
    .fetch_all(on)
    .await?;
    rows.into_iter().map(MailRow::into_record).collect()
}

/// Marks a message sent.
pub async fn sent<'c>(on: impl Target<'c>, id: &str, now_ms: i64) -> DbResult<()> {
    Query::service(
        "UPDATE mail_outbox SET status = 'sent', content = '{}', attempts = attempts + 1, finished_ms = $2, \
         last_error = NULL WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub async fn retry_later<'c>(
    on: impl Target<'c>,
    id: &str,
    next_attempt_ms: i64,
    error: &str,
) -> DbResult<()> {
    Query::service(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_ms = $2, last_error = $3 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(next_attempt_ms)
    .bind(error)
    .execute(on)
    .await?;
    Ok(())
}

/// Gives a message up, with why.
pub async fn give_up<'c>(
    on: impl Target<'c>,
    id: &str,
    now_ms: i64,
    error: &str,
    attempted: bool,
) -> DbResult<()> {
    Query::service(
        "UPDATE mail_outbox SET status = 'failed', content = '{}', finished_ms = $2, last_error = $3, \
         attempts = attempts + $4 WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(now_ms)
    .bind(error)
    .bind(i64::from(attempted))
    .execute(on)
    .await?;
    Ok(())
}

/// Deletes records of messages that were sent or given up before `before_ms`.
pub async fn prune<'c>(on: impl Target<'c>, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM mail_outbox WHERE status IN ('sent', 'failed') AND finished_ms < $1")
        .bind(before_ms)
        .execute(on)
        .await
}
