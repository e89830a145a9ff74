//! A tenant's protection plans (portal and API): what its machines back up, when (a cron
//! expression in the tenant's time zone), what is left out and what is kept. Anyone who
//! sees the tenant's status reads them; only `operate-backups` changes them. Every
//! change is checked whole before it is stored, and recorded in the tenant's log.

use std::str::FromStr;

use croner::Cron;

use super::record_in;
use super::tenants::current;
use crate::audit::Action;
use crate::authz::{Permission, UserPrincipal};
use crate::db::{machines, plans};
use crate::ids::{MachineId, PlanId};
use crate::model::{BandwidthLimit, DrillFrequency, PlanKind, PlanRecord, PlanRetention, PlanSpec};
use crate::{Service, ServiceError, ServiceResult};

/// Longest plan name, source path, exclude pattern and hook command.
pub const MAX_NAME: usize = 100;
pub const MAX_PATH: usize = 4096;
pub const MAX_HOOK: usize = 4096;
/// Most sources and exclude patterns of one plan.
pub const MAX_ENTRIES: usize = 1000;

/// A change to a plan (`PATCH`): the fields given replace the plan's.
#[derive(Debug, Clone, Default)]
pub struct PlanChange {
    pub name: Option<String>,
    pub kind: Option<PlanKind>,
    pub sources: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    pub schedule: Option<String>,
    pub retention: Option<PlanRetention>,
    /// `Some(None)` removes the limit.
    pub bandwidth_limit: Option<Option<BandwidthLimit>>,
    pub pre_hook: Option<Option<String>>,
    pub post_hook: Option<Option<String>>,
    pub enabled: Option<bool>,
    /// `Some(None)` stops drills.
    pub drill: Option<Option<DrillFrequency>>,
    pub machines: Option<Vec<MachineId>>,
}

impl From<PlanSpec> for PlanChange {
    /// Every field replaced (a form that shows the whole plan).
    fn from(spec: PlanSpec) -> Self {
        PlanChange {
            name: Some(spec.name),
            kind: Some(spec.kind),
            sources: Some(spec.sources),
            excludes: Some(spec.excludes),
            schedule: Some(spec.schedule),
            retention: Some(spec.retention),
            bandwidth_limit: Some(spec.bandwidth_limit),
            pre_hook: Some(spec.pre_hook),
            post_hook: Some(spec.post_hook),
            enabled: Some(spec.enabled),
            drill: Some(spec.drill),
            machines: Some(spec.machines),
        }
    }
}

impl PlanChange {
    fn apply(self, spec: &mut PlanSpec) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(value) = self.$field {
                    spec.$field = value;
                }
            )*};
        }
        take!(
            name,
            kind,
            sources,
            excludes,
            schedule,
            retention,
            bandwidth_limit,
            pre_hook,
            post_hook,
            enabled,
            drill,
            machines
        );
    }
}

/// The cron expression of a schedule: five fields (minute hour day-of-month month
/// day-of-week), as crontab(5) writes them.
pub fn parse_schedule(schedule: &str) -> ServiceResult<Cron> {
    let fields = schedule.split_whitespace().count();
    if fields != 5 {
        return Err(ServiceError::invalid(format!(
            "schedule: {schedule:?} has {fields} fields; write five, as crontab does \
             (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\" for 02:00 daily)"
        )));
    }
    Cron::from_str(schedule).map_err(|err| {
        ServiceError::invalid(format!(
            "schedule: {schedule:?} is not a cron expression ({err}); e.g. \"0 2 * * *\" runs at 02:00 daily"
        ))
    })
}

/// When a schedule next fires after `after_ms`, in the time zone `zone` (croner works
/// on chrono's times, so the zone comes from chrono-tz's copy of the tz database).
pub fn next_run(schedule: &str, zone: &str, after_ms: i64) -> Option<i64> {
    slot(schedule, zone, after_ms, |cron, at| {
        cron.find_next_occurrence(at, false)
    })
}

/// The latest time a schedule fired at or before `at_ms`: the slot a run at `at_ms`
/// belongs to.
pub fn previous_run(schedule: &str, zone: &str, at_ms: i64) -> Option<i64> {
    slot(schedule, zone, at_ms, |cron, at| {
        cron.find_previous_occurrence(at, true)
    })
}

type Local = chrono::DateTime<chrono_tz::Tz>;

fn slot(
    schedule: &str,
    zone: &str,
    at_ms: i64,
    find: impl FnOnce(&Cron, &Local) -> Result<Local, croner::errors::CronError>,
) -> Option<i64> {
    let cron = parse_schedule(schedule).ok()?;
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let at = chrono::DateTime::from_timestamp_millis(at_ms)?.with_timezone(&tz);
    Some(find(&cron, &at).ok()?.timestamp_millis())
}

/// When an enabled plan next runs (`None` for a disabled one).
pub fn next_run_of(spec: &PlanSpec, zone: &str, after_ms: i64) -> Option<i64> {
    spec.enabled
        .then(|| next_run(&spec.schedule, zone, after_ms))
        .flatten()
}

/// A plan's kind as a request names it.
pub fn parse_kind(text: &str) -> ServiceResult<PlanKind> {
    PlanKind::parse(text)
        .ok_or_else(|| ServiceError::invalid(format!("kind: {text:?} is not files or image")))
}

/// An upload limit as a request writes it (`20MiB/s`); blank or absent is no limit.
/// A drill frequency as a request writes it (`weekly` or `monthly`; empty: none).
pub fn parse_drill(text: Option<&str>) -> ServiceResult<Option<DrillFrequency>> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            DrillFrequency::parse(t).ok_or_else(|| {
                ServiceError::invalid(format!(
                    "drill: {t:?} is not a drill frequency; write weekly or monthly (or leave it out for none)"
                ))
            })
        })
        .transpose()
}

pub fn parse_bandwidth_limit(text: Option<&str>) -> ServiceResult<Option<BandwidthLimit>> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            BandwidthLimit::parse(t).ok_or_else(|| {
                ServiceError::invalid(format!(
                    "bandwidth_limit: {t:?} is not a rate; write e.g. 20MiB/s"
                ))
            })
        })
        .transpose()
}

fn check_path(field: &str, path: &str) -> ServiceResult<()> {
    if !path.starts_with('/') {
        return Err(ServiceError::invalid(format!(
            "{field}: {path:?} is not an absolute path; write it from / (e.g. /srv/www)"
        )));
    }
    if path.len() > MAX_PATH || path.contains('\0') {
        return Err(ServiceError::invalid(format!(
            "{field}: {path:?} is too long or holds NUL"
        )));
    }
    Ok(())
}

fn check_command(field: &str, command: &Option<String>) -> ServiceResult<()> {
    match command {
        Some(command) if command.trim().is_empty() || command.len() > MAX_HOOK || command.contains('\0') => {
            Err(ServiceError::invalid(format!(
                "{field}: a command of 1 to {MAX_HOOK} bytes, without NUL"
            )))
        }
        _ => Ok(()),
    }
}

/// Checks a whole plan (every field), and that its machines are the tenant's own and not
/// revoked; another tenant's machine is as unknown as one that never existed.
async fn check(svc: &Service, user: &UserPrincipal, spec: &mut PlanSpec) -> ServiceResult<()> {
    spec.name = spec.name.trim().to_owned();
    super::validate_label("name", &spec.name, MAX_NAME)?;
    spec.sources.iter_mut().for_each(|s| *s = s.trim().to_owned());
    spec.sources.retain(|s| !s.is_empty());
    if spec.sources.is_empty() {
        return Err(ServiceError::invalid(
            "sources: list at least one path to back up (for an image plan, its device or image file)",
        ));
    }
    if spec.kind == PlanKind::Image && spec.sources.len() != 1 {
        return Err(ServiceError::invalid(
            "sources: an image plan backs up exactly one device or image file; make a plan for each",
        ));
    }
    if spec.sources.len() > MAX_ENTRIES || spec.excludes.len() > MAX_ENTRIES {
        return Err(ServiceError::invalid(format!(
            "sources and excludes: at most {MAX_ENTRIES} each"
        )));
    }
    for source in &spec.sources {
        check_path("sources", source)?;
    }
    spec.excludes.iter_mut().for_each(|e| *e = e.trim().to_owned());
    spec.excludes.retain(|e| !e.is_empty());
    if let Some(bad) = spec
        .excludes
        .iter()
        .find(|e| e.len() > MAX_PATH || e.contains('\0'))
    {
        return Err(ServiceError::invalid(format!(
            "excludes: {bad:?} is too long or holds NUL"
        )));
    }
    spec.schedule = spec.schedule.split_whitespace().collect::<Vec<_>>().join(" ");
    parse_schedule(&spec.schedule)?;
    spec.pre_hook = spec.pre_hook.take().filter(|h| !h.trim().is_empty());
    spec.post_hook = spec.post_hook.take().filter(|h| !h.trim().is_empty());
    if spec.kind == PlanKind::Files && (spec.pre_hook.is_some() || spec.post_hook.is_some()) {
        return Err(ServiceError::invalid(
            "pre_hook, post_hook: hooks are for image plans (to quiesce what writes to the disk)",
        ));
    }
    check_command("pre_hook", &spec.pre_hook)?;
    check_command("post_hook", &spec.post_hook)?;
    spec.machines.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    spec.machines.dedup();
    let active: Vec<MachineId> = machines::list(&svc.db, &user.scope)
        .await?
        .into_iter()
        .filter(|m| m.revoked_ms.is_none())
        .map(|m| m.id)
        .collect();
    if let Some(unknown) = spec.machines.iter().find(|m| !active.contains(m)) {
        return Err(ServiceError::not_found(format!(
            "machines: no active machine with id {:?} in this tenant",
            unknown.as_str()
        )));
    }
    Ok(())
}

fn no_plan(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no plan with id {id:?} in this tenant"))
}

/// A machine id as a request names it; a malformed one names no machine.
pub fn machine_ids(ids: &[String]) -> ServiceResult<Vec<MachineId>> {
    ids.iter()
        .map(|id| {
            MachineId::parse(id).ok_or_else(|| {
                ServiceError::not_found(format!(
                    "machines: no active machine with id {id:?} in this tenant"
                ))
            })
        })
        .collect()
}

/// The tenant's plans, by name.
pub async fn list(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<PlanRecord>> {
    user.require(Permission::ViewStatus)?;
    let mut tx = svc.db.begin().await?;
    let plans = plans::list(&mut tx, &user.scope).await?;
    tx.commit().await?;
    Ok(plans)
}

/// One plan.
pub async fn get(svc: &Service, user: &UserPrincipal, id: &str) -> ServiceResult<PlanRecord> {
    user.require(Permission::ViewStatus)?;
    let plan = PlanId::parse(id).ok_or_else(|| no_plan(id))?;
    let mut tx = svc.db.begin().await?;
    let found = plans::get(&mut tx, &user.scope, &plan).await?;
    tx.commit().await?;
    found.ok_or_else(|| no_plan(id))
}

fn summary(spec: &PlanSpec) -> String {
    format!(
        "{} {:?}, schedule {:?}, {} machine(s){}",
        spec.kind.as_str(),
        spec.name,
        spec.schedule,
        spec.machines.len(),
        if spec.enabled { "" } else { ", disabled" }
    ) + &spec.drill.map(|d| format!(", {d} drill")).unwrap_or_default()
}

/// Creates a plan of an active tenant.
pub async fn create(svc: &Service, user: &UserPrincipal, mut spec: PlanSpec) -> ServiceResult<PlanRecord> {
    user.require(Permission::OperateBackups)?;
    crate::authz::refuse_inactive_tenant(current(svc, &user.scope).await?.status)?;
    check(svc, user, &mut spec).await?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let id = plans::insert(&mut tx, &user.scope, &spec, now).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::PlanCreate,
        id.as_str(),
        &format!("ok: {}", summary(&spec)),
    )
    .await?;
    tx.commit().await?;
    Ok(PlanRecord {
        id,
        spec,
        created_ms: now,
        updated_ms: now,
    })
}

/// Changes the fields of a plan that `change` gives; the result is checked whole.
pub async fn update(
    svc: &Service,
    user: &UserPrincipal,
    id: &str,
    change: PlanChange,
) -> ServiceResult<PlanRecord> {
    user.require(Permission::OperateBackups)?;
    let mut plan = get(svc, user, id).await?;
    change.apply(&mut plan.spec);
    check(svc, user, &mut plan.spec).await?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    if !plans::update(&mut tx, &user.scope, &plan.id, &plan.spec, now).await? {
        return Err(no_plan(id));
    }
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::PlanUpdate,
        plan.id.as_str(),
        &format!("ok: {}", summary(&plan.spec)),
    )
    .await?;
    tx.commit().await?;
    plan.updated_ms = now;
    Ok(plan)
}

/// Deletes a plan; its snapshots stay.
pub async fn delete(svc: &Service, user: &UserPrincipal, id: &str) -> ServiceResult<()> {
    user.require(Permission::OperateBackups)?;
    let plan = PlanId::parse(id).ok_or_else(|| no_plan(id))?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let Some(old) = plans::get(&mut tx, &user.scope, &plan).await? else {
        return Err(no_plan(id));
    };
    plans::delete(&mut tx, &user.scope, &plan).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::PlanDelete,
        plan.as_str(),
        &format!("ok: {:?} deleted", old.spec.name),
    )
    .await?;
    super::alerts::resolve_gone(
        svc,
        &mut tx,
        &user.scope,
        None,
        Some(&plan),
        "the plan was deleted",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z (09:00 in Tokyo).
    const NEW_YEAR_MS: i64 = 1_767_225_600_000;

    #[test]
    fn schedules_run_on_the_tenants_clock() {
        // 02:00 in Tokyo is 17:00 UTC the day before.
        let next = next_run("0 2 * * *", "Asia/Tokyo", NEW_YEAR_MS).unwrap();
        assert_eq!(next, NEW_YEAR_MS + 17 * 3_600_000);
        // The same expression in Berlin (01:00 there, UTC+1): 02:00 comes an hour later.
        let next = next_run("0 2 * * *", "Europe/Berlin", NEW_YEAR_MS).unwrap();
        assert_eq!(next, NEW_YEAR_MS + 3_600_000);
        // Weekdays only: 1 January 2026 is a Thursday, so Friday 01:30 JST.
        let next = next_run("30 1 * * 1-5", "Asia/Tokyo", NEW_YEAR_MS).unwrap();
        assert_eq!(next, NEW_YEAR_MS + 16 * 3_600_000 + 30 * 60_000);
        // Strictly after: a run due now is the next one, not this one.
        let at_two = NEW_YEAR_MS + 17 * 3_600_000;
        assert_eq!(
            next_run("0 2 * * *", "Asia/Tokyo", at_two),
            Some(at_two + 86_400_000)
        );
        // A slot is its own previous run, and a moment later still belongs to it.
        assert_eq!(previous_run("0 2 * * *", "Asia/Tokyo", at_two), Some(at_two));
        assert_eq!(
            previous_run("0 2 * * *", "Asia/Tokyo", at_two + 1_500),
            Some(at_two)
        );
        assert_eq!(
            previous_run("0 2 * * *", "Asia/Tokyo", at_two - 1),
            Some(at_two - 86_400_000)
        );
    }

    #[test]
    fn schedules_are_five_crontab_fields() {
        for good in ["0 2 * * *", "*/15 * * * *", "0 3 * * SUN", "0 0 1 */3 *"] {
            assert!(parse_schedule(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "0 2 * *",
            "0 0 2 * * *",
            "61 2 * * *",
            "0 25 * * *",
            "every night",
            "@daily",
        ] {
            let err = parse_schedule(bad).unwrap_err();
            assert!(err.message.starts_with("schedule:"), "{bad}: {err}");
        }
    }
}
