//! Outgoing mail: the templates of every message kind in Japanese and English
//! (`templates/mail/KIND.LANG.txt` with a `Subject:` line, and `KIND.LANG.html`), filled
//! from the service's [`MailContent`], and lettre over SMTP (`smtp_url`) as the
//! transport behind the service's [`MailTransport`]. Words that depend on the
//! recipient's language beyond the template (an alert's kind) come from the portal's
//! messages. Message bodies may carry one-time links, so they are never logged.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use kura_service::mail::{MailContent, MailFailure, MailTransport, OutgoingMail, Sending};
use kura_service::model::Language;

use crate::config::ServerConfig;
use crate::console::CONSOLE_ZONE;
use crate::console::approvals::{worded_action, worded_summary};
use crate::web::i18n::Tr;

/// Why a mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail is not configured: set smtp_url in the server's configuration")]
    NotConfigured,
    /// Names the setting, never the URL (it may hold a password).
    #[error("invalid smtp_url: {0}")]
    InvalidUrl(String),
    #[error("invalid mail address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("no {language} template for mail kind {kind:?}")]
    NoTemplate { kind: String, language: Language },
    #[error("template {template} uses {{{{{name}}}}}, which a {kind} message does not have")]
    UnknownPlaceholder {
        template: String,
        kind: String,
        name: String,
    },
    #[error("template {0} has no `Subject:` first line")]
    NoSubject(String),
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP server did not take the message: {0}")]
    Send(#[from] lettre::transport::smtp::Error),
}

/// Each kind's templates, per language: (kind, language, text with subject, HTML body).
macro_rules! templates {
    ($($kind:literal),*) => {
        &[$(
            ($kind, Language::Ja,
             include_str!(concat!("../templates/mail/", $kind, ".ja.txt")),
             include_str!(concat!("../templates/mail/", $kind, ".ja.html"))),
            ($kind, Language::En,
             include_str!(concat!("../templates/mail/", $kind, ".en.txt")),
             include_str!(concat!("../templates/mail/", $kind, ".en.html"))),
        )*]
    };
}

const TEMPLATES: &[(&str, Language, &str, &str)] = templates!(
    "password_reset",
    "password_forced_reset",
    "alert",
    "alert_resolved",
    "notice",
    "support_reply",
    "tenant_terminated",
    "operator_support_request",
    "operator_approval"
);

/// Values a template may use beside the content's own: words and times that depend on
/// the recipient's language (an alert's kind, what it is about, when), from the portal's
/// messages.
fn localized(content: &MailContent, language: Language) -> Vec<(&'static str, String)> {
    if let MailContent::Notice {
        notice_kind,
        starts_ms,
        ends_ms,
        revision,
        time_zone,
        ..
    } = content
    {
        return notice_words(
            notice_kind,
            *starts_ms,
            *ends_ms,
            *revision,
            &Tr::new(language, time_zone),
        );
    }
    if let MailContent::TenantTerminated {
        purge_due_ms,
        time_zone,
        ..
    } = content
    {
        return vec![("purge_due", Tr::new(language, time_zone).time_long(purge_due_ms))];
    }
    if let MailContent::OperatorSupportRequest {
        category, follow_up, ..
    } = content
    {
        let tr = Tr::new(language, CONSOLE_ZONE);
        let flag = if category == "security-event" {
            tr.t("support-mail-operator-flag-security")
        } else {
            String::new()
        };
        let lead = if *follow_up {
            tr.t("support-mail-operator-follow-up")
        } else {
            tr.t("support-mail-operator-new")
        };
        return vec![
            ("category_label", tr.t(&format!("support-category-{category}"))),
            ("flag", flag),
            ("lead", lead),
        ];
    }
    if let MailContent::OperatorApproval {
        action,
        details,
        expires_ms,
        ..
    } = content
    {
        let tr = Tr::new(language, CONSOLE_ZONE);
        return vec![
            ("action_label", worded_action(&tr, action)),
            ("what", worded_summary(&tr, action, details)),
            ("expires", tr.time_long(expires_ms)),
        ];
    }
    if let MailContent::SupportReply { closed, .. } = content {
        let note = if *closed {
            format!(" {}", Tr::new(language, "UTC").t("support-mail-closed"))
        } else {
            String::new()
        };
        return vec![("closed_note", note)];
    }
    let (MailContent::Alert {
        alert_kind,
        machine,
        plan,
        time_ms,
        time_zone,
        ..
    }
    | MailContent::AlertResolved {
        alert_kind,
        machine,
        plan,
        time_ms,
        time_zone,
        ..
    }) = content
    else {
        return Vec::new();
    };
    let tr = Tr::new(language, time_zone);
    let about = match (machine.is_empty(), plan.is_empty()) {
        (true, _) => tr.t("alert-about-tenant"),
        (false, true) => tr.t1("alert-about-machine", "machine", machine),
        (false, false) => tr.t2("alert-about-machine-plan", ("machine", machine), ("plan", plan)),
    };
    vec![
        ("title", tr.t(&format!("alert-kind-{alert_kind}"))),
        ("about", about),
        ("when", tr.time_long(time_ms)),
    ]
}

/// A notice's kind, window and whether it is an update, in the recipient's words.
fn notice_words(
    kind: &str,
    starts_ms: Option<i64>,
    ends_ms: Option<i64>,
    revision: i64,
    tr: &Tr,
) -> Vec<(&'static str, String)> {
    let (update, update_lead) = if revision > 1 {
        (
            tr.t("notice-mail-update"),
            format!(" {}", tr.t1("notice-mail-update-lead", "revision", revision)),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        ("kind_label", tr.t(&format!("notice-kind-{kind}"))),
        ("window", tr.window(starts_ms, ends_ms)),
        ("update", update),
        ("update_lead", update_lead),
    ]
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Fills a content's templates in a language.
pub fn render(content: &MailContent, language: Language) -> Result<Rendered, MailError> {
    let kind = content.kind();
    let (_, _, text, html) = TEMPLATES
        .iter()
        .find(|(k, l, _, _)| *k == kind && *l == language)
        .ok_or_else(|| MailError::NoTemplate {
            kind: kind.to_owned(),
            language,
        })?;
    let values = serde_json::to_value(content).expect("mail contents are plain values");
    let localized = localized(content, language);
    let lookup = |name: &str| -> Option<String> {
        if let Some((_, value)) = localized.iter().find(|(n, _)| *n == name) {
            return Some(value.clone());
        }
        match values.get(name)? {
            serde_json::Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        }
    };
    let template_name = |suffix: &str| format!("{kind}.{language}.{suffix}");
    let (subject_line, body) = text
        .split_once('\n')
        .ok_or_else(|| MailError::NoSubject(template_name("txt")))?;
    let subject = subject_line
        .strip_prefix("Subject: ")
        .ok_or_else(|| MailError::NoSubject(template_name("txt")))?;
    let fill_in = |template: &str, suffix: &str, escape: bool| {
        fill(template, &lookup, escape).map_err(|name| MailError::UnknownPlaceholder {
            template: template_name(suffix),
            kind: kind.to_owned(),
            name,
        })
    };
    Ok(Rendered {
        // A value with a line break must not add header lines.
        subject: fill_in(subject, "txt", false)?.replace(['\r', '\n'], " "),
        text: fill_in(body.trim_start_matches('\n'), "txt", false)?,
        html: format!(
            "<!DOCTYPE html>\n<html lang=\"{language}\"><head><meta charset=\"utf-8\"></head><body>\n{}</body></html>\n",
            fill_in(html, "html", true)?
        ),
    })
}

/// Replaces each `{{name}}` with its value (HTML-escaped if asked); an unknown name is
/// the error.
fn fill(template: &str, lookup: &dyn Fn(&str) -> Option<String>, escape: bool) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| "(an unclosed {{)".to_owned())?;
        let name = after[..end].trim();
        let value = lookup(name).ok_or_else(|| name.to_owned())?;
        if escape {
            out.push_str(&escape_html(&value));
        } else {
            out.push_str(&value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Sends mail through the configured SMTP server.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

/// Parses an address as the mailer will use it.
pub fn parse_address(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|err: lettre::address::AddressError| MailError::InvalidAddress {
            address: address.to_owned(),
            reason: err.to_string(),
        })
}

impl Mailer {
    /// `smtp://HOST:PORT` (plain, for a relay on a trusted network or loopback),
    /// `smtp://HOST:PORT?tls=required` (STARTTLS) or `smtps://HOST:PORT`, with optional
    /// `USER:PASSWORD@`. An empty `smtp_url` leaves mail off.
    pub fn from_config(config: &ServerConfig) -> Result<Self, MailError> {
        let url = config.smtp_url.expose();
        let transport = if url.is_empty() {
            None
        } else {
            let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|err| MailError::InvalidUrl(err.to_string().replace(url, "<smtp_url>")))?;
            Some(builder.build())
        };
        Ok(Mailer {
            transport,
            from: parse_address(&config.smtp_from)?,
        })
    }

    /// Renders and sends a message (plain text and HTML alternatives).
    pub async fn send(&self, mail: &OutgoingMail<'_>) -> Result<(), MailError> {
        let transport = self.transport.as_ref().ok_or(MailError::NotConfigured)?;
        let rendered = render(mail.content, mail.language)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(parse_address(mail.to)?)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))?;
        transport.send(message).await?;
        Ok(())
    }
}

impl MailTransport for Mailer {
    fn send<'a>(&'a self, mail: OutgoingMail<'a>) -> Sending<'a> {
        Box::pin(async move {
            Mailer::send(self, &mail).await.map_err(|err| match err {
                MailError::NotConfigured => MailFailure::NotConfigured,
                // The mail server is down or busy: worth another try later.
                MailError::Send(ref smtp) if !smtp.is_permanent() => MailFailure::Failed(err.to_string()),
                other => MailFailure::Rejected(other.to_string()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One message of every kind; the match makes a new kind fail to compile here until
    /// it has a sample (and so templates, which the test below requires).
    fn samples() -> Vec<MailContent> {
        let samples = vec![
            MailContent::PasswordReset {
                login: "taro@acme".into(),
                link: "https://backup.example/reset-password?token=x&y=<z>".into(),
                minutes: 30,
            },
            MailContent::PasswordForcedReset {
                login: "taro@acme".into(),
                link: "https://backup.example/reset-password?token=x".into(),
                minutes: 30,
                admin: "hanako@acme".into(),
            },
            MailContent::Alert {
                alert_kind: "backup-failed".into(),
                tenant: "taro@acme's company".into(),
                machine: "web-01".into(),
                plan: "nightly".into(),
                message: "the run failed: no such file <x>".into(),
                time_ms: 1_767_225_600_000,
                time_zone: "Asia/Tokyo".into(),
                link: "https://backup.example/alerts".into(),
            },
            MailContent::Notice {
                notice_kind: "maintenance".into(),
                tenant: "taro@acme's company".into(),
                title: "Storage maintenance <night>".into(),
                body: "We replace disks.\nBackups wait and resume.".into(),
                starts_ms: Some(1_767_225_600_000),
                ends_ms: Some(1_767_236_400_000),
                revision: 2,
                time_zone: "Asia/Tokyo".into(),
                link: "https://backup.example/notices".into(),
            },
            MailContent::SupportReply {
                tenant: "taro@acme's company".into(),
                login: "taro@acme".into(),
                subject: "Restore of <web-01> is slow".into(),
                reply: "We found the cause.\nIt is fixed.".into(),
                closed: true,
                link: "https://backup.example/support/1".into(),
            },
            MailContent::AlertResolved {
                alert_kind: "quota-warning".into(),
                tenant: "taro@acme's company".into(),
                machine: String::new(),
                plan: String::new(),
                resolution: "storage is under 80 % again".into(),
                time_ms: 1_767_225_600_000,
                time_zone: "Asia/Tokyo".into(),
                link: "https://backup.example/alerts".into(),
            },
            MailContent::TenantTerminated {
                tenant: "taro@acme's company".into(),
                service_code: "ACME-0001".into(),
                purge_due_ms: 1_767_225_600_000,
                time_zone: "Asia/Tokyo".into(),
            },
            MailContent::OperatorSupportRequest {
                login: "sato".into(),
                tenant: "ACME <Japan>".into(),
                service_code: "ACME-0001".into(),
                requester: "taro@acme".into(),
                category: "security-event".into(),
                subject: "Unknown sign-in".into(),
                body: "Someone signed in from 203.0.113.9.".into(),
                follow_up: false,
                link: "https://kura-admin.example:8444/support/1".into(),
            },
            MailContent::OperatorApproval {
                login: "suzuki".into(),
                requested_by: "taro@acme".into(),
                action: "tenant.terminate".into(),
                details: [("code", "ACME-0001"), ("name", "ACME"), ("days", "30")]
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
                expires_ms: 1_767_225_600_000,
                link: "https://kura-admin.example:8444/approvals".into(),
            },
        ];
        for sample in &samples {
            match sample {
                MailContent::PasswordReset { .. }
                | MailContent::PasswordForcedReset { .. }
                | MailContent::Alert { .. }
                | MailContent::AlertResolved { .. }
                | MailContent::Notice { .. }
                | MailContent::SupportReply { .. }
                | MailContent::TenantTerminated { .. }
                | MailContent::OperatorSupportRequest { .. }
                | MailContent::OperatorApproval { .. } => {}
            }
        }
        samples
    }

    #[test]
    fn every_kind_renders_in_both_languages() {
        for content in samples() {
            for language in Language::ALL {
                let rendered = render(&content, language).unwrap_or_else(|e| panic!("{e}"));
                assert!(!rendered.subject.is_empty() && !rendered.subject.contains('{'));
                assert!(rendered.text.contains("taro@acme"), "{}", rendered.text);
                assert!(!rendered.text.contains("{{") && !rendered.html.contains("{{"));
                assert!(rendered.html.contains(&format!("lang=\"{language}\"")));
            }
        }
        let ja = render(&samples()[0], Language::Ja).unwrap();
        assert!(ja.subject.contains("パスワード再発行"), "{}", ja.subject);
    }

    #[test]
    fn notices_name_kind_window_and_update_in_the_recipients_language() {
        let notice = &samples()[3];
        let ja = render(notice, Language::Ja).unwrap();
        assert!(
            ja.subject.contains("メンテナンス")
                && ja.subject.contains("更新")
                && ja.subject.contains("Storage maintenance"),
            "{}",
            ja.subject
        );
        assert!(
            ja.text.contains("2026年1月1日 09:00 (JST)") && ja.text.contains("12:00"),
            "{}",
            ja.text
        );
        assert!(ja.text.contains("We replace disks.\nBackups wait"), "{}", ja.text);
        assert!(ja.html.contains("&lt;night&gt;"), "{}", ja.html);
        let en = render(notice, Language::En).unwrap();
        assert!(
            en.subject.starts_with("[Kura] Maintenance (update)"),
            "{}",
            en.subject
        );
        assert!(en.text.contains("revision 2"), "{}", en.text);
    }

    #[test]
    fn alerts_name_kind_subject_and_time_in_the_recipients_language() {
        let alert = &samples()[2];
        let ja = render(alert, Language::Ja).unwrap();
        assert!(
            ja.subject.contains("バックアップ失敗") && ja.subject.contains("web-01"),
            "{}",
            ja.subject
        );
        assert!(ja.text.contains("2026年1月1日 09:00 (JST)"), "{}", ja.text);
        assert!(ja.html.contains("no such file &lt;x&gt;"), "{}", ja.html);
        let en = render(alert, Language::En).unwrap();
        assert!(
            en.subject.contains("Backup failed") && en.subject.contains("nightly"),
            "{}",
            en.subject
        );
        assert!(en.text.contains("1 Jan 2026 09:00 (JST)"), "{}", en.text);
        let resolved = render(&samples()[5], Language::En).unwrap();
        assert!(
            resolved.subject.contains("resolved") && resolved.text.contains("whole tenant"),
            "{}",
            resolved.text
        );
    }

    #[test]
    fn operator_mail_words_the_request_in_the_operators_language() {
        let request = &samples()[7];
        let ja = render(request, Language::Ja).unwrap();
        assert_eq!(
            ja.subject,
            "【Kura】【セキュリティ事象】お問い合わせ: ACME-0001 Unknown sign-in"
        );
        assert!(ja.text.contains("種別: セキュリティ事象の報告"), "{}", ja.text);
        assert!(ja.html.contains("ACME &lt;Japan&gt;"), "{}", ja.html);
        let en = render(request, Language::En).unwrap();
        assert_eq!(
            en.subject,
            "[Kura] [SECURITY EVENT] Support request from ACME-0001: Unknown sign-in"
        );
        let approval = &samples()[8];
        let ja = render(approval, Language::Ja).unwrap();
        assert!(ja.subject.contains("テナントの解約"), "{}", ja.subject);
        assert!(
            ja.text
                .contains("ACME-0001（ACME）を解約し、30 日後にデータを消去します。")
                && ja.text.contains("2026年1月1日 09:00 (JST)"),
            "{}",
            ja.text
        );
        let en = render(approval, Language::En).unwrap();
        assert!(
            en.subject
                .starts_with("[Kura] Approval needed: Terminate a tenant"),
            "{}",
            en.subject
        );
    }

    #[test]
    fn html_bodies_escape_values_and_text_bodies_keep_them() {
        let rendered = render(&samples()[0], Language::En).unwrap();
        assert!(
            rendered.html.contains("token=x&amp;y=&lt;z&gt;"),
            "{}",
            rendered.html
        );
        assert!(rendered.text.contains("token=x&y=<z>"), "{}", rendered.text);
    }

    #[test]
    fn a_name_without_a_value_fails_the_fill() {
        let lookup = |name: &str| (name == "known").then(|| "v".to_owned());
        assert_eq!(fill("a {{known}} b", &lookup, false).unwrap(), "a v b");
        assert_eq!(fill("a {{other}}", &lookup, false).unwrap_err(), "other");
    }
}
