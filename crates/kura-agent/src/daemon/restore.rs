//! One restore job: claims it (`running`), restores on a thread of its own with the same
//! code as `kura restore` — a files snapshot into a directory (whole, or the paths asked
//! for), an image snapshot onto a file or device — reports progress while it works and
//! the outcome at the end. The restore's own refusals (a non-empty target without
//! `overwrite`, a device too small) fail the job with their words.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kura_api::agent::{AgentRestore, ReportRestore};
use kura_format::SnapshotKind;
use serde_json::json;
use tokio::task::JoinHandle;

use super::{Level, Shared};
use crate::image::restore::{ImageFormat, ImageRestoreOptions};
use crate::restore::{RestoreOptions, RestoreProgress};
use crate::{AgentError, OpenVault, Result};

/// How often a running restore reports its counts.
const PROGRESS_EVERY: Duration = Duration::from_secs(20);

/// Most problems named in a failed job's report.
const NAMED_PROBLEMS: usize = 5;

/// A restore job in progress.
pub(super) struct RunningRestore {
    id: String,
    task: JoinHandle<()>,
}

impl RunningRestore {
    pub fn start(shared: Arc<Shared>, job: AgentRestore) -> Self {
        RunningRestore {
            id: job.id.clone(),
            task: tokio::spawn(perform(shared, job)),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops following the job (the daemon is stopping) and reports it failed, so the
    /// user can ask again; what was written stays in the target.
    pub async fn abandon(&self, shared: &Shared) {
        self.task.abort();
        let report = ReportRestore {
            status: "failed".into(),
            files: 0,
            bytes: 0,
            error: Some("the agent daemon was stopped during the restore; the target may hold part of it: ask again (with overwrite)".into()),
        };
        shared.log(
            Level::Warn,
            "restore abandoned: the daemon is stopping",
            json!({ "restore": self.id }),
        );
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            shared.control.report_restore(&self.id, &report),
        )
        .await;
    }
}

/// What a finished restore wrote, and what it could not.
struct Restored {
    files: u64,
    bytes: u64,
    problems: Vec<String>,
}

fn report(status: &str, progress: &RestoreProgress, error: Option<String>) -> ReportRestore {
    ReportRestore {
        status: status.into(),
        files: progress.files.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        error,
    }
}

async fn perform(shared: Arc<Shared>, job: AgentRestore) {
    let progress = Arc::new(RestoreProgress::default());
    // Claiming the job: a job the server no longer offers (taken, ended) is left alone.
    if let Err(err) = shared
        .control
        .report_restore(&job.id, &report("running", &progress, None))
        .await
    {
        shared.log(
            Level::Warn,
            "cannot start a restore job",
            json!({ "restore": job.id, "error": err.to_string() }),
        );
        return;
    }
    shared.log(
        Level::Info,
        "restore started",
        json!({ "restore": job.id, "snapshot": job.snapshot_id, "target": job.target }),
    );
    let outcome = {
        let restore = restore(&shared, &job, &progress);
        tokio::pin!(restore);
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.tick().await;
        loop {
            tokio::select! {
                outcome = &mut restore => break outcome,
                _ = ticks.tick() => {
                    let _ = shared.control.report_restore(&job.id, &report("running", &progress, None)).await;
                }
            }
        }
    };
    let (last, level) = match outcome {
        Ok(done) => {
            let error = (!done.problems.is_empty()).then(|| {
                let named: Vec<&str> = done
                    .problems
                    .iter()
                    .take(NAMED_PROBLEMS)
                    .map(String::as_str)
                    .collect();
                let more = if done.problems.len() > NAMED_PROBLEMS {
                    "; …"
                } else {
                    ""
                };
                format!("{} not restored: {}{more}", done.problems.len(), named.join("; "))
            });
            let status = if error.is_some() { "failed" } else { "succeeded" };
            let level = if error.is_some() {
                Level::Error
            } else {
                Level::Info
            };
            let last = ReportRestore {
                status: status.into(),
                files: done.files,
                bytes: done.bytes,
                error,
            };
            (last, level)
        }
        Err(err) => (report("failed", &progress, Some(err.to_string())), Level::Error),
    };
    shared.log(
        level,
        &format!("restore {}", last.status),
        json!({ "restore": job.id, "files": last.files, "bytes": last.bytes, "error": last.error }),
    );
    // The outcome is worth a few tries; a server that stays away fails the job itself
    // once it has heard nothing for ten minutes.
    for attempt in 0..5 {
        match shared.control.report_restore(&job.id, &last).await {
            Ok(_) => break,
            Err(err) if err.is_refusal() => break,
            Err(_) => tokio::time::sleep(Duration::from_secs(2 << attempt)).await,
        }
    }
    shared.run_ended.notify_one();
}

/// Restores the job's snapshot on a thread outside the runtime.
async fn restore(shared: &Shared, job: &AgentRestore, progress: &Arc<RestoreProgress>) -> Result<Restored> {
    let vault: Arc<OpenVault> = super::task::vault(shared).await?;
    let id = vault.repo.resolve(&job.snapshot_id).await?;
    let kind = vault.repo.manifest(&id).await?.kind;
    let job = job.clone();
    let progress = Arc::clone(progress);
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("restore {}", job.id))
        .spawn(move || {
            let target = PathBuf::from(&job.target);
            let restored = if kind == SnapshotKind::Image {
                let options = ImageRestoreOptions {
                    target,
                    overwrite: job.overwrite,
                    format: ImageFormat::Raw,
                };
                crate::image::restore::run(&vault, &id, &options, Arc::clone(&progress)).map(|summary| {
                    Restored {
                        files: 1,
                        bytes: summary.bytes_written,
                        problems: summary
                            .damaged
                            .iter()
                            .map(|r| format!("image bytes {}..{}: {}", r.start, r.end, r.cause))
                            .collect(),
                    }
                })
            } else {
                let options = RestoreOptions {
                    target,
                    includes: job.paths.iter().map(PathBuf::from).collect(),
                    overwrite: job.overwrite,
                };
                crate::restore::run(&vault, &id, &options, Arc::clone(&progress)).map(|summary| Restored {
                    files: summary.files,
                    bytes: summary.bytes,
                    problems: summary.errors.into_iter().chain(summary.damaged).collect(),
                })
            };
            let _ = done.send(restored);
        })
        .map_err(|e| AgentError::Usage(format!("cannot start the restore thread: {e}")))?;
    outcome
        .await
        .map_err(|_| AgentError::Aborted("the restore thread ended without an outcome".into()))?
}
