//! The job runner: one scheduler loop per server that queues the periodic rounds, judges
//! plan runs, restore jobs and drills (missed slots, silent agents:
//! `kura_service::ops::runs::sweep`, `…::restores::sweep`, `…::drills::sweep`), takes
//! due jobs under a lease (`kura_service::jobs::claim`) and runs each in a worker task,
//! renewing the lease while it works. A worker that panics fails its job with the panic's
//! message; the loop goes on (and a panic of the loop itself restarts it). At shutdown the loop stops taking work, waits for running
//! jobs up to `shutdown_grace`, and puts what is still unfinished back in the queue; a
//! job of a server that crashed is taken over by any server once its lease runs out.

use std::time::{Duration, Instant};

use kura_service::Service;
use kura_service::jobs::{self, Progress};
use kura_service::model::JobRecord;
use kura_service::secrets::random_hex;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How often the loop judges plan runs (missed slots, silent agents): often enough that
/// a missed backup is noticed within a minute of its grace.
const RUN_SWEEP_EVERY: Duration = Duration::from_secs(15);

/// How the runner runs, from the configuration.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub tick: Duration,
    pub lease: Duration,
    pub workers: usize,
    pub grace: Duration,
}

/// A started runner.
pub struct JobRunner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    owner: String,
}

impl JobRunner {
    /// Starts the loop. `owner` names this server in job leases.
    pub fn start(service: Service, settings: RunnerSettings) -> JobRunner {
        let owner = format!("server-{}-{}", std::process::id(), random_hex(4));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(service, settings, owner.clone(), stopped));
        JobRunner { stop, task, owner }
    }

    /// The name this server's leases carry.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops taking work, waits for running jobs (up to the grace period) and puts the
    /// rest back in the queue.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the job runner ended abnormally");
        }
    }
}

/// Runs the loop, and starts it again if it panics (a panic of the loop itself, not of a
/// job: those fail their job): the jobs it was running lost their workers, so they are put
/// back in the queue first.
async fn supervise(
    service: Service,
    settings: RunnerSettings,
    owner: String,
    stopped: watch::Receiver<bool>,
) {
    loop {
        let run = tokio::spawn(run_loop(
            service.clone(),
            settings.clone(),
            owner.clone(),
            stopped.clone(),
        ));
        match run.await {
            Err(err) if err.is_panic() && !*stopped.borrow() => {
                tracing::error!(error = %err, "the job runner's loop panicked; starting it again");
                if let Err(err) = jobs::release(&service, &owner).await {
                    tracing::warn!(error = %err.message, "cannot put the loop's jobs back; they are taken over when their lease runs out");
                }
                tokio::time::sleep(settings.tick).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "the job runner's loop ended abnormally");
                return;
            }
            Ok(()) => return,
        }
    }
}

async fn sweep_runs(service: &Service) {
    match kura_service::ops::runs::sweep(service).await {
        Ok(report) if report.missed > 0 || report.silent > 0 => {
            tracing::info!(missed = report.missed, silent = report.silent, "plan runs judged");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err.message, "cannot judge plan runs; will try again"),
    }
    match kura_service::ops::restores::sweep(service).await {
        Ok(0) => {}
        Ok(failed) => tracing::info!(failed, "restore jobs whose machine went silent failed"),
        Err(err) => tracing::warn!(error = %err.message, "cannot judge restore jobs; will try again"),
    }
    match kura_service::ops::drills::sweep(service).await {
        Ok(0) => {}
        Ok(abandoned) => tracing::info!(abandoned, "drills whose machine went silent abandoned"),
        Err(err) => tracing::warn!(error = %err.message, "cannot judge drills; will try again"),
    }
}

async fn run_loop(
    service: Service,
    settings: RunnerSettings,
    owner: String,
    mut stopped: watch::Receiver<bool>,
) {
    tracing::info!(owner = %owner, "job runner started");
    let mut running: JoinSet<()> = JoinSet::new();
    let mut last_sweep: Option<Instant> = None;
    loop {
        while running.try_join_next().is_some() {}
        if let Err(err) = jobs::queue_due(&service).await {
            tracing::warn!(error = %err.message, "cannot queue periodic jobs; will try again");
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= RUN_SWEEP_EVERY) {
            last_sweep = Some(Instant::now());
            sweep_runs(&service).await;
        }
        while running.len() < settings.workers.max(1) {
            match jobs::claim(&service, &owner, settings.lease).await {
                Ok(Some(job)) => {
                    running.spawn(run_job(service.clone(), owner.clone(), job, settings.lease));
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err.message, "cannot take jobs; will try again");
                    break;
                }
            }
        }
        tokio::select! {
            _ = stopped.changed() => break,
            _ = service.work_queued.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            () = tokio::time::sleep(settings.tick) => {}
        }
    }
    let waited = tokio::time::timeout(settings.grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if waited.is_err() {
        tracing::warn!(
            jobs = running.len(),
            "jobs still running at shutdown are put back in the queue"
        );
        running.shutdown().await;
    }
    match jobs::release(&service, &owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "unfinished jobs put back in the queue"),
        Err(err) => {
            tracing::warn!(error = %err.message, "cannot put unfinished jobs back; they are taken over when their lease runs out")
        }
    }
    tracing::info!(owner = %owner, "job runner stopped");
}

/// Aborts the task it holds when dropped, so a worker cut off at shutdown does not leave
/// its job's work running on.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_job(service: Service, owner: String, job: JobRecord, lease: Duration) {
    let started = std::time::Instant::now();
    tracing::info!(job = %job.id, kind = %job.kind, tenant = ?job.tenant_id, attempt = job.attempts, "job started");
    let progress = Progress::default();
    let mut work = AbortOnDrop(tokio::spawn({
        let (service, job, progress) = (service.clone(), job.clone(), progress.clone());
        async move { jobs::execute(&service, &job, &progress).await }
    }));
    let mut renewal = tokio::time::interval(lease / 3);
    renewal.tick().await;
    let outcome = loop {
        tokio::select! {
            joined = &mut work.0 => break joined,
            _ = renewal.tick() => {
                match jobs::renew(&service, &job, &owner, lease, progress.take().as_deref()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %job.id, "lost the job's lease (another server took it over); stopping it here");
                        return;
                    }
                    Err(err) => tracing::warn!(job = %job.id, error = %err.message, "cannot renew the job's lease"),
                }
            }
        }
    };
    let outcome = match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.message),
        Err(err) if err.is_panic() => Err(format!("the job panicked: {}", panic_message(err.into_panic()))),
        Err(err) => Err(format!("the job's task ended abnormally: {err}")),
    };
    let status = if outcome.is_ok() { "succeeded" } else { "failed" };
    metrics::counter!("kura_jobs_total", "kind" => job.kind.as_str(), "status" => status).increment(1);
    metrics::histogram!("kura_job_duration_seconds", "kind" => job.kind.as_str(), "status" => status)
        .record(started.elapsed().as_secs_f64());
    match &outcome {
        Ok(_) => {
            tracing::info!(job = %job.id, kind = %job.kind, seconds = started.elapsed().as_secs_f64(), "job succeeded")
        }
        Err(why) => tracing::warn!(job = %job.id, kind = %job.kind, error = %why, "job failed"),
    }
    match jobs::finish(&service, &job, &owner, outcome).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(job = %job.id, "the job's lease was lost before it ended; the other server's run counts")
        }
        Err(err) => {
            tracing::error!(job = %job.id, error = %err.message, "cannot record the job's end; it is taken over when its lease runs out")
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
