//! What the service mails, without how: operations compose a message and hand it to a
//! [`MailTransport`], which the server implements over SMTP. Message bodies may carry
//! one-time links, so they are never logged.

use std::future::Future;
use std::pin::Pin;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailFailure {
    #[error("this service cannot send mail (smtp_url is not set)")]
    NotConfigured,
    #[error("{0}")]
    Failed(String),
}

/// A message being sent.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), MailFailure>> + Send + 'a>>;

/// Delivers a plain-text message.
pub trait MailTransport: Send + Sync {
    fn send<'a>(&'a self, to: &'a str, subject: &'a str, body: String) -> Sending<'a>;
}
