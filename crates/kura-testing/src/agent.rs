//! A minimal agent speaking the vault protocol with reqwest and `kura-format`, so tests
//! can make valid uploads and then break them on purpose.

use kura_api::frames::encode_frames;
use kura_format::manifest::{MANIFEST_VERSION, SnapshotStats};
use kura_format::{
    BlobCodec, BlobKind, ChunkId, Manifest, ManifestBody, PackWriter, ReferenceList, SnapshotKind,
    VaultConfig,
};
use reqwest::Method;
use serde_bytes::ByteBuf;
use serde_json::{Value, json};

use crate::server::{TestServer, parts};

/// One registered machine of an unencrypted vault.
pub struct Agent {
    pub http: reqwest::Client,
    pub base: String,
    pub credential: String,
    pub machine_id: String,
    pub codec: BlobCodec,
}

impl Agent {
    /// Registers a machine with `token` on `server`.
    pub async fn register(server: &TestServer, token: &str, name: &str) -> Agent {
        Agent::register_at(&server.http, &server.customer, token, name).await
    }

    /// Registers with the server at `customer` (a server of another process, say).
    pub async fn register_at(http: &reqwest::Client, customer: &str, token: &str, name: &str) -> Agent {
        let response = http
            .post(format!("{customer}/api/v1/agents/register"))
            .json(&json!({ "token": token, "name": name }))
            .send()
            .await
            .unwrap();
        let (status, body) = parts(response).await;
        assert_eq!(status, 201, "{body}");
        Agent {
            http: http.clone(),
            base: customer.to_owned(),
            credential: body["credential"].as_str().unwrap().to_owned(),
            machine_id: body["machine_id"].as_str().unwrap().to_owned(),
            codec: BlobCodec::plain(3),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.credential)
    }

    /// Sends raw bytes; status and JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        parts(self.request(method, path).body(body).send().await.unwrap()).await
    }

    /// Creates the tenant's (unencrypted) vault.
    pub async fn create_vault(&self) {
        let config = VaultConfig::new(false, 0).unwrap();
        let response = self
            .request(Method::POST, "/api/v1/vault")
            .json(&json!({ "config": hex::encode(config.encode()), "key_slots": [] }))
            .send()
            .await
            .unwrap();
        let (status, body) = parts(response).await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn open_session(&self) -> String {
        let response = self
            .request(Method::POST, "/api/v1/vault/sessions")
            .json(&json!({ "parent": null }))
            .send()
            .await
            .unwrap();
        let (status, body) = parts(response).await;
        assert_eq!(status, 201, "{body}");
        body["session"].as_str().unwrap().to_owned()
    }

    pub async fn put_pack(&self, session: &str, pack: Vec<u8>) -> (u16, Value) {
        self.send(
            Method::PUT,
            &format!("/api/v1/vault/sessions/{session}/packs"),
            pack,
        )
        .await
    }

    pub async fn commit(&self, session: &str, manifest: &[u8], refs: &[u8]) -> (u16, Value) {
        self.send(
            Method::POST,
            &format!("/api/v1/vault/sessions/{session}/commit"),
            encode_frames([manifest, refs]),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        parts(self.request(Method::GET, path).send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        parts(self.request(Method::POST, path).json(&body).send().await.unwrap()).await
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> (u16, Value) {
        parts(
            self.request(Method::PATCH, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Asks the server to verify the vault and follows the job to its end (at most a
    /// minute); returns the finished job.
    pub async fn verify(&self, read_data: bool) -> Value {
        let (status, job) = self
            .post_json("/api/v1/vault/verify", json!({ "read_data": read_data }))
            .await;
        assert_eq!(status, 202, "{job}");
        let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
        for _ in 0..600 {
            let (status, job) = self.get(&path).await;
            assert_eq!(status, 200, "{job}");
            if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("verify job {path} did not finish within a minute");
    }

    /// Ids of the snapshots this machine sees.
    pub async fn snapshot_ids(&self) -> Vec<String> {
        let (status, body) = self.get("/api/v1/vault/snapshots").await;
        assert_eq!(status, 200, "{body}");
        body["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Backs up `chunks` as one pack and one snapshot named `source`; returns its id.
    pub async fn backup(&self, source: &str, chunks: &[&[u8]]) -> String {
        self.backup_with(source, chunks, SnapshotStats::default()).await
    }

    /// [`Agent::backup`] of a snapshot whose manifest states these figures.
    pub async fn backup_with(&self, source: &str, chunks: &[&[u8]], stats: SnapshotStats) -> String {
        let session = self.open_session().await;
        let (ids, pack) = self.pack(chunks);
        let (status, body) = self.put_pack(&session, pack).await;
        assert_eq!(status, 200, "{body}");
        let (manifest, refs) = self.manifest_with(source, &ids, stats);
        let (status, body) = self.commit(&session, &manifest, &refs).await;
        assert_eq!(status, 201, "{body}");
        body["snapshot_id"].as_str().unwrap().to_owned()
    }

    /// Reads blobs back as a restore does (`POST /api/v1/vault/blobs`): the answer's
    /// frames.
    pub async fn read_blobs(&self, ids: &[ChunkId]) -> Vec<u8> {
        let body = kura_api::frames::encode_ids(ids.iter().map(|id| id.as_bytes()));
        let response = self
            .request(Method::POST, "/api/v1/vault/blobs")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }

    /// A valid pack of `chunks`: their ids and the pack's bytes.
    pub fn pack(&self, chunks: &[&[u8]]) -> (Vec<ChunkId>, Vec<u8>) {
        let mut writer = PackWriter::new();
        let mut ids = Vec::new();
        for chunk in chunks {
            let id = self.codec.id(chunk);
            let blob = self.codec.seal(&id, chunk).unwrap();
            writer.add(id, BlobKind::Data, &blob, chunk.len() as u32);
            ids.push(id);
        }
        let (_, bytes, _) = writer.finish();
        (ids, bytes)
    }

    /// A manifest referencing `ids` (the first as its root), and its reference list.
    pub fn manifest(&self, source: &str, ids: &[ChunkId]) -> (Vec<u8>, Vec<u8>) {
        self.manifest_of_size(source, ids, 0)
    }

    /// [`Agent::manifest`] of a snapshot whose files hold `bytes` (its logical size).
    pub fn manifest_of_size(&self, source: &str, ids: &[ChunkId], bytes: u64) -> (Vec<u8>, Vec<u8>) {
        let stats = SnapshotStats {
            bytes,
            ..SnapshotStats::default()
        };
        self.manifest_with(source, ids, stats)
    }

    /// [`Agent::manifest`] of a snapshot with these figures (files, bytes, …).
    pub fn manifest_with(&self, source: &str, ids: &[ChunkId], stats: SnapshotStats) -> (Vec<u8>, Vec<u8>) {
        let refs = ReferenceList::from_ids(ids.to_vec());
        let body = ManifestBody {
            paths: vec![format!("/{source}")],
            root: ids[0],
        };
        let (body_id, body_blob) = body.seal(&self.codec).unwrap();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            kind: SnapshotKind::Files,
            time_ns: now_ns,
            end_time_ns: now_ns,
            host: "test-host".to_owned(),
            source: source.to_owned(),
            tags: Vec::new(),
            parent: None,
            stats,
            reference_count: refs.ids().len() as u64,
            references_hash: ByteBuf::from(refs.hash().to_vec()),
            body_id,
            body: ByteBuf::from(body_blob),
        };
        (manifest.encode(), refs.encode())
    }
}
