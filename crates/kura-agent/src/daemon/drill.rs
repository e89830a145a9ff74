//! One restore drill: the server offers it with the machine's plans when it is due and the
//! machine is quiet. The daemon starts it, restores the snapshot into a scratch directory
//! of its own with the restore code, reading every file back and comparing it with the
//! snapshot (an image snapshot is read through the restore path without being written),
//! deletes the scratch copy and reports files, bytes and what did not come back as backed
//! up. Stopping the daemon abandons the drill: no verdict, tried again later.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kura_api::agent::{AgentPlan, DrillView, ReportDrill, StartDrill};
use serde_json::json;
use tokio::task::JoinHandle;

use super::restore::{Restoring, restore_snapshot};
use super::{Level, Shared, deliver_outcome, named_problems, with_progress};
use crate::restore::RestoreProgress;

/// A drill in progress.
pub(super) struct RunningDrill {
    plan_name: String,
    /// The drill's id, once the server has started it.
    id: Arc<Mutex<Option<String>>>,
    scratch: PathBuf,
    task: JoinHandle<()>,
}

impl RunningDrill {
    pub fn start(shared: Arc<Shared>, plan: &AgentPlan, snapshot_id: String) -> Self {
        let scratch = shared.options.drill_dir.join(format!("plan-{}", plan.id));
        let id = Arc::new(Mutex::new(None));
        let task = tokio::spawn(perform(
            shared,
            StartDrill {
                plan_id: plan.id.clone(),
                snapshot_id,
            },
            plan.name.clone(),
            scratch.clone(),
            Arc::clone(&id),
        ));
        RunningDrill {
            plan_name: plan.name.clone(),
            id,
            scratch,
            task,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the drill (the daemon is stopping), reports it abandoned and removes what it
    /// restored so far.
    pub async fn abandon(&self, shared: &Shared) {
        self.task.abort();
        shared.log(
            Level::Warn,
            "drill abandoned: the daemon is stopping",
            json!({ "plan": self.plan_name }),
        );
        let id = self.id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(id) = id {
            let report = ReportDrill {
                status: "abandoned".into(),
                files: 0,
                bytes: 0,
                mismatches: 0,
                error: Some("the agent daemon was stopped during the drill; it is tried again later".into()),
            };
            let _ =
                tokio::time::timeout(Duration::from_secs(3), shared.control.report_drill(&id, &report)).await;
        }
        remove_scratch(shared, &self.scratch);
    }
}

fn counts(status: &str, progress: &RestoreProgress) -> ReportDrill {
    ReportDrill {
        status: status.into(),
        files: progress.files.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        mismatches: 0,
        error: None,
    }
}

/// Deletes a scratch copy; a leftover is logged (it holds a copy of backed-up files).
fn remove_scratch(shared: &Shared, scratch: &Path) {
    match std::fs::remove_dir_all(scratch) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => shared.log(
            Level::Error,
            "cannot delete a drill's scratch copy; delete it by hand",
            json!({ "path": scratch.display().to_string(), "error": err.to_string() }),
        ),
    }
}

/// The directory drills restore into, readable by the daemon's user only: the copies are
/// of backed-up files.
fn prepare(drill_dir: &Path, scratch: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(drill_dir)?;
    // A copy left by a daemon that was killed during a drill.
    match std::fs::remove_dir_all(scratch) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

async fn perform(
    shared: Arc<Shared>,
    start: StartDrill,
    plan_name: String,
    scratch: PathBuf,
    id_slot: Arc<Mutex<Option<String>>>,
) {
    let drill: DrillView = match shared.control.start_drill(&start).await {
        Ok(drill) => drill,
        Err(err) => {
            shared.log(
                Level::Warn,
                "cannot start a drill",
                json!({ "plan": plan_name, "error": err.to_string() }),
            );
            return;
        }
    };
    *id_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(drill.id.clone());
    shared.log(
        Level::Info,
        "drill started",
        json!({ "plan": plan_name, "drill": drill.id, "snapshot": drill.snapshot_id }),
    );
    let progress = Arc::new(RestoreProgress::default());
    let outcome = match prepare(&shared.options.drill_dir, &scratch) {
        Err(err) => Err(crate::AgentError::io(&scratch, err)),
        Ok(()) => {
            let what = Restoring {
                snapshot_id: drill.snapshot_id.clone(),
                target: scratch.clone(),
                paths: Vec::new(),
                overwrite: false,
                drill: true,
            };
            let thread = format!("drill {}", drill.id);
            with_progress(restore_snapshot(&shared, what, thread, &progress), || async {
                let _ = shared
                    .control
                    .report_drill(&drill.id, &counts("running", &progress))
                    .await;
            })
            .await
        }
    };
    remove_scratch(&shared, &scratch);
    let last = match outcome {
        Ok(done) => ReportDrill {
            status: if done.problems.is_empty() {
                "passed"
            } else {
                "failed"
            }
            .into(),
            files: done.files,
            bytes: done.bytes,
            mismatches: done.problems.len() as u64,
            error: named_problems(&done.problems, "not restored as backed up"),
        },
        Err(err) => ReportDrill {
            error: Some(err.to_string()),
            ..counts("failed", &progress)
        },
    };
    let level = if last.status == "passed" {
        Level::Info
    } else {
        Level::Error
    };
    shared.log(
        level,
        &format!("drill {}", last.status),
        json!({
            "plan": plan_name,
            "drill": drill.id,
            "files": last.files,
            "bytes": last.bytes,
            "mismatches": last.mismatches,
            "error": last.error,
        }),
    );
    // A server that stays away abandons the drill itself after ten minutes.
    deliver_outcome(|| shared.control.report_drill(&drill.id, &last)).await;
    shared.run_ended.notify_one();
}
