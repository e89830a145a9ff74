//! Notices from the provider to tenants: service changes, maintenance and incidents.

use crate::ids::{NoticeId, TenantId};
use crate::model::Language;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A change of the service (サービス内容の変更).
    Change,
    /// Maintenance, usually with a window (`starts`, `ends`).
    Maintenance,
    /// A security incident (セキュリティインシデント).
    Incident,
}

text_enum!(NoticeKind, "notice kind", {
    Change = "change",
    Maintenance = "maintenance",
    Incident = "incident",
});

/// A notice's words in both languages (either may be missing, not both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeText {
    pub title_ja: Option<String>,
    pub title_en: Option<String>,
    pub body_ja: Option<String>,
    pub body_en: Option<String>,
}

impl NoticeText {
    /// Title and body in `language`, else in the other one.
    pub fn in_language(&self, language: Language) -> (&str, &str) {
        fn pick<'a>(language: Language, ja: &'a Option<String>, en: &'a Option<String>) -> &'a str {
            let (first, second) = match language {
                Language::Ja => (ja, en),
                Language::En => (en, ja),
            };
            first.as_deref().or(second.as_deref()).unwrap_or_default()
        }
        (
            pick(language, &self.title_ja, &self.title_en),
            pick(language, &self.body_ja, &self.body_en),
        )
    }
}

/// A notice as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub id: NoticeId,
    pub kind: NoticeKind,
    pub text: NoticeText,
    /// A maintenance window (or when an incident began and ended).
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
    /// Every tenant, or those in `tenants`.
    pub all_tenants: bool,
    pub tenants: Vec<TenantId>,
    /// The operator who published it.
    pub author: String,
    pub published_ms: i64,
    pub updated_ms: i64,
    /// 1 when published, one more with each update.
    pub revision: i64,
}

/// A notice as a tenant user sees it: whether they read its current revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantNotice {
    pub notice: NoticeRecord,
    pub read: bool,
}
