//! Support requests (お問い合わせ, 事象報告) and their messages.

use crate::ids::{RequestId, TenantId, UserId};

/// What a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCategory {
    /// A question, or a request for help.
    Question,
    /// Something went wrong with the service (an event report, 事象報告).
    Incident,
    /// A security event the tenant noticed: flagged for operators.
    SecurityEvent,
}

text_enum!(RequestCategory, "request category", {
    Question = "question",
    Incident = "incident",
    SecurityEvent = "security-event",
});

impl RequestCategory {
    /// The message naming the category on pages.
    pub fn label_key(&self) -> &'static str {
        match self {
            RequestCategory::Question => "support-category-question",
            RequestCategory::Incident => "support-category-incident",
            RequestCategory::SecurityEvent => "support-category-security-event",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for the provider.
    Open,
    /// The provider replied last.
    Answered,
    Closed,
}

text_enum!(RequestStatus, "request status", {
    Open = "open",
    Answered = "answered",
    Closed = "closed",
});

impl RequestStatus {
    /// The message naming the status on pages.
    pub fn label_key(&self) -> &'static str {
        match self {
            RequestStatus::Open => "support-status-open",
            RequestStatus::Answered => "support-status-answered",
            RequestStatus::Closed => "support-status-closed",
        }
    }

    /// The badge colour of the status on pages.
    pub fn badge(&self) -> &'static str {
        match self {
            RequestStatus::Open => "warn",
            RequestStatus::Answered => "ok",
            RequestStatus::Closed => "muted",
        }
    }
}

/// A support request, without its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportRequestRecord {
    pub id: RequestId,
    pub tenant_id: TenantId,
    /// The requester's account, while it exists.
    pub user_id: Option<UserId>,
    /// The requester's login ID, kept after the account is deleted.
    pub requester: String,
    pub category: RequestCategory,
    pub subject: String,
    pub status: RequestStatus,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub closed_ms: Option<i64>,
}

/// One message of a request's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportMessage {
    /// A login ID, or `operator:LOGIN`.
    pub author: String,
    pub from_operator: bool,
    pub body: String,
    pub created_ms: i64,
}

/// Which requests a list shows.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub category: Option<RequestCategory>,
    pub tenant: Option<TenantId>,
    /// Only this user's own requests.
    pub user: Option<UserId>,
    pub limit: u32,
}
