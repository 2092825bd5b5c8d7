//! The running pool: work source → jobs → Stratum server → validation → share log → blocks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_core::bitcoin::bech32::{segwit, Hrp};
use otedama_core::bitcoin::ScriptBuf;
use otedama_core::{AddressParams, Difficulty, DifficultyConvention};
use otedama_hash::{Algorithm, PowAlgorithm, RandomXMode};
use otedama_rewards::FeeRate;
use otedama_stratum::server::ServerConfig;
use otedama_stratum::{ExtranonceAllocator, PoolConfig, VardiffConfig};

use super::common::{print_event, Running, ServeOptions};
use crate::config::{chain_params, Config, ConfigError, Node};
use crate::kernel::build;
use crate::mine::RandomXModeArg;
use otedama_pool::service::{Listener, PoolService, ServiceConfig, Sources};
use otedama_pool::source::devnet::{Devnet, DevnetWallet};
use otedama_pool::source::node::{NodeRpc, RpcAuth};
use otedama_pool::{
    BlockSubmitter, ChainView, Engine, EngineConfig, TemplateSource, EXTRANONCE1_SIZE,
    EXTRANONCE2_SIZE,
};

/// `otedama-cli pool <action>`: looking into a pool's database.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum PoolAction {
    /// Show every ledger line (credits, fees, reversals, payments) of an address.
    Ledger(super::ledger::LedgerArgs),
    /// Settle by hand a payment the pool left open, after checking the chain.
    Payment(super::ledger::PaymentArgs),
    /// Show the audit log: bans, unbans, payments settled by hand, the miner's switch and
    /// configuration reloads, newest first.
    Audit(super::ledger::AuditArgs),
}

/// Arguments of `otedama-cli pool`; every flag overrides the configuration file.
#[derive(Debug, Clone, Args)]
pub(crate) struct PoolArgs {
    /// What to do instead of running the pool.
    #[command(subcommand)]
    action: Option<PoolAction>,
    /// The YAML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// mining.algorithm: sha256d, scrypt or randomx.
    #[arg(long)]
    algo: Option<String>,
    /// mining.threads: built-in miner threads (0: none; 1 when neither this nor the file
    /// says).
    #[arg(long)]
    threads: Option<usize>,
    /// pool.listen: the Stratum address.
    #[arg(long)]
    listen: Option<String>,
    /// pool.sv2.listen: where Stratum V2 listens (off unless given here or in the file).
    #[arg(long)]
    sv2_listen: Option<String>,
    /// pool.payout_address: the pool's payout address.
    #[arg(long)]
    address: Option<String>,
    /// pool.chain: whose addresses miners use.
    #[arg(long)]
    chain: Option<String>,
    /// pool.difficulty: starting share difficulty.
    #[arg(long)]
    difficulty: Option<f64>,
    /// pool.devnet_difficulty: the devnet's network difficulty.
    #[arg(long)]
    devnet_difficulty: Option<f64>,
    /// pool.max_connections.
    #[arg(long)]
    max_connections: Option<usize>,
    /// pool.fee_percentage.
    #[arg(long)]
    fee: Option<f64>,
    /// pool.database: the SQLite file.
    #[arg(long)]
    database: Option<String>,
    /// pool.node.url: the node's JSON-RPC URL (the devnet when absent).
    #[arg(long)]
    node_url: Option<String>,
    /// pool.node.user.
    #[arg(long)]
    node_user: Option<String>,
    /// pool.node.password.
    #[arg(long)]
    node_password: Option<String>,
    /// pool.node.cookie.
    #[arg(long)]
    node_cookie: Option<PathBuf>,
    /// pool.maturity: confirmations after which a found block counts as confirmed.
    #[arg(long)]
    maturity: Option<u32>,
    /// pool.block_check_interval: seconds between checks of found blocks against the node.
    #[arg(long)]
    block_check_interval: Option<u64>,
    /// pool.payments.enabled: pay balances through the node's wallet.
    #[arg(long)]
    payments_enabled: Option<bool>,
    /// pool.payments.threshold: the smallest balance paid, in the coin's smallest unit.
    #[arg(long)]
    payment_threshold: Option<u64>,
    /// pool.payments.interval: time between payment rounds, e.g. 10m.
    #[arg(long)]
    payment_interval: Option<String>,
    /// pool.payments.max_outputs: most outputs in one payment transaction.
    #[arg(long)]
    payment_max_outputs: Option<usize>,
    /// pool.payments.fee_from_miners: take the network fee out of the miners' outputs.
    #[arg(long)]
    payment_fee_from_miners: Option<bool>,
    /// pool.payments.wallet: the node wallet that pays.
    #[arg(long)]
    payment_wallet: Option<String>,
    /// pool.rewards.system: pplns, pps, fpps, prop or solo.
    #[arg(long)]
    rewards_system: Option<String>,
    /// pool.rewards.window: the PPLNS window, e.g. 2h or "100000 shares".
    #[arg(long)]
    rewards_window: Option<String>,
    /// api.enabled: serve the REST/WebSocket API.
    #[arg(long)]
    api_enabled: Option<bool>,
    /// api.listen: the API address.
    #[arg(long)]
    api_listen: Option<String>,
    /// monitoring.metrics.enabled: serve Prometheus metrics (on the API listener unless
    /// monitoring.metrics.address is set).
    #[arg(long)]
    metrics: Option<bool>,
    /// monitoring.stats_interval: seconds between status lines.
    #[arg(long)]
    stats_interval: Option<f64>,
    /// Keep every session at the starting difficulty (no vardiff).
    #[arg(long)]
    fixed_difficulty: bool,
    /// Stop after this many seconds (for scripts and tests).
    #[arg(long)]
    seconds: Option<f64>,
    /// p2p.enabled: mine on the sharechain with other nodes.
    #[arg(long)]
    p2p: bool,
    /// p2p.listen: where sharechain peers connect.
    #[arg(long)]
    p2p_listen: Option<String>,
    /// p2p.peers: a sharechain node to dial (repeat for more).
    #[arg(long = "p2p-peer")]
    p2p_peers: Vec<String>,
    /// p2p.data: the SQLite file the sharechain is kept in.
    #[arg(long)]
    p2p_data: Option<String>,
    /// RandomX only: the built-in miner's mode, fast (2 GiB dataset) or light (256 MiB cache).
    #[arg(long, value_enum, default_value_t = RandomXModeArg::Fast)]
    randomx_mode: RandomXModeArg,
}

fn flag_error(key: &str, reason: String) -> ConfigError {
    ConfigError {
        file: "<flags>".into(),
        key: key.into(),
        reason,
    }
}

impl PoolArgs {
    /// The configuration file with the flags applied, validated.
    fn effective(&self) -> Result<Config, ConfigError> {
        let mut c = Config::open(self.config.as_deref())?;
        if let Some(v) = &self.algo {
            c.mining.algorithm = v.clone();
        }
        if let Some(v) = self.threads {
            c.mining.threads = Some(v);
        }
        if let Some(v) = &self.listen {
            c.pool.listen = v
                .parse()
                .map_err(|e| flag_error("pool.listen", format!("{v:?}: {e}")))?;
        }
        if let Some(v) = &self.sv2_listen {
            c.pool.sv2.listen = Some(
                v.parse()
                    .map_err(|e| flag_error("pool.sv2.listen", format!("{v:?}: {e}")))?,
            );
        }
        if let Some(v) = &self.address {
            c.pool.payout_address = Some(v.clone());
        }
        if let Some(v) = &self.chain {
            c.pool.chain = Some(v.clone());
        }
        if let Some(v) = self.difficulty {
            c.pool.difficulty = Some(v);
        }
        if let Some(v) = self.devnet_difficulty {
            c.pool.devnet_difficulty = Some(v);
        }
        if let Some(v) = self.max_connections {
            c.pool.max_connections = v;
        }
        if let Some(v) = self.fee {
            c.pool.fee_percentage = v;
        }
        if let Some(v) = &self.database {
            c.pool.database = v.clone();
        }
        if let Some(v) = self.maturity {
            c.pool.maturity = v;
        }
        if let Some(v) = self.block_check_interval {
            c.pool.block_check_interval = crate::config::Span(Duration::from_secs(v));
        }
        if let Some(v) = self.payments_enabled {
            c.pool.payments.enabled = v;
        }
        if let Some(v) = self.payment_threshold {
            c.pool.payments.threshold = v;
        }
        if let Some(v) = &self.payment_interval {
            c.pool.payments.interval = crate::config::Span::parse(v)
                .map_err(|e| flag_error("pool.payments.interval", e))?;
        }
        if let Some(v) = self.payment_max_outputs {
            c.pool.payments.max_outputs = v;
        }
        if let Some(v) = self.payment_fee_from_miners {
            c.pool.payments.fee_from_miners = v;
        }
        if let Some(v) = &self.payment_wallet {
            c.pool.payments.wallet = Some(v.clone());
        }
        if let Some(v) = &self.rewards_system {
            c.pool.rewards.system = v.clone();
        }
        if let Some(v) = &self.rewards_window {
            c.pool.rewards.window = crate::config::RewardWindow::parse(v)
                .map_err(|e| flag_error("pool.rewards.window", e))?;
        }
        if let Some(v) = self.api_enabled {
            c.api.enabled = v;
        }
        if let Some(v) = &self.api_listen {
            c.api.listen = v
                .parse()
                .map_err(|e| flag_error("api.listen", format!("{v:?}: {e}")))?;
        }
        if let Some(v) = self.metrics {
            c.monitoring.metrics.enabled = v;
        }
        if let Some(v) = self.stats_interval {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(flag_error(
                    "monitoring.stats_interval",
                    format!("{v} is not between 0 and a day"),
                ));
            }
            c.monitoring.stats_interval =
                crate::config::Span(Duration::from_secs_f64(v.max(1.0).round()));
        }
        if self.p2p {
            c.p2p.enabled = true;
        }
        if let Some(v) = &self.p2p_listen {
            c.p2p.listen = Some(
                v.parse()
                    .map_err(|e| flag_error("p2p.listen", format!("{v:?}: {e}")))?,
            );
        }
        if !self.p2p_peers.is_empty() {
            c.p2p.peers = self.p2p_peers.clone();
        }
        if let Some(v) = &self.p2p_data {
            c.p2p.data = Some(v.clone());
        }
        if let Some(url) = &self.node_url {
            c.pool.node = Some(Node {
                url: url.clone(),
                user: self.node_user.clone(),
                password: self.node_password.clone(),
                cookie: self.node_cookie.clone(),
            });
        } else if self.node_user.is_some()
            || self.node_password.is_some()
            || self.node_cookie.is_some()
        {
            return Err(flag_error(
                "pool.node",
                "node credentials given without --node-url".into(),
            ));
        }
        let file = self
            .config
            .as_ref()
            .map_or("<flags>".to_owned(), |p| p.display().to_string());
        c.validate(&file)?;
        Ok(c)
    }
}

/// Per-algorithm defaults a fresh machine can mine with.
pub(crate) struct AlgoSettings {
    pub(crate) algo: Algorithm,
    pub(crate) convention: DifficultyConvention,
    pub(crate) chain: &'static str,
    pub(crate) share_difficulty: f64,
    pub(crate) devnet_difficulty: f64,
}

pub(crate) fn algo_settings(name: &str) -> Result<AlgoSettings> {
    Ok(match name {
        "sha256d" => AlgoSettings {
            algo: Algorithm::Sha256d,
            convention: DifficultyConvention::Bitcoin,
            chain: "bitcoin-regtest",
            share_difficulty: 0.005,
            devnet_difficulty: 0.05,
        },
        "scrypt" => AlgoSettings {
            algo: Algorithm::Scrypt,
            convention: DifficultyConvention::Scrypt,
            chain: "litecoin-regtest",
            share_difficulty: 0.25,
            devnet_difficulty: 2.0,
        },
        other => bail!(
            "mining.algorithm {other}: the Stratum v1 pool serves sha256d and scrypt (randomx has its own pool path)"
        ),
    })
}

/// An address nobody holds the key to, valid on `params`: where a devnet without a
/// configured address pays its coinbase.
fn devnet_address(params: &AddressParams) -> Result<String> {
    let hrp = Hrp::parse(params.bech32_hrp).context("chain prefix")?;
    segwit::encode(hrp, segwit::VERSION_0, &[0u8; 20]).context("devnet address")
}

/// Every role a node or the devnet plays for the pool.
trait Source: TemplateSource + BlockSubmitter + ChainView {}

impl<T: TemplateSource + BlockSubmitter + ChainView> Source for T {}

/// A source of work, opened once for templates and once for submissions so that a long-poll
/// never delays a block.
fn open_source(config: &Config, devnet: &Option<Devnet>) -> Result<Box<dyn Source>> {
    if let Some(d) = devnet {
        return Ok(Box::new(d.clone()));
    }
    Ok(Box::new(open_node(config)?))
}

/// A JSON-RPC client of the configured node.
fn open_node(config: &Config) -> Result<NodeRpc> {
    let node = config.pool.node.as_ref().context("no node configured")?;
    let auth = match (&node.user, &node.password, &node.cookie) {
        (Some(u), Some(p), _) => RpcAuth::UserPassword(u.clone(), p.clone()),
        (_, _, Some(cookie)) => RpcAuth::Cookie(cookie.clone()),
        _ => bail!("pool.node needs user and password, or a cookie file"),
    };
    Ok(NodeRpc::new(&node.url, auth))
}

/// The coinbase tag every job carries.
const POOL_TAG: &[u8] = b"/otedama/";

/// Runs the pool until SIGINT/SIGTERM (or `--seconds`).
pub(crate) fn run(args: PoolArgs, logs: LogFlags) -> Result<()> {
    match &args.action {
        Some(PoolAction::Ledger(ledger)) => return super::ledger::run(ledger),
        Some(PoolAction::Payment(payment)) => return super::ledger::settle(payment),
        Some(PoolAction::Audit(audit)) => return super::ledger::audit(audit),
        None => {}
    }
    let config = args.effective()?;
    if args.print_config {
        print!("{}", config.to_yaml());
        return Ok(());
    }
    crate::logging::init(&crate::serve::log_settings(&config, logs.0, logs.1)?)?;
    let file = args
        .config
        .as_ref()
        .map_or("<flags>".to_owned(), |p| p.display().to_string());
    config.check_devnet(&file)?;
    let roles = crate::serve::Roles {
        pool: true,
        miner_threads: config.mining.pool_threads(),
        vardiff: !args.fixed_difficulty,
        randomx_mode: args.randomx_mode,
        seconds: args.seconds,
        reread: args.config.is_some().then(|| {
            let args = args.clone();
            Arc::new(move || Ok(args.effective()?)) as crate::reload::Reread
        }),
    };
    crate::serve::runtime()?.block_on(crate::serve::supervise(config, roles))
}

/// The `--log-format` and `--log-file` flags.
pub(crate) type LogFlags = (Option<crate::logging::LogFormat>, Option<PathBuf>);

/// Runs a pool with `config` until stopped.
pub(crate) async fn serve(config: Config, options: ServeOptions) -> Result<()> {
    if config.mining.algorithm == Algorithm::RandomX.name() {
        return super::randomx::serve(config, options).await;
    }
    let ServeOptions {
        vardiff,
        ready,
        stop,
    } = options;
    let settings = algo_settings(&config.mining.algorithm)?;
    let chain_name = config
        .pool
        .chain
        .clone()
        .unwrap_or_else(|| settings.chain.to_owned());
    let chain = chain_params(&chain_name).with_context(|| format!("unknown chain {chain_name}"))?;
    let pool_address = match &config.pool.payout_address {
        Some(a) => a.clone(),
        None if config.pool.node.is_none() => devnet_address(&chain)?,
        None => {
            bail!("pool.payout_address is required when mining on a node: the coinbase pays it")
        }
    };
    let payout: ScriptBuf = chain
        .script_pubkey(&pool_address)
        .with_context(|| format!("pool.payout_address {pool_address}"))?;
    let kernel: Arc<dyn PowAlgorithm> = Arc::from(build(
        settings.algo,
        None,
        None,
        RandomXMode::Light,
        1,
        true,
    )?);

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

    let devnet = if config.pool.node.is_none() {
        let d = Difficulty::new(
            config
                .pool
                .devnet_difficulty
                .unwrap_or(settings.devnet_difficulty),
        )?;
        let network = settings.convention.target_for(d);
        let devnet_kernel = build(settings.algo, None, None, RandomXMode::Light, 1, true)?;
        Some(Devnet::new(devnet_kernel, network))
    } else {
        None
    };
    let solo_fee = match config.pool.rewards.system.as_str() {
        "solo" => Some(
            FeeRate::from_percent(config.pool.fee_percentage)
                .map_err(|e| anyhow::anyhow!("pool.fee_percentage: {e}"))?,
        ),
        _ => None,
    };
    let engine = Engine::new(EngineConfig {
        algorithm: settings.algo.name().into(),
        convention: settings.convention,
        chain,
        payout: payout.clone(),
        pool_tag: POOL_TAG.to_vec(),
        solo_fee,
    });
    let sources = Sources {
        long_poll: open_source(&config, &devnet)?,
        templates: open_source(&config, &devnet)?,
        blocks: open_source(&config, &devnet)?,
    };

    let sharechain = if config.p2p.enabled {
        let params = super::sharechain::chain_params(
            &config,
            settings.algo,
            settings.convention,
            settings.share_difficulty,
            &chain_name,
            if devnet.is_some() { "devnet" } else { "node" },
        )?;
        Some(super::sharechain::start(&config, params, &database, Arc::clone(&kernel)).await?)
    } else {
        None
    };
    // On a sharechain the coinbase pays every miner large enough for an output of its own;
    // the ledger pays the rest from the pool's own output.
    let accounting = super::common::start_accounting(
        &config,
        settings.algo,
        settings.convention,
        &log,
        &pool_address,
        open_source(&config, &devnet)?,
        open_wallet(&config, &devnet, chain, &pool_address)?,
    )?;
    if let Some(node) = &sharechain {
        node.record_blocks(
            log.clone(),
            otedama_pool::sharechain::BlockBook {
                algorithm: settings.algo.name().to_owned(),
                payout: payout.to_bytes(),
                names: otedama_pool::sharechain::PayoutNames::Script(chain),
            },
        );
    }

    let allocator = ExtranonceAllocator::new(&[], EXTRANONCE1_SIZE)?;
    let mut initial_difficulty = config.pool.difficulty.unwrap_or(settings.share_difficulty);
    let mut vardiff_config = VardiffConfig {
        min_difficulty: initial_difficulty.min(1e-6),
        ..VardiffConfig::default()
    };
    if config.p2p.enabled {
        // A share the sharechain would take must never be below a session's difficulty,
        // or the miner would not send it: sessions stay at or below the sharechain's
        // easiest share.
        let easiest = config
            .p2p
            .min_difficulty
            .unwrap_or(settings.share_difficulty);
        initial_difficulty = initial_difficulty.min(easiest);
        vardiff_config.max_difficulty = vardiff_config.max_difficulty.min(easiest);
        vardiff_config.min_difficulty = vardiff_config.min_difficulty.min(easiest);
    }
    let pool_config = PoolConfig {
        extranonce2_size: EXTRANONCE2_SIZE,
        initial_difficulty,
        vardiff: vardiff_config,
        vardiff_enabled: vardiff,
        ..PoolConfig::default()
    };
    crate::limits::check_connections("pool.max_connections", config.pool.max_connections);
    let server = ServerConfig {
        pool: Arc::new(pool_config),
        max_connections: config.pool.max_connections,
        edge: config.pool.limits.edge(),
        ..ServerConfig::default()
    };
    let tls = match config.pool.tls.listen {
        Some(listen) => Some((listen, super::tls::tls_port(&config.pool.tls, &database)?)),
        None => None,
    };
    let more = tls
        .iter()
        .map(|(listen, port)| Listener {
            listen: *listen,
            server: ServerConfig {
                tls: Some(Arc::clone(&port.config)),
                ..server.clone()
            },
        })
        .collect();
    let sv2 = match config.pool.sv2.listen {
        Some(listen) => {
            let (authority, file) = super::sv2::authority(&config.pool.sv2, &database)?;
            let validity =
                u32::try_from(config.pool.sv2.certificate_validity.0.as_secs()).unwrap_or(u32::MAX);
            let public = authority.public();
            let port = super::sv2::server(&server, authority, validity, settings.convention);
            Some((listen, port, public, file))
        }
        None => None,
    };
    let algo = settings.algo;
    let service_config = ServiceConfig {
        listen: config.pool.listen,
        server,
        more,
        sv2: sv2
            .iter()
            .map(|(listen, port, _, _)| Listener {
                listen: *listen,
                server: port.clone(),
            })
            .collect(),
        allocator,
        engine,
        kernel,
    };
    let report: otedama_pool::service::Reporter = Arc::new(move |event| print_event(algo, event));
    let service = match &sharechain {
        Some(node) => {
            PoolService::start_sharechain(
                service_config,
                sources,
                log.clone(),
                report,
                node.side_chain(),
            )
            .await
        }
        None => PoolService::start(service_config, sources, log.clone(), report).await,
    }
    .with_context(|| format!("cannot listen on {}", config.pool.listen))?;
    if let Some(node) = &sharechain {
        node.follow(service.work_trigger(), super::sharechain::print_node_event);
    }
    let local = service.local_addr();
    let node = match &config.pool.node {
        Some(node) => node.url.clone(),
        None => "devnet".to_owned(),
    };
    tracing::info!(
        "otedama pool: {} on stratum+tcp://{local} ({}, payouts to {pool_address}, database {})",
        settings.algo,
        if devnet.is_some() {
            "embedded devnet".to_owned()
        } else {
            format!("node {node}")
        },
        otedama_pool::store::display_database(&database)
    );
    if let (Some((_, port)), Some(local)) = (&tls, service.local_addrs().get(1)) {
        tracing::info!(
            "otedama pool: {} on stratum+ssl://{local} (certificate {}, sha256 fingerprint {})",
            settings.algo,
            port.cert.display(),
            super::tls::hex(&port.fingerprint)
        );
    }
    let mut sv2_url = None;
    if let Some((_, _, public, file)) = &sv2 {
        // The Stratum V2 port is the last one bound.
        if let Some(local) = service.local_addrs().last() {
            let url = format!("stratum2+tcp://{local}/{public}");
            tracing::info!(
                "otedama pool: {} on {url} (authority key {})",
                settings.algo,
                file.display()
            );
            sv2_url = Some(url);
        }
    }
    let payments = &config.pool.payments;
    if sharechain.is_some() {
        tracing::info!(
            "[{}] rewards: the sharechain's PPLNS window, paid in each block's coinbase to every miner whose hashrate earns an output of its own; smaller miners mine on this pool's shares and are paid from its output as below",
            settings.algo
        );
    }
    {
        tracing::info!(
            "[{}] rewards: {}; payments: {}",
            settings.algo,
            super::common::reward_rules(&config),
            match (&devnet, payments.enabled) {
                (_, false) => "off".to_owned(),
                (devnet, true) => format!(
                    "{}every {} for balances of at least {}, up to {} per transaction",
                    if devnet.is_some() {
                        "from the devnet wallet "
                    } else {
                        ""
                    },
                    payments.interval,
                    payments.threshold,
                    payments.max_outputs
                ),
            }
        );
    }
    if let Some(ready) = ready {
        let _ = ready.send(super::Started {
            addr: local,
            sv2: sv2_url,
            view: service.view(),
            node,
            payout: pool_address.clone(),
            algo: settings.algo,
            sharechain: sharechain
                .as_ref()
                .map(|node| otedama_pool::sharechain::SharechainApi {
                    node: node.clone(),
                    names: otedama_pool::sharechain::PayoutNames::Script(chain),
                }),
        });
    }
    Running {
        service,
        log: (log, log_thread),
        stats_interval: config.monitoring.stats_interval.0,
        algo: settings.algo,
        accounting: Some(accounting),
        sharechain,
        stop,
    }
    .run()
    .await
}

/// The wallet that pays the ledger's balances, when payments are on: the node's (or one of
/// its wallets), or on the devnet the devnet's view of the coinbases paid to the pool.
fn open_wallet(
    config: &Config,
    devnet: &Option<Devnet>,
    chain: AddressParams,
    pool_address: &str,
) -> Result<Option<Box<dyn otedama_pool::Wallet>>> {
    let payments = &config.pool.payments;
    Ok(match (devnet, payments.enabled) {
        (None, true) => {
            let node = open_node(config)?;
            Some(Box::new(match &payments.wallet {
                Some(name) => node.wallet(name),
                None => node,
            }))
        }
        // The devnet's wallet holds the coinbases paid to the pool's address.
        (Some(devnet), true) => Some(Box::new(DevnetWallet::new(
            devnet.clone(),
            chain,
            pool_address,
            u64::from(config.pool.maturity),
        )?)),
        (_, false) => None,
    })
}
