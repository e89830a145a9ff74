//! `jobs` and `job_schedules`: durable job records, their leases, and when each periodic
//! kind is next due.
//!
//! **Leases.** A server takes a job with one conditional `UPDATE … RETURNING`: queued and
//! due, or running with a lease that ran out. On PostgreSQL a second server's `UPDATE` of
//! the same row waits for the first to commit, then re-checks the condition and finds
//! nothing; on SQLite writers are serialised. Either way each run has one runner. The
//! runner renews its lease while it works and ends the run only while it still holds it.
//!
//! Jobs are the service's own records: operators list them across tenants (they name a
//! tenant, never its data), and an agent reads one of its tenant's by a tenant query.

use super::{Db, DbResult, Query, Target, Tx, from_db_int};
use crate::authz::TenantKey;
use crate::ids::TenantId;
use crate::model::{JobFilter, JobKind, JobRecord, JobStatus, NewJob};
use crate::secrets::random_hex;

/// The columns of `jobs`, in the order of [`JobRow`].
macro_rules! job_columns {
    () => {
        "id, kind, tenant_id, status, params, requested_by, queued_ms, due_ms, started_ms, finished_ms, \
         attempts, lease_owner, progress, result, error"
    };
}

/// What a runner may take: queued and due, or running under a lease that ran out.
macro_rules! takeable {
    () => {
        "((status = 'queued' AND due_ms <= $1) OR (status = 'running' AND lease_until_ms < $1))"
    };
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    tenant_id: Option<String>,
    status: String,
    params: String,
    requested_by: String,
    queued_ms: i64,
    due_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
    attempts: i64,
    lease_owner: Option<String>,
    progress: Option<String>,
    result: Option<String>,
    error: Option<String>,
}

impl JobRow {
    fn into_record(self) -> DbResult<JobRecord> {
        Ok(JobRecord {
            id: self.id,
            kind: self.kind.parse()?,
            tenant_id: self.tenant_id.map(TenantId::from_db),
            status: self.status.parse()?,
            params: self.params,
            requested_by: self.requested_by,
            queued_ms: self.queued_ms,
            due_ms: self.due_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            attempts: from_db_int(self.attempts, "attempts")?,
            lease_owner: self.lease_owner,
            progress: self.progress,
            result: self.result,
            error: self.error,
        })
    }
}

fn records(rows: Vec<JobRow>) -> DbResult<Vec<JobRecord>> {
    rows.into_iter().map(JobRow::into_record).collect()
}

/// Queues a job, unless one of the same kind, tenant, parameters and requester is
/// already queued or running: then that one is the answer (a second gc of a vault asked
/// for meanwhile would only wait for the first). A unique index decides, so two servers
/// queuing the same run at once make one. Answers the job and whether it is new.
pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>, now_ms: i64) -> DbResult<(JobRecord, bool)> {
    let tenant = job.tenant_id.map(TenantId::as_str);
    let inserted: Option<JobRow> = Query::service(concat!(
        "INSERT INTO jobs (id, kind, tenant_id, status, params, requested_by, queued_ms, due_ms) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING ",
        job_columns!()
    ))
    .bind(random_hex(16))
    .bind(job.kind.as_str())
    .bind(tenant)
    .bind(job.params.as_str())
    .bind(job.requested_by)
    .bind(now_ms)
    .bind(job.due_ms)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = inserted {
        return Ok((row.into_record()?, true));
    }
    let pending: JobRow = Query::service(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE kind = $1 AND COALESCE(tenant_id, '') = COALESCE($2, '') AND params = $3 \
          AND requested_by = $4 AND status IN ('queued', 'running')"
    ))
    .bind(job.kind.as_str())
    .bind(tenant)
    .bind(job.params.as_str())
    .bind(job.requested_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok((pending.into_record()?, false))
}

/// Makes a queued job due at `now_ms`; answers whether it was still queued.
pub async fn make_due(tx: &mut Tx, id: &str, now_ms: i64) -> DbResult<bool> {
    let changed = Query::service("UPDATE jobs SET due_ms = $2 WHERE id = $1 AND status = 'queued'")
        .bind(id)
        .bind(now_ms)
        .execute(tx)
        .await?;
    Ok(changed == 1)
}

/// Takes a job out of the queue, only while no runner has taken it; answers whether it did.
pub async fn delete_queued(tx: &mut Tx, id: &str) -> DbResult<bool> {
    let deleted = Query::service("DELETE FROM jobs WHERE id = $1 AND status = 'queued'")
        .bind(id)
        .execute(tx)
        .await?;
    Ok(deleted == 1)
}

/// One job by id, whatever its tenant (operators, runners).
pub async fn get<'c>(on: impl Target<'c>, id: &str) -> DbResult<Option<JobRecord>> {
    let row: Option<JobRow> = Query::service(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(on)
        .await?;
    row.map(JobRow::into_record).transpose()
}

/// One of the tenant's jobs by id.
pub async fn get_for_tenant<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    id: &str,
) -> DbResult<Option<JobRecord>> {
    let row: Option<JobRow> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(id)
    .fetch_optional(on)
    .await?;
    row.map(JobRow::into_record).transpose()
}

/// Jobs matching the filter, newest first.
pub async fn list<'c>(on: impl Target<'c>, filter: &JobFilter) -> DbResult<Vec<JobRecord>> {
    let rows: Vec<JobRow> = Query::service(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR status = $2) \
          AND ($3 IS NULL OR tenant_id = $3) ORDER BY queued_ms DESC, id LIMIT $4"
    ))
    .bind(filter.kind.map(JobKind::as_str))
    .bind(filter.status.map(JobStatus::as_str))
    .bind(filter.tenant_id.as_ref().map(TenantId::as_str))
    .bind(i64::from(filter.limit))
    .fetch_all(on)
    .await?;
    records(rows)
}

/// Fails runs that were cut off (their lease ran out) `max_attempts` times: a job that
/// kills its server every time must not be taken over for ever.
pub async fn fail_abandoned<'c>(on: impl Target<'c>, now_ms: i64, max_attempts: u32) -> DbResult<u64> {
    Query::service(
        "UPDATE jobs SET status = 'failed', finished_ms = $1, lease_until_ms = NULL, \
         error = 'cut off ' || CAST(attempts AS TEXT) || ' times (the server running it stopped); not retried' \
         WHERE status = 'running' AND lease_until_ms < $1 AND attempts >= $2",
    )
    .bind(now_ms)
    .bind(i64::from(max_attempts))
    .execute(on)
    .await
}

/// Takes the lease of one takeable job for `owner` until `lease_until_ms`, oldest due
/// first; `None` when there is nothing to take. One tenant's jobs run one at a time
/// (repair and gc both move blobs, so they must not overlap): a job whose tenant has a
/// job running under a live lease waits. The tenant's row is locked while this is
/// checked (on PostgreSQL; SQLite's transactions hold the write lock already), so two
/// servers cannot each start one of the same tenant's jobs.
pub async fn claim(db: &Db, owner: &str, now_ms: i64, lease_until_ms: i64) -> DbResult<Option<JobRecord>> {
    let candidates: Vec<(String, Option<String>)> = Query::service(concat!(
        "SELECT id, tenant_id FROM jobs WHERE ",
        takeable!(),
        " ORDER BY due_ms, queued_ms LIMIT 16"
    ))
    .bind(now_ms)
    .fetch_all(db)
    .await?;
    for (id, tenant) in candidates {
        let mut tx = db.begin().await?;
        if let Some(tenant) = &tenant {
            let lock = if tx.is_postgres() {
                "SELECT id FROM tenants WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT id FROM tenants WHERE id = $1"
            };
            let _: Option<(String,)> = Query::service(lock).bind(tenant).fetch_optional(&mut tx).await?;
            let busy: Option<(String,)> = Query::service(
                "SELECT id FROM jobs WHERE tenant_id = $1 AND status = 'running' AND lease_until_ms >= $2 \
                 AND id <> $3 LIMIT 1",
            )
            .bind(tenant)
            .bind(now_ms)
            .bind(id.as_str())
            .fetch_optional(&mut tx)
            .await?;
            if busy.is_some() {
                continue;
            }
        }
        let row: Option<JobRow> = Query::service(concat!(
            "UPDATE jobs SET status = 'running', lease_owner = $2, lease_until_ms = $3, \
             attempts = attempts + 1, started_ms = COALESCE(started_ms, $1), progress = NULL \
             WHERE id = $4 AND ",
            takeable!(),
            " RETURNING ",
            job_columns!()
        ))
        .bind(now_ms)
        .bind(owner)
        .bind(lease_until_ms)
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
        tx.commit().await?;
        if let Some(row) = row {
            return Ok(Some(row.into_record()?));
        }
    }
    Ok(None)
}

/// Extends the lease (and notes progress); `false` when `owner` no longer holds it.
pub async fn renew<'c>(
    on: impl Target<'c>,
    id: &str,
    owner: &str,
    lease_until_ms: i64,
    progress: Option<&str>,
) -> DbResult<bool> {
    let renewed = Query::service(
        "UPDATE jobs SET lease_until_ms = $3, progress = COALESCE($4, progress) \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_until_ms)
    .bind(progress)
    .execute(on)
    .await?;
    Ok(renewed == 1)
}

/// How a run ended.
pub struct Finish<'a> {
    pub status: JobStatus,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Ends a run `owner` holds; `false` when it lost the lease meanwhile (another server
/// took the job over, and its outcome counts).
pub async fn finish<'c>(
    on: impl Target<'c>,
    id: &str,
    owner: &str,
    end: &Finish<'_>,
    now_ms: i64,
) -> DbResult<bool> {
    let ended = Query::service(
        "UPDATE jobs SET status = $3, result = $4, error = $5, finished_ms = $6, lease_until_ms = NULL \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(end.status.as_str())
    .bind(end.result)
    .bind(end.error)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(ended == 1)
}

/// Puts `owner`'s running jobs back in the queue (a server stopping before they ended),
/// so another server, or this one after a restart, runs them without waiting out the
/// lease.
pub async fn release<'c>(on: impl Target<'c>, owner: &str) -> DbResult<u64> {
    Query::service(
        "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until_ms = NULL \
         WHERE lease_owner = $1 AND status = 'running'",
    )
    .bind(owner)
    .execute(on)
    .await
}

/// Deletes records of runs that ended before `before_ms`.
pub async fn prune<'c>(on: impl Target<'c>, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM jobs WHERE status IN ('succeeded', 'failed') AND finished_ms < $1")
        .bind(before_ms)
        .execute(on)
        .await
}

/// When a periodic schedule is next due, if it was ever taken.
pub async fn schedule_due_at<'c>(on: impl Target<'c>, name: &str) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> = Query::service("SELECT next_ms FROM job_schedules WHERE name = $1")
        .bind(name)
        .fetch_optional(on)
        .await?;
    Ok(row.map(|(next,)| next))
}

/// Moves a periodic schedule on to `next_ms` if it is due at `now_ms`; `true` for the one
/// caller that did (it queues the round). A schedule seen for the first time is due one
/// interval from now (`first_ms`).
pub async fn take_schedule(
    tx: &mut Tx,
    name: &str,
    now_ms: i64,
    first_ms: i64,
    next_ms: i64,
) -> DbResult<bool> {
    Query::service("INSERT INTO job_schedules (name, next_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(first_ms)
        .execute(&mut *tx)
        .await?;
    let taken = Query::service("UPDATE job_schedules SET next_ms = $3 WHERE name = $1 AND next_ms <= $2")
        .bind(name)
        .bind(now_ms)
        .bind(next_ms)
        .execute(&mut *tx)
        .await?;
    Ok(taken == 1)
}
