//! Protection plans: what a machine backs up, when, and what is kept of it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DrillFrequency;
use crate::ids::{MachineId, PlanId};

/// What a plan backs up: file trees, or one disk image (a device or an image file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    Files,
    Image,
}

text_enum!(PlanKind, "plan kind", { Files = "files", Image = "image" });

/// How many snapshots a plan keeps of each machine and source, with `kura forget`'s
/// (restic's) rules: the `keep_last` newest, and the newest of each of the last
/// `keep_hourly` hours (days, weeks, months, years) that have one. All zero keeps every
/// snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlanRetention {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
}

impl PlanRetention {
    /// Whether the plan keeps every snapshot.
    pub fn keeps_all(&self) -> bool {
        *self == PlanRetention::default()
    }
}

/// An upload rate limit in bytes per second, written `20MiB/s` (binary or decimal
/// units, `/s` optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthLimit(pub u64);

impl BandwidthLimit {
    /// `20MiB/s`, `500 KiB/s`, `1.5GB/s`, `1048576`; `None` when it is not a rate above zero.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_suffix("/s").unwrap_or(text).trim_end();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let scale: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "kB" | "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            _ => return None,
        };
        let bytes = (number * scale).round();
        (bytes >= 1.0 && bytes <= u64::MAX as f64).then_some(BandwidthLimit(bytes as u64))
    }
}

impl fmt::Display for BandwidthLimit {
    /// In the largest binary unit that divides it, else in bytes: `20MiB/s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}/s", self.0 / size);
            }
        }
        write!(f, "{}B/s", self.0)
    }
}

/// What a plan is: everything a user sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    pub name: String,
    pub kind: PlanKind,
    /// Absolute paths; for an image plan, the one device or image file.
    pub sources: Vec<String>,
    /// Glob patterns left out of file backups.
    pub excludes: Vec<String>,
    /// A five-field cron expression, evaluated in the tenant's time zone.
    pub schedule: String,
    pub retention: PlanRetention,
    pub bandwidth_limit: Option<BandwidthLimit>,
    /// Commands run before and after an image backup (to quiesce what writes to it).
    pub pre_hook: Option<String>,
    pub post_hook: Option<String>,
    pub enabled: bool,
    /// How often each machine restores the plan's latest snapshot to prove it can.
    pub drill: Option<DrillFrequency>,
    /// The machines that run it.
    pub machines: Vec<MachineId>,
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: PlanId,
    pub spec: PlanSpec,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_limits_read_as_people_write_them() {
        assert_eq!(BandwidthLimit::parse("20MiB/s"), Some(BandwidthLimit(20 << 20)));
        assert_eq!(
            BandwidthLimit::parse(" 500 KiB/s "),
            Some(BandwidthLimit(500 << 10))
        );
        assert_eq!(
            BandwidthLimit::parse("1.5GB/s"),
            Some(BandwidthLimit(1_500_000_000))
        );
        assert_eq!(BandwidthLimit::parse("1048576"), Some(BandwidthLimit(1 << 20)));
        for bad in ["", "0", "fast", "-1MiB/s", "10 MiB/h", "0.1B/s"] {
            assert_eq!(BandwidthLimit::parse(bad), None, "{bad}");
        }
        assert_eq!(BandwidthLimit(20 << 20).to_string(), "20MiB/s");
        assert_eq!(BandwidthLimit(1500).to_string(), "1500B/s");
        let limit = BandwidthLimit(3 << 30);
        assert_eq!(BandwidthLimit::parse(&limit.to_string()), Some(limit));
    }
}
