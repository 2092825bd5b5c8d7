//! The RandomX pool: monerod (`pool.node`) or the embedded RandomX devnet as work source,
//! `otedama-pool`'s engine and service on the Monero-dialect server xmrig speaks; each
//! connection mines its own blob. With `p2p:` (devnet only) every blob is a share of the
//! sharechain, whose coinbase pays the window.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use otedama_core::DifficultyConvention;
use otedama_hash::Algorithm;
use otedama_pool::service::{PoolService, RxServiceConfig};
use otedama_pool::source::devnet_rx::{RxDevnet, DEVNET_RX_SEED};
use otedama_pool::source::monerod::Monerod;
use otedama_pool::xmr_address::{check_address, devnet_address};
use otedama_pool::{Engine, RxConfig, RxKeys, RxSource, RX_ALGO};
use otedama_stratum::server::MoneroServerConfig;
use otedama_stratum::{ExtranonceAllocator, VardiffConfig};

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
        vardiff,
        ready,
        stop,
    } = options;
    if let Some(chain) = &config.pool.chain {
        bail!("pool.chain {chain}: chains name Bitcoin-family networks; a RandomX pool pays Monero mainnet addresses and takes no chain");
    }
    let monerod = match &config.pool.node {
        Some(node) => {
            if node.user.is_some() || node.password.is_some() || node.cookie.is_some() {
                bail!("pool.node: monerod's --rpc-login takes HTTP digest authentication, which this pool does not speak; run monerod without it on a private address and remove pool.node.user/password/cookie");
            }
            if config.p2p.enabled {
                bail!("p2p: a RandomX sharechain runs on the embedded devnet only for now (its coinbase is not monerod's); remove pool.node or disable p2p");
            }
            if config.pool.payments.enabled {
                tracing::warn!("pool.payments: paying Monero balances through monero-wallet-rpc is not built yet, so this pool pays nothing; the ledger credits miners at maturity and keeps their balances (otedama-cli pool ledger) for you to pay");
            }
            Some(node.url.clone())
        }
        None => None,
    };
    let pool_address = match (&config.pool.payout_address, &monerod) {
        (Some(a), _) => {
            check_address(a).with_context(|| format!("pool.payout_address {a}"))?;
            a.clone()
        }
        (None, None) => devnet_address(),
        (None, Some(_)) => bail!(
            "pool.payout_address: a pool on monerod needs the Monero address its blocks pay (a wallet of yours)"
        ),
    };
    let devnet_difficulty = monero_difficulty(
        config
            .pool
            .devnet_difficulty
            .unwrap_or(DEFAULT_DEVNET_DIFFICULTY),
    );
    // The engine keeps every job's share difficulty at most the network's, which would
    // otherwise throw away blocks; the devnet's is known now.
    let configured = monero_difficulty(config.pool.difficulty.unwrap_or(DEFAULT_SHARE_DIFFICULTY));
    let share_difficulty = match monerod {
        Some(_) => configured,
        None => configured.min(devnet_difficulty),
    };

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

    // On the devnet, two RandomX caches of 256 MiB: the devnet's own (a node checks blocks
    // itself) and the pool's share verifier. On monerod, the verifier is keyed with the seed
    // of the node's first template, which also shows the node answers.
    let payout = pool_address.clone();
    let (source, keys, network, seed) = tokio::task::spawn_blocking(move || {
        let (source, seed, network): (Arc<dyn RxSource>, [u8; 32], String) = match monerod {
            Some(url) => {
                let node = Monerod::new(&url);
                let work = node.work(&payout, [0; 8]).with_context(|| {
                    format!("cannot get a block template from monerod at {url}")
                })?;
                let network = format!(
                    "monerod {url}, height {}, difficulty {}",
                    work.height, work.difficulty
                );
                (Arc::new(node), work.seed, network)
            }
            None => {
                let devnet =
                    RxDevnet::new(devnet_difficulty).context("cannot start the RandomX devnet")?;
                let network = format!("embedded devnet, difficulty {}", devnet.difficulty());
                (Arc::new(devnet), DEVNET_RX_SEED, network)
            }
        };
        let keys = RxKeys::light(seed).context("cannot set up the RandomX share verifier")?;
        anyhow::Ok((source, Arc::new(keys), network, seed))
    })
    .await
    .context("the RandomX set-up thread failed")??;

    let sharechain = if config.p2p.enabled {
        let params = super::sharechain::chain_params(
            &config,
            Algorithm::RandomX,
            DifficultyConvention::Monero,
            share_difficulty as f64,
            "devnet",
            "devnet",
        )?;
        let kernel = keys
            .get(&seed)
            .context("the RandomX share verifier has no kernel")?;
        Some(super::sharechain::start(&config, params, &database, kernel).await?)
    } else {
        None
    };

    let engine = Engine::randomx(RxConfig {
        algorithm: Algorithm::RandomX.name().into(),
        algo: RX_ALGO.into(),
        share_difficulty,
        // A sharechain's sessions stay at its share difficulty, which the engine caps them
        // at anyway.
        vardiff: (vardiff && sharechain.is_none()).then(|| VardiffConfig {
            min_difficulty: 1.0,
            ..VardiffConfig::default()
        }),
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
        keys,
        payout: pool_address.clone(),
    };
    let report: otedama_pool::service::Reporter =
        Arc::new(|event| print_event(Algorithm::RandomX, event));
    let service = match &sharechain {
        Some(node) => {
            PoolService::start_rx_sharechain(
                service_config,
                source.clone(),
                log.clone(),
                report,
                node.rx_side_chain(),
            )
            .await
        }
        None => PoolService::start_rx(service_config, source.clone(), log.clone(), report).await,
    }
    .with_context(|| format!("cannot listen on {}", config.pool.listen))?;
    if let Some(node) = &sharechain {
        node.follow(service.work_trigger(), super::sharechain::print_node_event);
        tracing::info!(
            "[{}] rewards: the sharechain's PPLNS window, paid in each block's coinbase to the address every miner logs in with",
            Algorithm::RandomX
        );
    }
    // On monerod, found blocks are credited to the miners at maturity and reversed when
    // orphaned, as on the Bitcoin-family nodes.
    let accounting = match &config.pool.node {
        Some(node) => {
            tracing::info!(
                "[{}] rewards: {} (monerod unlocks a coinbase after 60); payments: off",
                Algorithm::RandomX,
                super::common::reward_rules(&config),
            );
            Some(super::common::start_accounting(
                &config,
                Algorithm::RandomX,
                DifficultyConvention::Monero,
                &log,
                &pool_address,
                Box::new(Monerod::new(&node.url)),
                None,
            )?)
        }
        None => None,
    };
    let local = service.local_addr();
    tracing::info!(
        "otedama pool: {} on stratum+tcp://{local} ({network}, share difficulty {share_difficulty}, payouts to {pool_address}, database {})",
        Algorithm::RandomX,
        otedama_pool::store::display_database(&database)
    );
    if let Some(ready) = ready {
        let _ = ready.send(super::Started {
            addr: local,
            sv2: None,
            view: service.view(),
            node: config
                .pool
                .node
                .as_ref()
                .map_or_else(|| "devnet".into(), |n| n.url.clone()),
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
        accounting,
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
