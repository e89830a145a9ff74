//! [`RemoteRepository`]: a tenant's vault on `kura-server`, over HTTPS (HTTP/2), with the
//! agent's credential. It speaks the vault protocol of `kura-api` (see docs/protocol.md)
//! and holds no state beyond the connection: the server keeps sessions, so an interrupted
//! upload resumes from whatever packs reached it.

use std::str::FromStr;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kura_api::ErrorBody;
use kura_api::agent::{Register, Registered};
use kura_api::frames::{decode_frames, decode_ids, encode_frames, encode_ids};
use kura_api::jobs::JobView;
use kura_api::vault::{
    AddKeySlot, Committed, CreateVault, Forget, KeySlots, MAX_BLOBS_PER_REQUEST, MAX_IDS_PER_REQUEST,
    OCTET_STREAM, OpenSession, PackStored, RunGc, RunVerify, SessionOpened, SnapshotEntry, SnapshotList,
    VaultInfo,
};
use kura_format::{BlobCodec, ChunkId, KeySlot, Manifest, PackId, SnapshotId, VaultConfig};
use kura_store::{
    GcOptions, GcReport, PackReceipt, RepairReport, SessionId, SnapshotRecord, Usage, VerifyReport,
    VerifyScope,
};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::upload_limit::UploadLimit;
use crate::{AgentError, Repository, Result};

/// How to reach the server as one registered machine.
#[derive(Clone, Debug)]
pub struct ServerConnection {
    /// Base URL of the customer listener, e.g. `https://backup.example.com:8443`.
    pub url: String,
    /// PEM of the CA that signed the server's certificate, when it is not a public one.
    pub ca_cert_pem: Option<String>,
    /// The agent credential (bearer token).
    pub credential: String,
}

/// An HTTPS client that trusts `ca_cert_pem` (besides the system roots when none is given).
pub(crate) fn client(ca_cert_pem: Option<&str>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kura/", env!("CARGO_PKG_VERSION")))
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(20))
        .pool_idle_timeout(std::time::Duration::from_secs(60));
    if let Some(pem) = ca_cert_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| AgentError::Usage(format!("the CA certificate is not valid PEM: {e}")))?;
        builder = builder.tls_certs_only([cert]);
    }
    builder
        .build()
        .map_err(|e| AgentError::Connection(format!("cannot set up HTTPS: {e}")))
}

pub(crate) fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Exchanges a one-time registration token for a machine record and its credential.
pub async fn register(
    url_base: &str,
    ca_cert_pem: Option<&str>,
    token: &str,
    name: &str,
) -> Result<Registered> {
    let http = client(ca_cert_pem)?;
    let request = http
        .post(url(url_base, "/api/v1/agents/register"))
        .json(&Register {
            token: token.to_string(),
            name: name.to_string(),
        });
    json(send(request, url_base).await?).await
}

pub(crate) async fn send(request: RequestBuilder, base: &str) -> Result<Response> {
    let response = request.send().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        if msg.contains("UnknownIssuer") {
            msg.push_str(
                " — the server's certificate is not signed by a CA this machine trusts; if the \
                 service uses its own CA, give its certificate with `kura register --ca-cert FILE` \
                 (the portal's Machines page offers ca.pem)",
            );
        }
        AgentError::Connection(format!("{base}: {msg}"))
    })?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error)
        .unwrap_or_else(|_| format!("{} {}", status.as_u16(), text.trim()));
    Err(AgentError::Server {
        status: status.as_u16(),
        message,
    })
}

pub(crate) async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| AgentError::Connection(format!("reading the answer: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| AgentError::Connection(format!("unexpected answer: {e}")))
}

async fn bytes(response: Response) -> Result<Bytes> {
    response
        .bytes()
        .await
        .map_err(|e| AgentError::Connection(format!("reading the answer: {e}")))
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|e| AgentError::Connection(format!("the server sent a bad {what}: {e}")))
}

/// The tenant's vault on a Kura server.
pub struct RemoteRepository {
    http: reqwest::Client,
    base: String,
    credential: String,
    config: VaultConfig,
    location: String,
    /// Paces pack uploads (`--limit-upload`, a plan's bandwidth limit).
    upload_limit: Option<Arc<UploadLimit>>,
}

impl RemoteRepository {
    /// Connects to the tenant's vault; a tenant without a vault gets "run `kura init`".
    pub async fn open(conn: &ServerConnection) -> Result<Self> {
        let http = client(conn.ca_cert_pem.as_deref())?;
        let request = http
            .get(url(&conn.url, "/api/v1/vault"))
            .bearer_auth(&conn.credential);
        let info: VaultInfo = match send(request, &conn.url).await {
            Ok(r) => json(r).await?,
            Err(AgentError::Server { status: 404, .. }) => {
                return Err(
                    kura_store::StoreError::NoVault(format!("{} (this tenant's vault)", conn.url)).into(),
                );
            }
            Err(e) => return Err(e),
        };
        let config = VaultConfig::decode(&unhex("vault config", &info.config)?)?;
        Ok(RemoteRepository {
            http,
            base: conn.url.clone(),
            credential: conn.credential.clone(),
            config,
            location: info.location,
            upload_limit: None,
        })
    }

    /// Gives this machine its own key slot, replacing the one it had (see
    /// [`crate::machine_key_slot`]); revoking the machine removes it.
    pub async fn set_machine_key_slot(&self, slot: &KeySlot) -> Result<()> {
        let body = AddKeySlot {
            slot: hex::encode(slot.encode()),
        };
        self.call(
            self.request(Method::PUT, "/api/v1/vault/machine-key-slot")
                .json(&body),
        )
        .await?;
        Ok(())
    }

    /// Sends packs no faster than `bytes_per_s` (none: as fast as the link goes).
    pub fn with_upload_limit(mut self, bytes_per_s: Option<u64>) -> Self {
        self.upload_limit = bytes_per_s.map(UploadLimit::new);
        self
    }

    /// Creates the tenant's vault with a configuration and key slots made here.
    pub async fn create(conn: &ServerConnection, config: VaultConfig, slots: &[KeySlot]) -> Result<Self> {
        let http = client(conn.ca_cert_pem.as_deref())?;
        let body = CreateVault {
            config: hex::encode(config.encode()),
            key_slots: slots.iter().map(|s| hex::encode(s.encode())).collect(),
        };
        let request = http
            .post(url(&conn.url, "/api/v1/vault"))
            .bearer_auth(&conn.credential)
            .json(&body);
        send(request, &conn.url).await?;
        Self::open(conn).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, url(&self.base, path))
            .bearer_auth(&self.credential)
    }

    async fn call(&self, request: RequestBuilder) -> Result<Response> {
        send(request, &self.base).await
    }

    fn session_path(session: &SessionId, tail: &str) -> String {
        format!("/api/v1/vault/sessions/{}{tail}", session.0)
    }

    async fn snapshot_entry(&self, spec: &str) -> Result<SnapshotEntry> {
        let path = format!("/api/v1/vault/snapshots/{spec}");
        match self.call(self.request(Method::GET, &path)).await {
            Ok(r) => json(r).await,
            Err(AgentError::Server { status: 404, .. }) => {
                Err(kura_store::StoreError::UnknownSnapshot(spec.to_string()).into())
            }
            Err(e) => Err(e),
        }
    }
}

fn record(entry: &SnapshotEntry) -> Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        id: SnapshotId::from_str(&entry.id)?,
        manifest: Manifest::decode(&unhex("manifest", &entry.manifest)?)?,
    })
}

#[async_trait]
impl Repository for RemoteRepository {
    fn config(&self) -> &VaultConfig {
        &self.config
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn key_slots(&self) -> Result<Vec<KeySlot>> {
        let slots: KeySlots = json(
            self.call(self.request(Method::GET, "/api/v1/vault/key-slots"))
                .await?,
        )
        .await?;
        slots
            .slots
            .iter()
            .map(|s| Ok(KeySlot::decode(&unhex("key slot", s)?)?))
            .collect()
    }

    async fn add_key_slot(&self, slot: &KeySlot) -> Result<()> {
        let body = AddKeySlot {
            slot: hex::encode(slot.encode()),
        };
        self.call(self.request(Method::POST, "/api/v1/vault/key-slots").json(&body))
            .await?;
        Ok(())
    }

    async fn remove_key_slot(&self, id: &str) -> Result<()> {
        let path = format!("/api/v1/vault/key-slots/{id}");
        self.call(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    async fn open_session(&self, parent: Option<SnapshotId>) -> Result<SessionId> {
        let body = OpenSession {
            parent: parent.map(|p| p.to_hex()),
        };
        let opened: SessionOpened = json(
            self.call(self.request(Method::POST, "/api/v1/vault/sessions").json(&body))
                .await?,
        )
        .await?;
        Ok(SessionId(opened.session))
    }

    async fn missing(&self, session: &SessionId, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let mut missing = Vec::new();
        for batch in ids.chunks(MAX_IDS_PER_REQUEST) {
            let body = encode_ids(batch.iter().map(|id| id.as_bytes()));
            let request = self
                .request(Method::POST, &Self::session_path(session, "/missing"))
                .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
                .body(body);
            let answer = bytes(self.call(request).await?).await?;
            let absent = decode_ids(&answer).map_err(|e| AgentError::Connection(e.to_string()))?;
            missing.extend(
                absent
                    .iter()
                    .map(|b| ChunkId::from_slice(b))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            );
        }
        Ok(missing)
    }

    async fn put_pack(&self, session: &SessionId, pack: Bytes) -> Result<PackReceipt> {
        let request = self
            .request(Method::PUT, &Self::session_path(session, "/packs"))
            .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
            .header(reqwest::header::CONTENT_LENGTH, pack.len())
            .body(match &self.upload_limit {
                Some(limit) => limit.body(pack),
                None => pack.into(),
            });
        let stored: PackStored = json(self.call(request).await?).await?;
        let pack_id = unhex("pack id", &stored.pack_id)?;
        Ok(PackReceipt {
            pack_id: PackId(
                pack_id
                    .try_into()
                    .map_err(|_| AgentError::Connection("the server sent a bad pack id".into()))?,
            ),
            blobs: stored.blobs,
            new_chunks: stored.new_chunks,
            stored_bytes: stored.stored_bytes,
        })
    }

    async fn commit(&self, session: &SessionId, manifest: Vec<u8>, refs: Vec<u8>) -> Result<SnapshotId> {
        let body = encode_frames([manifest.as_slice(), refs.as_slice()]);
        let request = self
            .request(Method::POST, &Self::session_path(session, "/commit"))
            .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
            .body(body);
        let committed: Committed = json(self.call(request).await?).await?;
        Ok(SnapshotId::from_str(&committed.snapshot_id)?)
    }

    async fn abort_session(&self, session: &SessionId) -> Result<()> {
        self.call(self.request(Method::DELETE, &Self::session_path(session, "")))
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, session: &SessionId) -> Result<()> {
        self.call(self.request(Method::POST, &Self::session_path(session, "/heartbeat")))
            .await?;
        Ok(())
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let list: SnapshotList = json(
            self.call(self.request(Method::GET, "/api/v1/vault/snapshots"))
                .await?,
        )
        .await?;
        list.snapshots.iter().map(record).collect()
    }

    async fn resolve(&self, spec: &str) -> Result<SnapshotId> {
        Ok(SnapshotId::from_str(&self.snapshot_entry(spec).await?.id)?)
    }

    async fn manifest(&self, id: &SnapshotId) -> Result<Manifest> {
        Ok(record(&self.snapshot_entry(&id.to_hex()).await?)?.manifest)
    }

    async fn is_damaged(&self, id: &SnapshotId) -> Result<bool> {
        Ok(self.snapshot_entry(&id.to_hex()).await?.damaged)
    }

    async fn read_blobs(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        let mut blobs = Vec::with_capacity(ids.len());
        for batch in ids.chunks(MAX_BLOBS_PER_REQUEST) {
            let body = encode_ids(batch.iter().map(|id| id.as_bytes()));
            let request = self
                .request(Method::POST, "/api/v1/vault/blobs")
                .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
                .body(body);
            let answer = bytes(self.call(request).await?).await?;
            let frames = decode_frames(&answer).map_err(|e| AgentError::Connection(e.to_string()))?;
            if frames.len() != batch.len() {
                return Err(AgentError::Connection(format!(
                    "asked for {} blobs, the server sent {}",
                    batch.len(),
                    frames.len()
                )));
            }
            blobs.extend(frames.into_iter().map(|r| answer.slice(r)));
        }
        Ok(blobs)
    }

    async fn note_restore(&self, id: &SnapshotId) -> Result<()> {
        let path = format!("/api/v1/vault/snapshots/{}/restores", id.to_hex());
        self.call(self.request(Method::POST, &path)).await?;
        Ok(())
    }

    async fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        let body = Forget {
            snapshots: ids.iter().map(SnapshotId::to_hex).collect(),
        };
        self.call(self.request(Method::POST, "/api/v1/vault/forget").json(&body))
            .await?;
        Ok(())
    }

    async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        let body = RunGc {
            max_unused: options.max_unused,
            dry_run: options.dry_run,
        };
        json(
            self.call(self.request(Method::POST, "/api/v1/vault/gc").json(&body))
                .await?,
        )
        .await
    }

    async fn verify(&self, scope: VerifyScope, _opener: Option<&BlobCodec>) -> Result<VerifyReport> {
        // The server checks without the key: pack hashes and plain blobs. Encrypted blobs
        // are proven by their pack's content hash, which the agent made. The check runs
        // as a job on the server (it may read the whole vault); the agent follows it.
        let body = RunVerify {
            read_data: scope.read_data,
        };
        let mut job: JobView = json(
            self.call(self.request(Method::POST, "/api/v1/vault/verify").json(&body))
                .await?,
        )
        .await?;
        let path = format!("/api/v1/jobs/{}", job.id);
        let mut wait = Duration::from_millis(200);
        while !job.is_finished() {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
            job = json(self.call(self.request(Method::GET, &path)).await?).await?;
        }
        verify_outcome(job)
    }

    /// The server repairs its vaults itself, in its verify job: agents cannot ask for it.
    async fn repair(&self, _opener: Option<&BlobCodec>) -> Result<RepairReport> {
        Err(AgentError::Usage(
            "a vault on the server is repaired by the server's verify job, not by an agent; \
             `kura check` shows what it found — ask your provider to run it if damage is reported"
                .into(),
        ))
    }

    async fn usage(&self) -> Result<Usage> {
        json(
            self.call(self.request(Method::GET, "/api/v1/vault/usage"))
                .await?,
        )
        .await
    }
}

/// What the server's verify job found. When it found damage its repair ran, and the
/// answer is the vault as the repair left it (what is still damaged), with what was found
/// and healed among the warnings: so `check` fails only while damage remains.
fn verify_outcome(job: JobView) -> Result<VerifyReport> {
    #[derive(serde::Deserialize)]
    struct Outcome {
        report: VerifyReport,
        repair: Option<RepairReport>,
    }
    if job.status != "succeeded" {
        return Err(AgentError::Server {
            status: 500,
            message: format!(
                "the server's verify job {} failed: {}",
                job.id,
                job.error.as_deref().unwrap_or("no reason given")
            ),
        });
    }
    let outcome: Outcome = job
        .result
        .ok_or_else(|| AgentError::Connection(format!("verify job {} has no result", job.id)))
        .and_then(|value| {
            serde_json::from_value(value)
                .map_err(|e| AgentError::Connection(format!("unexpected verify result: {e}")))
        })?;
    let mut report = outcome.report;
    if let Some(repair) = outcome.repair {
        report.warnings.push(format!(
            "the server found damage ({} chunks, {} packs, {} snapshots) and repaired the vault: \
             {} packs rewritten, {} damage marks cleared; {}",
            report.damaged_chunks.len(),
            report.damaged_packs.len(),
            report.damaged_snapshots.len(),
            repair.packs_rewritten.len(),
            repair.marks_cleared,
            if repair.is_healed() {
                "the vault is whole again".to_owned()
            } else {
                format!(
                    "{} snapshots stay damaged: their data exists nowhere else — back up the same files again, or forget them",
                    repair.remaining.damaged_snapshots.len()
                )
            }
        ));
        report.problems = repair.remaining.problems;
        report.damaged_chunks = repair.remaining.damaged_chunks;
        report.damaged_packs = repair.remaining.damaged_packs;
        report.damaged_snapshots = repair.remaining.damaged_snapshots;
    }
    Ok(report)
}
