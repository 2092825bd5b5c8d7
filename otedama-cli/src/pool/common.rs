//! What both pool paths share: how a run is driven, and how reports are printed.

use std::time::{Duration, Instant};

use anyhow::Context;
use otedama_core::Hashrate;
use otedama_hash::Algorithm;
use otedama_pool::accounting::{self, NoteLevel};
use otedama_pool::service::{PoolService, ServiceEvent};
use otedama_pool::{ErrorChain, Report, ShareLog};
use tokio::sync::watch;

use crate::mine::{MineArgs, RandomXModeArg};

/// How a pool run is driven.
pub(crate) struct ServeOptions {
    /// Stop after this long instead of at SIGINT/SIGTERM.
    pub(crate) seconds: Option<f64>,
    /// Whether vardiff runs.
    pub(crate) vardiff: bool,
    /// Told the Stratum address once the pool listens.
    pub(crate) ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    /// The built-in RandomX miner's mode.
    pub(crate) randomx_mode: RandomXModeArg,
}

/// Prints what the pool reports.
pub(crate) fn print_event(algo: Algorithm, event: ServiceEvent) {
    match event {
        ServiceEvent::Engine(Report::NewHeight { height }) => {
            println!("[{algo}] new block to mine: height {height}")
        }
        ServiceEvent::Engine(Report::JobFailed {
            height,
            worker,
            error,
        }) => match worker {
            Some(worker) => eprintln!(
                "cannot build {worker}'s own job for height {height}: {}",
                ErrorChain(&error)
            ),
            None => eprintln!(
                "cannot build a job for height {height}: {}",
                ErrorChain(&error)
            ),
        },
        ServiceEvent::Engine(Report::ShareTimedOut { share, stage }) => {
            eprintln!("share {share:?} not accepted: its {stage} did not finish in time")
        }
        ServiceEvent::Engine(Report::BlockSubmitted {
            height,
            hash,
            finder,
            result,
        }) => println!(
            "[{algo}] BLOCK height {height} {hash} by {finder}: {}",
            match result {
                Ok(()) => "accepted".to_owned(),
                Err(e) => ErrorChain(&e).to_string(),
            }
        ),
        ServiceEvent::Source { error, retry_in } => {
            eprintln!(
                "work source: {}; keeping the last job, retrying in {retry_in:?}",
                ErrorChain(&error)
            )
        }
        ServiceEvent::BlockNotRecorded { hash, error } => {
            eprintln!("cannot record block {hash}: {}", ErrorChain(&error))
        }
        ServiceEvent::Refused {
            username,
            peer,
            reason,
        } => eprintln!("refused worker {username:?} from {peer}: {reason}"),
        ServiceEvent::Closed { peer, reason } => eprintln!("closed {peer}: {reason:?}"),
        ServiceEvent::Banned { peer, until } => eprintln!(
            "banned {} for {} s (bad shares or lines)",
            peer.ip(),
            until
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_secs().saturating_add(1))
        ),
        ServiceEvent::BansRestored { count } => {
            println!("{count} stored bans still in force")
        }
        ServiceEvent::BanStoreFailed { error } => {
            eprintln!("bans: {}", ErrorChain(&error))
        }
        ServiceEvent::BacklogCapped(backlog) => eprintln!(
            "warning: the system caps the listen backlog at {} (net.core.somaxconn), below \
             pool.max_connections {}: a burst of miners connecting at once may be dropped; \
             raise it with `sysctl -w net.core.somaxconn={}`",
            backlog.effective(),
            backlog.requested,
            backlog.requested
        ),
        _ => {}
    }
}

/// Prints what the accounting reports: progress to stdout, warnings to stderr.
pub(crate) fn print_note(note: accounting::Note) {
    match note.level {
        NoteLevel::Info => println!("[{}] {}", note.coin, note.text),
        _ => eprintln!("[{}] {}", note.coin, note.text),
    }
}

/// What a running pool needs to be driven to its end: the built-in miner, the status line and
/// the orderly shutdown, the same for every algorithm.
pub(crate) struct Running {
    /// The pool.
    pub(crate) service: PoolService,
    /// Its share log and the log's writer thread.
    pub(crate) log: (ShareLog, std::thread::JoinHandle<()>),
    /// The built-in miner's arguments, when `mining.threads` > 0 (the URL is filled in).
    pub(crate) miner: Option<MineArgs>,
    /// The status line's interval.
    pub(crate) stats_interval: Duration,
    /// Hashes a share of difficulty 1 stands for.
    pub(crate) hashes_per_difficulty: f64,
    /// Stop after this long instead of at SIGINT/SIGTERM.
    pub(crate) seconds: Option<f64>,
    /// The algorithm, for the lines printed.
    pub(crate) algo: Algorithm,
    /// Dropped at shutdown: stops the accounting thread.
    pub(crate) accounting: Option<std::sync::mpsc::Sender<()>>,
    /// Where the HTTP surface (health, stats, and metrics when the flag is set) listens,
    /// when `api.enabled`.
    pub(crate) http: Option<(std::net::SocketAddr, bool)>,
}

impl Running {
    /// Mines (when asked), prints a status line every interval, and at the signal (or after
    /// `seconds`) stops the miner, the pool and the share log, in that order.
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let Running {
            service,
            log: (log, log_thread),
            miner,
            stats_interval,
            hashes_per_difficulty,
            seconds,
            algo,
            accounting,
            http,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let http_task = match http {
            Some((listen, metrics)) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen} (api.listen)"))?;
                let local = listener.local_addr()?;
                println!(
                    "otedama api: http://{local} (/health/live, /health/ready, /api/stats{})",
                    if metrics { ", /metrics" } else { "" }
                );
                let view = service.view();
                let router = otedama_pool::http::api(
                    vec![otedama_pool::http::Served {
                        view: view.clone(),
                        node: String::new(),
                    }],
                    otedama_pool::http::ApiOptions {
                        dashboard: true,
                        ..Default::default()
                    },
                )
                .merge(otedama_pool::http::health(vec![view.clone()]));
                let router = if metrics {
                    router.merge(otedama_pool::http::metrics(vec![view]))
                } else {
                    router
                };
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(otedama_pool::http::serve(
                    listener,
                    router,
                    async move {
                        let _ = stop.changed().await;
                    },
                )))
            }
            None => None,
        };
        let miner_task = miner.map(|mut args| {
            args.urls = vec![format!("stratum+tcp://{}", service.local_addr())];
            tokio::spawn(crate::mine::mine(args, stop_rx))
        });
        let shutdown = async {
            match seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
                None => crate::signals::wait_for_shutdown().await,
            }
        };
        tokio::pin!(shutdown);
        let mut stats = tokio::time::interval(stats_interval);
        stats.tick().await;
        let mut last_stats = (Instant::now(), 0.0f64);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = stats.tick() => {
                    let t = service.stats();
                    let secs = last_stats.0.elapsed().as_secs_f64();
                    let work = (t.difficulty_sum - last_stats.1) * hashes_per_difficulty;
                    let rate = Hashrate::from_hashes_and_secs(work, secs).unwrap_or(Hashrate::ZERO);
                    println!(
                        "[pool {algo}] shares accepted {} rejected {}  blocks {}  pool hashrate {rate:.2}",
                        t.accepted, t.rejected, t.blocks
                    );
                    last_stats = (Instant::now(), t.difficulty_sum);
                }
            }
        }
        println!("shutting down: closing connections and flushing the share log");
        let _ = stop_tx.send(true);
        drop(accounting);
        if let Some(task) = miner_task {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(Err(e))) => eprintln!("the built-in miner stopped: {e:#}"),
                Ok(_) => {}
                Err(_) => eprintln!("the built-in miner did not stop in 10 s"),
            }
        }
        if let Some(task) = http_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // Every share being judged is answered and committed before this returns.
        let t = service.shutdown().await;
        drop(log);
        // The writer ends once the last handle is gone; everything acknowledged is already on
        // disk, so a writer still busy after 10 s is not waited for.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || log_thread.join()),
        )
        .await;
        println!(
            "pool stopped: {} shares accepted, {} rejected, {} blocks found",
            t.accepted, t.rejected, t.blocks
        );
        Ok(())
    }
}
