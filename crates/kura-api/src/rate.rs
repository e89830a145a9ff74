//! Upload rates as people write them and the API carries them: `20MiB/s`, `500 KiB/s`,
//! `1.5GB/s`, or bytes per second. One syntax for a plan's `bandwidth_limit` and for
//! `kura backup --limit-upload`.

use std::fmt;

/// An upload rate limit in bytes per second.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_people_write_them() {
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
