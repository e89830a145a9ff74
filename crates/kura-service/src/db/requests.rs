//! `support_requests` and their `support_messages`. A tenant reaches its own through its
//! scope; operators list every tenant's.

use super::{DbResult, Query, Target, Tx};
use crate::authz::TenantKey;
use crate::ids::{RequestId, TenantId, UserId};
use crate::model::{RequestCategory, RequestFilter, RequestStatus, SupportMessage, SupportRequestRecord};

macro_rules! columns {
    () => {
        "id, tenant_id, user_id, requester, category, subject, status, created_ms, updated_ms, closed_ms"
    };
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: String,
    tenant_id: String,
    user_id: Option<String>,
    requester: String,
    category: String,
    subject: String,
    status: String,
    created_ms: i64,
    updated_ms: i64,
    closed_ms: Option<i64>,
}

impl RequestRow {
    fn into_record(self) -> DbResult<SupportRequestRecord> {
        Ok(SupportRequestRecord {
            id: RequestId::from_db(self.id),
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: self.user_id.map(UserId::from_db),
            requester: self.requester,
            category: self.category.parse()?,
            subject: self.subject,
            status: self.status.parse()?,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            closed_ms: self.closed_ms,
        })
    }
}

/// A new request of the scoped tenant, with its first message.
pub struct NewRequest<'a> {
    pub id: &'a RequestId,
    pub user_id: &'a UserId,
    pub requester: &'a str,
    pub category: RequestCategory,
    pub subject: &'a str,
    pub body: &'a str,
}

/// Stores a new request and its first message.
pub async fn open(
    tx: &mut Tx,
    scope: &impl TenantKey,
    request: &NewRequest<'_>,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO support_requests (tenant_id, id, user_id, requester, category, subject, status, \
         created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7)",
    )
    .bind(request.id.as_str())
    .bind(request.user_id.as_str())
    .bind(request.requester)
    .bind(request.category.as_str())
    .bind(request.subject)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    add_message(
        tx,
        scope,
        request.id,
        request.requester,
        false,
        request.body,
        now_ms,
    )
    .await
}

/// Adds a message to a request of the scoped tenant.
pub async fn add_message(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &RequestId,
    author: &str,
    from_operator: bool,
    body: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO support_messages (tenant_id, id, request_id, author, from_operator, body, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(crate::secrets::random_hex(16))
    .bind(id.as_str())
    .bind(author)
    .bind(from_operator)
    .bind(body)
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(())
}

/// Sets a request's status (closing it records when). `false` if the scoped tenant has
/// no such request.
pub async fn set_status(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &RequestId,
    status: RequestStatus,
    now_ms: i64,
) -> DbResult<bool> {
    let changed = Query::tenant(
        scope,
        "UPDATE support_requests SET status = $3, updated_ms = $4, \
         closed_ms = CASE WHEN $3 = 'closed' THEN $4 ELSE NULL END WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(changed == 1)
}

/// One request of the scoped tenant.
pub async fn get<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    id: &RequestId,
) -> DbResult<Option<SupportRequestRecord>> {
    let row: Option<RequestRow> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM support_requests WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(id.as_str())
    .fetch_optional(on)
    .await?;
    row.map(RequestRow::into_record).transpose()
}

/// The tenant a request belongs to, for operators who name it by id alone.
pub async fn tenant_of<'c>(on: impl Target<'c>, id: &RequestId) -> DbResult<Option<TenantId>> {
    let row: Option<(String,)> = Query::service("SELECT tenant_id FROM support_requests WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(on)
        .await?;
    Ok(row.map(|(tenant,)| TenantId::from_db(tenant)))
}

/// A request's messages, oldest first.
pub async fn messages<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    id: &RequestId,
) -> DbResult<Vec<SupportMessage>> {
    let rows: Vec<(String, bool, String, i64)> = Query::tenant(
        scope,
        "SELECT author, from_operator, body, created_ms FROM support_messages \
         WHERE tenant_id = $1 AND request_id = $2 ORDER BY created_ms, id",
    )
    .bind(id.as_str())
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(author, from_operator, body, created_ms)| SupportMessage {
            author,
            from_operator,
            body,
            created_ms,
        })
        .collect())
}

/// The scoped tenant's requests that match `filter` (its `tenant` is ignored), the most
/// recently active first.
pub async fn for_tenant<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    filter: &RequestFilter,
) -> DbResult<Vec<SupportRequestRecord>> {
    let rows: Vec<RequestRow> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM support_requests WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR category = $3) AND ($4 IS NULL OR user_id = $4) \
             ORDER BY updated_ms DESC, id LIMIT $5"
        ),
    )
    .bind(filter.status.map(RequestStatus::as_str))
    .bind(filter.category.map(RequestCategory::as_str))
    .bind(filter.user.as_ref().map(UserId::as_str))
    .bind(i64::from(filter.limit))
    .fetch_all(on)
    .await?;
    rows.into_iter().map(RequestRow::into_record).collect()
}

/// Every tenant's requests that match `filter`, the most recently active first.
pub async fn all(db: &super::Db, filter: &RequestFilter) -> DbResult<Vec<SupportRequestRecord>> {
    let rows: Vec<RequestRow> = Query::service(concat!(
        "SELECT ",
        columns!(),
        " FROM support_requests WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR category = $2) \
         AND ($3 IS NULL OR tenant_id = $3) ORDER BY updated_ms DESC, id LIMIT $4"
    ))
    .bind(filter.status.map(RequestStatus::as_str))
    .bind(filter.category.map(RequestCategory::as_str))
    .bind(filter.tenant.as_ref().map(TenantId::as_str))
    .bind(i64::from(filter.limit))
    .fetch_all(db)
    .await?;
    rows.into_iter().map(RequestRow::into_record).collect()
}
