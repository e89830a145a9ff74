//! [`UploadLimit`]: an upload rate limit (a token bucket, `--limit-upload` and a plan's
//! `bandwidth_limit`). A pack's body goes out in slices of at most a tenth of a second's
//! worth, each waiting for its tokens, and the bucket holds one slice: over any window of
//! a second or more the rate stays within the limit plus one slice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Mutex;

/// Smallest and largest slice a body is cut into.
const MIN_SLICE: u64 = 4 << 10;
const MAX_SLICE: u64 = 64 << 10;

/// Bytes per second, shared by every upload of one backup.
#[derive(Debug)]
pub struct UploadLimit {
    bytes_per_s: u64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl UploadLimit {
    pub fn new(bytes_per_s: u64) -> Arc<Self> {
        Arc::new(UploadLimit {
            bytes_per_s: bytes_per_s.max(1),
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                refilled: Instant::now(),
            }),
        })
    }

    pub fn bytes_per_s(&self) -> u64 {
        self.bytes_per_s
    }

    fn slice(&self) -> usize {
        (self.bytes_per_s / 10).clamp(MIN_SLICE, MAX_SLICE) as usize
    }

    /// Waits until `n` bytes (at most one slice) may go out.
    async fn take(&self, n: usize) {
        let rate = self.bytes_per_s as f64;
        let capacity = self.slice() as f64;
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().await;
                let now = Instant::now();
                let earned = now.duration_since(bucket.refilled).as_secs_f64() * rate;
                bucket.tokens = (bucket.tokens + earned).min(capacity);
                bucket.refilled = now;
                if bucket.tokens >= n as f64 {
                    bucket.tokens -= n as f64;
                    return;
                }
                Duration::from_secs_f64((n as f64 - bucket.tokens) / rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// `bytes` as a request body that goes out no faster than the limit.
    pub fn body(self: &Arc<Self>, bytes: Bytes) -> reqwest::Body {
        let limit = Arc::clone(self);
        let slice = self.slice();
        let stream = futures_util::stream::unfold((limit, bytes), move |(limit, mut rest)| async move {
            if rest.is_empty() {
                return None;
            }
            let piece = rest.split_to(slice.min(rest.len()));
            limit.take(piece.len()).await;
            Some((Ok::<_, std::io::Error>(piece), (limit, rest)))
        });
        reqwest::Body::wrap_stream(stream)
    }

    /// Waits for `bytes` to be allowed out, slice by slice, and answers when each slice was
    /// allowed (for tests of the rate).
    #[cfg(test)]
    async fn pace(&self, bytes: usize) -> Vec<(Instant, usize)> {
        let mut out = Vec::new();
        let mut left = bytes;
        while left > 0 {
            let n = self.slice().min(left);
            self.take(n).await;
            out.push((Instant::now(), n));
            left -= n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes allowed out in every window of `window` that starts at a slice, against
    /// the limit: at most 10 % over.
    fn worst_window(paced: &[(Instant, usize)], window: Duration, rate: u64) -> f64 {
        let mut worst: f64 = 0.0;
        for (i, (start, _)) in paced.iter().enumerate() {
            let sent: usize = paced[i..]
                .iter()
                .take_while(|(t, _)| t.duration_since(*start) < window)
                .map(|(_, n)| n)
                .sum();
            worst = worst.max(sent as f64 / (rate as f64 * window.as_secs_f64()));
        }
        worst
    }

    #[tokio::test]
    async fn the_rate_stays_within_ten_percent_over_any_second() {
        let rate = 512 << 10;
        let limit = UploadLimit::new(rate);
        let started = Instant::now();
        let paced = limit.pace(2 << 20).await;
        let took = started.elapsed().as_secs_f64();
        // 2 MiB at 512 KiB/s: four seconds, not less.
        assert!(took >= 3.8, "{took}");
        let worst = worst_window(&paced, Duration::from_secs(1), rate);
        assert!(worst <= 1.1, "a one-second window carried {worst:.2}× the limit");
    }
}
