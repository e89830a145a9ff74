//! Which machine committed each of a tenant's snapshots, as tenant users see them
//! (`snapshot_owners` joined with `machines`; the rows are written by
//! [`super::machines::claim_snapshot`]), and what the portal sums from them: each
//! machine's activity and the newest backup of each source.

use std::collections::HashMap;

use kura_format::SnapshotKind;

use super::{Db, DbResult, Query, Target, Value, from_db_int, to_db_int};
use crate::authz::TenantScope;
use crate::ids::MachineId;
use crate::model::{LatestBackup, MachineActivity, SnapshotFacts};

/// Ids per statement of [`owners`].
const BATCH: usize = 200;

/// The machine that committed a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOwner {
    pub snapshot_id: String,
    pub machine_id: MachineId,
    pub machine_name: String,
}

/// The owners of `snapshot_ids` (hex) that have one, one statement per 200 ids.
pub async fn owners(db: &Db, scope: &TenantScope, snapshot_ids: &[String]) -> DbResult<Vec<SnapshotOwner>> {
    let mut out = Vec::with_capacity(snapshot_ids.len());
    for batch in snapshot_ids.chunks(BATCH) {
        let rows: Vec<(String, String, String)> = Query::tenant(
            scope,
            "SELECT o.snapshot_id, o.machine_id, m.name FROM snapshot_owners o \
             JOIN machines m ON m.tenant_id = o.tenant_id AND m.id = o.machine_id \
             WHERE o.tenant_id = $1 AND o.snapshot_id IN ({params})",
        )
        .bind_list(batch.iter().map(|id| Value::from(id.as_str())))
        .fetch_all(db)
        .await?;
        out.extend(
            rows.into_iter()
                .map(|(snapshot_id, machine_id, machine_name)| SnapshotOwner {
                    snapshot_id,
                    machine_id: MachineId::from_db(machine_id),
                    machine_name,
                }),
        );
    }
    Ok(out)
}

/// Marks snapshots (hex ids) as committed, or no longer live.
pub async fn set_committed<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    snapshot_id: &str,
    committed: bool,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE snapshot_owners SET committed = $3 WHERE tenant_id = $1 AND snapshot_id = $2",
    )
    .bind(snapshot_id)
    .bind(committed)
    .execute(on)
    .await?;
    Ok(())
}

/// Writes a live snapshot's facts and marks it committed (the metering job's repair of a
/// row the commit did not finish, or one claimed before the facts were kept).
pub async fn set_facts<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    snapshot_id: &str,
    facts: &SnapshotFacts,
) -> DbResult<()> {
    let query = Query::tenant(
        scope,
        "UPDATE snapshot_owners SET committed = TRUE, time_ns = $3, kind = $4, source = $5, \
         bytes = $6, bytes_added = $7, errors = $8 WHERE tenant_id = $1 AND snapshot_id = $2",
    )
    .bind(snapshot_id);
    bind_facts(query, facts)?.execute(on).await?;
    Ok(())
}

/// Binds a snapshot's facts as the next six parameters: time, kind, source, bytes,
/// bytes added, unreadable files.
pub(super) fn bind_facts<'a>(query: Query<'a>, facts: &'a SnapshotFacts) -> DbResult<Query<'a>> {
    Ok(query
        .bind(facts.time_ns)
        .bind(facts.kind.to_string())
        .bind(facts.source.as_str())
        .bind(to_db_int(facts.bytes, "snapshot bytes")?)
        .bind(to_db_int(facts.bytes_added, "snapshot bytes added")?)
        .bind(to_db_int(facts.errors, "snapshot errors")?))
}

/// Every owner row of the tenant: hex id, committed, and whether its facts are there.
pub async fn owned<'c>(on: impl Target<'c>, scope: &TenantScope) -> DbResult<Vec<(String, bool, bool)>> {
    Query::tenant(
        scope,
        "SELECT snapshot_id, committed, time_ns IS NOT NULL FROM snapshot_owners WHERE tenant_id = $1",
    )
    .fetch_all(on)
    .await
}

/// The number of committed snapshots the tenant's owner rows name.
pub async fn committed_count<'c>(on: impl Target<'c>, scope: &TenantScope) -> DbResult<u64> {
    let (count,): (i64,) = Query::tenant(
        scope,
        "SELECT COUNT(*) FROM snapshot_owners WHERE tenant_id = $1 AND committed = TRUE",
    )
    .fetch_one(on)
    .await?;
    from_db_int(count, "snapshot count")
}

/// Each machine's committed snapshots summed, by machine id.
pub async fn activity<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
) -> DbResult<HashMap<MachineId, MachineActivity>> {
    let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = Query::tenant(
        scope,
        "SELECT machine_id, COUNT(*), CAST(SUM(bytes_added) AS BIGINT), MAX(time_ns) FROM snapshot_owners \
         WHERE tenant_id = $1 AND committed = TRUE GROUP BY machine_id",
    )
    .fetch_all(on)
    .await?;
    rows.into_iter()
        .map(|(machine_id, snapshots, bytes_added, last_backup_ns)| {
            Ok((
                MachineId::from_db(machine_id),
                MachineActivity {
                    snapshots: from_db_int(snapshots, "snapshot count")?,
                    bytes_added: from_db_int(bytes_added.unwrap_or(0), "bytes added")?,
                    last_backup_ns,
                },
            ))
        })
        .collect()
}

/// The newest committed snapshot of each source of each machine, by machine and source.
pub async fn latest<'c>(on: impl Target<'c>, scope: &TenantScope) -> DbResult<Vec<LatestBackup>> {
    type Row = (String, String, i64, String, String, i64, i64, i64);
    let rows: Vec<Row> = Query::tenant(
        scope,
        // The newest time of each source comes from the index alone; CROSS JOIN keeps
        // SQLite from scanning every row of the tenant to probe those few (it fixes the
        // join order there; PostgreSQL plans it the same either way).
        "SELECT o.machine_id, o.snapshot_id, o.time_ns, o.kind, o.source, o.bytes, o.bytes_added, o.errors \
         FROM (\
           SELECT machine_id, source, MAX(time_ns) AS newest FROM snapshot_owners \
           WHERE tenant_id = $1 AND committed = TRUE GROUP BY machine_id, source\
         ) n CROSS JOIN snapshot_owners o \
         WHERE o.tenant_id = $1 AND o.committed = TRUE AND o.machine_id = n.machine_id \
         AND o.source = n.source AND o.time_ns = n.newest ORDER BY o.machine_id, o.source",
    )
    .fetch_all(on)
    .await?;
    let mut out: Vec<LatestBackup> = Vec::with_capacity(rows.len());
    for (machine_id, snapshot_id, time_ns, kind, source, bytes, bytes_added, errors) in rows {
        // Two snapshots of one source at the same nanosecond: the first stands for both.
        if out
            .last()
            .is_some_and(|last| last.machine_id.as_str() == machine_id && last.facts.source == source)
        {
            continue;
        }
        out.push(LatestBackup {
            machine_id: MachineId::from_db(machine_id),
            snapshot_id,
            facts: SnapshotFacts {
                time_ns,
                kind: match kind.as_str() {
                    "image" => SnapshotKind::Image,
                    _ => SnapshotKind::Files,
                },
                source,
                bytes: from_db_int(bytes, "snapshot bytes")?,
                bytes_added: from_db_int(bytes_added, "snapshot bytes added")?,
                errors: from_db_int(errors, "snapshot errors")?,
            },
        });
    }
    Ok(out)
}

/// A committed snapshot as retention judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSnapshot {
    pub snapshot_id: String,
    pub time_ns: i64,
    pub source: String,
}

/// The source of a committed snapshot of one machine (`None`: not this machine's, or not
/// committed).
pub async fn source_of<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    machine: &MachineId,
    snapshot_id: &str,
) -> DbResult<Option<String>> {
    let row: Option<(Option<String>,)> = Query::tenant(
        scope,
        "SELECT source FROM snapshot_owners WHERE tenant_id = $1 AND machine_id = $2 \
         AND snapshot_id = $3 AND committed = TRUE",
    )
    .bind(machine.as_str())
    .bind(snapshot_id)
    .fetch_optional(on)
    .await?;
    Ok(row.and_then(|(source,)| source))
}

/// The committed snapshots of one source of one machine.
pub async fn of_source<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    machine: &MachineId,
    source: &str,
) -> DbResult<Vec<SourceSnapshot>> {
    let rows: Vec<(String, i64)> = Query::tenant(
        scope,
        "SELECT snapshot_id, time_ns FROM snapshot_owners WHERE tenant_id = $1 AND machine_id = $2 \
         AND source = $3 AND committed = TRUE AND time_ns IS NOT NULL",
    )
    .bind(machine.as_str())
    .bind(source)
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(snapshot_id, time_ns)| SourceSnapshot {
            snapshot_id,
            time_ns,
            source: source.to_owned(),
        })
        .collect())
}

/// Snapshots (hex) a restore job or a drill is reading: retention keeps them until it ends.
pub async fn in_use<'c>(on: impl Target<'c>, scope: &TenantScope) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = Query::tenant(
        scope,
        "SELECT snapshot_id FROM restores WHERE tenant_id = $1 AND status IN ('queued', 'running') \
         UNION SELECT snapshot_id FROM drills WHERE tenant_id = $1 AND status = 'running'",
    )
    .fetch_all(on)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
