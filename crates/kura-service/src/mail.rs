//! What the service mails, without how: an operation puts a [`MailContent`] for a
//! recipient in the outbox (`db::outbox`) in its own transaction, and the `mail` job hands
//! each message to a [`MailTransport`], which the server implements with its templates
//! (one set per kind and language) over SMTP. Contents may carry one-time links, so they
//! are never logged, and the outbox empties them once a message is sent or given up.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::model::Language;

/// What a message says, by kind; the fields are what its templates fill in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailContent {
    /// The user asked for a reset link ("forgot password").
    PasswordReset {
        login: String,
        link: String,
        minutes: u32,
    },
    /// A user admin reset the user's password: the old one no longer works.
    PasswordForcedReset {
        login: String,
        link: String,
        minutes: u32,
        admin: String,
    },
    /// An alert was raised in the recipient's tenant. `alert_kind` is the alert's kind
    /// (`backup-failed`, …); the templates show it and the time in the recipient's
    /// language and the tenant's time zone.
    Alert {
        alert_kind: String,
        tenant: String,
        machine: String,
        plan: String,
        message: String,
        time_ms: i64,
        time_zone: String,
        link: String,
    },
    /// A notice from the provider (or an update of one: `revision` above 1), in the
    /// recipient's language.
    Notice {
        notice_kind: String,
        tenant: String,
        title: String,
        body: String,
        starts_ms: Option<i64>,
        ends_ms: Option<i64>,
        revision: i64,
        time_zone: String,
        link: String,
    },
    /// The provider replied to the recipient's support request (and perhaps closed it).
    SupportReply {
        tenant: String,
        login: String,
        subject: String,
        reply: String,
        closed: bool,
        link: String,
    },
    /// An open alert was resolved, and what resolved it.
    AlertResolved {
        alert_kind: String,
        tenant: String,
        machine: String,
        plan: String,
        resolution: String,
        time_ms: i64,
        time_zone: String,
        link: String,
    },
    /// The provider ended the tenant's contract: sign-in has stopped, the data is erased
    /// at `purge_due_ms`, and until then the provider can still withdraw the termination.
    TenantTerminated {
        tenant: String,
        service_code: String,
        purge_due_ms: i64,
        time_zone: String,
    },
    /// To an operator: a tenant user opened a support request (`follow_up`: wrote again
    /// in one). `category` is the request's (`question`, `incident`, `security-event`).
    OperatorSupportRequest {
        login: String,
        tenant: String,
        service_code: String,
        requester: String,
        category: String,
        subject: String,
        body: String,
        follow_up: bool,
        link: String,
    },
    /// To an operator-admin: a destructive action waits for a second operator-admin's
    /// approval until `expires_ms`.
    OperatorApproval {
        login: String,
        requested_by: String,
        /// The approval's action (`tenant.terminate`, …) and the facts the templates word
        /// it from in the recipient's language.
        action: String,
        details: std::collections::BTreeMap<String, String>,
        expires_ms: i64,
        link: String,
    },
}

impl MailContent {
    /// The kind's name, as templates and the outbox know it.
    pub fn kind(&self) -> &'static str {
        match self {
            MailContent::PasswordReset { .. } => "password_reset",
            MailContent::PasswordForcedReset { .. } => "password_forced_reset",
            MailContent::Alert { .. } => "alert",
            MailContent::AlertResolved { .. } => "alert_resolved",
            MailContent::Notice { .. } => "notice",
            MailContent::SupportReply { .. } => "support_reply",
            MailContent::TenantTerminated { .. } => "tenant_terminated",
            MailContent::OperatorSupportRequest { .. } => "operator_support_request",
            MailContent::OperatorApproval { .. } => "operator_approval",
        }
    }
}

/// A message as the transport receives it.
#[derive(Debug, Clone)]
pub struct OutgoingMail<'a> {
    pub to: &'a str,
    pub language: Language,
    pub content: &'a MailContent,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailFailure {
    #[error("this service cannot send mail (smtp_url is not set)")]
    NotConfigured,
    /// The message itself cannot be sent (a malformed address): retrying will not help.
    #[error("{0}")]
    Rejected(String),
    /// The mail server could not be reached or refused for now: retry later.
    #[error("{0}")]
    Failed(String),
}

/// A message being sent.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), MailFailure>> + Send + 'a>>;

/// Renders and delivers a message.
pub trait MailTransport: Send + Sync {
    fn send<'a>(&'a self, mail: OutgoingMail<'a>) -> Sending<'a>;
}
