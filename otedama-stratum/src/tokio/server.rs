//! A Stratum TCP server: one task per connection, each driving a pool session of any dialect
//! through [`PoolProtocol`].
//!
//! [`ProtocolServer<P>`] serves the dialect of `P`: [`Server`] is the Stratum v1 server
//! (sessions are [`PoolSession`]s), [`MoneroServer`] serves xmrig and other miners of the
//! Monero dialect ([`MoneroPoolSession`]), and [`EthServer`] EthereumStratum/1.0.0 miners
//! ([`EthPoolSession`]). The rest of this page reads the same for each.
//!
//! The embedding pool talks to the server through plain channels, with no trait to implement:
//!
//! - every decision the sessions need arrives as a [`ProtocolServerEvent`] ([`ServerEvent`]
//!   for v1) on the `mpsc::Sender` given to [`ProtocolServer::bind`], carrying the
//!   [`Connection`] it came from; the pool answers with [`Connection::authorize_result`] and
//!   [`Connection::share_result`] (plain, non-async calls), whenever it is ready;
//! - jobs go out through a `tokio::sync::watch` channel of `Option<Arc<P::Job>>`
//!   ([`JobAnnouncement`] for v1, [`MoneroJob`] and [`EthNotify`] for the others): each
//!   connection announces the latest job as soon as its session
//!   [wants jobs](PoolProtocol::wants_jobs) (v1: subscribed and a worker authorized; Monero:
//!   the login accepted, and the job goes out in the login result), and every new one after
//!   that. A connection that falls behind skips straight to the newest job, which is safe
//!   because a job of a new chain tip (a greater [`JobAnnouncement::height`], a greater Monero
//!   height) retires the older ones. A pool whose connections each need their own job (solo
//!   mining, a coinbase paying each miner's address, a Monero blob per miner) sets
//!   [`ProtocolServerConfig::tailor`]: its [`JobTailor`] turns the common job into the
//!   connection's own.
//!
//! Each connection costs a task, a socket and a session: no per-connection read buffer is
//! held while a connection is idle (reads go through a stack buffer and a [`LineBuffer`] that
//! only grows while a line is unfinished). The server bounds connections overall and per IP
//! address, lines to [`ProtocolServerConfig::max_line`], and writes to
//! [`ProtocolServerConfig::write_timeout`]; the session bounds everything else (subscribe and
//! idle timeouts, ban score).
//!
//! A Stratum v1 pool:
//!
//! ```no_run
//! use std::sync::Arc;
//! use otedama_stratum::server::{Server, ServerConfig, ServerEvent};
//! use otedama_stratum::{ExtranonceAllocator, ShareVerdict};
//! use tokio::sync::{mpsc, watch};
//!
//! # async fn pool() -> std::io::Result<()> {
//! let allocator = ExtranonceAllocator::new(&[], 4).expect("valid sizes");
//! let (events_tx, mut events) = mpsc::channel(1024);
//! let (jobs, jobs_rx) = watch::channel(None);
//! let server = Server::bind("0.0.0.0:3333", ServerConfig::default(), allocator, events_tx, jobs_rx).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! tokio::spawn(server.run(async { stopped.await.ok(); }));
//! jobs.send_replace(Some(Arc::new(next_job())));
//! while let Some(event) = events.recv().await {
//!     match event {
//!         ServerEvent::Authorize { conn, token, username, .. } => {
//!             conn.authorize_result(token, Ok(()));
//!         }
//!         ServerEvent::Share { conn, share } => {
//!             // Validate the proof of work, record the share, then:
//!             conn.share_result(share.token, ShareVerdict::Accepted);
//!         }
//!         _ => {}
//!     }
//! }
//! # stop.send(()).ok();
//! # Ok(())
//! # }
//! # fn next_job() -> otedama_stratum::JobAnnouncement {
//! #     otedama_stratum::JobAnnouncement {
//! #         notify: otedama_stratum::Notify {
//! #             job_id: "1".into(),
//! #             prevhash: [0; 32],
//! #             coinb1: vec![],
//! #             coinb2: vec![],
//! #             merkle_branch: vec![],
//! #             version: 0x2000_0000,
//! #             nbits: 0x207f_ffff,
//! #             ntime: 0,
//! #             clean_jobs: true,
//! #         },
//! #         height: 1,
//! #     }
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::time::SystemTime;

use ::tokio::io::AsyncWriteExt;
use ::tokio::net::{TcpListener, TcpSocket, TcpStream, ToSocketAddrs};
use ::tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use ::tokio::task::JoinSet;
use ::tokio::time::{sleep_until, timeout, Instant};

use super::link::{Link, LinkError, WriteError};
use crate::edge::{
    parse_proxy_header, EdgeConfig, EdgeRefusal, Guard, ProxyError, ProxyParse, TokenBucket,
    MAX_PROXY_HEADER,
};
use crate::{
    AuthorizeToken, CloseReason, EthPoolSession, ExtranonceAllocator, Framing, JobAnnouncement,
    LineBuffer, MoneroPoolSession, PoolProtocol, PoolSession, SessionEvent, ShareToken,
    ShareVerdict,
};
#[cfg(doc)]
use crate::{EthNotify, MoneroJob};

/// The settings of a [`ProtocolServer`] for the dialect of `P`.
pub struct ProtocolServerConfig<P: PoolProtocol> {
    /// The settings every session runs with.
    pub pool: Arc<P::Config>,
    /// Connections served at once; more are accepted and closed straight away.
    pub max_connections: usize,
    /// Connections served at once from one IP address (`None`: no per-address limit; mining
    /// farms often sit behind one address).
    pub max_connections_per_ip: Option<usize>,
    /// The longest line accepted from a miner; a longer one closes the connection.
    pub max_line: usize,
    /// How long a write may wait for a miner that does not read.
    pub write_timeout: Duration,
    /// Gives each connection its own version of every job (solo mining: a coinbase paying
    /// the connection's own address); `None` sends every connection the same jobs.
    pub tailor: Option<Arc<dyn JobTailor<P::Job>>>,
    /// The limits at the edge (new connections per address, lines per connection, bans) and
    /// whether connections open with a PROXY protocol header.
    pub edge: EdgeConfig,
    /// TLS for every connection (`stratum+ssl://`), with the pool's certificate; `None`
    /// serves plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The settings of the Stratum v1 [`Server`].
pub type ServerConfig = ProtocolServerConfig<PoolSession>;

/// The settings of a [`MoneroServer`].
pub type MoneroServerConfig = ProtocolServerConfig<MoneroPoolSession>;

/// The settings of an [`EthServer`].
pub type EthServerConfig = ProtocolServerConfig<EthPoolSession>;

/// Makes a connection's own version of a job of type `J` ([`JobAnnouncement`] unless said
/// otherwise), from the job every connection gets and the first worker the connection
/// authorized (for the Monero dialect: its login).
///
/// The server calls [`tailor_for`](JobTailor::tailor_for) from the connection's task each
/// time it sends a job, so it should be quick (cache what it builds). The caller must then
/// accept shares on the tailored job's id.
pub trait JobTailor<J = JobAnnouncement>: Send + Sync + std::fmt::Debug {
    /// The job for `worker` in place of `job`; `None` sends `job` as it is.
    fn tailor(&self, job: &Arc<J>, worker: &str) -> Option<Arc<J>>;

    /// The job for the connection `conn`, whose first worker is `worker`. By default
    /// [`tailor`](JobTailor::tailor), which does not look at the connection; a pool whose
    /// connections must never share a job, even under one worker name (a Monero blob of its
    /// own for every miner), overrides this one.
    fn tailor_for(&self, job: &Arc<J>, worker: &str, conn: &Connection) -> Option<Arc<J>> {
        let _ = conn;
        self.tailor(job, worker)
    }
}

impl<P: PoolProtocol> Clone for ProtocolServerConfig<P> {
    fn clone(&self) -> Self {
        ProtocolServerConfig {
            pool: Arc::clone(&self.pool),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_line: self.max_line,
            write_timeout: self.write_timeout,
            tailor: self.tailor.clone(),
            edge: self.edge.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        }
    }
}

impl<P: PoolProtocol> std::fmt::Debug for ProtocolServerConfig<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolServerConfig")
            .field("pool", &self.pool)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_line", &self.max_line)
            .field("write_timeout", &self.write_timeout)
            .field("tailor", &self.tailor)
            .field("edge", &self.edge)
            .finish()
    }
}

/// The dialect's default session settings, 100 000 connections with no per-address limit,
/// [`LineBuffer::DEFAULT_MAX_LINE`], 30 s to write, no tailor, the default
/// [`EdgeConfig`].
impl<P: PoolProtocol> Default for ProtocolServerConfig<P>
where
    P::Config: Default,
{
    fn default() -> Self {
        ProtocolServerConfig {
            pool: Arc::new(P::Config::default()),
            max_connections: 100_000,
            max_connections_per_ip: None,
            max_line: LineBuffer::DEFAULT_MAX_LINE,
            write_timeout: Duration::from_secs(30),
            tailor: None,
            edge: EdgeConfig::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The session ended it (timeouts, ban, not Stratum, pool full, or
    /// [`Connection::close`]).
    Session(CloseReason),
    /// The miner closed the connection.
    PeerClosed,
    /// The miner sent a line longer than [`ServerConfig::max_line`].
    LineTooLong,
    /// The miner stopped reading for longer than [`ServerConfig::write_timeout`].
    WriteTimeout,
    /// A socket error.
    Io(io::ErrorKind),
    /// The server is shutting down, or the event receiver was dropped.
    Shutdown,
    /// The dialect cannot open a session with the server's allocator (EthereumStratum takes
    /// extranonces of at most 3 bytes); [`ProtocolServer::bind`] checks this up front,
    /// [`ProtocolServer::from_listener`] leaves it to each connection.
    Unserved(String),
    /// The miner sent lines faster than [`EdgeConfig::messages_per_connection`].
    RateLimited,
    /// The TLS layer failed (a failed handshake, a bad record), with its reason.
    Tls(String),
}

/// What a connection needs from the pool, or reports to it, for a server of the dialect of
/// `P`.
#[non_exhaustive]
pub enum ProtocolServerEvent<P: PoolProtocol> {
    /// A connection was accepted.
    Connected {
        /// The connection.
        conn: Connection,
    },
    /// A worker asks to be authorized (Monero: logs in): answer with
    /// [`Connection::authorize_result`].
    Authorize {
        /// The connection.
        conn: Connection,
        /// The request to answer.
        token: AuthorizeToken,
        /// `address` or `address.worker` (Monero: the `login` field).
        username: String,
        /// The password, if sent.
        password: Option<String>,
    },
    /// A share passed the session's checks: validate it and answer with
    /// [`Connection::share_result`].
    Share {
        /// The connection.
        conn: Connection,
        /// The share.
        share: P::Share,
    },
    /// The connection's address was banned (its session closed it for too many bad shares
    /// or lines); new connections from it are refused until `until`. A pool that keeps bans
    /// across restarts stores it here and puts it back with [`EdgeHandle::restore`].
    Banned {
        /// The connection.
        conn: Connection,
        /// When the ban ends.
        until: SystemTime,
    },
    /// A connection ended; answers to its outstanding events are dropped.
    Closed {
        /// The connection.
        conn: Connection,
        /// Why.
        reason: DisconnectReason,
    },
}

/// What a connection of the Stratum v1 [`Server`] needs from the pool, or reports to it.
pub type ServerEvent = ProtocolServerEvent<PoolSession>;

/// What a connection of a [`MoneroServer`] needs from the pool, or reports to it.
pub type MoneroServerEvent = ProtocolServerEvent<MoneroPoolSession>;

/// What a connection of an [`EthServer`] needs from the pool, or reports to it.
pub type EthServerEvent = ProtocolServerEvent<EthPoolSession>;

impl<P: PoolProtocol> ProtocolServerEvent<P> {
    /// The connection the event is about.
    pub fn conn(&self) -> &Connection {
        match self {
            ProtocolServerEvent::Connected { conn }
            | ProtocolServerEvent::Authorize { conn, .. }
            | ProtocolServerEvent::Share { conn, .. }
            | ProtocolServerEvent::Banned { conn, .. }
            | ProtocolServerEvent::Closed { conn, .. } => conn,
        }
    }
}

impl<P: PoolProtocol> std::fmt::Debug for ProtocolServerEvent<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolServerEvent::Connected { conn } => {
                f.debug_struct("Connected").field("conn", conn).finish()
            }
            ProtocolServerEvent::Authorize {
                conn,
                token,
                username,
                password,
            } => f
                .debug_struct("Authorize")
                .field("conn", conn)
                .field("token", token)
                .field("username", username)
                .field("password", password)
                .finish(),
            ProtocolServerEvent::Share { conn, share } => f
                .debug_struct("Share")
                .field("conn", conn)
                .field("share", share)
                .finish(),
            ProtocolServerEvent::Banned { conn, until } => f
                .debug_struct("Banned")
                .field("conn", conn)
                .field("until", until)
                .finish(),
            ProtocolServerEvent::Closed { conn, reason } => f
                .debug_struct("Closed")
                .field("conn", conn)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// A verdict on its way to a connection's task.
#[derive(Debug)]
enum Command {
    Authorize(AuthorizeToken, Result<(), String>),
    Share(ShareToken, ShareVerdict),
    Close,
}

#[derive(Debug, Default)]
struct Mailbox {
    commands: Mutex<Vec<Command>>,
    wake: Notify,
    closed: AtomicBool,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Vec<Command>> {
        // A push or a drain is one step; a panicking holder leaves the list consistent.
        self.commands.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, command: Command) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.lock().push(command);
        self.wake.notify_one();
    }
}

/// A handle on one miner connection: cheap to clone, usable from any thread, and harmless
/// once the connection is gone (answers to a closed connection are dropped).
#[derive(Debug, Clone)]
pub struct Connection {
    id: u64,
    peer: SocketAddr,
    mailbox: Arc<Mailbox>,
}

impl Connection {
    /// A number unique among this server's connections.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The miner's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Answers an [`ServerEvent::Authorize`]: `Ok` authorizes the worker, `Err` refuses it
    /// with the reason.
    pub fn authorize_result(&self, token: AuthorizeToken, result: Result<(), String>) {
        self.mailbox.push(Command::Authorize(token, result));
    }

    /// Answers a [`ServerEvent::Share`]. Accept only once the share is durably recorded.
    pub fn share_result(&self, token: ShareToken, verdict: ShareVerdict) {
        self.mailbox.push(Command::Share(token, verdict));
    }

    /// Closes the connection (after writing what is already queued).
    pub fn close(&self) {
        self.mailbox.push(Command::Close);
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.mailbox.closed.load(Ordering::Acquire)
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.mailbox, &other.mailbox)
    }
}

impl Eq for Connection {}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    refused: AtomicU64,
    refused_banned: AtomicU64,
    refused_too_fast: AtomicU64,
    proxy_failed: AtomicU64,
    rate_limited: AtomicU64,
    bans: AtomicU64,
    live: AtomicUsize,
}

impl ServerStats {
    /// Connections accepted and served so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed on arrival because a limit was reached (every reason below
    /// included).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections refused because their address is banned.
    pub fn refused_banned(&self) -> u64 {
        self.refused_banned.load(Ordering::Relaxed)
    }

    /// Connections refused because their address connects too fast.
    pub fn refused_too_fast(&self) -> u64 {
        self.refused_too_fast.load(Ordering::Relaxed)
    }

    /// Connections closed because their PROXY header was missing, bad or late.
    pub fn proxy_failed(&self) -> u64 {
        self.proxy_failed.load(Ordering::Relaxed)
    }

    /// Connections closed for sending lines too fast.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Addresses banned.
    pub fn bans(&self) -> u64 {
        self.bans.load(Ordering::Relaxed)
    }

    /// Connections being served now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// What every connection task shares.
struct Context<P: PoolProtocol> {
    config: ProtocolServerConfig<P>,
    allocator: Arc<ExtranonceAllocator>,
    events: mpsc::Sender<ProtocolServerEvent<P>>,
    stats: Arc<ServerStats>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    guard: Arc<Mutex<Guard>>,
}

impl<P: PoolProtocol> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("allocator", &self.allocator)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: PoolProtocol> Context<P> {
    fn per_ip(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn guard(&self) -> MutexGuard<'_, Guard> {
        lock_guard(&self.guard)
    }
}

fn lock_guard(guard: &Mutex<Guard>) -> MutexGuard<'_, Guard> {
    guard.lock().unwrap_or_else(|p| p.into_inner())
}

/// A handle on a server's bans, usable from any thread while it runs: an operator's unban,
/// or the bans a pool stored before a restart put back.
#[derive(Debug, Clone)]
pub struct EdgeHandle {
    guard: Arc<Mutex<Guard>>,
}

impl EdgeHandle {
    /// The bans in force, with when each ends.
    pub fn bans(&self) -> Vec<(IpAddr, SystemTime)> {
        lock_guard(&self.guard).bans(now())
    }

    /// Puts back a ban ending at `until` (one already over is ignored).
    pub fn restore(&self, ip: IpAddr, until: SystemTime) {
        lock_guard(&self.guard).restore(ip, until, now(), SystemTime::now());
    }

    /// Lifts the ban on `ip`; `false` when there was none.
    pub fn unban(&self, ip: IpAddr) -> bool {
        lock_guard(&self.guard).unban(ip)
    }

    /// Whether both handles reach the same bans and limits.
    pub fn same_as(&self, other: &EdgeHandle) -> bool {
        Arc::ptr_eq(&self.guard, &other.guard)
    }

    /// The limits in force on every port sharing this edge.
    pub fn limits(&self) -> EdgeConfig {
        lock_guard(&self.guard).config().clone()
    }

    /// Puts new limits in force on every port sharing this edge (see [`Guard::set_limits`]):
    /// connections opened from now on are held to them.
    pub fn set_limits(&self, limits: &EdgeConfig) {
        lock_guard(&self.guard).set_limits(limits);
    }
}

/// Holds a connection's place in the limits until the task ends.
struct Slot<P: PoolProtocol> {
    context: Arc<Context<P>>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl<P: PoolProtocol> Drop for Slot<P> {
    fn drop(&mut self) {
        self.context.stats.live.fetch_sub(1, Ordering::Relaxed);
        if self.context.config.max_connections_per_ip.is_some() {
            let mut map = self.context.per_ip();
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// The listen backlog a server asked the system for: the queue of connections completed by
/// the system and not yet accepted, which absorbs a burst of miners connecting at once (a
/// pool restart, a failover from another pool). A connection that finds it full is dropped
/// or reset by the system before the server ever sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// What the server asked for: its `max_connections`.
    pub requested: u32,
    /// The system's cap (`net.core.somaxconn` on Linux), when it can be read. The system
    /// silently applies the lower of the two.
    pub system_cap: Option<u32>,
}

impl Backlog {
    /// The backlog for `max_connections` on this system.
    pub fn for_connections(max_connections: usize) -> Backlog {
        Backlog {
            requested: u32::try_from(max_connections.max(1)).unwrap_or(u32::MAX),
            system_cap: system_backlog_cap(),
        }
    }

    /// The backlog in force: the lower of the request and the system's cap.
    pub fn effective(&self) -> u32 {
        self.system_cap
            .map_or(self.requested, |cap| cap.min(self.requested))
    }

    /// Whether the system's cap is below the request (an operator should raise
    /// `net.core.somaxconn` to absorb a burst of `requested` connections).
    pub fn is_capped(&self) -> bool {
        self.system_cap.is_some_and(|cap| cap < self.requested)
    }
}

/// The system's cap on a listen backlog, where it can be read.
fn system_backlog_cap() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Binds a listener on the first of `addr`'s addresses that binds, with `backlog`.
async fn listen(addr: impl ToSocketAddrs, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in ::tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As the runtime's own bind does: a restarted pool rebinds at once, without waiting
        // out the old connections' TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// A bound listener serving the dialect of `P`, ready to [`run`](ProtocolServer::run).
pub struct ProtocolServer<P: PoolProtocol> {
    listener: TcpListener,
    context: Arc<Context<P>>,
    jobs: watch::Receiver<Option<Arc<P::Job>>>,
    limit: Arc<Semaphore>,
    backlog: Option<Backlog>,
}

/// The Stratum v1 server: [`PoolSession`]s, [`JobAnnouncement`]s, [`ServerEvent`]s.
pub type Server = ProtocolServer<PoolSession>;

/// The Monero-dialect server (xmrig): [`MoneroPoolSession`]s, [`MoneroJob`]s,
/// [`MoneroServerEvent`]s.
pub type MoneroServer = ProtocolServer<MoneroPoolSession>;

/// The EthereumStratum/1.0.0 server: [`EthPoolSession`]s, [`EthNotify`] jobs,
/// [`EthServerEvent`]s.
pub type EthServer = ProtocolServer<EthPoolSession>;

impl<P: PoolProtocol> std::fmt::Debug for ProtocolServer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolServer")
            .field("listener", &self.listener)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl<P: PoolProtocol> ProtocolServer<P> {
    /// Binds `addr`, with a listen backlog of `max_connections` (see [`Backlog`]). Sessions
    /// draw their extranonces (Monero: their session ids) from `allocator`; events go to
    /// `events`; jobs are read from `jobs`. Fails with [`io::ErrorKind::InvalidInput`] when
    /// the dialect cannot open sessions with `allocator`.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: ProtocolServerConfig<P>,
        allocator: Arc<ExtranonceAllocator>,
        events: mpsc::Sender<ProtocolServerEvent<P>>,
        jobs: watch::Receiver<Option<Arc<P::Job>>>,
    ) -> io::Result<Self> {
        // A session opened and dropped at once: its allocator value, if any, is free again.
        P::open(Arc::clone(&config.pool), Arc::clone(&allocator), now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let backlog = Backlog::for_connections(config.max_connections);
        let listener = listen(addr, backlog.effective()).await?;
        let mut server = ProtocolServer::from_listener(listener, config, allocator, events, jobs);
        server.backlog = Some(backlog);
        Ok(server)
    }

    /// The listen backlog [`bind`](ProtocolServer::bind) asked for; `None` for a listener
    /// bound by the caller ([`from_listener`](ProtocolServer::from_listener)).
    pub fn backlog(&self) -> Option<Backlog> {
        self.backlog
    }

    /// Serves an already bound listener. Unlike [`ProtocolServer::bind`] it does not check
    /// that the dialect can use `allocator`: if not, every connection ends at once as
    /// [`DisconnectReason::Unserved`].
    pub fn from_listener(
        listener: TcpListener,
        config: ProtocolServerConfig<P>,
        allocator: Arc<ExtranonceAllocator>,
        events: mpsc::Sender<ProtocolServerEvent<P>>,
        jobs: watch::Receiver<Option<Arc<P::Job>>>,
    ) -> Self {
        let limit = Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        let guard = Arc::new(Mutex::new(Guard::new(config.edge.clone())));
        ProtocolServer {
            listener,
            context: Arc::new(Context {
                config,
                allocator,
                events,
                stats: Arc::new(ServerStats::default()),
                per_ip: Mutex::new(HashMap::new()),
                guard,
            }),
            jobs,
            limit,
            backlog: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's counters; they stay readable while [`ProtocolServer::run`] runs.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.context.stats)
    }

    /// Makes this server keep its bans and per-address limits in `edge`'s (another server's)
    /// instead of its own, so that several ports of one pool act as one: an address banned
    /// on one is refused on all at once, and its connection rate counts over all of them.
    /// Call before [`ProtocolServer::run`]; `false` (nothing changed) once the server's
    /// state is shared with running tasks.
    pub fn share_edge(&mut self, edge: &EdgeHandle) -> bool {
        match Arc::get_mut(&mut self.context) {
            Some(context) => {
                context.guard = Arc::clone(&edge.guard);
                true
            }
            None => false,
        }
    }

    /// A handle on the server's bans; it stays usable while [`ProtocolServer::run`] runs.
    pub fn edge(&self) -> EdgeHandle {
        EdgeHandle {
            guard: Arc::clone(&self.context.guard),
        }
    }

    /// Accepts and serves connections until `shutdown` completes, then stops accepting, lets
    /// every connection write what it has queued, closes them, and returns once all their
    /// tasks have ended.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let ProtocolServer {
            listener,
            context,
            jobs,
            limit,
            ..
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            ::tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => {
                    let mut next = Some(accepted);
                    // Everything already queued is taken in this one turn: under load this
                    // task waits behind every busy connection's for its next turn, and a
                    // burst must not sit in the backlog (or overflow it) meanwhile.
                    for _ in 0..ACCEPT_BATCH {
                        let Some(accepted) = next.take() else { break };
                        let (stream, peer) = match accepted {
                            Ok(pair) => pair,
                            Err(_) => {
                                // Out of descriptors, or a connection reset before accept:
                                // back off briefly instead of spinning.
                                ::tokio::time::sleep(Duration::from_millis(50)).await;
                                break;
                            }
                        };
                        next = try_accept(&listener);
                        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                            context.stats.refused.fetch_add(1, Ordering::Relaxed);
                            drop(stream);
                            continue;
                        };
                        // Unique in the process, not just this server: a pool's ports share
                        // one engine and one activity tracker.
                        let next_id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                        // Nagle would hold back the small replies miners wait for.
                        stream.set_nodelay(true).ok();
                        let (jobs, stop) = (jobs.clone(), stop_rx.clone());
                        if context.config.edge.proxy_protocol {
                            // The real address comes with the header, on the connection's own
                            // task: a slow balancer must not hold up the accept loop.
                            let context = Arc::clone(&context);
                            tasks.spawn(async move {
                                let opened = open_proxied(stream, peer, &context).await;
                                let Some((stream, peer, early)) = opened else { return };
                                let Some(slot) = admit(&context, permit, peer.ip()) else {
                                    return;
                                };
                                let Some(link) = link_for(stream, &context) else { return };
                                serve(link, connection(next_id, peer), slot, early, jobs, stop)
                                    .await;
                            });
                        } else {
                            let Some(slot) = admit(&context, permit, peer.ip()) else {
                                drop(stream);
                                continue;
                            };
                            let Some(link) = link_for(stream, &context) else { continue };
                            let conn = connection(next_id, peer);
                            tasks.spawn(serve(link, conn, slot, Vec::new(), jobs, stop));
                        }
                    }
                }
            }
        }
        drop(listener);
        stop_tx.send_replace(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// The most connections taken from the backlog in one turn of the accept loop, so that
/// shutdown and finished tasks are still looked at during a long burst.
const ACCEPT_BATCH: usize = 256;

/// The next connection already waiting in the backlog, without waiting for one.
fn try_accept(listener: &TcpListener) -> Option<io::Result<(TcpStream, SocketAddr)>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match listener.poll_accept(&mut cx) {
        std::task::Poll::Ready(result) => Some(result),
        std::task::Poll::Pending => None,
    }
}

/// The connection's link: TLS when the server speaks it.
fn link_for<P: PoolProtocol>(stream: TcpStream, context: &Context<P>) -> Option<Link> {
    #[cfg(feature = "tls")]
    if let Some(config) = &context.config.tls {
        return Link::tls(stream, Arc::clone(config)).ok();
    }
    let _ = context;
    Some(Link::plain(stream))
}

fn connection(id: u64, peer: SocketAddr) -> Connection {
    Connection {
        id,
        peer,
        mailbox: Arc::new(Mailbox::default()),
    }
}

/// Reads the PROXY header a connection must open with: returns the stream, the client's
/// address (the connection's own when the header names none) and the bytes that came after
/// the header; `None`, counted, when the header is missing, bad or late.
async fn open_proxied<P: PoolProtocol>(
    mut stream: TcpStream,
    peer: SocketAddr,
    context: &Context<P>,
) -> Option<(TcpStream, SocketAddr, Vec<u8>)> {
    let limit = context.config.edge.proxy_timeout;
    let read = timeout(limit, async {
        let mut head = Vec::new();
        loop {
            match parse_proxy_header(&head) {
                Ok(ProxyParse::Header { source, length }) => {
                    let early = head.get(length..).unwrap_or_default().to_vec();
                    return Ok((source.unwrap_or(peer), early));
                }
                Ok(ProxyParse::Incomplete) => {}
                Err(e) => return Err(Some(e)),
            }
            stream.readable().await.map_err(|_| None)?;
            let mut buf = [0u8; 512];
            // Never more than a header could be: the miner's own bytes wait in the socket.
            let room = MAX_PROXY_HEADER
                .saturating_sub(head.len())
                .clamp(1, buf.len());
            match stream.try_read(buf.get_mut(..room).unwrap_or_default()) {
                Ok(0) => return Err(None),
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(None),
            }
            if head.len() >= MAX_PROXY_HEADER {
                return Err(Some(ProxyError::TooLong));
            }
        }
    })
    .await;
    match read {
        Ok(Ok((source, early))) => Some((stream, source, early)),
        Ok(Err(_)) | Err(_) => {
            context.stats.proxy_failed.fetch_add(1, Ordering::Relaxed);
            context.stats.refused.fetch_add(1, Ordering::Relaxed);
            stream.shutdown().await.ok();
            None
        }
    }
}

/// Takes a place for a new connection from `ip` (its share of the server's limit already
/// held by `permit`), or `None`, counted, when the edge or the per-address limit refuses it.
fn admit<P: PoolProtocol>(
    context: &Arc<Context<P>>,
    permit: OwnedSemaphorePermit,
    ip: IpAddr,
) -> Option<Slot<P>> {
    let refused = |counter: Option<&AtomicU64>| {
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        context.stats.refused.fetch_add(1, Ordering::Relaxed);
        None
    };
    match context.guard().admit(ip, now()) {
        Ok(()) => {}
        Err(EdgeRefusal::Banned { .. }) => return refused(Some(&context.stats.refused_banned)),
        Err(_) => return refused(Some(&context.stats.refused_too_fast)),
    }
    if let Some(max) = context.config.max_connections_per_ip {
        let mut map = context.per_ip();
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            drop(map);
            return refused(None);
        }
        *n += 1;
    }
    context.stats.accepted.fetch_add(1, Ordering::Relaxed);
    context.stats.live.fetch_add(1, Ordering::Relaxed);
    Some(Slot {
        context: Arc::clone(context),
        ip,
        _permit: permit,
    })
}

/// The id of the next connection any server accepts.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Reads what is available into the session. Synchronous, so the read buffer lives on the
/// stack only for the call and is never part of an idle connection's state. `early` holds
/// bytes read before the session (those behind a PROXY header) instead.
fn read_into<P: PoolProtocol>(
    link: &mut Link,
    early: Option<&[u8]>,
    input: &mut Input,
    session: &mut P,
) -> Result<(), DisconnectReason> {
    // The session's reason outlives the link's error type.
    let mut stopped = None;
    let mut sink = |data: &[u8]| {
        take_bytes(data, input, session).map_err(|reason| {
            stopped = Some(reason);
            LinkError::Closed
        })
    };
    let read = match early {
        Some(raw) => link.take_early(raw, &mut sink),
        None => link.read(&mut sink),
    };
    match (read, stopped) {
        (_, Some(reason)) => Err(reason),
        (Ok(()), None) => Ok(()),
        (Err(LinkError::Closed), None) => Err(DisconnectReason::PeerClosed),
        (Err(LinkError::Io(kind)), None) => Err(DisconnectReason::Io(kind)),
        (Err(LinkError::Tls(reason)), None) => Err(DisconnectReason::Tls(reason)),
    }
}

/// What a connection keeps of its input between reads: the partial line, whether its
/// opening was looked at, and its line budget.
struct Input {
    lines: LineBuffer,
    sniffed: bool,
    budget: Option<(TokenBucket, crate::edge::Rate)>,
    exempt: bool,
}

/// Hands bytes the miner sent to the session, line by line.
fn take_bytes<P: PoolProtocol>(
    data: &[u8],
    input: &mut Input,
    session: &mut P,
) -> Result<(), DisconnectReason> {
    let Input {
        lines,
        sniffed,
        budget,
        exempt,
    } = input;
    if data.is_empty() {
        return Ok(());
    }
    let at = now();
    if P::FRAMING == Framing::Binary {
        let messages = session.handle_bytes(data, at);
        if let (Some((bucket, rate)), false) = (budget.as_mut(), *exempt) {
            for _ in 0..messages {
                if !bucket.take(*rate, at) {
                    return Err(DisconnectReason::RateLimited);
                }
            }
        }
        return Ok(());
    }
    if !*sniffed {
        // A Stratum miner opens with `{`. A TLS ClientHello, an HTTP request or a PROXY header
        // need not contain a newline at all: judge them by their first byte instead of waiting
        // out the subscribe timeout for a line that never ends.
        if let Some(first) = data.iter().find(|b| !b.is_ascii_whitespace()) {
            *sniffed = true;
            if *first != b'{' {
                session.handle_line(data, at);
                return Ok(());
            }
        }
    }
    lines
        .feed(data)
        .map_err(|_| DisconnectReason::LineTooLong)?;
    while let Some(line) = lines.next_line() {
        if let (Some((bucket, rate)), false) = (budget.as_mut(), *exempt) {
            if !bucket.take(*rate, at) {
                return Err(DisconnectReason::RateLimited);
            }
        }
        session.handle_line(line, at);
        if session.is_closed() {
            break;
        }
    }
    Ok(())
}

/// Writes everything the session has queued, as one write.
async fn flush<P: PoolProtocol>(
    link: &mut Link,
    session: &mut P,
    limit: Duration,
) -> Result<(), DisconnectReason> {
    let mut out = Vec::new();
    while let Some(output) = session.poll_output() {
        out.extend_from_slice(output.as_ref());
    }
    if out.is_empty() && !link.wants_write() {
        return Ok(());
    }
    match link.write(&out, limit).await {
        Ok(()) => Ok(()),
        Err(WriteError::Io(kind)) => Err(DisconnectReason::Io(kind)),
        Err(WriteError::TimedOut) => Err(DisconnectReason::WriteTimeout),
    }
}

/// Sends `job` to the session, tailored to the connection and its first worker when the
/// server tailors jobs.
fn send_job<P: PoolProtocol>(
    session: &mut P,
    job: &Arc<P::Job>,
    conn: &Connection,
    config: &ProtocolServerConfig<P>,
) {
    let tailored = config.tailor.as_ref().and_then(|tailor| {
        let worker = session.worker()?.to_owned();
        tailor.tailor_for(job, &worker, conn)
    });
    session.send_job(tailored.as_ref().unwrap_or(job), now());
}

/// Applies the pool's queued verdicts.
fn apply_commands<P: PoolProtocol>(conn: &Connection, session: &mut P) {
    let commands = std::mem::take(&mut *conn.mailbox.lock());
    for command in commands {
        match command {
            Command::Authorize(token, result) => session.authorize_result(token, result),
            Command::Share(token, verdict) => session.share_result(token, verdict),
            Command::Close => session.close(CloseReason::Requested),
        }
    }
}

/// One connection, from accept to close.
async fn serve<P: PoolProtocol>(
    mut stream: Link,
    conn: Connection,
    slot: Slot<P>,
    early: Vec<u8>,
    mut jobs: watch::Receiver<Option<Arc<P::Job>>>,
    mut stop: watch::Receiver<bool>,
) {
    let context = Arc::clone(&slot.context);
    let events = &context.events;
    let config = &context.config;
    let opened = P::open(
        Arc::clone(&config.pool),
        Arc::clone(&context.allocator),
        now(),
    );
    let mut session = match opened {
        Ok(session) => session,
        Err(e) => {
            let connected = ProtocolServerEvent::Connected { conn: conn.clone() };
            conn.mailbox.closed.store(true, Ordering::Release);
            if matches!(
                or_stop(events.send(connected), &mut stop).await,
                Some(Ok(()))
            ) {
                let reason = DisconnectReason::Unserved(e.to_string());
                let closed = ProtocolServerEvent::Closed { conn, reason };
                or_stop(events.send(closed), &mut stop).await;
            }
            stream.shutdown().await;
            drop(slot);
            return;
        }
    };
    // The shared edge's limits, which a reload may have changed since the server started.
    let edge = context.guard().config().clone();
    let mut input = Input {
        lines: LineBuffer::new(config.max_line),
        sniffed: false,
        budget: edge
            .messages_per_connection
            .map(|rate| (TokenBucket::new(rate, now()), rate)),
        exempt: edge.exempt_loopback && conn.peer.ip().is_loopback(),
    };
    let mut jobs_open = true;
    // Whether the session has had the current job since it became ready for work.
    let mut working = false;

    // Every wait on the pool or on the miner gives way to a shutdown, so that a pool that
    // stopped reading events or a miner that stopped reading lines cannot hold it up.
    let reason = 'conn: {
        let connected = ProtocolServerEvent::Connected { conn: conn.clone() };
        if !matches!(
            or_stop(events.send(connected), &mut stop).await,
            Some(Ok(()))
        ) {
            break 'conn DisconnectReason::Shutdown;
        }
        // What came in behind a PROXY header.
        if !early.is_empty() {
            if let Err(reason) = read_into(&mut stream, Some(&early), &mut input, &mut session) {
                break 'conn reason;
            }
        }
        loop {
            match or_stop(
                flush(&mut stream, &mut session, config.write_timeout),
                &mut stop,
            )
            .await
            {
                Some(Ok(())) => {}
                Some(Err(reason)) => break 'conn reason,
                None => break 'conn DisconnectReason::Shutdown,
            }
            let mut closed = None;
            while let Some(event) = session.poll_event() {
                let event = match event {
                    SessionEvent::Authorize {
                        token,
                        username,
                        password,
                    } => ProtocolServerEvent::Authorize {
                        conn: conn.clone(),
                        token,
                        username,
                        password,
                    },
                    SessionEvent::Share(share) => ProtocolServerEvent::Share {
                        conn: conn.clone(),
                        share,
                    },
                    SessionEvent::Closed(reason) => {
                        closed = Some(reason);
                        continue;
                    }
                };
                if !matches!(or_stop(events.send(event), &mut stop).await, Some(Ok(()))) {
                    break 'conn DisconnectReason::Shutdown;
                }
            }
            if let Some(reason) = closed {
                // The last replies (a ban's final error, say) still go out.
                let flushed = or_stop(
                    flush(&mut stream, &mut session, config.write_timeout),
                    &mut stop,
                );
                if flushed.await.is_none() {
                    break 'conn DisconnectReason::Shutdown;
                }
                break 'conn DisconnectReason::Session(reason);
            }
            if !working && session.wants_jobs() {
                working = true;
                let current = jobs.borrow_and_update().clone();
                if let Some(job) = current {
                    send_job(&mut session, &job, &conn, config);
                    continue;
                }
            }
            let deadline = session.poll_timeout().map(Instant::from_std);
            ::tokio::select! {
                biased;
                _ = stop.changed() => break 'conn DisconnectReason::Shutdown,
                () = conn.mailbox.wake.notified() => apply_commands(&conn, &mut session),
                changed = jobs.changed(), if working && jobs_open => match changed {
                    Ok(()) => {
                        let current = jobs.borrow_and_update().clone();
                        if let Some(job) = current {
                            send_job(&mut session, &job, &conn, config);
                        }
                    }
                    Err(_) => jobs_open = false,
                },
                ready = stream.readable() => {
                    if let Err(e) = ready {
                        break 'conn DisconnectReason::Io(e.kind());
                    }
                    if let Err(reason) = read_into(&mut stream, None, &mut input, &mut session) {
                        break 'conn reason;
                    }
                }
                () = sleep_or_never(deadline) => session.handle_timeout(now()),
            }
        }
    };

    conn.mailbox.closed.store(true, Ordering::Release);
    conn.mailbox.lock().clear();
    match &reason {
        DisconnectReason::RateLimited => {
            context.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        DisconnectReason::Session(CloseReason::Banned) => {
            let until = context
                .guard()
                .ban(conn.peer.ip(), now(), SystemTime::now());
            if let Some(until) = until {
                context.stats.bans.fetch_add(1, Ordering::Relaxed);
                let banned = ProtocolServerEvent::Banned {
                    conn: conn.clone(),
                    until,
                };
                or_stop(events.send(banned), &mut stop).await;
            }
        }
        _ => {}
    }
    if reason == DisconnectReason::Shutdown {
        // Queued replies go out before the close, briefly; the pool may no longer be reading
        // events. (A write cut short by the shutdown leaves the miner a partial line, which
        // it discards with the connection.)
        let limit = config.write_timeout.min(SHUTDOWN_FLUSH);
        flush(&mut stream, &mut session, limit).await.ok();
        events
            .try_send(ProtocolServerEvent::Closed { conn, reason })
            .ok();
    } else if or_stop(
        events.send(ProtocolServerEvent::Closed {
            conn: conn.clone(),
            reason: reason.clone(),
        }),
        &mut stop,
    )
    .await
    .is_none()
    {
        events
            .try_send(ProtocolServerEvent::Closed { conn, reason })
            .ok();
    }
    stream.shutdown().await;
    drop(slot);
}

/// How long a connection may take to write its last lines when the server shuts down.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// Runs `fut` unless the server is told to stop first (`None`).
async fn or_stop<T>(fut: impl Future<Output = T>, stop: &mut watch::Receiver<bool>) -> Option<T> {
    ::tokio::select! {
        biased;
        _ = stop.changed() => None,
        out = fut => Some(out),
    }
}

async fn sleep_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
