//! Outgoing mail: lettre over SMTP (`smtp_url`), the transport behind the service's
//! [`MailTransport`]. Message bodies may carry one-time links, so they are never logged.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use kura_service::mail::{MailFailure, MailTransport, Sending};

use crate::config::ServerConfig;

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
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP server did not take the message: {0}")]
    Send(#[from] lettre::transport::smtp::Error),
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

    /// Sends a plain-text mail.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let transport = self.transport.as_ref().ok_or(MailError::NotConfigured)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(parse_address(to)?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        transport.send(message).await?;
        Ok(())
    }
}

impl MailTransport for Mailer {
    fn send<'a>(&'a self, to: &'a str, subject: &'a str, body: String) -> Sending<'a> {
        Box::pin(async move {
            Mailer::send(self, to, subject, body)
                .await
                .map_err(|err| match err {
                    MailError::NotConfigured => MailFailure::NotConfigured,
                    other => MailFailure::Failed(other.to_string()),
                })
        })
    }
}
