//! A whole Stratum pool on tokio (feature `tokio`): the engine, `otedama-stratum`'s server, a
//! work source and a share log, wired the way `otedama-cli pool` runs them.
//!
//! [`PoolService::start`] serves the Bitcoin family to Stratum v1 miners. It binds the port
//! and starts:
//! - a long-poll thread that keeps one long-poll outstanding at all times (a node holds a
//!   long-poll until its template changes, so polls given up early would pile up in its RPC
//!   threads and starve block submissions);
//! - a template thread that turns each change into jobs (clean on a new tip), keeps the
//!   engine's clock ([`Engine::poll_timeout`]) and fetches fresh work when the engine asks
//!   ([`Action::RefreshWork`]), keeping the last job while the source is down.
//!
//! [`PoolService::start_rx`] serves Monero-layout RandomX work to xmrig-style miners on
//! [`MoneroServer`](otedama_stratum::server::MoneroServer). It starts a tip thread that follows the [`RxSource`]'s tip and hands the
//! engine the pool's work on each new one ([`Engine::handle_rx_work`]); every connection mines
//! a job of its own (its own reserved bytes in the coinbase, so no two connections hash the
//! same blob), made when the server sends it a job ([`JobTailor::tailor_for`] asking
//! [`Engine::rx_session_job_for`], which also applies the session's vardiff).
//!
//! Both then run one driver and one event loop: authorization through
//! [`Engine::authorize`], each share judged on a blocking thread (its proof of work outside
//! the engine's lock), blocks submitted first, answers sent only once the share log has
//! committed the share.
//!
//! What happens is reported through a callback, so the embedder decides what to print.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use otedama_core::{encode_hex, BlockTemplate};
use otedama_hash::PowAlgorithm;
use otedama_stratum::server::{
    Connection, DisconnectReason, EdgeHandle, JobTailor, MoneroServerConfig, ProtocolServer,
    ProtocolServerConfig, ProtocolServerEvent, ServerConfig, ServerStats,
};
use otedama_stratum::sv2::pool::Sv2PoolSession;
use otedama_stratum::{
    ExtranonceAllocator, JobAnnouncement, MoneroJob, MoneroPoolSession, PoolProtocol, PoolSession,
    ShareSubmission, ShareToken,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use crate::activity::{Activity, Hashrates, Outcome, Rejections, WorkerActivity};
use crate::engine::{
    Action, Engine, EngineStats, FoundBlock, JobError, Now, Report, ShareCheck, Submission,
};
use crate::monero::{RxKeys, RxSource, RxSubmission, RxWork};
use crate::source::{BlockSubmitter, SourceError, SubmitError, TemplateSource};
use crate::store::ShareLog;

/// How long a long-poll may wait before it is given up (and left to the node until its next
/// block).
const LONG_POLL: Duration = Duration::from_secs(3600);

/// The longest the template thread sleeps between looks at the stop flag.
const TICK: Duration = Duration::from_secs(1);

/// How long the RandomX tip thread waits for a new tip before it looks at the stop flag.
const RX_TIP_WAIT: Duration = Duration::from_millis(500);

/// What the service reports as it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceEvent {
    /// The engine's report: a new height, a found block, a job that could not be built.
    Engine(Report),
    /// The RandomX key (Monero's seed hash) changed: shares on it are checked with a verifier
    /// built for it, which now exists.
    RxKey {
        /// The new key.
        seed: [u8; 32],
    },
    /// The work source failed; the last job stays in force.
    Source {
        /// Why.
        error: SourceError,
        /// When the source is asked again.
        retry_in: Duration,
    },
    /// A main-chain block a sharechain peer relayed was handed to this pool's node.
    BlockRelayed {
        /// The block's hash, internal byte order.
        hash: [u8; 32],
        /// What the node said: a block it has already is refused as a duplicate.
        result: Result<(), SubmitError>,
    },
    /// A found block could not be written to the share log (it was submitted all the same).
    BlockNotRecorded {
        /// The block's hash.
        hash: String,
        /// Why.
        error: crate::store::StoreError,
    },
    /// A worker was refused at authorization.
    Refused {
        /// The user name it gave.
        username: String,
        /// Its address.
        peer: SocketAddr,
        /// Why.
        reason: crate::AuthorizeError,
    },
    /// The system caps the Stratum port's listen backlog below `max_connections`: a burst
    /// of that many miners connecting at once may see connections dropped or reset before
    /// the pool accepts them (raise `net.core.somaxconn`).
    BacklogCapped(otedama_stratum::server::Backlog),
    /// An address was banned (its session closed for bad shares or bad lines) until `until`;
    /// the ban is stored, so a restart keeps it.
    Banned {
        /// The banned connection's address.
        peer: SocketAddr,
        /// When the ban ends.
        until: std::time::SystemTime,
    },
    /// The bans stored before the start were put back.
    BansRestored {
        /// How many are still in force.
        count: usize,
    },
    /// A ban could not be stored or read back (it holds until the pool stops all the same).
    BanStoreFailed {
        /// Why.
        error: crate::store::StoreError,
    },
    /// A connection ended for a reason other than the peer's or the pool's own closing.
    Closed {
        /// Its address.
        peer: SocketAddr,
        /// Why.
        reason: DisconnectReason,
    },
}

/// The sources a service takes work from and sends blocks to. Each is used from its own
/// thread: open one handle per role (a long-poll must never delay a block).
pub struct Sources {
    /// Held in a long-poll at all times.
    pub long_poll: Box<dyn TemplateSource>,
    /// Asked for the first template and for refreshes.
    pub templates: Box<dyn TemplateSource>,
    /// Takes found blocks.
    pub blocks: Box<dyn BlockSubmitter>,
}

/// Where reports go.
pub type Reporter = Arc<dyn Fn(ServiceEvent) + Send + Sync>;

/// What happens in the pool, as live surfaces (a WebSocket feed, a dashboard) show it:
/// [`PoolView::subscribe`]. Unlike [`ServiceEvent`], one arrives for every share.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PoolEvent {
    /// A share was answered.
    Share {
        /// The worker that sent it.
        worker: String,
        /// How it was answered.
        outcome: Outcome,
        /// Its difficulty.
        difficulty: f64,
        /// When, Unix milliseconds.
        unix_ms: i64,
    },
    /// A new job went out to the miners.
    Job {
        /// The height it mines.
        height: u64,
        /// When, Unix milliseconds.
        unix_ms: i64,
    },
    /// A block was found and submitted.
    Block {
        /// Its height.
        height: u64,
        /// Its hash, display order hex.
        hash: String,
        /// The address that found it.
        finder: String,
        /// Whether the node took it.
        accepted: bool,
        /// When, Unix milliseconds.
        unix_ms: i64,
    },
    /// A connection logged in as a worker.
    WorkerConnected {
        /// The worker.
        worker: String,
        /// The connection's address.
        peer: SocketAddr,
        /// When, Unix milliseconds.
        unix_ms: i64,
    },
    /// A worker's connection closed.
    WorkerDisconnected {
        /// The worker.
        worker: String,
        /// The connection's address.
        peer: SocketAddr,
        /// When, Unix milliseconds.
        unix_ms: i64,
    },
}

/// How many events a slow subscriber may fall behind before it is cut off.
const FEED_CAPACITY: usize = 4096;

type Reply = (Connection, ShareToken);

/// Where the driver sends jobs and blocks: the one part that differs between the families.
enum Outlet {
    Bitcoin {
        blocks: Mutex<Box<dyn BlockSubmitter>>,
        /// Where sharechain shares and found blocks go, on a sharechain pool.
        side: Option<(ShareOut, BlockOut)>,
        jobs: watch::Sender<Option<Arc<JobAnnouncement>>>,
        /// Wakes the template thread: a new template, or the engine's call for fresh work.
        wake: Mutex<std::sync::mpsc::Sender<Wake>>,
    },
    Rx {
        source: Arc<dyn RxSource>,
        /// The sharechain's shares on the source's work, and where shares go, on a
        /// sharechain pool.
        side: Option<RxSideChain>,
        jobs: watch::Sender<Option<Arc<MoneroJob>>>,
        /// Set when the engine asks for fresh work; the tip thread fetches it.
        refresh: AtomicBool,
        /// The share verifiers by RandomX key.
        keys: Arc<RxKeys>,
    },
}

/// What wakes the template thread.
enum Wake {
    /// The long-poll saw the template change.
    Template(BlockTemplate),
    /// The engine asks for fresh work.
    Refresh,
    /// A sharechain peer relayed a main-chain block: hand it to this pool's node.
    Relayed(Vec<u8>),
}

/// Carries out what the engine asks for.
struct Driver {
    engine: Mutex<Engine<Reply>>,
    kernel: Arc<dyn PowAlgorithm>,
    log: ShareLog,
    outlet: Outlet,
    report: Reporter,
    activity: Mutex<Activity>,
    feed: broadcast::Sender<PoolEvent>,
    telemetry: crate::telemetry::Telemetry,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Driver {
    fn new(
        engine: Engine<Reply>,
        kernel: Arc<dyn PowAlgorithm>,
        log: ShareLog,
        outlet: Outlet,
        report: Reporter,
    ) -> Driver {
        let activity = Activity::new(engine.hashes_per_difficulty(), Instant::now());
        Driver {
            engine: Mutex::new(engine),
            kernel,
            log,
            outlet,
            report,
            activity: Mutex::new(activity),
            feed: broadcast::channel(FEED_CAPACITY).0,
            telemetry: crate::telemetry::Telemetry::default(),
        }
    }

    fn engine(&self) -> MutexGuard<'_, Engine<Reply>> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the live surfaces; nobody listening is fine.
    fn publish(&self, event: PoolEvent) {
        let _ = self.feed.send(event);
    }

    /// A new job went out.
    fn announced(&self, height: Option<u64>) {
        if let Some(height) = height {
            self.publish(PoolEvent::Job {
                height,
                unix_ms: Now::read().unix_ms,
            });
        }
    }

    /// Judges one share on the calling (blocking) thread: `hand_over` gives it to the engine
    /// under the lock, the proof of work is checked outside it.
    fn judge(&self, hand_over: impl FnOnce(&mut Engine<Reply>) -> Option<ShareCheck>) {
        let check = hand_over(&mut self.engine());
        if let Some(check) = check {
            let keyed = match (&self.outlet, check.rx_seed()) {
                (Outlet::Rx { keys, .. }, Some(seed)) => match keys.prepare(&seed) {
                    Ok((kernel, _)) => Some(kernel),
                    // The job's key could not be built (memory): the share fails its check
                    // against the service's first key rather than being taken unchecked.
                    Err(_) => None,
                },
                _ => None,
            };
            let kernel = keyed.as_ref().unwrap_or(&self.kernel);
            let checked = check.verify(kernel.as_ref());
            self.engine().handle_checked(checked, Now::read());
        }
        self.pump();
    }

    /// Lets the engine act on its passed deadlines, and carries out what follows.
    fn tick(&self) {
        let due = {
            let mut engine = self.engine();
            let due = engine.poll_timeout().is_some_and(|at| at <= Instant::now());
            if due {
                engine.handle_timeout(Now::read());
            }
            due
        };
        if due {
            self.pump();
        }
    }

    /// Sends a found block to the source of its family.
    fn submit(&self, block: &FoundBlock) -> Result<(), SubmitError> {
        match (&self.outlet, block) {
            (Outlet::Bitcoin { blocks, .. }, FoundBlock::Bitcoin(block)) => blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .submit_block(block),
            (Outlet::Rx { source, .. }, FoundBlock::Rx { blob, coinbase }) => {
                source.submit(blob, coinbase)
            }
            _ => Err(SubmitError::WrongFamily),
        }
    }

    /// Runs every queued action; the blocking ones (a block submission, a durable commit) on
    /// the calling thread, which is never the event loop's.
    fn pump(&self) {
        loop {
            let action = {
                let mut engine = self.engine();
                match engine.poll_action() {
                    None => return,
                    // Announcements go out while the engine is held, so two threads pumping
                    // at once cannot announce an older job after a newer one.
                    Some(Action::Announce { job }) => {
                        if let Outlet::Bitcoin { jobs, .. } = &self.outlet {
                            jobs.send_replace(Some(Arc::new(job.announcement.clone())));
                        }
                        self.announced(engine.tip().map(|t| t.height));
                        continue;
                    }
                    Some(Action::AnnounceRx { job }) => {
                        if let Outlet::Rx { jobs, .. } = &self.outlet {
                            jobs.send_replace(Some(Arc::new(job.announcement.clone())));
                        }
                        self.announced(engine.tip().map(|t| t.height));
                        continue;
                    }
                    Some(action) => action,
                }
            };
            match action {
                Action::Announce { .. } | Action::AnnounceRx { .. } => {}
                Action::SideShare { share } => match &self.outlet {
                    Outlet::Bitcoin {
                        side: Some((out, _)),
                        ..
                    } => out(*share),
                    Outlet::Rx {
                        side: Some(side), ..
                    } => (side.shares)(*share),
                    _ => {}
                },
                Action::SubmitBlock { share, block } => {
                    // The sharechain's peers get the block first: each hands it to its own
                    // node while this one submits, so it spreads from many places at once.
                    if let (
                        Outlet::Bitcoin {
                            side: Some((_, relay)),
                            ..
                        },
                        FoundBlock::Bitcoin(raw),
                    ) = (&self.outlet, &block)
                    {
                        relay(raw.clone());
                    }
                    let result = self.telemetry.node_submit.time(|| self.submit(&block));
                    if matches!(
                        result,
                        Err(SubmitError::Unanswered(_) | SubmitError::TimedOut)
                    ) {
                        self.telemetry.node_failed();
                    }
                    self.engine()
                        .handle_block_result(share, result, Now::read());
                }
                Action::Persist {
                    share,
                    record,
                    block,
                } => {
                    if let Some(block) = block {
                        let hash = block.hash.clone();
                        if let Err(error) = self.log.record_block(block) {
                            (self.report)(ServiceEvent::BlockNotRecorded { hash, error });
                        }
                    }
                    let durable = self.telemetry.commit.time(|| self.log.record_share(record));
                    self.engine().handle_persisted(share, durable);
                }
                Action::Answer {
                    reply: (conn, token),
                    verdict,
                    difficulty,
                    worker,
                } => {
                    let outcome = Outcome::of(&verdict);
                    conn.share_result(token, verdict);
                    let now = Now::read();
                    self.activity()
                        .share(&worker, outcome, difficulty, now.instant, now.unix_ms);
                    self.publish(PoolEvent::Share {
                        worker,
                        outcome,
                        difficulty,
                        unix_ms: now.unix_ms,
                    });
                }
                Action::RefreshWork => match &self.outlet {
                    Outlet::Bitcoin { wake, .. } => {
                        let _ = wake
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .send(Wake::Refresh);
                    }
                    Outlet::Rx { refresh, .. } => refresh.store(true, Ordering::Relaxed),
                },
                Action::Report(report) => {
                    if let Report::BlockSubmitted {
                        height,
                        hash,
                        finder,
                        result,
                    } = &report
                    {
                        self.activity().block_found();
                        self.publish(PoolEvent::Block {
                            height: *height,
                            hash: hash.clone(),
                            finder: finder.clone(),
                            accepted: result.is_ok(),
                            unix_ms: Now::read().unix_ms,
                        });
                    }
                    (self.report)(ServiceEvent::Engine(report))
                }
            }
        }
    }
}

/// How a dialect's shares enter the engine.
trait Dialect: PoolProtocol {
    /// Hands `share`, from `conn`, to the engine.
    fn hand_over(
        engine: &mut Engine<Reply>,
        conn: Connection,
        share: Self::Share,
    ) -> Option<ShareCheck>;
}

/// Hands a Stratum v1 share (from a v1 or an SV2 session) to the engine.
fn hand_over_v1(
    engine: &mut Engine<Reply>,
    conn: Connection,
    share: ShareSubmission,
) -> Option<ShareCheck> {
    let token = share.token;
    engine.handle_share(Submission::from(&share), (conn, token), Now::read())
}

impl Dialect for PoolSession {
    fn hand_over(
        engine: &mut Engine<Reply>,
        conn: Connection,
        share: Self::Share,
    ) -> Option<ShareCheck> {
        hand_over_v1(engine, conn, share)
    }
}

impl Dialect for Sv2PoolSession {
    fn hand_over(
        engine: &mut Engine<Reply>,
        conn: Connection,
        share: Self::Share,
    ) -> Option<ShareCheck> {
        hand_over_v1(engine, conn, share)
    }
}

impl Dialect for MoneroPoolSession {
    fn hand_over(
        engine: &mut Engine<Reply>,
        conn: Connection,
        share: Self::Share,
    ) -> Option<ShareCheck> {
        let token = share.token;
        engine.handle_rx_share(RxSubmission::from(&share), (conn, token), Now::read())
    }
}

/// SOLO and sharechain pools: each connection mines a job that pays its own address (the
/// coinbase under SOLO, the share on a sharechain).
#[derive(Debug)]
struct OwnJobTailor {
    driver: Arc<Driver>,
}

impl JobTailor for OwnJobTailor {
    fn tailor(&self, job: &Arc<JobAnnouncement>, worker: &str) -> Option<Arc<JobAnnouncement>> {
        // The server asks from a connection's task: no pump here, which could run a block
        // submission or a commit on the runtime's thread. A report this queues goes out with
        // the next share or template.
        // A miner's own sharechain job needs its hashrate: a small miner mines through the
        // pool's ledger until its hashrate earns an output of its own.
        let hashrate = self
            .driver
            .activity()
            .worker_hashrate(worker, Instant::now())
            .map_or(0.0, |h| h.five_minutes.max(h.one_minute));
        let own = self.driver.engine().own_job(job, worker, hashrate);
        Some(Arc::new(own?.announcement.clone()))
    }
}

/// RandomX: each connection mines a job of its own, the connection's id in the coinbase's
/// reserved bytes (the pool's common job has zeros there, and connection ids start at 1).
///
/// The server asks from the connection's task, so the source's `work` should answer at once:
/// the devnet does, and monerod's source writes the reserved bytes into the template it holds
/// (only when it holds none does the connection wait for the node).
#[derive(Debug)]
struct RxTailor {
    driver: Arc<Driver>,
    payout: String,
}

impl JobTailor<MoneroJob> for RxTailor {
    fn tailor(&self, _job: &Arc<MoneroJob>, _worker: &str) -> Option<Arc<MoneroJob>> {
        None
    }

    fn tailor_for(
        &self,
        job: &Arc<MoneroJob>,
        worker: &str,
        conn: &Connection,
    ) -> Option<Arc<MoneroJob>> {
        let Outlet::Rx { source, side, .. } = &self.driver.outlet else {
            return None;
        };
        // Without a job of its own the connection mines the common one.
        let failed = |error: JobError| {
            (self.driver.report)(ServiceEvent::Engine(Report::JobFailed {
                height: job.height.unwrap_or_default(),
                worker: Some(worker.to_owned()),
                error,
            }));
            None
        };
        let reserved = conn.id().to_le_bytes();
        let own = match side {
            None => {
                let work = match source.work(&self.payout, reserved) {
                    Ok(work) => work,
                    Err(e) => return failed(e.into()),
                };
                self.driver
                    .engine()
                    .rx_session_job_for(work, worker, conn.id(), Now::read())
            }
            Some(side) => {
                // The session's share sits on the same block as the job being announced: the
                // sharechain's walk was made for that block, and the source may have moved
                // on since (its next job follows).
                let common = self.driver.engine().rx_job(&job.job_id)?;
                let work = common.work.clone();
                // The share pays the address the miner logged in with.
                let address = crate::identity::Identity::parse(worker)
                    .map(|identity| identity.address)
                    .unwrap_or_else(|_| self.payout.clone());
                let template = match (side.plan)(&work, address.as_bytes(), reserved) {
                    Ok(template) => template,
                    Err(e) => return failed(e.into()),
                };
                self.driver.engine().rx_share_job(work, worker, template)
            }
        };
        match own {
            Ok(own) => Some(Arc::new(own.announcement.clone())),
            Err(e) => failed(e.into()),
        }
    }
}

/// A running pool.
pub struct PoolService {
    driver: Arc<Driver>,
    locals: Vec<SocketAddr>,
    edges: Vec<EdgeHandle>,
    view: PoolView,
    stop: watch::Sender<bool>,
    events_loops: Vec<tokio::task::JoinHandle<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

/// One more port a service listens on, with settings of its own (TLS, the PROXY protocol,
/// other limits), serving the same engine.
pub struct Listener<P: PoolProtocol> {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Its server's settings (the service sets the `tailor` as on the main port).
    pub server: ProtocolServerConfig<P>,
}

impl std::fmt::Debug for PoolService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolService")
            .field("locals", &self.locals)
            .finish_non_exhaustive()
    }
}

/// Everything a Stratum v1 service needs besides its sources and share log.
pub struct ServiceConfig {
    /// Where the Stratum server listens.
    pub listen: SocketAddr,
    /// The Stratum server's settings (its `tailor` is set by the service under SOLO).
    pub server: ServerConfig,
    /// More ports (Stratum over TLS, say), all with the main port's jobs and engine.
    pub more: Vec<Listener<PoolSession>>,
    /// Stratum V2 ports, with the same jobs, engine, share log and edge as the v1 ports.
    pub sv2: Vec<Listener<Sv2PoolSession>>,
    /// Extranonce1 values for the sessions (of every port: no two sessions share one).
    pub allocator: Arc<ExtranonceAllocator>,
    /// The engine, configured.
    pub engine: Engine<(Connection, ShareToken)>,
    /// The proof-of-work kernel shares are checked with.
    pub kernel: Arc<dyn PowAlgorithm>,
}

/// Where a sharechain's shares go.
type ShareOut = Box<dyn Fn(otedama_p2p::Share) + Send + Sync>;
/// Where the main-chain blocks a sharechain pool finds go besides its own node.
type BlockOut = Box<dyn Fn(Vec<u8>) + Send + Sync>;

/// The sharechain's share for one payout and one session's reserved bytes on a RandomX
/// source's work ([`RxSideChain::plan`]).
pub type RxPlan = Box<
    dyn Fn(&RxWork, &[u8], [u8; 8]) -> Result<Arc<otedama_p2p::RxShareTemplate>, SourceError>
        + Send
        + Sync,
>;

/// What a RandomX sharechain pool ([`PoolService::start_rx_sharechain`]) adds: the
/// sharechain's share on the source's work for each session, and a taker for the shares its
/// miners find. RandomX chains do not relay blocks: the finder's pool submits its own.
pub struct RxSideChain {
    /// The share for a payout and a session's reserved bytes on the source's work. Called
    /// on a connection's task and on the tip thread, so it must answer quickly;
    /// [`SourceError::NotReady`] while the sharechain syncs holds the jobs back.
    pub plan: RxPlan,
    /// Takes each share that met the sharechain's target (called on a share's thread).
    pub shares: ShareOut,
}

impl std::fmt::Debug for RxSideChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RxSideChain")
    }
}

/// What a sharechain pool ([`PoolService::start_sharechain`]) adds: the sharechain's work on
/// each main-chain template, and a taker for the shares its miners find.
pub struct SideChain {
    /// The sharechain's next share on a main-chain template. Called on the template thread,
    /// so it may block on the sharechain's service; [`SourceError::NotReady`] while the
    /// sharechain syncs holds every job back.
    pub plan: Plan,
    /// Takes each share that met the sharechain's target (called on a share's thread).
    pub shares: ShareOut,
    /// Takes each main-chain block the pool finds, whole, before its own node does: the
    /// sharechain relays it to its peers.
    pub blocks: BlockOut,
}

impl std::fmt::Debug for SideChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SideChain")
    }
}

/// Asks a running service for fresh work now (a sharechain's tip moved): the template
/// thread fetches a template (the tip thread, RandomX work) and rebuilds the jobs. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct WorkTrigger {
    to: TriggerTo,
}

#[derive(Debug, Clone)]
enum TriggerTo {
    Templates(std::sync::mpsc::Sender<Wake>),
    /// The tip thread looks at the driver's refresh flag on every turn; held weakly so a
    /// trigger does not keep a stopped service alive.
    Rx(std::sync::Weak<Driver>),
}

impl WorkTrigger {
    /// Wakes the template thread; `false` once the service has stopped.
    pub fn refresh(&self) -> bool {
        match &self.to {
            TriggerTo::Templates(wake) => wake.send(Wake::Refresh).is_ok(),
            TriggerTo::Rx(driver) => match driver.upgrade() {
                Some(driver) => {
                    if let Outlet::Rx { refresh, .. } = &driver.outlet {
                        refresh.store(true, Ordering::Relaxed);
                    }
                    true
                }
                None => false,
            },
        }
    }

    /// Hands a main-chain block a sharechain peer relayed to this pool's node (on the
    /// template thread, which then fetches fresh work); the outcome is reported as
    /// [`ServiceEvent::BlockRelayed`]. `false` once the service has stopped. A RandomX
    /// service takes no relayed blocks.
    pub fn relay_block(&self, raw: Vec<u8>) -> bool {
        match &self.to {
            TriggerTo::Templates(wake) => wake.send(Wake::Relayed(raw)).is_ok(),
            TriggerTo::Rx(driver) => driver.strong_count() > 0,
        }
    }
}

/// Everything a RandomX service needs besides its work source and share log.
pub struct RxServiceConfig {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// The Monero-dialect server's settings (its `tailor` is set by the service).
    pub server: MoneroServerConfig,
    /// More ports (Stratum over TLS, say), all with the main port's jobs and engine.
    pub more: Vec<Listener<MoneroPoolSession>>,
    /// The sessions' ids (one value of the allocator each, in hex).
    pub allocator: Arc<ExtranonceAllocator>,
    /// The engine, made with [`Engine::randomx`].
    pub engine: Engine<(Connection, ShareToken)>,
    /// The share verifiers by RandomX key ([`RxKeys::light`] is enough to verify shares);
    /// the service builds the kernel of a new seed before it hands out a job with it.
    pub keys: Arc<RxKeys>,
    /// The address every coinbase pays.
    pub payout: String,
}

impl PoolService {
    /// Binds the Stratum port and starts the pool's threads and tasks on the current tokio
    /// runtime.
    pub async fn start(
        config: ServiceConfig,
        sources: Sources,
        log: ShareLog,
        report: Reporter,
    ) -> std::io::Result<PoolService> {
        PoolService::start_with(config, sources, log, report, None).await
    }

    /// [`PoolService::start`] for a sharechain pool: every job's coinbase is the sharechain's
    /// (`side`'s plan on each template), each miner's share pays its own address, and shares
    /// meeting the sharechain's target go to `side`'s taker. Ask for fresh work when the
    /// sharechain moves with [`PoolService::work_trigger`].
    pub async fn start_sharechain(
        config: ServiceConfig,
        sources: Sources,
        log: ShareLog,
        report: Reporter,
        side: SideChain,
    ) -> std::io::Result<PoolService> {
        PoolService::start_with(config, sources, log, report, Some(side)).await
    }

    async fn start_with(
        config: ServiceConfig,
        sources: Sources,
        log: ShareLog,
        report: Reporter,
        side: Option<SideChain>,
    ) -> std::io::Result<PoolService> {
        let ServiceConfig {
            listen,
            server,
            more,
            mut sv2,
            allocator,
            engine,
            kernel,
        } = config;
        let mut ports: Vec<Listener<PoolSession>> = std::iter::once(Listener { listen, server })
            .chain(more)
            .collect();
        let own_jobs = side.is_some() || engine.config().is_some_and(|c| c.solo_fee.is_some());
        let (plan, side) = match side {
            Some(SideChain {
                plan,
                shares,
                blocks,
            }) => (Some(plan), Some((shares, blocks))),
            None => (None, None),
        };
        let (jobs_tx, jobs_rx) = watch::channel::<Option<Arc<JobAnnouncement>>>(None);
        let (wake_tx, wakes) = std::sync::mpsc::channel::<Wake>();
        let driver = Arc::new(Driver::new(
            engine,
            kernel,
            log,
            Outlet::Bitcoin {
                blocks: Mutex::new(sources.blocks),
                side,
                jobs: jobs_tx,
                wake: Mutex::new(wake_tx.clone()),
            },
            Arc::clone(&report),
        ));
        if own_jobs {
            let tailor: Arc<dyn JobTailor> = Arc::new(OwnJobTailor {
                driver: Arc::clone(&driver),
            });
            for port in &mut ports {
                port.server.tailor = Some(tailor.clone());
            }
            for port in &mut sv2 {
                port.server.tailor = Some(tailor.clone());
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        spawn_long_poll(sources.long_poll, wake_tx, stop_rx.clone())?;
        spawn_templates(
            sources.templates,
            plan,
            wakes,
            Arc::clone(&driver),
            stop_rx.clone(),
        )?;
        let sv2 = SecondDialect {
            jobs: jobs_rx.clone(),
            ports: sv2,
        };
        launch::<PoolSession>(ports, Some(sv2), allocator, jobs_rx, driver, stop, report).await
    }

    /// Binds the port of a RandomX pool (the Monero dialect xmrig speaks) and starts its tip
    /// thread and tasks on the current tokio runtime. Refuses an engine not made with
    /// [`Engine::randomx`].
    pub async fn start_rx(
        config: RxServiceConfig,
        source: Arc<dyn RxSource>,
        log: ShareLog,
        report: Reporter,
    ) -> std::io::Result<PoolService> {
        PoolService::start_rx_with(config, source, log, report, None).await
    }

    /// [`PoolService::start_rx`] for a sharechain pool: every job mines the sharechain's
    /// share (`side`'s plan on the source's work), each session's paying the address its
    /// miner logged in with and the common job the pool's, and shares meeting the
    /// sharechain's target go to `side`'s taker. Ask for fresh work when the sharechain moves
    /// with [`PoolService::work_trigger`].
    pub async fn start_rx_sharechain(
        config: RxServiceConfig,
        source: Arc<dyn RxSource>,
        log: ShareLog,
        report: Reporter,
        side: RxSideChain,
    ) -> std::io::Result<PoolService> {
        PoolService::start_rx_with(config, source, log, report, Some(side)).await
    }

    async fn start_rx_with(
        config: RxServiceConfig,
        source: Arc<dyn RxSource>,
        log: ShareLog,
        report: Reporter,
        side: Option<RxSideChain>,
    ) -> std::io::Result<PoolService> {
        let RxServiceConfig {
            listen,
            server,
            more,
            allocator,
            engine,
            keys,
            payout,
        } = config;
        if engine.rx_config().is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a randomx service needs an engine made with Engine::randomx",
            ));
        }
        let (jobs_tx, jobs_rx) = watch::channel::<Option<Arc<MoneroJob>>>(None);
        let first = keys.keys().last().and_then(|seed| keys.get(seed));
        let kernel = first.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a randomx service needs keys holding a verifier",
            )
        })?;
        let driver = Arc::new(Driver::new(
            engine,
            kernel,
            log,
            Outlet::Rx {
                source: Arc::clone(&source),
                side,
                jobs: jobs_tx,
                refresh: AtomicBool::new(false),
                keys,
            },
            Arc::clone(&report),
        ));
        let tailor: Arc<dyn JobTailor<MoneroJob>> = Arc::new(RxTailor {
            driver: Arc::clone(&driver),
            payout: payout.clone(),
        });
        let ports: Vec<Listener<MoneroPoolSession>> = std::iter::once(Listener { listen, server })
            .chain(more)
            .map(|mut port| {
                port.server.tailor = Some(tailor.clone());
                port
            })
            .collect();
        let (stop, stop_rx) = watch::channel(false);
        spawn_rx_tips(source, payout, Arc::clone(&driver), stop_rx)?;
        launch::<MoneroPoolSession>(ports, None, allocator, jobs_rx, driver, stop, report).await
    }

    /// A handle that asks the service for fresh work.
    pub fn work_trigger(&self) -> WorkTrigger {
        WorkTrigger {
            to: match &self.driver.outlet {
                Outlet::Bitcoin { wake, .. } => {
                    TriggerTo::Templates(wake.lock().unwrap_or_else(|p| p.into_inner()).clone())
                }
                Outlet::Rx { .. } => TriggerTo::Rx(Arc::downgrade(&self.driver)),
            },
        }
    }

    /// The address the main Stratum port listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.locals
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The addresses of every port, the main one first, then the [`Listener`]s in order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.locals
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.driver.engine().stats()
    }

    /// A cheap, cloneable view of the running pool for an operator surface (health,
    /// metrics, status), usable after the service is handed to its shutdown.
    pub fn view(&self) -> PoolView {
        self.view.clone()
    }

    /// The bans in force on the Stratum port, with when each ends.
    pub fn bans(&self) -> Vec<(std::net::IpAddr, std::time::SystemTime)> {
        let mut bans: Vec<_> = self.edges.iter().flat_map(EdgeHandle::bans).collect();
        bans.sort();
        bans.dedup_by_key(|(ip, _)| *ip);
        bans
    }

    /// Lifts the ban on `ip`, in the server and in the database, and writes who did it
    /// (`actor`) to the audit log; `false` when there was no ban.
    pub async fn unban(
        &self,
        ip: std::net::IpAddr,
        actor: &str,
    ) -> Result<bool, crate::store::StoreError> {
        // Every port's ban goes, not just the first one found.
        let mut lifted = false;
        for edge in &self.edges {
            lifted |= edge.unban(ip);
        }
        let log = self.driver.log.clone();
        let actor = actor.to_owned();
        let stored = tokio::task::spawn_blocking(move || {
            log.run(move |store| {
                store.atomically(|rows| {
                    let lifted = rows.lift_ban(&ip.to_string())?;
                    rows.audit(&crate::store::AuditEntry {
                        time_ms: crate::engine::Now::read().unix_ms,
                        actor,
                        action: "unban".into(),
                        detail: ip.to_string(),
                    })?;
                    Ok(lifted)
                })
            })
        })
        .await
        .map_err(|_| crate::store::StoreError::Stopped)??;
        Ok(lifted || stored)
    }

    /// Runs until `shutdown` completes, then stops as [`PoolService::shutdown`] does.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> EngineStats {
        shutdown.await;
        self.shutdown().await
    }

    /// Closes the connections and waits until every share being judged is committed (or
    /// refused) and the share log has flushed. Answers due after the connections closed are
    /// not sent: a miner resubmits what it did not hear back about.
    pub async fn shutdown(self) -> EngineStats {
        let _ = self.stop.send(true);
        for server in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        // The server is gone, so its event channel closes; the loop then waits for the
        // shares still being judged.
        for events_loop in self.events_loops {
            let _ = tokio::time::timeout(Duration::from_secs(30), events_loop).await;
        }
        let log = self.driver.log.clone();
        let _ = tokio::task::spawn_blocking(move || log.flush(Duration::from_secs(30))).await;
        self.driver.engine().stats()
    }
}

/// Stratum V2 ports beside a Stratum v1 pool's, on its jobs.
struct SecondDialect {
    jobs: watch::Receiver<Option<Arc<JobAnnouncement>>>,
    ports: Vec<Listener<Sv2PoolSession>>,
}

/// One dialect's servers, bound, and the loop taking their events.
struct Bound {
    locals: Vec<SocketAddr>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    edge: Option<EdgeHandle>,
    stats: Vec<Arc<ServerStats>>,
    events_loop: tokio::task::JoinHandle<()>,
}

/// Binds the servers of the dialect `Q`, one per port, on the bans and per-address limits of
/// `shared` (or of the first port), and starts them and their event loop.
async fn bind_ports<Q: Dialect>(
    ports: Vec<Listener<Q>>,
    allocator: &Arc<ExtranonceAllocator>,
    jobs: watch::Receiver<Option<Arc<Q::Job>>>,
    driver: &Arc<Driver>,
    shared: Option<&EdgeHandle>,
    stop: &watch::Sender<bool>,
    report: &Reporter,
) -> std::io::Result<Bound> {
    let (events_tx, events) = mpsc::channel(4096);
    let mut bound = Vec::with_capacity(ports.len());
    for port in ports {
        let server = ProtocolServer::<Q>::bind(
            port.listen,
            port.server,
            Arc::clone(allocator),
            events_tx.clone(),
            jobs.clone(),
        )
        .await
        .and_then(|server| Ok((server.local_addr()?, server)));
        bound.push(server?);
    }
    drop(events_tx);
    // Every port keeps its bans and per-address limits in the first one's: a ban on one is a
    // ban on all, at once.
    let edge = shared
        .cloned()
        .or_else(|| bound.first().map(|(_, server)| server.edge()));
    if let Some(edge) = &edge {
        for (_, server) in bound.iter_mut() {
            if !server.edge().same_as(edge) {
                server.share_edge(edge);
            }
        }
    }
    let (mut locals, mut servers, mut stats) = (Vec::new(), Vec::new(), Vec::new());
    for (local, server) in bound {
        stats.push(server.stats());
        if let Some(backlog) = server.backlog().filter(|b| b.is_capped()) {
            report(ServiceEvent::BacklogCapped(backlog));
        }
        let mut stop = stop.subscribe();
        servers.push(tokio::spawn(server.run(async move {
            let _ = stop.changed().await;
        })));
        locals.push(local);
    }
    let events_loop = tokio::spawn(event_loop::<Q>(
        events,
        Arc::clone(driver),
        Arc::clone(report),
    ));
    Ok(Bound {
        locals,
        servers,
        edge,
        stats,
        events_loop,
    })
}

/// Binds the servers of the dialect `P`, one per port, and those of `second`, and starts them
/// and their event loops. On a failure the work threads, already running, stop at their next
/// turn.
async fn launch<P: Dialect>(
    ports: Vec<Listener<P>>,
    second: Option<SecondDialect>,
    allocator: Arc<ExtranonceAllocator>,
    jobs: watch::Receiver<Option<Arc<P::Job>>>,
    driver: Arc<Driver>,
    stop: watch::Sender<bool>,
    report: Reporter,
) -> std::io::Result<PoolService> {
    let first = bind_ports::<P>(ports, &allocator, jobs, &driver, None, &stop, &report).await;
    let first = match first {
        Ok(first) => first,
        Err(e) => {
            let _ = stop.send(true);
            return Err(e);
        }
    };
    let mut bound = vec![first];
    if let Some(second) = second.filter(|s| !s.ports.is_empty()) {
        let shared = bound[0].edge.clone();
        let more = bind_ports::<Sv2PoolSession>(
            second.ports,
            &allocator,
            second.jobs,
            &driver,
            shared.as_ref(),
            &stop,
            &report,
        )
        .await;
        match more {
            Ok(more) => bound.push(more),
            Err(e) => {
                let _ = stop.send(true);
                return Err(e);
            }
        }
    }
    // The ports share the first one's edge: one handle reaches every ban.
    let edges: Vec<EdgeHandle> = bound[0].edge.iter().cloned().collect();
    // Read once, put back on every port.
    restore_bans(&edges, &driver.log, &report).await;
    let (mut locals, mut servers, mut stats, mut loops) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for b in bound {
        locals.extend(b.locals);
        servers.extend(b.servers);
        stats.extend(b.stats);
        loops.push(b.events_loop);
    }
    let view = PoolView {
        driver: Arc::clone(&driver),
        ports: Arc::new(locals.clone()),
        stats: Arc::new(stats),
        edges: Arc::new(edges.clone()),
        started: Instant::now(),
        stopping: stop.subscribe(),
        block_counts: Arc::new(Mutex::new(None)),
    };
    Ok(PoolService {
        driver,
        locals,
        edges,
        view,
        stop,
        events_loops: loops,
        servers,
    })
}

async fn event_loop<P: Dialect>(
    mut events: mpsc::Receiver<ProtocolServerEvent<P>>,
    driver: Arc<Driver>,
    report: Reporter,
) {
    let mut shares = JoinSet::new();
    while let Some(event) = events.recv().await {
        while shares.try_join_next().is_some() {}
        match event {
            ProtocolServerEvent::Authorize {
                conn,
                token,
                username,
                ..
            } => {
                let verdict = driver.engine().authorize(&username).map(|_| ());
                match &verdict {
                    Err(reason) => report(ServiceEvent::Refused {
                        username: username.clone(),
                        peer: conn.peer_addr(),
                        reason: reason.clone(),
                    }),
                    Ok(()) => {
                        let now = Now::read();
                        if driver
                            .activity()
                            .connected(conn.id(), &username, now.instant)
                        {
                            driver.publish(PoolEvent::WorkerConnected {
                                worker: username.clone(),
                                peer: conn.peer_addr(),
                                unix_ms: now.unix_ms,
                            });
                        }
                    }
                }
                conn.authorize_result(token, verdict.map_err(|e| e.to_string()));
            }
            ProtocolServerEvent::Share { conn, share } => {
                let driver = Arc::clone(&driver);
                shares.spawn_blocking(move || {
                    driver.judge(|engine| P::hand_over(engine, conn, share));
                });
            }
            ProtocolServerEvent::Banned { conn, until } => {
                let peer = conn.peer_addr();
                report(ServiceEvent::Banned { peer, until });
                let (log, report) = (driver.log.clone(), Arc::clone(&report));
                shares.spawn_blocking(move || {
                    let until_ms = until
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let stored = log.run(move |store| {
                        let ip = peer.ip().to_string();
                        let reason = "too many bad shares or lines";
                        // The ban and its audit entry: both or neither.
                        store.atomically(|rows| {
                            rows.add_ban(&ip, until_ms, reason)?;
                            rows.audit(&crate::store::AuditEntry {
                                time_ms: crate::engine::Now::read().unix_ms,
                                actor: "stratum".into(),
                                action: "ban".into(),
                                detail: format!("{ip} until {until_ms} ms: {reason}"),
                            })
                        })
                    });
                    if let Err(error) = stored {
                        report(ServiceEvent::BanStoreFailed { error });
                    }
                });
            }
            ProtocolServerEvent::Closed { conn, reason } => {
                let now = Now::read();
                let worker = driver.activity().disconnected(conn.id(), now.instant);
                if let Some(worker) = worker {
                    driver.publish(PoolEvent::WorkerDisconnected {
                        worker,
                        peer: conn.peer_addr(),
                        unix_ms: now.unix_ms,
                    });
                }
                if !matches!(
                    reason,
                    DisconnectReason::PeerClosed | DisconnectReason::Shutdown
                ) {
                    report(ServiceEvent::Closed {
                        peer: conn.peer_addr(),
                        reason,
                    });
                }
            }
            _ => {}
        }
    }
    // Shares already being judged finish and commit before the service reports it stopped.
    while shares.join_next().await.is_some() {}
}

/// What an operator surface reads of a running pool: counters, ports, and whether it is
/// ready to serve. Cheap to clone; every call reads the pool's state at that moment.
#[derive(Clone)]
pub struct PoolView {
    driver: Arc<Driver>,
    ports: Arc<Vec<SocketAddr>>,
    stats: Arc<Vec<Arc<ServerStats>>>,
    edges: Arc<Vec<EdgeHandle>>,
    started: Instant,
    stopping: watch::Receiver<bool>,
    block_counts: Arc<Mutex<Option<(Instant, BlockCounts)>>>,
}

/// Blocks recorded, by status.
type BlockCounts = Vec<(String, u64)>;

/// How long block counts by status are reused: a scrape every second reads the blocks
/// table at most this often.
const BLOCK_COUNTS_TTL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for PoolView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolView")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

/// The pool's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolSnapshot {
    /// The algorithm served.
    pub algorithm: String,
    /// The Stratum ports' addresses, the main one first.
    pub ports: Vec<SocketAddr>,
    /// Since the pool started.
    pub uptime: Duration,
    /// The engine's share and block counters.
    pub engine: EngineStats,
    /// Shares between submission and answer now.
    pub in_flight: usize,
    /// How old the newest job is; `None` before the first.
    pub job_age: Option<Duration>,
    /// Connections served now, over every port.
    pub connections: usize,
    /// Connections accepted since the start.
    pub accepted_connections: u64,
    /// Connections refused at arrival (every reason).
    pub refused_connections: u64,
    /// Of those, refused because their address is banned.
    pub refused_banned: u64,
    /// Of those, refused because their address connects too fast.
    pub refused_too_fast: u64,
    /// Connections closed for sending lines too fast.
    pub rate_limited: u64,
    /// Connections whose PROXY header was missing, bad or late.
    pub proxy_failed: u64,
    /// Addresses banned since the start.
    pub bans_issued: u64,
    /// Bans in force now.
    pub bans_in_force: usize,
    /// The pool's hashrate over the last minute, five minutes and hour, from accepted
    /// share difficulty.
    pub hashrate: Hashrates,
    /// Rejected shares by reason.
    pub rejections: Rejections,
    /// Workers logged in now.
    pub workers: usize,
    /// The tip mined on; `None` before the first job.
    pub tip: Option<crate::engine::Tip>,
    /// The work since the last block found, in percent of the network difficulty.
    pub effort_percent: Option<f64>,
    /// Whether the pool is shutting down.
    pub stopping: bool,
}

/// What the pool owes and paid one address, from its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    /// Its balance in each coin (by algorithm name), smallest unit.
    pub balances: Vec<(String, i64)>,
    /// Every payment to it, oldest first.
    pub payments: Vec<AccountPayment>,
}

/// One payment to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPayment {
    /// The payment's number.
    pub id: i64,
    /// The coin, by algorithm name.
    pub coin: String,
    /// When it was written, Unix milliseconds.
    pub time_ms: i64,
    /// How much the address was paid, smallest unit.
    pub amount: u64,
    /// Where the payment stands.
    pub status: crate::store::PaymentStatus,
    /// The transaction's id, once known.
    pub txid: Option<String>,
}

/// Whether the pool can serve miners, and what stops it when it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every reason it is not ready; empty when it is.
    pub problems: Vec<String>,
    /// Whether work arrives from the source: the newest job is fresh.
    pub work_fresh: bool,
    /// Whether the database answered in time.
    pub database_ok: bool,
}

impl Readiness {
    /// Whether nothing stops the pool.
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty()
    }
}

impl PoolView {
    /// The counters now.
    pub fn snapshot(&self) -> PoolSnapshot {
        let (engine, in_flight, job_age, algorithm) = {
            let engine = self.driver.engine();
            (
                engine.stats(),
                engine.in_flight(),
                engine.job_age(Instant::now()),
                engine.algorithm().to_owned(),
            )
        };
        let sum = |read: fn(&ServerStats) -> u64| self.stats.iter().map(|s| read(s)).sum();
        let tip = self.driver.engine().tip();
        let (hashrate, rejections, workers, effort_percent) = {
            let activity = self.driver.activity();
            (
                activity.pool_hashrate(Instant::now()),
                activity.rejections(),
                activity.worker_count(),
                tip.and_then(|t| activity.effort_percent(t.network_difficulty)),
            )
        };
        PoolSnapshot {
            hashrate,
            rejections,
            workers,
            tip,
            effort_percent,
            stopping: *self.stopping.borrow(),
            algorithm,
            ports: self.ports.to_vec(),
            uptime: self.started.elapsed(),
            engine,
            in_flight,
            job_age,
            connections: self.stats.iter().map(|s| s.live()).sum(),
            accepted_connections: sum(ServerStats::accepted),
            refused_connections: sum(ServerStats::refused),
            refused_banned: sum(ServerStats::refused_banned),
            refused_too_fast: sum(ServerStats::refused_too_fast),
            rate_limited: sum(ServerStats::rate_limited),
            proxy_failed: sum(ServerStats::proxy_failed),
            bans_issued: sum(ServerStats::bans),
            bans_in_force: self.edges.iter().map(|e| e.bans().len()).sum(),
        }
    }

    /// Whether the pool is shutting down.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The algorithm served.
    pub fn algorithm(&self) -> String {
        self.driver.engine().algorithm().to_owned()
    }

    /// The latencies the pool measured so far.
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.driver.telemetry
    }

    /// Every worker seen in the last hour, by name.
    pub fn workers(&self) -> Vec<WorkerActivity> {
        self.driver.activity().workers(Instant::now())
    }

    /// The pool's events from now on. A subscriber that falls more than a few thousand
    /// events behind gets [`broadcast::error::RecvError::Lagged`]: drop it rather than let
    /// it slow anything.
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.driver.feed.subscribe()
    }

    /// The newest `limit` blocks found, newest first. Blocks on the database: call it off
    /// any event loop.
    pub fn blocks(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::store::BlockRecord>, crate::store::StoreError> {
        let mut blocks = self.driver.log.run(|store| store.blocks())?;
        blocks.reverse();
        blocks.truncate(limit);
        Ok(blocks)
    }

    /// Writes an operator's action to the audit log. Blocks on the database: call it off any
    /// event loop.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), crate::store::StoreError> {
        let entry = crate::store::AuditEntry {
            time_ms: crate::engine::Now::read().unix_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        self.driver.log.run(move |store| store.audit(&entry))
    }

    /// The limits in force at the Stratum ports' edge (every port shares the first one's).
    pub fn edge_limits(&self) -> Option<otedama_stratum::edge::EdgeConfig> {
        self.edges.first().map(EdgeHandle::limits)
    }

    /// Puts new limits in force at the Stratum ports' edge (a configuration reload: rates,
    /// ban length, the loopback exemption; see [`EdgeHandle::set_limits`]) once `actor`'s
    /// change (`detail`) is in the audit log: no change without its audit line. Blocks on the
    /// database: call it off any event loop.
    pub fn reload_edge_limits(
        &self,
        actor: &str,
        detail: &str,
        limits: &otedama_stratum::edge::EdgeConfig,
    ) -> Result<(), crate::store::StoreError> {
        self.audit(actor, "config-reload", detail)?;
        for edge in self.edges.iter() {
            edge.set_limits(limits);
        }
        Ok(())
    }

    /// How many of this pool's blocks are recorded at each status (`submitted`, `accepted`,
    /// `confirmed`, `orphaned`, `rejected`), read at most every ten seconds. Blocks on the database:
    /// call it off any event loop.
    pub fn block_counts(&self) -> Result<Vec<(String, u64)>, crate::store::StoreError> {
        let mut cache = self.block_counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, counts)) = cache.as_ref() {
            if at.elapsed() < BLOCK_COUNTS_TTL {
                return Ok(counts.clone());
            }
        }
        let blocks = self.driver.log.run(|store| store.blocks())?;
        let algorithm = self.algorithm();
        let mut counts: Vec<(String, u64)> = Vec::new();
        // Pools of several coins may share one database: count this pool's own.
        for block in blocks.into_iter().filter(|b| b.algorithm == algorithm) {
            let status = block.status.as_str();
            match counts.iter_mut().find(|(s, _)| s == status) {
                Some((_, n)) => *n += 1,
                None => counts.push((status.to_owned(), 1)),
            }
        }
        counts.sort();
        *cache = Some((Instant::now(), counts.clone()));
        Ok(counts)
    }

    /// What the pool owes and paid `address`. Blocks on the database: call it off any event
    /// loop.
    pub fn account(&self, address: &str) -> Result<Account, crate::store::StoreError> {
        let address = address.to_owned();
        self.driver.log.run(move |store| {
            let lines = store.ledger(&address)?;
            let mut balances: Vec<(String, i64)> = Vec::new();
            let mut payments = Vec::new();
            for line in &lines {
                match balances.iter_mut().find(|(coin, _)| *coin == line.coin) {
                    Some((_, sum)) => *sum = sum.saturating_add(line.amount),
                    None => balances.push((line.coin.clone(), line.amount)),
                }
                if let (crate::store::LedgerKind::Payment, Some(id)) = (line.kind, line.payment_id)
                {
                    if let Some(payment) = store.payment(id)? {
                        payments.push(AccountPayment {
                            id,
                            coin: line.coin.clone(),
                            time_ms: line.time_ms,
                            amount: line.amount.unsigned_abs(),
                            status: payment.status,
                            txid: payment.txid,
                        });
                    }
                }
            }
            Ok(Account { balances, payments })
        })
    }

    /// Whether the pool is ready: not stopping, work fresh from its source (a job no older
    /// than a few refresh intervals), and its database taking writes (asked within
    /// `patience`). Blocks up to `patience` on the database: call it off any event loop.
    pub fn readiness(&self, patience: Duration) -> Readiness {
        let mut problems = Vec::new();
        if *self.stopping.borrow() {
            problems.push("the pool is stopping".to_owned());
        }
        let (age, refresh) = {
            let engine = self.driver.engine();
            (engine.job_age(Instant::now()), engine.deadlines().refresh)
        };
        let stale_after = refresh * 3 + Duration::from_secs(30);
        let work_fresh = match age {
            None => {
                problems.push("no job yet: the work source has not answered".to_owned());
                false
            }
            Some(age) if age > stale_after => {
                problems.push(format!(
                    "the newest job is {} s old: the work source is not answering",
                    age.as_secs()
                ));
                false
            }
            Some(_) => true,
        };
        let (done, wait) = std::sync::mpsc::channel();
        let log = self.driver.log.clone();
        std::thread::spawn(move || {
            // A tiny table: the probe costs the same however many shares are kept.
            let _ = done.send(log.run(|store| store.bans(i64::MAX)));
        });
        let database_ok = match wait.recv_timeout(patience) {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                problems.push(format!("the database: {}", crate::ErrorChain(&e)));
                false
            }
            Err(_) => {
                problems.push(format!(
                    "the database did not answer within {} ms",
                    patience.as_millis()
                ));
                false
            }
        };
        Readiness {
            problems,
            work_fresh,
            database_ok,
        }
    }
}

/// Puts back the bans stored before the start.
async fn restore_bans(edges: &[EdgeHandle], log: &ShareLog, report: &Reporter) {
    let log = log.clone();
    let now_ms = crate::engine::Now::read().unix_ms;
    let stored = tokio::task::spawn_blocking(move || log.run(move |store| store.bans(now_ms)))
        .await
        .unwrap_or(Err(crate::store::StoreError::Stopped));
    match stored {
        Ok(bans) => {
            let mut count = 0;
            for (ip, until_ms) in bans {
                let (Ok(ip), Ok(ms)) = (ip.parse(), u64::try_from(until_ms)) else {
                    continue;
                };
                let until = std::time::UNIX_EPOCH + Duration::from_millis(ms);
                for edge in edges {
                    edge.restore(ip, until);
                }
                count += 1;
            }
            if count > 0 {
                report(ServiceEvent::BansRestored { count });
            }
        }
        Err(error) => report(ServiceEvent::BanStoreFailed { error }),
    }
}

/// Follows the RandomX source's tip: the pool's work on each new one goes to the engine
/// (reserved bytes zero), which retires the older jobs and announces the new one.
fn spawn_rx_tips(
    source: Arc<dyn RxSource>,
    payout: String,
    driver: Arc<Driver>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("rx-tips".into())
        .spawn(move || {
            // The tip (the work's parent) once work on it reached the engine.
            let mut tip: Option<[u8; 32]> = None;
            let mut backoff = Duration::from_millis(500);
            // Ends at the stop, or once the service is gone (its port never bound).
            while !*stop.borrow() && stop.has_changed().is_ok() {
                driver.tick();
                let refresh = match &driver.outlet {
                    Outlet::Rx { refresh, .. } => refresh.swap(false, Ordering::Relaxed),
                    Outlet::Bitcoin { .. } => false,
                };
                if let (Some(known), false) = (tip, refresh) {
                    match source.wait_for_tip(&known, RX_TIP_WAIT) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(error) => {
                            driver.telemetry.node_failed();
                            (driver.report)(ServiceEvent::Source {
                                error,
                                retry_in: backoff,
                            });
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                            continue;
                        }
                    }
                }
                let fetched = driver
                    .telemetry
                    .node_work
                    .time(|| source.work(&payout, [0; 8]))
                    .and_then(|work| {
                        // No job goes out before its shares can be checked.
                        let Outlet::Rx { keys, .. } = &driver.outlet else {
                            return Ok(work);
                        };
                        match keys.prepare(&work.seed) {
                            Ok((_, true)) => {
                                (driver.report)(ServiceEvent::RxKey { seed: work.seed });
                                Ok(work)
                            }
                            Ok((_, false)) => Ok(work),
                            Err(e) => Err(SourceError::NotReady {
                                what: format!(
                                    "a randomx verifier for the seed {}: {e}",
                                    encode_hex(&work.seed)
                                ),
                            }),
                        }
                    });
                match fetched {
                    Ok(work) => {
                        // On a sharechain the common job is the next share paying the pool.
                        let side = match &driver.outlet {
                            Outlet::Rx {
                                side: Some(side), ..
                            } => match (side.plan)(&work, payout.as_bytes(), [0; 8]) {
                                Ok(template) => Some(template),
                                Err(error) => {
                                    (driver.report)(ServiceEvent::Source {
                                        error,
                                        retry_in: backoff,
                                    });
                                    std::thread::sleep(backoff);
                                    backoff = (backoff * 2).min(Duration::from_secs(30));
                                    continue;
                                }
                            },
                            _ => None,
                        };
                        backoff = Duration::from_millis(500);
                        tip = Some(work.prev_id);
                        driver.telemetry.job.time(|| {
                            match side {
                                Some(template) => driver.engine().handle_rx_share_work(
                                    work,
                                    template,
                                    Now::read(),
                                ),
                                None => driver.engine().handle_rx_work(work, Now::read()),
                            }
                            driver.pump();
                        });
                    }
                    Err(error) => {
                        driver.telemetry.node_failed();
                        (driver.report)(ServiceEvent::Source {
                            error,
                            retry_in: backoff,
                        });
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })?;
    Ok(())
}

fn spawn_long_poll(
    mut poller: Box<dyn TemplateSource>,
    changes: std::sync::mpsc::Sender<Wake>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("long-poll".into())
        .spawn(move || {
            let mut id: Option<String> = None;
            let mut backoff = Duration::from_millis(500);
            while !*stop.borrow() {
                let asked = Instant::now();
                let next = match &id {
                    None => poller.template().map(Some),
                    Some(id) => poller.wait_for_change(id, LONG_POLL),
                };
                match next {
                    Ok(Some(t)) => {
                        backoff = Duration::from_millis(500);
                        let first = id.is_none();
                        id = Some(t.id.clone());
                        if !first && changes.send(Wake::Template(t)).is_err() {
                            break;
                        }
                    }
                    // A node that does not hold long-polls answers at once: ask again no
                    // more than once a second.
                    Ok(None) => {
                        if asked.elapsed() < Duration::from_secs(1) {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                    // The template thread reports the source's errors.
                    Err(_) => {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })?;
    Ok(())
}

/// The sharechain's next share on a main-chain template ([`SideChain::plan`]).
pub type Plan =
    Box<dyn FnMut(&BlockTemplate) -> Result<otedama_p2p::TemplateBase, SourceError> + Send>;

fn spawn_templates(
    mut templates: Box<dyn TemplateSource>,
    mut plan: Option<Plan>,
    wakes: std::sync::mpsc::Receiver<Wake>,
    driver: Arc<Driver>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use std::sync::mpsc::RecvTimeoutError;
    std::thread::Builder::new()
        .name("templates".into())
        .spawn(move || {
            let mut started = false;
            // The sharechain was not ready for the last template: ask again after the backoff.
            let mut retry = false;
            let mut backoff = Duration::from_millis(500);
            while !*stop.borrow() {
                let next = if started && !retry {
                    // Sleeps until the engine's next deadline (or the stop flag's next look).
                    let wait = driver
                        .engine()
                        .poll_timeout()
                        .map_or(TICK, |at| at.saturating_duration_since(Instant::now()))
                        .min(TICK);
                    match wakes.recv_timeout(wait) {
                        Ok(Wake::Template(t)) => Ok(t),
                        Ok(Wake::Refresh) => {
                            driver.telemetry.node_work.time(|| templates.template())
                        }
                        Ok(Wake::Relayed(raw)) => {
                            let hash = raw
                                .get(..80)
                                .and_then(|h| otedama_core::BlockHeader::from_bytes(h).ok())
                                .map(|h| h.block_hash());
                            let result = driver.submit(&FoundBlock::Bitcoin(raw));
                            if let Some(hash) = hash {
                                (driver.report)(ServiceEvent::BlockRelayed { hash, result });
                            }
                            driver.telemetry.node_work.time(|| templates.template())
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            driver.tick();
                            continue;
                        }
                        // Only the driver's sender is left once the long-poll thread ended.
                        Err(RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(TICK);
                            driver.tick();
                            continue;
                        }
                    }
                } else {
                    driver.telemetry.node_work.time(|| templates.template())
                };
                let template = match next {
                    Ok(t) => t,
                    Err(error) => {
                        driver.telemetry.node_failed();
                        (driver.report)(ServiceEvent::Source {
                            error,
                            retry_in: backoff,
                        });
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                };
                let base = match plan.as_mut().map(|plan| plan(&template)) {
                    None => None,
                    Some(Ok(base)) => Some(base),
                    Some(Err(error)) => {
                        (driver.report)(ServiceEvent::Source {
                            error,
                            retry_in: backoff,
                        });
                        retry = true;
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        driver.tick();
                        continue;
                    }
                };
                backoff = Duration::from_millis(500);
                started = true;
                retry = false;
                driver.telemetry.job.time(|| {
                    match base {
                        Some(base) => {
                            driver
                                .engine()
                                .handle_sharechain_work(template, base, Now::read())
                        }
                        None => driver.engine().handle_template(template, Now::read()),
                    }
                    driver.pump();
                });
            }
        })?;
    Ok(())
}
