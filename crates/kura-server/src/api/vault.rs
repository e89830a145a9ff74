//! The vault protocol (customer listener, agent credentials): upload sessions, missing
//! chunk queries, pack uploads, commits, snapshot listing and blob reads on the caller's
//! tenant vault. docs/protocol.md describes it; `kura-api` holds its types.
//!
//! Agent credentials are append-only: they add snapshots and read them, and every route
//! that would delete or overwrite (forget, GC, removing a key slot) refuses them.
//!
//! **One machine's snapshots.** An agent sees and uses only what its own machine made: the
//! service database records which machine opened each upload session and committed each
//! snapshot (the vault itself knows no machines), a session of another machine is 404 like
//! an unknown one, and snapshot lists and `latest`/prefix resolution consider only the
//! caller's machine's snapshots. Chunks are the exception: dedup spans the tenant's vault,
//! so `missing` and `blobs` answer for the whole vault (a chunk id is unguessable without
//! the content, or the key in an encrypted vault).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use kura_api::frames::{decode_ids, decode_n_frames, push_frame};
use kura_api::vault::{
    AddKeySlot, Committed, CreateVault, KeySlots, MAX_BLOBS_PER_REQUEST, MAX_IDS_PER_REQUEST, OCTET_STREAM,
    OpenSession, PackStored, RunVerify, SessionOpened, SnapshotEntry, SnapshotList, VaultInfo,
};
use kura_format::{ChunkId, KeySlot, Manifest, SnapshotId, VaultConfig};
use kura_store::{SessionId, SnapshotRecord, StoreError, Usage, VerifyReport, VerifyScope};

use super::{ApiBytes, ApiJson};
use crate::app::AppState;
use crate::auth::AgentPrincipal;
use crate::error::ApiError;
use crate::tenants::now_ms;
use crate::vaults::TenantVault;

/// What a store failure means to the client. Storage and database failures are ours
/// (logged, not shown); a full disk is named because the operator must act.
pub(super) fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NoVault(_) => no_vault(),
        StoreError::AlreadyExists(_) => ApiError::conflict("this tenant's vault already exists"),
        StoreError::Format(e) => ApiError::invalid(format!("undecodable data: {e}")),
        StoreError::Rejected(why) => ApiError::invalid(why),
        StoreError::UnknownSnapshot(spec) => ApiError::not_found(format!("no snapshot matches {spec:?}")),
        StoreError::AmbiguousSnapshot(spec) => {
            ApiError::bad_request(format!("snapshot prefix {spec:?} is ambiguous: give more digits"))
        }
        StoreError::MissingChunk(id) => ApiError::not_found(format!("chunk {id} is not in the vault")),
        StoreError::UnknownSession(id) => ApiError::not_found(format!(
            "upload session {id} is unknown, expired or already committed; start a new backup"
        )),
        StoreError::Storage(msg) if msg.contains("No space left") => {
            tracing::error!(error = %msg, "vault storage is full");
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the service's storage is full; nothing was stored — try again later and tell your provider",
            )
        }
        other => ApiError::internal("vault operation failed", &other),
    }
}

fn no_vault() -> ApiError {
    ApiError::not_found("this tenant has no vault yet: run `kura init` on a registered machine")
}

async fn tenant_vault(state: &AppState, agent: &AgentPrincipal) -> Result<Arc<TenantVault>, ApiError> {
    state
        .vaults
        .get(&agent.scope)
        .await
        .map_err(store_error)?
        .ok_or_else(no_vault)
}

fn unhex(what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(text).map_err(|e| ApiError::invalid(format!("{what} is not hex: {e}")))
}

fn unknown_session(text: &str) -> ApiError {
    ApiError::not_found(format!(
        "upload session {text:?} is unknown, expired or already committed; start a new backup"
    ))
}

/// The session named in a path, if the caller's machine opened it. Session ids are what
/// the vault generated (32 hex digits); another machine's session answers exactly as an
/// unknown one, so a caller learns nothing about it.
async fn own_session(state: &AppState, agent: &AgentPrincipal, text: &str) -> Result<SessionId, ApiError> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown_session(text));
    }
    let session = SessionId(text.to_ascii_lowercase());
    match state.db.session_machine(&agent.scope, &session.0).await? {
        Some(machine) if machine == agent.machine_id => Ok(session),
        _ => Err(unknown_session(text)),
    }
}

/// Ids (hex) of the snapshots the caller's machine committed.
async fn owned_ids(state: &AppState, agent: &AgentPrincipal) -> Result<HashSet<String>, ApiError> {
    Ok(state
        .db
        .machine_snapshots(&agent.scope, &agent.machine_id)
        .await?
        .into_iter()
        .collect())
}

/// The caller's machine's live snapshots, oldest first (the vault's order).
async fn own_snapshots(
    state: &AppState,
    agent: &AgentPrincipal,
    tv: &TenantVault,
) -> Result<Vec<SnapshotRecord>, ApiError> {
    let owned = owned_ids(state, agent).await?;
    let mut records = tv.vault.snapshots().await.map_err(store_error)?;
    records.retain(|r| owned.contains(&r.id.to_hex()));
    Ok(records)
}

/// `latest`, a full id or a unique hex prefix among `records` (oldest first), with the
/// vault's own rules and errors, so that resolution on the server and in a local vault
/// read alike.
fn resolve_among(mut records: Vec<SnapshotRecord>, spec: &str) -> Result<SnapshotRecord, StoreError> {
    if spec == "latest" {
        return records
            .pop()
            .ok_or_else(|| StoreError::UnknownSnapshot(spec.to_owned()));
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::UnknownSnapshot(spec.to_owned()));
    }
    records.retain(|r| r.id.to_hex().starts_with(&prefix));
    match records.len() {
        0 => Err(StoreError::UnknownSnapshot(spec.to_owned())),
        1 => Ok(records.remove(0)),
        _ => Err(StoreError::AmbiguousSnapshot(spec.to_owned())),
    }
}

fn chunk_ids(body: &[u8], most: usize) -> Result<Vec<ChunkId>, ApiError> {
    let ids = decode_ids(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if ids.len() > most {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {most} ids per request, got {}", ids.len()),
        ));
    }
    ids.iter()
        .map(|b| ChunkId::from_slice(b).map_err(|e| ApiError::bad_request(e.to_string())))
        .collect()
}

fn octets(body: Vec<u8>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OCTET_STREAM)], body)
}

/// Refuses a deletion to an agent, and records the attempt in the tenant's event log (a
/// stolen credential trying to destroy backups is worth knowing about).
async fn refuse_agent(state: &AppState, agent: &AgentPrincipal, action: &str, what: &str) -> ApiError {
    let logged = agent
        .audit
        .record(
            state,
            &agent.scope,
            action,
            &agent.audit.actor,
            "refused: agents cannot delete",
        )
        .await;
    match logged {
        Ok(()) => ApiError::forbidden(format!(
            "agent credentials can add and read snapshots but never {what}; a tenant admin can do this in the portal"
        )),
        Err(err) => err,
    }
}

/// `GET /api/v1/vault`.
pub(super) async fn info(
    State(state): State<AppState>,
    agent: AgentPrincipal,
) -> Result<Json<VaultInfo>, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    Ok(Json(VaultInfo {
        config: hex::encode(tv.vault.config().encode()),
        location: format!("tenant {} vault default", agent.scope.tenant_id()),
    }))
}

/// `POST /api/v1/vault`: the first registered machine creates the tenant's vault.
pub(super) async fn create(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    ApiJson(request): ApiJson<CreateVault>,
) -> Result<(StatusCode, Json<VaultInfo>), ApiError> {
    let config = VaultConfig::decode(&unhex("config", &request.config)?)
        .map_err(|e| ApiError::invalid(format!("vault config: {e}")))?;
    let slots = request
        .key_slots
        .iter()
        .map(|s| {
            KeySlot::decode(&unhex("key slot", s)?).map_err(|e| ApiError::invalid(format!("key slot: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tenant = state
        .db
        .tenant(&agent.scope)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown tenant"))?;
    if tenant.encryption_required && !config.encrypted {
        return Err(ApiError::forbidden(
            "this tenant's contract requires encryption: run `kura init --encrypt`",
        ));
    }
    if config.encrypted && slots.is_empty() {
        return Err(ApiError::invalid(
            "an encrypted vault needs at least one key slot",
        ));
    }
    state
        .vaults
        .create(&agent.scope, config, &slots)
        .await
        .map_err(store_error)?;
    tracing::info!(tenant_id = %agent.scope.tenant_id(), machine_id = %agent.machine_id, "vault created");
    let Json(info) = info(State(state), agent).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `GET /api/v1/vault/key-slots`.
pub(super) async fn key_slots(
    State(state): State<AppState>,
    agent: AgentPrincipal,
) -> Result<Json<KeySlots>, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    let slots = tv.vault.key_slots().await.map_err(store_error)?;
    Ok(Json(KeySlots {
        slots: slots.iter().map(|s| hex::encode(s.encode())).collect(),
    }))
}

/// `POST /api/v1/vault/key-slots`: adding a way in loses nothing, so agents may.
pub(super) async fn add_key_slot(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    ApiJson(request): ApiJson<AddKeySlot>,
) -> Result<StatusCode, ApiError> {
    let slot = KeySlot::decode(&unhex("key slot", &request.slot)?)
        .map_err(|e| ApiError::invalid(format!("key slot: {e}")))?;
    let tv = tenant_vault(&state, &agent).await?;
    tv.vault.add_key_slot(&slot).await.map_err(store_error)?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /api/v1/vault/key-slots/{id}`: never by an agent.
pub(super) async fn remove_key_slot(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(_id): Path<String>,
) -> ApiError {
    refuse_agent(&state, &agent, "vault.key_slot.remove", "remove a key slot").await
}

/// `POST /api/v1/vault/sessions`.
pub(super) async fn open_session(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    ApiJson(request): ApiJson<OpenSession>,
) -> Result<(StatusCode, Json<SessionOpened>), ApiError> {
    let parent = request
        .parent
        .as_deref()
        .map(|p| SnapshotId::from_str(p).map_err(|e| ApiError::invalid(format!("parent: {e}"))))
        .transpose()?;
    if let Some(parent) = &parent
        && !owned_ids(&state, &agent).await?.contains(&parent.to_hex())
    {
        return Err(store_error(StoreError::UnknownSnapshot(parent.to_hex())));
    }
    let tv = tenant_vault(&state, &agent).await?;
    let session = tv.vault.open_session(parent).await.map_err(store_error)?;
    state
        .db
        .record_session(&agent.scope, &session.0, &agent.machine_id, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(SessionOpened { session: session.0 })))
}

/// `POST /api/v1/vault/sessions/{session}/missing`: ids in, the missing ones out.
pub(super) async fn missing(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(session): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<impl IntoResponse, ApiError> {
    let session = own_session(&state, &agent, &session).await?;
    let ids = chunk_ids(&body, MAX_IDS_PER_REQUEST)?;
    let tv = tenant_vault(&state, &agent).await?;
    let missing = tv.vault.missing(&session, &ids).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(missing.len() * 32);
    for id in &missing {
        out.extend_from_slice(id.as_bytes());
    }
    Ok(octets(out))
}

/// `PUT /api/v1/vault/sessions/{session}/packs`: one pack, checked, counted against the
/// quota before anything is stored.
pub(super) async fn put_pack(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(session): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<PackStored>, ApiError> {
    let session = own_session(&state, &agent, &session).await?;
    let tv = tenant_vault(&state, &agent).await?;
    let tenant = state
        .db
        .tenant(&agent.scope)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown tenant"))?;
    let used = tv.stored_bytes();
    if used.saturating_add(body.len() as u64) > tenant.quota_bytes {
        metrics::counter!("kura_quota_refusals_total").increment(1);
        tracing::warn!(tenant_id = %agent.scope.tenant_id(), used, quota = tenant.quota_bytes, "upload refused: quota");
        agent
            .audit
            .record(
                &state,
                &agent.scope,
                "backup.upload",
                &format!("session {}", session.0),
                "refused: storage quota exceeded",
            )
            .await?;
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "storage quota exceeded: the tenant stores {} of its {} quota and this upload needs {} more; \
                 nothing was stored — forget old snapshots or ask your provider for a larger plan",
                human_bytes(used),
                human_bytes(tenant.quota_bytes),
                human_bytes(body.len() as u64)
            ),
        ));
    }
    let receipt = tv.vault.put_pack(&session, body).await.map_err(store_error)?;
    tv.add_stored(receipt.stored_bytes);
    metrics::counter!("kura_vault_bytes_uploaded_total").increment(receipt.stored_bytes);
    Ok(Json(PackStored {
        pack_id: receipt.pack_id.to_hex(),
        blobs: receipt.blobs,
        new_chunks: receipt.new_chunks,
        stored_bytes: receipt.stored_bytes,
    }))
}

/// `POST /api/v1/vault/sessions/{session}/commit`: body = frames (manifest, reference list).
pub(super) async fn commit(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(session): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<Committed>), ApiError> {
    let session = own_session(&state, &agent, &session).await?;
    let parts = decode_n_frames(&body, 2)
        .map_err(|e| ApiError::bad_request(format!("commit body (manifest, reference list): {e}")))?;
    let tv = tenant_vault(&state, &agent).await?;
    // The owner is recorded before the vault commits, so no committed snapshot is ever
    // without one; a claim whose commit then fails names no live snapshot and is ignored.
    let claimed = Manifest::id_of(parts[0]).to_hex();
    if !state
        .db
        .claim_snapshot(&agent.scope, &claimed, &agent.machine_id, now_ms())
        .await?
    {
        return Err(ApiError::conflict(
            "another machine already committed this snapshot",
        ));
    }
    let id = tv
        .vault
        .commit(&session, parts[0], parts[1])
        .await
        .map_err(store_error)?;
    tracing::info!(tenant_id = %agent.scope.tenant_id(), machine_id = %agent.machine_id, snapshot = %id.to_hex(), "snapshot committed");
    agent
        .audit
        .record(&state, &agent.scope, "backup.commit", &id.to_hex(), "ok")
        .await?;
    metrics::counter!("kura_snapshots_committed_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(Committed {
            snapshot_id: id.to_hex(),
        }),
    ))
}

/// `DELETE /api/v1/vault/sessions/{session}`: gives up an upload (what it stored stays
/// for the next one, or for GC).
pub(super) async fn abort_session(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = own_session(&state, &agent, &session).await?;
    let tv = tenant_vault(&state, &agent).await?;
    tv.vault.abort_session(&session).await.map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn entry(tv: &TenantVault, record: SnapshotRecord) -> Result<SnapshotEntry, ApiError> {
    Ok(SnapshotEntry {
        id: record.id.to_hex(),
        manifest: hex::encode(record.manifest.encode()),
        damaged: tv.vault.is_damaged(&record.id).await.map_err(store_error)?,
    })
}

/// `GET /api/v1/vault/snapshots`: the caller's machine's snapshots.
pub(super) async fn snapshots(
    State(state): State<AppState>,
    agent: AgentPrincipal,
) -> Result<Json<SnapshotList>, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    let mut list = Vec::new();
    for record in own_snapshots(&state, &agent, &tv).await? {
        list.push(entry(&tv, record).await?);
    }
    Ok(Json(SnapshotList { snapshots: list }))
}

/// `GET /api/v1/vault/snapshots/{spec}`: `latest`, a full id or a unique prefix, among
/// the caller's machine's snapshots.
pub(super) async fn snapshot(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(spec): Path<String>,
) -> Result<Json<SnapshotEntry>, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    let record = resolve_among(own_snapshots(&state, &agent, &tv).await?, &spec).map_err(store_error)?;
    Ok(Json(entry(&tv, record).await?))
}

/// `POST /api/v1/vault/snapshots/{spec}/restores`: the agent says it is restoring one of
/// its machine's snapshots, so the restore appears in the tenant's event log (the server
/// only sees blob reads, which browsing and checking make too).
pub(super) async fn note_restore(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    Path(spec): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    let record = resolve_among(own_snapshots(&state, &agent, &tv).await?, &spec).map_err(store_error)?;
    agent
        .audit
        .record(
            &state,
            &agent.scope,
            "restore.start",
            &record.id.to_hex(),
            "started",
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/vault/blobs`: ids in, their sealed blobs out as frames, in order.
pub(super) async fn blobs(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    ApiBytes(body): ApiBytes,
) -> Result<impl IntoResponse, ApiError> {
    let ids = chunk_ids(&body, MAX_BLOBS_PER_REQUEST)?;
    let tv = tenant_vault(&state, &agent).await?;
    let blobs = tv.vault.read_blobs(&ids).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(blobs.iter().map(|b| b.len() + 4).sum());
    for blob in &blobs {
        push_frame(&mut out, blob);
    }
    Ok(octets(out))
}

/// `POST /api/v1/vault/forget`: never by an agent.
pub(super) async fn forget(State(state): State<AppState>, agent: AgentPrincipal) -> ApiError {
    refuse_agent(&state, &agent, "snapshot.forget", "delete snapshots").await
}

/// `POST /api/v1/vault/gc`: never by an agent (the service runs GC as a job).
pub(super) async fn gc(State(state): State<AppState>, agent: AgentPrincipal) -> ApiError {
    refuse_agent(
        &state,
        &agent,
        "vault.gc",
        "delete data (garbage collection runs on the service)",
    )
    .await
}

/// `POST /api/v1/vault/verify`: checks without the key (pack hashes, plain blobs).
pub(super) async fn verify(
    State(state): State<AppState>,
    agent: AgentPrincipal,
    ApiJson(request): ApiJson<RunVerify>,
) -> Result<Json<VerifyReport>, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    let scope = VerifyScope {
        read_data: request.read_data,
    };
    Ok(Json(tv.vault.verify(scope, None).await.map_err(store_error)?))
}

/// `GET /api/v1/vault/usage`.
pub(super) async fn usage(
    State(state): State<AppState>,
    agent: AgentPrincipal,
) -> Result<Json<Usage>, ApiError> {
    let tv = tenant_vault(&state, &agent).await?;
    Ok(Json(tv.vault.usage().await.map_err(store_error)?))
}

/// `1.5 GiB`-style sizes for messages.
pub(crate) fn human_bytes(n: u64) -> String {
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
