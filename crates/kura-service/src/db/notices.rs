//! `notices`, the tenants each is for (`notice_tenants`) and who read which revision
//! (`notice_reads`). Notices are the provider's, so they are service-wide rows; a tenant's
//! view of them goes through its scope.

use super::{DbResult, Query, Target, Tx};
use crate::authz::TenantKey;
use crate::ids::{NoticeId, TenantId, UserId};
use crate::model::{NoticeKind, NoticeRecord, NoticeText, TenantNotice};

macro_rules! columns {
    () => {
        "n.id, n.kind, n.title_ja, n.title_en, n.body_ja, n.body_en, n.starts_ms, n.ends_ms, \
         n.all_tenants, n.author, n.published_ms, n.updated_ms, n.revision"
    };
}

#[derive(sqlx::FromRow)]
struct NoticeRow {
    id: String,
    kind: String,
    title_ja: Option<String>,
    title_en: Option<String>,
    body_ja: Option<String>,
    body_en: Option<String>,
    starts_ms: Option<i64>,
    ends_ms: Option<i64>,
    all_tenants: bool,
    author: String,
    published_ms: i64,
    updated_ms: i64,
    revision: i64,
}

impl NoticeRow {
    fn into_record(self, tenants: Vec<TenantId>) -> DbResult<NoticeRecord> {
        Ok(NoticeRecord {
            id: NoticeId::from_db(self.id),
            kind: self.kind.parse()?,
            text: NoticeText {
                title_ja: self.title_ja,
                title_en: self.title_en,
                body_ja: self.body_ja,
                body_en: self.body_en,
            },
            starts_ms: self.starts_ms,
            ends_ms: self.ends_ms,
            all_tenants: self.all_tenants,
            tenants,
            author: self.author,
            published_ms: self.published_ms,
            updated_ms: self.updated_ms,
            revision: self.revision,
        })
    }
}

/// What a notice says and when, as written or rewritten.
pub struct NoticeContent<'a> {
    pub kind: NoticeKind,
    pub text: &'a NoticeText,
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
}

/// Stores a new notice for every tenant (`tenants` empty and `all`) or for `tenants`.
pub async fn insert(
    tx: &mut Tx,
    id: &NoticeId,
    content: &NoticeContent<'_>,
    all: bool,
    tenants: &[TenantId],
    author: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::service(
        "INSERT INTO notices (id, kind, title_ja, title_en, body_ja, body_en, starts_ms, ends_ms, \
         all_tenants, author, published_ms, updated_ms, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1)",
    )
    .bind(id.as_str())
    .bind(content.kind.as_str())
    .bind(content.text.title_ja.as_deref())
    .bind(content.text.title_en.as_deref())
    .bind(content.text.body_ja.as_deref())
    .bind(content.text.body_en.as_deref())
    .bind(content.starts_ms)
    .bind(content.ends_ms)
    .bind(all)
    .bind(author)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    for tenant in tenants {
        Query::service("INSERT INTO notice_tenants (notice_id, tenant_id) VALUES ($1, $2)")
            .bind(id.as_str())
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Rewrites a notice and raises its revision. `false` if there is none.
pub async fn update(tx: &mut Tx, id: &NoticeId, content: &NoticeContent<'_>, now_ms: i64) -> DbResult<bool> {
    let changed = Query::service(
        "UPDATE notices SET kind = $2, title_ja = $3, title_en = $4, body_ja = $5, body_en = $6, \
         starts_ms = $7, ends_ms = $8, updated_ms = $9, revision = revision + 1 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(content.kind.as_str())
    .bind(content.text.title_ja.as_deref())
    .bind(content.text.title_en.as_deref())
    .bind(content.text.body_ja.as_deref())
    .bind(content.text.body_en.as_deref())
    .bind(content.starts_ms)
    .bind(content.ends_ms)
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(changed == 1)
}

async fn tenants_of<'c>(on: impl Target<'c>, id: &str) -> DbResult<Vec<TenantId>> {
    let rows: Vec<(String,)> =
        Query::service("SELECT tenant_id FROM notice_tenants WHERE notice_id = $1 ORDER BY tenant_id")
            .bind(id)
            .fetch_all(on)
            .await?;
    Ok(rows.into_iter().map(|(id,)| TenantId::from_db(id)).collect())
}

/// One notice, with the tenants it is for.
pub async fn get(tx: &mut Tx, id: &NoticeId) -> DbResult<Option<NoticeRecord>> {
    let row: Option<NoticeRow> =
        Query::service(concat!("SELECT ", columns!(), " FROM notices n WHERE n.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    match row {
        Some(row) => {
            let tenants = tenants_of(&mut *tx, &row.id).await?;
            Ok(Some(row.into_record(tenants)?))
        }
        None => Ok(None),
    }
}

/// Every notice, newest first (at most `limit`), for operators.
pub async fn list(db: &super::Db, limit: u32) -> DbResult<Vec<NoticeRecord>> {
    let rows: Vec<NoticeRow> = Query::service(concat!(
        "SELECT ",
        columns!(),
        " FROM notices n ORDER BY n.published_ms DESC, n.id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    let mut notices = Vec::with_capacity(rows.len());
    for row in rows {
        let tenants = tenants_of(db, &row.id).await?;
        notices.push(row.into_record(tenants)?);
    }
    Ok(notices)
}

/// The notices for the scoped tenant, newest first (at most `limit`), with whether
/// `user` read each one's current revision.
pub async fn for_tenant<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user: &UserId,
    limit: u32,
) -> DbResult<Vec<TenantNotice>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        notice: NoticeRow,
        is_read: bool,
    }
    let rows: Vec<Row> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            ", EXISTS (SELECT 1 FROM notice_reads r WHERE r.notice_id = n.id AND r.user_id = $2 \
             AND r.tenant_id = $1 AND r.revision >= n.revision) AS is_read \
             FROM notices n WHERE n.all_tenants \
             OR EXISTS (SELECT 1 FROM notice_tenants t WHERE t.notice_id = n.id AND t.tenant_id = $1) \
             ORDER BY n.published_ms DESC, n.id LIMIT $3"
        ),
    )
    .bind(user.as_str())
    .bind(i64::from(limit))
    .fetch_all(on)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(TenantNotice {
                read: row.is_read,
                // A tenant sees only that the notice is for it, not who else it is for.
                notice: row.notice.into_record(Vec::new())?,
            })
        })
        .collect()
}

/// Marks the notice's current revision read by `user`, if the notice is for the scoped
/// tenant. `false` if it is not (or does not exist).
pub async fn mark_read(
    tx: &mut Tx,
    scope: &impl TenantKey,
    user: &UserId,
    id: &NoticeId,
    now_ms: i64,
) -> DbResult<bool> {
    let revision: Option<(i64,)> = Query::tenant(
        scope,
        "SELECT n.revision FROM notices n WHERE n.id = $2 AND (n.all_tenants \
         OR EXISTS (SELECT 1 FROM notice_tenants t WHERE t.notice_id = n.id AND t.tenant_id = $1))",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((revision,)) = revision else {
        return Ok(false);
    };
    Query::tenant(
        scope,
        "INSERT INTO notice_reads (tenant_id, user_id, notice_id, revision, read_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id, notice_id) DO UPDATE SET revision = excluded.revision, read_ms = excluded.read_ms",
    )
    .bind(user.as_str())
    .bind(id.as_str())
    .bind(revision)
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(true)
}
