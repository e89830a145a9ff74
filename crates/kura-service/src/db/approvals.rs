//! `approvals`: destructive operator actions waiting for a second operator-admin.

use super::{DbError, DbResult, Query, Target, Tx};
use crate::ids::{ApprovalId, OperatorId, TenantId};
use crate::model::{ApprovalAction, ApprovalRecord, ApprovalStatus};

const COLUMNS: &str = "id, action, tenant_id, target, params, summary, details, requested_by, requested_by_account, \
                       requested_ms, expires_ms, status, decided_by, decided_ms, outcome";

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: String,
    action: String,
    tenant_id: Option<String>,
    target: String,
    params: String,
    summary: String,
    details: String,
    requested_by: String,
    requested_by_account: Option<String>,
    requested_ms: i64,
    expires_ms: i64,
    status: String,
    decided_by: Option<String>,
    decided_ms: Option<i64>,
    outcome: Option<String>,
}

impl ApprovalRow {
    fn into_record(self) -> DbResult<ApprovalRecord> {
        Ok(ApprovalRecord {
            id: ApprovalId::from_db(self.id),
            action: self.action.parse()?,
            tenant_id: self.tenant_id.map(TenantId::from_db),
            target: self.target,
            params: self.params,
            summary: self.summary,
            details: serde_json::from_str(&self.details)
                .map_err(|e| DbError::Corrupt(format!("approval details: {e}")))?,
            requested_by: self.requested_by,
            requested_by_account: self.requested_by_account.map(OperatorId::from_db),
            requested_ms: self.requested_ms,
            expires_ms: self.expires_ms,
            stored_status: self.status.parse()?,
            decided_by: self.decided_by,
            decided_ms: self.decided_ms,
            outcome: self.outcome,
        })
    }
}

/// A new request.
pub struct NewApproval<'a> {
    pub action: ApprovalAction,
    pub tenant_id: Option<&'a TenantId>,
    pub target: &'a str,
    pub params: &'a str,
    pub summary: &'a str,
    /// A JSON object of strings.
    pub details: &'a str,
    pub requested_by: &'a str,
    pub requested_by_account: Option<&'a OperatorId>,
    pub expires_ms: i64,
}

pub async fn insert(tx: &mut Tx, new: &NewApproval<'_>, now_ms: i64) -> DbResult<ApprovalId> {
    let id = ApprovalId::generate();
    Query::service(
        "INSERT INTO approvals (id, action, tenant_id, target, params, summary, details, requested_by, \
         requested_by_account, requested_ms, expires_ms, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending')",
    )
    .bind(id.as_str())
    .bind(new.action.as_str())
    .bind(new.tenant_id.map(TenantId::as_str))
    .bind(new.target)
    .bind(new.params)
    .bind(new.summary)
    .bind(new.details)
    .bind(new.requested_by)
    .bind(new.requested_by_account.map(OperatorId::as_str))
    .bind(now_ms)
    .bind(new.expires_ms)
    .execute(tx)
    .await?;
    Ok(id)
}

pub async fn get<'c>(on: impl Target<'c>, id: &ApprovalId) -> DbResult<Option<ApprovalRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1");
    let row: Option<ApprovalRow> = Query::service(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .fetch_optional(on)
        .await?;
    row.map(ApprovalRow::into_record).transpose()
}

/// The newest requests first: every pending one, and the decided or expired ones of the
/// last `recent_since_ms`.
pub async fn list<'c>(on: impl Target<'c>, recent_since_ms: i64) -> DbResult<Vec<ApprovalRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' OR requested_ms >= $1 \
         ORDER BY requested_ms DESC, id LIMIT 500"
    );
    let rows: Vec<ApprovalRow> = Query::service(sqlx::AssertSqlSafe(sql))
        .bind(recent_since_ms)
        .fetch_all(on)
        .await?;
    rows.into_iter().map(ApprovalRow::into_record).collect()
}

/// A pending, unexpired request for the same action on the same target with the same
/// parameters: asking twice files one request.
pub async fn pending_for<'c>(
    on: impl Target<'c>,
    action: ApprovalAction,
    target: &str,
    params: &str,
    now_ms: i64,
) -> DbResult<Option<ApprovalRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND action = $1 AND target = $2 \
         AND params = $3 AND expires_ms > $4 ORDER BY requested_ms LIMIT 1"
    );
    let row: Option<ApprovalRow> = Query::service(sqlx::AssertSqlSafe(sql))
        .bind(action.as_str())
        .bind(target)
        .bind(params)
        .bind(now_ms)
        .fetch_optional(on)
        .await?;
    row.map(ApprovalRow::into_record).transpose()
}

/// Decides a request if it is still pending and unexpired; answers whether it did (a
/// second approver, or the clock, may have been first).
pub async fn decide(
    tx: &mut Tx,
    id: &ApprovalId,
    status: ApprovalStatus,
    decided_by: &str,
    now_ms: i64,
) -> DbResult<bool> {
    let changed = Query::service(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_ms = $4 \
         WHERE id = $1 AND status = 'pending' AND expires_ms > $4",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .bind(decided_by)
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(changed == 1)
}

/// Notes what carrying out an approved request did.
pub async fn set_outcome<'c>(on: impl Target<'c>, id: &ApprovalId, outcome: &str) -> DbResult<()> {
    Query::service("UPDATE approvals SET outcome = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(outcome)
        .execute(on)
        .await?;
    Ok(())
}
