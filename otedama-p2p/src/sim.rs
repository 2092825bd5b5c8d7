//! A deterministic discrete-event simulator of a sharechain network: many [`Node`]s in one
//! process, virtual time in milliseconds, one seeded random generator, no sockets.
//!
//! Proof of work is replaced by its statistics: a node whose miners have hashrate `h` finds its
//! next share after an exponential time of mean `work(target) / h`, redrawn whenever its tip
//! changes (the process is memoryless, so redrawing is exact); a share is also a main-chain
//! block with probability `main_target / share_target`. Everything else is the real code:
//! every message is encoded and decoded, every node rebuilds and checks every coinbase.
//!
//! Links carry messages after a lognormal latency, in order per link (as TCP does), may drop
//! them, and may be cut by partitions. After the run the simulator stops mining, lets the
//! network go quiet, and checks that connected nodes agree on one tip and one coinbase.
//!
//! Small miners are modelled as mining through their node (the two-level design): their shares
//! carry the node's payout script, and the node's local ledger splits what that script earns by
//! the work its miners submitted. Stratum shares come thousands of times more often than
//! sharechain shares, so the simulator credits them as their expected value (hashrate times
//! time) rather than drawing each one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use otedama_core::{BlockHeader, MerkleBranch, Target, Work, U256};
use sha2::{Digest, Sha256};

use crate::chain::{MainWork, Sharechain};
use crate::message::Message;
use crate::node::{Node, NodeEvent, PeerLimits, PowPolicy};
use crate::params::ChainParams;
use crate::share::ShareId;

/// A network split: while it lasts, links between `group` and the other nodes carry nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// When it starts, in virtual milliseconds.
    pub start_ms: u64,
    /// When it heals.
    pub end_ms: u64,
    /// The nodes on one side.
    pub group: Vec<usize>,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The random seed: the same config and seed give the same run, event for event.
    pub seed: u64,
    /// The chain's rules (the share interval matters most; the easiest target is derived from
    /// the hashrate below, so the value here is ignored).
    pub params: ChainParams,
    /// How many nodes.
    pub nodes: usize,
    /// How many miners, spread over the nodes in turn.
    pub miners: usize,
    /// The Zipf exponent of the miners' hashrates (0: all equal).
    pub zipf_exponent: f64,
    /// Total hashrate, in hashes per second.
    pub hashrate: f64,
    /// Miners with at least this part of the total hashrate mine to their own address; the
    /// others mine through their node.
    pub direct_threshold: f64,
    /// Links each node opens to random others (plus a ring, so the graph is connected).
    pub degree: usize,
    /// Median one-way link latency, milliseconds.
    pub latency_ms: f64,
    /// Lognormal spread of the latency (sigma of its logarithm).
    pub latency_sigma: f64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Main-chain block work divided by the steady share work: shares per block.
    pub shares_per_block: f64,
    /// Main-chain block reward, smallest units.
    pub reward: u64,
    /// Stop after this many main-chain blocks.
    pub blocks: u64,
    /// Nodes that come online late: (node, virtual milliseconds).
    pub joins: Vec<(usize, u64)>,
    /// Network splits.
    pub partitions: Vec<Partition>,
}

impl SimConfig {
    /// Ten nodes, thirty Zipf miners, 10 s shares, 200 ms links, 30 shares per block.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            params: ChainParams::main("sim", otedama_hash::Algorithm::Sha256d, "sim", Target::MAX),
            nodes: 10,
            miners: 30,
            zipf_exponent: 1.0,
            hashrate: 1e12,
            direct_threshold: 0.05,
            degree: 3,
            latency_ms: 200.0,
            latency_sigma: 0.5,
            loss: 0.0,
            shares_per_block: 30.0,
            reward: 5_000_000_000,
            blocks: 100,
            joins: Vec::new(),
            partitions: Vec::new(),
        }
    }
}

/// One miner's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerReport {
    /// Its part of the total hashrate.
    pub hashrate_share: f64,
    /// Its part of all money paid.
    pub payout_share: f64,
    /// `payout_share / hashrate_share`: 1.0 is perfectly fair.
    pub ratio: f64,
    /// Whether it mined to its own address (else through its node).
    pub direct: bool,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// Virtual time simulated, milliseconds.
    pub elapsed_ms: u64,
    /// Shares found.
    pub shares: u64,
    /// Of those, on the final best chain.
    pub chain_shares: u64,
    /// Of those, included as uncles.
    pub uncles: u64,
    /// Of those, neither: lost.
    pub orphans: u64,
    /// Main-chain blocks found.
    pub blocks: u64,
    /// Money paid in all blocks' coinbases, smallest units.
    pub paid: u64,
    /// Rewards of all blocks: equal to `paid` when money is conserved.
    pub rewards: u64,
    /// Shares that some node refused (none in an honest run).
    pub rejected: u64,
    /// Peers reported for misbehaviour (none in an honest run).
    pub misbehaviour: u64,
    /// Mean latency from a share's discovery to each node's receipt, milliseconds.
    pub mean_propagation_ms: f64,
    /// Whether every node ended on the same tip.
    pub converged: bool,
    /// Whether every node computed the same coinbase outputs for the final tip.
    pub same_coinbase: bool,
    /// Every miner, in hashrate order.
    pub miners: Vec<MinerReport>,
    /// A hash of the run's events: equal across runs of one config and seed.
    pub trace: [u8; 32],
}

impl SimReport {
    /// Stale shares (uncles and orphans) per share found.
    pub fn stale_rate(&self) -> f64 {
        (self.uncles + self.orphans) as f64 / self.shares.max(1) as f64
    }

    /// The largest distance of a miner's ratio from 1.0.
    pub fn worst_fairness(&self) -> f64 {
        self.miners
            .iter()
            .map(|m| (m.ratio - 1.0).abs())
            .fold(0.0, f64::max)
    }
}

/// A small, fast, seedable generator (xoshiro256**), so runs repeat on every platform.
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    /// Seeds the state with splitmix64.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Exponential with this mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Find {
        node: usize,
        epoch: u64,
    },
    Join {
        node: usize,
    },
    Tick,
}

struct SimNode {
    node: Node,
    online: bool,
    mining: bool,
    hashrate: f64,
    miners: Vec<usize>,
    epoch: u64,
    links: Vec<usize>,
}

struct Found {
    parent: ShareId,
    uncles: Vec<ShareId>,
    at_ms: u64,
}

/// Runs a simulation to the configured number of blocks.
pub fn run(config: &SimConfig) -> SimReport {
    Sim::new(config).run()
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Kind)>>,
    nodes: Vec<SimNode>,
    link_free: HashMap<(usize, usize), u64>,
    miner_hashrate: Vec<f64>,
    miner_direct: Vec<bool>,
    main_target: Target,
    found: HashMap<ShareId, Found>,
    first_seen: HashMap<(usize, ShareId), u64>,
    propagation: (f64, u64),
    paid_by_script: BTreeMap<Vec<u8>, u64>,
    blocks: u64,
    paid: u64,
    rewards: u64,
    misbehaviour: u64,
    trace: Sha256,
    extranonce: u64,
    main_height: u32,
}

const EPOCH_MS: u64 = 1_700_000_000_000;

fn script_for(kind: u8, index: usize) -> Vec<u8> {
    // A P2WPKH-shaped script: version 0, a 20-byte program naming the payee.
    let mut s = vec![0x00, 0x14, kind];
    s.extend_from_slice(&(index as u64).to_le_bytes());
    s.resize(22, 0);
    s
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let nodes_n = cfg.nodes.max(1);
        let weights: Vec<f64> = (0..cfg.miners.max(1))
            .map(|j| 1.0 / ((j + 1) as f64).powf(cfg.zipf_exponent))
            .collect();
        let sum: f64 = weights.iter().sum();
        let miner_hashrate: Vec<f64> = weights.iter().map(|w| w / sum * cfg.hashrate).collect();
        let miner_direct: Vec<bool> = weights
            .iter()
            .map(|w| w / sum >= cfg.direct_threshold)
            .collect();

        // Steady share work is hashrate times interval; the easiest target is four times easier,
        // so ASERT settles within a few hundred shares.
        let interval = cfg.params.share_interval_secs as f64;
        let share_work = cfg.hashrate * interval;
        let mut params = cfg.params.clone();
        params.max_target = target_for_work(share_work / 4.0).to_compact();
        let main_target = target_for_work(share_work * cfg.shares_per_block);

        let mut nodes: Vec<SimNode> = (0..nodes_n)
            .map(|_| SimNode {
                node: Node::new(
                    Sharechain::new(params.clone()),
                    PowPolicy::Simulated,
                    PeerLimits::default(),
                ),
                online: true,
                mining: false,
                hashrate: 0.0,
                miners: Vec::new(),
                epoch: 0,
                links: Vec::new(),
            })
            .collect();
        for (j, h) in miner_hashrate.iter().enumerate() {
            let n = j % nodes_n;
            nodes[n].hashrate += h;
            nodes[n].miners.push(j);
        }
        // A ring plus random chords.
        let mut edges = HashSet::new();
        for i in 0..nodes_n {
            if nodes_n > 1 {
                let j = (i + 1) % nodes_n;
                edges.insert((i.min(j), i.max(j)));
            }
            for _ in 0..cfg.degree.saturating_sub(1) {
                let j = rng.below(nodes_n);
                if j != i {
                    edges.insert((i.min(j), i.max(j)));
                }
            }
        }
        let mut edges: Vec<(usize, usize)> = edges.into_iter().collect();
        edges.sort_unstable();
        for (a, b) in edges {
            nodes[a].links.push(b);
            nodes[b].links.push(a);
        }
        for (n, _) in &cfg.joins {
            if let Some(node) = nodes.get_mut(*n) {
                node.online = false;
            }
        }
        let mut sim = Sim {
            cfg,
            rng,
            now: EPOCH_MS,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            link_free: HashMap::new(),
            miner_hashrate,
            miner_direct,
            main_target,
            found: HashMap::new(),
            first_seen: HashMap::new(),
            propagation: (0.0, 0),
            paid_by_script: BTreeMap::new(),
            blocks: 0,
            paid: 0,
            rewards: 0,
            misbehaviour: 0,
            trace: Sha256::new(),
            extranonce: 0,
            main_height: 1,
        };
        for i in 0..nodes_n {
            if sim.nodes[i].online {
                let links = sim.nodes[i].links.clone();
                for j in links {
                    if sim.nodes[j].online && i < j {
                        sim.connect(i, j);
                    }
                }
            }
        }
        for (n, at) in &cfg.joins {
            sim.schedule(EPOCH_MS + at, Kind::Join { node: *n });
        }
        // Node 0 starts the chain; the others sync from it.
        if let Some(first) = sim.nodes.first_mut() {
            first.node.start_alone();
            first.mining = true;
        }
        sim.redraw(0);
        sim.schedule(EPOCH_MS + 1_000, Kind::Tick);
        sim
    }

    fn schedule(&mut self, at: u64, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, kind)));
    }

    fn connect(&mut self, a: usize, b: usize) {
        let now = self.now;
        self.nodes[a].node.on_connect(b as u64, now);
        self.nodes[b].node.on_connect(a as u64, now);
        self.flush(a);
        self.flush(b);
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.cfg.partitions.iter().any(|p| {
            self.now >= EPOCH_MS + p.start_ms
                && self.now < EPOCH_MS + p.end_ms
                && (p.group.contains(&a) != p.group.contains(&b))
        })
    }

    /// Sends what node `i` queued and handles its events.
    fn flush(&mut self, i: usize) {
        while let Some((peer, msg)) = self.nodes[i].node.poll_transmit() {
            let to = peer as usize;
            if to >= self.nodes.len() || !self.nodes[to].online {
                continue;
            }
            if self.rng.unit() <= self.cfg.loss || self.partitioned(i, to) {
                continue;
            }
            let latency = self.cfg.latency_ms * (self.cfg.latency_sigma * self.rng.normal()).exp();
            let earliest = self.now + latency.max(0.0) as u64;
            let slot = self.link_free.entry((i, to)).or_insert(0);
            let at = earliest.max(*slot);
            *slot = at;
            let bytes = msg.encode();
            self.schedule(at, Kind::Deliver { to, from: i, bytes });
        }
        while let Some(event) = self.nodes[i].node.poll_event() {
            match event {
                NodeEvent::NewTip { id, .. } => {
                    self.trace.update(id.0);
                    if let Some(f) = self.found.get(&id) {
                        let key = (i, id);
                        if !self.first_seen.contains_key(&key) {
                            let delay = self.now.saturating_sub(f.at_ms) as f64;
                            self.first_seen.insert(key, self.now);
                            self.propagation.0 += delay;
                            self.propagation.1 += 1;
                        }
                    }
                    self.redraw(i);
                }
                NodeEvent::Synced { .. } => {
                    self.nodes[i].mining = true;
                    self.redraw(i);
                }
                NodeEvent::Misbehaved { .. } => self.misbehaviour += 1,
                // Simulated shares are not main-chain blocks; nothing is relayed.
                NodeEvent::MainBlock { .. } => {}
            }
        }
    }

    /// Draws node `i`'s next find on its current tip.
    fn redraw(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.epoch += 1;
        if !n.mining || !n.online || n.hashrate <= 0.0 {
            return;
        }
        let target = match n.node.chain().tip() {
            Some(tip) => n
                .node
                .chain()
                .target_after(&tip.share.info)
                .decode()
                .unwrap_or(Target::MAX),
            None => n.node.chain().params().easiest_target(),
        };
        let work = Work::from_target(&target).to_f64();
        let mean_ms = work / n.hashrate * 1000.0;
        let epoch = n.epoch;
        let delay = self.rng.exponential(mean_ms).max(1.0) as u64;
        self.schedule(self.now + delay, Kind::Find { node: i, epoch });
    }

    fn find(&mut self, i: usize) {
        // Which of the node's miners found it.
        let total = self.nodes[i].hashrate;
        let mut pick = self.rng.unit() * total;
        let mut miner = self.nodes[i].miners.first().copied().unwrap_or(0);
        for &m in &self.nodes[i].miners {
            pick -= self.miner_hashrate[m];
            miner = m;
            if pick <= 0.0 {
                break;
            }
        }
        let payout = if self.miner_direct[miner] {
            script_for(1, miner)
        } else {
            script_for(2, i)
        };
        let main = MainWork {
            header: BlockHeader {
                version: 0x2000_0000,
                prev_blockhash: [0; 32],
                merkle_root: [0; 32],
                time: (self.now / 1000) as u32,
                bits: self.main_target.to_compact(),
                nonce: 0,
            },
            height: self.main_height,
            reward: self.cfg.reward,
            witness_root: None,
            branch: MerkleBranch::default(),
        };
        let chain = self.nodes[i].node.chain();
        let Ok(template) = chain.template(&payout, main, self.now / 1000, 8) else {
            self.redraw(i);
            return;
        };
        self.extranonce += 1;
        let extranonce = self.extranonce.to_le_bytes();
        let Ok(mut header) = template.header(&extranonce) else {
            self.redraw(i);
            return;
        };
        header.nonce = self.rng.next_u64() as u32;
        let share = template.finish(header, &extranonce);
        let id = share.id();
        // A block when the hash also meets the main target: P = main / share target.
        let p_block = self.main_target.as_u256().to_f64() / template.target().as_u256().to_f64();
        if self.rng.unit() <= p_block {
            self.blocks += 1;
            self.main_height += 1;
            self.rewards += self.cfg.reward;
            let mut sum = 0u64;
            for (script, value) in &template.outputs {
                sum += value;
                *self
                    .paid_by_script
                    .entry(script.as_bytes().to_vec())
                    .or_insert(0) += value;
            }
            self.paid += sum;
        }
        self.found.insert(
            id,
            Found {
                parent: share.info.parent,
                uncles: share.info.uncles.clone(),
                at_ms: self.now,
            },
        );
        self.first_seen.insert((i, id), self.now);
        self.trace.update(id.0);
        let now = self.now;
        let _ = self.nodes[i].node.submit(share, now);
        self.flush(i);
        self.redraw(i);
    }

    fn step(&mut self, kind: Kind) {
        match kind {
            Kind::Deliver { to, from, bytes } => {
                if !self.nodes[to].online {
                    return;
                }
                if self.partitioned(from, to) {
                    return;
                }
                match Message::decode(&bytes) {
                    Ok(msg) => {
                        let now = self.now;
                        self.nodes[to].node.on_message(from as u64, msg, now);
                    }
                    Err(_) => self.misbehaviour += 1,
                }
                self.flush(to);
            }
            Kind::Find { node, epoch } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].mining {
                    self.find(node);
                }
            }
            Kind::Join { node } => {
                self.nodes[node].online = true;
                let links = self.nodes[node].links.clone();
                for j in links {
                    if self.nodes[j].online {
                        self.connect(node, j);
                    }
                }
            }
            Kind::Tick => {
                let now = self.now;
                for i in 0..self.nodes.len() {
                    if self.nodes[i].online {
                        self.nodes[i].node.handle_timeout(now);
                        self.flush(i);
                    }
                }
                self.schedule(now + 1_000, Kind::Tick);
            }
        }
    }

    fn run(mut self) -> SimReport {
        while self.blocks < self.cfg.blocks {
            let Some(Reverse((at, _, kind))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.step(kind);
        }
        // Quiet time: stop mining, deliver what is in flight, heal partitions.
        for n in &mut self.nodes {
            n.mining = false;
        }
        let end_mining = self.now;
        let mut quiet_until = end_mining + 120_000;
        while let Some(Reverse((at, _, kind))) = self.queue.pop() {
            if at > quiet_until {
                break;
            }
            self.now = at;
            if matches!(kind, Kind::Find { .. }) {
                continue;
            }
            if let Kind::Join { .. } = kind {
                quiet_until = quiet_until.max(at + 120_000);
            }
            self.step(kind);
        }
        self.report(end_mining)
    }

    fn report(mut self, end_mining: u64) -> SimReport {
        let online: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].online)
            .collect();
        let tips: Vec<Option<ShareId>> = online
            .iter()
            .map(|i| self.nodes[*i].node.chain().tip().map(|t| t.share.id()))
            .collect();
        let converged = tips.windows(2).all(|w| w[0] == w[1]);
        let same_coinbase = match online
            .first()
            .and_then(|i| self.nodes[*i].node.chain().tip())
        {
            None => true,
            Some(tip) => {
                let info = tip.share.info.clone();
                let target = tip.share.main_target().unwrap_or(Target::MAX);
                let first = self.nodes[online[0]]
                    .node
                    .chain()
                    .outputs_for(&info, &target);
                online
                    .iter()
                    .all(|i| self.nodes[*i].node.chain().outputs_for(&info, &target) == first)
            }
        };
        // Classify every share found by the final best chain.
        let mut on_chain = HashSet::new();
        let mut uncles = HashSet::new();
        let mut at = online
            .first()
            .and_then(|i| self.nodes[*i].node.chain().tip())
            .map(|t| t.share.id());
        while let Some(id) = at {
            let Some(f) = self.found.get(&id) else { break };
            on_chain.insert(id);
            uncles.extend(f.uncles.iter().copied());
            at = (f.parent != ShareId::NONE).then_some(f.parent);
        }
        let shares = self.found.len() as u64;
        let chain_shares = on_chain.len() as u64;
        let uncle_count = uncles.iter().filter(|u| !on_chain.contains(u)).count() as u64;
        let orphans = shares - chain_shares - uncle_count;

        // Money per miner: direct scripts to their miner, node scripts split by hashrate.
        let total_paid = self.paid.max(1) as f64;
        let mut miners = Vec::new();
        for (j, h) in self.miner_hashrate.iter().enumerate() {
            let node = j % self.nodes.len();
            let money = if self.miner_direct[j] {
                self.paid_by_script
                    .get(&script_for(1, j))
                    .copied()
                    .unwrap_or(0) as f64
            } else {
                let pool: f64 = self.nodes[node]
                    .miners
                    .iter()
                    .filter(|m| !self.miner_direct[**m])
                    .map(|m| self.miner_hashrate[*m])
                    .sum();
                let earned = self
                    .paid_by_script
                    .get(&script_for(2, node))
                    .copied()
                    .unwrap_or(0) as f64;
                earned * h / pool
            };
            let hashrate_share = h / self.cfg.hashrate;
            let payout_share = money / total_paid;
            miners.push(MinerReport {
                hashrate_share,
                payout_share,
                ratio: payout_share / hashrate_share,
                direct: self.miner_direct[j],
            });
        }
        let rejected = online.iter().map(|i| self.nodes[*i].node.rejected()).sum();
        self.trace.update(self.blocks.to_le_bytes());
        SimReport {
            elapsed_ms: end_mining - EPOCH_MS,
            shares,
            chain_shares,
            uncles: uncle_count,
            orphans,
            blocks: self.blocks,
            paid: self.paid,
            rewards: self.rewards,
            rejected,
            misbehaviour: self.misbehaviour,
            mean_propagation_ms: self.propagation.0 / self.propagation.1.max(1) as f64,
            converged,
            same_coinbase,
            miners,
            trace: self.trace.finalize().into(),
        }
    }
}

/// The target whose work is `work` hashes.
fn target_for_work(work: f64) -> Target {
    // 2^256 / work, through the float's exponent so any magnitude fits.
    let work = work.max(1.0);
    let log2 = 256.0 - work.log2();
    if log2 >= 256.0 {
        return Target::MAX;
    }
    let shift = log2.floor() as u32;
    let mantissa = 2f64.powf(log2 - f64::from(shift)); // in [1, 2)
    let m = (mantissa * (1u64 << 52) as f64) as u64;
    let value = if shift >= 52 {
        U256::from_u64(m) << (shift - 52)
    } else {
        U256::from_u64(m) >> (52 - shift)
    };
    Target::from_u256(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_repeats_and_spreads() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng::new(1);
        let mean: f64 = (0..100_000).map(|_| r.exponential(3.0)).sum::<f64>() / 100_000.0;
        assert!((mean - 3.0).abs() < 0.05, "{mean}");
    }

    #[test]
    fn targets_for_work_invert_work() {
        for w in [1e3, 1e9, 1e15, 1e21] {
            let got = Work::from_target(&target_for_work(w)).to_f64();
            assert!((got / w - 1.0).abs() < 2e-3, "{w}: {got}");
        }
    }

    // Keep the queue's kinds comparable without comparing payloads first by accident.
    #[test]
    fn events_order_by_time_then_sequence() {
        let mut q = BinaryHeap::new();
        q.push(Reverse((5u64, 2u64, Kind::Tick)));
        q.push(Reverse((5u64, 1u64, Kind::Join { node: 3 })));
        q.push(Reverse((4u64, 9u64, Kind::Tick)));
        let order: Vec<(u64, u64)> =
            std::iter::from_fn(|| q.pop().map(|Reverse((t, s, _))| (t, s))).collect();
        assert_eq!(order, vec![(4, 9), (5, 1), (5, 2)]);
    }
}
