//! A plan's retention, applied by the service after each run that saved a snapshot: the
//! plan's `keep_*` rules (restic's, as `kura forget` applies them) over the committed
//! snapshots of that machine and source, in the tenant's time zone. Agents stay
//! append-only; this is the one way snapshots leave a tenant's vault on the server. It
//! never forgets a snapshot younger than the tenant's immutability period, nor the newest
//! one, nor one a restore job or a drill is reading (the next application does).
//! Forgotten data is reclaimed by the next `gc` round.

use std::str::FromStr;

use jiff::tz::TimeZone;
use kura_format::SnapshotId;
use kura_store::retention::{Dated, RetentionPolicy};

use super::record_in;
use super::tenants::current;
use super::vault::{find, store_error};
use crate::audit::{Action, Actor};
use crate::authz::TenantScope;
use crate::db::plans;
use crate::db::snapshots::{self, SourceSnapshot};
use crate::jobs::SCHEDULE_ACTOR;
use crate::model::{PlanRetention, RunRecord};
use crate::{Service, ServiceResult};

impl From<PlanRetention> for RetentionPolicy {
    fn from(r: PlanRetention) -> Self {
        RetentionPolicy {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
        }
    }
}

struct Candidate {
    id: SnapshotId,
    row: SourceSnapshot,
}

impl Dated for Candidate {
    fn id(&self) -> SnapshotId {
        self.id
    }

    fn time_ns(&self) -> i64 {
        self.row.time_ns
    }

    fn source(&self) -> &str {
        &self.row.source
    }
}

/// What one application forgot and kept back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Hex ids of the snapshots forgotten.
    pub forgotten: Vec<String>,
    /// Snapshots the rules would forget but the immutability period protects.
    pub immutable: usize,
    /// Snapshots the rules would forget but a restore job or a drill is reading; the
    /// next application forgets them.
    pub in_use: usize,
    /// Snapshots of the source, before.
    pub considered: usize,
}

/// Applies the plan of `run` to the machine and source of the snapshot it saved.
/// `Ok(None)`: nothing to do (the plan keeps everything or is gone, the run saved no
/// snapshot, or the snapshot is not that machine's).
pub async fn after_run(
    svc: &Service,
    scope: &TenantScope,
    run: &RunRecord,
) -> ServiceResult<Option<RetentionOutcome>> {
    let Some(snapshot) = run.snapshot_id.as_deref().filter(|_| run.status.saved_snapshot()) else {
        return Ok(None);
    };
    let mut tx = svc.db.begin().await?;
    let plan = plans::get(&mut tx, scope, &run.plan_id).await?;
    tx.commit().await?;
    let Some(plan) = plan.filter(|p| !p.spec.retention.keeps_all()) else {
        return Ok(None);
    };
    let Some(source) = snapshots::source_of(&svc.db, scope, &run.machine_id, snapshot).await? else {
        tracing::warn!(run = %run.id, snapshot, "a run names a snapshot its machine did not commit; retention not applied");
        return Ok(None);
    };
    let tenant = current(svc, scope).await?;
    let zone = TimeZone::get(&tenant.time_zone).unwrap_or(TimeZone::UTC);
    let candidates: Vec<Candidate> = snapshots::of_source(&svc.db, scope, &run.machine_id, &source)
        .await?
        .into_iter()
        .filter_map(|row| {
            Some(Candidate {
                id: SnapshotId::from_str(&row.snapshot_id).ok()?,
                row,
            })
        })
        .collect();
    let newest = candidates.iter().map(|c| (c.row.time_ns, c.id)).max();
    let in_use = snapshots::in_use(&svc.db, scope).await?;
    let policy = RetentionPolicy::from(plan.spec.retention);
    let decisions = policy.apply(&candidates, &zone).map_err(store_error)?;
    let now = svc.now_ms();
    let immutable_since_ns = (now - i64::from(tenant.immutable_days) * 86_400_000).saturating_mul(1_000_000);
    let mut outcome = RetentionOutcome {
        considered: candidates.len(),
        ..RetentionOutcome::default()
    };
    let mut forget = Vec::new();
    for decision in decisions.iter().filter(|d| !d.keep) {
        let Some(candidate) = candidates.iter().find(|c| c.row.snapshot_id == decision.id) else {
            continue;
        };
        if newest.is_some_and(|(_, id)| id == candidate.id) {
            continue;
        }
        if candidate.row.time_ns > immutable_since_ns {
            outcome.immutable += 1;
            continue;
        }
        if in_use.contains(&decision.id) {
            outcome.in_use += 1;
            continue;
        }
        forget.push(candidate.id);
        outcome.forgotten.push(decision.id.clone());
    }
    // Only a decision that changed something (or was held back) is worth an event.
    if forget.is_empty() && outcome.immutable == 0 && outcome.in_use == 0 {
        return Ok(Some(outcome));
    }
    if !forget.is_empty() {
        let Some(vault) = find(svc, scope).await? else {
            return Ok(None);
        };
        vault.vault.forget(&forget).await.map_err(store_error)?;
    }
    let mut tx = svc.db.begin().await?;
    for id in &outcome.forgotten {
        snapshots::set_committed(&mut tx, scope, id, false).await?;
    }
    let actor = Actor {
        name: SCHEDULE_ACTOR.to_owned(),
        source: None,
        request_id: run.id.to_string(),
    };
    let mut kept_back = String::new();
    if outcome.immutable > 0 {
        kept_back += &format!(
            "; {} kept back by the {}-day deletion lock",
            outcome.immutable, tenant.immutable_days
        );
    }
    if outcome.in_use > 0 {
        kept_back += &format!(
            "; {} kept back while a restore or drill reads them",
            outcome.in_use
        );
    }
    record_in(
        &mut tx,
        &actor,
        now,
        scope,
        Action::RetentionApply,
        &format!(
            "plan {:?}, machine {}, source {source:?}",
            plan.spec.name, run.machine_id
        ),
        &format!(
            "ok: forgot {} of {} snapshots{kept_back}{}",
            outcome.forgotten.len(),
            outcome.considered,
            if outcome.forgotten.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    outcome
                        .forgotten
                        .iter()
                        .map(|id| &id[..12])
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(outcome))
}
