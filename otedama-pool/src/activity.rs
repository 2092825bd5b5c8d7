//! What the pool's miners did lately: hashrate over sliding windows from accepted share
//! difficulty, per-worker counters, rejections by reason, and the effort since the last
//! block. Sans-IO: every call is given the time.
//!
//! Hashrate is work over time: the difficulty of the accepted shares in a window, times the
//! hashes one difficulty-1 share stands for, over the window's length. Windows are a minute,
//! five minutes and an hour, counted in ten-second buckets, so a figure moves smoothly while a
//! miner mines steadily instead of jumping between a value and zero with each share.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use otedama_pool::activity::{Activity, Outcome};
//!
//! let start = Instant::now();
//! // SHA256d: a difficulty-1 share stands for 2^32 hashes.
//! let mut activity = Activity::new(4_294_967_296.0, start);
//! for i in 0..60 {
//!     let at = start + Duration::from_secs(i);
//!     activity.share("miner.rig1", Outcome::Accepted, 1.0, at, 0);
//! }
//! let rates = activity.pool_hashrate(start + Duration::from_secs(60));
//! // One difficulty-1 share a second is 2^32 hashes a second.
//! assert!((rates.one_minute / 4_294_967_296.0 - 1.0).abs() < 0.05);
//! assert_eq!(activity.workers(start + Duration::from_secs(60))[0].accepted, 60);
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How finely the windows are counted.
const BUCKET: Duration = Duration::from_secs(10);
/// The longest window.
const LONGEST: Duration = Duration::from_secs(3600);
/// A worker with no connection and no share for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// How a share was answered, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted (durable).
    Accepted,
    /// Its job was no longer valid.
    Stale,
    /// Its hash missed the share difficulty.
    LowDifficulty,
    /// Invalid for another reason (a duplicate, a bad nonce or time).
    Invalid,
    /// The pool could not judge or record it.
    PoolError,
}

impl Outcome {
    /// How a verdict counts.
    pub fn of(verdict: &otedama_stratum::ShareVerdict) -> Outcome {
        use otedama_stratum::ShareVerdict;
        match verdict {
            ShareVerdict::Accepted => Outcome::Accepted,
            ShareVerdict::Stale => Outcome::Stale,
            ShareVerdict::LowDifficulty => Outcome::LowDifficulty,
            ShareVerdict::Invalid(_) => Outcome::Invalid,
            ShareVerdict::PoolError(_) => Outcome::PoolError,
            _ => Outcome::Invalid,
        }
    }

    /// The name a rejection reason goes by in reports (`stale`, `low_difficulty`,
    /// `invalid`, `pool_error`), or `accepted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Stale => "stale",
            Outcome::LowDifficulty => "low_difficulty",
            Outcome::Invalid => "invalid",
            Outcome::PoolError => "pool_error",
        }
    }
}

/// Hashrate over the three windows, in hashes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hashrates {
    /// Over the last minute.
    pub one_minute: f64,
    /// Over the last five minutes.
    pub five_minutes: f64,
    /// Over the last hour.
    pub one_hour: f64,
}

/// Rejected shares by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Stale.
    pub stale: u64,
    /// Below the share difficulty.
    pub low_difficulty: u64,
    /// Invalid otherwise.
    pub invalid: u64,
    /// Not judged or not recorded by the pool.
    pub pool_error: u64,
}

impl Rejections {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted => {}
            Outcome::Stale => self.stale += 1,
            Outcome::LowDifficulty => self.low_difficulty += 1,
            Outcome::Invalid => self.invalid += 1,
            Outcome::PoolError => self.pool_error += 1,
        }
    }

    /// Every rejection.
    pub fn total(&self) -> u64 {
        self.stale + self.low_difficulty + self.invalid + self.pool_error
    }
}

/// Accepted difficulty in ten-second buckets over the last hour; only buckets with work
/// are kept, so an idle worker costs nothing.
#[derive(Debug, Clone, Default)]
struct Windows {
    /// (bucket number since the tracker's start, difficulty), oldest first.
    buckets: VecDeque<(u64, f64)>,
}

impl Windows {
    fn add(&mut self, bucket: u64, difficulty: f64) {
        // Shares judged on several threads may arrive a little out of order around a bucket's
        // edge: an earlier bucket goes in its place, keeping the buckets sorted.
        match self.buckets.iter().rposition(|(b, _)| *b <= bucket) {
            Some(i) if self.buckets[i].0 == bucket => self.buckets[i].1 += difficulty,
            Some(i) => self.buckets.insert(i + 1, (bucket, difficulty)),
            None => self.buckets.push_front((bucket, difficulty)),
        }
        let newest = self.buckets.back().map_or(bucket, |(b, _)| *b);
        let oldest = newest.saturating_sub(LONGEST.as_secs() / BUCKET.as_secs());
        while self.buckets.front().is_some_and(|(b, _)| *b < oldest) {
            self.buckets.pop_front();
        }
    }

    /// The difficulty accepted in the `window` before bucket `now` (inclusive).
    fn sum(&self, now: u64, window: Duration) -> f64 {
        let count = window.as_secs() / BUCKET.as_secs();
        let first = now.saturating_sub(count.saturating_sub(1));
        self.buckets
            .iter()
            .rev()
            .filter(|(b, _)| (first..=now).contains(b))
            // From +0.0: an empty window is zero, not the -0.0 that `sum` starts from.
            .fold(0.0, |total, (_, d)| total + d)
    }
}

/// One worker's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerActivity {
    /// The name it logged in with (`address.rig`).
    pub name: String,
    /// Connections logged in as it now.
    pub connections: usize,
    /// Its hashrate over the three windows.
    pub hashrate: Hashrates,
    /// The difficulty of its last share.
    pub difficulty: f64,
    /// Its accepted shares.
    pub accepted: u64,
    /// Its rejected shares.
    pub rejected: u64,
    /// When its last share came, Unix milliseconds; `None` before its first.
    pub last_share_unix_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Worker {
    connections: usize,
    windows: Windows,
    difficulty: f64,
    accepted: u64,
    rejected: u64,
    last_share_unix_ms: Option<i64>,
    last_seen: Instant,
}

/// The tracker: fed every answered share, login and logout; read by status surfaces.
#[derive(Debug, Clone)]
pub struct Activity {
    hashes_per_difficulty: f64,
    started: Instant,
    pool: Windows,
    workers: HashMap<String, Worker>,
    /// Which worker each connection logged in as.
    connections: HashMap<u64, String>,
    rejections: Rejections,
    /// Accepted difficulty since the last block found.
    since_block: f64,
}

impl Activity {
    /// A tracker for shares whose difficulty 1 stands for `hashes_per_difficulty` hashes,
    /// counting from `started`.
    pub fn new(hashes_per_difficulty: f64, started: Instant) -> Activity {
        Activity {
            hashes_per_difficulty,
            started,
            pool: Windows::default(),
            workers: HashMap::new(),
            connections: HashMap::new(),
            rejections: Rejections::default(),
            since_block: 0.0,
        }
    }

    fn bucket(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / BUCKET.as_secs()
    }

    /// A share of `worker` answered with `outcome` at `at` (`unix_ms` on the wall clock).
    pub fn share(
        &mut self,
        worker: &str,
        outcome: Outcome,
        difficulty: f64,
        at: Instant,
        unix_ms: i64,
    ) {
        let bucket = self.bucket(at);
        let entry = self.worker(worker, at);
        entry.difficulty = difficulty;
        entry.last_share_unix_ms = Some(unix_ms);
        entry.last_seen = at;
        if outcome == Outcome::Accepted {
            entry.accepted += 1;
            entry.windows.add(bucket, difficulty);
            self.pool.add(bucket, difficulty);
            self.since_block += difficulty;
        } else {
            entry.rejected += 1;
            self.rejections.count(outcome);
        }
    }

    fn worker(&mut self, name: &str, at: Instant) -> &mut Worker {
        self.workers
            .entry(name.to_owned())
            .or_insert_with(|| Worker {
                connections: 0,
                windows: Windows::default(),
                difficulty: 0.0,
                accepted: 0,
                rejected: 0,
                last_share_unix_ms: None,
                last_seen: at,
            })
    }

    /// Connection `conn` logged in as `worker`; `false` when it was already logged in as it
    /// (a miner authorizing twice).
    pub fn connected(&mut self, conn: u64, worker: &str, at: Instant) -> bool {
        if self.connections.get(&conn).is_some_and(|w| w == worker) {
            return false;
        }
        self.disconnected(conn, at);
        self.connections.insert(conn, worker.to_owned());
        let entry = self.worker(worker, at);
        entry.connections += 1;
        entry.last_seen = at;
        self.forget_idle(at);
        true
    }

    /// Connection `conn` closed; the worker it was logged in as, if any.
    pub fn disconnected(&mut self, conn: u64, at: Instant) -> Option<String> {
        let name = self.connections.remove(&conn)?;
        if let Some(worker) = self.workers.get_mut(&name) {
            worker.connections = worker.connections.saturating_sub(1);
            worker.last_seen = at;
        }
        Some(name)
    }

    /// A block was found: the effort starts again.
    pub fn block_found(&mut self) {
        self.since_block = 0.0;
    }

    /// The difficulty accepted since the last block found, as a percentage of
    /// `network_difficulty` (100 % is the work a block takes on average); `None` without a
    /// network difficulty.
    pub fn effort_percent(&self, network_difficulty: f64) -> Option<f64> {
        (network_difficulty > 0.0).then(|| self.since_block / network_difficulty * 100.0)
    }

    /// Rejected shares by reason.
    pub fn rejections(&self) -> Rejections {
        self.rejections
    }

    fn rates(&self, windows: &Windows, now: Instant) -> Hashrates {
        let bucket = self.bucket(now);
        let elapsed = now.saturating_duration_since(self.started);
        let rate = |window: Duration| {
            // The window's whole buckets up to the current one, over the time from the first
            // one's start to now (the time so far, before a window has passed).
            let count = window.as_secs() / BUCKET.as_secs();
            let first = bucket.saturating_sub(count.saturating_sub(1));
            let span = elapsed
                .saturating_sub(BUCKET * u32::try_from(first).unwrap_or(u32::MAX))
                .max(Duration::from_secs(1));
            windows.sum(bucket, window) * self.hashes_per_difficulty / span.as_secs_f64()
        };
        Hashrates {
            one_minute: rate(Duration::from_secs(60)),
            five_minutes: rate(Duration::from_secs(300)),
            one_hour: rate(LONGEST),
        }
    }

    /// The pool's hashrate at `now`.
    pub fn pool_hashrate(&self, now: Instant) -> Hashrates {
        self.rates(&self.pool, now)
    }

    /// One worker's hashrate over the three windows; `None` for a worker not seen.
    pub fn worker_hashrate(&self, name: &str, now: Instant) -> Option<Hashrates> {
        self.workers.get(name).map(|w| self.rates(&w.windows, now))
    }

    /// How many workers are logged in now.
    pub fn worker_count(&self) -> usize {
        self.workers.values().filter(|w| w.connections > 0).count()
    }

    /// Every worker seen in the last hour, by name.
    pub fn workers(&self, now: Instant) -> Vec<WorkerActivity> {
        let mut list: Vec<WorkerActivity> = self
            .workers
            .iter()
            .map(|(name, w)| WorkerActivity {
                name: name.clone(),
                connections: w.connections,
                hashrate: self.rates(&w.windows, now),
                difficulty: w.difficulty,
                accepted: w.accepted,
                rejected: w.rejected,
                last_share_unix_ms: w.last_share_unix_ms,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    fn forget_idle(&mut self, now: Instant) {
        self.workers.retain(|_, w| {
            w.connections > 0 || now.saturating_duration_since(w.last_seen) < FORGET_AFTER
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_steady_miner_has_a_steady_rate_between_shares() {
        let start = Instant::now();
        let mut a = Activity::new(1.0, start);
        // One share of difficulty 30 every 30 s: 1 H/s.
        for i in 0..20 {
            a.share(
                "w",
                Outcome::Accepted,
                30.0,
                start + Duration::from_secs(i * 30),
                0,
            );
        }
        // Sampled every 5 s across the five-minute window, never zero.
        for t in (305..600).step_by(5) {
            let r = a.pool_hashrate(start + Duration::from_secs(t)).five_minutes;
            assert!((0.8..=1.2).contains(&r), "at {t} s: {r}");
        }
    }

    #[test]
    fn a_share_counted_late_lands_in_its_own_bucket() {
        let start = Instant::now();
        let mut a = Activity::new(1.0, start);
        a.share(
            "w",
            Outcome::Accepted,
            10.0,
            start + Duration::from_secs(21),
            0,
        );
        // Judged on another thread, answered a moment after a later one.
        a.share(
            "w",
            Outcome::Accepted,
            5.0,
            start + Duration::from_secs(19),
            0,
        );
        a.share(
            "w",
            Outcome::Accepted,
            1.0,
            start + Duration::from_secs(22),
            0,
        );
        let at = start + Duration::from_secs(30);
        // All 16 over the 30 s so far: none lost to the order.
        assert!((a.pool_hashrate(at).one_minute - 16.0 / 30.0).abs() < 1e-9);
    }

    #[test]
    fn rates_fall_to_zero_once_the_windows_pass() {
        let start = Instant::now();
        let mut a = Activity::new(1.0, start);
        a.share("w", Outcome::Accepted, 600.0, start, 0);
        let later = start + Duration::from_secs(3700);
        assert_eq!(a.pool_hashrate(later), Hashrates::default());
        assert_eq!(a.workers(later)[0].hashrate, Hashrates::default());
    }

    #[test]
    fn rejections_count_by_reason_and_never_as_work() {
        let start = Instant::now();
        let mut a = Activity::new(1.0, start);
        a.share("w", Outcome::Stale, 5.0, start, 1);
        a.share("w", Outcome::LowDifficulty, 5.0, start, 2);
        a.share("w", Outcome::Invalid, 5.0, start, 3);
        a.share("w", Outcome::PoolError, 5.0, start, 4);
        assert_eq!(a.rejections().total(), 4);
        assert_eq!(a.rejections().stale, 1);
        let w = &a.workers(start)[0];
        assert_eq!((w.accepted, w.rejected), (0, 4));
        assert_eq!(w.last_share_unix_ms, Some(4));
        assert_eq!(a.pool_hashrate(start).one_minute, 0.0);
        assert_eq!(a.effort_percent(10.0), Some(0.0));
    }

    #[test]
    fn effort_starts_again_at_a_block() {
        let start = Instant::now();
        let mut a = Activity::new(1.0, start);
        a.share("w", Outcome::Accepted, 5.0, start, 0);
        assert_eq!(a.effort_percent(10.0), Some(50.0));
        assert_eq!(a.effort_percent(0.0), None);
        a.block_found();
        assert_eq!(a.effort_percent(10.0), Some(0.0));
    }

    #[test]
    fn connections_are_counted_per_worker_and_idle_workers_forgotten() {
        let start = Instant::now();
        let mut a = Activity::new(1.0, start);
        assert!(a.connected(1, "a", start));
        assert!(!a.connected(1, "a", start));
        assert!(a.connected(2, "a", start));
        assert!(a.connected(3, "b", start));
        assert_eq!(a.worker_count(), 2);
        assert_eq!(a.disconnected(3, start).as_deref(), Some("b"));
        assert_eq!(a.disconnected(3, start), None);
        assert_eq!(a.worker_count(), 1);
        let later = start + Duration::from_secs(4000);
        assert!(a.connected(4, "c", later));
        let names: Vec<_> = a.workers(later).into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["a", "c"]);
    }

    proptest! {
        #[test]
        fn longer_windows_never_hold_less_work(
            shares in proptest::collection::vec((0u64..4000, 0.001f64..1000.0), 0..200)
        ) {
            let start = Instant::now();
            let mut a = Activity::new(1.0, start);
            let mut shares = shares;
            shares.sort_by_key(|(t, _)| *t);
            for (t, d) in &shares {
                a.share("w", Outcome::Accepted, *d, start + Duration::from_secs(*t), 0);
            }
            let now = start + Duration::from_secs(4000);
            let r = a.pool_hashrate(now);
            // At second 4000 (bucket 400) the windows' whole buckets start at 3950 s, 3710 s
            // and 410 s: rate times that span is the work, never less for a longer window.
            let (w1, w5, w60) = (r.one_minute * 50.0, r.five_minutes * 290.0, r.one_hour * 3590.0);
            prop_assert!(w5 + 1e-6 * w5.max(1.0) >= w1);
            prop_assert!(w60 + 1e-6 * w60.max(1.0) >= w5);
            // The hour before second 4000, in whole ten-second buckets: 410 s on.
            let last_hour: f64 = shares
                .iter()
                .filter(|(t, _)| *t / 10 >= 41)
                .map(|(_, d)| d)
                .sum();
            prop_assert!((w60 - last_hour).abs() <= 1e-6 * last_hour.max(1.0) + 1e-6);
        }
    }
}
