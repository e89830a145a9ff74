//! The service's operations, one module per area. Each operation checks, changes and
//! records its event in one transaction, and is what the JSON API, the portal, the
//! console and jobs all call.

pub mod accounts;
pub mod alerts;
pub mod approvals;
pub mod drills;
pub mod events;
pub mod jobs;
pub mod machines;
pub mod metering;
pub mod monitoring;
pub mod notices;
pub mod operator_accounts;
pub mod operators;
pub mod plans;
pub mod requests;
pub mod resets;
pub mod restores;
pub mod retention;
pub mod runs;
pub mod snapshots;
pub mod support;
pub mod tenants;
pub mod terminations;
pub mod totp;
pub mod usage;
pub mod users;
pub mod vault;

use crate::audit::{self, Action, Actor, Chain, Entry};
use crate::authz::TenantKey;
use crate::db::Tx;
use crate::{ServiceError, ServiceResult};

/// Whether `text` holds characters a person cannot see or that reorder what they see:
/// control characters, bidirectional overrides and isolates, zero-width characters.
pub fn has_hidden_characters(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_control()
            || matches!(c,
                '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}' | '\u{00AD}')
    })
}

/// A name or label: not empty, at most `max_len` characters, nothing hidden.
pub fn validate_label(what: &str, value: &str, max_len: usize) -> ServiceResult<()> {
    if value.trim().is_empty() {
        return Err(ServiceError::invalid(format!("{what} must not be empty")));
    }
    if value.chars().count() > max_len {
        return Err(ServiceError::invalid(format!(
            "{what} is longer than {max_len} characters"
        )));
    }
    if has_hidden_characters(value) {
        return Err(ServiceError::invalid(format!(
            "{what} must not contain control characters or invisible formatting characters"
        )));
    }
    Ok(())
}

/// Records `action` in the tenant's log inside `tx`.
pub(crate) async fn record_in(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    scope: &impl TenantKey,
    action: Action,
    target: &str,
    result: &str,
) -> ServiceResult<()> {
    audit::record(
        tx,
        actor,
        now_ms,
        Entry {
            chain: Chain::tenant(scope),
            action,
            target,
            result,
        },
    )
    .await?;
    Ok(())
}

/// Records `action` in the tenant's log as an operation of its own.
pub(crate) async fn record(
    svc: &crate::Service,
    actor: &Actor,
    scope: &impl TenantKey,
    action: Action,
    target: &str,
    result: &str,
) -> ServiceResult<()> {
    let entry = Entry {
        chain: Chain::tenant(scope),
        action,
        target,
        result,
    };
    Ok(audit::record_alone(&svc.db, actor, svc.now_ms(), entry).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_found() {
        assert!(!has_hidden_characters("株式会社 Example"));
        for bad in ["a\u{202E}b", "a\u{200B}b", "a\nb", "\u{2066}x", "x\u{FEFF}"] {
            assert!(has_hidden_characters(bad), "{bad:?}");
        }
    }
}
