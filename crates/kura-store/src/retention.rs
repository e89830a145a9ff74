//! Retention policies with restic's semantics, so users know them:
//!
//! - `keep_last n`: the `n` newest snapshots.
//! - `keep_hourly n` (and daily, weekly, monthly, yearly): for the last `n` hours (days,
//!   ISO weeks, months, years) *that have snapshots*, the newest snapshot of each.
//! - Rules add up: a snapshot is kept when any rule keeps it; the rest are forgotten.
//! - Snapshots are grouped by source; each group is judged on its own.
//! - Calendar buckets use the time zone the caller gives (the agent's local zone for
//!   `kura forget`, the tenant's for a plan's retention on the server).
//!
//! It judges anything [`Dated`]: the vault's snapshot records, or the service's own
//! records of who committed what.

use std::collections::{BTreeMap, HashSet};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use kura_format::SnapshotId;

use crate::{Result, SnapshotRecord, StoreError};

/// What retention judges a snapshot by.
pub trait Dated {
    fn id(&self) -> SnapshotId;
    /// Nanoseconds since the Unix epoch.
    fn time_ns(&self) -> i64;
    /// Snapshots are judged per source.
    fn source(&self) -> &str;
}

impl Dated for SnapshotRecord {
    fn id(&self) -> SnapshotId {
        self.id
    }

    fn time_ns(&self) -> i64 {
        self.manifest.time_ns
    }

    fn source(&self) -> &str {
        &self.manifest.source
    }
}

/// How many snapshots of each kind to keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub id: String,
    pub time: String,
    pub source: String,
    pub keep: bool,
    /// The rules that keep it (`last`, `hourly`, …); empty when it is forgotten.
    pub reasons: Vec<&'static str>,
}

impl RetentionPolicy {
    /// Whether no rule is set (applying it would forget everything: refused).
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }

    /// Decides for every snapshot, newest first within each source.
    pub fn apply<T: Dated>(&self, snapshots: &[T], tz: &TimeZone) -> Result<Vec<Decision>> {
        if self.is_empty() {
            return Err(StoreError::Rejected(
                "no retention rule given (--keep-last, --keep-daily, …): refusing to forget every snapshot"
                    .into(),
            ));
        }
        let mut groups: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
        for s in snapshots {
            groups.entry(s.source()).or_default().push(s);
        }
        let mut out = Vec::new();
        for (_, mut group) in groups {
            group.sort_by(|a, b| b.time_ns().cmp(&a.time_ns()).then(b.id().cmp(&a.id())));
            let times: Vec<ZonedDateTime> = group.iter().map(|s| zoned(s.time_ns(), tz)).collect();
            type Bucket = fn(&ZonedDateTime) -> String;
            let rules: [(&'static str, u32, Bucket); 6] = [
                ("last", self.keep_last, |_| String::new()),
                ("hourly", self.keep_hourly, |z| {
                    z.strftime("%Y-%m-%d %H").to_string()
                }),
                ("daily", self.keep_daily, |z| z.strftime("%Y-%m-%d").to_string()),
                ("weekly", self.keep_weekly, |z| {
                    let w = z.date().iso_week_date();
                    format!("{}-W{}", w.year(), w.week())
                }),
                ("monthly", self.keep_monthly, |z| z.strftime("%Y-%m").to_string()),
                ("yearly", self.keep_yearly, |z| z.strftime("%Y").to_string()),
            ];
            let mut reasons: Vec<Vec<&'static str>> = vec![Vec::new(); group.len()];
            for (name, n, bucket) in rules {
                let mut left = n;
                let mut last_bucket: Option<String> = None;
                for (i, z) in times.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    // keep-last counts every snapshot; the calendar rules one per bucket.
                    let b = if name == "last" { i.to_string() } else { bucket(z) };
                    if last_bucket.as_ref() != Some(&b) {
                        reasons[i].push(name);
                        left -= 1;
                        last_bucket = Some(b);
                    }
                }
            }
            for ((s, z), r) in group.iter().zip(&times).zip(reasons) {
                out.push(Decision {
                    id: s.id().to_hex(),
                    time: z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
                    source: s.source().to_owned(),
                    keep: !r.is_empty(),
                    reasons: r,
                });
            }
        }
        Ok(out)
    }
}

/// The ids a set of decisions forgets.
pub fn forgotten(decisions: &[Decision]) -> Result<Vec<SnapshotId>> {
    let mut seen = HashSet::new();
    decisions
        .iter()
        .filter(|d| !d.keep && seen.insert(d.id.clone()))
        .map(|d| Ok(d.id.parse()?))
        .collect()
}

fn zoned(ns: i64, tz: &TimeZone) -> ZonedDateTime {
    Timestamp::from_nanosecond(ns as i128)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kura_format::manifest::{MANIFEST_VERSION, SnapshotStats};
    use kura_format::{ChunkId, Manifest, SnapshotKind};
    use serde_bytes::ByteBuf;

    fn snap(n: u8, time: &str) -> SnapshotRecord {
        let ts: Timestamp = time.parse().unwrap();
        SnapshotRecord {
            id: SnapshotId([n; 32]),
            manifest: Manifest {
                version: MANIFEST_VERSION,
                kind: SnapshotKind::Files,
                time_ns: ts.as_nanosecond() as i64,
                end_time_ns: 0,
                host: "h".into(),
                source: "h:/data".into(),
                tags: vec![],
                parent: None,
                stats: SnapshotStats::default(),
                reference_count: 0,
                references_hash: ByteBuf::from(vec![0; 32]),
                body_id: ChunkId([0; 32]),
                body: ByteBuf::new(),
            },
        }
    }

    fn kept(policy: RetentionPolicy, snaps: &[SnapshotRecord]) -> Vec<u8> {
        let mut k: Vec<u8> = policy
            .apply(snaps, &TimeZone::UTC)
            .unwrap()
            .iter()
            .filter(|d| d.keep)
            .map(|d| hex_first(&d.id))
            .collect();
        k.sort();
        k
    }

    fn hex_first(id: &str) -> u8 {
        u8::from_str_radix(&id[..2], 16).unwrap()
    }

    fn calendar() -> Vec<SnapshotRecord> {
        vec![
            snap(1, "2026-01-01T10:00:00Z"),
            snap(2, "2026-01-01T22:00:00Z"),
            snap(3, "2026-01-02T09:00:00Z"),
            snap(4, "2026-01-05T09:00:00Z"), // Monday: new ISO week
            snap(5, "2026-01-05T09:30:00Z"),
            snap(6, "2026-02-10T12:00:00Z"),
            snap(7, "2026-03-01T00:00:00Z"),
            snap(8, "2027-01-01T00:00:00Z"),
        ]
    }

    #[test]
    fn keep_last() {
        let p = RetentionPolicy {
            keep_last: 3,
            ..Default::default()
        };
        assert_eq!(kept(p, &calendar()), vec![6, 7, 8]);
    }

    #[test]
    fn keep_daily_takes_newest_per_day() {
        let p = RetentionPolicy {
            keep_daily: 4,
            ..Default::default()
        };
        assert_eq!(kept(p, &calendar()), vec![5, 6, 7, 8]);
        let p = RetentionPolicy {
            keep_daily: 8,
            ..Default::default()
        };
        assert_eq!(kept(p, &calendar()), vec![2, 3, 5, 6, 7, 8]);
    }

    #[test]
    fn weekly_monthly_yearly() {
        let p = RetentionPolicy {
            keep_weekly: 10,
            ..Default::default()
        };
        // Weeks: 2026-W01 (1,2,3 → 3), W02 (4,5 → 5), W07 (6), W09 (7), 2026-W53 (8).
        assert_eq!(kept(p, &calendar()), vec![3, 5, 6, 7, 8]);
        let p = RetentionPolicy {
            keep_monthly: 2,
            ..Default::default()
        };
        assert_eq!(kept(p, &calendar()), vec![7, 8]);
        let p = RetentionPolicy {
            keep_yearly: 5,
            ..Default::default()
        };
        assert_eq!(kept(p, &calendar()), vec![7, 8]);
    }

    #[test]
    fn rules_add_up() {
        let p = RetentionPolicy {
            keep_last: 1,
            keep_monthly: 3,
            ..Default::default()
        };
        assert_eq!(kept(p, &calendar()), vec![6, 7, 8]);
    }

    #[test]
    fn time_zone_moves_day_boundaries() {
        // 22:00 UTC on Jan 1 is Jan 2 in Tokyo: then snapshots 2 and 3 share a day.
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let p = RetentionPolicy {
            keep_daily: 10,
            ..Default::default()
        };
        let kept: Vec<u8> = p
            .apply(&calendar()[..3], &tokyo)
            .unwrap()
            .iter()
            .filter(|d| d.keep)
            .map(|d| hex_first(&d.id))
            .collect();
        assert_eq!(kept, vec![3, 1]);
    }

    #[test]
    fn empty_policy_refused() {
        assert!(
            RetentionPolicy::default()
                .apply(&calendar(), &TimeZone::UTC)
                .is_err()
        );
    }
}
