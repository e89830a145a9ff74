//! Alerts: what needs a person's attention in a tenant, open until what caused it is
//! over (a later successful run, storage back under the level, a clean verify, the
//! machine heard from again).

use crate::ids::{AlertId, MachineId, PlanId};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    BackupFailed,
    BackupMissed,
    BackupPartial,
    QuotaWarning,
    QuotaExceeded,
    VerifyFailed,
    DrillFailed,
    MachineSilent,
}

text_enum!(AlertKind, "alert kind", {
    BackupFailed = "backup-failed",
    BackupMissed = "backup-missed",
    BackupPartial = "backup-partial",
    QuotaWarning = "quota-warning",
    QuotaExceeded = "quota-exceeded",
    VerifyFailed = "verify-failed",
    DrillFailed = "drill-failed",
    MachineSilent = "machine-silent",
});

/// One alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub id: AlertId,
    pub kind: AlertKind,
    pub machine_id: Option<MachineId>,
    pub plan_id: Option<PlanId>,
    /// The plan's name when the alert was raised.
    pub plan_name: Option<String>,
    /// What happened, most recently.
    pub message: String,
    pub opened_ms: i64,
    /// When it last happened again (the opening time if it has not).
    pub last_ms: i64,
    /// How often it happened while open.
    pub occurrences: u64,
    pub resolved_ms: Option<i64>,
    /// What resolved it.
    pub resolution: Option<String>,
}

impl AlertRecord {
    pub fn is_open(&self) -> bool {
        self.resolved_ms.is_none()
    }
}

/// An alert about to be raised.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub kind: AlertKind,
    pub machine_id: Option<MachineId>,
    pub plan_id: Option<PlanId>,
    pub plan_name: Option<String>,
    /// The quota level (percent) a quota alert is about.
    pub level: Option<u32>,
    pub message: String,
}

impl NewAlert {
    /// What the alert is about (kind, machine, plan, level): a subject has at most one
    /// open alert.
    pub fn subject(&self) -> String {
        let mut subject = format!(
            "{}:{}:{}",
            self.kind,
            self.machine_id.as_ref().map_or("-", MachineId::as_str),
            self.plan_id.as_ref().map_or("-", PlanId::as_str)
        );
        if let Some(level) = self.level {
            subject.push_str(&format!(":{level}"));
        }
        subject
    }
}

/// Which alerts a listing answers; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `Some(true)`: open ones only; `Some(false)`: resolved ones only.
    pub open: Option<bool>,
    pub kind: Option<AlertKind>,
    pub machine: Option<MachineId>,
    pub plan: Option<PlanId>,
    pub limit: u32,
}
