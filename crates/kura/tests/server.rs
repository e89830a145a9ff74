//! The `kura` binary against a real `kura-server` (started in-process on loopback with
//! TLS): registration, init, backup, list, browse, restore, resume; agent credentials
//! that cannot delete; the quota; one tenant never seeing another's vault, one machine
//! never seeing another's snapshots.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use kura_server::api::types::CreateTenantRequest;
use kura_server::client::ManagementClient;
use kura_server::quickstart::{self, QuickstartInfo};
use serde_json::Value;

/// A running service and what the quick start made.
struct Service {
    info: QuickstartInfo,
    runtime: tokio::runtime::Runtime,
    _server: kura_server::RunningServer,
}

impl Service {
    fn start(data: &Path) -> Service {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = quickstart::config(data, loopback, loopback);
        let (server, info) = runtime
            .block_on(quickstart::start(config))
            .expect("the service starts");
        Service {
            info,
            runtime,
            _server: server,
        }
    }

    /// The operator API of the service.
    fn operator(&self) -> ManagementClient {
        ManagementClient::new(
            &self.info.management_url,
            Some(&self.info.ca_cert),
            &self.info.operator_token,
        )
        .unwrap()
    }

    /// Another registration token for the quick start's tenant, through the operator API.
    fn registration_token(&self) -> String {
        let client = self.operator();
        self.runtime
            .block_on(client.issue_registration_token(&self.info.tenant_id))
            .unwrap()
            .registration_token
    }

    /// A second tenant through the operator API; returns its first registration token.
    fn tenant(&self, code: &str, quota_bytes: u64, encryption_required: bool) -> String {
        let client = self.operator();
        let request = CreateTenantRequest {
            service_code: code.into(),
            name: format!("tenant {code}"),
            quota_bytes,
            max_machines: 3,
            region: None,
            encryption_required,
            immutable_days: 0,
            agent_networks: Vec::new(),
            time_zone: None,
        };
        self.runtime
            .block_on(client.create_tenant(&request))
            .unwrap()
            .registration_token
    }
}

/// `kura` for one registered machine: no `--repo`, a config file of its own.
fn agent(dir: &Path, password: &str) -> Kura {
    let mut k = Kura::new(PathBuf::new()).with_password(password);
    k.env.push(("KURA_CONFIG".into(), dir.join("agent.toml").into()));
    k
}

fn register(kura: &Kura, svc: &Service, token: &str, name: &str) -> Value {
    let ca = svc.info.ca_cert.to_str().unwrap().to_string();
    kura.json([
        "register",
        "--server",
        &svc.info.customer_url,
        "--token",
        token,
        "--ca-cert",
        &ca,
        "--name",
        name,
    ])
}

#[test]
fn a_registered_agent_backs_up_lists_and_restores_through_the_server() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let kura = agent(&tmp.path().join("agent"), "a passphrase");

    // Before registration: a clear hint.
    let text = assert_exit(&kura.run(["snapshots"]), 1);
    assert!(text.contains("kura register"), "{text}");

    let reg = register(&kura, &svc, &svc.info.registration_token, "web-01");
    assert_eq!(reg["tenant_id"], svc.info.tenant_id.as_str());
    let config = tmp.path().join("agent/agent.toml");
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The token was one-time.
    let other = agent(&tmp.path().join("agent2"), "x");
    let ca = svc.info.ca_cert.to_str().unwrap();
    let out = other.run([
        "register",
        "--server",
        &svc.info.customer_url,
        "--token",
        &svc.info.registration_token,
        "--ca-cert",
        ca,
    ]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("already been used"), "{text}");

    // No vault yet: say what to do.
    let text = assert_exit(&kura.run(["snapshots"]), 1);
    assert!(text.contains("kura init"), "{text}");
    kura.json(["init", "--encrypt"]);

    let src = tmp.path().join("src");
    let total = generate_tree(&src, 7, 40, 200 << 10);
    write_random(&src.join("big.bin"), 9, 6 << 20);
    let tree = scan(&src);
    let s1 = kura.backup(&[&src], &[]);
    assert!(s1["bytes_added"].as_u64().unwrap() > 0, "{s1}");
    assert!(s1["bytes_read"].as_u64().unwrap() >= total, "{s1}");

    // An unchanged second backup reads nothing and adds (almost) nothing.
    let s2 = kura.backup(&[&src], &[]);
    assert_eq!(s2["parent"], s1["snapshot_id"], "{s2}");
    assert_eq!(s2["bytes_read"].as_u64(), Some(0), "{s2}");
    assert!(s2["bytes_added"].as_u64().unwrap() < 64 << 10, "{s2}");

    let snaps = kura.snapshots();
    assert_eq!(snaps.len(), 2);
    let listing = String::from_utf8(kura.ok(["ls", "latest"]).stdout).unwrap();
    assert!(listing.contains("big.bin"), "{listing}");

    let target = tmp.path().join("restore");
    kura.restore_ok("latest", &target, &[]);
    assert_same_tree(&tree, &scan(&restored(&target, &src)), Compare::default());
    kura.ok(["check"]);

    // Append-only: the agent cannot delete.
    let id = s1["snapshot_id"].as_str().unwrap();
    let text = assert_exit(&kura.run(["forget", id]), 1);
    assert!(text.contains("never delete"), "{text}");
    let text = assert_exit(&kura.run(["gc"]), 1);
    assert!(text.contains("never delete"), "{text}");
    assert_eq!(kura.snapshots().len(), 2);

    // A wrong passphrase is refused on the agent side, as for a local vault, when the
    // machine has no key of its own (here: its config without the key).
    let keyless = tmp.path().join("keyless");
    std::fs::create_dir_all(&keyless).unwrap();
    let config_text = std::fs::read_to_string(tmp.path().join("agent/agent.toml")).unwrap();
    assert!(config_text.contains("machine_key"), "{config_text}");
    let without_key: String = config_text
        .lines()
        .filter(|line| !line.starts_with("machine_key"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(keyless.join("agent.toml"), without_key).unwrap();
    let wrong = agent(&keyless, "not it");
    let text = assert_exit(&wrong.run(["snapshots"]), 1);
    assert!(text.contains("wrong passphrase"), "{text}");
}

#[test]
fn tenants_are_isolated_and_the_quota_refuses_cleanly() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let a = agent(&tmp.path().join("a"), "pw-a");
    register(&a, &svc, &svc.info.registration_token, "a-01");
    a.json(["init", "--encrypt"]);
    let src = tmp.path().join("src");
    write_random(&src.join("f"), 3, 3 << 20);
    a.backup(&[&src], &[]);

    // Tenant B: encryption required, 1 MiB quota.
    let token = svc.tenant("ACME-0002", 1 << 20, true);
    let b = agent(&tmp.path().join("b"), "pw-b");
    register(&b, &svc, &token, "b-01");
    // Its vault does not exist: tenant A's is not visible.
    let text = assert_exit(&b.run(["snapshots"]), 1);
    assert!(text.contains("kura init"), "{text}");
    // Encryption is required by contract.
    let text = assert_exit(&b.run(["init"]), 1);
    assert!(text.contains("requires encryption"), "{text}");
    b.json(["init", "--encrypt"]);
    assert!(b.snapshots().is_empty(), "tenant B sees no snapshot of tenant A");

    // 3 MiB of random data cannot fit in 1 MiB: refused, named, nothing committed.
    let out = b.run(["backup", src.to_str().unwrap()]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("quota"), "{text}");
    assert!(b.snapshots().is_empty());
    b.ok(["check"]);
    // Something that fits still works.
    let small = tmp.path().join("small");
    write_random(&small.join("f"), 4, 100 << 10);
    b.backup(&[&small], &[]);
    assert_eq!(b.snapshots().len(), 1);
    assert_eq!(a.snapshots().len(), 1);
}

#[test]
fn machines_of_one_tenant_see_only_their_own_snapshots() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let web = agent(&tmp.path().join("web"), "one tenant, one key");
    register(&web, &svc, &svc.info.registration_token, "web-01");
    web.json(["init", "--encrypt"]);
    let token = svc.registration_token();
    let mail = agent(&tmp.path().join("mail"), "one tenant, one key");
    register(&mail, &svc, &token, "mail-01");

    let web_src = tmp.path().join("web-src");
    write_random(&web_src.join("web.bin"), 21, 300 << 10);
    let mail_src = tmp.path().join("mail-src");
    write_random(&mail_src.join("mail.bin"), 22, 300 << 10);
    let w1 = web.backup(&[&web_src], &[]);
    let m1 = mail.backup(&[&mail_src], &[]);
    let w2 = web.backup(&[&web_src], &[]);
    assert_eq!(w2["parent"], w1["snapshot_id"], "{w2}");

    let id = |v: &Value| v["snapshot_id"].as_str().unwrap().to_owned();
    assert_eq!(web.snapshot_ids(), vec![id(&w1), id(&w2)]);
    assert_eq!(mail.snapshot_ids(), vec![id(&m1)]);

    // `latest` is per machine, though web's snapshot is the tenant's newest.
    let listing = String::from_utf8(mail.ok(["ls", "latest"]).stdout).unwrap();
    assert!(
        listing.contains("mail.bin") && !listing.contains("web.bin"),
        "{listing}"
    );
    let m2 = mail.backup(&[&mail_src], &[]);
    assert_eq!(m2["parent"], m1["snapshot_id"], "{m2}");

    // Another machine's snapshot is unknown, by id or by prefix.
    let web_id = id(&w1);
    for spec in [web_id.as_str(), &web_id[..8]] {
        let text = assert_exit(&mail.run(["ls", spec]), 1);
        assert!(text.contains("no snapshot"), "{text}");
    }
}

/// What a newcomer meets (issue 12, item 10): each mistake gets a message that says what
/// to do, snapshots carry the registered name, and figures about the whole vault say so.
#[test]
fn a_newcomer_is_told_what_to_do() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let web = agent(&tmp.path().join("web"), "one tenant, one key");
    // No agent config: the message names the file it looked for.
    let text = assert_exit(&web.run(["snapshots"]), 1);
    let config = tmp.path().join("web/agent.toml");
    assert!(text.contains(config.to_str().unwrap()), "{text}");
    // The service's own CA, not given: the message names --ca-cert.
    let out = web.run([
        "register",
        "--server",
        &svc.info.customer_url,
        "--token",
        &svc.info.registration_token,
    ]);
    let text = assert_exit(&out, 1);
    assert!(text.contains("--ca-cert"), "{text}");
    register(&web, &svc, &svc.info.registration_token, "web-01");
    // An unencrypted vault is created with a warning.
    let out = web.ok(["init"]);
    assert!(stderr(&out).contains("NOT encrypted"), "{}", describe(&out));
    // A second machine that runs init is told the vault is there and it can back up.
    let token = svc.registration_token();
    let mail = agent(&tmp.path().join("mail"), "one tenant, one key");
    register(&mail, &svc, &token, "mail-01");
    let text = assert_exit(&mail.run(["init", "--encrypt"]), 1);
    assert!(
        text.contains("exists already") && text.contains("can back up to it now"),
        "{text}"
    );
    // Snapshots carry the registered name, not the host's.
    let src = tmp.path().join("src");
    write_random(&src.join("a.bin"), 5, 10 << 10);
    mail.backup(&[&src], &[]);
    let listed = mail.json(["snapshots"]);
    assert_eq!(listed[0]["host"], "mail-01", "{listed}");
    assert!(
        listed[0]["source"].as_str().unwrap().starts_with("mail-01:"),
        "{listed}"
    );
    // Figures about the whole vault say they count every machine.
    let out = web.ok(["stats"]);
    assert!(
        stdout(&out).contains("the tenant's vault (all machines)"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_snapshot_of_many_files_commits_through_the_server() {
    // 40 000 distinct small files: the reference list alone is over 1 MiB, more than the
    // server's default body limit for other requests (found backing up /usr/share).
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let kura = agent(&tmp.path().join("agent"), "pw");
    register(&kura, &svc, &svc.info.registration_token, "many-01");
    kura.json(["init"]);
    let src = tmp.path().join("src");
    for d in 0..40 {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("f{f:03}")), format!("file {d} {f}")).unwrap();
        }
    }
    let s = kura.backup(&[&src], &[]);
    assert_eq!(s["files"].as_u64(), Some(40_000), "{s}");
    let target = tmp.path().join("t");
    kura.restore_ok(
        "latest",
        &target,
        &["--include", &format!("{}/d39", src.display())],
    );
    assert_eq!(
        std::fs::read_to_string(restored(&target, &src).join("d39/f999")).unwrap(),
        "file 39 999"
    );
}

#[test]
fn image_snapshots_back_up_restore_and_browse_through_the_server() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let kura = agent(&tmp.path().join("agent"), "image passphrase");
    register(&kura, &svc, &svc.info.registration_token, "db-01");
    kura.json(["init", "--encrypt"]);

    // A whole-disk ext4 file system (no partition table) holding a generated tree.
    let tree = tmp.path().join("tree");
    generate_tree(&tree, 3, 30, 300 << 10);
    let image = tmp.path().join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
    let mkfs = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&image)
        .output()
        .expect("mkfs.ext4 runs");
    assert!(mkfs.status.success(), "{}", describe(&mkfs));
    let img = image.to_str().unwrap();

    let first = kura.json(["backup", "--image", img]);
    assert_eq!(first["bytes"].as_u64(), Some(64 << 20), "{first}");
    let again = kura.json(["backup", "--image", img]);
    assert_eq!(again["parent"], first["snapshot_id"], "{again}");
    assert!(again["bytes_added"].as_u64().unwrap() < 64 << 10, "{again}");

    let out = tmp.path().join("restored.img");
    kura.ok(["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&image).unwrap(),
        "restored image differs"
    );

    let layout = kura.json(["ls", "latest"]);
    assert_eq!(layout["partitions"][0]["filesystem"], "ext4", "{layout}");
    let files = tmp.path().join("files");
    kura.ok([
        "restore",
        "latest",
        "--partition",
        "0",
        "--target",
        files.to_str().unwrap(),
    ]);
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(&files)
        .output()
        .unwrap();
    assert!(
        stdout(&diff).lines().all(|l| l.ends_with("lost+found")),
        "{}",
        describe(&diff)
    );
    kura.ok(["check", "--read-data"]);
}

/// The pack files a service keeps under `data`, wherever its vaults live.
fn service_packs(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![data.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .parent()
                .and_then(Path::parent)
                .is_some_and(|p| p.ends_with("packs"))
            {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn restores_through_the_server_go_on_around_damage() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let kura = agent(&tmp.path().join("agent"), "damage passphrase");
    register(&kura, &svc, &svc.info.registration_token, "files-01");
    kura.json(["init", "--encrypt"]);
    let src = tmp.path().join("src");
    for d in 0..6 {
        for f in 0..15 {
            write_random(
                &src.join(format!("d{d}/d{d}-f{f:02}")),
                d * 100 + f,
                3000 + 50 * f as usize,
            );
        }
    }
    let snap = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The largest tree blob is one of the six directories.
    let (pack, tree) = service_packs(&tmp.path().join("service"))
        .into_iter()
        .flat_map(|p| {
            let entries = kura_format::pack::parse_pack(&std::fs::read(&p).unwrap()).unwrap();
            entries.into_iter().map(move |e| (p.clone(), e))
        })
        .filter(|(_, e)| e.kind == kura_format::BlobKind::Tree)
        .max_by_key(|(_, e)| e.length)
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[(tree.offset + tree.length / 2) as usize] ^= 0x01;
    std::fs::write(&pack, &bytes).unwrap();

    let text = assert_exit(&kura.run(["ls", "latest"]), 3);
    assert!(text.contains("damaged directory"), "{text}");
    let target = tmp.path().join("restore");
    let out = kura.restore(&snap, &target, &["--json"]);
    assert_exit(&out, 3);
    let summary = last_json(&out);
    let damaged = summary["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{summary}");
    let lost = damaged[0].as_str().unwrap().split("/src/").nth(1).unwrap()[..2].to_string();
    for d in (0..6).map(|d| format!("d{d}")).filter(|d| *d != lost) {
        for f in 0..15 {
            let rel = format!("{d}/{d}-f{f:02}");
            assert!(
                std::fs::read(restored(&target, &src).join(&rel)).unwrap()
                    == std::fs::read(src.join(&rel)).unwrap(),
                "{rel} is restored whole"
            );
        }
    }
    let text = assert_exit(&kura.run(["repair"]), 1);
    assert!(text.contains("verify job"), "{text}");

    // A lost data pack: the server cannot deliver its chunks, and the files that need
    // them are named while the rest is restored.
    let data_pack = service_packs(&tmp.path().join("service"))
        .into_iter()
        .find(|p| *p != pack)
        .unwrap();
    std::fs::remove_file(&data_pack).unwrap();
    let out = kura.restore(&snap, &tmp.path().join("restore2"), &["--json"]);
    assert_exit(&out, 3);
    let summary = last_json(&out);
    let files = summary["damaged"].as_array().unwrap();
    assert!(
        files.iter().any(|d| d.as_str().unwrap().contains("damaged file")),
        "{summary}"
    );
}

#[test]
fn the_servers_verify_job_heals_what_a_new_backup_can_replace() {
    let tmp = tempdir();
    let svc = Service::start(&tmp.path().join("service"));
    let kura = agent(&tmp.path().join("agent"), "heal passphrase");
    register(&kura, &svc, &svc.info.registration_token, "files-01");
    kura.json(["init", "--encrypt"]);
    let src = tmp.path().join("src");
    for f in 0..8 {
        write_random(&src.join(format!("f{f}")), 700 + f, 40_000);
    }
    kura.backup(&[&src], &[]);
    kura.ok(["check", "--read-data"]);

    // One byte of a data blob flips on the server's disk.
    let (pack, blob) = service_packs(&tmp.path().join("service"))
        .into_iter()
        .flat_map(|p| {
            let entries = kura_format::pack::parse_pack(&std::fs::read(&p).unwrap()).unwrap();
            entries.into_iter().map(move |e| (p.clone(), e))
        })
        .find(|(_, e)| e.kind == kura_format::BlobKind::Data)
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[(blob.offset + blob.length / 2) as usize] ^= 0x01;
    std::fs::write(&pack, &bytes).unwrap();

    // The check runs as the server's verify job, which finds the damage and repairs the
    // vault around it; without the key the server cannot tell which blobs of the changed
    // pack are whole, so they stay damaged until a backup uploads them again.
    let text = assert_exit(&kura.run(["check", "--read-data"]), 1);
    assert!(text.contains("the server found damage"), "{text}");
    assert!(text.contains("snapshots stay damaged"), "{text}");
    assert!(text.contains("damaged snapshot"), "{text}");

    // A backup of the same files uploads what was lost, and the vault is whole again (the
    // changed pack, now unreferenced, goes with the next gc).
    let snap = kura.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = assert_exit(&kura.run(["check", "--read-data"]), 0);
    assert!(text.contains("no errors"), "{text}");
    let text = assert_exit(&kura.run(["check", "--read-data"]), 0);
    assert!(!text.contains("the server found damage"), "{text}");
    let target = tmp.path().join("restore");
    assert_exit(&kura.restore(&snap, &target, &[]), 0);
    for f in 0..8 {
        let rel = format!("f{f}");
        assert_eq!(
            std::fs::read(restored(&target, &src).join(&rel)).unwrap(),
            std::fs::read(src.join(&rel)).unwrap(),
            "{rel}"
        );
    }
}
