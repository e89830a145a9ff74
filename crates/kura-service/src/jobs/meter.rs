//! `meter`: measures a tenant's usage into the day's row of its history (`usage_days`:
//! stored and logical bytes, snapshots, machines — with the traffic counted as it moves,
//! what billing exports),
//! and brings the per-machine snapshot facts the portal shows in line with the vault:
//! a snapshot the vault committed but the service did not mark (a crash in between),
//! or one no longer live (forgotten), is put right. It changes nothing the tenant did,
//! so it records no event: a row every hour would bury the tenant's log.

use std::collections::HashMap;

use serde_json::json;

use crate::authz::TenantScope;
use crate::db::{machines, snapshots, usage};
use crate::model::{SnapshotFacts, UsageDay};
use crate::ops::vault::{find, store_error};
use crate::{Service, ServiceResult, day_in_zone};

pub(super) async fn run(svc: &Service, scope: &TenantScope) -> ServiceResult<serde_json::Value> {
    let tenant = crate::ops::tenants::current(svc, scope).await?;
    let (stored_bytes, logical_bytes, live) = match find(svc, scope).await? {
        Some(tv) => {
            let live = tv.vault.snapshots().await.map_err(store_error)?;
            tv.refresh().await.map_err(store_error)?;
            let logical = tv.vault.usage().await.map_err(store_error)?.logical_bytes;
            (tv.stored_bytes(), logical, live)
        }
        None => (0, 0, Vec::new()),
    };
    let live: HashMap<String, SnapshotFacts> = live
        .iter()
        .map(|record| (record.id.to_hex(), SnapshotFacts::of(&record.manifest)))
        .collect();
    let (mut marked, mut gone) = (0u64, 0u64);
    for (id, committed, has_facts) in snapshots::owned(&svc.db, scope).await? {
        match live.get(&id) {
            Some(facts) if !committed || !has_facts => {
                snapshots::set_facts(&svc.db, scope, &id, facts).await?;
                marked += 1;
            }
            None if committed => {
                snapshots::set_committed(&svc.db, scope, &id, false).await?;
                gone += 1;
            }
            _ => {}
        }
    }
    let active_machines = machines::active_count(&svc.db, scope).await?;
    let now = svc.now_ms();
    let day = UsageDay {
        day: day_in_zone(now, &tenant.time_zone),
        stored_bytes,
        snapshots: live.len() as u64,
        machines: active_machines,
    };
    usage::record_day(&svc.db, scope, &day, now).await?;
    usage::set_logical(&svc.db, scope, &day.day, logical_bytes).await?;
    Ok(json!({
        "day": day.day,
        "stored_bytes": day.stored_bytes,
        "logical_bytes": logical_bytes,
        "snapshots": day.snapshots,
        "machines": day.machines,
        "snapshots_marked": marked,
        "snapshots_gone": gone,
    }))
}
