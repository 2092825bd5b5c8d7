//! A whole Stratum v1 pool on tokio (feature `tokio`): the engine, `otedama-stratum`'s server,
//! a work source and a share log, wired the way `otedama-cli pool` runs them.
//!
//! [`PoolService::start`] binds the Stratum port and starts the parts:
//! - a long-poll thread that keeps one long-poll outstanding at all times (a node holds a
//!   long-poll until its template changes, so polls given up early would pile up in its RPC
//!   threads and starve block submissions);
//! - a template thread that turns each change into jobs (clean on a new tip) and refreshes the
//!   job every 30 s, keeping the last job while the source is down;
//! - the event loop: authorization through [`Engine::authorize`], each share judged on a
//!   blocking thread (its proof of work outside the engine's lock), blocks submitted first,
//!   answers sent only once the share log has committed the share.
//!
//! What happens is reported through a callback, so the embedder decides what to print.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otedama_core::BlockTemplate;
use otedama_hash::PowAlgorithm;
use otedama_stratum::server::{
    Connection, DisconnectReason, JobTailor, Server, ServerConfig, ServerEvent,
};
use otedama_stratum::{ExtranonceAllocator, JobAnnouncement, ShareSubmission, ShareToken};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::engine::{Action, Engine, EngineStats, Report, Submission};
use crate::source::{BlockSubmitter, SourceError, TemplateSource};
use crate::store::ShareLog;

/// How long a long-poll may wait before it is given up (and left to the node until its next
/// block).
const LONG_POLL: Duration = Duration::from_secs(3600);

/// How often an unchanged template is fetched again, to refresh the job's time.
const REFRESH: Duration = Duration::from_secs(30);

/// What the service reports as it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceEvent {
    /// The engine's report: a new height, a found block, a job that could not be built.
    Engine(Report),
    /// The work source failed; the last job stays in force.
    Source {
        /// Why.
        error: SourceError,
        /// When the source is asked again.
        retry_in: Duration,
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
        reason: String,
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

type Reply = (Connection, ShareToken);

/// Carries out what the engine asks for.
struct Driver {
    engine: Mutex<Engine<Reply>>,
    kernel: Arc<dyn PowAlgorithm>,
    log: ShareLog,
    blocks: Mutex<Box<dyn BlockSubmitter>>,
    jobs: watch::Sender<Option<Arc<JobAnnouncement>>>,
    report: Reporter,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Driver {
    fn engine(&self) -> MutexGuard<'_, Engine<Reply>> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Judges one share on the calling (blocking) thread.
    fn share(&self, conn: Connection, share: ShareSubmission) {
        let token = share.token;
        let check = self
            .engine()
            .handle_share(Submission::from(&share), (conn, token));
        if let Some(check) = check {
            let checked = check.verify(self.kernel.as_ref());
            self.engine().handle_checked(checked, now_ms());
        }
        self.pump();
    }

    /// Runs every queued action; the blocking ones (a block submission, a durable commit) on
    /// the calling thread, which is never the event loop's.
    fn pump(&self) {
        loop {
            let Some(action) = self.engine().poll_action() else {
                return;
            };
            match action {
                Action::Announce { job } => {
                    self.jobs
                        .send_replace(Some(Arc::new(job.announcement.clone())));
                }
                Action::SubmitBlock { share, block } => {
                    let result = self
                        .blocks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .submit_block(&block);
                    self.engine().handle_block_result(share, result);
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
                    let durable = self.log.record_share(record).map_err(|e| e.to_string());
                    self.engine().handle_persisted(share, durable);
                }
                Action::Answer {
                    reply: (conn, token),
                    verdict,
                    ..
                } => conn.share_result(token, verdict),
                Action::Report(report) => (self.report)(ServiceEvent::Engine(report)),
            }
        }
    }
}

/// SOLO: each connection mines a job whose coinbase pays its own address.
#[derive(Debug)]
struct SoloTailor {
    driver: Arc<Driver>,
}

impl JobTailor for SoloTailor {
    fn tailor(&self, job: &Arc<JobAnnouncement>, worker: &str) -> Option<Arc<JobAnnouncement>> {
        let own = self.driver.engine().solo_job(job, worker);
        self.driver.pump();
        Some(Arc::new(own?.announcement.clone()))
    }
}

/// A running pool.
pub struct PoolService {
    driver: Arc<Driver>,
    local: SocketAddr,
    stop: watch::Sender<bool>,
    events_loop: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PoolService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolService")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Everything a service needs besides its sources and share log.
pub struct ServiceConfig {
    /// Where the Stratum server listens.
    pub listen: SocketAddr,
    /// The Stratum server's settings (its `tailor` is set by the service under SOLO).
    pub server: ServerConfig,
    /// Extranonce1 values for the sessions.
    pub allocator: Arc<ExtranonceAllocator>,
    /// The engine, configured.
    pub engine: Engine<(Connection, ShareToken)>,
    /// The proof-of-work kernel shares are checked with.
    pub kernel: Arc<dyn PowAlgorithm>,
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
        let ServiceConfig {
            listen,
            mut server,
            allocator,
            engine,
            kernel,
        } = config;
        let solo = engine.config().solo_fee.is_some();
        let (jobs_tx, jobs_rx) = watch::channel::<Option<Arc<JobAnnouncement>>>(None);
        let driver = Arc::new(Driver {
            engine: Mutex::new(engine),
            kernel,
            log,
            blocks: Mutex::new(sources.blocks),
            jobs: jobs_tx,
            report: Arc::clone(&report),
        });
        if solo {
            server.tailor = Some(Arc::new(SoloTailor {
                driver: Arc::clone(&driver),
            }));
        }
        let (stop, stop_rx) = watch::channel(false);
        let (changes_tx, changes) = std::sync::mpsc::channel::<BlockTemplate>();
        spawn_long_poll(sources.long_poll, changes_tx, stop_rx.clone())?;
        spawn_templates(
            sources.templates,
            changes,
            Arc::clone(&driver),
            stop_rx.clone(),
        )?;
        let (events_tx, events) = mpsc::channel(4096);
        let bound = Server::bind(listen, server, allocator, events_tx, jobs_rx).await?;
        let local = bound.local_addr()?;
        let server = {
            let mut stop = stop_rx.clone();
            tokio::spawn(bound.run(async move {
                let _ = stop.changed().await;
            }))
        };
        let events_loop = tokio::spawn(event_loop(events, Arc::clone(&driver), report));
        Ok(PoolService {
            driver,
            local,
            stop,
            events_loop,
            server,
        })
    }

    /// The address the Stratum server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.driver.engine().stats()
    }

    /// Runs until `shutdown` completes, then closes the connections and waits until every
    /// share being judged is answered and the share log has flushed.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> EngineStats {
        shutdown.await;
        self.shutdown().await
    }

    /// Closes the connections and waits until every share being judged is answered and the
    /// share log has flushed.
    pub async fn shutdown(self) -> EngineStats {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        // The server is gone, so its event channel closes; the loop then waits for the
        // shares still being judged.
        let _ = tokio::time::timeout(Duration::from_secs(30), self.events_loop).await;
        let log = self.driver.log.clone();
        let _ = tokio::task::spawn_blocking(move || log.flush(Duration::from_secs(30))).await;
        self.driver.engine().stats()
    }
}

async fn event_loop(
    mut events: mpsc::Receiver<ServerEvent>,
    driver: Arc<Driver>,
    report: Reporter,
) {
    let mut shares = JoinSet::new();
    while let Some(event) = events.recv().await {
        while shares.try_join_next().is_some() {}
        match event {
            ServerEvent::Authorize {
                conn,
                token,
                username,
                ..
            } => {
                let verdict = driver
                    .engine()
                    .authorize(&username)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                if let Err(reason) = &verdict {
                    report(ServiceEvent::Refused {
                        username: username.clone(),
                        peer: conn.peer_addr(),
                        reason: reason.clone(),
                    });
                }
                conn.authorize_result(token, verdict);
            }
            ServerEvent::Share { conn, share } => {
                let driver = Arc::clone(&driver);
                shares.spawn_blocking(move || driver.share(conn, share));
            }
            ServerEvent::Closed { conn, reason }
                if !matches!(
                    reason,
                    DisconnectReason::PeerClosed | DisconnectReason::Shutdown
                ) =>
            {
                report(ServiceEvent::Closed {
                    peer: conn.peer_addr(),
                    reason,
                });
            }
            _ => {}
        }
    }
    // Shares already being judged finish and commit before the service reports it stopped.
    while shares.join_next().await.is_some() {}
}

fn spawn_long_poll(
    mut poller: Box<dyn TemplateSource>,
    changes: std::sync::mpsc::Sender<BlockTemplate>,
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
                        if !first && changes.send(t).is_err() {
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

fn now_secs() -> u32 {
    u32::try_from(now_ms() / 1000).unwrap_or(u32::MAX)
}

fn spawn_templates(
    mut templates: Box<dyn TemplateSource>,
    changes: std::sync::mpsc::Receiver<BlockTemplate>,
    driver: Arc<Driver>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use std::sync::mpsc::RecvTimeoutError;
    std::thread::Builder::new()
        .name("templates".into())
        .spawn(move || {
            let mut started = false;
            let mut backoff = Duration::from_millis(500);
            while !*stop.borrow() {
                let next = if started {
                    match changes.recv_timeout(REFRESH) {
                        Ok(t) => Ok(t),
                        // Nothing changed: refresh the job's time.
                        Err(RecvTimeoutError::Timeout) => templates.template(),
                        Err(RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(REFRESH);
                            templates.template()
                        }
                    }
                } else {
                    templates.template()
                };
                let template = match next {
                    Ok(t) => t,
                    Err(error) => {
                        (driver.report)(ServiceEvent::Source {
                            error,
                            retry_in: backoff,
                        });
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                };
                backoff = Duration::from_millis(500);
                started = true;
                driver.engine().handle_template(template, now_secs());
                driver.pump();
            }
        })?;
    Ok(())
}
