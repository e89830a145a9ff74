//! The vault's behaviour, run on every catalog backend: each test below is an async
//! function over a [`Fixture`], and [`conformance!`] runs it once on SQLite and once on
//! PostgreSQL (127.0.0.1:5432, or `KURA_TEST_POSTGRES_URL`; each test in a fresh schema),
//! with objects in a temporary folder; and once more on PostgreSQL with objects in an S3
//! bucket (`KURA_TEST_S3_*`, as `scripts/garage.sh` prints them; each test under its own
//! prefix, emptied afterwards). Without `KURA_TEST_S3_ENDPOINT` the S3 runs say loudly
//! that they did not run.

use std::collections::{BTreeSet, HashSet};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, TryStreamExt};
use kura_format::{
    BlobCodec, BlobKind, ChunkId, KeySlot, Manifest, ManifestBody, MasterKey, PackId, PackWriter,
    RecoveryKey, ReferenceList, SnapshotId, SnapshotKind, VaultConfig,
};
use kura_store::{
    Catalog, GcOptions, ObjectLayout, SessionId, SnapshotQuery, StoreError, Vault, VerifyScope,
    migrate_postgres, migrate_sqlite,
};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_bytes::ByteBuf;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};

const DEFAULT_POSTGRES_URL: &str = "postgres://root@127.0.0.1:5432/test";

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL catalog, objects in S3.
    S3,
}

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One catalog database and one object store (a temporary folder), shared by the vaults
/// a test creates; each vault gets its own id and object prefix `t/test/v/<name>`.
struct Fixture {
    db: Db,
    store: Arc<dyn ObjectStore>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn catalog(&self, vault: &str) -> Catalog {
        match &self.db {
            Db::Sqlite(p) => Catalog::sqlite(p.clone(), vault),
            Db::Postgres(p) => Catalog::postgres(p.clone(), vault),
        }
    }

    fn objects(&self, vault: &str) -> ObjectLayout {
        ObjectLayout::new(self.store.clone(), prefix(vault))
    }

    async fn create(&self, vault: &str) -> Vault {
        let config = VaultConfig::new(false, 0).unwrap();
        let slot = KeySlot::for_recovery(
            &MasterKey::generate().unwrap(),
            &RecoveryKey::generate().unwrap(),
            0,
        )
        .unwrap();
        Vault::create(
            self.objects(vault),
            self.catalog(vault),
            config,
            &[slot],
            vault.to_string(),
            true,
        )
        .await
        .unwrap()
    }

    async fn open(&self, vault: &str) -> Result<Vault, StoreError> {
        Vault::open(self.objects(vault), self.catalog(vault), vault.to_string(), true).await
    }

    /// Runs a statement on the catalog database directly, as a crash or an operator would.
    async fn sql(&self, sql: &'static str, vault: &str, id: &[u8]) {
        match &self.db {
            Db::Sqlite(p) => drop(sqlx::query(sql).bind(vault).bind(id).execute(p).await.unwrap()),
            Db::Postgres(p) => drop(sqlx::query(sql).bind(vault).bind(id).execute(p).await.unwrap()),
        }
    }

    /// Deletes every catalog row of `vault`, as a lost catalog would leave it.
    async fn lose_catalog(&self, vault: &str) {
        for table in CATALOG_TABLES {
            let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE vault = $1"));
            match &self.db {
                Db::Sqlite(p) => drop(sqlx::query(sql).bind(vault).execute(p).await.unwrap()),
                Db::Postgres(p) => drop(sqlx::query(sql).bind(vault).execute(p).await.unwrap()),
            }
        }
    }

    /// How many rows of `vault` a catalog table holds.
    async fn rows(&self, table: &str, vault: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table} WHERE vault = $1"));
        match &self.db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).bind(vault).fetch_one(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_scalar(sql).bind(vault).fetch_one(p).await.unwrap(),
        }
    }

    /// Every object name under a vault's prefix.
    async fn object_names(&self, vault: &str) -> BTreeSet<String> {
        let list: Vec<_> = self.store.list(Some(&prefix(vault))).try_collect().await.unwrap();
        list.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// A vault's packs, manifests and reference lists (what GC may delete).
    async fn data_objects(&self, vault: &str) -> Vec<String> {
        let names = self.object_names(vault).await;
        names
            .into_iter()
            .filter(|n| !n.ends_with("/config") && !n.contains("/keys/"))
            .collect()
    }
}

const CATALOG_TABLES: [&str; 7] = [
    "vault_meta",
    "vault_key_slots",
    "vault_packs",
    "vault_chunks",
    "vault_snapshots",
    "vault_sessions",
    "vault_pending_packs",
];

fn prefix(vault: &str) -> Path {
    Path::from(format!("t/test/v/{vault}"))
}

fn random_hex() -> String {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).unwrap();
    hex::encode(raw)
}

/// Sets up the backend, runs `test`, and drops the PostgreSQL schema even if it panics.
async fn run<F>(backend: Backend, test: F)
where
    F: for<'a> AsyncFnOnce(&'a Fixture),
{
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = match backend {
        Backend::S3 => match s3_test_store() {
            Some(store) => store,
            None => {
                eprintln!(
                    "\n!!! SKIPPED: KURA_TEST_S3_ENDPOINT is not set, so this test did NOT run on S3.\n\
                     !!! Run `eval \"$(scripts/garage.sh)\"` first (scripts/test.sh does).\n"
                );
                return;
            }
        },
        _ => Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
    };
    let (db, schema) = match backend {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("catalog.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(60));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .unwrap();
            migrate_sqlite(&pool).await.unwrap();
            (Db::Sqlite(pool), None)
        }
        Backend::Postgres | Backend::S3 => {
            let (pool, schema) = postgres_schema().await;
            migrate_postgres(&pool).await.unwrap();
            (Db::Postgres(pool), Some(schema))
        }
    };
    let fixture = Fixture {
        db: db.clone(),
        store,
        _dir: dir,
    };
    let outcome = AssertUnwindSafe(test(&fixture)).catch_unwind().await;
    if let Backend::S3 = backend {
        // The bucket is shared between runs: leave nothing behind.
        let names: Vec<_> = fixture.store.list(None).try_collect().await.unwrap();
        for meta in names {
            fixture.store.delete(&meta.location).await.unwrap();
        }
    }
    drop(fixture);
    if let (Db::Postgres(pool), Some(schema)) = (db, schema) {
        pool.close().await;
        let mut admin = postgres_admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The S3 bucket from `KURA_TEST_S3_*`, narrowed to a fresh prefix so that tests running
/// at once (and earlier runs) never see each other's objects; `None` when unset.
fn s3_test_store() -> Option<Arc<dyn ObjectStore>> {
    let endpoint = std::env::var("KURA_TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())?;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("KURA_TEST_S3_ENDPOINT is set but {name} is not (scripts/garage.sh prints all of them)")
        })
    };
    let bucket = kura_store::s3_store(
        &endpoint,
        &std::env::var("KURA_TEST_S3_REGION").unwrap_or_else(|_| "garage".into()),
        &var("KURA_TEST_S3_BUCKET"),
        &var("KURA_TEST_S3_ACCESS_KEY"),
        &var("KURA_TEST_S3_SECRET_KEY"),
        endpoint.starts_with("http://"),
    )
    .unwrap();
    let root = Path::from(format!("conformance/{}", random_hex()));
    Some(Arc::new(PrefixStore::new(bucket, root)))
}

fn postgres_url() -> String {
    std::env::var("KURA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// A plain connection; a clear failure (never a skip) when PostgreSQL is not there.
async fn postgres_admin() -> PgConnection {
    let url = postgres_url();
    let connect = PgConnection::connect(&url);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {url}: {e}. These tests need it (see DESIGN.md, \
             \"Real parts in tests\"); start it or point KURA_TEST_POSTGRES_URL at one."
        ),
        Err(_) => panic!("PostgreSQL at {url} did not answer within 10 s; these tests need it."),
    }
}

/// A fresh schema and a pool whose connections use it as their `search_path`.
async fn postgres_schema() -> (PgPool, String) {
    let schema = format!("s_{}", random_hex());
    let mut admin = postgres_admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&postgres_url())
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    (pool, schema)
}

// ----- building backups -----

fn codec() -> BlobCodec {
    BlobCodec::plain(3)
}

/// Distinct chunk contents, by name.
fn data(name: &str) -> Vec<u8> {
    format!("chunk {name} ").repeat(50).into_bytes()
}

fn chunk_id(name: &str) -> ChunkId {
    codec().id(&data(name))
}

/// A pack holding the named chunks.
fn pack(names: &[&str]) -> (PackId, Bytes) {
    let codec = codec();
    let mut writer = PackWriter::new();
    for name in names {
        let bytes = data(name);
        let id = codec.id(&bytes);
        writer.add(
            id,
            BlobKind::Data,
            &codec.seal(&id, &bytes).unwrap(),
            bytes.len() as u32,
        );
    }
    let (id, bytes, _) = writer.finish();
    (id, Bytes::from(bytes))
}

/// A manifest and reference list naming `names`; `time_ns` orders snapshots.
fn manifest(names: &[&str], time_ns: i64, parent: Option<SnapshotId>) -> (Vec<u8>, Vec<u8>) {
    let refs = ReferenceList::from_ids(names.iter().map(|n| chunk_id(n)).collect());
    let body = ManifestBody {
        paths: vec!["/data".into()],
        root: refs.ids().first().copied().unwrap_or(chunk_id("root")),
    };
    let (body_id, body) = body.seal(&codec()).unwrap();
    let manifest = Manifest {
        version: kura_format::manifest::MANIFEST_VERSION,
        kind: SnapshotKind::Files,
        time_ns,
        end_time_ns: time_ns + 1,
        host: "host".into(),
        source: "source".into(),
        tags: vec![],
        parent,
        stats: kura_format::manifest::SnapshotStats {
            files: names.len() as u64,
            bytes: 1000,
            ..Default::default()
        },
        reference_count: refs.ids().len() as u64,
        references_hash: ByteBuf::from(refs.hash().to_vec()),
        body_id,
        body: ByteBuf::from(body),
    };
    (manifest.encode(), refs.encode())
}

/// A whole backup: uploads what the vault lacks of `names`, then commits them.
async fn backup(vault: &Vault, names: &[&str], time_ns: i64) -> SnapshotId {
    let session = vault.open_session(None).await.unwrap();
    upload(vault, &session, names).await;
    let (m, r) = manifest(names, time_ns, None);
    vault.commit(&session, &m, &r).await.unwrap()
}

/// Uploads, in one pack, those of `names` the vault reports missing.
async fn upload(vault: &Vault, session: &SessionId, names: &[&str]) -> Option<PackId> {
    let ids: Vec<ChunkId> = names.iter().map(|n| chunk_id(n)).collect();
    let missing = vault.missing(session, &ids).await.unwrap();
    let wanted: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| missing.contains(&chunk_id(n)))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let (_, bytes) = pack(&wanted);
    Some(vault.put_pack(session, bytes).await.unwrap().pack_id)
}

async fn missing_names(vault: &Vault, names: &[&str]) -> Vec<String> {
    let session = vault.open_session(None).await.unwrap();
    let ids: Vec<ChunkId> = names.iter().map(|n| chunk_id(n)).collect();
    let missing = vault.missing(&session, &ids).await.unwrap();
    vault.abort_session(&session).await.unwrap();
    names
        .iter()
        .filter(|n| missing.contains(&chunk_id(n)))
        .map(|n| n.to_string())
        .collect()
}

/// Lets the clock move on, so "older than now" holds for what a test just wrote.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn gc_all() -> GcOptions {
    GcOptions {
        max_unused: 0.1,
        dry_run: false,
    }
}

fn unknown<T>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::UnknownSession(_)))
}

fn rejected<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Rejected(msg)) => msg,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// ----- the suite -----

async fn create_and_open(fx: &Fixture) {
    let vault = fx.create("v").await;
    assert_eq!(vault.key_slots().await.unwrap().len(), 1);
    let again = Vault::create(
        fx.objects("v"),
        fx.catalog("v"),
        VaultConfig::new(false, 0).unwrap(),
        &[],
        "v".into(),
        true,
    )
    .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "{:?}",
        again.err()
    );
    let opened = fx.open("v").await.unwrap();
    assert_eq!(opened.config(), vault.config());
    assert!(matches!(fx.open("other").await, Err(StoreError::NoVault(_))));

    // Key slots: added, listed, removed; never the last one.
    let slot = KeySlot::for_recovery(
        &MasterKey::generate().unwrap(),
        &RecoveryKey::generate().unwrap(),
        1,
    )
    .unwrap();
    opened.add_key_slot(&slot).await.unwrap();
    assert_eq!(vault.key_slots().await.unwrap().len(), 2);
    let first = vault.key_slots().await.unwrap()[0].id.clone();
    vault.remove_key_slot(&first).await.unwrap();
    let last = vault.key_slots().await.unwrap()[0].id.clone();
    rejected(vault.remove_key_slot(&last).await);
    rejected(vault.remove_key_slot("nope").await);
}

async fn sessions(fx: &Fixture) {
    let vault = fx.create("v").await;
    let session = vault.open_session(None).await.unwrap();
    upload(&vault, &session, &["a"]).await.unwrap();
    vault.abort_session(&session).await.unwrap();
    assert!(unknown(vault.missing(&session, &[chunk_id("a")]).await));
    assert!(unknown(vault.put_pack(&session, pack(&["b"]).1).await));
    let (m, r) = manifest(&["a"], 1, None);
    assert!(unknown(vault.commit(&session, &m, &r).await));
    assert!(unknown(
        vault.missing(&SessionId("0123".into()), &[chunk_id("a")]).await
    ));

    // A committed session is closed; its chunks stay (uploaded before the abort too).
    let session = vault.open_session(None).await.unwrap();
    assert!(upload(&vault, &session, &["a", "b"]).await.is_some());
    let id = vault.commit(&session, &m, &r).await.unwrap();
    assert!(unknown(vault.commit(&session, &m, &r).await));
    assert_eq!(vault.resolve("latest").await.unwrap(), id);
    assert!(missing_names(&vault, &["a", "b"]).await.is_empty());
}

async fn missing(fx: &Fixture) {
    let vault = fx.create("v").await;
    // More ids than one catalog batch, with duplicates.
    let names: Vec<String> = (0..1200).map(|i| format!("m{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(missing_names(&vault, &names).await.len(), names.len());
    let session = vault.open_session(None).await.unwrap();
    let stored: Vec<&str> = names.iter().copied().step_by(3).collect();
    upload(&vault, &session, &stored).await.unwrap();
    let mut asked: Vec<ChunkId> = names.iter().map(|n| chunk_id(n)).collect();
    asked.extend(asked[..10].to_vec());
    let missing: HashSet<ChunkId> = vault
        .missing(&session, &asked)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for name in &names {
        assert_eq!(
            missing.contains(&chunk_id(name)),
            !stored.contains(name),
            "{name}"
        );
    }
    assert_eq!(
        vault
            .kinds(&[chunk_id("m0"), chunk_id("m1")])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!vault.read_blob(&chunk_id("m3")).await.unwrap().is_empty());
    assert!(matches!(
        vault.read_blob(&chunk_id("m1")).await,
        Err(StoreError::MissingChunk(_))
    ));
}

async fn put_pack_and_adopt(fx: &Fixture) {
    let vault = fx.create("v").await;
    let session = vault.open_session(None).await.unwrap();
    let (id, bytes) = pack(&["a", "b"]);
    let receipt = vault.put_pack(&session, bytes.clone()).await.unwrap();
    assert_eq!((receipt.pack_id, receipt.blobs, receipt.new_chunks), (id, 2, 2));
    assert_eq!(receipt.stored_bytes, bytes.len() as u64);
    // The same pack again, and a pack overlapping it, index nothing twice.
    assert_eq!(vault.put_pack(&session, bytes).await.unwrap().new_chunks, 0);
    assert_eq!(
        vault
            .put_pack(&session, pack(&["b", "c"]).1)
            .await
            .unwrap()
            .new_chunks,
        1
    );

    // The service checks what it is sent.
    let mut garbage = pack(&["d"]).1.to_vec();
    garbage[3] ^= 0xff;
    rejected(vault.put_pack(&session, Bytes::from(garbage)).await);
    rejected(vault.put_pack(&session, Bytes::from_static(b"not a pack")).await);

    // A killed upload: the pending note and the object are there, the index rows are not.
    let (killed, bytes) = pack(&["e", "f"]);
    let o = fx.objects("v");
    o.store
        .put(&o.pack(&killed), PutPayload::from(bytes))
        .await
        .unwrap();
    fx.sql(
        "INSERT INTO vault_pending_packs (vault, id, session, created_ms) VALUES ($1, $2, 'gone', 0)",
        "v",
        &killed.0,
    )
    .await;
    // A note whose object never arrived, from a session that is gone: forgotten.
    let (never, _) = pack(&["g"]);
    fx.sql(
        "INSERT INTO vault_pending_packs (vault, id, session, created_ms) VALUES ($1, $2, 'gone', 0)",
        "v",
        &never.0,
    )
    .await;
    assert_eq!(missing_names(&vault, &["e", "f", "g"]).await, ["g"]);
    assert_eq!(vault.adopt_pending_packs().await.unwrap(), 0);
    assert_eq!(vault.usage().await.unwrap().packs, 3);

    // A pack that names one chunk twice indexes it once.
    let receipt = vault.put_pack(&session, pack(&["h", "i", "h"]).1).await.unwrap();
    assert_eq!((receipt.blobs, receipt.new_chunks), (3, 2));
    assert!(missing_names(&vault, &["h", "i"]).await.is_empty());
}

async fn commit_checks_references(fx: &Fixture) {
    let vault = fx.create("v").await;
    let session = vault.open_session(None).await.unwrap();
    upload(&vault, &session, &["a"]).await;
    let (m, r) = manifest(&["a", "b"], 1, None);
    let msg = rejected(vault.commit(&session, &m, &r).await);
    assert!(msg.contains("not in the vault"), "{msg}");
    assert!(vault.snapshots().await.unwrap().is_empty());
    // A reference list that is not the manifest's.
    let (_, other) = manifest(&["a"], 1, None);
    rejected(vault.commit(&session, &m, &other).await);
    rejected(vault.commit(&session, b"junk", &r).await);
    // The session survives a refused commit: upload the rest and commit.
    upload(&vault, &session, &["a", "b"]).await.unwrap();
    let id = vault.commit(&session, &m, &r).await.unwrap();
    assert_eq!(id, Manifest::id_of(&m));
    assert_eq!(vault.manifest(&id).await.unwrap(), Manifest::decode(&m).unwrap());
    assert_eq!(
        vault.references(&id).await.unwrap(),
        ReferenceList::decode(&r).unwrap()
    );
    assert!(!vault.is_damaged(&id).await.unwrap());
}

async fn resolve(fx: &Fixture) {
    let vault = fx.create("v").await;
    assert!(matches!(
        vault.resolve("latest").await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    // Enough snapshots that two share a first hex digit.
    let mut ids = Vec::new();
    for t in 0..17 {
        ids.push(backup(&vault, &["a"], 100 - t).await);
    }
    let listed: Vec<SnapshotId> = vault
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut by_time = ids.clone();
    by_time.reverse();
    assert_eq!(listed, by_time, "oldest first");
    assert_eq!(vault.resolve("latest").await.unwrap(), ids[0]);
    for id in &ids {
        assert_eq!(vault.resolve(&id.to_hex()).await.unwrap(), *id);
        assert_eq!(
            vault.resolve(&id.to_hex()[..12].to_uppercase()).await.unwrap(),
            *id
        );
    }
    let shared = ids
        .iter()
        .map(|i| i.to_hex()[..1].to_string())
        .find(|p| ids.iter().filter(|i| i.to_hex().starts_with(p.as_str())).count() > 1)
        .unwrap();
    assert!(matches!(
        vault.resolve(&shared).await,
        Err(StoreError::AmbiguousSnapshot(_))
    ));
    for bad in ["", "xyz", "%", "_", "0".repeat(65).as_str()] {
        assert!(
            matches!(vault.resolve(bad).await, Err(StoreError::UnknownSnapshot(_))),
            "{bad:?}"
        );
    }
    vault.forget(&[ids[0]]).await.unwrap();
    assert_eq!(vault.resolve("latest").await.unwrap(), ids[1]);
    assert!(matches!(
        vault.resolve(&ids[0].to_hex()).await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        vault.manifest(&ids[0]).await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        vault.forget(&[ids[0]]).await,
        Err(StoreError::UnknownSnapshot(_))
    ));
}

/// Pages of live snapshots, newest first (ties by id), filtered in the catalog, with a
/// keyset cursor; the same among given ids; and manifests of a page in its order.
async fn snapshot_pages(fx: &Fixture) {
    let vault = fx.create("v").await;
    /// Start time, id, source, kind.
    type Listed = (i64, SnapshotId, String, SnapshotKind);
    let mut all: Vec<Listed> = Vec::new();
    for i in 0..30i64 {
        let session = vault.open_session(None).await.unwrap();
        upload(&vault, &session, &["a"]).await;
        let (m, r) = manifest(&["a"], 1000 + i / 2, None);
        let mut m = Manifest::decode(&m).unwrap();
        m.source = format!("s{}", i % 3);
        m.kind = if i % 5 == 0 {
            SnapshotKind::Image
        } else {
            SnapshotKind::Files
        };
        m.stats.files = i as u64;
        let id = vault.commit(&session, &m.encode(), &r).await.unwrap();
        all.push((m.time_ns, id, m.source.clone(), m.kind));
    }
    vault.forget(&[all[29].1]).await.unwrap();
    let forgotten = all.pop().unwrap().1;
    all.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
    let expect = |keep: &dyn Fn(&Listed) -> bool| -> Vec<(SnapshotId, i64)> {
        all.iter().filter(|s| keep(s)).map(|s| (s.1, s.0)).collect()
    };
    let pages = |q: SnapshotQuery, among: Option<Vec<SnapshotId>>| {
        let vault = vault.clone();
        async move {
            let mut q = q;
            let mut out = Vec::new();
            loop {
                let page = match &among {
                    None => vault.snapshot_page(&q, 7).await.unwrap(),
                    Some(ids) => vault.snapshot_page_among(&q, ids, 7).await.unwrap(),
                };
                assert!(page.len() <= 7);
                let Some(last) = page.last().copied() else { break };
                out.extend(page);
                q.after = Some((last.1, last.0));
            }
            out
        }
    };
    assert_eq!(pages(SnapshotQuery::default(), None).await, expect(&|_| true));
    let by_source = SnapshotQuery {
        source: Some("s1".into()),
        ..Default::default()
    };
    assert_eq!(pages(by_source.clone(), None).await, expect(&|s| s.2 == "s1"));
    let images = SnapshotQuery {
        kind: Some(SnapshotKind::Image),
        from_ns: Some(1003),
        to_ns: Some(1012),
        ..Default::default()
    };
    assert_eq!(
        pages(images.clone(), None).await,
        expect(&|s| s.3 == SnapshotKind::Image && (1003..1012).contains(&s.0))
    );
    // Among some ids, in batches: the same order, the same filters.
    let some: Vec<SnapshotId> = all.iter().step_by(2).map(|s| s.1).collect();
    let among = |s: &Listed| some.contains(&s.1);
    assert_eq!(
        pages(SnapshotQuery::default(), Some(some.clone())).await,
        expect(&among)
    );
    assert_eq!(
        pages(by_source, Some(some.clone())).await,
        expect(&|s| among(s) && s.2 == "s1")
    );
    // Manifests in the order asked; unknown and forgotten ids are left out.
    let mut ids: Vec<SnapshotId> = all.iter().take(5).map(|s| s.1).collect();
    ids.reverse();
    ids.insert(2, SnapshotId([7; 32]));
    ids.push(forgotten);
    let records = vault.manifests(&ids).await.unwrap();
    let got: Vec<SnapshotId> = records.iter().map(|r| r.id).collect();
    let want: Vec<SnapshotId> = ids
        .iter()
        .copied()
        .filter(|id| *id != SnapshotId([7; 32]) && *id != forgotten)
        .collect();
    assert_eq!(got, want);
    assert_eq!(records[0].manifest.time_ns, all[4].0);
}

async fn forget_and_gc_with_open_session(fx: &Fixture) {
    let vault = fx.create("v").await;
    let first = backup(&vault, &["a", "b"], 1).await;
    let second = backup(&vault, &["b", "c"], 2).await;
    // A running backup has asked about `a` and will reference it; another runs on `second`.
    let running = vault.open_session(None).await.unwrap();
    assert!(upload(&vault, &running, &["a", "d"]).await.is_some());
    let incremental = vault.open_session(Some(second)).await.unwrap();
    vault.forget(&[first, second]).await.unwrap();
    tick().await;

    let dry = vault
        .gc(GcOptions {
            dry_run: true,
            ..gc_all()
        })
        .await
        .unwrap();
    assert_eq!((dry.chunks_deleted, dry.snapshots_purged), (0, 1));
    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(report.chunks_deleted, 0, "{report:?}");
    assert_eq!(report.snapshots_purged, 1, "the parent of a running backup stays");
    assert!(missing_names(&vault, &["a", "b", "c", "d"]).await.is_empty());
    let (m, r) = manifest(&["a", "d"], 3, None);
    let third = vault.commit(&running, &m, &r).await.unwrap();
    let (m, r) = manifest(&["b", "c"], 4, Some(second));
    let fourth = vault.commit(&incremental, &m, &r).await.unwrap();

    // No session left: only what live snapshots reference survives.
    vault.forget(&[fourth]).await.unwrap();
    tick().await;
    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(
        (report.chunks_deleted, report.snapshots_purged),
        (2, 2),
        "{report:?}"
    );
    assert_eq!(missing_names(&vault, &["a", "b", "c", "d"]).await, ["b", "c"]);
    assert_eq!(vault.snapshots().await.unwrap().len(), 1);
    assert!(
        vault
            .verify(VerifyScope { read_data: true }, None)
            .await
            .unwrap()
            .is_clean()
    );
    vault.forget(&[third]).await.unwrap();
    tick().await;
    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(report.chunks_deleted, 2);
    let usage = vault.usage().await.unwrap();
    assert_eq!((usage.snapshots, usage.packs, usage.chunks), (0, 0, 0));
    let left = fx.data_objects("v").await;
    assert!(left.is_empty(), "{left:?}");
}

/// More chunks than one sweep page (10 000) and than one window of a reference list
/// (2 048): GC merges the sorted lists with the index page by page.
async fn gc_sweeps_past_its_pages_and_windows(fx: &Fixture) {
    let vault = fx.create("v").await;
    let names: Vec<String> = (0..13_000).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let old = backup(&vault, &names[..12_000], 1).await;
    backup(&vault, &names[6_000..], 2).await;
    backup(&vault, &names[11_990..12_010], 3).await;
    vault.forget(&[old]).await.unwrap();
    tick().await;

    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(report.chunks_deleted, 6_000, "{report:?}");
    assert_eq!(missing_names(&vault, &names).await, names[..6_000]);
}

async fn orphans_and_repack(fx: &Fixture) {
    let vault = fx.create("v").await;
    let session = vault.open_session(None).await.unwrap();
    let old = upload(&vault, &session, &["x", "y", "z"]).await.unwrap();
    let (m, r) = manifest(&["x", "y", "z"], 1, None);
    let all = vault.commit(&session, &m, &r).await.unwrap();
    let keep = backup(&vault, &["x"], 2).await;
    // An object no catalog row knows (a killed run's leftover).
    let (stray, bytes) = pack(&["s"]);
    let o = fx.objects("v");
    o.store
        .put(&o.pack(&stray), PutPayload::from(bytes))
        .await
        .unwrap();
    vault.forget(&[all]).await.unwrap();
    tick().await;

    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(report.chunks_deleted, 2, "{report:?}");
    assert_eq!(report.packs_repacked, 1);
    assert_eq!(report.orphans_deleted, 1);
    assert!(report.bytes_freed > 0);
    let names = fx.object_names("v").await;
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(&old.to_hex()) || n.ends_with(&stray.to_hex()))
    );
    let blob = vault.read_blob(&chunk_id("x")).await.unwrap();
    assert_eq!(codec().open(&chunk_id("x"), &blob).unwrap(), data("x"));
    assert_eq!(vault.usage().await.unwrap().packs, 1);
    let verified = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(verified.is_clean(), "{verified:?}");
    assert_eq!(vault.resolve("latest").await.unwrap(), keep);
}

async fn verify_marks_damage(fx: &Fixture) {
    let vault = fx.create("v").await;
    let session = vault.open_session(None).await.unwrap();
    let hurt = upload(&vault, &session, &["a", "b"]).await.unwrap();
    let lost = upload(&vault, &session, &["c"]).await.unwrap();
    let (m, r) = manifest(&["a", "b", "c"], 1, None);
    let snap = vault.commit(&session, &m, &r).await.unwrap();
    let healthy = backup(&vault, &["h"], 2).await;
    let clean = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(
        (clean.packs_checked, clean.blobs_checked, clean.snapshots_checked),
        (3, 4, 2)
    );

    // Flip the last byte of blob `a` in one pack; lose the other pack.
    let o = fx.objects("v");
    let mut bytes = o
        .store
        .get(&o.pack(&hurt))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let entries = kura_format::pack::parse_pack(&bytes).unwrap();
    let a = entries.iter().find(|e| e.id == chunk_id("a")).unwrap();
    bytes[(a.offset + a.length - 1) as usize] ^= 0xff;
    o.store
        .put(&o.pack(&hurt), PutPayload::from(bytes))
        .await
        .unwrap();
    o.store.delete(&o.pack(&lost)).await.unwrap();

    let report = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(!report.is_clean());
    let damaged: BTreeSet<String> = report.damaged_chunks.iter().cloned().collect();
    let expected: BTreeSet<String> = [chunk_id("a").to_hex(), chunk_id("c").to_hex()].into();
    assert_eq!(damaged, expected);
    let packs: BTreeSet<String> = report.damaged_packs.iter().cloned().collect();
    assert_eq!(packs, [hurt.to_hex(), lost.to_hex()].into());
    assert_eq!(report.damaged_snapshots, [snap.to_hex()]);
    assert!(vault.is_damaged(&snap).await.unwrap());
    assert!(!vault.is_damaged(&healthy).await.unwrap());
    // Bad chunks count as missing, so the next backup uploads them again.
    assert_eq!(missing_names(&vault, &["a", "b", "c"]).await, ["a", "c"]);
    backup(&vault, &["a", "b", "c"], 3).await;
    assert!(!vault.is_damaged(&snap).await.unwrap());
    tick().await;
    // GC replaces the damaged pack, whatever its dead space: its good blob `b` moves out
    // and the object goes; the lost pack, now without chunks, is dropped.
    let report = vault
        .gc(GcOptions {
            max_unused: 1.0,
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(
        (report.packs_repacked, report.packs_deleted),
        (1, 1),
        "{report:?}"
    );
    let names = fx.object_names("v").await;
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(&hurt.to_hex()) || n.ends_with(&lost.to_hex()))
    );
    let report = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Rewrites one byte of a stored pack, as bit rot would.
async fn flip_byte(fx: &Fixture, pack: &PackId, at: impl FnOnce(&[u8]) -> usize) {
    let o = fx.objects("v");
    let path = o.pack(pack);
    let mut bytes = o.store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    let i = at(&bytes);
    bytes[i] ^= 0x20;
    o.store.put(&path, PutPayload::from(bytes)).await.unwrap();
}

/// Where blob `name` ends in a pack's bytes.
fn end_of(bytes: &[u8], name: &str) -> usize {
    let entries = kura_format::pack::parse_pack(bytes).unwrap();
    let e = entries.iter().find(|e| e.id == chunk_id(name)).unwrap();
    (e.offset + e.length - 1) as usize
}

async fn repair_heals_what_it_can(fx: &Fixture) {
    let vault = fx.create("v").await;
    let session = vault.open_session(None).await.unwrap();
    let hurt = upload(&vault, &session, &["a", "b"]).await.unwrap();
    let (m, r) = manifest(&["a", "b"], 1, None);
    let snap = vault.commit(&session, &m, &r).await.unwrap();
    flip_byte(fx, &hurt, |b| end_of(b, "a")).await;

    // The only copy of `a` is damaged: marked, its pack kept, the snapshot named.
    let report = vault.repair(None).await.unwrap();
    assert_eq!((report.chunks_marked, report.packs_checked), (1, 1), "{report:?}");
    assert_eq!(report.packs_kept, [hurt.to_hex()]);
    assert!(!report.is_healed());
    assert_eq!(report.remaining.damaged_snapshots, [snap.to_hex()]);
    assert_eq!(missing_names(&vault, &["a", "b"]).await, ["a"]);

    // A backup uploads `a` again; repair moves `b` out and the damaged pack goes.
    backup(&vault, &["a", "b"], 2).await;
    let report = vault.repair(None).await.unwrap();
    assert!(report.is_healed(), "{report:?}");
    assert_eq!(report.packs_rewritten, [hurt.to_hex()]);
    assert!(
        !fx.object_names("v")
            .await
            .iter()
            .any(|n| n.ends_with(&hurt.to_hex()))
    );
    let verified = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(
        verified.is_clean() && verified.warnings.is_empty(),
        "{verified:?}"
    );

    // A damaged trailer loses nothing: verify warns, repair rewrites the pack.
    let session = vault.open_session(None).await.unwrap();
    let trailer = upload(&vault, &session, &["t", "u"]).await.unwrap();
    let (m, r) = manifest(&["t", "u"], 3, None);
    vault.commit(&session, &m, &r).await.unwrap();
    flip_byte(fx, &trailer, |b| b.len() - 48 - 3).await;
    let verified = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(verified.is_clean(), "{verified:?}");
    assert_eq!(verified.repairable_packs, [trailer.to_hex()]);
    let report = vault.repair(None).await.unwrap();
    assert!(report.is_healed(), "{report:?}");
    assert_eq!(report.packs_rewritten, [trailer.to_hex()]);
    let verified = vault.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(
        verified.is_clean() && verified.repairable_packs.is_empty(),
        "{verified:?}"
    );
    let blob = vault.read_blob(&chunk_id("t")).await.unwrap();
    assert_eq!(codec().open(&chunk_id("t"), &blob).unwrap(), data("t"));

    // A stale mark on a whole chunk (left by an older check) is cleared.
    vault.mark_bad(&[chunk_id("u")].into()).await.unwrap();
    let report = vault.repair(None).await.unwrap();
    assert!(report.is_healed(), "{report:?}");
    assert_eq!(report.marks_cleared, 1, "{report:?}");

    // A damaged chunk with a whole copy in another pack is pointed at the copy.
    let session = vault.open_session(None).await.unwrap();
    let first = upload(&vault, &session, &["s"]).await.unwrap();
    let (_, copy) = pack(&["s", "w"]);
    vault.put_pack(&session, copy).await.unwrap();
    let (m, r) = manifest(&["s", "w"], 4, None);
    let with_copy = vault.commit(&session, &m, &r).await.unwrap();
    flip_byte(fx, &first, |b| end_of(b, "s")).await;
    let report = vault.repair(None).await.unwrap();
    assert!(report.is_healed(), "{report:?}");
    assert_eq!((report.chunks_marked, report.marks_cleared), (1, 1), "{report:?}");
    assert!(!vault.is_damaged(&with_copy).await.unwrap());
    let blob = vault.read_blob(&chunk_id("s")).await.unwrap();
    assert_eq!(codec().open(&chunk_id("s"), &blob).unwrap(), data("s"));
}

async fn idle_sessions_expire_unless_heartbeats_keep_them(fx: &Fixture) {
    let vault = fx.create("v").await;
    vault.set_session_idle_expiry(Duration::from_millis(300));
    let session = vault.open_session(None).await.unwrap();
    upload(&vault, &session, &["a"]).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        vault.heartbeat(&session).await.unwrap();
    }
    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(
        report.chunks_deleted, 0,
        "a live session keeps its uploads: {report:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = vault.gc(gc_all()).await.unwrap();
    assert_eq!(
        (report.chunks_deleted, report.packs_deleted),
        (1, 1),
        "a silent session's uploads are reclaimed: {report:?}"
    );
    assert!(unknown(vault.heartbeat(&session).await));
}

async fn usage(fx: &Fixture) {
    let vault = fx.create("v").await;
    assert_eq!(vault.usage().await.unwrap(), Default::default());
    backup(&vault, &["a", "b"], 1).await;
    backup(&vault, &["b", "c"], 2).await;
    let usage = vault.usage().await.unwrap();
    assert_eq!((usage.snapshots, usage.packs, usage.chunks), (2, 2, 3));
    assert_eq!(usage.logical_bytes, 2000);
    assert_eq!(usage.raw_bytes, 3 * data("a").len() as u64);
    let stored: u64 = [pack(&["a", "b"]).1.len(), pack(&["c"]).1.len()]
        .iter()
        .sum::<usize>() as u64;
    assert_eq!(usage.stored_bytes, stored);
}

/// Two vaults in one database and one store never see each other's rows or objects.
async fn vaults_are_isolated(fx: &Fixture) {
    let one = fx.create("1").await;
    // `10` shares `1` as a string prefix: a prefix match on names would mix them up.
    let ten = fx.create("10").await;
    let snap = backup(&one, &["a", "b"], 1).await;
    let session = one.open_session(None).await.unwrap();
    upload(&one, &session, &["p"]).await;

    // Dedup stays inside a vault.
    assert_eq!(missing_names(&ten, &["a", "b", "p"]).await, ["a", "b", "p"]);
    assert!(ten.snapshots().await.unwrap().is_empty());
    assert!(matches!(
        ten.resolve("latest").await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        ten.resolve(&snap.to_hex()).await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        ten.manifest(&snap).await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        ten.forget(&[snap]).await,
        Err(StoreError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        ten.missing(&session, &[chunk_id("a")]).await,
        Err(StoreError::UnknownSession(_))
    ));
    assert!(matches!(
        ten.read_blob(&chunk_id("a")).await,
        Err(StoreError::MissingChunk(_))
    ));
    assert_eq!(ten.usage().await.unwrap(), Default::default());
    let ten_session = ten.open_session(None).await.unwrap();
    let (m, r) = manifest(&["a", "b"], 1, None);
    rejected(ten.commit(&ten_session, &m, &r).await);
    assert_eq!(ten.key_slots().await.unwrap().len(), 1);

    // The same snapshot in both vaults: same ids, separate rows.
    upload(&ten, &ten_session, &["a", "b"]).await.unwrap();
    assert_eq!(ten.commit(&ten_session, &m, &r).await.unwrap(), snap);
    one.forget(&[snap]).await.unwrap();
    one.abort_session(&session).await.unwrap();
    assert_eq!(ten.resolve("latest").await.unwrap(), snap);

    // GC and verify of one vault leave the other whole.
    tick().await;
    let ten_objects = fx.object_names("10").await;
    let report = one.gc(gc_all()).await.unwrap();
    assert_eq!(report.chunks_deleted, 3, "{report:?}");
    assert_eq!(fx.object_names("10").await, ten_objects);
    assert!(missing_names(&ten, &["a", "b"]).await.is_empty());
    let verified = ten.verify(VerifyScope { read_data: true }, None).await.unwrap();
    assert!(verified.is_clean(), "{verified:?}");
    assert_eq!(ten.usage().await.unwrap().chunks, 2);
    assert_eq!(one.usage().await.unwrap().chunks, 0);
}

/// GC and verify only ever look under their vault's prefix.
async fn objects_stay_in_prefix(fx: &Fixture) {
    let one = fx.create("1").await;
    let ten = fx.create("10").await;
    backup(&ten, &["a"], 1).await;
    let snap = backup(&one, &["a"], 1).await;
    // An object the catalog of `10` does not know, and one outside every vault.
    let (stray, bytes) = pack(&["s"]);
    let o = fx.objects("10");
    o.store
        .put(&o.pack(&stray), PutPayload::from(bytes.clone()))
        .await
        .unwrap();
    let outside = Path::from("t/test/other/packs/x");
    fx.store.put(&outside, PutPayload::from(bytes)).await.unwrap();
    let ten_objects = fx.object_names("10").await;

    // The same pack lives in both vaults; losing vault 1's copy is seen by vault 1.
    let (shared, _) = pack(&["a"]);
    let o = fx.objects("1");
    o.store.delete(&o.pack(&shared)).await.unwrap();
    let report = one.verify(VerifyScope::default(), None).await.unwrap();
    assert_eq!(report.damaged_packs, [shared.to_hex()]);
    assert!(ten.verify(VerifyScope::default(), None).await.unwrap().is_clean());

    one.forget(&[snap]).await.unwrap();
    o.store
        .put(&o.pack(&stray), PutPayload::from(pack(&["s"]).1))
        .await
        .unwrap();
    tick().await;
    let report = one.gc(gc_all()).await.unwrap();
    assert_eq!(report.orphans_deleted, 1, "{report:?}");
    assert_eq!(fx.object_names("10").await, ten_objects);
    fx.store.head(&outside).await.unwrap();
    let left = fx.data_objects("1").await;
    assert!(left.is_empty(), "{left:?}");
}

/// Erasing a vault deletes every object under its prefix and every catalog row, counts
/// what it found, leaves the vault next to it whole, and may run again.
async fn erase_leaves_nothing_of_the_vault(fx: &Fixture) {
    let one = fx.create("1").await;
    let ten = fx.create("10").await;
    backup(&one, &["a", "b"], 1).await;
    backup(&one, &["b", "c"], 2).await;
    let open = one.open_session(None).await.unwrap();
    upload(&one, &open, &["p"]).await;
    backup(&ten, &["a"], 1).await;
    let ten_objects = fx.object_names("10").await;

    let counted = kura_store::stored_objects(&fx.objects("1")).await.unwrap();
    let names = fx.object_names("1").await;
    assert_eq!(counted.objects, names.len() as u64);
    assert!(counted.objects >= 5 && counted.bytes > 0, "{counted:?}");

    let erased = kura_store::erase(&fx.objects("1"), &fx.catalog("1"))
        .await
        .unwrap();
    assert_eq!(erased, counted);
    assert!(fx.object_names("1").await.is_empty());
    assert!(matches!(fx.open("1").await, Err(StoreError::NoVault(_))));
    for table in CATALOG_TABLES {
        assert_eq!(fx.rows(table, "1").await, 0, "{table}");
    }
    let again = kura_store::erase(&fx.objects("1"), &fx.catalog("1"))
        .await
        .unwrap();
    assert_eq!(again, Default::default());

    assert_eq!(fx.object_names("10").await, ten_objects);
    assert_eq!(ten.snapshots().await.unwrap().len(), 1);
    assert!(fx.rows("vault_chunks", "10").await > 0);
}

/// A catalog rebuilt from storage alone lists every snapshot again and keeps a forgotten
/// one forgotten; rebuilt over a catalog older than storage (a restored copy), it picks up
/// the later backups and drops what storage no longer has; a second rebuild changes
/// nothing.
async fn rebuild_catalog_from_storage(fx: &Fixture) {
    let vault = fx.create("v").await;
    let first = backup(&vault, &["a", "b"], 1).await;
    let second = backup(&vault, &["b", "c"], 2).await;
    let third = backup(&vault, &["c", "d"], 3).await;
    vault.forget(&[second]).await.unwrap();
    let usage = vault.usage().await.unwrap();
    let slots = vault.key_slots().await.unwrap();
    drop(vault);
    fx.lose_catalog("v").await;
    assert!(matches!(fx.open("v").await, Err(StoreError::NoVault(_))));

    let rebuild = || Vault::rebuild_catalog(fx.objects("v"), fx.catalog("v"), "v".into(), true);
    let (vault, report) = rebuild().await.unwrap();
    assert!(report.config_restored, "{report:?}");
    assert_eq!(report.key_slots_restored, 1);
    assert_eq!(
        (report.packs_indexed, report.chunks_indexed),
        (3, 4),
        "{report:?}"
    );
    assert_eq!(
        (
            report.snapshots_restored,
            report.snapshots_restored_forgotten,
            report.snapshots
        ),
        (3, 1, 2),
        "{report:?}"
    );
    assert!(report.packs_unreadable.is_empty() && report.snapshots_unreadable.is_empty());
    assert!(report.snapshots_incomplete.is_empty(), "{report:?}");
    assert_eq!(vault.usage().await.unwrap(), usage);
    assert_eq!(vault.key_slots().await.unwrap(), slots);
    let ids: Vec<SnapshotId> = vault.snapshots().await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [first, third]);
    assert!(missing_names(&vault, &["a", "b", "c", "d"]).await.is_empty());
    assert!(
        vault
            .verify(VerifyScope { read_data: true }, None)
            .await
            .unwrap()
            .is_clean()
    );
    // The forgotten snapshot is still GC's to collect, tombstone and all.
    tick().await;
    assert_eq!(vault.gc(gc_all()).await.unwrap().snapshots_purged, 1);
    assert!(
        !fx.object_names("v")
            .await
            .iter()
            .any(|n| n.contains("/forgotten/"))
    );

    // A catalog older than storage: it lacks a later backup, and still lists a snapshot
    // and a pack whose objects are gone since.
    let session = vault.open_session(None).await.unwrap();
    upload(&vault, &session, &["e"]).await;
    let (m, r) = manifest(&["e"], 4, None);
    let fourth = vault.commit(&session, &m, &r).await.unwrap();
    fx.sql(
        "DELETE FROM vault_snapshots WHERE vault = $1 AND manifest = $2",
        "v",
        &m,
    )
    .await;
    let o = fx.objects("v");
    let e_pack = vault.locate(&[chunk_id("e")]).await.unwrap()[&chunk_id("e")].0;
    fx.sql(
        "DELETE FROM vault_chunks WHERE vault = $1 AND pack = $2",
        "v",
        &e_pack.0,
    )
    .await;
    fx.sql(
        "DELETE FROM vault_packs WHERE vault = $1 AND id = $2",
        "v",
        &e_pack.0,
    )
    .await;
    let d_pack = vault.locate(&[chunk_id("d")]).await.unwrap()[&chunk_id("d")].0;
    o.store.delete(&o.pack(&d_pack)).await.unwrap();
    o.store.delete(&o.manifest(&first)).await.unwrap();
    drop(vault);

    let (vault, report) = rebuild().await.unwrap();
    assert!(!report.config_restored);
    assert_eq!(
        (report.packs_indexed, report.chunks_indexed, report.packs_missing),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        (
            report.snapshots_restored,
            report.snapshots_dropped,
            report.snapshots
        ),
        (1, 1, 2),
        "{report:?}"
    );
    assert_eq!(
        report.snapshots_incomplete,
        [third.to_hex()],
        "third lost chunk d"
    );
    let ids: Vec<SnapshotId> = vault.snapshots().await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [third, fourth]);
    assert_eq!(missing_names(&vault, &["c", "d", "e"]).await, ["d"]);
    assert!(vault.is_damaged(&third).await.unwrap());

    let (_, again) = rebuild().await.unwrap();
    assert_eq!(
        again,
        kura_store::RebuildReport {
            snapshots: 2,
            snapshots_incomplete: vec![third.to_hex()],
            ..Default::default()
        }
    );
}

/// Without a configuration object there is nothing to rebuild from.
async fn rebuild_needs_a_vault_in_storage(fx: &Fixture) {
    let Err(err) = Vault::rebuild_catalog(fx.objects("none"), fx.catalog("none"), "none".into(), true).await
    else {
        panic!("rebuilt a vault storage does not hold");
    };
    assert!(
        matches!(&err, StoreError::NoVault(m) if m.contains("no vault configuration")),
        "{err}"
    );
}

/// Runs each named test on every backend: `sqlite::NAME`, `postgres::NAME` and `s3::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run(crate::Backend::Sqlite, crate::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run(crate::Backend::Postgres, crate::$name).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run(crate::Backend::S3, crate::$name).await
                }
            )*
        }
    };
}

conformance!(
    create_and_open,
    sessions,
    missing,
    put_pack_and_adopt,
    commit_checks_references,
    resolve,
    snapshot_pages,
    forget_and_gc_with_open_session,
    gc_sweeps_past_its_pages_and_windows,
    orphans_and_repack,
    verify_marks_damage,
    repair_heals_what_it_can,
    idle_sessions_expire_unless_heartbeats_keep_them,
    usage,
    vaults_are_isolated,
    objects_stay_in_prefix,
    erase_leaves_nothing_of_the_vault,
    rebuild_catalog_from_storage,
    rebuild_needs_a_vault_in_storage,
);
