//! A [`Node`] on TCP with tokio: it listens (when it can) and keeps dialling its configured
//! peers, runs the encrypted handshake on every connection, moves messages between sockets and
//! the node, ticks its clock, and bans peers the node reports.
//!
//! Works with outbound connections alone (behind NAT): a node with no `listen` address still
//! syncs and relays through the peers it dials.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::chain::Added;
use crate::error::ShareError;
use crate::message::Message;
use crate::node::{Node, NodeEvent, PeerId, PowPolicy};
use crate::secure::{frame, Channel, FrameReader, Handshake, NodeKey, Role, Step};
use crate::share::{Share, ShareId};

/// How the node meets the network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Where to accept peers; `None` for outbound only.
    pub listen: Option<SocketAddr>,
    /// Peers to dial and keep dialling (`host:port`).
    pub peers: Vec<String>,
    /// Accept inbound peers only from the configured peers' addresses: a private federation.
    pub trusted_only: bool,
    /// The most inbound peers at once.
    pub max_inbound: usize,
    /// The handshake proof of work, in leading zero bits.
    pub pow_bits: u8,
    /// How long a misbehaving peer's address stays banned.
    pub ban: Duration,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
    /// How many nodes learnt from peers (beyond `peers`) this node dials and keeps; none
    /// with `trusted_only`.
    pub max_discovered: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: None,
            peers: Vec::new(),
            trusted_only: false,
            max_inbound: 64,
            pow_bits: 16,
            ban: Duration::from_secs(600),
            handshake_timeout: Duration::from_secs(10),
            max_discovered: 8,
        }
    }
}

/// A connected peer as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The node's number for it.
    pub id: PeerId,
    /// Its address.
    pub addr: SocketAddr,
    /// Its public key.
    pub key: [u8; 32],
    /// Whether it dialled us.
    pub inbound: bool,
}

type Inspect = Box<dyn FnOnce(&Node) + Send>;

enum Command {
    Submit(Box<Share>, oneshot::Sender<Result<Added, ShareError>>),
    Inspect(Inspect),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    RelayBlock(Vec<u8>),
}

enum Inbound {
    Connected {
        info: PeerInfo,
        tx: mpsc::Sender<Message>,
        abort: AbortHandle,
    },
    Message(PeerId, Message),
    /// A message whose shares' proof of work the connection has checked.
    Checked(PeerId, Message),
    /// A message with a share whose proof of work failed, dropped by the connection.
    BadWork(PeerId, ShareError),
    Closed(PeerId),
    /// A dial to a learnt address ended: it failed (`reached` false: no connection or no
    /// handshake) or its connection closed.
    Dialled {
        addr: SocketAddr,
        reached: bool,
    },
}

struct Shared {
    next_peer: AtomicU64,
    bans: Mutex<HashMap<IpAddr, Instant>>,
    inbound: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Shares whose work the connections have checked.
    checked: Mutex<Checked>,
    /// The events' first receiver, subscribed before the node's task began, so that whoever
    /// takes it sees what the node did before anyone could subscribe (a chain loaded from
    /// storage is synced at the first tick).
    first_events: Mutex<Option<broadcast::Receiver<NodeEvent>>>,
}

impl Shared {
    fn banned(&self, ip: IpAddr) -> bool {
        let mut bans = self.bans.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        bans.retain(|_, until| *until > now);
        bans.contains_key(&ip)
    }

    fn track(&self, handle: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }
}

/// A running node on the network.
#[derive(Debug, Clone)]
pub struct P2pService {
    commands: mpsc::Sender<Command>,
    /// The node's proof-of-work check, run on a blocking thread before a share reaches it.
    pow: PowPolicy,
    events: broadcast::Sender<NodeEvent>,
    local_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// Why the service could not start or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The service stopped.
    #[error("the p2p service has stopped")]
    Stopped,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl P2pService {
    /// Starts the node on the network. Must run inside a tokio runtime.
    pub async fn start(
        mut node: Node,
        key: NodeKey,
        config: NetConfig,
    ) -> Result<P2pService, NetError> {
        let pow = node.pow().clone();
        let listener = match config.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| NetError::Listen { addr, source })?,
            ),
            None => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(addr) = local_addr {
            node.set_listen_port(addr.port());
        }
        let configured: HashSet<SocketAddr> = resolve_addrs(&config.peers).await;
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (in_tx, in_rx) = mpsc::channel(4096);
        let (ev_tx, first_events) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            next_peer: AtomicU64::new(1),
            bans: Mutex::new(HashMap::new()),
            inbound: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            checked: Mutex::new(Checked::default()),
            first_events: Mutex::new(Some(first_events)),
        });
        let chain_id = *node.chain().consensus_id();
        let ctx = Arc::new(ConnCtx {
            key,
            chain_id,
            config: config.clone(),
            inbound: in_tx,
            shared: Arc::clone(&shared),
            pow: pow.clone(),
        });

        let actor = tokio::spawn(run_node(
            node,
            cmd_rx,
            in_rx,
            ev_tx.clone(),
            Arc::clone(&ctx),
            configured,
        ));
        shared.track(actor.abort_handle());

        if let Some(listener) = listener {
            let trusted = resolve_ips(&config.peers).await;
            let ctx = Arc::clone(&ctx);
            let task = tokio::spawn(async move {
                loop {
                    let Ok((stream, addr)) = listener.accept().await else {
                        continue;
                    };
                    if ctx.shared.banned(addr.ip())
                        || (ctx.config.trusted_only && !trusted.contains(&addr.ip()))
                    {
                        continue;
                    }
                    if ctx.shared.inbound.load(Ordering::Relaxed) >= ctx.config.max_inbound as u64 {
                        continue;
                    }
                    let c = Arc::clone(&ctx);
                    let handle = tokio::spawn(async move {
                        c.shared.inbound.fetch_add(1, Ordering::Relaxed);
                        connection(stream, addr, Role::Responder, Arc::clone(&c)).await;
                        c.shared.inbound.fetch_sub(1, Ordering::Relaxed);
                    });
                    ctx.shared.track(handle.abort_handle());
                }
            });
            shared.track(task.abort_handle());
        }
        for peer in config.peers.clone() {
            let ctx = Arc::clone(&ctx);
            let task = tokio::spawn(async move {
                let mut backoff = Duration::from_millis(250);
                loop {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&peer))
                            .await
                    {
                        if let Ok(addr) = stream.peer_addr() {
                            if !ctx.shared.banned(addr.ip()) {
                                let began = Instant::now();
                                connection(stream, addr, Role::Initiator, Arc::clone(&ctx)).await;
                                // A connection closed at once (a twin of one the peer keeps,
                                // a refusal) is not a reason to dial again at once.
                                if began.elapsed() >= Duration::from_secs(10) {
                                    backoff = Duration::from_millis(250);
                                }
                            }
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            });
            shared.track(task.abort_handle());
        }
        Ok(P2pService {
            commands: cmd_tx,
            pow,
            events: ev_tx,
            local_addr,
            shared,
        })
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The node's events: new tips (new work), sync, misbehaving peers.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// The node's events since it started, its sync included, for the one caller that
    /// drives work from them; `None` once taken. [`P2pService::events`] sees only what
    /// happens after its call. Until it is taken only the newest 1024 events wait in it; the
    /// first read then reports any older ones as lagged.
    pub fn events_since_start(&self) -> Option<broadcast::Receiver<NodeEvent>> {
        self.shared
            .first_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Adds a share this node's miners found and announces it. Its proof of work is checked
    /// on a blocking thread first, so the node's task never waits on a hash.
    pub async fn submit(&self, share: Share) -> Result<Result<Added, ShareError>, NetError> {
        let share = match &self.pow {
            PowPolicy::Verify(pow) => {
                let pow = Arc::clone(pow);
                let checked = tokio::task::spawn_blocking(move || {
                    share.check_pow(pow.as_ref()).map(|()| share)
                })
                .await
                .map_err(|_| NetError::Stopped)?;
                match checked {
                    Ok(share) => share,
                    Err(e) => return Ok(Err(e)),
                }
            }
            PowPolicy::Simulated => share,
        };
        self.submit_verified(share).await
    }

    /// Adds a share whose proof of work the caller has checked against its target (a pool's
    /// engine has hashed it already) and announces it.
    pub async fn submit_verified(
        &self,
        share: Share,
    ) -> Result<Result<Added, ShareError>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Submit(Box::new(share), tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Runs `f` on the node (its chain, its sync state) and returns what it returns.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> R + Send + 'static,
    ) -> Result<R, NetError> {
        let (tx, rx) = oneshot::channel();
        let job: Inspect = Box::new(move |node: &Node| {
            let _ = tx.send(f(node));
        });
        self.commands
            .send(Command::Inspect(job))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Sends a main-chain block this node's miners found to every peer, ahead of its share,
    /// so each hands it to its own main-chain node.
    pub async fn relay_block(&self, raw: Vec<u8>) -> Result<(), NetError> {
        self.commands
            .send(Command::RelayBlock(raw))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Peers(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Stops every task: the listener, the dialers, the connections and the node.
    pub fn shutdown(&self) {
        let tasks = self
            .shared
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            t.abort();
        }
    }
}

async fn resolve_addrs(peers: &[String]) -> HashSet<SocketAddr> {
    let mut out = HashSet::new();
    for p in peers {
        if let Ok(addrs) = tokio::net::lookup_host(p.as_str()).await {
            out.extend(addrs);
        }
    }
    out
}

async fn resolve_ips(peers: &[String]) -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    for p in peers {
        if let Ok(addrs) = tokio::net::lookup_host(p.as_str()).await {
            out.extend(addrs.map(|a| a.ip()));
        }
    }
    out
}

struct PeerSlot {
    info: PeerInfo,
    tx: mpsc::Sender<Message>,
    abort: AbortHandle,
}

/// Every fifth tick, the node looks for more peers among the addresses it learnt.
const DISCOVERY_TICKS: u32 = 5;

async fn run_node(
    mut node: Node,
    mut commands: mpsc::Receiver<Command>,
    mut inbound: mpsc::Receiver<Inbound>,
    events: broadcast::Sender<NodeEvent>,
    ctx: Arc<ConnCtx>,
    configured: HashSet<SocketAddr>,
) {
    let shared = Arc::clone(&ctx.shared);
    let ban = ctx.config.ban;
    let own_key = ctx.key.public();
    let mut peers: HashMap<PeerId, PeerSlot> = HashMap::new();
    // Learnt addresses being dialled or connected through discovery.
    let mut discovered: HashSet<SocketAddr> = HashSet::new();
    let mut ticks = 0u32;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => return,
                Some(Command::Submit(share, reply)) => {
                    let _ = reply.send(node.submit_verified(*share, now_ms()));
                }
                Some(Command::Inspect(f)) => f(&node),
                Some(Command::Peers(reply)) => {
                    let mut list: Vec<PeerInfo> = peers.values().map(|p| p.info.clone()).collect();
                    list.sort_by_key(|p| p.id);
                    let _ = reply.send(list);
                }
                Some(Command::RelayBlock(raw)) => node.relay_block(raw),
            },
            msg = inbound.recv() => match msg {
                None => return,
                Some(Inbound::Connected { info, tx, abort }) => {
                    let id = info.id;
                    if info.key == own_key {
                        // This node itself: its own address came back in a peer list.
                        node.forget_address(&info.addr);
                        abort.abort();
                        continue;
                    }
                    // Two connections to one node (both dialled, or an address learnt for a
                    // node connected already): both ends keep the one dialled by the lower
                    // key, so they keep the same one.
                    let twin = peers
                        .iter()
                        .find(|(_, p)| p.info.key == info.key)
                        .map(|(id, p)| (*id, p.info.inbound));
                    if let Some((old, old_inbound)) = twin {
                        if old_inbound != info.inbound {
                            let keep_outbound = own_key < info.key;
                            if old_inbound != keep_outbound {
                                abort.abort();
                                continue;
                            }
                            if let Some(slot) = peers.remove(&old) {
                                slot.abort.abort();
                                node.on_disconnect(old);
                            }
                        } else if !info.inbound {
                            // Both dialled from here: the dialler closes the second, and the
                            // other end, which may have seen them finish in the other order,
                            // keeps both until that close reaches it.
                            abort.abort();
                            continue;
                        }
                    }
                    let (addr, dialled) = (info.addr, !info.inbound);
                    peers.insert(id, PeerSlot { info, tx, abort });
                    node.on_connect_from(id, now_ms(), addr, dialled);
                }
                Some(Inbound::Message(peer, msg)) => {
                    if peers.contains_key(&peer) {
                        node.on_message(peer, msg, now_ms());
                    }
                }
                Some(Inbound::Checked(peer, msg)) => {
                    if peers.contains_key(&peer) {
                        node.on_checked_message(peer, msg, now_ms());
                    }
                }
                Some(Inbound::BadWork(peer, error)) => {
                    if peers.contains_key(&peer) {
                        node.on_bad_work(peer, &error);
                    }
                }
                Some(Inbound::Closed(peer)) => {
                    if peers.remove(&peer).is_some() {
                        node.on_disconnect(peer);
                    }
                }
                Some(Inbound::Dialled { addr, reached }) => {
                    discovered.remove(&addr);
                    if !reached {
                        node.forget_address(&addr);
                    }
                }
            },
            _ = tick.tick() => {
                node.handle_timeout(now_ms());
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(DISCOVERY_TICKS) && !ctx.config.trusted_only {
                    discover(&node, &ctx, &configured, &mut discovered);
                }
            }
        }
        while let Some((peer, msg)) = node.poll_transmit() {
            let slow = match peers.get(&peer) {
                Some(slot) => slot.tx.try_send(msg).is_err(),
                None => false,
            };
            if slow {
                // A peer that cannot keep up is dropped rather than buffered without bound.
                if let Some(slot) = peers.remove(&peer) {
                    slot.abort.abort();
                    node.on_disconnect(peer);
                }
            }
        }
        while let Some(event) = node.poll_event() {
            if let NodeEvent::Misbehaved { peer, .. } = &event {
                if let Some(slot) = peers.remove(peer) {
                    if let Ok(mut bans) = shared.bans.lock() {
                        bans.insert(slot.info.addr.ip(), Instant::now() + ban);
                    }
                    slot.abort.abort();
                    node.on_disconnect(*peer);
                }
            }
            let _ = events.send(event);
        }
    }
}

/// Dials learnt addresses until `max_discovered` of them are dialled or connected. A dial
/// that fails forgets its address; one that connects stays until its connection closes.
fn discover(
    node: &Node,
    ctx: &Arc<ConnCtx>,
    configured: &HashSet<SocketAddr>,
    discovered: &mut HashSet<SocketAddr>,
) {
    let room = ctx.config.max_discovered.saturating_sub(discovered.len());
    if room == 0 {
        return;
    }
    let candidates = node.dial_candidates(room + discovered.len() + configured.len());
    let picked: Vec<SocketAddr> = candidates
        .into_iter()
        .filter(|a| !configured.contains(a) && !discovered.contains(a))
        .filter(|a| !ctx.shared.banned(a.ip()))
        .take(room)
        .collect();
    for addr in picked {
        discovered.insert(addr);
        let c = Arc::clone(ctx);
        let task = tokio::spawn(async move {
            let dialled =
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
            // Reached means a node of this chain answered: an address that takes TCP but
            // not the handshake (another service, another chain) is forgotten too.
            let reached = match dialled {
                Ok(Ok(stream)) => connection(stream, addr, Role::Initiator, Arc::clone(&c)).await,
                _ => false,
            };
            let _ = c.inbound.send(Inbound::Dialled { addr, reached }).await;
        });
        ctx.shared.track(task.abort_handle());
    }
}

struct ConnCtx {
    key: NodeKey,
    chain_id: crate::params::ConsensusId,
    config: NetConfig,
    inbound: mpsc::Sender<Inbound>,
    shared: Arc<Shared>,
    /// The node's proof-of-work check, run by each connection on a blocking thread.
    pow: PowPolicy,
}

/// How many share ids whose work was found good are remembered, so a share announced by
/// several peers is hashed once.
const CHECKED_CAP: usize = 8_192;

/// What a proof-of-work check depends on: the hashed bytes (named by the share's id) and the
/// target (the share's bits). A share with the same block but easier bits is checked again.
type WorkKey = (ShareId, u32);

fn work_key(share: &Share) -> WorkKey {
    (share.id(), share.info.bits.to_consensus())
}

/// Shares whose proof of work a connection has found good, oldest first.
#[derive(Default)]
struct Checked {
    ids: HashSet<WorkKey>,
    order: std::collections::VecDeque<WorkKey>,
}

impl Checked {
    fn insert(&mut self, id: WorkKey) {
        if self.ids.insert(id) {
            self.order.push_back(id);
            if self.order.len() > CHECKED_CAP {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// Hashes the shares `msg` carries (those not found good before) on a blocking thread, off
/// the node's task: a RandomX hash takes milliseconds, and a sync brings thousands. Returns
/// `Ok(true)` when every one meets its target, `Ok(false)` when the node is to check them
/// itself (it trusts no work), and the first failure otherwise: the message is dropped and its
/// sender reported, so a bad share cannot make the node hash the rest.
async fn check_work(msg: &Message, ctx: &ConnCtx) -> Result<bool, ShareError> {
    let PowPolicy::Verify(pow) = &ctx.pow else {
        return Ok(false);
    };
    let shares: Vec<Share> = {
        let checked = ctx.shared.checked.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<&Share> = match msg {
            Message::Announce(share) => vec![share.as_ref()],
            Message::Shares(shares) => shares.iter().collect(),
            _ => return Ok(false),
        };
        all.into_iter()
            .filter(|s| !checked.ids.contains(&work_key(s)))
            .cloned()
            .collect()
    };
    let pow = Arc::clone(pow);
    let good = tokio::task::spawn_blocking(move || {
        shares
            .iter()
            .map(|s| s.check_pow(pow.as_ref()).map(|()| work_key(s)))
            .collect::<Result<Vec<WorkKey>, _>>()
    })
    .await;
    match good {
        Ok(Ok(keys)) => {
            let mut checked = ctx.shared.checked.lock().unwrap_or_else(|e| e.into_inner());
            for key in keys {
                checked.insert(key);
            }
            Ok(true)
        }
        Ok(Err(e)) => Err(e),
        // The hashing thread is gone (the runtime is stopping): the node checks instead.
        Err(_) => Ok(false),
    }
}

async fn read_frame(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    reader: &mut FrameReader,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(f) = reader.next_frame() {
            return Some(f);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => reader.push(&buf[..n]),
        }
    }
}

async fn handshake(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    reader: &mut FrameReader,
    role: Role,
    ctx: &ConnCtx,
) -> Option<Channel> {
    let mut hs = Handshake::new(role, &ctx.chain_id, &ctx.key, ctx.config.pow_bits).ok()?;
    if let Some(first) = hs.start().ok()? {
        write.write_all(&frame(&first)).await.ok()?;
    }
    let mut state = Some(hs);
    while let Some(hs) = state.take() {
        let payload = read_frame(read, reader).await?;
        // The proof of work runs here, off the node's task.
        let (next, step) = tokio::task::spawn_blocking(move || hs.on_frame(&payload))
            .await
            .ok()?
            .ok()?;
        match step {
            Step::Send(bytes) => {
                write.write_all(&frame(&bytes)).await.ok()?;
                state = next;
            }
            Step::Done(last, channel) => {
                if let Some(bytes) = last {
                    write.write_all(&frame(&bytes)).await.ok()?;
                }
                return Some(*channel);
            }
        }
    }
    None
}

/// Runs one connection to its end; `false` when the handshake did not complete.
async fn connection(stream: TcpStream, addr: SocketAddr, role: Role, ctx: Arc<ConnCtx>) -> bool {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut reader = FrameReader::default();
    let opened = tokio::time::timeout(
        ctx.config.handshake_timeout,
        handshake(&mut read, &mut write, &mut reader, role, &ctx),
    )
    .await;
    let Ok(Some(channel)) = opened else {
        return false;
    };
    let id = ctx.shared.next_peer.fetch_add(1, Ordering::Relaxed);
    let key = channel.remote_key();
    let channel = Arc::new(Mutex::new(channel));
    let (tx, mut rx) = mpsc::channel::<Message>(1024);

    let writer_channel = Arc::clone(&channel);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let frames = match writer_channel.lock() {
                Ok(mut c) => c.seal(&msg),
                Err(_) => return,
            };
            let Ok(frames) = frames else { return };
            for f in frames {
                if write.write_all(&frame(&f)).await.is_err() {
                    return;
                }
            }
        }
    });
    let reader_inbound = ctx.inbound.clone();
    let reader_ctx = Arc::clone(&ctx);
    let reader_task = tokio::spawn(async move {
        while let Some(payload) = read_frame(&mut read, &mut reader).await {
            let opened = match channel.lock() {
                Ok(mut c) => c.open_frame(&payload),
                Err(_) => return,
            };
            match opened {
                Ok(Some(msg)) => {
                    let carries_shares = matches!(msg, Message::Announce(_) | Message::Shares(_));
                    let checked = if carries_shares {
                        check_work(&msg, &reader_ctx).await
                    } else {
                        Ok(false)
                    };
                    let inbound = match checked {
                        Ok(true) => Inbound::Checked(id, msg),
                        Ok(false) => Inbound::Message(id, msg),
                        Err(e) => Inbound::BadWork(id, e),
                    };
                    if reader_inbound.send(inbound).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
    });
    let info = PeerInfo {
        id,
        addr,
        key,
        inbound: role == Role::Responder,
    };
    let abort = reader_task.abort_handle();
    if ctx
        .inbound
        .send(Inbound::Connected { info, tx, abort })
        .await
        .is_err()
    {
        writer.abort();
        reader_task.abort();
        return true;
    }
    let _ = reader_task.await;
    writer.abort();
    let _ = ctx.inbound.send(Inbound::Closed(id)).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::tests::arb_share;
    use proptest::prelude::*;

    proptest! {
        /// A share whose work was found good vouches only for its own target: the same block
        /// (the same id) under easier bits is hashed again, or a peer could pass a share that
        /// met an easy target off as one meeting the chain's.
        #[test]
        fn good_work_is_remembered_per_block_and_target(share in arb_share(), bits in any::<u32>()) {
            let mut checked = Checked::default();
            checked.insert(work_key(&share));
            prop_assert!(checked.ids.contains(&work_key(&share)));
            let mut easier = share.clone();
            easier.info.bits = otedama_core::CompactTarget::from_consensus(bits);
            prop_assert_eq!(easier.id(), share.id());
            prop_assert_eq!(
                checked.ids.contains(&work_key(&easier)),
                bits == share.info.bits.to_consensus()
            );
        }
    }

    #[test]
    fn the_remembered_work_is_bounded() {
        let mut checked = Checked::default();
        for i in 0..(CHECKED_CAP as u32 + 10) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            checked.insert((ShareId(id), 0));
        }
        assert_eq!(checked.ids.len(), CHECKED_CAP);
        assert_eq!(checked.order.len(), CHECKED_CAP);
        assert!(!checked.ids.contains(&(ShareId([0; 32]), 0)));
    }
}
