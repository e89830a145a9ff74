//! The event log: what can be recorded ([`Action`], the event catalogue that
//! `docs/events.md` is generated from), who is acting ([`Actor`]), how an operation
//! records its event inside its own transaction ([`record`]), and the hash chains
//! ([`chain`]).

use std::net::IpAddr;

use crate::db::{DbResult, Tx, events};
use crate::model::NewEvent;

pub mod chain;

pub use chain::{ChainBreak, GENESIS_HASH, VerifiedLog, event_hash, verify};
pub use events::{Chain, OPERATOR_CHAIN};

/// Defines [`Action`] from one table: variant, wire name, which log, and what it means.
macro_rules! actions {
    ($($variant:ident = $wire:literal, $log:literal, $doc:literal;)*) => {
        /// Everything the event log can record. The wire name is what the `action` column
        /// holds and what exports show.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $(#[doc = $doc] $variant,)*
        }

        impl Action {
            /// Every action, in the order of the catalogue.
            pub const ALL: &[Action] = &[$(Action::$variant,)*];

            /// The name stored in the `action` column.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $wire,)*
                }
            }

            /// Which log the action goes to.
            pub fn log(self) -> &'static str {
                match self {
                    $(Action::$variant => $log,)*
                }
            }

            /// What the action records, for `docs/events.md`.
            pub fn description(self) -> &'static str {
                match self {
                    $(Action::$variant => $doc,)*
                }
            }
        }
    };
}

actions! {
    Login = "login", "tenant (operators for unknown login IDs)",
        "A sign-in attempt: `ok`, `failed`, `failed: wrong TOTP code`, or `refused: …` (throttled, locked, TOTP code missing).";
    LoginLockout = "login.lockout", "tenant (operators for unknown login IDs)",
        "Failed sign-ins locked a login ID or a source address; the result says until when.";
    Logout = "logout", "tenant", "A user signed out.";
    AdminAccess = "admin.access", "tenant",
        "An admin's sign-in or request came from outside the tenant's admin networks and was refused.";
    UserPassword = "user.password", "tenant",
        "A user changed their password (`ok`), or gave a wrong old password (`refused: …`).";
    SessionRevoke = "session.revoke", "tenant", "A user ended one of their sessions.";
    CsrfRefused = "session.csrf_refused", "tenant",
        "A signed-in user's request that would change something came without its CSRF token (a forged form, or a page older than the session) and was refused.";
    TokenCreate = "token.create", "tenant", "An API token was created; the result names its role and expiry.";
    TokenRevoke = "token.revoke", "tenant", "An API token was revoked.";
    UserCreate = "user.create", "tenant", "A user was added; the result names the role.";
    UserUpdate = "user.update", "tenant",
        "A user's role, e-mail address or state changed (disabled, enabled, unlocked, TOTP reset), or the change was refused.";
    UserDelete = "user.delete", "tenant", "A user was deleted with their sessions and API tokens, or the deletion was refused.";
    TenantAdminNetworks = "tenant.admin_networks", "tenant", "The admin IP allow-list was replaced; the target lists it.";
    TenantTotpPolicy = "tenant.totp_policy", "tenant", "The tenant's TOTP policy changed.";
    EventsExport = "events.export", "tenant", "The event log was read or downloaded (JSON or CSV).";
    TotpEnroll = "totp.enroll", "tenant", "A user started TOTP enrolment.";
    TotpEnable = "totp.enable", "tenant", "A user finished TOTP enrolment with a code.";
    TotpDisable = "totp.disable", "tenant", "A user turned TOTP off, or gave a wrong password or code for it (`refused: …`).";
    SupportGrant = "support.grant", "tenant", "A tenant admin granted operators support access; the result says until when.";
    SupportRevoke = "support.revoke", "tenant", "A tenant admin withdrew support access.";
    PasswordForgot = "password.forgot", "tenant (operators for unknown login IDs)",
        "Someone asked for a password reset link; the result says whether one was sent and why not.";
    PasswordReset = "password.reset", "tenant", "A password was set with a reset link.";
    PasswordForceReset = "password.force_reset", "tenant",
        "A user admin forced a password reset: the old password stopped working and a link was sent.";
    MachineRegister = "machine.register", "tenant", "An agent registered a machine with a registration token.";
    RegistrationTokenIssue = "registration_token.issue", "tenant",
        "A tenant user issued a one-time registration token for a new machine; the result says until when it works.";
    MachineRename = "machine.rename", "tenant", "A tenant user renamed a machine; the result gives the old and new names.";
    MachineRevoke = "machine.revoke", "tenant", "A tenant user revoked a machine's credential (and removed its own key slot, if it had one).";
    MachineKeySlot = "machine.key_slot", "tenant",
        "A machine added its own key slot to the encrypted vault (unattended unlock by its agent daemon); the result names the slot and the one it replaced.";
    PlanCreate = "plan.create", "tenant",
        "A tenant user added a protection plan; the result sums it up (kind, name, schedule, machines).";
    PlanUpdate = "plan.update", "tenant", "A tenant user changed a protection plan; the result sums up the plan as changed.";
    PlanDelete = "plan.delete", "tenant", "A tenant user deleted a protection plan (its snapshots stay).";
    RetentionApply = "retention.apply", "tenant",
        "After a plan's run saved a snapshot, the service applied the plan's retention to that machine and source: the target names plan, machine and source, the result what was forgotten and what was kept back (immutability, the newest snapshot).";
    AlertRaise = "alert.raise", "tenant",
        "The service raised an alert (a backup failed, was missed or was partial; storage passed a quota level; verify or a restore drill found damage; a machine went silent): the target names kind, machine and plan, the result what happened and who was mailed.";
    AlertResolve = "alert.resolve", "tenant",
        "An open alert was resolved: the result says what resolved it (a later successful run, storage back under the level, a clean verify, the machine heard from again, the machine revoked or the plan deleted).";
    BackupUpload = "backup.upload", "tenant", "An upload was refused (for example by the storage quota).";
    BackupCommit = "backup.commit", "tenant", "An agent committed a snapshot.";
    RestoreStart = "restore.start", "tenant", "An agent started restoring a snapshot (by `kura restore`, or a restore job).";
    RestoreRequest = "restore.request", "tenant",
        "A user asked a machine to restore a snapshot (a restore job): the target names snapshot and machine, the result the directory or device, and whose snapshot it is when it is another machine's.";
    SnapshotDownload = "snapshot.download", "tenant",
        "A user downloaded a file, or a folder as a `.tar`, from a snapshot (web restore): the target is the snapshot and the path, the result the bytes sent (`ok: N bytes`) or how far it got before the client left or reading failed.";
    SnapshotUnlock = "snapshot.unlock", "tenant",
        "A passphrase sent to browse or download a snapshot of the tenant's encrypted vault opened none of its key slots (`refused: wrong passphrase`).";
    SnapshotForget = "snapshot.forget", "tenant", "An agent tried to delete snapshots and was refused (agents are append-only).";
    VaultGc = "vault.gc", "tenant",
        "Garbage collection of the tenant's vault: a `gc` job's run (the result says what it freed), or an agent's attempt, refused.";
    VaultVerify = "vault.verify", "tenant",
        "A `verify` job checked the tenant's vault; the result says what it read, the damage it found and what repair healed.";
    VaultRebuild = "vault.rebuild", "tenant, and operators",
        "A `rebuild-catalog` job made the tenant's vault catalog anew from the objects in storage; the result counts the snapshots found again and dropped, the packs indexed and those missing from storage (their chunks marked lost, as verify would), the snapshots given back to their machine, and the snapshots left incomplete.";
    MetadataBackup = "service.metadata_backup", "operators",
        "The service's own metadata (database, keys, TLS material, vault catalogs) was backed up into a sealed file by a `metadata-backup` job; the target is the file, the result its size and the older copies removed, or why it failed.";
    MailSent = "mail.sent", "tenant (operators for service mail)",
        "A message left the outbox; the target is the address, the result its kind and language.";
    MailGivenUp = "mail.failed", "tenant (operators for service mail)",
        "A message was given up (the mail server refused it, or it could not be sent before it expired); the result says why.";
    VaultKeySlotRemove = "vault.key_slot.remove", "tenant", "An agent tried to remove a key slot and was refused.";
    OperatorLogin = "operator.login", "operators",
        "An operator's sign-in attempt: `ok`, `ok: first sign-in, setup required`, `failed`, `failed: wrong TOTP code`, or `refused: …` (throttled, locked, TOTP code missing).";
    OperatorLoginLockout = "operator.login.lockout", "operators",
        "Failed operator sign-ins locked a login ID or a source address; the result says until when.";
    OperatorLogout = "operator.logout", "operators", "An operator signed out of the console.";
    OperatorAccess = "operator.access", "operators",
        "An operator's sign-in or request came from outside the management networks (`operator_networks`) and was refused.";
    OperatorAccountCreate = "operator.account.create", "operators",
        "An operator account was created (by an operator-admin, or by the process owner with `kura-server operator create`); the result names the role.";
    OperatorAccountUpdate = "operator.account.update", "operators",
        "An operator account was disabled, enabled or had its TOTP reset; the result says which.";
    OperatorPassword = "operator.password", "operators",
        "An operator set their own password (`ok`), or gave a wrong current password (`refused: …`).";
    OperatorTotpEnroll = "operator.totp.enroll", "operators", "An operator started TOTP enrolment.";
    OperatorTotpEnable = "operator.totp.enable", "operators", "An operator finished TOTP enrolment with a code.";
    OperatorTokenCreate = "operator.token.create", "operators",
        "An operator issued an API token; the result names its role and expiry.";
    OperatorTokenRevoke = "operator.token.revoke", "operators", "An operator API token was revoked.";
    OperatorSessionRevoke = "operator.session.revoke", "operators",
        "An operator ended one of their console sessions, or every session of an account ended with its disabling.";
    NoticePublish = "notice.publish", "operators, and each tenant it is for",
        "An operator published a notice (service change, maintenance, incident): the target names kind, id and title, the result the revision, the tenants and the mails queued.";
    NoticeUpdate = "notice.update", "operators, and each tenant it is for",
        "An operator updated a notice (a follow-up): its revision rose and it was mailed again.";
    SupportRequest = "support.request", "tenant (and operators for a security event)",
        "A tenant user opened a support request (the result names its category; a security event is also in the operator work log, flagged), replied to one or closed it.";
    SupportReply = "support.reply", "tenant, and operators",
        "An operator replied to a support request and/or closed it; the result says whether the requester was mailed.";
    TenantTerminate = "tenant.terminate", "operators, and the tenant",
        "An operator terminated the tenant's contract: the tenant was locked out at once and its purge queued; the result names the status it had, when the purge is due, the portal sessions ended and the admins told by mail.";
    TenantTerminationCancel = "tenant.termination.cancel", "operators, and the tenant",
        "An operator withdrew a termination before its purge started: the purge left the queue and the tenant got its earlier status back.";
    TenantPurge = "tenant.purge", "operators, and the tenant",
        "The purge job erased a terminated tenant's vault and rows (users' personal data included; this log is kept); the result names the objects, bytes and snapshots deleted and the signed deletion record.";
    TenantPurgeNow = "tenant.purge-now", "operators, and the tenant",
        "An operator had a terminated tenant's purge run now instead of when its grace period ends.";
    ApprovalRequest = "approval.request", "operators (and the tenant's log when it concerns one)",
        "An operator-admin asked for a destructive action while the two-person rule holds: it waits for a second operator-admin; the result says what it will do and until when it waits.";
    ApprovalApprove = "approval.approve", "operators (and the tenant's log when it concerns one)",
        "A second operator-admin approved a request; the result names who asked and what was approved, which was then carried out (its own event follows, naming both).";
    ApprovalReject = "approval.reject", "operators (and the tenant's log when it concerns one)",
        "An operator-admin rejected a request (or its requester withdrew it); nothing was changed.";
    OperatorLogExport = "operator.log.export", "operators",
        "An operator downloaded the operator work log (JSON or CSV); the target names the format and filter, the result the rows.";
    OperatorLogVerify = "operator.log.verify", "operators",
        "An operator checked every event chain; the result says intact (chains and events) or names the first broken row.";
    OperatorAccountDelete = "operator.account.delete", "operators",
        "An operator account was deleted: its sessions and API tokens with it (the work log keeps its name).";
    OperatorGet = "operator.get", "operators (and the tenant's log when the route names one)",
        "An operator read something through the management API; the target is the path, the result the HTTP status.";
    OperatorPost = "operator.post", "operators (and the tenant's log when the route names one)",
        "An operator created or changed something (POST); the target is the path, the result the HTTP status.";
    OperatorPut = "operator.put", "operators (and the tenant's log when the route names one)",
        "An operator replaced something (PUT); the target is the path, the result the HTTP status.";
    OperatorPatch = "operator.patch", "operators (and the tenant's log when the route names one)",
        "An operator changed something (PATCH); the target is the path, the result the HTTP status.";
    OperatorDelete = "operator.delete", "operators (and the tenant's log when the route names one)",
        "An operator deleted something; the target is the path, the result the HTTP status.";
}

impl Action {
    /// The `operator.*` action of an HTTP method of the management API.
    pub fn operator_call(method: &str) -> Option<Action> {
        match method {
            "GET" | "HEAD" => Some(Action::OperatorGet),
            "POST" => Some(Action::OperatorPost),
            "PUT" => Some(Action::OperatorPut),
            "PATCH" => Some(Action::OperatorPatch),
            "DELETE" => Some(Action::OperatorDelete),
            _ => None,
        }
    }
}

/// `docs/events.md`, generated from [`Action`] (a test keeps the file in step).
pub fn events_markdown() -> String {
    let mut out = String::from(
        "# Events\n\n\
         Generated from the event catalogue in `crates/kura-service/src/audit/mod.rs` \
         (`cargo test -p kura-service events_doc` checks it; set `KURA_WRITE_EVENTS_DOC=1` \
         to rewrite it). Every row of the event log has one of these actions.\n\n\
         Each row carries `seq`, `time` (UTC milliseconds, shown in the tenant's time zone), \
         `actor` (a login ID, `agent:<machine>` or `operator:<name>`), `source` (the client \
         address), `action`, `target`, `result` and `request_id`, and is chained to the row \
         before it by a BLAKE3 hash (`kura-server audit verify` checks every chain).\n\n\
         | action | log | what it records |\n|---|---|---|\n",
    );
    for action in Action::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            action.as_str(),
            action.log(),
            action.description()
        ));
    }
    out
}

/// Who is acting and from where, for the rows an operation writes.
#[derive(Debug, Clone)]
pub struct Actor {
    /// A login ID, `agent:<machine>` or `operator:<name>`.
    pub name: String,
    pub source: Option<IpAddr>,
    pub request_id: String,
}

impl Actor {
    fn event(&self, time_ms: i64, action: Action, target: &str, result: &str) -> NewEvent {
        NewEvent {
            time_ms,
            actor: self.name.clone(),
            source: self.source.map(|ip| ip.to_string()).unwrap_or_default(),
            action: action.as_str().to_owned(),
            target: target.to_owned(),
            result: result.to_owned(),
            request_id: self.request_id.clone(),
        }
    }
}

/// One event, about to be appended.
pub struct Entry<'a> {
    pub chain: Chain<'a>,
    pub action: Action,
    pub target: &'a str,
    pub result: &'a str,
}

/// Appends the event of an operation inside its transaction. Append last: a failure to
/// log fails the operation, since an action that cannot be recorded must not look done.
pub async fn record(tx: &mut Tx, actor: &Actor, time_ms: i64, entry: Entry<'_>) -> DbResult<()> {
    events::append(
        tx,
        entry.chain,
        &actor.event(time_ms, entry.action, entry.target, entry.result),
    )
    .await
}

/// Records an event that is an operation of its own (a refusal, a sign-in attempt) in
/// a transaction of its own.
pub(crate) async fn record_alone(
    db: &crate::db::Db,
    actor: &Actor,
    time_ms: i64,
    entry: Entry<'_>,
) -> DbResult<()> {
    let mut tx = db.begin().await?;
    record(&mut tx, actor, time_ms, entry).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_doc_matches_the_catalogue() {
        let expected = events_markdown();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md");
        if std::env::var_os("KURA_WRITE_EVENTS_DOC").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "docs/events.md is out of date: run with KURA_WRITE_EVENTS_DOC=1 to regenerate it"
        );
    }

    #[test]
    fn wire_names_are_unique() {
        let mut names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
    }
}
