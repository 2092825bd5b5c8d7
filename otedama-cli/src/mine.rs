//! `otedama-cli mine`: a CPU miner for Stratum v1 pools (sha256d, scrypt) and Monero-dialect
//! pools (randomx), with backup pools and failover.
//!
//! One loop for every dialect: `otedama-stratum`'s [`ProtocolClient`] holds the connection and
//! the dialect's session, a [`Dialect`] says what the miner makes of that session's events
//! and how jobs become work and solutions shares, and `otedama-devices`' [`CpuDevice`]
//! hashes. Each piece of work the device gets (a v1 job with one extranonce2, a Monero job's
//! blob) has a generation of its own, so a solution is traced back to the job it solves and
//! dropped when a newer job made it stale.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use otedama_core::{encode_hex, DifficultyConvention, Hashrate, Target};
use otedama_devices::{CpuConfig, CpuDevice, Device, DeviceEvent, DeviceJob};
use otedama_hash::{Algorithm, PowAlgorithm, RandomX, RandomXMode, ScanJob, Solution};
use otedama_stratum::client::{ClientConfig, ClientError, PoolUrl, ProtocolClient};
use otedama_stratum::{
    Extranonce2Iter, MinerConfig, MinerEvent, MinerJob, MinerProtocol, MinerSession, MinerShare,
    MoneroJob, MoneroMinerConfig, MoneroMinerEvent, MoneroMinerSession, MoneroMinerShare,
};
use tokio::sync::{mpsc, watch};

use crate::kernel::build;

/// Arguments of `otedama-cli mine`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MineArgs {
    /// Pool URL, `stratum+tcp://host:port` (or `stratum+ssl://`, or Stratum V2's
    /// `stratum2+tcp://host:port/<authority key>`); repeat for backup pools, tried in order.
    #[arg(short = 'o', long = "url", required = true)]
    pub(crate) urls: Vec<String>,
    /// Worker name: the payout address, optionally `.workername`.
    #[arg(short = 'u', long)]
    pub(crate) user: String,
    /// Password (most pools ignore it).
    #[arg(short = 'p', long, default_value = "x")]
    pub(crate) password: String,
    /// The algorithm: sha256d, scrypt or randomx (randomx speaks the Monero dialect).
    #[arg(long)]
    pub(crate) algo: Algorithm,
    /// Mining threads.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// SIMD backend (as in `bench --backend`); the fastest available when left out.
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Exit after this many accepted shares (for scripts and tests).
    #[arg(long)]
    pub(crate) max_shares: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) stats_interval: f64,
    /// RandomX only: fast (the 2 GiB dataset) or light (the 256 MiB cache, slow).
    #[arg(long, value_enum, default_value_t = RandomXModeArg::Fast)]
    pub(crate) randomx_mode: RandomXModeArg,
    /// Keep the RandomX dataset on small pages; by default it takes reserved or transparent
    /// huge pages where the host offers them (turn them off where a cgroup limits huge pages).
    #[arg(long)]
    pub(crate) no_huge_pages: bool,
    /// For stratum+ssl:// pools: the SHA-256 fingerprint (hex) of the certificate to insist
    /// on, as the pool prints it; without it any certificate is taken and its fingerprint
    /// printed.
    #[arg(long, value_parser = parse_fingerprint)]
    pub(crate) tls_fingerprint: Option<[u8; 32]>,
    /// Serve the miner's status over HTTP here (`/api/status`, `/api/stats`,
    /// `/api/mining/start|stop`, `/health/live`), e.g. 127.0.0.1:8081.
    #[arg(long)]
    pub(crate) api_address: Option<std::net::SocketAddr>,
    /// The mining threads' scheduling priority: low, normal or high (high needs the
    /// privilege to raise it).
    #[arg(long, default_value = "normal", value_parser = ["low", "normal", "high"])]
    pub(crate) priority: String,
    /// What the miner counts, for its API.
    #[arg(skip)]
    pub(crate) gauges: Arc<MinerGauges>,
}

/// What a running miner counts, read by its API while it mines.
#[derive(Debug, Default)]
pub(crate) struct MinerGauges {
    /// Hashes computed since the miner started.
    pub(crate) hashes: std::sync::atomic::AtomicU64,
    /// Shares the pool accepted.
    pub(crate) accepted: std::sync::atomic::AtomicU64,
    /// Shares the pool rejected.
    pub(crate) rejected: std::sync::atomic::AtomicU64,
}

fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let clean: String = text.chars().filter(|c| *c != ':').collect();
    otedama_core::decode_hex(&clean)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| "not 32 bytes of hex (a SHA-256 fingerprint)".to_owned())
}

/// `--randomx-mode`: how the RandomX miner holds its key's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum RandomXModeArg {
    /// The 2 GiB dataset, built first (seconds to a minute): full speed.
    #[default]
    Fast,
    /// The 256 MiB cache alone: ready in about a second, far slower (tests, small machines).
    Light,
}

impl RandomXModeArg {
    /// The kernel's mode.
    pub(crate) fn to_mode(self) -> RandomXMode {
        match self {
            RandomXModeArg::Fast => RandomXMode::Fast,
            RandomXModeArg::Light => RandomXMode::Light,
        }
    }
}

/// What a mining run ended with.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MinerTotals {
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
}

/// Checks every pool URL up front, so that a typo in a backup pool's fails the run at once
/// rather than after the first pool goes down.
/// Whether they are Stratum V2 pools: every one or none, since one loop speaks one protocol.
fn check_urls(urls: &[String]) -> Result<bool> {
    let mut v2 = Vec::new();
    for url in urls {
        let parsed = PoolUrl::parse(url).map_err(|e| {
            anyhow!(
                "{e} (expected stratum+tcp://host:port, stratum+ssl://host:port or \
                 stratum2+tcp://host:port/<authority key>)"
            )
        })?;
        v2.push(parsed.authority.is_some());
    }
    if v2.iter().any(|v| *v) && !v2.iter().all(|v| *v) {
        bail!("the pool URLs mix Stratum V2 (stratum2+tcp://) with Stratum v1: give one kind");
    }
    Ok(v2.first().copied().unwrap_or(false))
}

/// What a session reports, the same for every dialect.
enum Event<J> {
    /// Subscribed, with the id to resume the session by, when the pool gives one.
    Subscribed(Option<String>),
    /// The pool refused the worker.
    Refused(String),
    /// Work to mine.
    NewJob(J),
    /// The fate of a submitted share.
    ShareResult {
        accepted: bool,
        reason: Option<String>,
    },
    /// The pool asked the miner to reconnect.
    Reconnect,
    /// A message for the operator.
    Message(String),
    /// The session ended.
    Closed(String),
}

/// What the miner knows of a pool dialect beyond what [`ProtocolClient`] drives: its settings,
/// its events in the loop's common shape, and how its jobs become device work and solutions
/// become its shares.
trait Dialect: MinerProtocol {
    /// A job as the miner keeps it.
    type Job: Clone + Send;

    /// The session's settings for `args`.
    fn config(args: &MineArgs) -> Self::Config;
    /// `event` in the common shape; `None` for what the miner has no use for.
    fn event(event: Self::Event) -> Option<Event<Self::Job>>;
    /// The input and share target of part `part` of `job`, hashed with `algo`; `None` once
    /// the job has no more parts.
    fn work(job: &Self::Job, part: u64, algo: Algorithm) -> Result<Option<(ScanJob, Target)>>;
    /// The share a solution of part `part` of `job` is submitted as.
    fn share(job: &Self::Job, part: u64, solution: &Solution) -> Self::Share;
    /// Whether solutions of `old` are stale once `new` is announced.
    fn supersedes(new: &Self::Job, old: &Self::Job) -> bool;
    /// The job's share difficulty, for the status line.
    fn difficulty(job: &Self::Job) -> f64;
    /// The RandomX key the job is hashed with, for dialects that carry one.
    fn key(job: &Self::Job) -> Option<[u8; 32]>;
}

/// Stratum v1: one part per extranonce2 value, each a full 32-bit nonce range.
impl Dialect for MinerSession {
    type Job = Arc<MinerJob>;

    fn config(args: &MineArgs) -> MinerConfig {
        MinerConfig {
            user: args.user.clone(),
            password: args.password.clone(),
            ..MinerConfig::default()
        }
    }

    fn event(event: MinerEvent) -> Option<Event<Self::Job>> {
        Some(match event {
            MinerEvent::Subscribed { session_id, .. } => Event::Subscribed(session_id),
            MinerEvent::Authorized(false, reason) => Event::Refused(reason.unwrap_or_default()),
            MinerEvent::NewJob(job) => Event::NewJob(Arc::new(job)),
            MinerEvent::ShareResult {
                accepted, error, ..
            } => Event::ShareResult {
                accepted,
                reason: error.map(|e| e.to_string()),
            },
            MinerEvent::Reconnect(_) => Event::Reconnect,
            MinerEvent::ShowMessage(m) => Event::Message(format!("pool says: {m}")),
            MinerEvent::Error(e) => Event::Message(format!("pool sent something unusable: {e}")),
            MinerEvent::Closed(reason) => Event::Closed(format!("{reason:?}")),
            _ => return None,
        })
    }

    fn work(job: &Self::Job, part: u64, algo: Algorithm) -> Result<Option<(ScanJob, Target)>> {
        let convention = match algo {
            Algorithm::Sha256d => DifficultyConvention::Bitcoin,
            Algorithm::Scrypt => DifficultyConvention::Scrypt,
            other => bail!("the Stratum v1 miner mines sha256d and scrypt, not {other}"),
        };
        let size = job.extranonce2_size;
        if size < 8 && part >> (8 * size) != 0 {
            return Ok(None);
        }
        let en2 = Extranonce2Iter::encode(size, part);
        let header = job.header(&en2, job.notify.ntime, 0, None)?;
        Ok(Some((
            ScanJob::header80(header),
            job.share_target(convention),
        )))
    }

    fn share(job: &Self::Job, part: u64, solution: &Solution) -> MinerShare {
        let en2 = Extranonce2Iter::encode(job.extranonce2_size, part);
        let nonce = u32::try_from(solution.nonce).unwrap_or(u32::MAX);
        job.share(&en2, job.notify.ntime, nonce, None)
    }

    fn supersedes(new: &Self::Job, old: &Self::Job) -> bool {
        new.clean && new.notify.job_id != old.notify.job_id
    }

    fn difficulty(job: &Self::Job) -> f64 {
        job.difficulty
    }

    fn key(_: &Self::Job) -> Option<[u8; 32]> {
        None
    }
}

/// Stratum V2 on one extended channel: its jobs and shares are v1's.
impl Dialect for otedama_stratum::sv2::miner::Sv2MinerSession {
    type Job = Arc<MinerJob>;

    fn config(args: &MineArgs) -> otedama_stratum::sv2::miner::Sv2MinerConfig {
        otedama_stratum::sv2::miner::Sv2MinerConfig {
            miner: MinerSession::config(args),
            convention: match args.algo {
                Algorithm::Scrypt => DifficultyConvention::Scrypt,
                _ => DifficultyConvention::Bitcoin,
            },
            ..Default::default()
        }
    }

    fn event(event: MinerEvent) -> Option<Event<Self::Job>> {
        MinerSession::event(event)
    }

    fn work(job: &Self::Job, part: u64, algo: Algorithm) -> Result<Option<(ScanJob, Target)>> {
        MinerSession::work(job, part, algo)
    }

    fn share(job: &Self::Job, part: u64, solution: &Solution) -> MinerShare {
        MinerSession::share(job, part, solution)
    }

    fn supersedes(new: &Self::Job, old: &Self::Job) -> bool {
        MinerSession::supersedes(new, old)
    }

    fn difficulty(job: &Self::Job) -> f64 {
        job.difficulty
    }

    fn key(_: &Self::Job) -> Option<[u8; 32]> {
        None
    }
}

/// The Monero dialect: one part per job, the blob's 32-bit nonce.
impl Dialect for MoneroMinerSession {
    type Job = Arc<(MoneroJob, u64)>;

    fn config(args: &MineArgs) -> MoneroMinerConfig {
        MoneroMinerConfig {
            login: args.user.clone(),
            pass: args.password.clone(),
            keepalive: Some(Duration::from_secs(60)),
            ..MoneroMinerConfig::default()
        }
    }

    fn event(event: MoneroMinerEvent) -> Option<Event<Self::Job>> {
        Some(match event {
            MoneroMinerEvent::LoginFailed(e) => Event::Refused(e.message),
            MoneroMinerEvent::NewJob { job, difficulty } => {
                if job.seed_hash.is_none() {
                    tracing::warn!(
                        "job {} has no seed_hash: a RandomX job needs one",
                        job.job_id
                    );
                    return None;
                }
                Event::NewJob(Arc::new((job, difficulty)))
            }
            MoneroMinerEvent::ShareResult {
                accepted, error, ..
            } => Event::ShareResult {
                accepted,
                reason: error.map(|e| e.message),
            },
            MoneroMinerEvent::Error(e) => {
                Event::Message(format!("pool sent something unusable: {e}"))
            }
            MoneroMinerEvent::Closed(reason) => Event::Closed(format!("{reason:?}")),
            _ => return None,
        })
    }

    fn work(job: &Self::Job, part: u64, _algo: Algorithm) -> Result<Option<(ScanJob, Target)>> {
        if part > 0 {
            return Ok(None);
        }
        let scan = ScanJob::monero_blob(job.0.blob.clone())?;
        Ok(Some((scan, job.0.target.to_target())))
    }

    fn share(job: &Self::Job, _part: u64, solution: &Solution) -> MoneroMinerShare {
        MoneroMinerShare {
            job_id: job.0.job_id.clone(),
            nonce: u32::try_from(solution.nonce).unwrap_or(u32::MAX),
            result: solution.output.hash,
            algo: job.0.algo.clone(),
        }
    }

    fn supersedes(new: &Self::Job, old: &Self::Job) -> bool {
        new.0.height != old.0.height
    }

    fn difficulty(job: &Self::Job) -> f64 {
        job.1 as f64
    }

    fn key(job: &Self::Job) -> Option<[u8; 32]> {
        job.0.seed_hash
    }
}

/// Generations the miner remembers, to trace solutions of recent work back to their job.
const RECENT: usize = 64;

/// The hashing side: the CPU device, the kernel behind it, and which generation is which job.
struct Miner<J> {
    args: MineArgs,
    device: Option<CpuDevice>,
    randomx: Option<Arc<RandomX>>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    generation: u64,
    /// The generation being mined, its job and part.
    current: Option<(u64, J, u64)>,
    recent: VecDeque<(u64, J, u64)>,
    accepted: u64,
    rejected: u64,
}

impl<J: Clone> Miner<J> {
    fn config(&self) -> CpuConfig {
        CpuConfig {
            name: format!("cpu {}", self.args.algo),
            threads: self.args.threads,
            priority: otedama_devices::ThreadPriority::parse(&self.args.priority)
                .unwrap_or_default(),
            ..CpuConfig::default()
        }
    }

    fn start<K: PowAlgorithm + ?Sized + 'static>(&mut self, kernel: Arc<K>) -> Result<()> {
        let events = self.events.clone();
        let device = CpuDevice::start_with_kernel(self.config(), kernel, move |event| {
            events.send(event).is_ok()
        })
        .context("cannot start the mining threads")?;
        self.device = Some(device);
        Ok(())
    }

    /// Makes the RandomX kernel hash with `seed`: built (and the device started) on the first
    /// job, re-keyed on a new seed.
    async fn ensure_key(&mut self, seed: [u8; 32]) -> Result<()> {
        let current = self.randomx.clone();
        if current.as_ref().is_some_and(|k| k.key() == seed) {
            return Ok(());
        }
        self.idle();
        let mode = self.args.randomx_mode.to_mode();
        let init_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let huge_pages = !self.args.no_huge_pages;
        let progress = move |done: u64, total: u64| {
            if done == total || done % (1 << 20) < (1 << 16) {
                eprint!(
                    "\rbuilding RandomX dataset: {:5.1}%",
                    100.0 * done as f64 / total.max(1) as f64
                );
            }
        };
        let kernel = tokio::task::spawn_blocking(move || -> Result<Arc<RandomX>> {
            let kernel = match current {
                Some(kernel) => {
                    kernel
                        .set_key_with_progress(&seed, &progress)
                        .context("could not re-key RandomX")?;
                    kernel
                }
                None => Arc::new(
                    RandomX::with_pages(&seed, mode, init_threads, &progress, huge_pages)
                        .context("could not set up RandomX")?,
                ),
            };
            if mode == RandomXMode::Fast {
                eprintln!();
                tracing::info!(
                    "[mine randomx] dataset on {}",
                    kernel.dataset_pages().describe()
                );
            }
            Ok(kernel)
        })
        .await
        .context("the RandomX set-up thread failed")??;
        tracing::info!("[mine randomx] key {}", encode_hex(&seed));
        if self.device.is_none() {
            self.start(Arc::clone(&kernel))?;
        }
        self.randomx = Some(kernel);
        Ok(())
    }

    fn idle(&mut self) {
        self.current = None;
        if let Some(device) = &self.device {
            device.set_job(None);
        }
    }

    /// Hands part `part` of `job` to the device under a new generation.
    fn assign<D: Dialect<Job = J>>(&mut self, job: J, part: u64) -> Result<()> {
        let Some((scan, target)) = D::work(&job, part, self.args.algo)? else {
            // Every part is mined: wait for the pool's next job.
            self.idle();
            return Ok(());
        };
        self.generation += 1;
        let generation = self.generation;
        self.current = Some((generation, job.clone(), part));
        self.recent.push_back((generation, job, part));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        if let Some(device) = &self.device {
            device.set_job(Some(DeviceJob::full_range(generation, scan, target)));
        }
        Ok(())
    }

    async fn new_job<D: Dialect<Job = J>>(&mut self, job: J) -> Result<()> {
        if let Some(seed) = D::key(&job) {
            self.ensure_key(seed).await?;
        }
        self.assign::<D>(job, 0)
    }

    /// What the device found or finished; solutions go to the pool through `client`.
    fn device_event<D: Dialect<Job = J>>(
        &mut self,
        client: &mut ProtocolClient<D>,
        event: DeviceEvent,
    ) -> Result<()> {
        match event {
            DeviceEvent::Found(found) => {
                let Some((_, job, part)) = self
                    .recent
                    .iter()
                    .find(|(g, _, _)| *g == found.generation)
                    .cloned()
                else {
                    return Ok(());
                };
                // Solutions for a job a newer one made stale are not worth sending.
                let stale = match &self.current {
                    Some((generation, current, _)) => {
                        *generation != found.generation && D::supersedes(current, &job)
                    }
                    None => true,
                };
                if !stale {
                    client.submit(D::share(&job, part, &found.solution));
                }
            }
            DeviceEvent::Exhausted { generation } => {
                if let Some((current, job, part)) = self.current.clone() {
                    if current == generation {
                        self.assign::<D>(job, part + 1)?;
                    }
                }
            }
            DeviceEvent::Failed(e) => bail!("mining stopped: {e}"),
            _ => {}
        }
        Ok(())
    }

    fn hashes(&self) -> u64 {
        self.device.as_ref().map_or(0, |d| d.hashrate().hashes)
    }

    fn hashrate(&self) -> Hashrate {
        self.device
            .as_ref()
            .map_or(Hashrate::ZERO, |d| d.hashrate().current)
    }
}

/// How often the hash count the miner's API reads is brought up to date.
const GAUGE_EVERY: Duration = Duration::from_secs(2);

/// How one connection ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

/// How long a finished connection may take to write what it still has queued (shares found
/// just before the end) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One connection to `url`: events from the pool's session, jobs to the device and solutions
/// back, until the connection ends. The client moves the bytes and keeps the session's time;
/// its `next_event` is cancel-safe, so it races the device, the status tick and the stop
/// signal without losing anything.
async fn run_session<D: Dialect>(
    url: &str,
    miner: &mut Miner<D::Job>,
    device_events: &mut mpsc::UnboundedReceiver<DeviceEvent>,
    stop: &mut watch::Receiver<bool>,
    resume: &mut Option<String>,
) -> Result<SessionEnd> {
    let mut config = ClientConfig::new(D::config(&miner.args));
    config.resume = resume.clone();
    config.tls_fingerprint = miner.args.tls_fingerprint;
    let mut client = ProtocolClient::<D>::connect(url, config).await?;
    let mut shown = false;
    let mut stats =
        tokio::time::interval(Duration::from_secs_f64(miner.args.stats_interval.max(0.5)));
    stats.tick().await;
    let mut gauge = tokio::time::interval(GAUGE_EVERY);
    let mut difficulty = 0.0;
    let end = loop {
        tokio::select! {
            event = client.next_event() => {
                let event = match event {
                    Ok(event) => event,
                    Err(ClientError::Disconnected) => {
                        break SessionEnd::Lost("the pool closed the connection".into())
                    }
                    Err(ClientError::Closed) => break SessionEnd::Lost("session closed".into()),
                    Err(e) => return Err(e.into()),
                };
                if !shown {
                    if let Some(fingerprint) = client.peer_fingerprint() {
                        shown = true;
                        tracing::info!(
                            "[mine] {url}: TLS, certificate sha256 fingerprint {}",
                            otedama_core::encode_hex(&fingerprint)
                        );
                    }
                }
                match D::event(event) {
                    None => {}
                    Some(Event::Subscribed(id)) => *resume = id,
                    Some(Event::Refused(reason)) => {
                        bail!("the pool refused worker {}: {reason}", miner.args.user)
                    }
                    Some(Event::NewJob(job)) => {
                        difficulty = D::difficulty(&job);
                        miner.new_job::<D>(job).await?;
                    }
                    Some(Event::ShareResult { accepted, reason }) => {
                        let counter = if accepted {
                            &miner.args.gauges.accepted
                        } else {
                            &miner.args.gauges.rejected
                        };
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if accepted {
                            miner.accepted += 1;
                        } else {
                            miner.rejected += 1;
                            tracing::warn!(
                                "share rejected: {}",
                                reason.unwrap_or_else(|| "no reason given".to_owned())
                            );
                        }
                        if miner.args.max_shares.is_some_and(|m| miner.accepted >= m) {
                            break SessionEnd::Stopped;
                        }
                    }
                    Some(Event::Reconnect) => {
                        break SessionEnd::Lost("the pool asked to reconnect".into())
                    }
                    Some(Event::Message(m)) => tracing::info!("message from the pool: {m}"),
                    Some(Event::Closed(reason)) => {
                        break SessionEnd::Lost(format!("session closed: {reason}"))
                    }
                }
            }
            Some(event) = device_events.recv() => miner.device_event(&mut client, event)?,
            _ = gauge.tick() => {
                miner.args.gauges.hashes.store(miner.hashes(), std::sync::atomic::Ordering::Relaxed);
            }
            _ = stats.tick() => {
                let rate = miner.hashrate();
                tracing::info!(
                    "[mine {}] {rate:.2}  accepted {} rejected {}  difficulty {difficulty}",
                    miner.args.algo, miner.accepted, miner.rejected,
                );
            }
            _ = stop.changed() => break SessionEnd::Stopped,
        }
    };
    // Bounded: a pool that stopped reading must not hold up failover or the exit.
    tokio::time::timeout(CLOSE_GRACE, client.close()).await.ok();
    Ok(end)
}

/// Mines until stopped (Ctrl-C, `stop`, `--max-shares`, `--seconds`), failing over between the
/// pool URLs; returns the totals.
pub(crate) async fn mine(args: MineArgs, mut stop: watch::Receiver<bool>) -> Result<MinerTotals> {
    if args.threads == 0 || args.threads > otedama_devices::MAX_CPU_THREADS {
        bail!(
            "--threads must be between 1 and {}, got {}",
            otedama_devices::MAX_CPU_THREADS,
            args.threads
        );
    }
    let v2 = check_urls(&args.urls)?;
    if v2 && args.algo == Algorithm::RandomX {
        bail!("Stratum V2 (stratum2+tcp://) carries sha256d and scrypt work, not randomx");
    }
    match args.algo {
        Algorithm::RandomX => {
            let (miner, events) = Miner::new(args);
            // The kernel needs the first job's key: the device starts with it.
            failover::<MoneroMinerSession>(miner, events, &mut stop).await
        }
        Algorithm::Sha256d | Algorithm::Scrypt => {
            let (mut miner, events) = Miner::new(args);
            let kernel: Arc<dyn PowAlgorithm> = Arc::from(build(
                miner.args.algo,
                miner.args.backend.as_deref(),
                None,
                RandomXMode::Light,
                1,
                true,
            )?);
            miner.start(kernel)?;
            if v2 {
                failover::<otedama_stratum::sv2::miner::Sv2MinerSession>(miner, events, &mut stop)
                    .await
            } else {
                failover::<MinerSession>(miner, events, &mut stop).await
            }
        }
        other => bail!("mine speaks Stratum v1 (sha256d, scrypt) and the Monero dialect (randomx), not {other}"),
    }
}

impl<J: Clone> Miner<J> {
    fn new(args: MineArgs) -> (Miner<J>, mpsc::UnboundedReceiver<DeviceEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        (
            Miner {
                args,
                device: None,
                randomx: None,
                events,
                generation: 0,
                current: None,
                recent: VecDeque::new(),
                accepted: 0,
                rejected: 0,
            },
            rx,
        )
    }
}

/// Tries the pool URLs in order, again and again with a growing pause, until stopped.
async fn failover<D: Dialect>(
    mut miner: Miner<D::Job>,
    mut device_events: mpsc::UnboundedReceiver<DeviceEvent>,
    stop: &mut watch::Receiver<bool>,
) -> Result<MinerTotals> {
    let started = Instant::now();
    let deadline = miner
        .args
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut resume = None;
    let mut failures = 0u32;
    let urls = miner.args.urls.clone();
    let result = 'outer: loop {
        for url in &urls {
            let session = run_session::<D>(url, &mut miner, &mut device_events, stop, &mut resume);
            let outcome = match deadline {
                Some(d) => match tokio::time::timeout_at(d, session).await {
                    Ok(r) => r,
                    Err(_) => break 'outer Ok(()),
                },
                None => session.await,
            };
            match outcome {
                Ok(SessionEnd::Stopped) => break 'outer Ok(()),
                Ok(SessionEnd::Lost(why)) => tracing::warn!("lost {url}: {why}"),
                Err(e) if failures > 1000 => break 'outer Err(e),
                Err(e) => tracing::warn!("{url}: {e:#}"),
            }
            // Nothing to mine while disconnected: stale work only wastes power.
            miner.idle();
            failures += 1;
            if *stop.borrow() {
                break 'outer Ok(());
            }
        }
        let backoff = Duration::from_millis((250 * u64::from(failures.min(20))).min(5000));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break 'outer Ok(()),
        }
    };
    let hashes = miner.hashes();
    if let Some(mut device) = miner.device.take() {
        if let Err(e) = device.stop() {
            tracing::warn!("mining thread stopped: {e}");
        }
    }
    let totals = MinerTotals {
        accepted: miner.accepted,
        rejected: miner.rejected,
    };
    let rate = Hashrate::from_hashes_and_secs(hashes as f64, started.elapsed().as_secs_f64())
        .unwrap_or(Hashrate::ZERO);
    tracing::info!(
        "[mine {}] done: {} accepted, {} rejected, {rate:.2} average",
        miner.args.algo,
        totals.accepted,
        totals.rejected
    );
    result.map(|()| totals)
}

/// Runs `otedama-cli mine` until Ctrl-C.
pub(crate) fn run(args: MineArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let api = match args.api_address {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (--api-address)"))?;
                let local = listener.local_addr()?;
                let view: Arc<dyn otedama_pool::http::MinerControl> =
                    Arc::new(crate::local_miner::MinerView::new(&args));
                tracing::info!(
                    "otedama miner api: http://{local} (/api/status, /api/stats, /health/live)"
                );
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(otedama_pool::http::serve(
                    listener,
                    otedama_pool::http::miner(view, None),
                    async move {
                        let _ = stop.changed().await;
                    },
                )))
            }
            None => None,
        };
        let signal = stop_tx.clone();
        tokio::spawn(async move {
            crate::signals::wait_for_shutdown().await;
            let _ = signal.send(true);
        });
        let mined = mine(args, stop_rx).await.map(|_| ());
        let _ = stop_tx.send(true);
        if let Some(api) = api {
            let _ = tokio::time::timeout(Duration::from_secs(5), api).await;
        }
        mined
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_urls_are_checked_up_front() {
        let urls = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        check_urls(&urls(&[
            "stratum+tcp://127.0.0.1:3333",
            "pool.example:4444/",
            "stratum+tcp://[::1]:3333",
            "stratum+ssl://pool.example:3443",
        ]))
        .expect("good urls");
        for bad in [
            "stratum+tcp://host",
            "stratum+tcp://host:99999",
            "stratum+tcp://:3333",
            "stratum2+tcp://pool.example:3333",
        ] {
            // A bad backup pool fails the run, and the error names it.
            let err = check_urls(&urls(&["stratum+tcp://127.0.0.1:3333", bad]))
                .expect_err(bad)
                .to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn v1_parts_walk_the_extranonce2_space_and_end() {
        let job = Arc::new(MinerJob {
            notify: otedama_stratum::Notify {
                job_id: "1".into(),
                prevhash: [0; 32],
                coinb1: vec![1, 0, 0, 0],
                coinb2: vec![0xff; 4],
                merkle_branch: Vec::new(),
                version: 0x2000_0000,
                nbits: 0x207f_ffff,
                ntime: 1_700_000_000,
                clean_jobs: true,
            },
            difficulty: 1.0,
            extranonce1: vec![0; 4],
            extranonce2_size: 1,
            version_mask: 0,
            clean: true,
        });
        let work =
            |part| <MinerSession as Dialect>::work(&job, part, Algorithm::Sha256d).expect("work");
        let first = work(0).expect("part 0");
        let second = work(1).expect("part 1");
        assert_ne!(
            first.0.input(),
            second.0.input(),
            "each part its own header"
        );
        assert!(work(255).is_some());
        assert!(work(256).is_none(), "one byte holds 256 parts");
    }
}
