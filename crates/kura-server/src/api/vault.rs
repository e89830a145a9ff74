//! The vault protocol (customer listener, agent credentials): upload sessions, missing
//! chunk queries, pack uploads, commits, snapshot listing and blob reads on the caller's
//! tenant vault. docs/protocol.md describes it; `kura-api` holds its types, and
//! `kura_service::ops::vault` its rules (one machine's snapshots, the quota, append-only
//! agents).

use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use kura_api::ErrorBody;
use kura_api::frames::{decode_ids, decode_n_frames, push_frame};
use kura_api::jobs::JobView;
use kura_api::vault::{
    AddKeySlot, Committed, CreateVault, KeySlots, MAX_BLOBS_PER_REQUEST, MAX_IDS_PER_REQUEST, OCTET_STREAM,
    OpenSession, PackStored, RunVerify, SessionOpened, SnapshotEntry, SnapshotList, VaultInfo,
};
use kura_format::{ChunkId, KeySlot, SnapshotId, VaultConfig};
use kura_service::audit::Action;
use kura_service::db::metering::Traffic;
use kura_service::ops::vault::{self, store_error};
use kura_service::ops::{jobs, metering};
use kura_service::vaults::TenantVault;
use kura_store::{SnapshotRecord, Usage};

use super::openapi::{Binary, UsageSchema};
use super::{ApiBytes, ApiJson};
use crate::app::AppState;
use crate::auth::Agent;
use crate::error::ApiError;

fn unhex(what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(text).map_err(|e| ApiError::invalid(format!("{what} is not hex: {e}")))
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

/// `GET /api/v1/vault`.
#[utoipa::path(get, path = "/api/v1/vault", tag = "vault",
    responses((status = 200, body = VaultInfo)))]
pub(super) async fn info(State(state): State<AppState>, agent: Agent) -> Result<Json<VaultInfo>, ApiError> {
    let tv = vault::open(&state.service, &agent).await?;
    Ok(Json(VaultInfo {
        config: hex::encode(tv.vault.config().encode()),
        location: format!("tenant {} vault default", agent.scope.tenant_id()),
    }))
}

/// `POST /api/v1/vault`: the first registered machine creates the tenant's vault.
#[utoipa::path(post, path = "/api/v1/vault", tag = "vault",
    request_body = CreateVault,
    responses((status = 201, body = VaultInfo)))]
pub(super) async fn create(
    State(state): State<AppState>,
    agent: Agent,
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
    vault::create(&state.service, &agent, config, &slots).await?;
    let Json(info) = info(State(state), agent).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `GET /api/v1/vault/key-slots`.
#[utoipa::path(get, path = "/api/v1/vault/key-slots", tag = "vault",
    responses((status = 200, body = KeySlots)))]
pub(super) async fn key_slots(
    State(state): State<AppState>,
    agent: Agent,
) -> Result<Json<KeySlots>, ApiError> {
    let tv = vault::open(&state.service, &agent).await?;
    let slots = tv.vault.key_slots().await.map_err(store_error)?;
    Ok(Json(KeySlots {
        slots: slots.iter().map(|s| hex::encode(s.encode())).collect(),
    }))
}

fn decode_slot(request: &AddKeySlot) -> Result<KeySlot, ApiError> {
    KeySlot::decode(&unhex("key slot", &request.slot)?)
        .map_err(|e| ApiError::invalid(format!("key slot: {e}")))
}

/// `POST /api/v1/vault/key-slots`: adding a way in loses nothing, so agents may.
#[utoipa::path(post, path = "/api/v1/vault/key-slots", tag = "vault",
    request_body = AddKeySlot,
    responses((status = 201, description = "the slot was added")))]
pub(super) async fn add_key_slot(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(request): ApiJson<AddKeySlot>,
) -> Result<StatusCode, ApiError> {
    let slot = decode_slot(&request)?;
    let tv = vault::open(&state.service, &agent).await?;
    tv.vault.add_key_slot(&slot).await.map_err(store_error)?;
    Ok(StatusCode::CREATED)
}

/// The calling machine's own key slot (unattended unlock), replacing the one it had; the
/// slot goes when the machine is revoked.
#[utoipa::path(put, path = "/api/v1/vault/machine-key-slot", tag = "vault",
    request_body = AddKeySlot,
    responses((status = 204, description = "the slot is the machine's")))]
pub(super) async fn set_machine_key_slot(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(request): ApiJson<AddKeySlot>,
) -> Result<StatusCode, ApiError> {
    let slot = decode_slot(&request)?;
    vault::set_machine_key_slot(&state.service, &agent, &slot).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/vault/key-slots/{id}`: never by an agent.
#[utoipa::path(delete, path = "/api/v1/vault/key-slots/{id}", tag = "vault",
    responses((status = 403, description = "never by an agent", body = ErrorBody)))]
pub(super) async fn remove_key_slot(
    State(state): State<AppState>,
    agent: Agent,
    Path(_id): Path<String>,
) -> ApiError {
    vault::refuse_deletion(
        &state.service,
        &agent,
        Action::VaultKeySlotRemove,
        "remove a key slot",
    )
    .await
    .into()
}

/// `POST /api/v1/vault/sessions`.
#[utoipa::path(post, path = "/api/v1/vault/sessions", tag = "vault",
    request_body = OpenSession,
    responses((status = 201, body = SessionOpened)))]
pub(super) async fn open_session(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(request): ApiJson<OpenSession>,
) -> Result<(StatusCode, Json<SessionOpened>), ApiError> {
    let parent = request
        .parent
        .as_deref()
        .map(|p| SnapshotId::from_str(p).map_err(|e| ApiError::invalid(format!("parent: {e}"))))
        .transpose()?;
    let session = vault::open_session(&state.service, &agent, parent).await?;
    Ok((StatusCode::CREATED, Json(SessionOpened { session: session.0 })))
}

/// `POST /api/v1/vault/sessions/{session}/missing`: ids in, the missing ones out.
#[utoipa::path(post, path = "/api/v1/vault/sessions/{session}/missing", tag = "vault",
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses((status = 200, description = "the ids the vault lacks, concatenated", content_type = "application/octet-stream", body = Binary)))]
pub(super) async fn missing(
    State(state): State<AppState>,
    agent: Agent,
    Path(session): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<impl IntoResponse, ApiError> {
    let session = vault::own_session(&state.service, &agent, &session).await?;
    let ids = chunk_ids(&body, MAX_IDS_PER_REQUEST)?;
    let tv = vault::open(&state.service, &agent).await?;
    let missing = tv.vault.missing(&session, &ids).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(missing.len() * 32);
    for id in &missing {
        out.extend_from_slice(id.as_bytes());
    }
    Ok(octets(out))
}

/// `PUT /api/v1/vault/sessions/{session}/packs`: one pack, checked, counted against the
/// quota before anything is stored.
#[utoipa::path(put, path = "/api/v1/vault/sessions/{session}/packs", tag = "vault",
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses((status = 200, body = PackStored)))]
pub(super) async fn put_pack(
    State(state): State<AppState>,
    agent: Agent,
    Path(session): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<PackStored>, ApiError> {
    let session = vault::own_session(&state.service, &agent, &session).await?;
    let tv = vault::open(&state.service, &agent).await?;
    if let Err(refusal) = vault::check_quota(&state.service, &agent, &tv, &session, body.len() as u64).await {
        metrics::counter!("kura_quota_refusals_total").increment(1);
        return Err(refusal.into());
    }
    let received = body.len() as u64;
    let receipt = tv.vault.put_pack(&session, body).await.map_err(store_error)?;
    tv.add_stored(receipt.stored_bytes);
    count_traffic(&state, &agent, Traffic::Uploaded, received).await;
    metrics::counter!("kura_vault_bytes_uploaded_total").increment(receipt.stored_bytes);
    Ok(Json(PackStored {
        pack_id: receipt.pack_id.to_hex(),
        blobs: receipt.blobs,
        new_chunks: receipt.new_chunks,
        stored_bytes: receipt.stored_bytes,
    }))
}

/// `POST /api/v1/vault/sessions/{session}/commit`: body = frames (manifest, reference list).
#[utoipa::path(post, path = "/api/v1/vault/sessions/{session}/commit", tag = "vault",
    request_body(content = Binary, content_type = "application/octet-stream", description = "frames: manifest, reference list"),
    responses((status = 201, body = Committed)))]
pub(super) async fn commit(
    State(state): State<AppState>,
    agent: Agent,
    Path(session): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<Committed>), ApiError> {
    let session = vault::own_session(&state.service, &agent, &session).await?;
    let parts = decode_n_frames(&body, 2)
        .map_err(|e| ApiError::bad_request(format!("commit body (manifest, reference list): {e}")))?;
    let id = vault::commit(&state.service, &agent, &session, parts[0], parts[1]).await?;
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
#[utoipa::path(delete, path = "/api/v1/vault/sessions/{session}", tag = "vault",
    responses((status = 204, description = "the session ended")))]
pub(super) async fn abort_session(
    State(state): State<AppState>,
    agent: Agent,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = vault::own_session(&state.service, &agent, &session).await?;
    let tv = vault::open(&state.service, &agent).await?;
    tv.vault.abort_session(&session).await.map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/vault/sessions/{session}/heartbeat`: the agent's backup is alive.
#[utoipa::path(post, path = "/api/v1/vault/sessions/{session}/heartbeat", tag = "vault",
    responses((status = 204, description = "the session lives on")))]
pub(super) async fn heartbeat(
    State(state): State<AppState>,
    agent: Agent,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = vault::own_session(&state.service, &agent, &session).await?;
    let tv = vault::open(&state.service, &agent).await?;
    tv.vault.heartbeat(&session).await.map_err(store_error)?;
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
#[utoipa::path(get, path = "/api/v1/vault/snapshots", tag = "vault",
    responses((status = 200, body = SnapshotList)))]
pub(super) async fn snapshots(
    State(state): State<AppState>,
    agent: Agent,
) -> Result<Json<SnapshotList>, ApiError> {
    let tv = vault::open(&state.service, &agent).await?;
    let mut list = Vec::new();
    for record in vault::own_snapshots(&state.service, &agent, &tv).await? {
        list.push(entry(&tv, record).await?);
    }
    Ok(Json(SnapshotList { snapshots: list }))
}

/// `GET /api/v1/vault/snapshots/{spec}`: `latest`, a full id or a unique prefix, among
/// the caller's machine's snapshots.
#[utoipa::path(get, path = "/api/v1/vault/snapshots/{spec}", tag = "vault",
    responses((status = 200, body = SnapshotEntry)))]
pub(super) async fn snapshot(
    State(state): State<AppState>,
    agent: Agent,
    Path(spec): Path<String>,
) -> Result<Json<SnapshotEntry>, ApiError> {
    let tv = vault::open(&state.service, &agent).await?;
    let record = vault::resolve(&state.service, &agent, &tv, &spec).await?;
    Ok(Json(entry(&tv, record).await?))
}

/// `POST /api/v1/vault/snapshots/{spec}/restores`: the agent says it is restoring one of
/// its machine's snapshots, so the restore appears in the tenant's event log (the server
/// only sees blob reads, which browsing and checking make too).
#[utoipa::path(post, path = "/api/v1/vault/snapshots/{spec}/restores", tag = "vault",
    responses((status = 204, description = "the restore is in the event log")))]
pub(super) async fn note_restore(
    State(state): State<AppState>,
    agent: Agent,
    Path(spec): Path<String>,
) -> Result<StatusCode, ApiError> {
    vault::note_restore(&state.service, &agent, &spec).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/vault/blobs`: ids in, their sealed blobs out as frames, in order.
#[utoipa::path(post, path = "/api/v1/vault/blobs", tag = "vault",
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses((status = 200, description = "the sealed blobs as frames, in order", content_type = "application/octet-stream", body = Binary)))]
pub(super) async fn blobs(
    State(state): State<AppState>,
    agent: Agent,
    ApiBytes(body): ApiBytes,
) -> Result<impl IntoResponse, ApiError> {
    let ids = chunk_ids(&body, MAX_BLOBS_PER_REQUEST)?;
    let tv = vault::open(&state.service, &agent).await?;
    let blobs = tv.vault.read_blobs(&ids).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(blobs.iter().map(|b| b.len() + 4).sum());
    for blob in &blobs {
        push_frame(&mut out, blob);
    }
    count_traffic(&state, &agent, Traffic::Restored, out.len() as u64).await;
    Ok(octets(out))
}

/// Meters bytes moved for the agent's tenant. The bytes have moved already: a database
/// that cannot count them now costs that count (logged), not the agent's request.
async fn count_traffic(state: &AppState, agent: &Agent, traffic: Traffic, bytes: u64) {
    if let Err(err) = metering::count(&state.service, agent, traffic, bytes).await {
        tracing::warn!(error = %err, ?traffic, bytes, "traffic not metered");
    }
}

/// `POST /api/v1/vault/forget`: never by an agent.
#[utoipa::path(post, path = "/api/v1/vault/forget", tag = "vault",
    responses((status = 403, description = "never by an agent", body = ErrorBody)))]
pub(super) async fn forget(State(state): State<AppState>, agent: Agent) -> ApiError {
    vault::refuse_deletion(&state.service, &agent, Action::SnapshotForget, "delete snapshots")
        .await
        .into()
}

/// `POST /api/v1/vault/gc`: never by an agent (the service runs GC as a job).
#[utoipa::path(post, path = "/api/v1/vault/gc", tag = "vault",
    responses((status = 403, description = "never by an agent", body = ErrorBody)))]
pub(super) async fn gc(State(state): State<AppState>, agent: Agent) -> ApiError {
    vault::refuse_deletion(
        &state.service,
        &agent,
        Action::VaultGc,
        "delete data (garbage collection runs on the service)",
    )
    .await
    .into()
}

/// `POST /api/v1/vault/verify`: queues a check without the key (catalog, and with
/// `read_data` every pack's content hash, then repair of what can be healed) and answers
/// `202` with the job; the agent follows it at `GET /api/v1/jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/vault/verify", tag = "vault",
    request_body = RunVerify,
    responses((status = 202, description = "the queued verify job", body = JobView)))]
pub(super) async fn verify(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(request): ApiJson<RunVerify>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = jobs::request_verify(&state.service, &agent, request.read_data).await?;
    Ok((StatusCode::ACCEPTED, Json(super::jobs::view(&job))))
}

/// `GET /api/v1/vault/usage`.
#[utoipa::path(get, path = "/api/v1/vault/usage", tag = "vault",
    responses((status = 200, body = UsageSchema)))]
pub(super) async fn usage(State(state): State<AppState>, agent: Agent) -> Result<Json<Usage>, ApiError> {
    let tv = vault::open(&state.service, &agent).await?;
    Ok(Json(tv.vault.usage().await.map_err(store_error)?))
}
