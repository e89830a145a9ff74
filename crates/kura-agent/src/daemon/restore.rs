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

use super::{Level, Shared, deliver_outcome, named_problems, on_thread, with_progress};
use crate::image::restore::{ImageFormat, ImageRestoreOptions};
use crate::restore::{RestoreOptions, RestoreProgress};
use crate::{OpenVault, Result};

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
pub(super) struct Restored {
    pub files: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
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
    let outcome = with_progress(restore(&shared, &job, &progress), || async {
        let _ = shared
            .control
            .report_restore(&job.id, &report("running", &progress, None))
            .await;
    })
    .await;
    let (last, level) = match outcome {
        Ok(done) => {
            let error = named_problems(&done.problems, "not restored");
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
    // A server that stays away fails the job itself once it has heard nothing for ten
    // minutes.
    deliver_outcome(|| shared.control.report_restore(&job.id, &last)).await;
    shared.run_ended.notify_one();
}

/// What the daemon restores: a restore job's snapshot into its target, or a drill's
/// into a scratch directory.
pub(super) struct Restoring {
    pub snapshot_id: String,
    pub target: PathBuf,
    pub paths: Vec<String>,
    pub overwrite: bool,
    /// A drill: files are read back and compared with the snapshot; an image is read
    /// through the restore path without being written.
    pub drill: bool,
}

/// Restores the job's snapshot on a thread outside the runtime.
async fn restore(shared: &Shared, job: &AgentRestore, progress: &Arc<RestoreProgress>) -> Result<Restored> {
    let what = Restoring {
        snapshot_id: job.snapshot_id.clone(),
        target: PathBuf::from(&job.target),
        paths: job.paths.clone(),
        overwrite: job.overwrite,
        drill: false,
    };
    restore_snapshot(shared, what, format!("restore {}", job.id), progress).await
}

/// Restores a snapshot as `kura restore` does (with a drill's checks), on a thread of its
/// own. Everything not restored as the snapshot holds it is in [`Restored::problems`].
pub(super) async fn restore_snapshot(
    shared: &Shared,
    what: Restoring,
    thread: String,
    progress: &Arc<RestoreProgress>,
) -> Result<Restored> {
    let vault: Arc<OpenVault> = super::task::vault(shared).await?;
    let id = vault.repo.resolve(&what.snapshot_id).await?;
    let kind = vault.repo.manifest(&id).await?.kind;
    let progress = Arc::clone(progress);
    on_thread(thread, move || {
        if kind == SnapshotKind::Image {
            let summary = if what.drill {
                crate::image::restore::read_through(&vault, &id, progress)
            } else {
                let options = ImageRestoreOptions {
                    target: what.target,
                    overwrite: what.overwrite,
                    format: ImageFormat::Raw,
                };
                crate::image::restore::run(&vault, &id, &options, progress)
            }?;
            return Ok(Restored {
                files: 1,
                bytes: summary.bytes_written,
                problems: summary
                    .damaged
                    .iter()
                    .map(|r| format!("image bytes {}..{}: {}", r.start, r.end, r.cause))
                    .collect(),
            });
        }
        let options = RestoreOptions {
            target: what.target,
            includes: what.paths.iter().map(PathBuf::from).collect(),
            overwrite: what.overwrite,
            verify: what.drill,
        };
        let summary = crate::restore::run(&vault, &id, &options, progress)?;
        Ok(Restored {
            files: summary.files,
            bytes: summary.bytes,
            problems: summary
                .errors
                .into_iter()
                .chain(summary.damaged)
                .chain(summary.mismatches)
                .collect(),
        })
    })
    .await
}
