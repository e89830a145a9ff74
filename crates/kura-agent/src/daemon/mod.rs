//! The agent daemon (`kura agent run`): backups that happen without anyone typing a
//! command. It asks the server every poll (at most 30 s) which of its machine's plans
//! have a slot due, starts one run per due slot, reports each run's progress and outcome,
//! and records a slot `skipped` when the plan's previous run is still going. The server
//! owns the schedule and judges missed slots, so a machine that was off runs a missed
//! plan once when it is back. A server that cannot be reached is retried with backoff;
//! reports it could not take wait in the state directory until it can.
//!
//! Restore jobs the server holds for the machine come with its plans; each is performed
//! as `kura restore` would, and reported. So does a restore drill, when one of its plans
//! has one due and the machine is quiet: its latest snapshot is restored into a scratch
//! directory, checked byte for byte, deleted, and the result reported.
//!
//! Stopping ([`run`]'s `stop`) abandons a running backup the way a killed backup is
//! abandoned (no snapshot; the next run resumes the upload) and reports it failed.

mod control;
mod drill;
mod pending;
mod restore;
mod task;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kura_api::agent::{AgentPlan, ReportRun, StartRun};
use serde_json::{Value, json};
use tokio::sync::Notify;

use self::control::Control;
use self::pending::{PendingReport, PendingReports};
use crate::{Result, ServerConnection};

/// The longest the daemon waits between two looks at its plans.
pub const MAX_POLL: Duration = Duration::from_secs(30);

/// How a daemon runs.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    pub connection: ServerConnection,
    /// The host name recorded in snapshots.
    pub host: String,
    /// Where reports the server has not taken yet are kept.
    pub state_dir: PathBuf,
    /// Opens an encrypted vault (the file given with `--password-file`, or
    /// `KURA_PASSWORD`); without it only an unencrypted vault can be backed up.
    pub passphrase: Option<Vec<u8>>,
    /// Between looks at the plans; at most [`MAX_POLL`].
    pub poll: Duration,
    /// Where drills restore their scratch copies (made mode 0700; each drill uses and
    /// deletes a directory of its own in it).
    pub drill_dir: PathBuf,
}

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Where the daemon says what it does: a message and its fields (plan, run, counts).
pub type Log = Arc<dyn Fn(Level, &str, Value) + Send + Sync>;

/// What the running parts of a daemon share.
struct Shared {
    options: DaemonOptions,
    control: Control,
    pending: Mutex<PendingReports>,
    log: Log,
    /// Woken when a run ends, so the loop looks at the plans again at once.
    run_ended: Notify,
    /// The vault, once opened: a later run does not unlock it again.
    vault: tokio::sync::Mutex<Option<Arc<crate::OpenVault>>>,
}

impl Shared {
    fn log(&self, level: Level, message: &str, fields: Value) {
        (self.log)(level, message, fields);
    }

    /// Sends a report; one the server cannot take now is kept for later. A report the
    /// server refuses (4xx: the run ended meanwhile, or the machine was revoked) is not
    /// sent again.
    async fn deliver(&self, run_id: &str, report: ReportRun) {
        match self.control.report(run_id, &report).await {
            Ok(_) => {}
            Err(err) if err.is_refusal() => {
                self.log(
                    Level::Warn,
                    "the server refused a run report",
                    json!({ "run": run_id, "error": err.to_string() }),
                );
            }
            Err(err) => {
                self.log(
                    Level::Warn,
                    "cannot report on a run now; the report is kept and sent again",
                    json!({ "run": run_id, "error": err.to_string() }),
                );
                self.keep(PendingReport {
                    run_id: run_id.to_owned(),
                    report,
                });
            }
        }
    }

    fn keep(&self, report: PendingReport) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = pending.push(report) {
            self.log(
                Level::Error,
                "cannot keep a run report on disk",
                json!({ "error": err.to_string() }),
            );
        }
    }

    /// Sends the reports kept from earlier, oldest first; stops at the first the server
    /// cannot take.
    async fn flush(&self) {
        let waiting = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.reports().to_vec()
        };
        for item in waiting {
            // A report refused for good is not kept either.
            if let Err(err) = self.control.report(&item.run_id, &item.report).await
                && !err.is_refusal()
            {
                return;
            }
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(err) = pending.remove(&item.run_id) {
                self.log(
                    Level::Error,
                    "cannot update the kept run reports",
                    json!({ "error": err.to_string() }),
                );
            }
            drop(pending);
            self.log(
                Level::Info,
                "delivered a kept run report",
                json!({ "run": item.run_id, "status": item.report.status }),
            );
        }
    }
}

/// How often running work (a backup, a restore, a drill) reports its counts; the server
/// gives up on work that is silent for ten minutes.
const PROGRESS_EVERY: Duration = Duration::from_secs(20);

/// Awaits `work`, calling `tick` every [`PROGRESS_EVERY`] while it goes on. Progress that
/// does not arrive is not kept: the outcome will be.
async fn with_progress<T, P: Future<Output = ()>>(
    work: impl Future<Output = T>,
    mut tick: impl FnMut() -> P,
) -> T {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.tick().await;
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = ticks.tick() => tick().await,
        }
    }
}

/// Runs the engine's blocking `work` on a thread of its own, outside the runtime.
async fn on_thread<T: Send + 'static>(
    name: String,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let _ = done.send(work());
        })
        .map_err(|e| crate::AgentError::Usage(format!("cannot start the {name} thread: {e}")))?;
    outcome
        .await
        .map_err(|_| crate::AgentError::Aborted(format!("the {name} thread ended without an outcome")))?
}

/// Sends the outcome of a restore or drill, which is worth a few tries (2 to 32 s apart);
/// one the server refuses is not sent again.
async fn deliver_outcome<T, F: Future<Output = Result<T>>>(mut send: impl FnMut() -> F) {
    for attempt in 0..5 {
        match send().await {
            Ok(_) => return,
            Err(err) if err.is_refusal() => return,
            Err(_) => tokio::time::sleep(Duration::from_secs(2 << attempt)).await,
        }
    }
}

/// Problems named in a report: the count and the first five, `"3 {what}: a; b; c"`.
fn named_problems(problems: &[String], what: &str) -> Option<String> {
    const NAMED: usize = 5;
    if problems.is_empty() {
        return None;
    }
    let named: Vec<&str> = problems.iter().take(NAMED).map(String::as_str).collect();
    let more = problems.len().saturating_sub(NAMED);
    Some(format!(
        "{} {what}: {}{}",
        problems.len(),
        named.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    ))
}

/// Waits after failures to reach the server: 1 s, doubling, at most the poll interval.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: Duration::from_secs(1),
        }
    }

    fn reset(&mut self) {
        *self = Backoff::new();
    }

    fn wait(&mut self, most: Duration) -> Duration {
        let wait = self.next.min(most);
        self.next = (self.next * 2).min(most);
        wait
    }
}

/// Runs the daemon until `stop` completes. Errors only when it cannot start (the state
/// directory, the HTTPS setup); everything after is logged and retried.
pub async fn run(options: DaemonOptions, log: Log, stop: impl Future<Output = ()>) -> Result<()> {
    let poll = options.poll.clamp(Duration::from_secs(1), MAX_POLL);
    let shared = Arc::new(Shared {
        control: Control::new(&options.connection)?,
        pending: Mutex::new(PendingReports::load(&options.state_dir)?),
        options,
        log,
        run_ended: Notify::new(),
        vault: tokio::sync::Mutex::new(None),
    });
    shared.log(
        Level::Info,
        "agent daemon started",
        json!({ "server": shared.options.connection.url, "poll_s": poll.as_secs() }),
    );
    let mut running: HashMap<String, task::RunningPlan> = HashMap::new();
    let mut restoring: HashMap<String, restore::RunningRestore> = HashMap::new();
    let mut drilling: HashMap<String, drill::RunningDrill> = HashMap::new();
    let mut backoff = Backoff::new();
    tokio::pin!(stop);
    loop {
        running.retain(|_, run| !run.is_finished());
        restoring.retain(|_, job| !job.is_finished());
        drilling.retain(|_, drill| !drill.is_finished());
        shared.flush().await;
        let wait = match shared.control.plans().await {
            Ok(plans) => {
                backoff.reset();
                let wait = until_next(&plans.plans, poll);
                for plan in plans.plans {
                    if let Some(snapshot) = plan.drill.clone()
                        && drilling.is_empty()
                    {
                        let drill = drill::RunningDrill::start(Arc::clone(&shared), &plan, snapshot);
                        drilling.insert(plan.id.clone(), drill);
                    }
                    if let Some(due) = plan.due.clone() {
                        start_due(&shared, &mut running, plan, due).await;
                    }
                }
                for job in plans.restores {
                    if !restoring.contains_key(&job.id) {
                        let id = job.id.clone();
                        restoring.insert(id, restore::RunningRestore::start(Arc::clone(&shared), job));
                    }
                }
                wait
            }
            Err(err) => {
                let wait = backoff.wait(poll);
                shared.log(
                    Level::Warn,
                    "cannot reach the server; trying again",
                    json!({ "error": err.to_string(), "retry_in_s": wait.as_secs() }),
                );
                wait
            }
        };
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(wait) => {}
            () = shared.run_ended.notified() => {}
        }
    }
    let abandoned: Vec<_> = running.into_values().filter(|r| !r.is_finished()).collect();
    for run in &abandoned {
        run.abandon(&shared).await;
    }
    for job in restoring.values().filter(|job| !job.is_finished()) {
        job.abandon(&shared).await;
    }
    for drill in drilling.values().filter(|drill| !drill.is_finished()) {
        drill.abandon(&shared).await;
    }
    shared.log(
        Level::Info,
        "agent daemon stopped",
        json!({ "abandoned_runs": abandoned.len() }),
    );
    Ok(())
}

/// Starts a run for a due slot, or records the slot skipped while the plan still runs.
async fn start_due(
    shared: &Arc<Shared>,
    running: &mut HashMap<String, task::RunningPlan>,
    plan: AgentPlan,
    due: String,
) {
    let busy = running.contains_key(&plan.id);
    let start = StartRun {
        plan_id: plan.id.clone(),
        scheduled: due.clone(),
        skipped: busy,
    };
    match shared.control.start(&start).await {
        Ok(run) if busy => shared.log(
            Level::Warn,
            "skipped a slot: the plan's previous run is still going",
            json!({ "plan": plan.name, "run": run.id, "scheduled": due }),
        ),
        Ok(run) => {
            running.insert(
                plan.id.clone(),
                task::RunningPlan::start(Arc::clone(shared), plan, run),
            );
        }
        Err(err) => shared.log(
            Level::Warn,
            "cannot start a run",
            json!({ "plan": plan.name, "scheduled": due, "error": err.to_string() }),
        ),
    }
}

/// How long to wait before looking again: until just after the next slot of any plan,
/// at most `poll`, at least a second (a clock behind the server's must not spin).
fn until_next(plans: &[AgentPlan], poll: Duration) -> Duration {
    let now = jiff::Timestamp::now();
    plans
        .iter()
        .filter_map(|p| p.next_run.as_deref()?.parse::<jiff::Timestamp>().ok())
        .map(|next| {
            let ms = (next.as_millisecond() - now.as_millisecond()).max(0) as u64;
            Duration::from_millis(ms + 500)
        })
        .fold(poll, Duration::min)
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_poll() {
        let mut backoff = Backoff::new();
        let poll = Duration::from_secs(30);
        let waits: Vec<u64> = (0..7).map(|_| backoff.wait(poll).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.wait(poll), Duration::from_secs(1));
    }

    fn plan(next_run: Option<String>) -> AgentPlan {
        AgentPlan {
            id: "p".into(),
            name: "p".into(),
            kind: "files".into(),
            sources: vec!["/".into()],
            excludes: vec![],
            schedule: "* * * * *".into(),
            bandwidth_limit: None,
            pre_hook: None,
            post_hook: None,
            enabled: true,
            due: None,
            next_run,
            drill: None,
        }
    }

    #[test]
    fn the_daemon_wakes_for_the_next_slot_but_polls_at_least_every_interval() {
        let poll = Duration::from_secs(30);
        let in_ms = |ms: i64| {
            Some(
                jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond() + ms)
                    .unwrap()
                    .to_string(),
            )
        };
        assert_eq!(until_next(&[], poll), poll);
        assert_eq!(until_next(&[plan(in_ms(3_600_000))], poll), poll);
        let soon = until_next(&[plan(in_ms(3_600_000)), plan(in_ms(5_000))], poll);
        assert!(
            soon > Duration::from_secs(4) && soon <= Duration::from_millis(5_500),
            "{soon:?}"
        );
        assert_eq!(until_next(&[plan(in_ms(-60_000))], poll), Duration::from_secs(1));
    }
}
