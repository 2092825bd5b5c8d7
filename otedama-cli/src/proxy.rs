//! `otedama-cli proxy`: Stratum v1 miners downstream, one upstream channel (a Stratum V2
//! extended channel, or a v1 subscription) whose extranonce space they share.
//!
//! The proxy itself is `otedama-stratum`'s ([`run_proxy`]); this wires it to the command
//! line, reconnects when the upstream goes, and prints its progress.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use otedama_core::DifficultyConvention;
use otedama_hash::Algorithm;
use otedama_stratum::client::{ClientConfig, PoolUrl};
use otedama_stratum::proxy::{
    run_proxy, sha256d_header, HeaderHash, ProxyConfig, ProxyError, ProxyServerConfig, ProxyStatus,
};
use otedama_stratum::server::ServerConfig;
use otedama_stratum::sv2::miner::{Sv2MinerConfig, Sv2MinerSession};
use otedama_stratum::{MinerConfig, MinerSession, PoolConfig};
use tokio::sync::watch;

/// Arguments of `otedama-cli proxy`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProxyArgs {
    /// The upstream pool: `stratum2+tcp://host:port/<authority key>` (Stratum V2, one
    /// extended channel) or `stratum+tcp://host:port` (Stratum v1, one subscription).
    #[arg(long)]
    upstream: String,
    /// Where Stratum v1 miners connect.
    #[arg(long, default_value = "0.0.0.0:3333")]
    listen: String,
    /// The upstream identity every downstream miner mines for: the payout address,
    /// optionally `.workername`.
    #[arg(short = 'u', long)]
    user: String,
    /// The upstream password (v1 upstreams; most pools ignore it).
    #[arg(short = 'p', long, default_value = "x")]
    password: String,
    /// The algorithm whose hash the downstream shares are checked with: sha256d or scrypt.
    #[arg(long, default_value = "sha256d")]
    algo: Algorithm,
    /// The extranonce2 bytes each downstream miner rolls; the rest of the upstream
    /// extranonce numbers the miners.
    #[arg(long, default_value_t = 4)]
    downstream_extranonce2_size: usize,
    /// The downstream miners' starting difficulty (vardiff moves it, never above the
    /// upstream's).
    #[arg(long, default_value_t = 1.0)]
    difficulty: f64,
    /// The hashrate announced upstream when the channel opens, hashes per second.
    #[arg(long, default_value_t = 1e12)]
    hashrate: f32,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 10.0)]
    stats_interval: f64,
    /// Exit after this many seconds (for scripts and tests).
    #[arg(long)]
    seconds: Option<f64>,
}

/// Runs the proxy until Ctrl-C, SIGTERM or `--seconds`.
pub(crate) fn run(args: &ProxyArgs) -> Result<()> {
    let url = PoolUrl::parse(&args.upstream).map_err(|e| {
        anyhow!(
            "{e} (expected stratum2+tcp://host:port/<authority key> or stratum+tcp://host:port)"
        )
    })?;
    let (convention, hash): (_, HeaderHash) = match args.algo {
        Algorithm::Sha256d => (DifficultyConvention::Bitcoin, sha256d_header as HeaderHash),
        Algorithm::Scrypt => (DifficultyConvention::Scrypt, scrypt_header as HeaderHash),
        other => bail!("the proxy checks sha256d and scrypt shares, not {other}"),
    };
    if !(args.difficulty.is_finite() && args.difficulty > 0.0) {
        bail!("--difficulty must be a positive number");
    }
    if !(args.stats_interval.is_finite() && args.stats_interval > 0.0) {
        bail!("--stats-interval must be a positive number of seconds");
    }
    let proxy = ProxyConfig {
        downstream_extranonce2_size: args.downstream_extranonce2_size,
        convention,
        hash,
        ..ProxyConfig::default()
    };
    if args.downstream_extranonce2_size < proxy.min_downstream_extranonce2_size {
        bail!(
            "--downstream-extranonce2-size must be at least {}",
            proxy.min_downstream_extranonce2_size
        );
    }
    let downstream = ServerConfig {
        pool: std::sync::Arc::new(PoolConfig {
            initial_difficulty: args.difficulty,
            ..PoolConfig::default()
        }),
        ..ServerConfig::default()
    };
    let config = ProxyServerConfig { downstream, proxy };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(args, url.authority.is_some(), config))
}

fn scrypt_header(header: &[u8; 80]) -> [u8; 32] {
    otedama_hash::scrypt_1024_1_1(header)
}

async fn serve(args: &ProxyArgs, v2: bool, config: ProxyServerConfig) -> Result<()> {
    let miner = MinerConfig {
        user: args.user.clone(),
        password: args.password.clone(),
        version_rolling: Some(config.downstream.pool.version_rolling_mask),
        ..MinerConfig::default()
    };
    let (status, watched) = watch::channel(ProxyStatus::default());
    let reporter = tokio::spawn(report(
        watched,
        Duration::from_secs_f64(args.stats_interval),
        args.upstream.clone(),
    ));
    let deadline = args.seconds.map(Duration::from_secs_f64);
    let (quit, quitting) = watch::channel(false);
    tokio::spawn(async move {
        match deadline {
            Some(after) => tokio::select! {
                () = crate::signals::wait_for_shutdown() => {}
                () = tokio::time::sleep(after) => {}
            },
            None => crate::signals::wait_for_shutdown().await,
        }
        quit.send_replace(true);
    });
    let stopped = || {
        let mut quitting = quitting.clone();
        async move {
            quitting.wait_for(|q| *q).await.ok();
        }
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let run = async {
            if v2 {
                let session = Sv2MinerConfig {
                    miner: miner.clone(),
                    convention: config.proxy.convention,
                    nominal_hash_rate: args.hashrate,
                    min_extranonce_size: u16::try_from(
                        config.proxy.min_downstream_extranonce2_size + 1,
                    )
                    .unwrap_or(u16::MAX),
                    ..Sv2MinerConfig::default()
                };
                run_proxy::<Sv2MinerSession>(
                    &args.upstream,
                    ClientConfig::new(session),
                    &args.listen,
                    config.clone(),
                    status.clone(),
                    stopped(),
                )
                .await
            } else {
                run_proxy::<MinerSession>(
                    &args.upstream,
                    ClientConfig::new(miner.clone()),
                    &args.listen,
                    config.clone(),
                    status.clone(),
                    stopped(),
                )
                .await
            }
        };
        let started = tokio::time::Instant::now();
        let result = run.await;
        if *quitting.borrow() {
            break;
        }
        match result {
            Ok(()) => break,
            Err(e @ ProxyError::Bind { .. }) => return Err(e.into()),
            Err(e) => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(
                    "[proxy] {e}; every downstream miner was let go; connecting again in {} s",
                    backoff.as_secs()
                );
                tokio::select! {
                    () = stopped() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    reporter.abort();
    let s = status.borrow().stats;
    tracing::info!(
        "[proxy] done: shares valid {} refused {} | upstream forwarded {} accepted {} refused {}",
        s.valid,
        s.refused,
        s.forwarded,
        s.upstream_accepted,
        s.upstream_refused
    );
    Ok(())
}

/// Prints the proxy's state when it starts serving and then every `interval`.
async fn report(mut status: watch::Receiver<ProxyStatus>, interval: Duration, upstream: String) {
    let mut listening = None;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let s = status.borrow_and_update().clone();
                if s.listening != listening {
                    listening = s.listening;
                    if let Some(addr) = listening {
                        tracing::info!(
                            "[proxy] v1 miners on stratum+tcp://{addr}, upstream {upstream}: \
                             extranonce2 of {} bytes, upstream difficulty {}",
                            s.extranonce2_size,
                            s.upstream_difficulty
                        );
                    }
                }
            }
            _ = tick.tick() => {
                let s = status.borrow().clone();
                tracing::info!(
                    "[proxy] miners {} | shares valid {} refused {} | upstream forwarded {} accepted {} refused {}",
                    s.miners,
                    s.stats.valid,
                    s.stats.refused,
                    s.stats.forwarded,
                    s.stats.upstream_accepted,
                    s.stats.upstream_refused
                );
            }
        }
    }
}
