//! Web restore over the JSON API: a real agent (the `kura-agent` engine the `kura`
//! binary runs, over HTTPS) backs up generated trees and a partitioned disk image; a
//! tenant user then lists the tenant's snapshots, browses them and downloads a file and
//! a folder as `.tar`, compared byte for byte with the source — on unencrypted and
//! encrypted vaults, on SQLite and PostgreSQL — and bad input is refused with clear
//! JSON errors.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kura_agent::backup::{self, BackupOptions, BackupProgress};
use kura_agent::image::backup::ImageBackupOptions;
use kura_agent::{OpenVault, RemoteRepository, ServerConnection, init_vault};
use kura_format::keys::KdfParams;
use kura_testing::user::Session;
use kura_testing::{TestServer, error_of};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
/// Cheap Argon2 parameters: the tests unlock many times.
const TEST_KDF: KdfParams = KdfParams {
    m_cost: 1024,
    t_cost: 1,
    p_cost: 1,
};

/// A registered machine of a tenant, driven by the agent engine.
struct Machine {
    vault: OpenVault,
    machine_id: String,
}

impl Machine {
    /// Registers `name`; the first machine of a tenant creates the vault (encrypted with
    /// `passphrase` when given).
    async fn register(
        server: &TestServer,
        token: &str,
        name: &str,
        create: bool,
        passphrase: Option<&str>,
    ) -> Self {
        let ca = fs::read_to_string(server.server.ca_cert().unwrap()).unwrap();
        let registered = kura_agent::register(&server.customer, Some(&ca), token, name)
            .await
            .unwrap();
        let conn = ServerConnection {
            url: server.customer.clone(),
            ca_cert_pem: Some(ca),
            credential: registered.credential,
        };
        let repo = if create {
            let (config, slots, _) =
                init_vault(passphrase.is_some(), passphrase.map(str::as_bytes), TEST_KDF).unwrap();
            RemoteRepository::create(&conn, config, &slots).await.unwrap()
        } else {
            RemoteRepository::open(&conn).await.unwrap()
        };
        let pass = passphrase.unwrap_or_default().as_bytes().to_vec();
        let vault = OpenVault::unlock(Arc::new(repo), move || Ok(pass)).await.unwrap();
        Machine {
            vault,
            machine_id: registered.machine_id,
        }
    }

    /// Backs up `paths` as `source`; returns the snapshot id.
    async fn backup(&self, paths: &[&Path], source: &str) -> String {
        let vault = self.vault.clone();
        let options = BackupOptions {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            excludes: Vec::new(),
            tags: vec!["web-restore".into()],
            source: Some(source.into()),
            one_file_system: false,
            force_full: false,
            host: "test-host".into(),
            time_ns: None,
        };
        tokio::task::spawn_blocking(move || backup::run(&vault, &options, Arc::default()))
            .await
            .unwrap()
            .unwrap()
            .snapshot_id
    }

    /// Backs up the disk image at `path`; returns the snapshot id.
    async fn backup_image(&self, path: &Path) -> String {
        let vault = self.vault.clone();
        let options = ImageBackupOptions {
            path: path.to_path_buf(),
            tags: Vec::new(),
            source: Some("disk".into()),
            host: "test-host".into(),
            force_full: false,
        };
        tokio::task::spawn_blocking(move || {
            kura_agent::image::backup::run(&vault, &options, Arc::new(BackupProgress::default()))
        })
        .await
        .unwrap()
        .unwrap()
        .snapshot_id
    }
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// `data/報告.txt` in Shift_JIS.
const SJIS_NAME: &[u8] = b"data/\x95\xf1\x8d\x90.txt";

/// Deterministic incompressible bytes.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A source tree: nested files (one of several chunks), an empty file, a symlink, a
/// long name and a directory of `many` files.
fn source_tree(root: &Path, many: usize) {
    write(&root.join("docs/readme.txt"), b"read me first\n");
    write(&root.join("docs/report 2026.pdf"), &random_bytes(1, 300_000));
    write(
        &root.join("data/big.bin"),
        &random_bytes(2, 3 * MIB as usize + 12_345),
    );
    write(&root.join("data/empty"), b"");
    write(
        &root.join(format!("data/{}", "long-name-".repeat(12))),
        b"a long name",
    );
    write(&root.join("data/nested/deep/leaf.txt"), b"leaf");
    // A Shift_JIS name (報告.txt), as old Samba shares hold them: not UTF-8.
    write(&root.join(OsStr::from_bytes(SJIS_NAME)), b"sjis");
    std::os::unix::fs::symlink("../docs/readme.txt", root.join("data/readme-link")).unwrap();
    // Sparse: holes before, between and after data, which downloads send as zeros.
    let sparse = fs::File::create(root.join("data/sparse.img")).unwrap();
    sparse.set_len(5 * MIB).unwrap();
    sparse.write_all_at(b"an island of data", 2 * MIB).unwrap();
    sparse.write_all_at(&random_bytes(3, 300_000), 3 * MIB).unwrap();
    for i in 0..many {
        write(&root.join(format!("many/f{i:05}")), format!("{i}").as_bytes());
    }
}

/// Every file, directory and symlink below `root`, with contents / targets.
fn scan(root: &Path) -> Vec<(PathBuf, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push((
                    relative,
                    "symlink".into(),
                    target.into_os_string().into_encoded_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((relative, "dir".into(), Vec::new()));
                stack.push(path);
            } else {
                out.push((relative, "file".into(), fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Unpacks a `.tar` with Debian's GNU tar into a new directory.
fn untar(bytes: &[u8], dir: &Path) -> PathBuf {
    unpack(bytes, dir, "tar", &["-xf", "download.tar", "-C", "unpacked"])
}

/// Unpacks a `.zip` with Info-ZIP's unzip (Debian's) into a new directory.
fn unzip(bytes: &[u8], dir: &Path) -> PathBuf {
    unpack(bytes, dir, "unzip", &["-q", "download.zip", "-d", "unpacked"])
}

fn unpack(bytes: &[u8], dir: &Path, tool: &str, args: &[&str]) -> PathBuf {
    let dir = dir.join(format!("{tool}-{}", bytes.len()));
    let out = dir.join("unpacked");
    fs::create_dir_all(&out).unwrap();
    fs::write(dir.join(args[1]), bytes).unwrap();
    let status = Command::new(tool).args(args).current_dir(&dir).status().unwrap();
    assert!(status.success(), "{tool} could not unpack the download");
    out
}

fn url_path(path: &Path) -> String {
    path.to_str()
        .unwrap()
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('&', "%26")
}

/// A `GET` with the session (and the passphrase header when given): status, headers, body.
async fn get_raw(
    user: &Session,
    path: &str,
    passphrase: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = user
        .http
        .get(format!("{}{path}", user.base))
        .header("cookie", format!("kura_session={}", user.cookie));
    if let Some(pass) = passphrase {
        request = request.header("x-kura-passphrase", pass);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn get_json(user: &Session, path: &str, passphrase: Option<&str>) -> (u16, Value) {
    let (status, _, body) = get_raw(user, path, passphrase).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A URL-encoded form, as a browser sends it.
fn form_body(fields: &[(&str, String)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    form.finish()
}

/// The names in a tree page.
fn names(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {page}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The tenant's events of `action`, once there are `count` of them (a download is
/// recorded when its stream ends, which a client may see first).
async fn events(admin: &Session, action: &str, count: usize) -> Vec<Value> {
    for _ in 0..50 {
        let (status, events) = admin.get("/api/v1/events").await;
        assert_eq!(status, 200, "{events}");
        let found: Vec<Value> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("fewer than {count} {action} events after 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_snapshots_are_listed_browsed_and_downloaded_on_sqlite() {
    file_snapshots_are_listed_browsed_and_downloaded(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_snapshots_are_listed_browsed_and_downloaded_on_postgres() {
    file_snapshots_are_listed_browsed_and_downloaded(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn file_snapshots_are_listed_browsed_and_downloaded(server: TestServer) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source_tree(&src, 1200);
    let other = tmp.path().join("other");
    write(&other.join("notes.txt"), b"the mail server's notes");

    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let web = Machine::register(
        &server,
        created["registration_token"].as_str().unwrap(),
        "web-01",
        true,
        None,
    )
    .await;
    let token = server.new_registration_token(tenant_id).await;
    let mail = Machine::register(&server, &token, "mail-01", false, None).await;
    let first = web.backup(&[&src], "web-files").await;
    let second = mail.backup(&[&other], "mail-notes").await;
    let third = web.backup(&[&src], "web-files").await;

    // The list: every machine's snapshots, newest first, with machine names.
    let (status, list) = admin.get("/api/v1/snapshots").await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [third.as_str(), second.as_str(), first.as_str()]);
    let newest = &list["snapshots"][0];
    assert_eq!(newest["machine_id"], web.machine_id.as_str());
    assert_eq!(newest["machine_name"], "web-01");
    assert_eq!(newest["kind"], "files");
    assert_eq!(newest["source"], "web-files");
    assert_eq!(newest["tags"], json!(["web-restore"]));
    assert_eq!(newest["parent"], first.as_str(), "{newest}");
    assert!(newest["stats"]["files"].as_u64().unwrap() >= 1206, "{newest}");
    assert_eq!(list["snapshots"][1]["machine_name"], "mail-01");
    assert!(list.get("next_cursor").is_none(), "{list}");

    // Each machine's backups, summed, and the newest of each source; the usage now.
    let (status, machines) = admin.get("/api/v1/machines").await;
    assert_eq!(status, 200, "{machines}");
    let web_status = machines
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == web.machine_id.as_str())
        .unwrap();
    assert_eq!(web_status["snapshots"], 2, "{web_status}");
    assert!(web_status["last_seen"].is_string(), "{web_status}");
    assert_eq!(web_status["last_backup"], newest["time"], "{web_status}");
    assert_eq!(web_status["sources"].as_array().unwrap().len(), 1);
    assert_eq!(web_status["sources"][0]["snapshot_id"], third.as_str());
    assert_eq!(web_status["sources"][0]["source"], "web-files");
    assert_eq!(web_status["sources"][0]["errors"], 0);
    assert!(web_status["bytes_added"].as_u64().unwrap() > 0, "{web_status}");
    let (status, usage) = admin.get("/api/v1/usage?days=7").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        (usage["snapshots"].as_u64(), usage["machines"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(usage["stored_bytes"].as_u64().unwrap() > 0, "{usage}");
    let today = usage["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["stored_bytes"], usage["stored_bytes"], "{usage}");
    let (status, refused) = admin.get("/api/v1/usage?days=0").await;
    assert_eq!(status, 422, "{refused}");

    // Filters and pages.
    let (_, by_machine) = admin
        .get(&format!("/api/v1/snapshots?machine={}", mail.machine_id))
        .await;
    assert_eq!(
        by_machine["snapshots"].as_array().unwrap().len(),
        1,
        "{by_machine}"
    );
    assert_eq!(by_machine["snapshots"][0]["id"], second.as_str());
    let (_, by_source) = admin.get("/api/v1/snapshots?source=web-files&limit=1").await;
    assert_eq!(by_source["snapshots"][0]["id"], third.as_str(), "{by_source}");
    let cursor = by_source["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = admin
        .get(&format!(
            "/api/v1/snapshots?source=web-files&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["snapshots"][0]["id"], first.as_str(), "{next}");
    assert!(next.get("next_cursor").is_none(), "{next}");
    let (_, images) = admin.get("/api/v1/snapshots?kind=image").await;
    assert_eq!(images["snapshots"], json!([]));
    let (_, future) = admin.get("/api/v1/snapshots?from=2099-01-01T00:00:00Z").await;
    assert_eq!(future["snapshots"], json!([]));
    let (_, past) = admin
        .get("/api/v1/snapshots?to=2000-01-01T00:00:00%2B09:00")
        .await;
    assert_eq!(past["snapshots"], json!([]));
    for bad in [
        "kind=disk",
        "from=yesterday",
        "machine=web-01",
        "cursor=xyz",
        "colour=red",
    ] {
        let (status, body) = admin.get(&format!("/api/v1/snapshots?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
        error_of(&body);
    }

    // One snapshot, by a prefix of its id.
    let (status, shown) = admin.get(&format!("/api/v1/snapshots/{}", &third[..12])).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["id"], third.as_str());
    assert_eq!(shown["encrypted"], false);
    assert_eq!(shown["damaged"], false);
    assert!(shown["reference_count"].as_u64().unwrap() > 10, "{shown}");

    // Browsing: snapshots keep absolute paths; a directory pages.
    let (status, root) = get_json(&admin, &format!("/api/v1/snapshots/{third}/tree"), None).await;
    assert_eq!(status, 200, "{root}");
    let top = src
        .components()
        .nth(1)
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(names(&root), [top]);
    let src_path = url_path(&src);
    let (status, dir) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{third}/tree?path={src_path}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{dir}");
    assert_eq!(names(&dir), ["data", "docs", "many"]);
    assert_eq!(dir["entries"][0]["kind"], "dir");
    let data = format!("{src_path}/data");
    let (_, data_dir) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{third}/tree?path={data}"),
        None,
    )
    .await;
    let big = data_dir["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "big.bin")
        .unwrap();
    assert_eq!(big["kind"], "file");
    assert_eq!(big["size"].as_u64(), Some(3 * MIB + 12_345));
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(src.join("data/big.bin"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(big["mode"], format!("{mode:04o}"));
    let link = data_dir["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "readme-link")
        .unwrap();
    assert_eq!(link["kind"], "symlink");
    assert_eq!(link["link_target"], "../docs/readme.txt");
    // A name that is not UTF-8 is listed with its bytes in hex, which open it exactly.
    let sjis = data_dir["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path_hex"].is_string())
        .unwrap_or_else(|| panic!("no path_hex in {data_dir}"));
    assert_eq!(sjis["name"], "\u{fffd}\u{fffd}.txt");
    let mut full = src.as_os_str().as_bytes().to_vec();
    full.push(b'/');
    full.extend_from_slice(SJIS_NAME);
    assert_eq!(sjis["path_hex"], hex::encode(&full));
    let (status, _, bytes) = get_raw(
        &admin,
        &format!(
            "/api/v1/snapshots/{third}/download?path_hex={}",
            sjis["path_hex"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!((status, bytes), (200, b"sjis".to_vec()));
    let many = format!("{src_path}/many");
    let (_, page1) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{third}/tree?path={many}"),
        None,
    )
    .await;
    assert_eq!(page1["total"], 1200);
    assert_eq!(page1["entries"].as_array().unwrap().len(), 500);
    let (_, page3) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{third}/tree?path={many}&offset=1000&limit=500"),
        None,
    )
    .await;
    assert_eq!(page3["offset"], 1000);
    assert_eq!(names(&page3).len(), 200);
    assert_eq!(names(&page3)[0], "f01000");

    // One file: its bytes, its name, its length.
    let file = format!("{src_path}/data/big.bin");
    let (status, headers, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{third}/download?path={file}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, fs::read(src.join("data/big.bin")).unwrap());
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], (3 * MIB + 12_345).to_string().as_str());
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename*=UTF-8''big.bin"),
        "{headers:?}"
    );
    let empty = format!("{src_path}/data/empty");
    let (status, _, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{third}/download?path={empty}"),
        None,
    )
    .await;
    assert_eq!((status, bytes.len()), (200, 0));

    // A folder: a .tar that unpacks to the source, symlink and long name included.
    let (status, headers, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{third}/download?path={src_path}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-tar");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("src.tar"),
        "{headers:?}"
    );
    let unpacked = untar(&bytes, tmp.path());
    assert_eq!(scan(&unpacked.join("src")), scan(&src));

    // The same folder as a .zip: unzip makes the same tree, but for the one name that is
    // not UTF-8 (unzip reads such names as CP437), which the archive holds byte for byte.
    let (status, headers, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{third}/download?path={src_path}&format=zip"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/zip");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("src.zip"),
        "{headers:?}"
    );
    assert!(bytes.windows(SJIS_NAME.len()).any(|w| w == SJIS_NAME));
    let unzipped = unzip(&bytes, tmp.path());
    let without_sjis = |tree: Vec<(PathBuf, String, Vec<u8>)>| -> Vec<_> {
        tree.into_iter()
            .filter(|(path, _, _)| path.to_str().is_some())
            .collect()
    };
    assert_eq!(
        without_sjis(scan(&unzipped.join("src"))),
        without_sjis(scan(&src))
    );

    // The downloads are in the event log: who, which snapshot and path, how many bytes.
    let downloads = events(&admin, "snapshot.download", 5).await;
    assert_eq!(downloads.len(), 5, "{downloads:?}");
    let big_download = downloads
        .iter()
        .find(|e| e["target"].as_str().unwrap().ends_with("data/big.bin"))
        .unwrap();
    assert_eq!(big_download["actor"], created["admin_login"]);
    assert!(big_download["target"].as_str().unwrap().starts_with(&third));
    assert_eq!(big_download["result"], format!("ok: {} bytes", 3 * MIB + 12_345));

    // Bad input: clear JSON errors, nothing read.
    let bad: [(String, u16); 8] = [
        (
            format!("/api/v1/snapshots/{third}/download?path={src_path}/../etc/passwd"),
            422,
        ),
        (format!("/api/v1/snapshots/{third}/tree?path=/..%2F.."), 422),
        (
            format!("/api/v1/snapshots/{third}/download?path={src_path}/nothing-here"),
            404,
        ),
        (format!("/api/v1/snapshots/{third}/tree?path={file}"), 422),
        (format!("/api/v1/snapshots/{third}/download"), 422),
        ("/api/v1/snapshots/00000000000000000000/tree".into(), 404),
        ("/api/v1/snapshots/not-hex".into(), 404),
        (format!("/api/v1/snapshots/{third}/tree?limit=many"), 422),
    ];
    for (path, want) in bad {
        let (status, body) = get_json(&admin, &path, None).await;
        assert_eq!(status, want, "{path}: {body}");
        error_of(&body);
    }

    // Roles: an auditor sees the list but may not browse or download; a restore-operator may.
    let (_, password) = server.add_user(&admin, "audrey", "auditor").await;
    let auditor = server.login("audrey", &password).await;
    assert_eq!(auditor.get("/api/v1/snapshots").await.0, 200);
    assert_eq!(auditor.get(&format!("/api/v1/snapshots/{third}")).await.0, 200);
    for path in [
        format!("/api/v1/snapshots/{third}/download?path={file}"),
        format!("/api/v1/snapshots/{third}/tree"),
    ] {
        let (status, body) = get_json(&auditor, &path, None).await;
        assert_eq!(status, 403, "{body}");
        assert!(error_of(&body).contains("restore"), "{body}");
    }
    let (_, password) = server.add_user(&admin, "rita", "restore-operator").await;
    let restorer = server.login("rita", &password).await;
    let readme = format!("{src_path}/docs/readme.txt");
    let (status, _, bytes) = get_raw(
        &restorer,
        &format!("/api/v1/snapshots/{third}/download?path={readme}"),
        None,
    )
    .await;
    assert_eq!((status, bytes.as_slice()), (200, &b"read me first\n"[..]));

    // Another tenant: A's snapshot is as unknown as one that does not exist.
    let (_, intruder) = server.tenant_admin("BETA-0002").await;
    let (_, own) = intruder.get("/api/v1/snapshots").await;
    assert_eq!(own["snapshots"], json!([]));
    let unknown = "ab".repeat(32);
    for (a, b) in [
        (
            format!("/api/v1/snapshots/{third}"),
            format!("/api/v1/snapshots/{unknown}"),
        ),
        (
            format!("/api/v1/snapshots/{third}/tree"),
            format!("/api/v1/snapshots/{unknown}/tree"),
        ),
        (
            format!("/api/v1/snapshots/{third}/download?path={readme}"),
            format!("/api/v1/snapshots/{unknown}/download?path={readme}"),
        ),
    ] {
        let (status_a, body_a) = get_json(&intruder, &a, None).await;
        let (status_b, body_b) = get_json(&intruder, &b, None).await;
        assert_eq!(status_a, 404, "{a}: {body_a}");
        assert_eq!(status_b, 404, "{b}: {body_b}");
        assert_eq!(
            error_of(&body_a).replace(&third, "ID"),
            error_of(&body_b).replace(&unknown, "ID")
        );
    }
    let (_, mine) = intruder
        .get(&format!("/api/v1/snapshots?machine={}", web.machine_id))
        .await;
    assert_eq!(mine["snapshots"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_vault_is_browsed_with_its_passphrase_on_sqlite() {
    an_encrypted_vault_is_browsed_with_its_passphrase(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_vault_is_browsed_with_its_passphrase_on_postgres() {
    an_encrypted_vault_is_browsed_with_its_passphrase(kura_testing::start_on_postgres(|_| ()).await).await;
}

async fn an_encrypted_vault_is_browsed_with_its_passphrase(server: TestServer) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("secret");
    source_tree(&src, 3);
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let token = created["registration_token"].as_str().unwrap();
    let passphrase = "correct horse battery staple";
    let machine = Machine::register(&server, token, "db-01", true, Some(passphrase)).await;
    let id = machine.backup(&[&src], "db-files").await;

    // Listing and showing read only what the service may read.
    let (_, list) = admin.get("/api/v1/snapshots").await;
    assert_eq!(list["snapshots"][0]["id"], id.as_str());
    assert_eq!(list["snapshots"][0]["source"], "db-files");
    let (_, shown) = admin.get(&format!("/api/v1/snapshots/{id}")).await;
    assert_eq!(shown["encrypted"], true);

    // Without the passphrase, or with a wrong one: refused, and the wrong one logged.
    let src_path = url_path(&src);
    let tree = format!("/api/v1/snapshots/{id}/tree?path={src_path}");
    let (status, body) = get_json(&admin, &tree, None).await;
    assert_eq!(status, 422, "{body}");
    assert!(error_of(&body).contains("passphrase"), "{body}");
    let (status, body) = get_json(&admin, &tree, Some("not the passphrase")).await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("wrong passphrase"), "{body}");
    let refusals = events(&admin, "snapshot.unlock", 1).await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["target"], id.as_str());
    assert_eq!(refusals[0]["result"], "refused: wrong passphrase");

    // With it (header): the tree; then a download by form, as the portal sends it.
    let (status, dir) = get_json(&admin, &tree, Some(passphrase)).await;
    assert_eq!(status, 200, "{dir}");
    assert_eq!(names(&dir), ["data", "docs", "many"]);
    let file = format!("{}/docs/report 2026.pdf", src.display());
    let form = |pass: &str, csrf: &str| {
        vec![
            ("path", file.clone()),
            ("passphrase", pass.to_owned()),
            ("csrf_token", csrf.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        admin
            .http
            .post(format!("{}/api/v1/snapshots/{id}/download", admin.base))
            .header("cookie", format!("kura_session={}", admin.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&fields))
            .send()
    };
    let response = post(form(passphrase, &admin.csrf)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("report%202026.pdf"),
        "{:?}",
        response.headers()
    );
    assert_eq!(
        response.bytes().await.unwrap(),
        fs::read(src.join("docs/report 2026.pdf")).unwrap()
    );
    // A form without the session's CSRF token is refused before anything is read.
    let response = post(form(passphrase, "forged")).await.unwrap();
    assert_eq!(response.status(), 403);
    // The POST tree form works like the GET.
    let response = admin
        .http
        .post(format!("{}/api/v1/snapshots/{id}/tree", admin.base))
        .header("cookie", format!("kura_session={}", admin.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("path", format!("{}/data", src.display())),
            ("passphrase", passphrase.to_owned()),
            ("csrf_token", admin.csrf.clone()),
            ("limit", "2".to_owned()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(page["total"], 7, "{page}");

    // A folder as .tar, decrypted on the way.
    let (status, _, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{id}/download?path={src_path}"),
        Some(passphrase),
    )
    .await;
    assert_eq!(status, 200);
    let unpacked = untar(&bytes, tmp.path());
    assert_eq!(scan(&unpacked.join("secret")), scan(&src));

    // The passphrase is in no log row and no server log line.
    let (_, all) = admin.get("/api/v1/events").await;
    assert!(!all.to_string().contains(passphrase));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_snapshot_shows_its_partitions_and_the_files_inside_on_sqlite() {
    an_image_snapshot_shows_its_partitions_and_the_files_inside(kura_testing::start(|_| ()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_snapshot_shows_its_partitions_and_the_files_inside_on_postgres() {
    an_image_snapshot_shows_its_partitions_and_the_files_inside(
        kura_testing::start_on_postgres(|_| ()).await,
    )
    .await;
}

async fn an_image_snapshot_shows_its_partitions_and_the_files_inside(server: TestServer) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write(&tree.join("etc/hostname"), b"db-server-1\n");
    write(&tree.join("etc/app/config.toml"), b"[app]\nport = 8080\n");
    write(&tree.join("var/lib/big.bin"), &random_bytes(7, 3 * MIB as usize));
    std::os::unix::fs::symlink("../etc/hostname", tree.join("var/name")).unwrap();
    let disk = kura_testing::disk::partitioned_disk(tmp.path(), &tree, "gpt");
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let passphrase = "an image passphrase";
    let machine = Machine::register(
        &server,
        created["registration_token"].as_str().unwrap(),
        "hv-01",
        true,
        Some(passphrase),
    )
    .await;
    let id = machine.backup_image(&disk).await;
    let (_, list) = admin.get("/api/v1/snapshots?kind=image").await;
    assert_eq!(list["snapshots"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["snapshots"][0]["kind"], "image");

    // The root lists the partitions, with the file system found on each.
    let (status, root) = get_json(&admin, &format!("/api/v1/snapshots/{id}/tree"), Some(passphrase)).await;
    assert_eq!(status, 200, "{root}");
    assert_eq!(root["image"]["table"], "gpt", "{root}");
    assert_eq!(root["image"]["size"].as_u64(), Some(48 * MIB));
    assert_eq!(names(&root), ["1", "2"]);
    assert_eq!(root["entries"][0]["kind"], "partition");
    assert_eq!(root["entries"][0]["partition"]["filesystem"], "swap");
    assert_eq!(root["entries"][1]["partition"]["filesystem"], "ext4");
    assert_eq!(root["entries"][1]["partition"]["start"].as_u64(), Some(9 * MIB));
    assert_eq!(root["entries"][1]["size"].as_u64(), Some(32 * MIB));

    // Inside the ext4 partition.
    let (status, etc) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{id}/tree?path=/2/etc"),
        Some(passphrase),
    )
    .await;
    assert_eq!(status, 200, "{etc}");
    assert_eq!(names(&etc), ["app", "hostname"]);
    assert_eq!(etc["entries"][1]["size"], 12);
    let (_, var) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{id}/tree?path=/2/var"),
        Some(passphrase),
    )
    .await;
    let name = var["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "name")
        .unwrap();
    assert_eq!(name["kind"], "symlink");
    assert_eq!(name["link_target"], "../etc/hostname");

    // A file and a folder from inside the partition.
    let (status, _, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{id}/download?path=/2/var/lib/big.bin"),
        Some(passphrase),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, fs::read(tree.join("var/lib/big.bin")).unwrap());
    let (status, headers, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{id}/download?path=/2/etc"),
        Some(passphrase),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("etc.tar")
    );
    let unpacked = untar(&bytes, tmp.path());
    assert_eq!(scan(&unpacked.join("etc")), scan(&tree.join("etc")));
    let (status, headers, bytes) = get_raw(
        &admin,
        &format!("/api/v1/snapshots/{id}/download?path=/2/etc&format=zip"),
        Some(passphrase),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/zip");
    let unzipped = unzip(&bytes, tmp.path());
    assert_eq!(scan(&unzipped.join("etc")), scan(&tree.join("etc")));

    // What cannot be browsed says why.
    for (path, want) in [
        ("/1", 422),
        ("/3", 404),
        ("/swap", 404),
        ("/2/nothing", 404),
        ("/2/etc/hostname", 422),
        ("/2/../1", 422),
    ] {
        let (status, body) = get_json(
            &admin,
            &format!("/api/v1/snapshots/{id}/tree?path={path}"),
            Some(passphrase),
        )
        .await;
        assert_eq!(status, want, "{path}: {body}");
        error_of(&body);
    }
    let (status, body) = get_json(
        &admin,
        &format!("/api/v1/snapshots/{id}/download?path=/"),
        Some(passphrase),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let downloads = events(&admin, "snapshot.download", 3).await;
    assert_eq!(downloads.len(), 3, "{downloads:?}");
    assert!(
        downloads
            .iter()
            .any(|e| e["target"] == format!("{id} /2/var/lib/big.bin")
                && e["result"] == format!("ok: {} bytes", 3 * MIB))
    );
}

/// The listing's cost with a large tenant: 200 machines and 20,000 snapshots (committed
/// in-process through the service's own vault operations, so seeding takes a minute, not
/// an hour). Run with `cargo test -p kura-server --test snapshots -- --ignored --nocapture`;
/// it prints the figures recorded in `docs/benchmarks.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: seeds 20,000 snapshots"]
async fn listing_stays_fast_with_20000_snapshots_and_200_machines() {
    let backend = std::env::var("KURA_BENCH_DB").unwrap_or_default();
    let server = if backend == "postgres" {
        kura_testing::start_on_postgres(|_| ()).await
    } else {
        kura_testing::start(|_| ()).await
    };
    const MACHINES: usize = 200;
    const SNAPSHOTS: usize = 20_000;
    let created = server.create_tenant("BIG-0001", MACHINES as u32, json!({})).await;
    let tenant_id = created["tenant_id"].as_str().unwrap();
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let svc = server.server.service().clone();
    let caller = kura_service::authz::Caller::default();
    let mut agents = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..MACHINES {
        let token = if i == 0 {
            created["registration_token"].as_str().unwrap().to_owned()
        } else {
            server.new_registration_token(tenant_id).await
        };
        let agent = kura_testing::agent::Agent::register(&server, &token, &format!("host-{i:03}")).await;
        if i == 0 {
            agent.create_vault().await;
        }
        agents.push(agent);
    }
    let chunk: &[u8] = b"one chunk every seeded snapshot references";
    agents[0].backup("seed", &[chunk]).await;
    let chunk_id = agents[0].codec.id(chunk);
    let principals = {
        let mut out = Vec::new();
        for agent in &agents {
            out.push(
                kura_service::authz::agent(&svc, &agent.credential, None, &caller)
                    .await
                    .unwrap(),
            );
        }
        out
    };
    let base_ns = 1_767_225_600_000_000_000i64; // 2026-01-01T00:00:00Z
    let (template, refs) = agents[0].manifest("x", &[chunk_id]);
    let template = kura_format::Manifest::decode(&template).unwrap();
    let seed = |i: usize| {
        let svc = svc.clone();
        let principal = principals[i % MACHINES].clone();
        let mut manifest = template.clone();
        manifest.time_ns = base_ns + i as i64 * 60_000_000_000;
        manifest.end_time_ns = manifest.time_ns + 30_000_000_000;
        manifest.source = format!("host-{:03}:/srv/{}", i % MACHINES, i % 3);
        manifest.host = format!("host-{:03}", i % MACHINES);
        let refs = refs.clone();
        async move {
            let session = kura_service::ops::vault::open_session(&svc, &principal, None)
                .await
                .unwrap();
            kura_service::ops::vault::commit(&svc, &principal, &session, &manifest.encode(), &refs)
                .await
                .unwrap();
        }
    };
    let mut i = 0;
    while i < SNAPSHOTS {
        let batch: Vec<_> = (i..(i + 8).min(SNAPSHOTS)).map(seed).collect();
        futures::future::join_all(batch).await;
        i += 8;
    }
    eprintln!(
        "seeded {MACHINES} machines and {SNAPSHOTS} snapshots on {} in {:.0} s",
        if backend == "postgres" {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        started.elapsed().as_secs_f64()
    );

    if backend == "postgres" {
        // Statistics, as autovacuum gathers them within a minute of such a load: without
        // them PostgreSQL filters a vault's every row for `id IN (...)` (10× slower).
        let admin_db = sqlx::PgPool::connect(&kura_testing::postgres::admin_url())
            .await
            .unwrap();
        sqlx::query("ANALYZE").execute(&admin_db).await.unwrap();
    }
    if std::env::var_os("KURA_BENCH_STEPS").is_some() {
        let check = kura_service::authz::UserCheck {
            csrf_token: None,
            changes_state: false,
            open_before_totp_enrolment: false,
        };
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let user = kura_service::authz::session(&svc, &admin.cookie, check, &caller)
                .await
                .unwrap();
            let t_auth = t.elapsed();
            let t = std::time::Instant::now();
            let tv = svc.vaults.get(&user.scope).await.unwrap().unwrap();
            let t_get = t.elapsed();
            let t = std::time::Instant::now();
            let heads = tv
                .vault
                .snapshot_page(&kura_store::SnapshotQuery::default(), 101)
                .await
                .unwrap();
            let t_page = t.elapsed();
            let ids: Vec<_> = heads.iter().map(|h| h.0).collect();
            let t = std::time::Instant::now();
            let records = tv.vault.manifests(&ids).await.unwrap();
            let t_manifests = t.elapsed();
            let hex: Vec<String> = records.iter().map(|r| r.id.to_hex()).collect();
            let t = std::time::Instant::now();
            let owners = kura_service::db::snapshots::owners(&svc.db, &user.scope, &hex)
                .await
                .unwrap();
            let t_owners = t.elapsed();
            let t = std::time::Instant::now();
            let page = kura_service::ops::snapshots::list(&svc, &user, &Default::default())
                .await
                .unwrap();
            let t_list = t.elapsed();
            eprintln!(
                "auth {t_auth:?} get {t_get:?} page {t_page:?} manifests {t_manifests:?} owners {t_owners:?} ({}) list {t_list:?} ({})",
                owners.len(),
                page.snapshots.len()
            );
        }
    }
    let machine = &agents[57].machine_id;
    let (_, first) = admin.get("/api/v1/snapshots?limit=100").await;
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    for _ in 0..99 {
        let (_, page) = admin
            .get(&format!("/api/v1/snapshots?limit=100&cursor={cursor}"))
            .await;
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
    }
    let newest = first["snapshots"][0]["id"].as_str().unwrap().to_owned();
    let cases = [
        ("GET /api/v1/me, for comparison", "/api/v1/me".to_owned()),
        ("first page (100)", "/api/v1/snapshots".to_owned()),
        ("first page (10)", "/api/v1/snapshots?limit=10".to_owned()),
        ("page 101 by cursor", format!("/api/v1/snapshots?cursor={cursor}")),
        (
            "one machine (100 of 20,000)",
            format!("/api/v1/snapshots?machine={machine}"),
        ),
        (
            "one machine and source",
            format!("/api/v1/snapshots?machine={machine}&source=host-057:/srv/1"),
        ),
        (
            "one source, a month",
            "/api/v1/snapshots?source=host-001:/srv/1&from=2026-01-05T00:00:00Z&to=2026-02-05T00:00:00Z"
                .to_owned(),
        ),
        ("1000 per page", "/api/v1/snapshots?limit=1000".to_owned()),
        (
            "show by 12-digit prefix",
            format!("/api/v1/snapshots/{}", &newest[..12]),
        ),
    ];
    for (name, path) in cases {
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..21 {
            let t = std::time::Instant::now();
            let (status, body) = admin.get(&path).await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{name}: {body}");
            count = body["snapshots"].as_array().map_or(1, Vec::len);
        }
        times.sort_by(f64::total_cmp);
        eprintln!(
            "{name:32} {count:5} listed   median {:6.1} ms   max {:6.1} ms",
            times[10], times[20]
        );
        assert!(times[10] < 100.0, "{name}: median {:.1} ms", times[10]);
    }
    portal_pages_under_load(&admin, machine.as_str()).await;
}

/// The portal's pages of the seeded tenant, one request at a time (the median must stay
/// under 100 ms) and under load with `wrk` (4 connections, 10 s each), signed in with the
/// admin's session cookie: latency percentiles and requests per second, printed for
/// `docs/benchmarks.md`. Without `wrk` only the load part is skipped, saying so.
async fn portal_pages_under_load(admin: &Session, machine: &str) {
    let wrk = Command::new("wrk").arg("--version").output().is_ok();
    if !wrk {
        eprintln!("wrk is not installed: the portal's pages are not measured under load");
    }
    let pages = [
        "/".to_owned(),
        "/machines".to_owned(),
        "/snapshots".to_owned(),
        format!("/snapshots?machine={machine}"),
        "/events".to_owned(),
        "/contract".to_owned(),
    ];
    for page in pages {
        // One request at a time first: the server's own time for the page, which the
        // target is about (four at once on two cores shared with wrk also measure the
        // queue). Each answer is checked: a redirect to sign-in would count as a success
        // in wrk.
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..11 {
            let t = std::time::Instant::now();
            let response = admin
                .http
                .get(format!("{}{page}", admin.base))
                .header("cookie", format!("kura_session={}", admin.cookie))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{page}");
            bytes = response.bytes().await.unwrap().len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        assert!(times[5] < 100.0, "{page}: median {:.1} ms", times[5]);
        if !wrk {
            eprintln!("portal {page:44} {bytes:7} bytes   alone {:6.1} ms", times[5]);
            continue;
        }
        let out = Command::new("wrk")
            .args(["-t2", "-c4", "-d10s", "--latency", "-H"])
            .arg(format!("Cookie: kura_session={}", admin.cookie))
            .arg(format!("{}{page}", admin.base))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("Non-2xx"), "{page}: {text}");
        let field = |label: &str| {
            text.lines()
                .find(|line| line.trim_start().starts_with(label))
                .and_then(|line| line.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_owned()
        };
        eprintln!(
            "portal {page:44} {bytes:7} bytes   alone {:6.1} ms   4 at once: median {:>8}   p99 {:>8}   {:>8} requests/s",
            times[5],
            field("50%"),
            field("99%"),
            field("Requests/sec:")
        );
    }
}

/// Browsing a directory of 100,000 entries: it pages, and a page costs what reading the
/// directory's tree costs. Run with `--ignored --nocapture`; prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: backs up 100,000 files"]
async fn a_directory_of_100000_entries_pages() {
    let server = kura_testing::start(|_| ()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big");
    fs::create_dir(&dir).unwrap();
    for i in 0..100_000 {
        fs::write(dir.join(format!("file-{i:06}.txt")), b"x").unwrap();
    }
    let (created, admin) = server.tenant_admin("ACME-0001").await;
    let machine = Machine::register(
        &server,
        created["registration_token"].as_str().unwrap(),
        "fs-01",
        true,
        None,
    )
    .await;
    let started = std::time::Instant::now();
    let id = machine.backup(&[&dir], "big").await;
    eprintln!(
        "backed up 100,000 files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let path = url_path(&dir);
    for (name, query) in [
        ("first page (500)", String::new()),
        ("page at 99,500", "&offset=99500".to_owned()),
        ("5000 per page", "&limit=5000".to_owned()),
    ] {
        let mut times = Vec::new();
        for _ in 0..11 {
            let t = std::time::Instant::now();
            let (status, page) = get_json(
                &admin,
                &format!("/api/v1/snapshots/{id}/tree?path={path}{query}"),
                None,
            )
            .await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["total"], 100_000);
        }
        times.sort_by(f64::total_cmp);
        eprintln!("{name:20} median {:6.1} ms   max {:6.1} ms", times[5], times[10]);
    }
}
