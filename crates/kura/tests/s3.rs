//! Vaults in S3: a `kura-server` whose configuration file (read as `serve --config` reads
//! it) puts catalogs in PostgreSQL and objects in an S3 bucket, and the real `kura` agent
//! backing up, checking and restoring through it; the vault's objects must then be in the
//! bucket under `t/<tenant-id>/v/default/` and nothing on the server's disk.
//!
//! Terminated, the tenant is then purged: nothing of it is left in the bucket, and its
//! signed deletion record counts what was there and checks with the service's key.
//!
//! Needs an S3 store: `scripts/garage.sh` starts a one-node Garage on loopback and prints
//! the `KURA_TEST_S3_*` variables below; `scripts/test.sh` does that before the tests.
//! Without `KURA_TEST_S3_ENDPOINT` the test says loudly that it did not run, and passes.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use futures::TryStreamExt;
use kura_server::api::types::CreateTenantRequest;
use kura_server::client::ManagementClient;
use kura_server::{Server, ServerConfig};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

/// Where the S3 store is, from the environment (see `scripts/garage.sh`).
struct S3 {
    endpoint: String,
    region: String,
    bucket: String,
    access_key: String,
    secret_key: String,
}

impl S3 {
    fn from_env() -> Option<S3> {
        let endpoint = std::env::var("KURA_TEST_S3_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())?;
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "KURA_TEST_S3_ENDPOINT is set but {name} is not (scripts/garage.sh prints all of them)"
                )
            })
        };
        Some(S3 {
            endpoint,
            region: std::env::var("KURA_TEST_S3_REGION").unwrap_or_else(|_| "garage".into()),
            bucket: var("KURA_TEST_S3_BUCKET"),
            access_key: var("KURA_TEST_S3_ACCESS_KEY"),
            secret_key: var("KURA_TEST_S3_SECRET_KEY"),
        })
    }

    /// The bucket, as the test reads it to see what the server wrote.
    fn store(&self) -> Arc<dyn ObjectStore> {
        kura_store::s3_store(
            &self.endpoint,
            &self.region,
            &self.bucket,
            &self.access_key,
            &self.secret_key,
            self.endpoint.starts_with("http://"),
        )
        .expect("the S3 settings make a client")
    }
}

/// A fresh schema in the test PostgreSQL (the object store needs a PostgreSQL catalog).
struct Schema {
    admin: sqlx::PgPool,
    name: String,
}

fn postgres_url() -> String {
    std::env::var("KURA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

impl Schema {
    async fn create() -> Schema {
        let admin = sqlx::PgPool::connect(&postgres_url())
            .await
            .expect("PostgreSQL must be running for this test (scripts/test.sh starts it)");
        let mut raw = [0u8; 6];
        getrandom::fill(&mut raw).unwrap();
        let name = format!("s3_{}", hex::encode(raw));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        Schema { admin, name }
    }

    fn url(&self) -> String {
        format!("{}?options=-c%20search_path%3D{}", postgres_url(), self.name)
    }

    async fn drop_it(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&self.admin)
            .await
            .unwrap();
    }
}

/// Every object name under `prefix`, with its size.
async fn objects(store: &dyn ObjectStore, prefix: &str) -> Vec<(String, u64)> {
    let list: Vec<_> = store
        .list(Some(&ObjectPath::from(prefix)))
        .try_collect()
        .await
        .expect("the bucket can be listed");
    list.into_iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect()
}

fn toml_string(s: &str) -> String {
    format!("{s:?}")
}

#[test]
fn an_agent_backs_up_and_restores_through_a_server_whose_vaults_are_in_s3() {
    let Some(s3) = S3::from_env() else {
        eprintln!(
            "\n!!! SKIPPED: KURA_TEST_S3_ENDPOINT is not set, so vaults in S3 were NOT tested.\n\
             !!! Run `eval \"$(scripts/garage.sh)\"` first (or scripts/test.sh, which does).\n"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempdir();
    let schema = runtime.block_on(Schema::create());

    // The configuration file an operator would write for `kura-server serve --config`.
    let config_path = tmp.path().join("kura-server.toml");
    let config_text = format!(
        "data_dir = \"service\"\n\
         customer_listen = \"127.0.0.1:0\"\n\
         management_listen = \"127.0.0.1:0\"\n\
         database_url = {}\n\
         object_store = \"s3\"\n\
         s3_endpoint = {}\n\
         s3_region = {}\n\
         s3_bucket = {}\n\
         s3_access_key = {}\n\
         s3_secret_key = {}\n\
         s3_allow_http = {}\n",
        toml_string(&schema.url()),
        toml_string(&s3.endpoint),
        toml_string(&s3.region),
        toml_string(&s3.bucket),
        toml_string(&s3.access_key),
        toml_string(&s3.secret_key),
        s3.endpoint.starts_with("http://"),
    );
    std::fs::write(&config_path, config_text).unwrap();
    let config = ServerConfig::load(&config_path).expect("the configuration file is valid");
    let data_dir = config.data_dir.clone();
    let server = runtime
        .block_on(Server::start(config))
        .expect("the server starts with its vaults in S3");
    let customer_url = format!("https://localhost:{}", server.customer_addr().port());
    let management_url = format!("https://localhost:{}", server.management_addr().port());
    let ca = server.ca_cert().unwrap().to_owned();
    let operator_token = std::fs::read_to_string(data_dir.join("operator-token")).unwrap();

    // A tenant through the operator API, then a machine of it.
    let client = ManagementClient::new(&management_url, Some(&ca), operator_token.trim()).unwrap();
    let tenant = runtime
        .block_on(client.create_tenant(&CreateTenantRequest {
            service_code: "S3-0001".into(),
            name: "vaults in S3".into(),
            quota_bytes: 1 << 30,
            max_machines: 2,
            region: None,
            encryption_required: false,
            immutable_days: 0,
            agent_networks: Vec::new(),
            time_zone: None,
        }))
        .unwrap();
    let mut kura = Kura::new(PathBuf::new()).with_password("a passphrase for S3");
    kura.env
        .push(("KURA_CONFIG".into(), tmp.path().join("agent/agent.toml").into()));
    kura.json([
        "register",
        "--server",
        &customer_url,
        "--token",
        &tenant.registration_token,
        "--ca-cert",
        ca.to_str().unwrap(),
        "--name",
        "s3-01",
    ]);
    kura.json(["init", "--encrypt"]);

    // Back up a tree with many small files and one large one (several packs), twice.
    let src = tmp.path().join("src");
    let total = generate_tree(&src, 31, 60, 300 << 10);
    write_random(&src.join("big.bin"), 32, 24 << 20);
    let tree = scan(&src);
    let s1 = kura.backup(&[&src], &[]);
    assert!(s1["bytes_read"].as_u64().unwrap() >= total, "{s1}");
    assert!(s1["bytes_added"].as_u64().unwrap() > 24 << 20, "{s1}");
    let s2 = kura.backup(&[&src], &[]);
    assert_eq!(s2["parent"], s1["snapshot_id"], "{s2}");
    assert_eq!(kura.snapshots().len(), 2);

    // Restore reads the packs back from the bucket; check --read-data reads every one.
    let target = tmp.path().join("restore");
    kura.restore_ok("latest", &target, &[]);
    assert_same_tree(&tree, &scan(&restored(&target, &src)), Compare::default());
    kura.ok(["check", "--read-data"]);

    // The vault's objects are in the bucket under the tenant's prefix...
    let prefix = format!("t/{}/v/default", tenant.tenant_id);
    let store = s3.store();
    let names = runtime.block_on(objects(store.as_ref(), &prefix));
    let under = |folder: &str| {
        names
            .iter()
            .filter(|(n, _)| n.starts_with(&format!("{prefix}/{folder}/")))
            .count()
    };
    assert!(
        names.iter().any(|(n, _)| *n == format!("{prefix}/config")),
        "no vault config in the bucket under {prefix}: {names:?}"
    );
    assert!(under("keys") >= 1, "no key slot under {prefix}: {names:?}");
    assert_eq!(under("snapshots"), 2, "{names:?}");
    assert_eq!(under("refs"), 2, "{names:?}");
    let pack_bytes: u64 = names
        .iter()
        .filter(|(n, _)| n.starts_with(&format!("{prefix}/packs/")))
        .map(|(_, size)| size)
        .sum();
    assert!(under("packs") >= 2, "{names:?}");
    assert!(pack_bytes > 24 << 20, "packs hold {pack_bytes} bytes");
    // ...and none on the server's disk.
    for local in ["vaults", "objects"] {
        assert!(
            !data_dir.join(local).exists(),
            "{} exists: vault data went to the server's disk",
            data_dir.join(local).display()
        );
    }

    // Terminated with no grace, the tenant is purged: nothing of it is left in the
    // bucket, and the signed deletion record counts what was there.
    let stored: u64 = names.iter().map(|(_, size)| size).sum();
    let answer = runtime
        .block_on(client.terminate_tenant(&tenant.tenant_id, Some(0)))
        .unwrap();
    let kura_server::client::Gated::Done(done) = answer else {
        panic!("one operator-admin: nothing waits for approval: {answer:?}");
    };
    assert_eq!(done.tenant.status, "terminated");
    let record = runtime.block_on(async {
        for _ in 0..600 {
            if let Some(found) = client.deletions().await.unwrap().first() {
                return client.deletion(&found.id).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the purge left no deletion record within a minute");
    });
    let left = runtime.block_on(objects(store.as_ref(), &format!("t/{}", tenant.tenant_id)));
    assert!(left.is_empty(), "the purge left objects in the bucket: {left:?}");
    assert_eq!(
        (
            record.record.objects_deleted,
            record.record.bytes_deleted,
            record.record.snapshots_deleted
        ),
        (names.len() as u64, stored, 2),
        "{record:?}"
    );
    assert_eq!(
        record.record.storage,
        format!("s3://{}/t/{}/", s3.bucket, tenant.tenant_id)
    );
    let config = ServerConfig::load(&config_path).unwrap();
    let key = kura_server::app::existing_service_key(&config).unwrap();
    let text = serde_json::to_string(&record).unwrap();
    let public_key = kura_service::ops::terminations::encode_key(&key);
    kura_service::ops::terminations::check_record(&text, &public_key).expect("the record checks");

    runtime.block_on(server.shutdown()).unwrap();
    runtime.block_on(schema.drop_it());
}
