//! Records of the service as the operations hand them around: what is stored, without
//! the SQL that stores it (`db/`) or the JSON that shows it (`kura-server`). Times are
//! milliseconds since the Unix epoch (UTC).

/// Methods of a closed set of names stored as text: `ALL`, `as_str`, `parse`, `Display`,
/// and `FromStr`, where an unknown name (read from the database) is corrupt data.
macro_rules! text_enum {
    ($name:ident, $what:literal, { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $name {
            pub const ALL: [$name; <[&str]>::len(&[$($text),*])] = [$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|value| value.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::db::DbError;

            fn from_str(text: &str) -> Result<Self, crate::db::DbError> {
                Self::parse(text)
                    .ok_or_else(|| crate::db::DbError::Corrupt(format!(concat!("unknown ", $what, " {:?}"), text)))
            }
        }
    };
}

mod alert;
mod approval;
mod drill;
mod event;
mod job;
mod machine;
mod mail;
mod notice;
mod operator;
mod plan;
mod restore;
mod run;
mod support;
mod tenant;
mod termination;
mod user;

pub use alert::{AlertFilter, AlertKind, AlertRecord, NewAlert};
pub use approval::{ApprovalAction, ApprovalRecord, ApprovalStatus};
pub use drill::{DrillCounts, DrillFilter, DrillFrequency, DrillRecord, DrillReport, DrillStatus};
pub use event::{ChainHead, EventRecord, NewEvent};
pub use job::{JobFilter, JobKind, JobRecord, JobStatus, NewJob};
pub use machine::{
    AgentIdentity, LAST_SEEN_RESOLUTION_MS, LatestBackup, MachineActivity, MachineRecord, NewMachine,
    RegistrationOutcome, SnapshotFacts,
};
pub use mail::{Language, MailAudience, MailRecipient, MailRecord, MailStatus, NewMail};
pub use notice::{NoticeKind, NoticeRecord, NoticeText, TenantNotice};
pub use operator::{
    OperatorCandidate, OperatorRecord, OperatorSessionIdentity, OperatorSessionRecord, OperatorTokenIdentity,
    OperatorTokenRecord,
};
pub use plan::{BandwidthLimit, PlanKind, PlanRecord, PlanRetention, PlanSpec};
pub use restore::{RestoreRecord, RestoreReport, RestoreStatus};
pub use run::{RunCounts, RunFilter, RunRecord, RunReport, RunStatus};
pub use support::{RequestCategory, RequestFilter, RequestStatus, SupportMessage, SupportRequestRecord};
pub use tenant::{MeterRow, NewTenant, TenantActivity, TenantRecord, TenantStatus, TenantUpdate, UsageDay};
pub use termination::{
    DELETION_RECORD_FORMAT, DeletionRecord, DeletionSummary, PurgeCounts, RecordSignature,
    SignedDeletionRecord, TerminationRecord,
};
pub use user::{
    ApiTokenIdentity, ApiTokenRecord, LoginCandidate, LoginFailures, NewApiToken, NewTenantUser,
    NewUserSession, SessionIdentity, TenantUserRecord, TotpState, UserSessionRecord, UserUpdate,
};
