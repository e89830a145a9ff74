//! Mail in the outbox, and the languages the service speaks.

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::mail::MailContent;

/// A language of pages and mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Ja,
    En,
}

text_enum!(Language, "language", {
    Ja = "ja",
    En = "en",
});

impl Language {
    /// The language for a recipient: their own choice, else the tenant's default, else
    /// Japanese for a tenant in Japan's time zone and English otherwise.
    pub fn choose(user: Option<Language>, tenant: Option<Language>, time_zone: &str) -> Language {
        user.or(tenant).unwrap_or(if time_zone == "Asia/Tokyo" {
            Language::Ja
        } else {
            Language::En
        })
    }
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailStatus {
    Pending,
    Sent,
    /// Given up: not sent before `give_up_ms`.
    Failed,
}

text_enum!(MailStatus, "mail status", {
    Pending = "pending",
    Sent = "sent",
    Failed = "failed",
});

/// Someone a tenant's mail goes to, in their language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecipient {
    pub email: String,
    pub language: Language,
}

/// Which of a tenant's users a message goes to (each needs an address and an enabled
/// account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailAudience {
    /// Admins and operators who take alert mail.
    Alerts,
    /// Admins: notices from the provider.
    Admins,
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecord {
    pub id: String,
    pub tenant_id: Option<TenantId>,
    /// The content's kind (`password_reset`, …), kept after the content is emptied.
    pub kind: String,
    pub recipient: String,
    pub language: Language,
    /// `None` once sent or given up (it may have held a one-time link).
    pub content: Option<MailContent>,
    pub status: MailStatus,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub give_up_ms: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub finished_ms: Option<i64>,
}

/// A message about to be queued.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub recipient: String,
    pub language: Language,
    pub content: MailContent,
    /// Unsent by then, it is given up.
    pub give_up_ms: i64,
}
