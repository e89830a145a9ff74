//! `metadata-backup`: the service's own backup — its database, keys, TLS material and
//! vault catalogs — sealed under a passphrase into a file, keeping the newest few. Only
//! the server knows where its files are and how its database is copied, so it hands the
//! work in as a [`MetadataBackupTask`]; this module runs it on schedule and records it in
//! the operator work log, a failure included.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::audit::{Action, Actor};
use crate::ops::operator_accounts::log_in;
use crate::ops::vault::human_bytes;
use crate::{Service, ServiceError, ServiceResult};

/// Why a run cannot start on a server that has no backup configured.
pub const NOT_CONFIGURED: &str = "this server takes no metadata backups: set metadata_backup_passphrase_file \
     (and metadata_backup_dir) in its configuration, or run `kura-server metadata backup --to FILE` by hand";

/// What a backup wrote, and which older copies it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBackupReport {
    pub file: String,
    pub bytes: u64,
    /// Files in the archive (database, keys, certificates, catalogs, configuration).
    pub files: u64,
    /// Older copies deleted beyond the number kept.
    pub removed: Vec<String>,
}

/// A backup run as the server takes it.
pub type MetadataBackupRun<'a> =
    Pin<Box<dyn Future<Output = Result<MetadataBackupReport, String>> + Send + 'a>>;

/// Takes one metadata backup (the server's way).
pub trait MetadataBackupTask: Send + Sync {
    fn run(&self) -> MetadataBackupRun<'_>;
}

pub(super) async fn run(svc: &Service, actor: &Actor) -> ServiceResult<serde_json::Value> {
    let task = svc
        .metadata_backup
        .as_ref()
        .ok_or_else(|| ServiceError::invalid(NOT_CONFIGURED))?;
    let outcome = task.run().await;
    let (target, result) = match &outcome {
        Ok(report) => (
            report.file.clone(),
            format!(
                "ok: {} files, {}; {} older copies removed",
                report.files,
                human_bytes(report.bytes),
                report.removed.len()
            ),
        ),
        Err(why) => ("metadata backup".to_owned(), format!("failed: {why}")),
    };
    let mut tx = svc.db.begin().await?;
    log_in(
        &mut tx,
        actor,
        svc.now_ms(),
        Action::MetadataBackup,
        &target,
        &result,
    )
    .await?;
    tx.commit().await?;
    let report = outcome.map_err(ServiceError::unavailable)?;
    Ok(serde_json::to_value(report).expect("plain figures"))
}
