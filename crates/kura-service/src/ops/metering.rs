//! Metering for billing (検針): the bytes each tenant uploads and fetches back are counted
//! per day as the vault protocol moves them, and the daily `meter` job measures what it
//! stores (stored and logical bytes, snapshots, machines). Operators export the days of
//! every tenant as JSON or CSV; the console shows one tenant's.

use jiff::civil::Date;

use crate::authz::{AgentPrincipal, ContractScope, OperatorPrincipal};
use crate::db::metering::{self, Traffic};
use crate::model::MeterRow;
use crate::{Service, ServiceError, ServiceResult, day_in_zone};

/// The longest range one export may ask for.
pub const MAX_EXPORT_DAYS: i32 = 366;

/// Counts bytes that went through the vault protocol for the agent's tenant, on today's
/// row in its time zone: one statement on the upload path.
pub async fn count(svc: &Service, agent: &AgentPrincipal, traffic: Traffic, bytes: u64) -> ServiceResult<()> {
    if bytes == 0 {
        return Ok(());
    }
    let day = day_in_zone(svc.now_ms(), &agent.time_zone);
    let scope = &agent.scope;
    metering::add_traffic(&svc.db, scope, &day, traffic, bytes).await?;
    Ok(())
}

/// How far ahead of UTC the first time zone to start a day is (UTC+14). A tenant's day is
/// in its own time zone, so "today" for an export is today there, or the day a tenant east
/// of UTC has begun would be left out until UTC catches up.
const FIRST_DAY_AHEAD_MS: i64 = 14 * 3600 * 1000;

/// The days `from`..=`to` (`YYYY-MM-DD`); by default the 31 days ending with the newest
/// day any tenant has begun.
pub fn range(svc: &Service, from: Option<&str>, to: Option<&str>) -> ServiceResult<(String, String)> {
    range_at(svc.now_ms(), from, to)
}

fn range_at(now_ms: i64, from: Option<&str>, to: Option<&str>) -> ServiceResult<(String, String)> {
    let parse = |name: &str, text: &str| {
        text.parse::<Date>()
            .map_err(|_| ServiceError::invalid(format!("{name} must be a date as YYYY-MM-DD, not {text:?}")))
    };
    let to = match to {
        Some(text) => parse("to", text)?,
        None => parse("today", &day_in_zone(now_ms + FIRST_DAY_AHEAD_MS, "UTC"))?,
    };
    let from = match from {
        Some(text) => parse("from", text)?,
        None => to
            .checked_sub(jiff::Span::new().days(30))
            .map_err(|e| ServiceError::invalid(e.to_string()))?,
    };
    if from > to {
        return Err(ServiceError::invalid(format!(
            "from ({from}) is after to ({to}): give the first day, then the last"
        )));
    }
    let days = to
        .since(from)
        .map_err(|e| ServiceError::invalid(e.to_string()))?
        .get_days();
    if days >= MAX_EXPORT_DAYS {
        return Err(ServiceError::invalid(format!(
            "at most {MAX_EXPORT_DAYS} days per export; split the range"
        )));
    }
    Ok((from.to_string(), to.to_string()))
}

/// Every tenant's metered days in the range, by day and service code.
pub async fn export(
    svc: &Service,
    _operator: &OperatorPrincipal,
    from: &str,
    to: &str,
) -> ServiceResult<Vec<MeterRow>> {
    Ok(metering::export(&svc.db, from, to, None).await?)
}

/// One tenant's metered days in the range, oldest first.
pub async fn of_tenant(
    svc: &Service,
    scope: &ContractScope,
    from: &str,
    to: &str,
) -> ServiceResult<Vec<MeterRow>> {
    Ok(metering::export(&svc.db, from, to, Some(scope.tenant_id())).await?)
}

/// The columns of the CSV export, in order.
pub const CSV_HEADER: &str =
    "day,tenant_id,service_code,stored_bytes,logical_bytes,machines,snapshots,uploaded_bytes,restored_bytes";

/// The rows as CSV (RFC 4180, `\r\n`), with [`CSV_HEADER`] first. Service codes are
/// `[A-Z0-9-]` and ids hex, so no field needs quoting.
pub fn csv(rows: &[MeterRow]) -> String {
    let mut out = String::with_capacity(CSV_HEADER.len() + 2 + rows.len() * 120);
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            r.day,
            r.tenant_id,
            r.service_code,
            r.stored_bytes,
            r.logical_bytes,
            r.machines,
            r.snapshots,
            r.uploaded_bytes,
            r.restored_bytes
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    #[test]
    fn the_default_range_ends_with_the_newest_day_any_tenant_has_begun() {
        // 2026-12-04 15:05 UTC is 00:05 on the 5th in Tokyo: that day is in.
        let ms = jiff::Timestamp::from_second(1_796_396_700)
            .unwrap()
            .as_millisecond();
        assert_eq!(
            range_at(ms, None, None).unwrap(),
            ("2026-11-05".to_owned(), "2026-12-05".to_owned())
        );
        assert_eq!(
            range_at(ms, Some("2026-12-01"), Some("2026-12-02")).unwrap(),
            ("2026-12-01".to_owned(), "2026-12-02".to_owned())
        );
        assert!(range_at(ms, Some("2026-12-03"), Some("2026-12-02")).is_err());
    }

    #[test]
    fn csv_has_the_header_and_one_line_per_row() {
        let row = MeterRow {
            day: "2026-12-01".into(),
            tenant_id: TenantId::from_db("a".repeat(32)),
            service_code: "ACME-0001".into(),
            stored_bytes: 10,
            logical_bytes: 30,
            machines: 2,
            snapshots: 4,
            uploaded_bytes: 12,
            restored_bytes: 5,
        };
        let text = csv(&[row]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            format!("2026-12-01,{},ACME-0001,10,30,2,4,12,5", "a".repeat(32))
        );
        assert_eq!(lines[2], "");
        assert_eq!(lines.len(), 3);
    }
}
