//! `otedama-cli serve`: everything the configuration file enables, in one process: the
//! pools, the built-in miner, the API with its dashboard, metrics and health. `pool` runs
//! through the same supervisor with its own defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_pool::http::{self, ApiOptions, MinerControl, Served};
use tokio::sync::watch;

use crate::config::Config;
use crate::local_miner::LocalMiner;
use crate::logging::{LogFormat, LogSettings};
use crate::mine::{MineArgs, RandomXModeArg};
use crate::pool::{ServeOptions, Started};

/// Arguments of `otedama-cli serve`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// The YAML configuration file (every section documented in the README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Stop after this many seconds (for scripts and tests).
    #[arg(long)]
    seconds: Option<f64>,
    /// RandomX only: the built-in miner's mode.
    #[arg(long, value_enum, default_value_t = RandomXModeArg::Fast)]
    randomx_mode: RandomXModeArg,
}

/// What the supervisor runs.
pub(crate) struct Roles {
    /// Whether the pools run.
    pub(crate) pool: bool,
    /// The built-in miner's threads (0: none).
    pub(crate) miner_threads: usize,
    /// Whether vardiff runs.
    pub(crate) vardiff: bool,
    /// The built-in RandomX miner's mode.
    pub(crate) randomx_mode: RandomXModeArg,
    /// Stop after this long instead of at SIGINT/SIGTERM.
    pub(crate) seconds: Option<f64>,
    /// How to read the configuration again on a reload (SIGHUP, `POST /api/config/reload`);
    /// `None` when it came from no file.
    pub(crate) reread: Option<crate::reload::Reread>,
}

/// The log settings the file and the flags ask for.
pub(crate) fn log_settings(
    config: &Config,
    format: Option<LogFormat>,
    file: Option<PathBuf>,
) -> Result<LogSettings> {
    Ok(LogSettings {
        format: match format {
            Some(f) => f,
            None => LogFormat::from_name(&config.app.log_format)?,
        },
        file: file.or_else(|| config.app.log_file.clone()),
        all_stderr: false,
    })
}

/// Runs `serve`; `logs` are the `--log-format` and `--log-file` flags.
pub(crate) fn run(args: ServeArgs, logs: crate::pool::LogFlags) -> Result<()> {
    let file = args
        .config
        .as_ref()
        .map_or("<defaults>".to_owned(), |p| p.display().to_string());
    let config = Config::open(args.config.as_deref())?;
    if args.print_config {
        print!("{}", config.to_yaml());
        return Ok(());
    }
    crate::logging::init(&log_settings(&config, logs.0, logs.1)?)?;
    if config.pool.enable {
        config.check_devnet(&file)?;
    }
    let roles = Roles {
        pool: config.pool.enable,
        miner_threads: config.mining.serve_threads(),
        vardiff: true,
        randomx_mode: args.randomx_mode,
        seconds: args.seconds,
        reread: args
            .config
            .clone()
            .map(|path| Arc::new(move || Ok(Config::open(Some(&path))?)) as crate::reload::Reread),
    };
    if !roles.pool && roles.miner_threads == 0 && !config.api.enabled {
        bail!("{file}: nothing to run: pool.enable, mining.enable_cpu and api.enable are all off");
    }
    runtime()?.block_on(supervise(config, roles))
}

/// The runtime every long-running command uses.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Says once which enabled devices this build cannot drive.
fn note_devices(config: &Config) {
    if config.mining.enable_gpu {
        tracing::warn!(
            "mining.enable_gpu: no GPU is driven by this build yet; GPU mining is off \
             (mining.gpu.* is kept for when it is)"
        );
    }
    if config.mining.enable_asic {
        tracing::warn!(
            "mining.enable_asic: no ASIC is driven by this build yet; ASIC mining is off \
             (mining.asic.* is kept for when it is)"
        );
    }
}

/// Starts the pools (one per configured port), the built-in miner and the HTTP surfaces,
/// and runs them until the signal (or `roles.seconds`); then stops the miner, the HTTP
/// servers and the pools, in that order.
pub(crate) async fn supervise(config: Config, roles: Roles) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut pools = tokio::task::JoinSet::new();
    let mut started: Vec<Started> = Vec::new();
    if roles.pool {
        let mut readies = Vec::new();
        for instance in config.instances() {
            let (ready, ready_rx) = tokio::sync::oneshot::channel();
            let options = ServeOptions {
                vardiff: roles.vardiff,
                ready: Some(ready),
                stop: stop_rx.clone(),
            };
            let name = instance.mining.algorithm.clone();
            let listen = instance.pool.listen;
            pools.spawn(async move {
                crate::pool::serve(instance, options)
                    .await
                    .with_context(|| format!("the {name} pool on {listen}"))
            });
            readies.push(ready_rx);
        }
        for ready in readies {
            match ready.await {
                Ok(s) => started.push(s),
                // The pool ended before it listened: its error says why.
                Err(_) => {
                    let _ = stop_tx.send(true);
                    return Err(join_all(&mut pools)
                        .await
                        .unwrap_or_else(|| anyhow::anyhow!("a pool stopped before it listened")));
                }
            }
        }
    }
    note_devices(&config);
    let reloader = match &roles.reread {
        Some(reread) if !started.is_empty() => Some(Arc::new(crate::reload::Reloader::new(
            Arc::clone(reread),
            config.clone(),
            started.iter().map(|s| s.view.clone()).collect(),
        ))),
        _ => None,
    };
    let hangup = roles
        .pool
        .then(|| tokio::spawn(crate::reload::on_hangup(reloader.clone())));
    // Everything that can still fail is set up before any miner starts; a failure stops the
    // pools the orderly way (connections closed, the share log flushed).
    let wired = match miners(&config, &roles, &started) {
        Ok(miner) => start_http(&config, &started, miner.clone(), reloader, &stop_rx)
            .await
            .map(|http| (miner, http)),
        Err(e) => Err(e),
    };
    let (miner, http) = match wired {
        Ok(wired) => wired,
        Err(e) => {
            let _ = stop_tx.send(true);
            if let Some(hangup) = &hangup {
                hangup.abort();
            }
            join_all(&mut pools).await;
            return Err(e);
        }
    };
    if let Some(group) = &miner {
        for m in &group.0 {
            m.begin();
        }
    }
    // The routers hold their own views; these would keep the pools' share logs open past
    // their shutdown.
    drop(started);
    let shutdown = async {
        match roles.seconds {
            Some(s) => {
                let wait = Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
                tokio::time::sleep(wait).await
            }
            None => crate::signals::wait_for_shutdown().await,
        }
    };
    // A pool that ends on its own (a failure) stops everything, with its error.
    let failed = tokio::select! {
        _ = shutdown => None,
        Some(done) = pools.join_next() => match done {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(anyhow::anyhow!("a pool task failed: {e}")),
        },
    };
    tracing::info!("shutting down");
    if let Some(group) = &miner {
        for miner in &group.0 {
            miner.end(Duration::from_secs(10)).await;
        }
    }
    let _ = stop_tx.send(true);
    // It holds the pools' views, which would keep their share logs open past their shutdown.
    if let Some(hangup) = hangup {
        hangup.abort();
        let _ = hangup.await;
    }
    for server in http {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    let rest = join_all(&mut pools).await;
    match failed.or(rest) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The built-in miners, one per pool (or one on `mining.pool_url`), switched together.
pub(crate) struct MinerGroup(Vec<Arc<LocalMiner>>);

impl MinerControl for MinerGroup {
    fn start(&self) -> Result<otedama_pool::http::MinerState, String> {
        for miner in &self.0 {
            miner.start()?;
        }
        Ok(self.state())
    }

    fn stop(&self) -> Result<otedama_pool::http::MinerState, String> {
        for miner in &self.0 {
            miner.stop()?;
        }
        Ok(self.state())
    }

    /// The first miner's state (the main pool's).
    fn state(&self) -> otedama_pool::http::MinerState {
        match self.0.first() {
            Some(m) => m.state(),
            None => otedama_pool::http::MinerState {
                running: false,
                pool: String::new(),
                algorithm: String::new(),
                threads: 0,
                uptime_seconds: 0.0,
                hashrate: Default::default(),
                accepted: 0,
                rejected: 0,
            },
        }
    }
}

/// The built-in miners `roles` asks for (not started): one on `mining.pool_url`, or one on
/// each pool that listens.
fn miners(config: &Config, roles: &Roles, started: &[Started]) -> Result<Option<Arc<MinerGroup>>> {
    if roles.miner_threads == 0 {
        return Ok(None);
    }
    {
        let args = |url: String, user: String, algo| MineArgs {
            urls: vec![url],
            user,
            password: "x".into(),
            algo,
            threads: roles.miner_threads,
            backend: None,
            max_shares: None,
            seconds: None,
            stats_interval: config.monitoring.stats_interval.0.as_secs_f64(),
            randomx_mode: roles.randomx_mode,
            no_huge_pages: false,
            tls_fingerprint: None,
            api_address: None,
            gauges: Arc::default(),
            priority: config.mining.cpu.priority.clone(),
        };
        // One miner on `mining.pool_url`, or one on each pool this process runs.
        let miners: Vec<MineArgs> = match &config.mining.pool_url {
            Some(url) => {
                let user = config
                    .mining
                    .user
                    .clone()
                    .or_else(|| started.first().map(|s| format!("{}.builtin", s.payout)))
                    .context("mining.user: the worker name to log in with on mining.pool_url")?;
                let algo = config.mining.algorithm.parse().map_err(|e| {
                    anyhow::anyhow!("mining.algorithm {}: {e}", config.mining.algorithm)
                })?;
                vec![args(url.clone(), user, algo)]
            }
            None if started.is_empty() => {
                bail!("the built-in miner has no pool: enable pool.enable or set mining.pool_url")
            }
            None => started
                .iter()
                .map(|s| {
                    let user = config
                        .mining
                        .user
                        .clone()
                        .unwrap_or_else(|| format!("{}.builtin", s.payout));
                    args(format!("stratum+tcp://{}", loopback(s.addr)), user, s.algo)
                })
                .collect(),
        };
        let group = Arc::new(MinerGroup(
            miners
                .into_iter()
                .map(|a| Arc::new(LocalMiner::new(a)))
                .collect(),
        ));
        Ok(Some(group))
    }
}

/// Waits for every pool task; the first error among them, if any.
async fn join_all(pools: &mut tokio::task::JoinSet<Result<()>>) -> Option<anyhow::Error> {
    let mut first = None;
    while let Some(done) = pools.join_next().await {
        let error = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("a pool task failed: {e}"),
        };
        first.get_or_insert(error);
    }
    first
}

/// Where a local miner reaches a pool that listens on every address.
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Binds the API, metrics and health where the configuration puts them (several on one
/// address share its listener) and serves them until `stop` flips.
async fn start_http(
    config: &Config,
    started: &[Started],
    miner: Option<Arc<MinerGroup>>,
    reload: Option<Arc<crate::reload::Reloader>>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let views: Vec<_> = started.iter().map(|s| s.view.clone()).collect();
    let mut routes: BTreeMap<SocketAddr, (axum::Router, Vec<&str>)> = BTreeMap::new();
    let mut add = |address: SocketAddr, router: axum::Router, what: &'static str| {
        let entry = routes
            .entry(address)
            .or_insert_with(|| (axum::Router::new(), Vec::new()));
        entry.0 = std::mem::take(&mut entry.0).merge(router);
        entry.1.push(what);
    };
    let api = &config.api;
    let control = miner.map(|m| m as Arc<dyn MinerControl>);
    if api.enabled {
        let auth = if api.auth.enabled {
            Some(crate::token::auth(config)?)
        } else {
            None
        };
        if started.is_empty() {
            let Some(control) = control.clone() else {
                bail!("api.enable: neither a pool nor a miner runs to serve");
            };
            add(api.listen, http::miner(control, auth), "miner api");
        } else {
            let served = started
                .iter()
                .map(|s| Served {
                    view: s.view.clone(),
                    node: s.node.clone(),
                })
                .collect();
            let options = ApiOptions {
                auth,
                protect_reads: api.auth.protect_reads,
                miner: control,
                dashboard: api.dashboard,
                sharechain: started
                    .first()
                    .and_then(|s| s.sharechain.clone())
                    .map(|s| Arc::new(s) as Arc<dyn otedama_pool::http::SharechainStatus>),
                reload: reload.map(|r| r as Arc<dyn otedama_pool::http::ConfigReload>),
            };
            add(api.listen, http::api(served, options), "api");
        }
    }
    let monitoring = &config.monitoring;
    if !views.is_empty() {
        // Without an address of their own they ride on the API's listener, when it runs.
        for (endpoint, router, what) in [
            (&monitoring.metrics, http::metrics(views.clone()), "metrics"),
            (&monitoring.health, http::health(views.clone()), "health"),
        ] {
            match (endpoint.enabled, endpoint.address) {
                (true, Some(address)) => add(address, router, what),
                (true, None) if api.enabled => add(api.listen, router, what),
                _ => {}
            }
        }
    }
    let mut servers = Vec::new();
    for (address, (router, what)) in routes {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} ({})", what.join(", ")))?;
        let local = listener.local_addr()?;
        let label = if what.contains(&"api") || what.contains(&"miner api") {
            "otedama api"
        } else {
            "otedama http"
        };
        tracing::info!("{label}: http://{local} ({})", what.join(", "));
        let mut stop = stop.clone();
        servers.push(tokio::spawn(http::serve(listener, router, async move {
            let _ = stop.changed().await;
        })));
    }
    Ok(servers)
}
