//! `mail`: delivers the outbox. A message that fails for a reason that may pass (the mail
//! server is down or busy) is tried again later, waiting longer each time; one the mail
//! server can never take (a malformed address), or still unsent when it is no longer
//! worth sending (a reset link that expired), is given up. Each message sent or given up
//! is recorded in its tenant's event log; nothing is lost silently.

use std::time::Duration;

use serde_json::json;

use super::Progress;
use crate::audit::{self, Action, Actor, Chain, Entry};
use crate::authz::service_scope;
use crate::db::outbox;
use crate::mail::{MailFailure, OutgoingMail};
use crate::model::MailRecord;
use crate::{Service, ServiceResult, duration_ms};

/// Messages read from the outbox at a time.
const BATCH: u32 = 50;

/// The wait before the next attempt after `failures` failed ones: 30 s, doubling, at
/// most an hour.
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(7);
    Duration::from_secs(30u64 << doublings).min(Duration::from_secs(3600))
}

pub(super) async fn run(
    svc: &Service,
    actor: &Actor,
    progress: &Progress,
) -> ServiceResult<serde_json::Value> {
    let (mut sent, mut deferred, mut given_up) = (0u32, 0u32, 0u32);
    'batches: loop {
        let batch = outbox::due(&svc.db, svc.now_ms(), BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for mail in batch {
            let now = svc.now_ms();
            let Some(content) = &mail.content else {
                give_up(svc, actor, &mail, "the message has no content", false).await?;
                given_up += 1;
                continue;
            };
            if now >= mail.give_up_ms {
                let why = format!(
                    "not sent before it stopped being useful{}",
                    mail.last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
                give_up(svc, actor, &mail, &why, false).await?;
                given_up += 1;
                continue;
            }
            let outgoing = OutgoingMail {
                to: &mail.recipient,
                language: mail.language,
                content,
            };
            match svc.mail.send(outgoing).await {
                Ok(()) => {
                    outbox::sent(&svc.db, &mail.id, svc.now_ms()).await?;
                    note(
                        svc,
                        actor,
                        &mail,
                        Action::MailSent,
                        &format!("ok: {} ({})", mail.kind, mail.language),
                    )
                    .await?;
                    sent += 1;
                }
                Err(MailFailure::Rejected(why)) => {
                    give_up(svc, actor, &mail, &why, true).await?;
                    given_up += 1;
                }
                Err(failure) => {
                    let next = (now + duration_ms(retry_delay(mail.attempts + 1))).min(mail.give_up_ms);
                    let why = failure.to_string();
                    tracing::warn!(mail = %mail.id, kind = %mail.kind, error = %why, "mail not sent; will retry");
                    outbox::retry_later(&svc.db, &mail.id, next, &why).await?;
                    deferred += 1;
                    // The mail server is unreachable: the rest of the batch would fail the
                    // same way, so it waits for the next run.
                    break 'batches;
                }
            }
            progress.set(format!("{sent} sent, {given_up} given up"));
        }
    }
    Ok(json!({ "sent": sent, "deferred": deferred, "given_up": given_up }))
}

async fn give_up(
    svc: &Service,
    actor: &Actor,
    mail: &MailRecord,
    why: &str,
    attempted: bool,
) -> ServiceResult<()> {
    tracing::warn!(mail = %mail.id, kind = %mail.kind, error = %why, "mail given up");
    outbox::give_up(&svc.db, &mail.id, svc.now_ms(), why, attempted).await?;
    note(
        svc,
        actor,
        mail,
        Action::MailGivenUp,
        &format!("failed: {} ({why})", mail.kind),
    )
    .await
}

/// Records a message's end in its tenant's log (the operators' for service mail).
async fn note(
    svc: &Service,
    actor: &Actor,
    mail: &MailRecord,
    action: Action,
    result: &str,
) -> ServiceResult<()> {
    let scope = mail.tenant_id.as_ref().map(service_scope);
    let entry = Entry {
        chain: scope.as_ref().map_or_else(Chain::operators, Chain::tenant),
        action,
        target: &mail.recipient,
        result,
    };
    Ok(audit::record_alone(&svc.db, actor, svc.now_ms(), entry).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(5), Duration::from_secs(480));
        assert_eq!(retry_delay(8), Duration::from_secs(3600));
        assert_eq!(retry_delay(100), Duration::from_secs(3600));
    }
}
