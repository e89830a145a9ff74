//! `expiry`: deletes what has stopped mattering — ended portal sessions, spent reset
//! links, registration tokens that expired unused, failed sign-ins that no longer count,
//! records of jobs and mail older than [`KEEP_RECORDS`], and of plan runs, resolved
//! alerts, ended restore jobs and drills older than [`KEEP_RUNS`].

use std::time::Duration;

use serde_json::json;

use crate::db::{
    alerts, drills, jobs, logins, machines, operators, outbox, resets, restores, runs, sessions,
};
use crate::{Service, ServiceResult, duration_ms};

/// How long records of finished jobs and of sent or given-up mail are kept.
pub const KEEP_RECORDS: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long the history of plan runs (and of resolved alerts) is kept: a year, and the month before it, so a
/// yearly pattern can be compared.
pub const KEEP_RUNS: Duration = Duration::from_secs(400 * 24 * 3600);

/// Spent reset links are kept this long: recent ones count towards the limit of one
/// "forgot password" mail per interval.
const KEEP_SPENT_RESETS: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn run(svc: &Service) -> ServiceResult<serde_json::Value> {
    let now = svc.now_ms();
    let settings = &svc.settings;
    let mut tx = svc.db.begin().await?;
    let idle_before = now - duration_ms(settings.session_idle_timeout);
    let begun_before = now - duration_ms(settings.session_absolute_timeout);
    let sessions = sessions::delete_ended(&mut tx, idle_before, begun_before).await?
        + operators::delete_ended_sessions(&mut tx, idle_before, begun_before).await?;
    let resets = resets::delete_spent(&mut tx, now - duration_ms(KEEP_SPENT_RESETS), now).await?;
    let tokens = machines::delete_expired_registration_tokens(&mut tx, now).await?;
    let failures = logins::prune_failures(&mut tx, now - duration_ms(settings.login_lockout_period)).await?;
    let keep_until = now - duration_ms(KEEP_RECORDS);
    let job_records = jobs::prune(&mut tx, keep_until).await?;
    let mail_records = outbox::prune(&mut tx, keep_until).await?;
    let run_records = runs::prune(&mut tx, now - duration_ms(KEEP_RUNS)).await?;
    let alert_records = alerts::prune(&mut tx, now - duration_ms(KEEP_RUNS)).await?;
    let restore_records = restores::prune(&mut tx, now - duration_ms(KEEP_RUNS)).await?;
    let drill_records = drills::prune(&mut tx, now - duration_ms(KEEP_RUNS)).await?;
    tx.commit().await?;
    Ok(json!({
        "sessions": sessions,
        "reset_links": resets,
        "registration_tokens": tokens,
        "login_failures": failures,
        "job_records": job_records,
        "mail_records": mail_records,
        "run_records": run_records,
        "alert_records": alert_records,
        "restore_records": restore_records,
        "drill_records": drill_records,
    }))
}
