//! Which machine committed each of a tenant's snapshots, as tenant users see them
//! (`snapshot_owners` joined with `machines`; the rows are written by
//! [`super::machines::claim_snapshot`]).

use super::{Db, DbResult, Query, Value};
use crate::authz::TenantScope;
use crate::ids::MachineId;

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
