//! The gossip state machine of one node, sans-IO: messages and the clock go in, messages to
//! send and events come out. The simulator and the network adapter drive the same code.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use otedama_core::BlockHeader;
use otedama_hash::PowAlgorithm;

use crate::chain::{Added, Sharechain, Verification};
use crate::error::ShareError;
use crate::message::{Message, MAX_ANCESTORS, MAX_BLOCK, MAX_GOSSIP, MAX_PEER_ADDRS};
use crate::share::{Layout, Share, ShareId};

/// Where a node keeps the shares it accepts, so they survive a restart.
pub trait ShareSink: Send {
    /// Keeps an accepted share.
    fn save(&mut self, share: &Share);
    /// Forgets the shares below `height` (they left the horizon).
    fn prune(&mut self, below_height: u64);
}

/// A connected peer, numbered by whoever drives the node.
pub type PeerId = u64;

/// How received shares' proof of work is checked.
#[derive(Clone)]
pub enum PowPolicy {
    /// Hash every received header with the chain's algorithm. Every real node does this.
    Verify(Arc<dyn PowAlgorithm>),
    /// Trust the work: only for simulations, where shares arrive by a random clock instead of
    /// being mined.
    Simulated,
}

impl std::fmt::Debug for PowPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PowPolicy::Verify(p) => write!(f, "Verify({})", p.algorithm()),
            PowPolicy::Simulated => f.write_str("Simulated"),
        }
    }
}

/// What the node reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The best tip changed: new work for the miners.
    NewTip {
        /// The tip.
        id: ShareId,
        /// Its height.
        height: u64,
        /// The old tip and the depth, when the tip moved to another branch.
        reorg: Option<(ShareId, u64)>,
    },
    /// A peer broke the protocol or sent an invalid share; the driver should ban it.
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
    /// The node holds a chain deep enough to verify and build shares, and waits for nothing.
    Synced {
        /// The tip's height.
        height: u64,
    },
    /// A peer relayed a main-chain block (its proof of work checked against its own bits,
    /// its header a share of this chain): hand it to the main chain's node, which may not
    /// have heard of it yet.
    MainBlock {
        /// The block's header hash, internal byte order.
        hash: [u8; 32],
        /// The whole block, as `submitblock` takes it.
        raw: Vec<u8>,
    },
}

/// Limits on what one peer may cost this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Messages a peer may send in a burst.
    pub burst: u32,
    /// Messages per second a peer may sustain.
    pub per_second: u32,
    /// Requests this node keeps in flight to one peer.
    pub in_flight: usize,
    /// Milliseconds before an unanswered request is asked again.
    pub request_timeout_ms: u64,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            burst: 400,
            per_second: 40,
            in_flight: 8,
            request_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug)]
struct Peer {
    tokens: f64,
    last_refill_ms: u64,
    in_flight: usize,
    /// Shares this peer is known to hold (sent to us or by us), so relays skip it.
    knows: HashSet<ShareId>,
    /// The address it connected from, when the driver knows it.
    remote: Option<SocketAddr>,
    /// Where it accepts peers: the address dialled, or its IP with the port it announced.
    reachable: Option<SocketAddr>,
    /// Whether a [`Message::GetPeers`] to it is unanswered.
    asked_peers: bool,
    /// When it was last sent addresses.
    answered_peers_ms: Option<u64>,
    /// When to ask it for addresses again (peers connected with their address only).
    next_ask_ms: Option<u64>,
}

const KNOWN_CAP: usize = 4_096;
/// Addresses a node remembers.
const ADDRESS_BOOK_CAP: usize = 1_024;
/// Main-chain blocks a node remembers having relayed.
const SEEN_BLOCKS_CAP: usize = 256;
/// Blocks a node holds while their shares are on the way.
const HELD_BLOCKS_CAP: usize = 8;
/// How often a peer is sent addresses at most.
const PEERS_ANSWER_EVERY_MS: u64 = 5_000;
/// A peer is asked for addresses on connecting, again this soon after (the nodes that
/// connected at about the same time are known by then), then every [`PEERS_ASK_EVERY_MS`].
const PEERS_ASK_AGAIN_MS: u64 = 6_000;
/// How often a peer is asked for addresses after the first minutes.
const PEERS_ASK_EVERY_MS: u64 = 60_000;

/// One sharechain node's gossip.
pub struct Node {
    chain: Sharechain,
    pow: PowPolicy,
    limits: PeerLimits,
    peers: BTreeMap<PeerId, Peer>,
    pending: HashMap<ShareId, Share>,
    /// Who sent each parked share: the peer to ask for its parents, and the only one whose
    /// `NotFound` means the chain ends there.
    pending_from: HashMap<ShareId, PeerId>,
    requested: HashMap<ShareId, (PeerId, u64)>,
    outbox: VecDeque<(PeerId, Message)>,
    events: VecDeque<NodeEvent>,
    synced: bool,
    rejected: u64,
    received: u64,
    sink: Option<Box<dyn ShareSink>>,
    pruned_at: u64,
    /// When the first peer connected to an empty, unsynced node.
    first_peer_ms: Option<u64>,
    /// The port this node accepts peers on, told to every peer.
    listen_port: Option<u16>,
    /// Addresses of nodes that accept peers, with when they were last heard of.
    address_book: HashMap<SocketAddr, u64>,
    /// Main-chain blocks relayed already, oldest first.
    seen_blocks: VecDeque<[u8; 32]>,
    /// Blocks waiting for their share (a finder relays its block before announcing the
    /// share), with the peer that sent each, oldest first.
    held_blocks: VecDeque<(ShareId, PeerId, Vec<u8>)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("tip", &self.chain.tip().map(|t| t.share.id()))
            .field("peers", &self.peers.len())
            .field("pending", &self.pending.len())
            .field("synced", &self.synced)
            .finish()
    }
}

impl Node {
    /// A node over `chain` (empty, or loaded from storage).
    pub fn new(chain: Sharechain, pow: PowPolicy, limits: PeerLimits) -> Self {
        Node {
            chain,
            pow,
            limits,
            peers: BTreeMap::new(),
            pending: HashMap::new(),
            pending_from: HashMap::new(),
            requested: HashMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            synced: false,
            rejected: 0,
            received: 0,
            sink: None,
            pruned_at: 0,
            first_peer_ms: None,
            listen_port: None,
            address_book: HashMap::new(),
            seen_blocks: VecDeque::new(),
            held_blocks: VecDeque::new(),
        }
    }

    /// Tells every peer from now on that this node accepts peers on `port`.
    pub fn set_listen_port(&mut self, port: u16) {
        self.listen_port = Some(port);
    }

    /// Addresses of nodes that accept peers, learnt from peers and not connected now, most
    /// recently heard of first: where a driver looking for more peers dials.
    pub fn dial_candidates(&self, max: usize) -> Vec<SocketAddr> {
        let connected: HashSet<SocketAddr> =
            self.peers.values().filter_map(|p| p.reachable).collect();
        let mut known: Vec<(&SocketAddr, &u64)> = self
            .address_book
            .iter()
            .filter(|(a, _)| !connected.contains(a))
            .collect();
        known.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        known.into_iter().take(max).map(|(a, _)| *a).collect()
    }

    /// Forgets an address (it could not be dialled, or it is this node's own).
    pub fn forget_address(&mut self, addr: &SocketAddr) {
        self.address_book.remove(addr);
    }

    /// A main-chain block this node's miners found (its header is a share's, announced
    /// next): sent to every peer at once, so each hands it to its own main-chain node.
    /// A block over [`MAX_BLOCK`] is not relayed: no peer would take it. Neither is any block
    /// of a RandomX chain: its shares' blocks go to the devnet by their finders alone.
    pub fn relay_block(&mut self, raw: Vec<u8>) {
        if raw.len() > MAX_BLOCK || !self.relays_blocks() {
            return;
        }
        let Some(header) = raw.get(..80).and_then(|h| BlockHeader::from_bytes(h).ok()) else {
            return;
        };
        let hash = header.block_hash();
        if !self.remember_block(hash) {
            return;
        }
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in peers {
            self.send(p, Message::Block(raw.clone()));
        }
    }

    /// How this node checks proof of work.
    pub fn pow(&self) -> &PowPolicy {
        &self.pow
    }

    /// Keeps every accepted share in `sink` from now on.
    pub fn persist_to(&mut self, sink: Box<dyn ShareSink>) {
        self.sink = Some(sink);
    }

    /// Shares received from peers so far (new ones, valid or not).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The chain.
    pub fn chain(&self) -> &Sharechain {
        &self.chain
    }

    /// Whether the node holds a usable chain and waits for no share. Until then its miners
    /// should not be given work: shares on an isolated chain would be lost.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Shares refused as invalid so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The connected peers.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// Marks the chain usable without peers: the first node of a new chain, or one that
    /// loaded its chain from storage.
    pub fn start_alone(&mut self) {
        self.synced = true;
    }

    /// A peer connected (after the handshake): it is told our tip.
    pub fn on_connect(&mut self, peer: PeerId, now_ms: u64) {
        self.connect(peer, now_ms, None, None);
    }

    /// [`Node::on_connect`] for a driver that knows where the peer is: `remote` is the
    /// address of the connection, and the peer accepts peers there when this node dialled
    /// it (`dialled`). Peers then exchange the addresses of other nodes.
    pub fn on_connect_from(
        &mut self,
        peer: PeerId,
        now_ms: u64,
        remote: SocketAddr,
        dialled: bool,
    ) {
        let reachable = dialled.then_some(remote);
        if let Some(addr) = reachable {
            self.learn_address(addr, now_ms);
        }
        self.connect(peer, now_ms, Some(remote), reachable);
        if let Some(port) = self.listen_port {
            self.send(peer, Message::Listening(port));
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asked_peers = true;
            p.next_ask_ms = Some(now_ms + PEERS_ASK_AGAIN_MS);
        }
        self.send(peer, Message::GetPeers);
    }

    fn connect(
        &mut self,
        peer: PeerId,
        now_ms: u64,
        remote: Option<SocketAddr>,
        reachable: Option<SocketAddr>,
    ) {
        self.peers.insert(
            peer,
            Peer {
                tokens: f64::from(self.limits.burst),
                last_refill_ms: now_ms,
                in_flight: 0,
                knows: HashSet::new(),
                remote,
                reachable,
                asked_peers: false,
                answered_peers_ms: None,
                next_ask_ms: None,
            },
        );
        self.first_peer_ms.get_or_insert(now_ms);
        if let Some(tip) = self.chain.tip() {
            let share = tip.share.clone();
            self.send(peer, Message::Announce(Box::new(share)));
        }
    }

    /// A peer went away.
    pub fn on_disconnect(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.requested.retain(|_, (p, _)| *p != peer);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(PeerId, Message)> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// A share one of this node's miners found: added and announced to every peer.
    pub fn submit(&mut self, share: Share, now_ms: u64) -> Result<Added, ShareError> {
        if let PowPolicy::Verify(pow) = &self.pow {
            share.check_pow(pow.as_ref())?;
        }
        self.submit_verified(share, now_ms)
    }

    /// [`Node::submit`] for a share whose proof of work the caller has checked against the
    /// share's target (a pool's engine hashes every share it takes): the hash, the slow part
    /// for RandomX, is not done again.
    pub fn submit_verified(&mut self, share: Share, now_ms: u64) -> Result<Added, ShareError> {
        let added = self.chain.add(share.clone(), now_ms / 1000)?;
        self.after_add(&added, None);
        self.drain_pending(now_ms);
        Ok(added)
    }

    /// Time passed: unanswered requests are asked again, and peers for addresses.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let ask: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.next_ask_ms.is_some_and(|at| now_ms >= at))
            .map(|(id, p)| {
                p.asked_peers = true;
                p.next_ask_ms = Some(now_ms + PEERS_ASK_EVERY_MS);
                *id
            })
            .collect();
        for peer in ask {
            self.send(peer, Message::GetPeers);
        }
        let timeout = self.limits.request_timeout_ms;
        let expired: Vec<ShareId> = self
            .requested
            .iter()
            .filter(|(_, (_, at))| now_ms.saturating_sub(*at) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((peer, _)) = self.requested.remove(&id) {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
            }
            // Ask again if something still waits on it: the waiting share's sender first (it
            // holds the share's parents), else whoever is least busy.
            let waiting = self
                .pending
                .iter()
                .find(|(_, s)| s.info.parent == id || s.info.uncles.contains(&id))
                .map(|(sid, _)| self.pending_from.get(sid).copied());
            if let Some(source) = waiting {
                let peer = source
                    .filter(|p| self.peers.contains_key(p))
                    .or_else(|| self.least_busy_peer());
                if let Some(peer) = peer {
                    self.request_count(peer, id, u64::from(MAX_ANCESTORS), now_ms);
                }
            }
        }
        self.check_synced();
        // A peer with a chain announces its tip as soon as it connects: peers silent for a
        // whole request timeout have none, and the chain starts here (a new network).
        let quiet = self
            .first_peer_ms
            .is_some_and(|at| now_ms.saturating_sub(at) >= timeout);
        if !self.synced
            && quiet
            && self.chain.is_empty()
            && self.pending.is_empty()
            && self.requested.is_empty()
        {
            self.synced = true;
            self.events.push_back(NodeEvent::Synced { height: 0 });
        }
    }

    /// A message arrived from a peer.
    pub fn on_message(&mut self, peer: PeerId, msg: Message, now_ms: u64) {
        self.handle_message(peer, msg, now_ms, false);
    }

    /// [`Node::on_message`] for a message whose shares' proof of work the caller has checked
    /// against their targets ([`Share::check_pow`] with this node's kernel, say on threads
    /// of its own): they are not hashed again.
    pub fn on_checked_message(&mut self, peer: PeerId, msg: Message, now_ms: u64) {
        self.handle_message(peer, msg, now_ms, true);
    }

    /// A peer sent a share whose proof of work the caller found short of its target (the
    /// message itself dropped): counted as received and refused, and the peer reported.
    pub fn on_bad_work(&mut self, peer: PeerId, error: &ShareError) {
        self.received += 1;
        self.rejected += 1;
        self.misbehaved(peer, error.to_string());
    }

    fn handle_message(&mut self, peer: PeerId, msg: Message, now_ms: u64, checked: bool) {
        if !self.charge(peer, now_ms) {
            self.misbehaved(peer, "message flood".to_owned());
            return;
        }
        match msg {
            Message::Announce(share) => {
                self.note_known(peer, share.id());
                self.receive(peer, *share, now_ms, checked);
                self.drain_pending(now_ms);
            }
            Message::Shares(shares) => {
                for share in &shares {
                    let id = share.id();
                    self.note_known(peer, id);
                    self.settle_request(&id);
                }
                for share in shares {
                    self.receive(peer, share, now_ms, checked);
                }
                self.drain_pending(now_ms);
            }
            Message::GetShares(ids) => {
                let (found, missing): (Vec<ShareId>, Vec<ShareId>) =
                    ids.into_iter().partition(|id| self.chain.contains(id));
                let shares: Vec<Share> = found
                    .iter()
                    .filter_map(|id| self.chain.get(id).map(|e| e.share.clone()))
                    .collect();
                if !shares.is_empty() {
                    self.send(peer, Message::Shares(shares));
                }
                if !missing.is_empty() {
                    self.send(peer, Message::NotFound(missing));
                }
            }
            Message::GetAncestors { from, count } => {
                let reply = self.ancestors_reply(from, count);
                self.send(peer, reply);
            }
            Message::Block(raw) => self.receive_block(peer, raw),
            Message::Listening(port) => {
                // Once per connection: a peer names one port, not a list of them.
                let ip = self
                    .peers
                    .get(&peer)
                    .filter(|p| p.reachable.is_none())
                    .and_then(|p| p.remote)
                    .map(|r| r.ip());
                if let (Some(ip), true) = (ip, port != 0) {
                    let addr = SocketAddr::new(ip, port);
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.reachable = Some(addr);
                    }
                    self.learn_address(addr, now_ms);
                }
            }
            Message::GetPeers => self.answer_peers(peer, now_ms),
            Message::Peers(addrs) => {
                // Only an answer is taken: unasked lists would let a peer fill the book.
                let asked = self
                    .peers
                    .get_mut(&peer)
                    .map(|p| std::mem::replace(&mut p.asked_peers, false))
                    .unwrap_or(false);
                if asked {
                    for addr in addrs.into_iter().take(MAX_PEER_ADDRS) {
                        self.learn_address(addr, now_ms);
                    }
                }
            }
            Message::NotFound(ids) => {
                for id in &ids {
                    self.settle_request(id);
                }
                if self.chain.is_empty() {
                    self.bootstrap(now_ms, &ids, Some(peer));
                } else {
                    // The peer that sent a parked share cannot complete it: drop the share.
                    // Another peer's `NotFound` proves nothing; the sender may still answer.
                    let from = &self.pending_from;
                    let dropped: Vec<ShareId> = self
                        .pending
                        .iter()
                        .filter(|(id, s)| {
                            from.get(*id) == Some(&peer)
                                && (ids.contains(&s.info.parent)
                                    || s.info.uncles.iter().any(|u| ids.contains(u)))
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    for id in dropped {
                        self.unpark(&id);
                    }
                }
                self.drain_pending(now_ms);
            }
        }
    }

    fn learn_address(&mut self, addr: SocketAddr, now_ms: u64) {
        if addr.port() == 0 || addr.ip().is_unspecified() || is_multicast(addr.ip()) {
            return;
        }
        if self.address_book.len() >= ADDRESS_BOOK_CAP && !self.address_book.contains_key(&addr) {
            let oldest = self
                .address_book
                .iter()
                .min_by_key(|(a, t)| (**t, **a))
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                self.address_book.remove(&oldest);
            }
        }
        self.address_book.insert(addr, now_ms);
    }

    fn answer_peers(&mut self, peer: PeerId, now_ms: u64) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.answered_peers_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < PEERS_ANSWER_EVERY_MS)
        {
            return;
        }
        p.answered_peers_ms = Some(now_ms);
        let own = p.reachable;
        // Connected peers first (they answer now), then the rest of the book, newest first.
        let mut addrs: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|(id, _)| **id != peer)
            .filter_map(|(_, p)| p.reachable)
            .collect();
        let mut book: Vec<(&SocketAddr, &u64)> = self.address_book.iter().collect();
        book.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (addr, _) in book {
            if addrs.len() >= MAX_PEER_ADDRS {
                break;
            }
            if !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
        addrs.retain(|a| Some(*a) != own);
        addrs.truncate(MAX_PEER_ADDRS);
        self.send(peer, Message::Peers(addrs));
    }

    /// Remembers a block hash; `false` when it was seen before.
    fn remember_block(&mut self, hash: [u8; 32]) -> bool {
        if self.seen_blocks.contains(&hash) {
            return false;
        }
        if self.seen_blocks.len() >= SEEN_BLOCKS_CAP {
            self.seen_blocks.pop_front();
        }
        self.seen_blocks.push_back(hash);
        true
    }

    /// Whether this chain's blocks travel between nodes (the Bitcoin-family layout's do).
    fn relays_blocks(&self) -> bool {
        Layout::of(self.chain.params().algorithm) == Layout::Bitcoin
    }

    fn receive_block(&mut self, peer: PeerId, raw: Vec<u8>) {
        if !self.relays_blocks() {
            // A node of another version may relay; nothing here reads the block.
            return;
        }
        let Some(header) = raw.get(..80).and_then(|h| BlockHeader::from_bytes(h).ok()) else {
            self.misbehaved(peer, "a block too short for its header".to_owned());
            return;
        };
        let hash = header.block_hash();
        if self.seen_blocks.contains(&hash) {
            return;
        }
        // Relaying costs every peer a block's bytes: only a block with its full proof of work
        // is worth that.
        if let PowPolicy::Verify(pow) = &self.pow {
            let target = header.bits.decode().ok();
            let meets =
                pow.hash(&header.to_bytes())
                    .ok()
                    .zip(target)
                    .is_some_and(|(out, target)| {
                        pow.algorithm().hash_order().meets(&out.hash, &target)
                    });
            if !meets {
                self.misbehaved(
                    peer,
                    "a main-chain block without its proof of work".to_owned(),
                );
                return;
            }
        }
        // Only a block that is a share of this chain is passed on: a block with bits of its
        // sender's choosing proves nothing, a share's work is checked against the chain's
        // target. The share usually comes just after its block.
        let id = ShareId(hash);
        if self.chain.contains(&id) {
            self.release_block(peer, hash, raw);
        } else if !self.held_blocks.iter().any(|(held, _, _)| *held == id) {
            if self.held_blocks.len() >= HELD_BLOCKS_CAP {
                self.held_blocks.pop_front();
            }
            self.held_blocks.push_back((id, peer, raw));
        }
    }

    /// Passes a block on to every peer but its sender, and to the driver.
    fn release_block(&mut self, from: PeerId, hash: [u8; 32], raw: Vec<u8>) {
        if !self.remember_block(hash) {
            return;
        }
        let others: Vec<PeerId> = self.peers.keys().copied().filter(|p| *p != from).collect();
        for p in others {
            self.send(p, Message::Block(raw.clone()));
        }
        self.events.push_back(NodeEvent::MainBlock { hash, raw });
    }

    fn ancestors_reply(&self, from: ShareId, count: u16) -> Message {
        if !self.chain.contains(&from) {
            return Message::NotFound(vec![from]);
        }
        let chain_ids = self
            .chain
            .ancestors(Some(from), usize::from(count.min(MAX_ANCESTORS)));
        let mut picked: Vec<&Share> = Vec::new();
        let mut seen = HashSet::new();
        let mut size = 16usize;
        // Newest first, so a reply cut by the size cap still connects to `from`.
        for id in &chain_ids {
            let Some(entry) = self.chain.get(id) else {
                continue;
            };
            let mut group = vec![&entry.share];
            for u in &entry.share.info.uncles {
                if let Some(ue) = self.chain.get(u) {
                    group.push(&ue.share);
                }
            }
            let group_size: usize = group.iter().map(|s| s.encoded_len() + 1).sum();
            if size + group_size > MAX_GOSSIP {
                break;
            }
            size += group_size;
            for s in group {
                if seen.insert(s.id()) {
                    picked.push(s);
                }
            }
        }
        picked.sort_by_key(|s| s.info.height);
        Message::Shares(picked.into_iter().cloned().collect())
    }

    fn receive(&mut self, peer: PeerId, share: Share, now_ms: u64, checked: bool) {
        let id = share.id();
        self.settle_request(&id);
        if self.chain.contains(&id) || self.pending.contains_key(&id) {
            return;
        }
        self.received += 1;
        if let (PowPolicy::Verify(pow), false) = (&self.pow, checked) {
            if let Err(e) = share.check_pow(pow.as_ref()) {
                self.rejected += 1;
                self.misbehaved(peer, e.to_string());
                return;
            }
        }
        if self.chain.is_empty() {
            self.park(share, peer);
            self.bootstrap(now_ms, &[], None);
            return;
        }
        match self.chain.add(share.clone(), now_ms / 1000) {
            Ok(added) => self.after_add(&added, Some(peer)),
            Err(ShareError::Missing { missing, .. }) => {
                let is_parent = share.info.parent == missing;
                let gap = share
                    .info
                    .height
                    .saturating_sub(self.chain.tip().map_or(0, |t| t.share.info.height));
                self.park(share, peer);
                let count = if is_parent { gap.saturating_add(4) } else { 1 };
                self.request_count(peer, missing, count, now_ms);
            }
            Err(ShareError::Duplicate { .. }) => {}
            Err(e) => {
                self.rejected += 1;
                if e.is_misbehaviour() {
                    self.misbehaved(peer, e.to_string());
                }
            }
        }
    }

    fn park(&mut self, share: Share, from: PeerId) {
        let cap = usize::try_from(self.chain.params().horizon())
            .unwrap_or(usize::MAX)
            .saturating_add(512);
        if self.pending.len() < cap {
            let id = share.id();
            self.pending.insert(id, share);
            self.pending_from.insert(id, from);
        }
    }

    fn unpark(&mut self, id: &ShareId) -> Option<Share> {
        self.pending_from.remove(id);
        self.pending.remove(id)
    }

    /// An empty node builds its chain from the bottom of what peers sent: the genesis, or a
    /// share a whole horizon below the best one seen, or one whose parent its own sender does
    /// not hold (that sender's chain ends there). `answered_by` sent `not_found`.
    fn bootstrap(&mut self, now_ms: u64, not_found: &[ShareId], answered_by: Option<PeerId>) {
        let Some(top) = self.pending.values().map(|s| s.info.height).max() else {
            return;
        };
        let Some(lowest) = self
            .pending
            .values()
            .min_by_key(|s| (s.info.height, s.id()))
            .cloned()
        else {
            return;
        };
        let deep_enough =
            top.saturating_sub(lowest.info.height) + 1 >= self.chain.params().horizon();
        let parent = lowest.info.parent;
        let source = self.pending_from.get(&lowest.id()).copied();
        let source_lacks_parent =
            not_found.contains(&parent) && answered_by.is_some() && answered_by == source;
        if parent == ShareId::NONE || deep_enough || source_lacks_parent {
            let id = lowest.id();
            self.unpark(&id);
            let result = if parent == ShareId::NONE {
                self.chain.add(lowest, now_ms / 1000)
            } else {
                self.chain.add_base(lowest, now_ms / 1000)
            };
            match result {
                Ok(added) => self.after_add(&added, None),
                Err(e) if e.is_misbehaviour() => self.rejected += 1,
                Err(_) => {}
            }
        } else if !self.requested.contains_key(&parent) {
            // Ask the peer that sent the share: it holds the parent unless its chain ends.
            let peer = source
                .filter(|p| self.peers.contains_key(p))
                .or_else(|| self.least_busy_peer());
            if let Some(peer) = peer {
                self.request_count(peer, parent, u64::from(MAX_ANCESTORS), now_ms);
            }
        }
    }

    /// Adds every parked share whose parents arrived.
    fn drain_pending(&mut self, now_ms: u64) {
        loop {
            let mut ready: Vec<Share> = self
                .pending
                .values()
                .filter(|s| {
                    (self.chain.contains(&s.info.parent) || s.info.parent == ShareId::NONE)
                        && s.info
                            .uncles
                            .iter()
                            .all(|u| self.chain.contains(u) || self.parent_is_partial(s))
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                break;
            }
            ready.sort_by_key(|s| (s.info.height, s.id()));
            for share in ready {
                let id = share.id();
                self.unpark(&id);
                match self.chain.add(share, now_ms / 1000) {
                    Ok(added) => self.after_add(&added, None),
                    Err(ShareError::Missing { .. }) | Err(ShareError::Duplicate { .. }) => {}
                    Err(_) => self.rejected += 1,
                }
            }
        }
        self.check_synced();
    }

    fn settle_request(&mut self, id: &ShareId) {
        if let Some((p, _)) = self.requested.remove(id) {
            if let Some(pp) = self.peers.get_mut(&p) {
                pp.in_flight = pp.in_flight.saturating_sub(1);
            }
        }
    }

    fn check_synced(&mut self) {
        if !self.synced && !self.chain.is_empty() && self.requested.is_empty() {
            let tip_ok = self
                .chain
                .tip()
                .is_some_and(|t| t.verification == Verification::Full || t.share.info.height == 0);
            if tip_ok {
                self.synced = true;
                let height = self.chain.tip().map_or(0, |t| t.share.info.height);
                self.events.push_back(NodeEvent::Synced { height });
            }
        }
    }

    fn parent_is_partial(&self, s: &Share) -> bool {
        self.chain
            .get(&s.info.parent)
            .is_some_and(|p| p.verification == Verification::Partial)
    }

    fn after_add(&mut self, added: &Added, from: Option<PeerId>) {
        if let Some(at) = self
            .held_blocks
            .iter()
            .position(|(id, _, _)| *id == added.id)
        {
            if let Some((id, sender, raw)) = self.held_blocks.remove(at) {
                self.release_block(sender, id.0, raw);
            }
        }
        let Some(entry) = self.chain.get(&added.id) else {
            return;
        };
        let height = entry.share.info.height;
        if let Some(sink) = self.sink.as_mut() {
            sink.save(&entry.share);
            let floor = height.saturating_sub(self.chain.params().horizon());
            // Pruning costs a scan: do it every hundred heights.
            if added.new_tip && floor >= self.pruned_at + 100 {
                sink.prune(floor);
                self.pruned_at = floor;
            }
        }
        let tip_height = self.chain.tip().map_or(0, |t| t.share.info.height);
        // Relay what is recent; what a syncing node fetched deep down, its peers have.
        if height + u64::from(self.chain.params().uncle_depth) >= tip_height {
            let share = entry.share.clone();
            let targets: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(p, st)| Some(**p) != from && !st.knows.contains(&added.id))
                .map(|(p, _)| *p)
                .collect();
            for p in targets {
                self.note_known(p, added.id);
                self.send(p, Message::Announce(Box::new(share.clone())));
            }
        }
        if added.new_tip {
            self.events.push_back(NodeEvent::NewTip {
                id: added.id,
                height,
                reorg: added.reorg,
            });
        }
    }

    fn request_count(&mut self, peer: PeerId, id: ShareId, count: u64, now_ms: u64) {
        if self.requested.contains_key(&id) {
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.in_flight >= self.limits.in_flight {
            return;
        }
        p.in_flight += 1;
        self.requested.insert(id, (peer, now_ms));
        let count =
            u16::try_from(count.clamp(1, u64::from(MAX_ANCESTORS))).unwrap_or(MAX_ANCESTORS);
        let msg = if count == 1 {
            Message::GetShares(vec![id])
        } else {
            Message::GetAncestors { from: id, count }
        };
        self.send(peer, msg);
    }

    fn least_busy_peer(&self) -> Option<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.in_flight < self.limits.in_flight)
            .min_by_key(|(id, p)| (p.in_flight, **id))
            .map(|(id, _)| *id)
    }

    fn note_known(&mut self, peer: PeerId, id: ShareId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.knows.len() >= KNOWN_CAP {
                p.knows.clear();
            }
            p.knows.insert(id);
        }
    }

    fn charge(&mut self, peer: PeerId, now_ms: u64) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let elapsed = now_ms.saturating_sub(p.last_refill_ms) as f64 / 1000.0;
        p.last_refill_ms = now_ms;
        p.tokens = (p.tokens + elapsed * f64::from(self.limits.per_second))
            .min(f64::from(self.limits.burst));
        if p.tokens < 1.0 {
            return false;
        }
        p.tokens -= 1.0;
        true
    }

    fn misbehaved(&mut self, peer: PeerId, reason: String) {
        self.events
            .push_back(NodeEvent::Misbehaved { peer, reason });
    }

    fn send(&mut self, peer: PeerId, msg: Message) {
        self.outbox.push_back((peer, msg));
    }
}

fn is_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}
