//! The RandomX pool: the embedded RandomX devnet as work source, `otedama-pool`'s engine and
//! service on the Monero-dialect server xmrig speaks; each connection mines its own blob. With
//! `p2p:` every blob is a share of the sharechain, whose coinbase pays the window.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use otedama_core::DifficultyConvention;
use otedama_hash::{Algorithm, PowAlgorithm, RandomX, RandomXMode};
use otedama_pool::service::{PoolService, RxServiceConfig};
use otedama_pool::source::devnet_rx::{RxDevnet, DEVNET_RX_SEED};
use otedama_pool::xmr_address::{check_address, devnet_address};
use otedama_pool::{Engine, RxConfig, RX_ALGO};
use otedama_stratum::server::MoneroServerConfig;
use otedama_stratum::ExtranonceAllocator;

use super::common::{print_event, Running, ServeOptions};
use crate::config::Config;

/// Share difficulty when `pool.difficulty` is absent: a share every second or so from one
/// fast-mode thread.
const DEFAULT_SHARE_DIFFICULTY: f64 = 500.0;

/// Devnet difficulty when `pool.devnet_difficulty` is absent: a block every few seconds on one
/// fast-mode thread.
const DEFAULT_DEVNET_DIFFICULTY: f64 = 5000.0;

/// Bytes of a session id (the login result's `id`, in hex).
const SESSION_ID_SIZE: usize = 4;

/// A Monero difficulty from the configuration's floating-point value: rounded, at least 1.
fn monero_difficulty(value: f64) -> u64 {
    if value.is_finite() && value >= 1.0 {
        value.round().min(u64::MAX as f64) as u64
    } else {
        1
    }
}

/// Runs the RandomX pool on the embedded devnet with `config` until stopped.
pub(crate) async fn serve(config: Config, options: ServeOptions) -> Result<()> {
    let ServeOptions {
        vardiff: _,
        ready,
        stop,
    } = options;
    if config.pool.node.is_some() {
        bail!("pool.node: a RandomX pool runs on the embedded devnet only for now (no monerod work source yet); remove pool.node");
    }
    if let Some(chain) = &config.pool.chain {
        bail!("pool.chain {chain}: chains name Bitcoin-family networks; a RandomX pool pays Monero mainnet addresses and takes no chain");
    }
    let pool_address = match &config.pool.payout_address {
        Some(a) => {
            check_address(a).with_context(|| format!("pool.payout_address {a}"))?;
            a.clone()
        }
        None => devnet_address(),
    };
    let devnet_difficulty = monero_difficulty(
        config
            .pool
            .devnet_difficulty
            .unwrap_or(DEFAULT_DEVNET_DIFFICULTY),
    );
    // The engine keeps every job's share difficulty at most the network's, which would
    // otherwise throw away blocks.
    let share_difficulty =
        monero_difficulty(config.pool.difficulty.unwrap_or(DEFAULT_SHARE_DIFFICULTY))
            .min(devnet_difficulty);

    let database = config.pool.database.clone();
    let (log, log_thread) = {
        let opening = database.clone();
        tokio::task::spawn_blocking(move || otedama_pool::store::open_share_log(&opening))
            .await
            .context("the database opener stopped")?
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    otedama_pool::store::display_database(&database)
                )
            })?
    };

    // Two RandomX caches of 256 MiB: the devnet's own (a node checks blocks itself) and the
    // pool's share verifier.
    let (devnet, verifier) = tokio::task::spawn_blocking(move || {
        let devnet = RxDevnet::new(devnet_difficulty).context("cannot start the RandomX devnet")?;
        let verifier = RandomX::new(&DEVNET_RX_SEED, RandomXMode::Light, 1)
            .context("cannot set up the RandomX share verifier")?;
        anyhow::Ok((devnet, verifier))
    })
    .await
    .context("the RandomX set-up thread failed")??;
    let devnet = Arc::new(devnet);
    let verifier = Arc::new(verifier);

    let sharechain = if config.p2p.enabled {
        let params = super::sharechain::chain_params(
            &config,
            Algorithm::RandomX,
            DifficultyConvention::Monero,
            share_difficulty as f64,
            "devnet",
            "devnet",
        )?;
        let kernel: Arc<dyn PowAlgorithm> = verifier.clone();
        Some(super::sharechain::start(&config, params, &database, kernel).await?)
    } else {
        None
    };

    let engine = Engine::randomx(RxConfig {
        algorithm: Algorithm::RandomX.name().into(),
        algo: RX_ALGO.into(),
        share_difficulty,
    });
    crate::limits::check_connections("pool.max_connections", config.pool.max_connections);
    let server = MoneroServerConfig {
        max_connections: config.pool.max_connections,
        edge: config.pool.limits.edge(),
        ..MoneroServerConfig::default()
    };
    let service_config = RxServiceConfig {
        listen: config.pool.listen,
        server,
        more: Vec::new(),
        allocator: ExtranonceAllocator::new(&[], SESSION_ID_SIZE)?,
        engine,
        kernel: verifier,
        payout: pool_address.clone(),
    };
    let report: otedama_pool::service::Reporter =
        Arc::new(|event| print_event(Algorithm::RandomX, event));
    let service = match &sharechain {
        Some(node) => {
            PoolService::start_rx_sharechain(
                service_config,
                devnet.clone(),
                log.clone(),
                report,
                node.rx_side_chain(),
            )
            .await
        }
        None => PoolService::start_rx(service_config, devnet.clone(), log.clone(), report).await,
    }
    .with_context(|| format!("cannot listen on {}", config.pool.listen))?;
    if let Some(node) = &sharechain {
        node.follow(service.work_trigger(), super::sharechain::print_node_event);
        tracing::info!(
            "[{}] rewards: the sharechain's PPLNS window, paid in each block's coinbase to the address every miner logs in with",
            Algorithm::RandomX
        );
    }
    let local = service.local_addr();
    tracing::info!(
        "otedama pool: {} on stratum+tcp://{local} (embedded devnet, difficulty {}, share difficulty {share_difficulty}, payouts to {pool_address}, database {})",
        Algorithm::RandomX,
        devnet.difficulty(),
        otedama_pool::store::display_database(&database)
    );
    if let Some(ready) = ready {
        let _ = ready.send(super::Started {
            addr: local,
            sv2: None,
            view: service.view(),
            node: "devnet".into(),
            payout: pool_address.clone(),
            algo: Algorithm::RandomX,
            sharechain: sharechain
                .as_ref()
                .map(|node| otedama_pool::sharechain::SharechainApi {
                    node: node.clone(),
                    names: otedama_pool::sharechain::PayoutNames::Text,
                }),
        });
    }
    Running {
        service,
        log: (log, log_thread),
        stats_interval: config.monitoring.stats_interval.0,
        algo: Algorithm::RandomX,
        accounting: None,
        sharechain,
        stop,
    }
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_difficulties_become_monero_difficulties() {
        assert_eq!(monero_difficulty(0.2), 1);
        assert_eq!(monero_difficulty(f64::NAN), 1);
        assert_eq!(monero_difficulty(99.6), 100);
    }
}
