//! Variable difficulty: steer each session toward a target share rate.

use std::time::{Duration, Instant};

/// Vardiff settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VardiffConfig {
    /// The share interval to aim for.
    pub target_interval: Duration,
    /// How often to reconsider the difficulty.
    pub retarget_interval: Duration,
    /// Lowest difficulty handed out.
    pub min_difficulty: f64,
    /// Highest difficulty handed out.
    pub max_difficulty: f64,
    /// Relative deviation from the target rate that is left alone (0.3 = ±30%).
    pub tolerance: f64,
    /// Largest factor by which one retarget may raise or lower the difficulty.
    pub max_step: f64,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        VardiffConfig {
            target_interval: Duration::from_secs(10),
            retarget_interval: Duration::from_secs(60),
            min_difficulty: 1e-9,
            max_difficulty: 1e15,
            tolerance: 0.3,
            max_step: 4.0,
        }
    }
}

impl VardiffConfig {
    /// Clamps a difficulty into the configured bounds.
    pub fn clamp(&self, d: f64) -> f64 {
        d.clamp(self.min_difficulty, self.max_difficulty)
    }
}

/// One session's vardiff state. Deterministic: the same shares at the same instants give the
/// same difficulties.
#[derive(Debug, Clone)]
pub struct Vardiff {
    config: VardiffConfig,
    window_start: Instant,
    shares: u64,
}

impl Vardiff {
    /// Starts measuring at `now`.
    pub fn new(config: VardiffConfig, now: Instant) -> Self {
        Vardiff {
            config,
            window_start: now,
            shares: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &VardiffConfig {
        &self.config
    }

    /// Counts an accepted share.
    pub fn record_share(&mut self) {
        self.shares = self.shares.saturating_add(1);
    }

    /// Restarts the window, e.g. after the difficulty was set from outside.
    pub fn reset(&mut self, now: Instant) {
        self.window_start = now;
        self.shares = 0;
    }

    /// The difficulty to switch to, if the rate since the last retarget is off target.
    ///
    /// A window closes after `retarget_interval`, or early once shares arrive four times
    /// faster than the whole window expects (a miner far below its capacity ramps up
    /// quickly). A window with no shares at all lowers the difficulty by the full step, so a
    /// miner whose difficulty is far too high is not stranded.
    pub fn retarget(&mut self, current: f64, now: Instant) -> Option<f64> {
        let elapsed = now.saturating_duration_since(self.window_start);
        let target = self.config.target_interval.as_secs_f64().max(1e-3);
        let window = self.config.retarget_interval.as_secs_f64().max(target);
        let burst = self.shares as f64 >= 4.0 * window / target;
        if elapsed.as_secs_f64() < window && !burst {
            return None;
        }
        let expected = (elapsed.as_secs_f64() / target).max(1e-9);
        let ratio = self.shares as f64 / expected;
        self.reset(now);
        if (ratio - 1.0).abs() <= self.config.tolerance {
            return None;
        }
        let step = self.config.max_step.max(1.0);
        let factor = ratio.clamp(1.0 / step, step);
        let next = self.config.clamp(current * factor);
        (next != current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VardiffConfig {
        VardiffConfig {
            min_difficulty: 1.0,
            max_difficulty: 1e6,
            ..VardiffConfig::default()
        }
    }

    #[test]
    fn raises_for_a_fast_miner_and_lowers_for_a_silent_one() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        // 12 shares in 60 s at a 10 s target: twice too fast.
        for _ in 0..12 {
            v.record_share();
        }
        assert_eq!(v.retarget(100.0, t0 + Duration::from_secs(59)), None);
        assert_eq!(v.retarget(100.0, t0 + Duration::from_secs(60)), Some(200.0));
        // Then silence: the next window lowers by the full step.
        assert_eq!(v.retarget(200.0, t0 + Duration::from_secs(120)), Some(50.0));
    }

    #[test]
    fn leaves_an_on_target_miner_alone_and_respects_bounds() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        for _ in 0..6 {
            v.record_share();
        }
        assert_eq!(v.retarget(100.0, t0 + Duration::from_secs(60)), None);
        let mut v = Vardiff::new(cfg(), t0);
        assert_eq!(
            v.retarget(1.0, t0 + Duration::from_secs(60)),
            None,
            "already at the floor"
        );
    }

    #[test]
    fn bursts_retarget_early() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        for _ in 0..24 {
            v.record_share();
        }
        assert_eq!(v.retarget(10.0, t0 + Duration::from_secs(5)), Some(40.0));
    }
}
