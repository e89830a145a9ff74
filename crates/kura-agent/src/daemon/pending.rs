//! Reports the server has not taken yet (it was down, or the network was): kept in a file
//! in the daemon's state directory, so an outcome survives a restart of the daemon too,
//! and sent again, oldest first, until the server takes them.

use std::io::Write;
use std::path::{Path, PathBuf};

use kura_api::agent::ReportRun;
use serde::{Deserialize, Serialize};

use crate::{AgentError, Result};

/// One report waiting to be delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingReport {
    pub run_id: String,
    pub report: ReportRun,
}

/// The waiting reports and the file that keeps them.
pub(crate) struct PendingReports {
    path: PathBuf,
    reports: Vec<PendingReport>,
}

impl PendingReports {
    /// Reads the reports left by an earlier daemon (none when there is no file).
    pub fn load(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join("pending-reports.json");
        let reports = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AgentError::Usage(format!(
                    "{} is not a list of run reports ({e}); move it away to start afresh",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(AgentError::Io { path, source }),
        };
        Ok(PendingReports { path, reports })
    }

    /// The waiting reports, oldest first.
    pub fn reports(&self) -> &[PendingReport] {
        &self.reports
    }

    /// Keeps a report to deliver later; a newer report on the same run replaces the older.
    pub fn push(&mut self, report: PendingReport) -> Result<()> {
        self.reports.retain(|r| r.run_id != report.run_id);
        self.reports.push(report);
        self.save()
    }

    /// Forgets a report the server has taken (or refused for good).
    pub fn remove(&mut self, run_id: &str) -> Result<()> {
        self.reports.retain(|r| r.run_id != run_id);
        self.save()
    }

    /// Writes the file whole (replaced atomically), or removes it when nothing waits.
    fn save(&self) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AgentError::Io { path, source }
        };
        if self.reports.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.path)(e)),
                _ => Ok(()),
            };
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let text = serde_json::to_vec_pretty(&self.reports)
            .map_err(|e| AgentError::Usage(format!("cannot encode run reports: {e}")))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        file.write_all(&text)
            .and_then(|()| file.as_file().sync_all())
            .map_err(io(&self.path))?;
        file.persist(&self.path).map_err(|e| io(&self.path)(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(run_id: &str, status: &str) -> PendingReport {
        PendingReport {
            run_id: run_id.into(),
            report: ReportRun {
                status: status.into(),
                files: 1,
                bytes_read: 2,
                bytes_added: 3,
                snapshot_id: None,
                error: None,
            },
        }
    }

    #[test]
    fn reports_survive_a_restart_and_the_file_goes_when_all_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut pending = PendingReports::load(dir.path()).unwrap();
        assert!(pending.reports().is_empty());
        pending.push(report("a", "running")).unwrap();
        pending.push(report("b", "failed")).unwrap();
        pending.push(report("a", "succeeded")).unwrap();
        let again = PendingReports::load(dir.path()).unwrap();
        assert_eq!(
            again.reports(),
            &[report("b", "failed"), report("a", "succeeded")]
        );
        pending.remove("b").unwrap();
        pending.remove("a").unwrap();
        assert!(!dir.path().join("pending-reports.json").exists());
        assert!(PendingReports::load(dir.path()).unwrap().reports().is_empty());
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pending-reports.json"), b"{not json").unwrap();
        let err = PendingReports::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("pending-reports.json"), "{err}");
    }
}
