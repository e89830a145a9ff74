//! One run of a plan: opens the vault (unlocked once per daemon), backs up on a thread of
//! its own as `kura backup` does, with uploads paced by the plan's bandwidth limit, and
//! reports progress while it works and the outcome at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kura_api::agent::{AgentPlan, ReportRun, RunView};
use serde_json::json;
use tokio::task::JoinHandle;

use super::{Level, Shared, named_problems, on_thread, with_progress};
use crate::backup::{self, BackupOptions, BackupProgress, BackupSummary};
use crate::image::backup::ImageBackupOptions;
use crate::{AgentError, OpenVault, RemoteRepository, Result, hooks};

/// A run in progress.
pub(super) struct RunningPlan {
    run: RunView,
    plan_name: String,
    progress: Arc<BackupProgress>,
    task: JoinHandle<()>,
}

impl RunningPlan {
    pub fn start(shared: Arc<Shared>, plan: AgentPlan, run: RunView) -> Self {
        let progress = Arc::new(BackupProgress::default());
        shared.log(
            Level::Info,
            "backup started",
            json!({ "plan": plan.name, "run": run.id, "scheduled": run.scheduled }),
        );
        let plan_name = plan.name.clone();
        let task = tokio::spawn(perform(
            Arc::clone(&shared),
            plan,
            run.id.clone(),
            Arc::clone(&progress),
        ));
        RunningPlan {
            run,
            plan_name,
            progress,
            task,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops following the run (the daemon is stopping) and reports it failed: its
    /// backup is cut off like a killed one, and the next run resumes the upload.
    pub async fn abandon(&self, shared: &Shared) {
        self.task.abort();
        let report = ReportRun {
            status: "failed".into(),
            error: Some(
                "the agent daemon was stopped during the backup; no snapshot was saved, and the next run resumes the upload"
                    .into(),
            ),
            ..counts(&self.progress)
        };
        shared.log(
            Level::Warn,
            "backup abandoned: the daemon is stopping",
            json!({ "plan": self.plan_name, "run": self.run.id }),
        );
        // A stopping daemon does not wait long for the server; the report is kept instead.
        if tokio::time::timeout(
            Duration::from_secs(3),
            shared.control.report(&self.run.id, &report),
        )
        .await
        .is_ok_and(|sent| sent.is_ok())
        {
            return;
        }
        shared.keep(super::PendingReport {
            run_id: self.run.id.clone(),
            report,
        });
    }
}

/// The counts so far, as a `running` report.
fn counts(progress: &BackupProgress) -> ReportRun {
    ReportRun {
        status: "running".into(),
        files: progress.files.load(Ordering::Relaxed),
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        bytes_added: 0,
        snapshot_id: None,
        error: None,
    }
}

async fn perform(shared: Arc<Shared>, plan: AgentPlan, run_id: String, progress: Arc<BackupProgress>) {
    let outcome = with_progress(back_up(&shared, &plan, &progress), || async {
        let _ = shared.control.report(&run_id, &counts(&progress)).await;
    })
    .await;
    let report = match outcome {
        Ok(summary) => outcome_report(&summary),
        Err(err) => ReportRun {
            status: "failed".into(),
            error: Some(err.to_string()),
            ..counts(&progress)
        },
    };
    let level = match report.status.as_str() {
        "succeeded" => Level::Info,
        "partial" => Level::Warn,
        _ => Level::Error,
    };
    shared.log(
        level,
        &format!("backup {}", report.status),
        json!({
            "plan": plan.name,
            "run": run_id,
            "files": report.files,
            "bytes_read": report.bytes_read,
            "bytes_added": report.bytes_added,
            "snapshot": report.snapshot_id,
            "error": report.error,
        }),
    );
    shared.deliver(&run_id, report).await;
    shared.run_ended.notify_one();
}

/// What a finished backup reports: `partial` when files could not be read or the
/// post-hook failed (the snapshot was saved either way).
fn outcome_report(summary: &BackupSummary) -> ReportRun {
    let error = named_problems(&summary.errors, "not backed up");
    ReportRun {
        status: if error.is_some() { "partial" } else { "succeeded" }.into(),
        files: summary.files,
        bytes_read: summary.bytes_read,
        bytes_added: summary.bytes_added,
        snapshot_id: Some(summary.snapshot_id.clone()),
        error,
    }
}

/// The vault, opened once and kept for later runs.
pub(super) async fn vault(shared: &Shared) -> Result<Arc<OpenVault>> {
    let mut cached = shared.vault.lock().await;
    if let Some(vault) = cached.as_ref() {
        return Ok(Arc::clone(vault));
    }
    let repo = Arc::new(RemoteRepository::open(&shared.options.connection).await?);
    let passphrase = shared.options.passphrase.clone();
    let vault = Arc::new(
        OpenVault::unlock(repo, || {
            passphrase.ok_or_else(|| {
                AgentError::Usage(
                    "the vault is encrypted and this machine has no key of its own: run `kura key add --machine` \
                     once (or start the daemon with --password-file FILE)"
                        .into(),
                )
            })
        })
        .await?,
    );
    *cached = Some(Arc::clone(&vault));
    Ok(vault)
}

/// Runs the plan's backup, with its hooks, on a thread outside the runtime.
async fn back_up(shared: &Shared, plan: &AgentPlan, progress: &Arc<BackupProgress>) -> Result<BackupSummary> {
    let unlocked = vault(shared).await?;
    // A connection of the run's own, paced by the plan's upload limit.
    let repo = RemoteRepository::open(&shared.options.connection)
        .await?
        .with_upload_limit(plan.bandwidth_limit);
    let vault = OpenVault {
        repo: Arc::new(repo),
        ..(*unlocked).clone()
    };
    let plan = plan.clone();
    let host = shared.options.host.clone();
    let progress = Arc::clone(progress);
    on_thread(format!("backup {}", plan.name), move || {
        back_up_now(&vault, &plan, host, progress)
    })
    .await
}

fn back_up_now(
    vault: &OpenVault,
    plan: &AgentPlan,
    host: String,
    progress: Arc<BackupProgress>,
) -> Result<BackupSummary> {
    if let Some(cmd) = &plan.pre_hook {
        hooks::run_hook("pre-hook", cmd)?;
    }
    let tags = vec![format!("plan:{}", plan.name)];
    let outcome = if plan.kind == "image" {
        let [path] = plan.sources.as_slice() else {
            return Err(AgentError::Usage(
                "an image plan backs up exactly one device or image file".into(),
            ));
        };
        let options = ImageBackupOptions {
            path: PathBuf::from(path),
            tags,
            source: None,
            host,
            force_full: false,
        };
        crate::image::backup::run(vault, &options, progress)
    } else {
        let options = BackupOptions {
            paths: plan.sources.iter().map(PathBuf::from).collect(),
            excludes: plan.excludes.clone(),
            tags,
            host,
            ..BackupOptions::default()
        };
        backup::run(vault, &options, progress)
    };
    let post_hook = plan
        .post_hook
        .as_deref()
        .and_then(|cmd| hooks::run_hook("post-hook", cmd).err());
    let mut summary = outcome?;
    if let Some(err) = post_hook {
        summary.errors.push(format!("{err} (the snapshot was saved)"));
    }
    Ok(summary)
}
