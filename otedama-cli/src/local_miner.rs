//! The miner as the API sees it: its counters, its hashrate over a minute, five minutes and
//! an hour, and (for the miner `serve` runs beside its pool) the switch that starts and stops
//! it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otedama_pool::http::{HashrateBody, MinerControl, MinerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::mine::{MineArgs, MinerGauges};

/// How often the hash count is sampled for the windows.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The longest window.
const LONGEST: Duration = Duration::from_secs(3600);

/// Hash counts over time, for rates over windows.
#[derive(Debug, Default)]
struct Samples(Mutex<VecDeque<(Instant, u64)>>);

impl Samples {
    fn record(&self, at: Instant, hashes: u64) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back((at, hashes));
        while s
            .front()
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) > LONGEST + SAMPLE_EVERY)
        {
            s.pop_front();
        }
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Hashes per second over each window, from the oldest sample inside it to `hashes` now.
    fn rates(&self, now: Instant, hashes: u64) -> HashrateBody {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let rate = |window: Duration| {
            let first = s
                .iter()
                .find(|(t, _)| now.saturating_duration_since(*t) <= window);
            match first {
                Some((t, h)) if now.saturating_duration_since(*t) >= Duration::from_secs(1) => {
                    hashes.saturating_sub(*h) as f64
                        / now.saturating_duration_since(*t).as_secs_f64()
                }
                _ => 0.0,
            }
        };
        HashrateBody {
            one_minute: rate(Duration::from_secs(60)),
            five_minutes: rate(Duration::from_secs(300)),
            one_hour: rate(LONGEST),
        }
    }
}

/// What every miner view shares: where it mines and what it counted.
#[derive(Debug)]
struct Shape {
    pool: String,
    algorithm: String,
    threads: usize,
    gauges: Arc<MinerGauges>,
    samples: Samples,
}

impl Shape {
    fn new(args: &MineArgs) -> Shape {
        Shape {
            pool: args.urls.first().cloned().unwrap_or_default(),
            algorithm: args.algo.to_string(),
            threads: args.threads,
            gauges: Arc::clone(&args.gauges),
            samples: Samples::default(),
        }
    }

    fn sample(&self) {
        self.samples
            .record(Instant::now(), self.gauges.hashes.load(Ordering::Relaxed));
    }

    fn state(&self, running: bool, since: Option<Instant>) -> MinerState {
        let hashes = self.gauges.hashes.load(Ordering::Relaxed);
        MinerState {
            running,
            pool: self.pool.clone(),
            algorithm: self.algorithm.clone(),
            threads: self.threads,
            uptime_seconds: since.map_or(0.0, |s| s.elapsed().as_secs_f64()),
            hashrate: if running {
                self.samples.rates(Instant::now(), hashes)
            } else {
                HashrateBody::default()
            },
            accepted: self.gauges.accepted.load(Ordering::Relaxed),
            rejected: self.gauges.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Samples `shape` until `stop` flips (or its sender goes) or the shape is dropped.
fn spawn_sampler(shape: &Arc<Shape>, stop: Option<watch::Receiver<bool>>) {
    let weak = Arc::downgrade(shape);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        let stopped = async move {
            match stop {
                Some(mut stop) => {
                    let _ = stop.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = tick.tick() => match weak.upgrade() {
                    Some(shape) => shape.sample(),
                    None => return,
                },
                () = &mut stopped => return,
            }
        }
    });
}

/// The `mine` command's miner, as its own API shows it: it runs from the command line, so
/// the API only reads it.
pub(crate) struct MinerView {
    shape: Arc<Shape>,
    started: Instant,
}

impl MinerView {
    /// A view of the miner `args` runs; samples until the runtime ends. Call within the
    /// runtime.
    pub(crate) fn new(args: &MineArgs) -> MinerView {
        let shape = Arc::new(Shape::new(args));
        spawn_sampler(&shape, None);
        MinerView {
            shape,
            started: Instant::now(),
        }
    }
}

impl MinerControl for MinerView {
    fn start(&self) -> Result<MinerState, String> {
        Err("this miner runs from the command line: start it there".into())
    }

    fn stop(&self) -> Result<MinerState, String> {
        Err("this miner runs from the command line: stop it there (Ctrl-C)".into())
    }

    fn state(&self) -> MinerState {
        self.shape.state(true, Some(self.started))
    }
}

/// A miner running.
struct Run {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<crate::mine::MinerTotals>>,
    since: Instant,
}

/// The miner `serve` (or `pool`) runs beside its pool: started and stopped by the API.
pub(crate) struct LocalMiner {
    args: MineArgs,
    shape: Arc<Shape>,
    runtime: tokio::runtime::Handle,
    run: Mutex<Option<Run>>,
}

impl LocalMiner {
    /// A miner of `args`, not started. Call within the runtime it will run on.
    pub(crate) fn new(args: MineArgs) -> LocalMiner {
        LocalMiner {
            shape: Arc::new(Shape::new(&args)),
            args,
            runtime: tokio::runtime::Handle::current(),
            run: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts mining; nothing when it runs.
    pub(crate) fn begin(&self) {
        let mut run = self.lock();
        if run.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        let (stop, stop_rx) = watch::channel(false);
        self.shape.samples.clear();
        let _guard = self.runtime.enter();
        spawn_sampler(&self.shape, Some(stop_rx.clone()));
        let task = self
            .runtime
            .spawn(crate::mine::mine(self.args.clone(), stop_rx));
        tracing::info!(
            "built-in miner: {} threads on {}",
            self.args.threads,
            self.shape.pool
        );
        *run = Some(Run {
            stop,
            task,
            since: Instant::now(),
        });
    }

    /// Stops mining and waits up to `patience` for the threads to end.
    pub(crate) async fn end(&self, patience: Duration) {
        let taken = self.lock().take();
        let Some(run) = taken else {
            return;
        };
        let _ = run.stop.send(true);
        match tokio::time::timeout(patience, run.task).await {
            Ok(Ok(Err(e))) => tracing::warn!("the built-in miner stopped: {e:#}"),
            Ok(_) => tracing::info!("built-in miner stopped"),
            Err(_) => tracing::warn!(
                "the built-in miner did not stop in {} s",
                patience.as_secs()
            ),
        }
    }

    fn running_since(&self) -> Option<Instant> {
        self.lock()
            .as_ref()
            .filter(|r| !r.task.is_finished())
            .map(|r| r.since)
    }
}

impl MinerControl for LocalMiner {
    fn start(&self) -> Result<MinerState, String> {
        self.begin();
        Ok(self.state())
    }

    fn stop(&self) -> Result<MinerState, String> {
        // Called off the runtime's threads (the API runs it blocking).
        self.runtime.block_on(self.end(Duration::from_secs(10)));
        Ok(self.state())
    }

    fn state(&self) -> MinerState {
        let since = self.running_since();
        self.shape.state(since.is_some(), since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_oldest_sample_in_each_window() {
        let s = Samples::default();
        let start = Instant::now();
        for i in 0..=120u64 {
            s.record(start + Duration::from_secs(i * 5), i * 5000);
        }
        let now = start + Duration::from_secs(600);
        let r = s.rates(now, 600_000);
        assert!((r.one_minute - 1000.0).abs() < 1.0, "{r:?}");
        assert!((r.five_minutes - 1000.0).abs() < 1.0, "{r:?}");
        assert!((r.one_hour - 1000.0).abs() < 1.0, "{r:?}");
        assert_eq!(Samples::default().rates(now, 5).one_minute, 0.0);
    }
}
