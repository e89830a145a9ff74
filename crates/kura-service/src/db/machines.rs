//! `machines`, `agent_credentials`, `registration_tokens`, and which machine opened each
//! upload session and committed each snapshot (`upload_sessions`, `snapshot_owners`).
//!
//! Registration starts from a token's hash alone (that is how an agent gets a scope), so
//! its statements are service-wide and bind the tenant id the token resolved to.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{DbResult, Query, Target, Tx, networks_from_db};
use crate::authz::TenantKey;
use crate::ids::{MachineId, TenantId};
use crate::model::{
    AgentIdentity, MachineRecord, NewMachine, RegistrationOutcome, SnapshotFacts, TenantStatus,
};
use crate::secrets::random_hex;

/// The private-gateway rule: a tenant with networks accepts only peers inside them. An
/// unknown peer address never passes a non-empty list.
pub fn network_allows(networks: &[IpNet], peer: Option<IpAddr>) -> bool {
    networks.is_empty() || peer.is_some_and(|ip| networks.iter().any(|net| net.contains(&ip)))
}

/// Stores a one-time agent registration token by its hash.
pub async fn insert_registration_token<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    token_hash: &str,
    now_ms: i64,
    expires_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO registration_tokens (tenant_id, id, token_hash, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(random_hex(16))
    .bind(token_hash)
    .bind(now_ms)
    .bind(expires_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// Whether the token exists for this tenant, is unused and has not expired.
pub async fn registration_token_usable<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    token_hash: &str,
    now_ms: i64,
) -> DbResult<bool> {
    let found: Option<(i64,)> = Query::tenant(
        scope,
        "SELECT expires_ms FROM registration_tokens \
         WHERE tenant_id = $1 AND token_hash = $2 AND used_ms IS NULL AND expires_ms > $3",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(on)
    .await?;
    Ok(found.is_some())
}

/// Consumes a registration token and creates the machine and its credential, all or
/// nothing, enforcing the token's validity, the tenant's status and its machine quota
/// (counting unrevoked machines) even under concurrent registrations. Only
/// `Registered` leaves a change for the caller to commit.
pub async fn register(tx: &mut Tx, machine: &NewMachine, now_ms: i64) -> DbResult<RegistrationOutcome> {
    // Consume the token first: a write, so concurrent registrations serialise from here
    // on, and a token is used at most once.
    let tenant_id: Option<(String,)> = Query::service(
        "UPDATE registration_tokens SET used_ms = $1 \
         WHERE token_hash = $2 AND used_ms IS NULL AND expires_ms > $1 RETURNING tenant_id",
    )
    .bind(now_ms)
    .bind(&machine.registration_token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((tenant_id,)) = tenant_id else {
        let found: Option<(Option<i64>, i64)> =
            Query::service("SELECT used_ms, expires_ms FROM registration_tokens WHERE token_hash = $1")
                .bind(&machine.registration_token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        return Ok(match found {
            None => RegistrationOutcome::UnknownToken,
            Some((Some(_), _)) => RegistrationOutcome::TokenUsed,
            Some((None, _)) => RegistrationOutcome::TokenExpired,
        });
    };
    let lock = if tx.is_postgres() {
        "SELECT status, max_machines, agent_networks FROM tenants WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT status, max_machines, agent_networks FROM tenants WHERE id = $1"
    };
    let (status, max_machines, networks): (String, i64, String) =
        Query::service(lock).bind(&tenant_id).fetch_one(&mut *tx).await?;
    let status: TenantStatus = status.parse()?;
    if status != TenantStatus::Active {
        return Ok(RegistrationOutcome::TenantNotActive(status));
    }
    if !network_allows(&networks_from_db(&networks)?, machine.peer) {
        return Ok(RegistrationOutcome::PeerOutsideAgentNetworks);
    }
    let (machines,): (i64,) =
        Query::service("SELECT COUNT(*) FROM machines WHERE tenant_id = $1 AND revoked_ms IS NULL")
            .bind(&tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    if machines >= max_machines {
        return Ok(RegistrationOutcome::MachineLimitReached {
            max_machines: u32::try_from(max_machines).unwrap_or(u32::MAX),
        });
    }
    Query::service("INSERT INTO machines (tenant_id, id, name, created_ms) VALUES ($1, $2, $3, $4)")
        .bind(&tenant_id)
        .bind(machine.machine_id.as_str())
        .bind(&machine.name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    Query::service(
        "INSERT INTO agent_credentials (tenant_id, id, machine_id, credential_hash, created_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&tenant_id)
    .bind(random_hex(16))
    .bind(machine.machine_id.as_str())
    .bind(&machine.credential_hash)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Query::service("UPDATE registration_tokens SET used_by_machine = $1 WHERE token_hash = $2")
        .bind(machine.machine_id.as_str())
        .bind(&machine.registration_token_hash)
        .execute(tx)
        .await?;
    Ok(RegistrationOutcome::Registered {
        tenant_id: TenantId::from_db(tenant_id),
        machine_id: machine.machine_id.clone(),
    })
}

/// The agent holding the credential with this hash, revoked or not.
pub async fn agent_by_credential<'c>(
    on: impl Target<'c>,
    credential_hash: &str,
) -> DbResult<Option<AgentIdentity>> {
    type Row = (String, String, Option<i64>, String, String, Option<i64>, String);
    let row: Option<Row> = Query::service(
        "SELECT c.tenant_id, c.machine_id, c.revoked_ms, t.status, t.agent_networks, m.last_seen_ms, \
         t.time_zone \
         FROM agent_credentials c JOIN tenants t ON t.id = c.tenant_id \
         JOIN machines m ON m.id = c.machine_id \
         WHERE c.credential_hash = $1",
    )
    .bind(credential_hash)
    .fetch_optional(on)
    .await?;
    row.map(
        |(tenant_id, machine_id, revoked_ms, status, networks, last_seen_ms, time_zone)| {
            Ok(AgentIdentity {
                tenant_id: TenantId::from_db(tenant_id),
                machine_id: MachineId::from_db(machine_id),
                credential_revoked: revoked_ms.is_some(),
                tenant_status: status.parse()?,
                agent_networks: networks_from_db(&networks)?,
                last_seen_ms,
                tenant_time_zone: time_zone,
            })
        },
    )
    .transpose()
}

/// The tenant's machines, oldest first.
pub async fn list<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<Vec<MachineRecord>> {
    type Row = (String, String, String, i64, Option<i64>, Option<i64>);
    let rows: Vec<Row> = Query::tenant(
        scope,
        "SELECT id, tenant_id, name, created_ms, revoked_ms, last_seen_ms FROM machines \
         WHERE tenant_id = $1 ORDER BY created_ms, id",
    )
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, tenant_id, name, created_ms, revoked_ms, last_seen_ms)| MachineRecord {
                id: MachineId::from_db(id),
                tenant_id: TenantId::from_db(tenant_id),
                name,
                created_ms,
                revoked_ms,
                last_seen_ms,
            },
        )
        .collect())
}

/// How many of the tenant's machines are registered and not revoked.
pub async fn active_count<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<u64> {
    let (count,): (i64,) = Query::tenant(
        scope,
        "SELECT COUNT(*) FROM machines WHERE tenant_id = $1 AND revoked_ms IS NULL",
    )
    .fetch_one(on)
    .await?;
    super::from_db_int(count, "machine count")
}

/// Notes that the machine's agent was seen at `now_ms`.
pub async fn touch<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    machine: &MachineId,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE machines SET last_seen_ms = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(machine.as_str())
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// A machine's name.
pub async fn name(tx: &mut Tx, scope: &impl TenantKey, machine: &MachineId) -> DbResult<Option<String>> {
    Query::tenant(
        scope,
        "SELECT name FROM machines WHERE tenant_id = $1 AND id = $2",
    )
    .bind(machine.as_str())
    .fetch_optional::<(String,)>(&mut *tx)
    .await
    .map(|row| row.map(|(name,)| name))
}

/// Renames the machine; its old name, or `None` if the tenant has no such machine.
pub async fn rename(
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine_id: &MachineId,
    name: &str,
) -> DbResult<Option<String>> {
    let old: Option<(String,)> = Query::tenant(
        scope,
        "SELECT name FROM machines WHERE tenant_id = $1 AND id = $2",
    )
    .bind(machine_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((old,)) = old else {
        return Ok(None);
    };
    Query::tenant(
        scope,
        "UPDATE machines SET name = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(machine_id.as_str())
    .bind(name)
    .execute(tx)
    .await?;
    Ok(Some(old))
}

/// Revokes the machine and every credential it holds. `false` if the tenant has no such
/// machine or it was already revoked.
pub async fn revoke(
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine_id: &MachineId,
    now_ms: i64,
) -> DbResult<bool> {
    let revoked = Query::tenant(
        scope,
        "UPDATE machines SET revoked_ms = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_ms IS NULL",
    )
    .bind(machine_id.as_str())
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Query::tenant(
        scope,
        "UPDATE agent_credentials SET revoked_ms = $3 \
         WHERE tenant_id = $1 AND machine_id = $2 AND revoked_ms IS NULL",
    )
    .bind(machine_id.as_str())
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(revoked == 1)
}

/// Notes that `machine` opened upload session `session_id` of the tenant's vault.
pub async fn record_session<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    session_id: &str,
    machine: &MachineId,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO upload_sessions (tenant_id, session_id, machine_id, created_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(session_id)
    .bind(machine.as_str())
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// The machine that opened the session, if the tenant has such a session.
pub async fn session_machine<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    session_id: &str,
) -> DbResult<Option<MachineId>> {
    let machine: Option<(String,)> = Query::tenant(
        scope,
        "SELECT machine_id FROM upload_sessions WHERE tenant_id = $1 AND session_id = $2",
    )
    .bind(session_id)
    .fetch_optional(on)
    .await?;
    Ok(machine.map(|(id,)| MachineId::from_db(id)))
}

/// Records `machine` as the owner of snapshot `snapshot_id` (hex), with the snapshot's
/// public facts, not yet committed. `true` when the snapshot is now this machine's (also
/// when it already was), `false` when another machine of the tenant owns it.
pub async fn claim_snapshot(
    tx: &mut Tx,
    scope: &impl TenantKey,
    snapshot_id: &str,
    machine: &MachineId,
    facts: &SnapshotFacts,
    now_ms: i64,
) -> DbResult<bool> {
    let query = Query::tenant(
        scope,
        "INSERT INTO snapshot_owners (tenant_id, snapshot_id, machine_id, created_ms, \
         time_ns, kind, source, bytes, bytes_added, errors) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, snapshot_id) DO NOTHING",
    )
    .bind(snapshot_id)
    .bind(machine.as_str())
    .bind(now_ms);
    super::snapshots::bind_facts(query, facts)?
        .execute(&mut *tx)
        .await?;
    let (owner,): (String,) = Query::tenant(
        scope,
        "SELECT machine_id FROM snapshot_owners WHERE tenant_id = $1 AND snapshot_id = $2",
    )
    .bind(snapshot_id)
    .fetch_one(tx)
    .await?;
    Ok(owner == machine.as_str())
}

/// Ids (hex) of the snapshots the machine owns, including claims whose commit failed:
/// callers intersect them with the vault's live snapshots.
pub async fn machine_snapshots<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    machine: &MachineId,
) -> DbResult<Vec<String>> {
    // Sorted here: an ORDER BY leads SQLite to read every owner row of the tenant through
    // the primary key instead of the machine's through its index.
    let rows: Vec<(String,)> = Query::tenant(
        scope,
        "SELECT snapshot_id FROM snapshot_owners WHERE tenant_id = $1 AND machine_id = $2",
    )
    .bind(machine.as_str())
    .fetch_all(on)
    .await?;
    let mut ids: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Deletes registration tokens that expired unused (used ones stay: they record which
/// token registered which machine).
pub async fn delete_expired_registration_tokens<'c>(on: impl Target<'c>, now_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM registration_tokens WHERE used_ms IS NULL AND expires_ms <= $1")
        .bind(now_ms)
        .execute(on)
        .await
}

/// The key slot a machine added for itself, if any.
pub async fn key_slot(tx: &mut Tx, scope: &impl TenantKey, machine: &MachineId) -> DbResult<Option<String>> {
    let row: Option<(Option<String>,)> = Query::tenant(
        scope,
        "SELECT key_slot_id FROM machines WHERE tenant_id = $1 AND id = $2",
    )
    .bind(machine.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.and_then(|(slot,)| slot))
}

/// Records (or with `None` forgets) the key slot of a machine.
pub async fn set_key_slot(
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine: &MachineId,
    slot: Option<&str>,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE machines SET key_slot_id = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(machine.as_str())
    .bind(slot)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
