//! The conformance suite of the database layer: every test runs on SQLite (a fresh file)
//! and on PostgreSQL (a fresh schema in `KURA_TEST_POSTGRES_URL`, default
//! `postgres://root@127.0.0.1:5432/test`, dropped afterwards). [`Api`] runs each area's
//! function in a transaction of its own, as the operations do.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::authz::{OperatorPrincipal, ProviderRole, TenantRole, TenantScope};
use crate::ids::{MachineId, OperatorId, TenantId, UserId};
use crate::model::*;
use crate::secrets::random_hex;

const HOUR_MS: i64 = 3_600_000;
const T0: i64 = 1_800_000_000_000;

/// A database for one test, removed when dropped.
struct TestDb {
    db: Arc<Api>,
    /// The database's URL, for tests that go around the database layer (tampering).
    url: String,
    /// Held so the database lives as long as the test.
    _storage: Storage,
}

enum Storage {
    Sqlite(#[allow(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres(#[allow(dead_code, reason = "held for its Drop")] kura_testing::postgres::PgSchema),
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("service.db").display());
    TestDb {
        db: Arc::new(Api(Db::connect(&url).await.unwrap())),
        url,
        _storage: Storage::Sqlite(dir),
    }
}

async fn postgres() -> TestDb {
    let schema = kura_testing::postgres::PgSchema::create("t").await;
    let url = schema.url();
    TestDb {
        db: Arc::new(Api(Db::connect(&url).await.unwrap())),
        url,
        _storage: Storage::Postgres(schema),
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test_db = super::sqlite().await;
                    super::$name(test_db.db.clone()).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn audit_verify_finds_edited_and_deleted_rows() {
                let test_db = super::sqlite().await;
                let raw = super::RawPool::Sqlite(sqlx::SqlitePool::connect(&test_db.url).await.unwrap());
                super::audit_verify_finds_edited_and_deleted_rows(test_db.db.clone(), raw).await;
            }
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test_db = super::postgres().await;
                    super::$name(test_db.db.clone()).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn audit_verify_finds_edited_and_deleted_rows() {
                let test_db = super::postgres().await;
                let raw = super::RawPool::Postgres(sqlx::PgPool::connect(&test_db.url).await.unwrap());
                super::audit_verify_finds_edited_and_deleted_rows(test_db.db.clone(), raw).await;
            }
        }
    };
}

both_backends!(
    operator_tokens_are_found_by_hash,
    tenants_are_created_listed_updated_and_suspended,
    service_codes_and_logins_are_unique,
    registration_tokens_work_once_and_expire,
    machine_quota_counts_unrevoked_machines,
    concurrent_registrations_respect_the_quota,
    agent_credentials_resolve_and_revoke,
    inactive_tenants_and_foreign_networks_cannot_register,
    tenant_scope_isolates_tenants,
    sessions_and_snapshots_belong_to_one_machine,
    users_are_created_updated_disabled_and_deleted,
    sessions_and_api_tokens_resolve_and_revoke,
    login_failures_count_by_login_and_source,
    events_chain_per_tenant_and_for_operators,
    usage_keeps_one_row_per_day,
    each_job_is_claimed_once_by_concurrent_runners,
    a_tenants_jobs_run_one_at_a_time,
    expired_leases_are_taken_over_and_abandoned_runs_fail,
    jobs_are_deduplicated_released_and_scheduled_once,
    the_outbox_retries_sends_and_gives_up,
);

fn operator() -> OperatorPrincipal {
    OperatorPrincipal::for_tests()
}

fn new_tenant(code: &str, max_machines: u32) -> NewTenant {
    NewTenant {
        id: TenantId::generate(),
        service_code: code.to_owned(),
        name: format!("{code} Corp"),
        quota_bytes: 500 << 30,
        max_machines,
        region: "tokyo-1".to_owned(),
        encryption_required: false,
        immutable_days: 0,
        agent_networks: Vec::new(),
        time_zone: "Asia/Tokyo".to_owned(),
    }
}

fn admin(login: &str) -> NewTenantUser {
    NewTenantUser {
        login: login.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: TenantRole::Admin,
        email: None,
    }
}

async fn create(db: &Api, code: &str, max_machines: u32) -> (TenantRecord, TenantScope) {
    let tenant = db
        .create_tenant(
            &operator(),
            &new_tenant(code, max_machines),
            &admin(&format!("{code}-admin")),
            T0,
        )
        .await
        .unwrap();
    let scope = TenantScope::for_tests(tenant.id.clone());
    (tenant, scope)
}

/// Issues a token valid for an hour from `T0`; returns its hash.
async fn token(db: &Api, scope: &TenantScope) -> String {
    let hash = random_hex(32);
    db.insert_registration_token(scope, &hash, T0, T0 + HOUR_MS)
        .await
        .unwrap();
    hash
}

fn machine(token_hash: &str, peer: Option<IpAddr>) -> NewMachine {
    NewMachine {
        registration_token_hash: token_hash.to_owned(),
        machine_id: MachineId::generate(),
        name: "web-01".to_owned(),
        credential_hash: random_hex(32),
        peer,
    }
}

async fn register(db: &Api, scope: &TenantScope) -> (MachineId, String) {
    let request = machine(&token(db, scope).await, None);
    match db.register_machine(&request, T0 + 1).await.unwrap() {
        RegistrationOutcome::Registered { machine_id, .. } => (machine_id, request.credential_hash),
        other => panic!("registration failed: {other:?}"),
    }
}

async fn operator_tokens_are_found_by_hash(db: Arc<Api>) {
    assert_eq!(db.count_operator_tokens().await.unwrap(), 0);
    db.insert_operator_token(None, "bootstrap", ProviderRole::Operator, "hash-a", T0)
        .await
        .unwrap();
    assert_eq!(db.count_operator_tokens().await.unwrap(), 1);
    let found = db.operator_token("hash-a").await.unwrap().unwrap();
    assert_eq!(found.token.name, "bootstrap");
    assert_eq!(found.token.role, ProviderRole::Operator);
    assert_eq!((found.token.operator_id, found.owner_role), (None, None));
    assert!(db.operator_token("hash-b").await.unwrap().is_none());

    // A token of an account carries its owner's state; login IDs are unique.
    let alice = OperatorId::generate();
    db.create_operator(&alice, "alice", ProviderRole::OperatorAdmin)
        .await
        .unwrap();
    let taken = db
        .create_operator(&OperatorId::generate(), "alice", ProviderRole::Operator)
        .await;
    assert!(matches!(taken, Err(DbError::Conflict(_))), "{taken:?}");
    let id = db
        .insert_operator_token(Some(&alice), "ci", ProviderRole::Operator, "hash-c", T0)
        .await
        .unwrap();
    let found = db.operator_token("hash-c").await.unwrap().unwrap();
    assert_eq!(found.token.owner_login.as_deref(), Some("alice"));
    assert_eq!(found.token.expires_ms, Some(T0 + 1000));
    assert_eq!(found.owner_role, Some(ProviderRole::OperatorAdmin));
    assert!(!found.owner_disabled);
    assert!(db.disable_operator(&alice, Some(T0)).await.unwrap());
    assert!(db.operator_token("hash-c").await.unwrap().unwrap().owner_disabled);
    let candidate = db.operator_candidate("alice").await.unwrap().unwrap();
    assert!(candidate.disabled && !candidate.password_changed && candidate.totp_secret.is_none());
    assert!(db.operator_candidate("bob").await.unwrap().is_none());

    // Listing: one owner's, or all; revoking only one's own.
    assert_eq!(db.operator_tokens(Some(&alice)).await.unwrap().len(), 1);
    assert_eq!(db.operator_tokens(None).await.unwrap().len(), 2);
    let stranger = OperatorId::generate();
    assert!(!db.revoke_operator_token(&id, Some(&stranger)).await.unwrap());
    assert!(db.revoke_operator_token(&id, Some(&alice)).await.unwrap());
    assert!(
        !db.revoke_operator_token(&id, None).await.unwrap(),
        "already revoked"
    );
    assert!(db.operator_token("hash-c").await.unwrap().is_none());
}

async fn tenants_are_created_listed_updated_and_suspended(db: Arc<Api>) {
    let mut wanted = new_tenant("ACME-0001", 5);
    wanted.agent_networks = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
    wanted.encryption_required = true;
    wanted.immutable_days = 30;
    wanted.quota_bytes = i64::MAX as u64;
    let tenant = db
        .create_tenant(&operator(), &wanted, &admin("acme-0001-admin"), T0)
        .await
        .unwrap();
    assert_eq!(tenant.id, wanted.id);
    assert_eq!(tenant.service_code, "ACME-0001");
    assert_eq!(tenant.quota_bytes, i64::MAX as u64);
    assert_eq!(tenant.agent_networks, wanted.agent_networks);
    assert!(tenant.encryption_required);
    assert_eq!(tenant.immutable_days, 30);
    assert_eq!(tenant.status, TenantStatus::Active);
    assert_eq!(tenant.time_zone, "Asia/Tokyo");
    assert_eq!(tenant.created_ms, T0);

    let (other, _) = create(db.as_ref(), "BETA-0002", 1).await;
    let listed = db.list_tenants(&operator()).await.unwrap();
    assert_eq!(listed, vec![tenant.clone(), other]);
    let by_code = db.tenant_by_service_code(&operator(), "ACME-0001").await.unwrap();
    assert_eq!(by_code.as_ref(), Some(&tenant));
    assert!(
        db.tenant_by_service_code(&operator(), "NONE-0000")
            .await
            .unwrap()
            .is_none()
    );

    let scope = TenantScope::for_tests(tenant.id.clone());
    assert_eq!(db.tenant(&scope).await.unwrap().as_ref(), Some(&tenant));
    let users = db.tenant_users(&scope).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].login.as_str(), users[0].role),
        ("acme-0001-admin", TenantRole::Admin)
    );

    let update = TenantUpdate {
        name: Some("ACME Holdings".to_owned()),
        max_machines: Some(9),
        agent_networks: Some(Vec::new()),
        ..TenantUpdate::default()
    };
    let updated = db.update_tenant(&scope, &update).await.unwrap().unwrap();
    assert_eq!(updated.name, "ACME Holdings");
    assert_eq!(updated.max_machines, 9);
    assert!(updated.agent_networks.is_empty());
    assert_eq!(
        updated.quota_bytes, tenant.quota_bytes,
        "fields not given are kept"
    );
    assert_eq!(updated.region, tenant.region);
    assert!(updated.encryption_required);

    let suspended = db
        .set_tenant_status(&scope, TenantStatus::Suspended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_eq!(
        db.tenant(&scope).await.unwrap().unwrap().status,
        TenantStatus::Suspended
    );

    let nobody = TenantScope::for_tests(TenantId::generate());
    assert!(db.tenant(&nobody).await.unwrap().is_none());
    assert!(db.update_tenant(&nobody, &update).await.unwrap().is_none());
    assert!(
        db.set_tenant_status(&nobody, TenantStatus::Active)
            .await
            .unwrap()
            .is_none()
    );
}

async fn service_codes_and_logins_are_unique(db: Arc<Api>) {
    create(db.as_ref(), "ACME-0001", 1).await;
    let duplicate_code = db
        .create_tenant(
            &operator(),
            &new_tenant("ACME-0001", 1),
            &admin("someone-else"),
            T0,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&duplicate_code, DbError::Conflict(message) if message.contains("service code ACME-0001")),
        "{duplicate_code:?}"
    );
    let duplicate_login = db
        .create_tenant(
            &operator(),
            &new_tenant("BETA-0002", 1),
            &admin("ACME-0001-admin"),
            T0,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&duplicate_login, DbError::Conflict(message) if message.contains("login ACME-0001-admin")),
        "{duplicate_login:?}"
    );
    // The failed creation left nothing behind.
    assert!(
        db.tenant_by_service_code(&operator(), "BETA-0002")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.list_tenants(&operator()).await.unwrap().len(), 1);
}

async fn registration_tokens_work_once_and_expire(db: Arc<Api>) {
    let (tenant, scope) = create(db.as_ref(), "ACME-0001", 10).await;
    let hash = token(db.as_ref(), &scope).await;
    assert!(db.registration_token_usable(&scope, &hash, T0).await.unwrap());

    let first = machine(&hash, None);
    let outcome = db.register_machine(&first, T0 + 10).await.unwrap();
    assert_eq!(
        outcome,
        RegistrationOutcome::Registered {
            tenant_id: tenant.id.clone(),
            machine_id: first.machine_id.clone(),
        }
    );
    assert!(
        !db.registration_token_usable(&scope, &hash, T0 + 20)
            .await
            .unwrap()
    );
    let again = db.register_machine(&machine(&hash, None), T0 + 20).await.unwrap();
    assert_eq!(again, RegistrationOutcome::TokenUsed);

    let late = token(db.as_ref(), &scope).await;
    assert!(
        !db.registration_token_usable(&scope, &late, T0 + HOUR_MS)
            .await
            .unwrap()
    );
    let expired = db
        .register_machine(&machine(&late, None), T0 + HOUR_MS)
        .await
        .unwrap();
    assert_eq!(expired, RegistrationOutcome::TokenExpired);

    let unknown = db
        .register_machine(&machine("no-such-hash", None), T0)
        .await
        .unwrap();
    assert_eq!(unknown, RegistrationOutcome::UnknownToken);

    let machines = db.machines(&scope).await.unwrap();
    assert_eq!(
        machines.len(),
        1,
        "only the successful registration created a machine"
    );
    assert_eq!(machines[0].id, first.machine_id);
    assert_eq!(machines[0].name, "web-01");
    assert_eq!(machines[0].revoked_ms, None);
}

async fn machine_quota_counts_unrevoked_machines(db: Arc<Api>) {
    let (_, scope) = create(db.as_ref(), "ACME-0001", 2).await;
    let (first, _) = register(db.as_ref(), &scope).await;
    register(db.as_ref(), &scope).await;

    let hash = token(db.as_ref(), &scope).await;
    let refused = db.register_machine(&machine(&hash, None), T0 + 1).await.unwrap();
    assert_eq!(
        refused,
        RegistrationOutcome::MachineLimitReached { max_machines: 2 }
    );
    assert!(
        db.registration_token_usable(&scope, &hash, T0 + 1).await.unwrap(),
        "a refused registration does not use up the token"
    );

    assert!(db.revoke_machine(&scope, &first, T0 + 2).await.unwrap());
    assert!(
        !db.revoke_machine(&scope, &first, T0 + 3).await.unwrap(),
        "already revoked"
    );
    let admitted = db.register_machine(&machine(&hash, None), T0 + 4).await.unwrap();
    assert!(
        matches!(admitted, RegistrationOutcome::Registered { .. }),
        "{admitted:?}"
    );
}

async fn concurrent_registrations_respect_the_quota(db: Arc<Api>) {
    let (_, scope) = create(db.as_ref(), "ACME-0001", 3).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let hash = token(db.as_ref(), &scope).await;
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.register_machine(&machine(&hash, None), T0 + 1).await
        }));
    }
    let mut registered = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RegistrationOutcome::Registered { .. } => registered += 1,
            RegistrationOutcome::MachineLimitReached { max_machines: 3 } => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(registered, 3);
    assert_eq!(db.machines(&scope).await.unwrap().len(), 3);
}

async fn agent_credentials_resolve_and_revoke(db: Arc<Api>) {
    let mut wanted = new_tenant("ACME-0001", 5);
    wanted.agent_networks = vec!["192.0.2.0/24".parse().unwrap()];
    let tenant = db
        .create_tenant(&operator(), &wanted, &admin("a"), T0)
        .await
        .unwrap();
    let scope = TenantScope::for_tests(tenant.id.clone());
    let request = machine(
        &token(db.as_ref(), &scope).await,
        Some("192.0.2.9".parse().unwrap()),
    );
    db.register_machine(&request, T0 + 1).await.unwrap();

    let identity = db
        .agent_by_credential(&request.credential_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        identity,
        AgentIdentity {
            tenant_id: tenant.id.clone(),
            machine_id: request.machine_id.clone(),
            credential_revoked: false,
            tenant_status: TenantStatus::Active,
            agent_networks: wanted.agent_networks.clone(),
            last_seen_ms: None,
            tenant_time_zone: tenant.time_zone.clone(),
        }
    );
    assert!(db.agent_by_credential("unknown").await.unwrap().is_none());

    db.set_tenant_status(&scope, TenantStatus::Suspended)
        .await
        .unwrap();
    let identity = db
        .agent_by_credential(&request.credential_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.tenant_status, TenantStatus::Suspended);

    assert!(
        db.revoke_machine(&scope, &request.machine_id, T0 + 2)
            .await
            .unwrap()
    );
    let identity = db
        .agent_by_credential(&request.credential_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(identity.credential_revoked);
    assert_eq!(db.machines(&scope).await.unwrap()[0].revoked_ms, Some(T0 + 2));
}

async fn inactive_tenants_and_foreign_networks_cannot_register(db: Arc<Api>) {
    let mut wanted = new_tenant("ACME-0001", 5);
    wanted.agent_networks = vec!["198.51.100.0/24".parse().unwrap()];
    let tenant = db
        .create_tenant(&operator(), &wanted, &admin("a"), T0)
        .await
        .unwrap();
    let scope = TenantScope::for_tests(tenant.id);

    let hash = token(db.as_ref(), &scope).await;
    let outside = db
        .register_machine(&machine(&hash, Some("203.0.113.5".parse().unwrap())), T0 + 1)
        .await
        .unwrap();
    assert_eq!(outside, RegistrationOutcome::PeerOutsideAgentNetworks);
    let unknown_peer = db.register_machine(&machine(&hash, None), T0 + 1).await.unwrap();
    assert_eq!(unknown_peer, RegistrationOutcome::PeerOutsideAgentNetworks);
    assert!(db.registration_token_usable(&scope, &hash, T0 + 1).await.unwrap());

    db.set_tenant_status(&scope, TenantStatus::Suspended)
        .await
        .unwrap();
    let inside = machine(&hash, Some("198.51.100.7".parse().unwrap()));
    let suspended = db.register_machine(&inside, T0 + 2).await.unwrap();
    assert_eq!(
        suspended,
        RegistrationOutcome::TenantNotActive(TenantStatus::Suspended)
    );

    db.set_tenant_status(&scope, TenantStatus::Active).await.unwrap();
    let admitted = db.register_machine(&inside, T0 + 3).await.unwrap();
    assert!(
        matches!(admitted, RegistrationOutcome::Registered { .. }),
        "{admitted:?}"
    );
}

async fn tenant_scope_isolates_tenants(db: Arc<Api>) {
    let (tenant_a, scope_a) = create(db.as_ref(), "ACME-0001", 5).await;
    let (tenant_b, scope_b) = create(db.as_ref(), "BETA-0002", 5).await;
    let (machine_a, _) = register(db.as_ref(), &scope_a).await;
    let (machine_b, _) = register(db.as_ref(), &scope_b).await;

    let machines_a: Vec<MachineId> = db
        .machines(&scope_a)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(machines_a, vec![machine_a.clone()]);
    assert!(
        !db.revoke_machine(&scope_a, &machine_b, T0).await.unwrap(),
        "tenant A's scope cannot revoke tenant B's machine"
    );
    assert_eq!(db.machines(&scope_b).await.unwrap()[0].revoked_ms, None);

    let users_b = db.tenant_users(&scope_b).await.unwrap();
    assert_eq!(users_b.len(), 1);
    assert_eq!(users_b[0].login, "BETA-0002-admin");

    let hash_b = token(db.as_ref(), &scope_b).await;
    assert!(!db.registration_token_usable(&scope_a, &hash_b, T0).await.unwrap());
    assert!(db.registration_token_usable(&scope_b, &hash_b, T0).await.unwrap());

    let rename = TenantUpdate {
        name: Some("renamed".to_owned()),
        ..TenantUpdate::default()
    };
    db.update_tenant(&scope_a, &rename).await.unwrap();
    db.set_tenant_status(&scope_a, TenantStatus::Suspended)
        .await
        .unwrap();
    let b_now = db.tenant(&scope_b).await.unwrap().unwrap();
    assert_eq!(b_now, tenant_b, "changes through A's scope leave B untouched");
    assert_eq!(db.tenant(&scope_a).await.unwrap().unwrap().id, tenant_a.id);
}

async fn sessions_and_snapshots_belong_to_one_machine(db: Arc<Api>) {
    let (_, scope_a) = create(db.as_ref(), "ACME-0001", 5).await;
    let (_, scope_b) = create(db.as_ref(), "BETA-0002", 5).await;
    let (web, _) = register(db.as_ref(), &scope_a).await;
    let (mail, _) = register(db.as_ref(), &scope_a).await;
    let session = random_hex(16);
    let snapshot = random_hex(32);

    db.record_session(&scope_a, &session, &web, T0).await.unwrap();
    assert_eq!(
        db.session_machine(&scope_a, &session).await.unwrap(),
        Some(web.clone())
    );
    assert_eq!(
        db.session_machine(&scope_b, &session).await.unwrap(),
        None,
        "another tenant's scope does not see the session"
    );

    assert!(db.claim_snapshot(&scope_a, &snapshot, &web, T0).await.unwrap());
    assert!(
        db.claim_snapshot(&scope_a, &snapshot, &web, T0).await.unwrap(),
        "claiming one's own snapshot again is harmless"
    );
    assert!(
        !db.claim_snapshot(&scope_a, &snapshot, &mail, T0).await.unwrap(),
        "another machine cannot take it over"
    );
    assert_eq!(
        db.machine_snapshots(&scope_a, &web).await.unwrap(),
        vec![snapshot.clone()]
    );
    assert!(db.machine_snapshots(&scope_a, &mail).await.unwrap().is_empty());
    assert!(db.machine_snapshots(&scope_b, &web).await.unwrap().is_empty());

    // Only committed snapshots count; the newest of each source stands for it.
    assert!(snapshots::latest(&db.0, &scope_a).await.unwrap().is_empty());
    snapshots::set_committed(&db.0, &scope_a, &snapshot, true)
        .await
        .unwrap();
    let newer = random_hex(32);
    let mut later = facts("/etc", 2);
    later.bytes_added = 7;
    db.claim_facts(&scope_a, &newer, &web, &later).await.unwrap();
    let other_source = random_hex(32);
    db.claim_facts(&scope_a, &other_source, &web, &facts("/srv", 3))
        .await
        .unwrap();
    snapshots::set_committed(&db.0, &scope_a, &newer, true)
        .await
        .unwrap();
    snapshots::set_committed(&db.0, &scope_a, &other_source, true)
        .await
        .unwrap();
    let latest = snapshots::latest(&db.0, &scope_a).await.unwrap();
    assert_eq!(
        latest
            .iter()
            .map(|l| (l.snapshot_id.as_str(), l.facts.source.as_str()))
            .collect::<Vec<_>>(),
        [(newer.as_str(), "/etc"), (other_source.as_str(), "/srv")]
    );
    let activity = snapshots::activity(&db.0, &scope_a).await.unwrap();
    assert_eq!(
        activity[&web],
        MachineActivity {
            snapshots: 3,
            bytes_added: 100 + 7 + 100,
            last_backup_ns: Some(3),
        }
    );
    assert!(!activity.contains_key(&mail));
    assert!(snapshots::activity(&db.0, &scope_b).await.unwrap().is_empty());
    snapshots::set_committed(&db.0, &scope_a, &other_source, false)
        .await
        .unwrap();
    assert_eq!(snapshots::committed_count(&db.0, &scope_a).await.unwrap(), 2);
    assert_eq!(snapshots::latest(&db.0, &scope_a).await.unwrap().len(), 1);
}

fn facts(source: &str, time_ns: i64) -> SnapshotFacts {
    SnapshotFacts {
        time_ns,
        kind: kura_format::SnapshotKind::Files,
        source: source.to_owned(),
        bytes: 1000,
        bytes_added: 100,
        errors: 0,
    }
}

fn user(login: &str, role: TenantRole) -> NewTenantUser {
    NewTenantUser { role, ..admin(login) }
}

async fn users_are_created_updated_disabled_and_deleted(db: Arc<Api>) {
    let (_, scope_a) = create(db.as_ref(), "ACME-0001", 1).await;
    let (_, scope_b) = create(db.as_ref(), "BETA-0002", 1).await;
    let alice = db
        .create_user(&scope_a, &user("alice", TenantRole::Auditor), T0)
        .await
        .unwrap();
    assert_eq!(
        (alice.login.as_str(), alice.role, alice.disabled_ms),
        ("alice", TenantRole::Auditor, None)
    );
    let taken = db
        .create_user(&scope_b, &user("alice", TenantRole::Admin), T0)
        .await;
    assert!(
        matches!(taken, Err(DbError::Conflict(_))),
        "logins are unique across tenants"
    );

    let candidate = db.login_candidate("alice").await.unwrap().unwrap();
    assert_eq!(candidate.user_id, alice.id);
    assert_eq!(candidate.tenant_id, *scope_a.tenant_id());
    assert!(
        !format!("{candidate:?}").contains("argon2"),
        "Debug hides the hash"
    );
    assert!(db.login_candidate("nobody").await.unwrap().is_none());

    let promote = UserUpdate {
        role: Some(TenantRole::Operator),
        disabled: Some(true),
        email: Some("alice@example.com".to_owned()),
    };
    assert!(
        db.update_user(&scope_b, &alice.id, &promote, T0)
            .await
            .unwrap()
            .is_none(),
        "tenant B's scope cannot touch tenant A's user"
    );
    let updated = db
        .update_user(&scope_a, &alice.id, &promote, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.role, updated.disabled_ms),
        (TenantRole::Operator, Some(T0 + 1))
    );
    assert_eq!(updated.email.as_deref(), Some("alice@example.com"));

    db.create_password_reset(&scope_a, &alice.id, "reset-hash", T0, T0 + HOUR_MS)
        .await
        .unwrap();
    assert_eq!(
        db.password_resets_since(&scope_a, &alice.id, T0).await.unwrap(),
        1
    );
    assert_eq!(
        db.password_resets_since(&scope_a, &alice.id, T0 + 1)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.password_resets_since(&scope_b, &alice.id, T0).await.unwrap(),
        0
    );
    let (tenant, user_id, login) = db
        .password_reset_user("reset-hash", T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&tenant, &user_id, login.as_str()),
        (scope_a.tenant_id(), &alice.id, "alice")
    );
    assert!(
        db.password_reset_user("reset-hash", T0 + HOUR_MS)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        !db.consume_password_reset(&scope_b, "reset-hash", T0 + 2)
            .await
            .unwrap()
    );
    assert!(
        db.consume_password_reset(&scope_a, "reset-hash", T0 + 2)
            .await
            .unwrap()
    );
    assert!(
        !db.consume_password_reset(&scope_a, "reset-hash", T0 + 3)
            .await
            .unwrap(),
        "single use"
    );
    assert!(
        db.password_reset_user("reset-hash", T0 + 4)
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.login_candidate("alice").await.unwrap().unwrap().disabled);
    let enable = UserUpdate {
        disabled: Some(false),
        ..UserUpdate::default()
    };
    let enabled = db
        .update_user(&scope_a, &alice.id, &enable, T0 + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((enabled.role, enabled.disabled_ms), (TenantRole::Operator, None));

    assert!(
        db.set_password(&scope_a, &alice.id, "new-hash", None, T0)
            .await
            .unwrap()
    );
    assert!(
        !db.set_password(&scope_b, &alice.id, "evil", None, T0)
            .await
            .unwrap()
    );
    assert_eq!(
        db.login_candidate("alice").await.unwrap().unwrap().password_hash,
        "new-hash"
    );

    assert!(!db.delete_user(&scope_b, &alice.id).await.unwrap());
    assert!(db.delete_user(&scope_a, &alice.id).await.unwrap());
    assert!(db.login_candidate("alice").await.unwrap().is_none());
    assert_eq!(db.tenant_users(&scope_a).await.unwrap().len(), 1);
}

async fn sessions_and_api_tokens_resolve_and_revoke(db: Arc<Api>) {
    let (_, scope_a) = create(db.as_ref(), "ACME-0001", 1).await;
    let (_, scope_b) = create(db.as_ref(), "BETA-0002", 1).await;
    let bob = db
        .create_user(&scope_a, &user("bob", TenantRole::Admin), T0)
        .await
        .unwrap();
    for id in ["s1", "s2"] {
        let session = NewUserSession {
            id: id.to_owned(),
            user_id: bob.id.clone(),
            session_hash: format!("hash-{id}"),
            csrf_hash: "csrf".to_owned(),
            source: "127.0.0.1".to_owned(),
        };
        db.create_user_session(&scope_a, &session, T0).await.unwrap();
    }
    let found = db.session_identity("hash-s1").await.unwrap().unwrap();
    assert_eq!(
        (found.login.as_str(), found.role, found.revoked),
        ("bob", TenantRole::Admin, false)
    );
    db.touch_user_session(&scope_a, "s1", T0 + 5).await.unwrap();
    assert_eq!(
        db.session_identity("hash-s1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        T0 + 5
    );
    assert!(!db.revoke_user_session(&scope_b, &bob.id, "s1", T0).await.unwrap());
    assert!(db.revoke_user_session(&scope_a, &bob.id, "s1", T0).await.unwrap());
    assert!(db.session_identity("hash-s1").await.unwrap().unwrap().revoked);
    assert_eq!(db.user_sessions(&scope_a, &bob.id).await.unwrap().len(), 2);

    let token = NewApiToken {
        id: "k1".to_owned(),
        user_id: bob.id.clone(),
        name: "backup script".to_owned(),
        role: TenantRole::Auditor,
        token_hash: "hash-k1".to_owned(),
        expires_ms: T0 + HOUR_MS,
    };
    db.create_api_token(&scope_a, &token, T0).await.unwrap();
    let identity = db.api_token_identity("hash-k1").await.unwrap().unwrap();
    assert_eq!(
        (identity.user_role, identity.token_role),
        (TenantRole::Admin, TenantRole::Auditor)
    );
    db.touch_api_token(&scope_a, "k1", T0 + 7).await.unwrap();
    let listed = db.api_tokens(&scope_a, Some(&bob.id)).await.unwrap();
    assert_eq!(listed[0].last_used_ms, Some(T0 + 7));
    assert!(db.api_tokens(&scope_b, None).await.unwrap().is_empty());
    assert!(!db.revoke_api_token(&scope_b, None, "k1", T0).await.unwrap());

    // A new password ends the other sessions and every token.
    assert!(
        db.set_password(&scope_a, &bob.id, "h", Some("s2"), T0 + 9)
            .await
            .unwrap()
    );
    assert!(!db.session_identity("hash-s2").await.unwrap().unwrap().revoked);
    assert!(db.api_token_identity("hash-k1").await.unwrap().unwrap().revoked);

    // Disabling ends sessions too.
    let disable = UserUpdate {
        disabled: Some(true),
        ..UserUpdate::default()
    };
    db.update_user(&scope_a, &bob.id, &disable, T0 + 10)
        .await
        .unwrap();
    let session = db.session_identity("hash-s2").await.unwrap().unwrap();
    assert!(session.revoked && session.user_disabled);
}

async fn login_failures_count_by_login_and_source(db: Arc<Api>) {
    for (login, source, at) in [
        ("eve", "192.0.2.1", T0),
        ("eve", "192.0.2.2", T0 + 10),
        ("mallory", "192.0.2.1", T0 + 20),
    ] {
        db.record_login_failure(login, source, at).await.unwrap();
    }
    let failures = db.login_failures("eve", "192.0.2.1", T0).await.unwrap();
    assert_eq!(
        failures,
        LoginFailures {
            by_login: 2,
            last_by_login_ms: Some(T0 + 10),
            by_source: 2,
            last_by_source_ms: Some(T0 + 20),
        }
    );
    assert_eq!(db.login_failures("eve", "x", T0 + 5).await.unwrap().by_login, 1);
    db.clear_login_failures("eve").await.unwrap();
    assert_eq!(
        db.login_failures("eve", "x", 0).await.unwrap(),
        LoginFailures::default()
    );
}

fn span(from_ms: i64, to_ms: i64) -> events::EventFilter {
    events::EventFilter {
        from_ms,
        to_ms,
        action: None,
        actor: None,
    }
}

fn event(action: &str, time_ms: i64) -> NewEvent {
    NewEvent {
        time_ms,
        actor: "alice".to_owned(),
        source: "127.0.0.1".to_owned(),
        action: action.to_owned(),
        target: "bob".to_owned(),
        result: "ok".to_owned(),
        request_id: "r".to_owned(),
    }
}

async fn events_chain_per_tenant_and_for_operators(db: Arc<Api>) {
    let (_, scope_a) = create(db.as_ref(), "ACME-0001", 1).await;
    let (_, scope_b) = create(db.as_ref(), "BETA-0002", 1).await;
    let appends = (0..20).map(|i| {
        let db = db.clone();
        let scope = if i % 2 == 0 {
            scope_a.clone()
        } else {
            scope_b.clone()
        };
        tokio::spawn(async move {
            db.append_event(events::Chain::tenant(&scope), &event("login", T0 + i))
                .await
        })
    });
    for append in appends.collect::<Vec<_>>() {
        append.await.unwrap().unwrap();
    }
    db.append_event(events::Chain::operators(), &event("operator.post", T0))
        .await
        .unwrap();
    let a = db.events(&scope_a, 0, i64::MAX).await.unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(
        a.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(
        a.iter()
            .all(|e| e.tenant_id.as_deref() == Some(scope_a.tenant_id().as_str()))
    );
    assert_eq!(db.events(&scope_a, T0 + 2, T0 + 6).await.unwrap().len(), 2);

    // Filters and pages: newest first, an action and an actor matched exactly.
    let mut other = event("logout", T0 + 30);
    other.actor = "carol".to_owned();
    db.append_event(events::Chain::tenant(&scope_a), &other)
        .await
        .unwrap();
    let everything = events::EventFilter::everything();
    let first = events::page(&db.0, events::Chain::tenant(&scope_a), &everything, None, 4)
        .await
        .unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [11, 10, 9, 8]);
    let second = events::page(&db.0, events::Chain::tenant(&scope_a), &everything, Some(8), 4)
        .await
        .unwrap();
    assert_eq!(second.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 6, 5, 4]);
    let logouts = events::EventFilter {
        action: Some("logout".to_owned()),
        ..everything.clone()
    };
    let found = events::list(&db.0, events::Chain::tenant(&scope_a), &logouts)
        .await
        .unwrap();
    assert_eq!((found.len(), found[0].event.actor.as_str()), (1, "carol"));
    let alices = events::EventFilter {
        actor: Some("alice".to_owned()),
        ..everything.clone()
    };
    assert_eq!(
        events::page(&db.0, events::Chain::tenant(&scope_a), &alices, None, 100)
            .await
            .unwrap()
            .len(),
        10
    );
    let nobody = events::EventFilter {
        actor: Some("alic".to_owned()),
        ..everything
    };
    assert!(
        events::list(&db.0, events::Chain::tenant(&scope_a), &nobody)
            .await
            .unwrap()
            .is_empty()
    );
    let verified = crate::audit::verify(&db.0).await.unwrap().unwrap();
    assert_eq!((verified.chains, verified.events), (3, 22));
}

async fn usage_keeps_one_row_per_day(db: Arc<Api>) {
    let (_, scope_a) = create(db.as_ref(), "ACME-0001", 1).await;
    let (_, scope_b) = create(db.as_ref(), "BETA-0002", 1).await;
    let day = |day: &str, stored_bytes: u64| UsageDay {
        day: day.to_owned(),
        stored_bytes,
        snapshots: stored_bytes / 10,
        machines: 1,
    };
    for (row, at) in [
        (day("2026-11-30", 100), T0),
        (day("2026-12-01", 200), T0 + 1),
        (day("2026-12-01", 250), T0 + 2),
        (day("2026-12-02", 300), T0 + 3),
    ] {
        usage::record_day(&db.0, &scope_a, &row, at).await.unwrap();
    }
    usage::record_day(&db.0, &scope_b, &day("2026-12-01", 9), T0)
        .await
        .unwrap();
    assert_eq!(
        usage::history(&db.0, &scope_a, "2026-12-01").await.unwrap(),
        [day("2026-12-01", 250), day("2026-12-02", 300)],
        "a day keeps its last measurement; earlier days are left out"
    );
    assert_eq!(
        usage::history(&db.0, &scope_b, "2026-01-01").await.unwrap(),
        [day("2026-12-01", 9)]
    );
}

/// A connection beside the trait, playing someone with write access to the database.
enum RawPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawPool {
    /// Runs `sql` with `$1` bound to `chain`.
    async fn run(&self, sql: &'static str, chain: &str) {
        match self {
            RawPool::Sqlite(pool) => sqlx::query(sql).bind(chain).execute(pool).await.map(|_| ()),
            RawPool::Postgres(pool) => sqlx::query(sql).bind(chain).execute(pool).await.map(|_| ()),
        }
        .unwrap();
    }
}

async fn audit_verify_finds_edited_and_deleted_rows(db: Arc<Api>, raw: RawPool) {
    use crate::audit::ChainBreak;
    let (_, scope) = create(db.as_ref(), "ACME-0001", 1).await;
    let chain = scope.tenant_id().as_str().to_owned();
    for i in 0..5 {
        db.append_event(events::Chain::tenant(&scope), &event("login", T0 + i))
            .await
            .unwrap();
    }
    assert!(crate::audit::verify(&db.0).await.unwrap().is_ok());
    let run = |sql: &'static str| raw.run(sql, &chain);

    run("UPDATE events SET actor = 'mallory' WHERE chain = $1 AND seq = 2").await;
    assert_eq!(
        crate::audit::verify(&db.0).await.unwrap(),
        Err(ChainBreak::Altered {
            chain: chain.clone(),
            seq: 2
        })
    );
    run("UPDATE events SET actor = 'alice' WHERE chain = $1 AND seq = 2").await;
    assert!(crate::audit::verify(&db.0).await.unwrap().is_ok());

    run("DELETE FROM events WHERE chain = $1 AND seq = 5").await;
    assert_eq!(
        crate::audit::verify(&db.0).await.unwrap(),
        Err(ChainBreak::Truncated {
            chain: chain.clone(),
            seq: 4
        })
    );
    run("DELETE FROM events WHERE chain = $1 AND seq = 3").await;
    assert_eq!(
        crate::audit::verify(&db.0).await.unwrap(),
        Err(ChainBreak::Missing {
            chain: chain.clone(),
            seq: 3
        })
    );
}

/// The database layer with one transaction per call.
fn job<'a>(kind: JobKind, tenant: Option<&'a TenantId>) -> NewJob<'a> {
    NewJob {
        kind,
        tenant_id: tenant,
        params: "{}".to_owned(),
        requested_by: "test",
        due_ms: T0,
    }
}

async fn queue(db: &Api, new: &NewJob<'_>) -> (JobRecord, bool) {
    let mut tx = db.0.begin().await.unwrap();
    let queued = jobs::enqueue(&mut tx, new, T0).await.unwrap();
    tx.commit().await.unwrap();
    queued
}

async fn finish_ok(db: &Api, id: &str, owner: &str, now: i64) -> bool {
    let end = jobs::Finish {
        status: JobStatus::Succeeded,
        result: Some("{}"),
        error: None,
    };
    jobs::finish(&db.0, id, owner, &end, now).await.unwrap()
}

async fn each_job_is_claimed_once_by_concurrent_runners(db: Arc<Api>) {
    let mut tenants = Vec::new();
    for code in ["JOBS-0001", "JOBS-0002", "JOBS-0003"] {
        tenants.push(create(&db, code, 3).await.0.id);
    }
    let mut queued = Vec::new();
    for tenant in &tenants {
        for kind in [JobKind::Gc, JobKind::Verify] {
            queued.push(queue(&db, &job(kind, Some(tenant))).await.0.id);
        }
    }
    queued.push(queue(&db, &job(JobKind::Expiry, None)).await.0.id);
    let runners = (0..4).map(|n| {
        let db = db.clone();
        tokio::spawn(async move {
            let owner = format!("runner-{n}");
            let mut ran = Vec::new();
            for _ in 0..200 {
                match jobs::claim(&db.0, &owner, T0, T0 + HOUR_MS).await.unwrap() {
                    Some(job) => {
                        assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                        assert!(finish_ok(&db, &job.id, &owner, T0).await);
                        ran.push(job.id);
                    }
                    None => tokio::task::yield_now().await,
                }
            }
            ran
        })
    });
    let mut ran = Vec::new();
    for runner in runners {
        ran.extend(runner.await.unwrap());
    }
    ran.sort();
    queued.sort();
    assert_eq!(ran, queued, "every job ran, and none twice");
    for id in &queued {
        let record = jobs::get(&db.0, id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.attempts),
            (JobStatus::Succeeded, 1),
            "{record:?}"
        );
    }
}

async fn a_tenants_jobs_run_one_at_a_time(db: Arc<Api>) {
    let (tenant, _) = create(&db, "ONEATA-01", 3).await;
    let (other, _) = create(&db, "ONEATA-02", 3).await;
    queue(&db, &job(JobKind::Gc, Some(&tenant.id))).await;
    queue(&db, &job(JobKind::Verify, Some(&tenant.id))).await;
    let first = jobs::claim(&db.0, "a", T0, T0 + HOUR_MS).await.unwrap().unwrap();
    assert_eq!(first.tenant_id.as_ref(), Some(&tenant.id));
    assert!(
        jobs::claim(&db.0, "b", T0, T0 + HOUR_MS).await.unwrap().is_none(),
        "the tenant's second job waits while its first runs"
    );
    queue(&db, &job(JobKind::Gc, Some(&other.id))).await;
    let theirs = jobs::claim(&db.0, "b", T0, T0 + HOUR_MS).await.unwrap().unwrap();
    assert_eq!(
        theirs.tenant_id.as_ref(),
        Some(&other.id),
        "other tenants are not held up"
    );
    assert!(finish_ok(&db, &first.id, "a", T0).await);
    let second = jobs::claim(&db.0, "b", T0, T0 + HOUR_MS).await.unwrap().unwrap();
    assert_eq!(second.tenant_id.as_ref(), Some(&tenant.id));
    assert_ne!(second.kind, first.kind);
}

async fn expired_leases_are_taken_over_and_abandoned_runs_fail(db: Arc<Api>) {
    let queued = queue(&db, &job(JobKind::Expiry, None)).await.0;
    let dead = jobs::claim(&db.0, "dead", T0, T0 + 1000).await.unwrap().unwrap();
    assert_eq!(dead.id, queued.id);
    assert!(
        jobs::claim(&db.0, "live", T0 + 500, T0 + 1500)
            .await
            .unwrap()
            .is_none(),
        "a live lease holds"
    );
    assert!(
        jobs::renew(&db.0, &dead.id, "dead", T0 + 2000, Some("half way"))
            .await
            .unwrap()
    );
    assert!(
        jobs::claim(&db.0, "live", T0 + 1500, T0 + 2500)
            .await
            .unwrap()
            .is_none(),
        "a renewed lease holds"
    );
    let taken = jobs::claim(&db.0, "live", T0 + 2001, T0 + 3000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id.as_str(), taken.attempts), (dead.id.as_str(), 2));
    assert!(
        !finish_ok(&db, &dead.id, "dead", T0 + 2002).await,
        "the first runner lost its lease"
    );
    assert!(
        !jobs::renew(&db.0, &dead.id, "dead", T0 + 9000, None)
            .await
            .unwrap()
    );
    // Cut off twice more: the third loss fails the job instead of a fourth run.
    let third = jobs::claim(&db.0, "x", T0 + 3001, T0 + 4000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.attempts, 3);
    assert_eq!(jobs::fail_abandoned(&db.0, T0 + 4001, 3).await.unwrap(), 1);
    let failed = jobs::get(&db.0, &queued.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("cut off 3 times"),
        "{failed:?}"
    );
    assert!(
        jobs::claim(&db.0, "y", T0 + 5000, T0 + 6000)
            .await
            .unwrap()
            .is_none()
    );
}

async fn jobs_are_deduplicated_released_and_scheduled_once(db: Arc<Api>) {
    let (tenant, scope) = create(&db, "DEDUP-0001", 3).await;
    let (first, new) = queue(&db, &job(JobKind::Gc, Some(&tenant.id))).await;
    assert!(new);
    let (again, new) = queue(&db, &job(JobKind::Gc, Some(&tenant.id))).await;
    assert_eq!(
        (again.id.as_str(), new),
        (first.id.as_str(), false),
        "one queued gc per vault"
    );
    let mut verify = job(JobKind::Verify, Some(&tenant.id));
    verify.params = r#"{"read_data":true}"#.to_owned();
    assert!(
        queue(&db, &verify).await.1,
        "other kinds and parameters queue apart"
    );
    assert!(queue(&db, &job(JobKind::Mail, None)).await.1);
    assert!(!queue(&db, &job(JobKind::Mail, None)).await.1);

    let claimed = jobs::claim(&db.0, "stopping", T0, T0 + HOUR_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jobs::release(&db.0, "stopping").await.unwrap(), 1);
    let released = jobs::get(&db.0, &claimed.id).await.unwrap().unwrap();
    assert_eq!((released.status, released.lease_owner), (JobStatus::Queued, None));

    let listed = jobs::list(
        &db.0,
        &JobFilter {
            kind: Some(JobKind::Gc),
            tenant_id: Some(tenant.id.clone()),
            limit: 10,
            ..JobFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        jobs::get_for_tenant(&db.0, &scope, &first.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    let (_, other_scope) = create(&db, "DEDUP-0002", 3).await;
    assert!(
        jobs::get_for_tenant(&db.0, &other_scope, &first.id)
            .await
            .unwrap()
            .is_none()
    );

    let take = |now: i64| {
        let db = db.clone();
        async move {
            let mut tx = db.0.begin().await.unwrap();
            let taken = jobs::take_schedule(&mut tx, "gc", now, now + 10, now + 10)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            taken
        }
    };
    assert!(!take(T0).await, "a new schedule is first due one interval on");
    assert!(take(T0 + 10).await);
    assert!(!take(T0 + 10).await, "a round is queued once");
    assert!(take(T0 + 25).await);
}

async fn the_outbox_retries_sends_and_gives_up(db: Arc<Api>) {
    let (_, scope) = create(&db, "MAIL-0001", 3).await;
    let content = crate::mail::MailContent::PasswordReset {
        login: "taro".into(),
        link: "https://x/reset-password?token=secret".into(),
        minutes: 30,
    };
    let mail = |to: &str| NewMail {
        recipient: to.to_owned(),
        language: Language::Ja,
        content: content.clone(),
        give_up_ms: T0 + HOUR_MS,
    };
    let first = outbox::queue(&db.0, &scope, &mail("a@example.com"), T0)
        .await
        .unwrap();
    let second = outbox::queue(&db.0, &scope, &mail("b@example.com"), T0 + 1)
        .await
        .unwrap();
    assert!(outbox::any_due(&db.0, T0 + 1).await.unwrap());
    let due = outbox::due(&db.0, T0 + 1, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [first.as_str(), second.as_str()]
    );
    assert_eq!(due[0].content.as_ref(), Some(&content));
    assert_eq!(due[0].language, Language::Ja);

    outbox::retry_later(&db.0, &first, T0 + 30_000, "connection refused")
        .await
        .unwrap();
    let due = outbox::due(&db.0, T0 + 2, 10).await.unwrap();
    assert_eq!(due.len(), 1, "a deferred message waits");
    outbox::sent(&db.0, &second, T0 + 3).await.unwrap();
    outbox::give_up(&db.0, &first, T0 + 40_000, "expired", false)
        .await
        .unwrap();
    assert!(!outbox::any_due(&db.0, T0 + HOUR_MS).await.unwrap());
    let all = outbox::for_tenant(&db.0, &scope, 10).await.unwrap();
    assert!(
        all.iter().all(|m| m.content.is_none()),
        "links are gone once sent or given up"
    );
    let given_up = all.iter().find(|m| m.id == first).unwrap();
    assert_eq!((given_up.status, given_up.attempts), (MailStatus::Failed, 1));
    assert_eq!(given_up.last_error.as_deref(), Some("expired"));
    assert_eq!(
        all.iter().find(|m| m.id == second).unwrap().status,
        MailStatus::Sent
    );
    assert_eq!(outbox::prune(&db.0, T0 + 40_001).await.unwrap(), 2);
}

struct Api(Db);

macro_rules! in_tx {
    ($db:expr, $tx:ident => $body:expr) => {{
        let mut $tx = $db.0.begin().await?;
        let out = $body;
        $tx.commit().await?;
        Ok(out)
    }};
}

impl Api {
    async fn count_operator_tokens(&self) -> DbResult<u64> {
        operators::count(&self.0).await
    }
    async fn insert_operator_token(
        &self,
        owner: Option<&OperatorId>,
        name: &str,
        role: ProviderRole,
        hash: &str,
        now: i64,
    ) -> DbResult<String> {
        let token = operators::NewOperatorToken {
            operator_id: owner,
            name,
            role,
            token_hash: hash,
            expires_ms: owner.map(|_| now + 1000),
        };
        operators::insert(&self.0, &token, now).await
    }
    async fn operator_token(&self, hash: &str) -> DbResult<Option<OperatorTokenIdentity>> {
        operators::by_hash(&self.0, hash).await
    }
    async fn create_operator(&self, id: &OperatorId, login: &str, role: ProviderRole) -> DbResult<()> {
        let account = operators::NewOperator {
            id,
            login,
            role,
            password_hash: "phc",
            email: None,
            language: Language::Ja,
        };
        operators::create_account(&self.0, &account, T0).await
    }
    async fn operator_candidate(&self, login: &str) -> DbResult<Option<OperatorCandidate>> {
        operators::candidate(&self.0, login).await
    }
    async fn disable_operator(&self, id: &OperatorId, at: Option<i64>) -> DbResult<bool> {
        operators::set_disabled(&self.0, id, at).await
    }
    async fn operator_tokens(&self, owner: Option<&OperatorId>) -> DbResult<Vec<OperatorTokenRecord>> {
        operators::tokens(&self.0, owner).await
    }
    async fn revoke_operator_token(&self, id: &str, owner: Option<&OperatorId>) -> DbResult<bool> {
        operators::revoke_token(&self.0, id, owner, T0).await
    }
    async fn create_tenant(
        &self,
        _: &OperatorPrincipal,
        t: &NewTenant,
        a: &NewTenantUser,
        now: i64,
    ) -> DbResult<TenantRecord> {
        in_tx!(self, tx => tenants::create(&mut tx, t, a, now).await?)
    }
    async fn list_tenants(&self, _: &OperatorPrincipal) -> DbResult<Vec<TenantRecord>> {
        tenants::list(&self.0).await
    }
    async fn tenant_by_service_code(
        &self,
        _: &OperatorPrincipal,
        code: &str,
    ) -> DbResult<Option<TenantRecord>> {
        tenants::by_service_code(&self.0, code).await
    }
    async fn tenant(&self, scope: &TenantScope) -> DbResult<Option<TenantRecord>> {
        tenants::get(&self.0, scope).await
    }
    async fn update_tenant(
        &self,
        scope: &TenantScope,
        update: &TenantUpdate,
    ) -> DbResult<Option<TenantRecord>> {
        tenants::update(&self.0, scope, update).await
    }
    async fn set_tenant_status(
        &self,
        scope: &TenantScope,
        status: TenantStatus,
    ) -> DbResult<Option<TenantRecord>> {
        tenants::set_status(&self.0, scope, status).await
    }
    async fn tenant_users(&self, scope: &TenantScope) -> DbResult<Vec<TenantUserRecord>> {
        users::list(&self.0, scope).await
    }
    async fn create_user(
        &self,
        scope: &TenantScope,
        user: &NewTenantUser,
        now: i64,
    ) -> DbResult<TenantUserRecord> {
        in_tx!(self, tx => users::create(&mut tx, scope, user, now).await?)
    }
    async fn update_user(
        &self,
        scope: &TenantScope,
        id: &UserId,
        u: &UserUpdate,
        now: i64,
    ) -> DbResult<Option<TenantUserRecord>> {
        in_tx!(self, tx => users::update(&mut tx, scope, id, u, now).await?)
    }
    async fn delete_user(&self, scope: &TenantScope, id: &UserId) -> DbResult<bool> {
        in_tx!(self, tx => users::delete(&mut tx, scope, id).await?)
    }
    async fn set_password(
        &self,
        scope: &TenantScope,
        id: &UserId,
        hash: &str,
        keep: Option<&str>,
        now: i64,
    ) -> DbResult<bool> {
        in_tx!(self, tx => users::set_password(&mut tx, scope, id, hash, keep, now).await?)
    }
    async fn create_password_reset(
        &self,
        scope: &TenantScope,
        id: &UserId,
        hash: &str,
        now: i64,
        expires: i64,
    ) -> DbResult<()> {
        resets::create(&self.0, scope, id, hash, now, expires).await
    }
    async fn password_resets_since(&self, scope: &TenantScope, id: &UserId, since: i64) -> DbResult<u32> {
        resets::count_since(&self.0, scope, id, since).await
    }
    async fn password_reset_user(
        &self,
        hash: &str,
        now: i64,
    ) -> DbResult<Option<(TenantId, UserId, String)>> {
        resets::holder(&self.0, hash, now).await
    }
    async fn consume_password_reset(&self, scope: &TenantScope, hash: &str, now: i64) -> DbResult<bool> {
        resets::consume(&self.0, scope, hash, now).await
    }
    async fn login_candidate(&self, login: &str) -> DbResult<Option<LoginCandidate>> {
        logins::candidate(&self.0, login).await
    }
    async fn record_login_failure(&self, login: &str, source: &str, now: i64) -> DbResult<()> {
        logins::record_failure(&self.0, login, source, now).await
    }
    async fn login_failures(&self, login: &str, source: &str, since: i64) -> DbResult<LoginFailures> {
        logins::failures(&self.0, login, source, since).await
    }
    async fn clear_login_failures(&self, login: &str) -> DbResult<()> {
        logins::clear_failures(&self.0, login).await
    }
    async fn create_user_session(
        &self,
        scope: &TenantScope,
        session: &NewUserSession,
        now: i64,
    ) -> DbResult<()> {
        sessions::create(&self.0, scope, session, now).await
    }
    async fn session_identity(&self, hash: &str) -> DbResult<Option<SessionIdentity>> {
        sessions::identity(&self.0, hash).await
    }
    async fn touch_user_session(&self, scope: &TenantScope, id: &str, now: i64) -> DbResult<()> {
        sessions::touch(&self.0, scope, id, now).await
    }
    async fn user_sessions(&self, scope: &TenantScope, user: &UserId) -> DbResult<Vec<UserSessionRecord>> {
        sessions::list(&self.0, scope, user).await
    }
    async fn revoke_user_session(
        &self,
        scope: &TenantScope,
        user: &UserId,
        id: &str,
        now: i64,
    ) -> DbResult<bool> {
        sessions::revoke(&self.0, scope, user, id, now).await
    }
    async fn create_api_token(&self, scope: &TenantScope, token: &NewApiToken, now: i64) -> DbResult<()> {
        tokens::create(&self.0, scope, token, now).await
    }
    async fn api_token_identity(&self, hash: &str) -> DbResult<Option<ApiTokenIdentity>> {
        tokens::identity(&self.0, hash).await
    }
    async fn touch_api_token(&self, scope: &TenantScope, id: &str, now: i64) -> DbResult<()> {
        tokens::touch(&self.0, scope, id, now).await
    }
    async fn api_tokens(&self, scope: &TenantScope, user: Option<&UserId>) -> DbResult<Vec<ApiTokenRecord>> {
        tokens::list(&self.0, scope, user).await
    }
    async fn revoke_api_token(
        &self,
        scope: &TenantScope,
        user: Option<&UserId>,
        id: &str,
        now: i64,
    ) -> DbResult<bool> {
        tokens::revoke(&self.0, scope, user, id, now).await
    }
    async fn append_event(&self, chain: events::Chain<'_>, event: &NewEvent) -> DbResult<()> {
        in_tx!(self, tx => events::append(&mut tx, chain, event).await?)
    }
    async fn events(&self, scope: &TenantScope, from: i64, to: i64) -> DbResult<Vec<EventRecord>> {
        events::list(&self.0, events::Chain::tenant(scope), &span(from, to)).await
    }
    async fn insert_registration_token(
        &self,
        scope: &TenantScope,
        hash: &str,
        now: i64,
        expires: i64,
    ) -> DbResult<()> {
        machines::insert_registration_token(&self.0, scope, hash, now, expires).await
    }
    async fn registration_token_usable(&self, scope: &TenantScope, hash: &str, now: i64) -> DbResult<bool> {
        machines::registration_token_usable(&self.0, scope, hash, now).await
    }
    /// Commits only a registration that happened, as the operation does.
    async fn register_machine(&self, machine: &NewMachine, now: i64) -> DbResult<RegistrationOutcome> {
        let mut tx = self.0.begin().await?;
        let outcome = machines::register(&mut tx, machine, now).await?;
        if matches!(outcome, RegistrationOutcome::Registered { .. }) {
            tx.commit().await?;
        }
        Ok(outcome)
    }
    async fn agent_by_credential(&self, hash: &str) -> DbResult<Option<AgentIdentity>> {
        machines::agent_by_credential(&self.0, hash).await
    }
    async fn machines(&self, scope: &TenantScope) -> DbResult<Vec<MachineRecord>> {
        machines::list(&self.0, scope).await
    }
    async fn revoke_machine(&self, scope: &TenantScope, id: &MachineId, now: i64) -> DbResult<bool> {
        in_tx!(self, tx => machines::revoke(&mut tx, scope, id, now).await?)
    }
    async fn record_session(
        &self,
        scope: &TenantScope,
        id: &str,
        machine: &MachineId,
        now: i64,
    ) -> DbResult<()> {
        machines::record_session(&self.0, scope, id, machine, now).await
    }
    async fn session_machine(&self, scope: &TenantScope, id: &str) -> DbResult<Option<MachineId>> {
        machines::session_machine(&self.0, scope, id).await
    }
    async fn claim_snapshot(
        &self,
        scope: &TenantScope,
        id: &str,
        machine: &MachineId,
        now: i64,
    ) -> DbResult<bool> {
        in_tx!(self, tx => machines::claim_snapshot(&mut tx, scope, id, machine, &facts("/etc", 1), now).await?)
    }
    async fn claim_facts(
        &self,
        scope: &TenantScope,
        id: &str,
        machine: &MachineId,
        facts: &SnapshotFacts,
    ) -> DbResult<bool> {
        in_tx!(self, tx => machines::claim_snapshot(&mut tx, scope, id, machine, facts, T0).await?)
    }
    async fn machine_snapshots(&self, scope: &TenantScope, machine: &MachineId) -> DbResult<Vec<String>> {
        machines::machine_snapshots(&self.0, scope, machine).await
    }
}
