//! Latency histograms the running pool fills as it works (job building, node calls,
//! database commits), read by the metrics surface. Lock-free: observing is a few atomic adds
//! on the share path.
//!
//! ```
//! use std::time::Duration;
//! use otedama_pool::telemetry::Latency;
//!
//! let latency = Latency::default();
//! latency.observe(Duration::from_millis(3));
//! latency.observe(Duration::from_millis(300));
//! let s = latency.snapshot();
//! assert_eq!(s.count, 2);
//! // Cumulative: the 5 ms bucket holds the first, the 0.5 s bucket both.
//! assert_eq!(s.buckets.iter().find(|(le, _)| *le == 0.005).map(|b| b.1), Some(1));
//! assert_eq!(s.buckets.iter().find(|(le, _)| *le == 0.5).map(|b| b.1), Some(2));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds in seconds, from a fast commit to a slow node.
const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed bounds (0.5 ms to 10 s, and above).
#[derive(Debug, Default)]
pub struct Latency {
    /// Per bucket, not cumulative; the last counts what is above every bound.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram read at one moment, in Prometheus' shape.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// The sum of every observation, seconds.
    pub sum_seconds: f64,
    /// How many observations.
    pub count: u64,
    /// (upper bound in seconds, observations at or below it), cumulative, ending with
    /// `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Latency {
    /// Counts one observation.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = BOUNDS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BOUNDS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Times `work` and counts it.
    pub fn time<T>(&self, work: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = work();
        self.observe(start.elapsed());
        out
    }

    /// The histogram now.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            total += count.load(Ordering::Relaxed);
            buckets.push((BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), total));
        }
        LatencySnapshot {
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: total,
            buckets,
        }
    }
}

/// What the pool times as it runs.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// From new work to the job announced to the miners.
    pub job: Latency,
    /// Asking the node (or devnet) for work.
    pub node_work: Latency,
    /// Submitting a found block to the node.
    pub node_submit: Latency,
    /// Calls to the node that failed.
    pub node_errors: AtomicU64,
    /// Making one share durable in the database.
    pub commit: Latency,
}

impl Telemetry {
    /// Counts a failed call to the node.
    pub fn node_failed(&self) {
        self.node_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed calls to the node so far.
    pub fn node_error_count(&self) -> u64 {
        self.node_errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_infinity() {
        let l = Latency::default();
        for ms in [0, 1, 7, 7, 20_000] {
            l.observe(Duration::from_millis(ms));
        }
        let s = l.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 5)));
        assert!(s.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(s.buckets.iter().find(|b| b.0 == 0.01).map(|b| b.1), Some(4));
        assert!((s.sum_seconds - 20.015).abs() < 1e-9);
    }
}
