//! The two-person rule (四つの目の原則): a destructive operator action waiting for a
//! second operator-admin's approval.

use std::collections::BTreeMap;

use crate::ids::{ApprovalId, OperatorId, TenantId};

/// The operator actions that need a second operator-admin while the service has two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalAction {
    /// Terminate a tenant's contract (its purge queued).
    TerminateTenant,
    /// Purge a terminated tenant now instead of when its grace period ends.
    PurgeNow,
    /// Change a tenant's contract in a way that lowers its immutability period.
    LowerImmutability,
    /// Delete an operator account.
    DeleteOperator,
}

text_enum!(ApprovalAction, "approval action", {
    TerminateTenant = "tenant.terminate",
    PurgeNow = "tenant.purge-now",
    LowerImmutability = "tenant.immutability.lower",
    DeleteOperator = "operator.delete",
});

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    /// Pending past its expiry: it can no longer be approved.
    Expired,
}

text_enum!(ApprovalStatus, "approval status", {
    Pending = "pending",
    Approved = "approved",
    Rejected = "rejected",
    Expired = "expired",
});

/// A request for approval, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub id: ApprovalId,
    pub action: ApprovalAction,
    /// The tenant it concerns, for the tenant actions.
    pub tenant_id: Option<TenantId>,
    /// What it acts on, in words (`tenant ACME-01 (…)`, `operator suzuki`).
    pub target: String,
    /// The request as JSON, carried out unchanged on approval.
    pub params: String,
    /// What it will do, in words, for the approver.
    pub summary: String,
    /// The facts the summary is worded from (`code`, `days`, `login`, …), for wording it
    /// in another language.
    pub details: BTreeMap<String, String>,
    pub requested_by: String,
    pub requested_by_account: Option<OperatorId>,
    pub requested_ms: i64,
    pub expires_ms: i64,
    /// As stored; [`ApprovalRecord::status_at`] tells expiry apart.
    pub stored_status: ApprovalStatus,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    /// What carrying it out did (or why it failed).
    pub outcome: Option<String>,
}

impl ApprovalRecord {
    /// The status at `now_ms`: a pending request past its expiry has expired.
    pub fn status_at(&self, now_ms: i64) -> ApprovalStatus {
        match self.stored_status {
            ApprovalStatus::Pending if now_ms >= self.expires_ms => ApprovalStatus::Expired,
            status => status,
        }
    }
}
