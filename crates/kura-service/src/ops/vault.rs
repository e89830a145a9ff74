//! The agent's side of a tenant vault: which upload sessions and snapshots belong to the
//! calling machine, the storage quota, commits and restores in the event log, and the
//! refusal of deletions to agents (agent credentials are append-only).
//!
//! **One machine's snapshots.** An agent sees and uses only what its own machine made:
//! the service database records which machine opened each upload session and committed
//! each snapshot (the vault itself knows no machines), a session of another machine is
//! "not found" like an unknown one, and snapshot lists and `latest`/prefix resolution
//! consider only the caller's machine's snapshots. Chunks are the exception: dedup spans
//! the tenant's vault (a chunk id is unguessable without the content, or the key).

use std::collections::HashSet;
use std::sync::Arc;

use kura_format::{KeySlot, Manifest, SnapshotId, VaultConfig};
use kura_store::{SessionId, SnapshotRecord, StoreError};

use super::record;
use crate::audit::Action;
use crate::authz::{AgentPrincipal, TenantScope};
use crate::db::machines;
use crate::model::SnapshotFacts;
use crate::vaults::TenantVault;
use crate::{Service, ServiceError, ServiceResult};

/// What a store failure means to the caller. Storage and database failures are ours
/// (logged, not shown); a full disk is named because the operator must act.
pub fn store_error(err: StoreError) -> ServiceError {
    match err {
        StoreError::NoVault(_) => no_vault(),
        StoreError::AlreadyExists(_) => ServiceError::conflict(
            "this tenant's vault exists already (a machine of the tenant created it), and this machine can \
             back up to it now: `kura backup PATH`, with the vault's passphrase if it is encrypted. \
             Nothing needs to be initialised again; to give this machine a passphrase of its own, run \
             `kura key add` on a machine that has one",
        ),
        StoreError::Format(e) => ServiceError::invalid(format!("undecodable data: {e}")),
        StoreError::Rejected(why) => ServiceError::invalid(why),
        StoreError::UnknownSnapshot(spec) => ServiceError::not_found(format!("no snapshot matches {spec:?}")),
        StoreError::AmbiguousSnapshot(spec) => {
            ServiceError::invalid(format!("snapshot prefix {spec:?} is ambiguous: give more digits"))
        }
        StoreError::MissingChunk(id) => ServiceError::not_found(format!("chunk {id} is not in the vault")),
        StoreError::UnknownSession(id) => ServiceError::not_found(format!(
            "upload session {id} is unknown, expired or already committed; start a new backup"
        )),
        StoreError::NoSpace(msg) => {
            tracing::error!(error = %msg, "vault storage is full");
            ServiceError::storage_full(
                "the service's storage is full; nothing was stored — try again later and tell your provider",
            )
        }
        other => ServiceError::internal("vault operation failed", &other),
    }
}

fn no_vault() -> ServiceError {
    ServiceError::not_found("this tenant has no vault yet: run `kura init` on a registered machine")
}

/// The tenant's vault, or `None` before `kura init`.
pub async fn find(svc: &Service, scope: &TenantScope) -> ServiceResult<Option<Arc<TenantVault>>> {
    svc.vaults.get(scope).await.map_err(store_error)
}

/// The caller's tenant vault; "not found" before `kura init`.
pub async fn open(svc: &Service, agent: &AgentPrincipal) -> ServiceResult<Arc<TenantVault>> {
    find(svc, &agent.scope).await?.ok_or_else(no_vault)
}

/// Gives the calling machine its own key slot (unattended unlock: the agent keeps the
/// slot's secret in its config file), replacing the one it had. Only a recovery-kind slot
/// (a random 32-byte secret, no Argon2 on every run) is taken. The service records which
/// slot is the machine's, so revoking the machine removes exactly that one.
pub async fn set_machine_key_slot(
    svc: &Service,
    agent: &AgentPrincipal,
    slot: &KeySlot,
) -> ServiceResult<()> {
    if !matches!(slot.kind, kura_format::keys::SlotKind::Recovery) {
        return Err(ServiceError::invalid(
            "slot: a machine's key slot is opened by a random secret (a recovery-kind slot), not a passphrase",
        ));
    }
    let vault = open(svc, agent).await?;
    if !vault.vault.config().encrypted {
        return Err(ServiceError::conflict(
            "this tenant's vault is not encrypted: it has no keys to unlock",
        ));
    }
    vault.vault.add_key_slot(slot).await.map_err(store_error)?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let old = machines::key_slot(&mut tx, &agent.scope, &agent.machine_id).await?;
    machines::set_key_slot(&mut tx, &agent.scope, &agent.machine_id, Some(&slot.id)).await?;
    super::record_in(
        &mut tx,
        &agent.actor,
        now,
        &agent.scope,
        Action::MachineKeySlot,
        agent.machine_id.as_str(),
        &format!(
            "ok: slot {}{}",
            slot.id,
            old.as_deref()
                .map(|o| format!(" replaces {o}"))
                .unwrap_or_default()
        ),
    )
    .await?;
    tx.commit().await?;
    if let Some(old) = old.filter(|o| *o != slot.id) {
        remove_slot(&vault, &old).await;
    }
    Ok(())
}

/// Removes a machine's key slot from the vault; a slot already gone is no error.
pub(crate) async fn remove_slot(vault: &TenantVault, id: &str) {
    if let Err(err) = vault.vault.remove_key_slot(id).await {
        tracing::warn!(slot = id, error = %err, "cannot remove a machine's key slot");
    }
}

/// The first registered machine creates the tenant's vault, encrypted if the contract
/// requires it.
pub async fn create(
    svc: &Service,
    agent: &AgentPrincipal,
    config: VaultConfig,
    slots: &[KeySlot],
) -> ServiceResult<()> {
    let tenant = super::tenants::current(svc, &agent.scope).await?;
    if tenant.encryption_required && !config.encrypted {
        return Err(ServiceError::forbidden(
            "this tenant's contract requires encryption: run `kura init --encrypt`",
        ));
    }
    if config.encrypted && slots.is_empty() {
        return Err(ServiceError::invalid(
            "an encrypted vault needs at least one key slot",
        ));
    }
    svc.vaults
        .create(&agent.scope, config, slots)
        .await
        .map_err(store_error)?;
    tracing::info!(tenant_id = %agent.scope.tenant_id(), machine_id = %agent.machine_id, "vault created");
    Ok(())
}

fn unknown_session(text: &str) -> ServiceError {
    ServiceError::not_found(format!(
        "upload session {text:?} is unknown, expired or already committed; start a new backup"
    ))
}

/// The session named in a path, if the caller's machine opened it. Another machine's
/// session answers exactly as an unknown one, so a caller learns nothing about it.
pub async fn own_session(svc: &Service, agent: &AgentPrincipal, text: &str) -> ServiceResult<SessionId> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown_session(text));
    }
    let session = SessionId(text.to_ascii_lowercase());
    match machines::session_machine(&svc.db, &agent.scope, &session.0).await? {
        Some(machine) if machine == agent.machine_id => Ok(session),
        _ => Err(unknown_session(text)),
    }
}

/// Ids (hex) of the snapshots the caller's machine committed.
async fn owned_ids(svc: &Service, agent: &AgentPrincipal) -> ServiceResult<HashSet<String>> {
    Ok(
        machines::machine_snapshots(&svc.db, &agent.scope, &agent.machine_id)
            .await?
            .into_iter()
            .collect(),
    )
}

/// The caller's machine's live snapshots, oldest first (the vault's order).
pub async fn own_snapshots(
    svc: &Service,
    agent: &AgentPrincipal,
    tv: &TenantVault,
) -> ServiceResult<Vec<SnapshotRecord>> {
    let owned = owned_ids(svc, agent).await?;
    let mut records = tv.vault.snapshots().await.map_err(store_error)?;
    records.retain(|r| owned.contains(&r.id.to_hex()));
    Ok(records)
}

/// `latest`, a full id or a unique hex prefix among the caller's machine's snapshots,
/// with the vault's own rules and errors. A full id also names a snapshot of another
/// machine that a restore job of the caller's grants it (`latest` never does).
pub async fn resolve(
    svc: &Service,
    agent: &AgentPrincipal,
    tv: &TenantVault,
    spec: &str,
) -> ServiceResult<SnapshotRecord> {
    // Only a full id can name a granted snapshot: other specs cost no extra query.
    let full_id = spec.to_ascii_lowercase();
    if full_id.len() == 64 && super::restores::granted(svc, agent).await?.contains(&full_id) {
        let records = tv.vault.snapshots().await.map_err(store_error)?;
        if let Some(record) = records.into_iter().find(|r| r.id.to_hex() == full_id) {
            return Ok(record);
        }
    }
    let mut records = own_snapshots(svc, agent, tv).await?;
    let unknown = || store_error(StoreError::UnknownSnapshot(spec.to_owned()));
    if spec == "latest" {
        return records.pop().ok_or_else(unknown);
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    records.retain(|r| r.id.to_hex().starts_with(&prefix));
    match records.len() {
        0 => Err(unknown()),
        1 => Ok(records.remove(0)),
        _ => Err(store_error(StoreError::AmbiguousSnapshot(spec.to_owned()))),
    }
}

/// Opens an upload session for the caller's machine; a parent must be its own snapshot.
pub async fn open_session(
    svc: &Service,
    agent: &AgentPrincipal,
    parent: Option<SnapshotId>,
) -> ServiceResult<SessionId> {
    if let Some(parent) = &parent
        && !owned_ids(svc, agent).await?.contains(&parent.to_hex())
    {
        return Err(store_error(StoreError::UnknownSnapshot(parent.to_hex())));
    }
    let tv = open(svc, agent).await?;
    let session = tv.vault.open_session(parent).await.map_err(store_error)?;
    machines::record_session(&svc.db, &agent.scope, &session.0, &agent.machine_id, svc.now_ms()).await?;
    Ok(session)
}

/// `1.5 GiB`-style sizes for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Refuses an upload of `bytes` that would exceed the tenant's storage quota, and
/// records the refusal.
pub async fn check_quota(
    svc: &Service,
    agent: &AgentPrincipal,
    tv: &TenantVault,
    session: &SessionId,
    bytes: u64,
) -> ServiceResult<()> {
    let tenant = super::tenants::current(svc, &agent.scope).await?;
    let used = tv.stored_bytes();
    if used.saturating_add(bytes) <= tenant.quota_bytes {
        return Ok(());
    }
    tracing::warn!(tenant_id = %agent.scope.tenant_id(), used, quota = tenant.quota_bytes, "upload refused: quota");
    record(
        svc,
        &agent.actor,
        &agent.scope,
        Action::BackupUpload,
        &format!("session {}", session.0),
        "refused: storage quota exceeded",
    )
    .await?;
    super::alerts::check_quota(svc, &agent.scope).await?;
    Err(ServiceError::storage_full(format!(
        "storage quota exceeded: the tenant stores {} of its {} quota and this upload needs {} more; \
         nothing was stored — forget old snapshots or ask your provider for a larger plan",
        human_bytes(used),
        human_bytes(tenant.quota_bytes),
        human_bytes(bytes)
    )))
}

/// Commits a snapshot (manifest and reference list) for the caller's machine.
pub async fn commit(
    svc: &Service,
    agent: &AgentPrincipal,
    session: &SessionId,
    manifest: &[u8],
    references: &[u8],
) -> ServiceResult<SnapshotId> {
    let tv = open(svc, agent).await?;
    // The owner is recorded before the vault commits, so no committed snapshot is ever
    // without one; a claim whose commit then fails names no live snapshot and is ignored.
    let claimed = Manifest::id_of(manifest).to_hex();
    let facts = SnapshotFacts::of(
        &Manifest::decode(manifest)
            .map_err(|err| ServiceError::invalid(format!("the snapshot's manifest is unreadable: {err}")))?,
    );
    let mut tx = svc.db.begin().await?;
    let ours = machines::claim_snapshot(
        &mut tx,
        &agent.scope,
        &claimed,
        &agent.machine_id,
        &facts,
        svc.now_ms(),
    )
    .await?;
    tx.commit().await?;
    if !ours {
        return Err(ServiceError::conflict(
            "another machine already committed this snapshot",
        ));
    }
    let id = tv
        .vault
        .commit(session, manifest, references)
        .await
        .map_err(store_error)?;
    // The snapshot is committed whatever happens here: should this fail, the metering job
    // marks it later, so the agent is not told of a failure that did not happen.
    if let Err(err) = crate::db::snapshots::set_committed(&svc.db, &agent.scope, &claimed, true).await {
        tracing::warn!(tenant_id = %agent.scope.tenant_id(), snapshot = %claimed, error = %err, "snapshot committed but not yet marked; the metering job will");
    }
    tracing::info!(tenant_id = %agent.scope.tenant_id(), machine_id = %agent.machine_id, snapshot = %id.to_hex(), "snapshot committed");
    record(
        svc,
        &agent.actor,
        &agent.scope,
        Action::BackupCommit,
        &id.to_hex(),
        "ok",
    )
    .await?;
    // The snapshot stands whatever happens here; the next commit checks the quota again.
    if let Err(err) = super::alerts::check_quota(svc, &agent.scope).await {
        tracing::warn!(tenant_id = %agent.scope.tenant_id(), error = %err.message, "cannot check the quota levels now");
    }
    Ok(id)
}

/// The agent says it is restoring one of its machine's snapshots, so the restore
/// appears in the tenant's event log (the server only sees blob reads).
pub async fn note_restore(svc: &Service, agent: &AgentPrincipal, spec: &str) -> ServiceResult<()> {
    let tv = open(svc, agent).await?;
    let snapshot = resolve(svc, agent, &tv, spec).await?;
    record(
        svc,
        &agent.actor,
        &agent.scope,
        Action::RestoreStart,
        &snapshot.id.to_hex(),
        "started",
    )
    .await
}

/// Refuses a deletion to an agent, and records the attempt (a stolen credential trying
/// to destroy backups is worth knowing about).
pub async fn refuse_deletion(
    svc: &Service,
    agent: &AgentPrincipal,
    action: Action,
    what: &str,
) -> ServiceError {
    match record(
        svc,
        &agent.actor,
        &agent.scope,
        action,
        &agent.actor.name,
        "refused: agents cannot delete",
    )
    .await
    {
        Ok(()) => ServiceError::forbidden(format!(
            "agent credentials can add and read snapshots but never {what}; a tenant admin can do this in the portal"
        )),
        Err(err) => err,
    }
}
