//! What both pool paths share: how a run is driven, and how reports are printed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use otedama_core::{DifficultyConvention, Hashrate};
use otedama_hash::Algorithm;
use otedama_pool::accounting::{self, Accounting, AccountingTask, NoteLevel, PaymentRules, Scheme};
use otedama_pool::service::{PoolService, ServiceEvent};
use otedama_pool::{ChainView, ErrorChain, Report, ShareLog, Wallet};
use otedama_rewards::FeeRate;

use crate::config::Config;
use tokio::sync::watch;

/// How a pool run is driven.
pub(crate) struct ServeOptions {
    /// Whether vardiff runs.
    pub(crate) vardiff: bool,
    /// Told once the pool listens.
    pub(crate) ready: Option<tokio::sync::oneshot::Sender<Started>>,
    /// Flips to `true` when the pool is to stop.
    pub(crate) stop: watch::Receiver<bool>,
}

/// A pool that listens: what the process wires to it (the miner, the API).
pub(crate) struct Started {
    /// Its main Stratum address.
    pub(crate) addr: std::net::SocketAddr,
    /// Its Stratum V2 URL (`stratum2+tcp://host:port/<authority key>`), when it serves one.
    pub(crate) sv2: Option<String>,
    /// Its state, for the API.
    pub(crate) view: otedama_pool::service::PoolView,
    /// Its work source as the API shows it.
    pub(crate) node: String,
    /// The pool's payout address (the built-in miner logs in as `<it>.builtin`).
    pub(crate) payout: String,
    /// The algorithm.
    pub(crate) algo: Algorithm,
    /// Its sharechain node, for `/api/sharechain`.
    pub(crate) sharechain: Option<otedama_pool::sharechain::SharechainApi>,
}

/// Prints what the pool reports.
pub(crate) fn print_event(algo: Algorithm, event: ServiceEvent) {
    match event {
        ServiceEvent::Engine(Report::NewHeight { height }) => {
            tracing::info!("[{algo}] new block to mine: height {height}")
        }
        ServiceEvent::Engine(Report::JobFailed {
            height,
            worker,
            error,
        }) => match worker {
            Some(worker) => tracing::warn!(
                "cannot build {worker}'s own job for height {height}: {}",
                ErrorChain(&error)
            ),
            None => tracing::warn!(
                "cannot build a job for height {height}: {}",
                ErrorChain(&error)
            ),
        },
        ServiceEvent::Engine(Report::ShareTimedOut { share, stage }) => {
            tracing::warn!("share {share:?} not accepted: its {stage} did not finish in time")
        }
        ServiceEvent::Engine(Report::BlockSubmitted {
            height,
            hash,
            finder,
            result,
        }) => tracing::info!(
            "[{algo}] BLOCK height {height} {hash} by {finder}: {}",
            match result {
                Ok(()) => "accepted".to_owned(),
                Err(e) => ErrorChain(&e).to_string(),
            }
        ),
        ServiceEvent::RxKey { seed } => tracing::info!(
            "[{algo}] new RandomX key {}: shares on it are checked with a verifier built for it",
            otedama_core::encode_hex(&seed)
        ),
        ServiceEvent::Source {
            error: otedama_pool::SourceError::NotReady { what },
            retry_in,
        } => tracing::info!("no work yet: {what}; asking again in {retry_in:?}"),
        ServiceEvent::Source { error, retry_in } => {
            tracing::warn!(
                "work source: {}; keeping the last job, retrying in {retry_in:?}",
                ErrorChain(&error)
            )
        }
        ServiceEvent::BlockRelayed { hash, result } => {
            let mut shown = hash;
            shown.reverse();
            let shown = hex::encode(shown);
            match result {
                Ok(()) => tracing::info!(
                    "[{algo}] p2p: block {shown} relayed by a sharechain peer: accepted by the node"
                ),
                Err(e) => tracing::debug!(
                    "[{algo}] p2p: block {shown} relayed by a sharechain peer: {}",
                    ErrorChain(&e)
                ),
            }
        }
        ServiceEvent::BlockNotRecorded { hash, error } => {
            tracing::warn!("cannot record block {hash}: {}", ErrorChain(&error))
        }
        ServiceEvent::Refused {
            username,
            peer,
            reason,
        } => tracing::warn!("refused worker {username:?} from {peer}: {reason}"),
        ServiceEvent::Closed { peer, reason } => tracing::warn!("closed {peer}: {reason:?}"),
        ServiceEvent::Banned { peer, until } => tracing::warn!(
            "banned {} for {} s (bad shares or lines)",
            peer.ip(),
            until
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_secs().saturating_add(1))
        ),
        ServiceEvent::BansRestored { count } => {
            tracing::info!("{count} stored bans still in force")
        }
        ServiceEvent::BanStoreFailed { error } => {
            tracing::warn!("bans: {}", ErrorChain(&error))
        }
        ServiceEvent::BacklogCapped(backlog) => tracing::warn!(
            "the system caps the listen backlog at {} (net.core.somaxconn), below \
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
        NoteLevel::Info => tracing::info!("[{}] {}", note.coin, note.text),
        _ => tracing::warn!("[{}] {}", note.coin, note.text),
    }
}

/// What a running pool needs to be driven to its end: the status line and the orderly
/// shutdown, the same for every algorithm.
pub(crate) struct Running {
    /// The pool.
    pub(crate) service: PoolService,
    /// Its share log and the log's writer thread.
    pub(crate) log: (ShareLog, std::thread::JoinHandle<()>),
    /// The status line's interval.
    pub(crate) stats_interval: Duration,
    /// The algorithm, for the lines logged.
    pub(crate) algo: Algorithm,
    /// Dropped at shutdown: stops the accounting thread.
    pub(crate) accounting: Option<std::sync::mpsc::Sender<()>>,
    /// The sharechain node the pool mines on, if any: in the status line, stopped last.
    pub(crate) sharechain: Option<otedama_pool::sharechain::SharechainNode>,
    /// Flips when the pool is to stop.
    pub(crate) stop: watch::Receiver<bool>,
}

impl Running {
    /// Logs a status line every interval until `stop` flips, then stops the pool and the
    /// share log, in that order.
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let Running {
            service,
            log: (log, log_thread),
            stats_interval,
            algo,
            accounting,
            sharechain,
            mut stop,
        } = self;
        let view = service.view();
        let mut stats = tokio::time::interval(stats_interval);
        stats.tick().await;
        while !*stop.borrow() {
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                _ = stats.tick() => {
                    let s = view.snapshot();
                    let rate = |h: f64| Hashrate::from_hashes_and_secs(h, 1.0).unwrap_or(Hashrate::ZERO);
                    tracing::info!(
                        "[pool {algo}] hashrate {:.2} (1m) {:.2} (5m) {:.2} (1h)  workers {}  shares accepted {} rejected {}  blocks {}",
                        rate(s.hashrate.one_minute),
                        rate(s.hashrate.five_minutes),
                        rate(s.hashrate.one_hour),
                        s.workers,
                        s.engine.accepted,
                        s.engine.rejected,
                        s.engine.blocks
                    );
                    if let Some(node) = &sharechain {
                        if let Some(line) = super::sharechain::status(node).await {
                            tracing::info!("[pool {algo}] {line}");
                        }
                    }
                }
            }
        }
        // The view holds the share log open: without it, the log's writer ends once the
        // service is down.
        drop(view);
        tracing::info!(
            "[pool {algo}] shutting down: closing connections and flushing the share log"
        );
        drop(accounting);
        // Every share being judged is answered and committed before this returns.
        let t = service.shutdown().await;
        // The sharechain's tasks hold the share log too (they book its blocks).
        if let Some(node) = &sharechain {
            node.shutdown();
        }
        drop(log);
        // The writer ends once the last handle is gone; everything acknowledged is already on
        // disk, so a writer still busy after 10 s is not waited for.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || log_thread.join()),
        )
        .await;
        tracing::info!(
            "pool stopped: {} shares accepted, {} rejected, {} blocks found",
            t.accepted,
            t.rejected,
            t.blocks
        );
        Ok(())
    }
}

/// How the pool pays, as its start-up line says it: the scheme (with the PPLNS window), the
/// fee, and the confirmations a block is credited at.
pub(crate) fn reward_rules(config: &Config) -> String {
    let rewards = &config.pool.rewards;
    format!(
        "{}{}, fee {} %, credited at {} confirmations",
        rewards.system,
        if rewards.system == "pplns" {
            format!(" over {}", rewards.window)
        } else {
            String::new()
        },
        config.pool.fee_percentage,
        config.pool.maturity
    )
}

/// Starts the accounting thread, which credits found blocks at maturity (reversing them when
/// orphaned), pays PPS shares, and pays balances through `wallet` when there is one; dropping
/// what it returns stops it.
pub(crate) fn start_accounting(
    config: &Config,
    algo: Algorithm,
    convention: DifficultyConvention,
    log: &ShareLog,
    pool_address: &str,
    chain: Box<dyn ChainView>,
    wallet: Option<Box<dyn Wallet>>,
) -> Result<std::sync::mpsc::Sender<()>> {
    let (stop_accounting, accounting_stop) = std::sync::mpsc::channel::<()>();
    let coin = algo.name().to_owned();
    let since_ms = {
        let (c, system) = (coin.clone(), config.pool.rewards.system.clone());
        log.run(move |store| store.scheme_since(&c, &system, accounting::now_ms()))
            .context("cannot record the reward scheme")?
    };
    let accounting = Accounting {
        coin,
        since_ms,
        scheme: Scheme::from_name(
            &config.pool.rewards.system,
            config.pool.rewards.window.to_window(),
        )?,
        fee: FeeRate::from_percent(config.pool.fee_percentage)
            .map_err(|e| anyhow::anyhow!("pool.fee_percentage: {e}"))?,
        pool_address: pool_address.to_owned(),
        convention,
    };
    let payments = &config.pool.payments;
    let rules = PaymentRules {
        threshold: payments.threshold,
        max_outputs: payments.max_outputs,
        fee_from_miners: payments.fee_from_miners,
        interval: payments.interval.0,
        confirmations: i64::from(config.pool.maturity),
        // The claim's holder is named by host and listen address, so that a restarted pool
        // takes its own claim back at once.
        payer: format!(
            "{} {}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".into()),
            config.pool.listen
        ),
    };
    let task = AccountingTask {
        log: log.clone(),
        chain,
        wallet,
        accounting,
        rules,
        maturity: i64::from(config.pool.maturity),
        check: config.pool.block_check_interval.0,
        notes: Arc::new(print_note),
        reader: Some({
            let database = config.pool.database.clone();
            Box::new(move || otedama_pool::store::open(&database))
        }),
    };
    std::thread::Builder::new()
        .name("accounting".into())
        .spawn(move || task.run(&accounting_stop))?;
    Ok(stop_accounting)
}
