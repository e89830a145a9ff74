//! Bad input on the vault routes: each malformed, oversized, truncated or forged request
//! gets a precise 4xx JSON error, stores nothing (usage and snapshots unchanged), and the
//! server keeps serving.

use kura_api::frames::encode_frames;
use kura_api::vault::MAX_PACK_BYTES;
use kura_format::pack::{ENTRY_LEN, FOOTER_LEN};
use kura_format::{BlobKind, PackWriter};
use kura_testing::TestServer;
use kura_testing::agent::Agent;
use reqwest::Method;
use serde_json::{Value, json};

/// A server with one tenant, its vault and one snapshot.
async fn setup() -> (TestServer, Agent) {
    let server = kura_testing::start(|_| ()).await;
    let tenant = server.create_tenant("ACME-0001", 2, json!({})).await;
    let agent = Agent::register(&server, tenant["registration_token"].as_str().unwrap(), "web-01").await;
    agent.create_vault().await;
    agent.backup("etc", &[b"the first backup"]).await;
    (server, agent)
}

/// What must not change when a request is refused.
async fn state(agent: &Agent) -> (Value, Vec<String>) {
    let (status, usage) = agent.get("/api/v1/vault/usage").await;
    assert_eq!(status, 200, "{usage}");
    (usage, agent.snapshot_ids().await)
}

/// Asserts the answer's status and that its JSON error says `says`.
fn refused(answer: (u16, Value), status: u16, says: &str) {
    let (got, body) = answer;
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {got} {body}"));
    assert_eq!(got, status, "{error}");
    assert!(error.contains(says), "{error:?} does not say {says:?}");
}

async fn json_raw(agent: &Agent, path: &str, text: &str) -> (u16, Value) {
    let response = agent
        .request(Method::POST, path)
        .header("content-type", "application/json")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    kura_testing::parts(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_precisely_and_store_nothing() {
    let (_server, agent) = setup().await;
    let before = state(&agent).await;
    let sessions = "/api/v1/vault/sessions";

    refused(
        json_raw(&agent, sessions, "{\"parent\": ").await,
        400,
        "malformed JSON",
    );
    refused(
        json_raw(&agent, sessions, "{\"parent\": 5}").await,
        422,
        "invalid request body",
    );
    refused(
        json_raw(&agent, sessions, "{\"parent\": \"xyz\"}").await,
        422,
        "parent",
    );
    refused(
        json_raw(&agent, "/api/v1/vault/key-slots", "{\"slot\": \"zz\"}").await,
        422,
        "not hex",
    );

    let session = agent.open_session().await;
    let missing = format!("{sessions}/{session}/missing");
    refused(agent.send(Method::POST, &missing, vec![7; 33]).await, 400, "32");
    let commit = format!("{sessions}/{session}/commit");
    // A frame announcing more bytes than the body has; one frame where two are due.
    refused(
        agent.send(Method::POST, &commit, vec![255, 0, 0, 0, 1]).await,
        400,
        "commit body",
    );
    refused(
        agent
            .send(Method::POST, &commit, encode_frames([b"x".as_slice()]))
            .await,
        400,
        "commit body",
    );
    refused(
        agent.send(Method::POST, "/api/v1/vault/blobs", vec![1; 31]).await,
        400,
        "32",
    );
    refused(
        agent.get("/api/v1/vault/sessions/not-a-session/x").await,
        404,
        "no such API route",
    );
    refused(
        agent
            .send(
                Method::POST,
                &format!("{sessions}/zz{}/missing", "0".repeat(30)),
                Vec::new(),
            )
            .await,
        404,
        "unknown",
    );
    assert_eq!(state(&agent).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packs_are_refused_before_anything_is_stored() {
    let (_server, agent) = setup().await;
    let before = state(&agent).await;
    let session = agent.open_session().await;
    let (_, good) = agent.pack(&[b"a chunk of good data", b"another chunk"]);

    // Truncated: the footer is cut.
    refused(
        agent.put_pack(&session, good[..good.len() - 10].to_vec()).await,
        422,
        "pack",
    );
    // Trailer offsets that lie, with the trailer checksum made to match.
    let mut lying = good.clone();
    let trailer = lying.len() - FOOTER_LEN - 2 * ENTRY_LEN;
    lying[trailer + 33..trailer + 37].copy_from_slice(&1_000_000u32.to_le_bytes());
    let hash = blake3::hash(&lying[trailer..lying.len() - FOOTER_LEN]);
    let footer = lying.len() - FOOTER_LEN;
    lying[footer + 4..footer + 36].copy_from_slice(hash.as_bytes());
    refused(agent.put_pack(&session, lying).await, 422, "outside the pack");
    // A plain blob that does not hash to its id.
    let mut writer = PackWriter::new();
    let claimed = agent.codec.id(b"what the id says");
    let blob = agent.codec.seal(&claimed, b"what the blob holds").unwrap();
    writer.add(claimed, BlobKind::Data, &blob, 19);
    refused(
        agent.put_pack(&session, writer.finish().1).await,
        422,
        &format!("blob {claimed}"),
    );
    // Oversized: one byte over the pack limit.
    refused(
        agent.put_pack(&session, vec![0; MAX_PACK_BYTES + 1]).await,
        413,
        "too large",
    );

    assert_eq!(state(&agent).await, before);
    // The session still works.
    let (status, body) = agent.put_pack(&session, good).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commits_are_refused_and_a_session_commits_once() {
    let (_server, agent) = setup().await;
    let before = state(&agent).await;
    let session = agent.open_session().await;
    let (ids, pack) = agent.pack(&[b"committed data"]);
    let (status, body) = agent.put_pack(&session, pack).await;
    assert_eq!(status, 200, "{body}");
    let (usage_after_pack, _) = state(&agent).await;

    // Unknown chunk ids.
    let unknown = [agent.codec.id(b"never uploaded")];
    let (manifest, refs) = agent.manifest("etc", &unknown);
    refused(
        agent.commit(&session, &manifest, &refs).await,
        422,
        "not in the vault",
    );
    // A reference list that is not the manifest's.
    let (manifest, _) = agent.manifest("etc", &ids);
    let (_, other_refs) = agent.manifest("etc", &[ids[0], unknown[0]]);
    refused(
        agent.commit(&session, &manifest, &other_refs).await,
        422,
        "does not match",
    );
    // Undecodable manifest.
    let (_, refs) = agent.manifest("etc", &ids);
    refused(agent.commit(&session, b"not cbor", &refs).await, 422, "manifest");
    assert_eq!(state(&agent).await, (usage_after_pack.clone(), before.1.clone()));

    let (status, body) = agent.commit(&session, &manifest, &refs).await;
    assert_eq!(status, 201, "{body}");
    let snapshots = agent.snapshot_ids().await;
    assert_eq!(snapshots.len(), 2);
    // The same session again: gone.
    let (manifest2, refs2) = agent.manifest("etc2", &ids);
    refused(
        agent.commit(&session, &manifest2, &refs2).await,
        404,
        "already committed",
    );
    assert_eq!(agent.snapshot_ids().await, snapshots);
}

/// Requests refused before their body is read reach curl over HTTP/2 as their JSON
/// error, not as "Stream error in the HTTP/2 framing layer" (Debian 12's curl 7.88).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_body_reach_curl_over_http2() {
    let (server, agent) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.bin");
    std::fs::write(&body, vec![7u8; 300_000]).unwrap();
    let ca = server.server.ca_cert().unwrap().to_owned();
    let session = agent.open_session().await;
    let customer = &server.customer;
    let cases = [
        // 401: no credential.
        (
            "PUT",
            format!("{customer}/api/v1/vault/sessions/{session}/packs"),
            "application/octet-stream",
            None,
            "401",
        ),
        // 404: a session that is not the caller's.
        (
            "PUT",
            format!("{customer}/api/v1/vault/sessions/{}/packs", "0".repeat(32)),
            "application/octet-stream",
            Some(agent.credential.clone()),
            "404",
        ),
        // 415: not JSON.
        (
            "POST",
            format!("{customer}/api/v1/login"),
            "text/plain",
            None,
            "415",
        ),
        // 404: no such route.
        (
            "POST",
            format!("{customer}/api/v1/nowhere"),
            "application/json",
            None,
            "404",
        ),
    ];
    for (method, url, content_type, auth, status) in cases {
        let mut command = std::process::Command::new("curl");
        command
            .args(["-sS", "--http2", "--cacert"])
            .arg(&ca)
            .args([
                "-X",
                method,
                "-H",
                &format!("content-type: {content_type}"),
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .args(["-w", "\n%{http_code}", &url]);
        if let Some(auth) = auth {
            command.args(["-H", &format!("authorization: Bearer {auth}")]);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{method} {url}: curl failed: {stderr}");
        assert!(
            stdout.ends_with(status),
            "{method} {url}: expected {status}: {stdout} {stderr}"
        );
        assert!(stdout.contains("\"error\""), "{stdout}");
    }
}
