//! A sharechain pool (feature `p2p`): the pool's Stratum service mining on an
//! [`otedama_p2p`] sharechain that runs on the network.
//!
//! [`SharechainNode::start`] opens the sharechain's SQLite file, loads the chain kept there,
//! and starts the node on the network ([`P2pService`]). [`SharechainNode::side_chain`] is what
//! [`PoolService::start_sharechain`](crate::service::PoolService::start_sharechain) takes: on
//! every main-chain template it asks the node for the next share's [`TemplateBase`] (held
//! back with [`SourceError::NotReady`] until the node has synced, so nobody mines on an
//! isolated chain), and it hands the shares the pool's miners find to the node, which adds
//! and announces them. [`SharechainNode::follow`] asks the pool for fresh work each time the
//! sharechain's tip moves.
//!
//! Every job's coinbase is the sharechain's, paying the window of the chain; each miner's own
//! share pays its own address, so a block found by any node of the sharechain pays every miner
//! in the window directly.
//!
//! A RandomX pool on the devnet mines a sharechain the same way through
//! [`SharechainNode::rx_side_chain`], which
//! [`PoolService::start_rx_sharechain`](crate::service::PoolService::start_rx_sharechain)
//! takes: every session's blob commits to the devnet coinbase paying the window, and its
//! shares pay the address its miner logged in with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use otedama_core::bitcoin::ScriptBuf;
use otedama_core::{AddressParams, BlockHeader, BlockTemplate};
use otedama_hash::PowAlgorithm;
use otedama_p2p::{
    ChainParams, MainWork, NetConfig, NetError, Node, NodeEvent, NodeKey, P2pService, PeerLimits,
    PowPolicy, RxMainWork, Share, ShareSink, ShareStore, Sharechain, TemplateBase,
};

/// A walk of the window for RandomX shares, kept for the sessions of one block (its height
/// and parent).
type KeptBase = Arc<std::sync::Mutex<Option<(u64, [u8; 32], TemplateBase<RxMainWork>)>>>;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::store::{BlockRecord, BlockStatus, ShareLog};

use crate::jobs::{EXTRANONCE1_SIZE, EXTRANONCE2_SIZE};
use crate::monero::RxWork;
use crate::service::{RxSideChain, SideChain, WorkTrigger};
use crate::source::SourceError;

/// What a sharechain node needs.
pub struct SharechainConfig {
    /// The chain's rules (every node of one sharechain has the same).
    pub params: ChainParams,
    /// How the node meets the network.
    pub net: NetConfig,
    /// The node's key for the encrypted channel.
    pub key: NodeKey,
    /// The SQLite file the chain is kept in.
    pub store: PathBuf,
    /// The proof-of-work kernel received shares are checked with.
    pub kernel: Arc<dyn PowAlgorithm>,
}

impl std::fmt::Debug for SharechainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharechainConfig")
            .field("params", &self.params)
            .field("net", &self.net)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Why the sharechain node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharechainError {
    /// The chain's parameters do not make a chain that can run.
    #[error(transparent)]
    Params(#[from] otedama_p2p::ParamsError),
    /// The chain's SQLite file could not be opened or read.
    #[error("sharechain store {path}")]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: otedama_p2p::StoreError,
    },
    /// The network service could not start.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// A running sharechain node, for a pool to mine on.
#[derive(Clone)]
pub struct SharechainNode {
    service: P2pService,
    runtime: tokio::runtime::Handle,
    loaded: usize,
    /// Subscribed at the start, so [`SharechainNode::follow`] sees even a sync that finished
    /// before it was called.
    events: Arc<std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<NodeEvent>>>>,
    /// Every share the node accepts, as it keeps it (up to [`BOOKING_QUEUE`] waiting); taken
    /// by [`SharechainNode::record_blocks`], which keeps up with one hash a share.
    blocks: Arc<std::sync::Mutex<Option<mpsc::Receiver<Arc<Share>>>>>,
    /// The kernel a share's block is hashed with to see whether it meets the main chain's
    /// target.
    kernel: Arc<dyn PowAlgorithm>,
    /// The tasks [`SharechainNode::follow`] and [`SharechainNode::record_blocks`] started,
    /// stopped with the node.
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl std::fmt::Debug for SharechainNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharechainNode")
            .field("service", &self.service)
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

/// How many kept shares wait for [`SharechainNode::record_blocks`] to look at them: a sync's
/// worth (two windows of the main tier), so that no block is missed before booking starts or
/// while it hashes; past it, with nobody booking, the newest are not queued.
const BOOKING_QUEUE: usize = 16_384;

/// The node's store, which also passes on every share it keeps to the block booking
/// ([`SharechainNode::record_blocks`], which hashes them off the node's task: a RandomX hash
/// takes milliseconds).
struct Tee {
    store: ShareStore,
    blocks: mpsc::Sender<Arc<Share>>,
}

impl ShareSink for Tee {
    fn save(&mut self, share: &Share) {
        self.store.save(share);
        let _ = self.blocks.try_send(Arc::new(share.clone()));
    }

    fn prune(&mut self, below_height: u64) {
        self.store.prune(below_height);
    }
}

/// What [`SharechainNode::record_blocks`] needs to book the sharechain's main-chain blocks.
#[derive(Debug, Clone)]
pub struct BlockBook {
    /// The pool's algorithm, as its blocks are recorded under.
    pub algorithm: String,
    /// The payout the pool's own shares pay (its pooled miners' part of every window): a
    /// script, or on a RandomX chain the address as text.
    pub payout: Vec<u8>,
    /// How payouts read as addresses, to name a block's finder.
    pub names: PayoutNames,
}

/// How a sharechain's payouts read as the main chain's addresses.
#[derive(Debug, Clone, Copy)]
pub enum PayoutNames {
    /// Output scripts of a Bitcoin-family chain, named by its addresses.
    Script(AddressParams),
    /// Addresses written as text (the RandomX devnet's coinbase).
    Text,
}

impl PayoutNames {
    /// The address `payout` pays, or its bytes in hex when it names none.
    pub fn name(&self, payout: &[u8]) -> String {
        let named = match self {
            PayoutNames::Script(chain) => chain.address_of(&ScriptBuf::from_bytes(payout.to_vec())),
            PayoutNames::Text => std::str::from_utf8(payout).ok().map(str::to_owned),
        };
        named.unwrap_or_else(|| otedama_core::encode_hex(payout))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The main-chain block a share on `template` is part of.
pub fn main_work(template: &BlockTemplate) -> MainWork {
    MainWork {
        header: BlockHeader {
            version: template.version,
            prev_blockhash: template.prev_hash,
            merkle_root: [0; 32],
            time: template.curtime,
            bits: template.bits,
            nonce: 0,
        },
        height: u32::try_from(template.height).unwrap_or(u32::MAX),
        reward: template.coinbase_value,
        witness_root: template
            .witness_commitment
            .is_some()
            .then(|| template.witness_root()),
        branch: template.merkle_branch(),
    }
}

impl SharechainNode {
    /// Loads the chain kept in the store and starts the node on the current tokio runtime. A
    /// node with no peers to dial starts its own chain at once (the first node of a new
    /// sharechain); any other waits until a peer has synced it.
    pub async fn start(config: SharechainConfig) -> Result<SharechainNode, SharechainError> {
        let SharechainConfig {
            params,
            net,
            key,
            store: path,
            kernel,
        } = config;
        params.validate()?;
        let id = params.consensus_id();
        let store_error = |source| SharechainError::Store {
            path: path.clone(),
            source,
        };
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let store = ShareStore::open(&path, &id)?;
                let mut chain = Sharechain::new(params);
                let (loaded, _skipped) = store.load_into(&mut chain, unix_now())?;
                Ok::<_, otedama_p2p::StoreError>((store, chain, loaded))
            })
            .await
            .map_err(|_| NetError::Stopped)?
        };
        let (store, chain, loaded) = opened.map_err(store_error)?;
        let mut node = Node::new(
            chain,
            PowPolicy::Verify(Arc::clone(&kernel)),
            PeerLimits::default(),
        );
        let (blocks_tx, blocks) = mpsc::channel(BOOKING_QUEUE);
        node.persist_to(Box::new(Tee {
            store,
            blocks: blocks_tx,
        }));
        if net.peers.is_empty() {
            node.start_alone();
        }
        let service = P2pService::start(node, key, net).await?;
        let events = Arc::new(std::sync::Mutex::new(service.events_since_start()));
        Ok(SharechainNode {
            service,
            runtime: tokio::runtime::Handle::current(),
            loaded,
            events,
            blocks: Arc::new(std::sync::Mutex::new(Some(blocks))),
            kernel,
            tasks: Arc::default(),
        })
    }

    /// The node on the network: its chain, peers and events.
    pub fn service(&self) -> &P2pService {
        &self.service
    }

    /// How many shares were loaded from the store at the start.
    pub fn loaded(&self) -> usize {
        self.loaded
    }

    /// What the pool service takes to mine on this sharechain
    /// ([`PoolService::start_sharechain`](crate::service::PoolService::start_sharechain)).
    pub fn side_chain(&self) -> SideChain {
        let (service, runtime) = (self.service.clone(), self.runtime.clone());
        let plan = move |template: &BlockTemplate| {
            let main = main_work(template);
            let asked = service.inspect(move |node| {
                synced_base(node, |chain| {
                    chain.template_base(main, unix_now(), EXTRANONCE1_SIZE + EXTRANONCE2_SIZE)
                })
            });
            // The template thread is not one of the runtime's: it may wait on the node.
            runtime.block_on(asked).map_err(|e| SourceError::NotReady {
                what: e.to_string(),
            })?
        };
        let shares = self.share_taker();
        let (service, runtime) = (self.service.clone(), self.runtime.clone());
        let blocks = move |raw: Vec<u8>| {
            let service = service.clone();
            runtime.spawn(async move {
                let _ = service.relay_block(raw).await;
            });
        };
        SideChain {
            plan: Box::new(plan),
            shares: Box::new(shares),
            blocks: Box::new(blocks),
        }
    }

    /// Where the pool's shares that met the sharechain's target go. Each is in the pool's
    /// share log already and the engine has hashed it against the share target: the node takes
    /// it in the background without hashing it again, and a share it refuses is reported
    /// through its events.
    fn share_taker(&self) -> impl Fn(Share) + Send + Sync + 'static {
        let (service, runtime) = (self.service.clone(), self.runtime.clone());
        move |share: Share| {
            let service = service.clone();
            runtime.spawn(async move {
                let _ = service.submit_verified(share).await;
            });
        }
    }

    /// What a RandomX pool service takes to mine on this sharechain
    /// ([`PoolService::start_rx_sharechain`](crate::service::PoolService::start_rx_sharechain)).
    ///
    /// The service's tip thread asks first on each new tip or sharechain move (with the pool's
    /// address): that call walks the window once, on the node, and keeps the result. Sessions
    /// then ask from the runtime's tasks, which must not wait on the node: their shares are
    /// built from the kept walk, for the work it was made on only
    /// ([`SourceError::NotReady`] otherwise, until the tip thread catches up).
    pub fn rx_side_chain(&self) -> RxSideChain {
        let (service, runtime) = (self.service.clone(), self.runtime.clone());
        let kept: KeptBase = Arc::default();
        let plan = move |work: &RxWork, payout: &[u8], reserved: [u8; 8]| {
            let on_runtime = tokio::runtime::Handle::try_current().is_ok();
            let base = if on_runtime {
                let kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                match kept.as_ref() {
                    Some((height, prev, base))
                        if *height == work.height && *prev == work.prev_id =>
                    {
                        base.clone()
                    }
                    _ => {
                        return Err(SourceError::NotReady {
                            what: "the sharechain's share on the new tip is being built".into(),
                        })
                    }
                }
            } else {
                let main = RxMainWork {
                    blob: work.blob.clone(),
                    height: work.height,
                    difficulty: work.difficulty,
                    reward: work.reward,
                };
                let asked = service.inspect(move |node| {
                    synced_base(node, |chain| chain.rx_template_base(main, unix_now()))
                });
                let base = runtime
                    .block_on(asked)
                    .map_err(|e| SourceError::NotReady {
                        what: e.to_string(),
                    })??;
                *kept.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((work.height, work.prev_id, base.clone()));
                base
            };
            base.for_rx_payout(payout, reserved)
                .map(Arc::new)
                .map_err(|e| SourceError::NotReady {
                    what: format!("the sharechain cannot build a share: {e}"),
                })
        };
        RxSideChain {
            plan: Box::new(plan),
            shares: Box::new(self.share_taker()),
        }
    }

    /// Asks `pool` for fresh work whenever the sharechain's tip moves or the node finishes
    /// syncing, and hands the main-chain blocks peers relay to the pool's node, until the
    /// pool stops; `on_event` sees every event of the node since its start first (a second
    /// call sees those since the call).
    pub fn follow(
        &self,
        pool: WorkTrigger,
        on_event: impl Fn(&NodeEvent) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| self.service.events());
        self.track(self.runtime.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        on_event(&event);
                        let alive = match event {
                            NodeEvent::NewTip { .. } | NodeEvent::Synced { .. } => pool.refresh(),
                            NodeEvent::MainBlock { raw, .. } => pool.relay_block(raw),
                            _ => true,
                        };
                        if !alive {
                            return;
                        }
                    }
                    // Events were dropped: the tip may have moved.
                    Err(RecvError::Lagged(_)) => {
                        if !pool.refresh() {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }))
    }

    /// Records in `log` every main-chain block a share of the sharechain is (whichever node
    /// found it) whose coinbase pays the pool's own script: what the pool's ledger gets of
    /// it is that output, which the accounting credits to the pool's pooled miners once the
    /// block matures. Runs until the node stops; only the first call books.
    pub fn record_blocks(&self, log: ShareLog, book: BlockBook) -> tokio::task::JoinHandle<()> {
        let taken = self.blocks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let service = self.service.clone();
        let kernel = Arc::clone(&self.kernel);
        self.track(self.runtime.spawn(async move {
            // A second call books nothing: the first has the blocks.
            let Some(mut blocks) = taken else { return };
            while let Some(share) = blocks.recv().await {
                let Ok(target) = share.main_target() else {
                    continue;
                };
                let (kernel, hashed) = (Arc::clone(&kernel), Arc::clone(&share));
                let is_block =
                    tokio::task::spawn_blocking(move || main_block(&hashed, kernel.as_ref()))
                        .await
                        .unwrap_or(false);
                if !is_block {
                    continue;
                }
                let info = share.info.clone();
                let outputs = service
                    .inspect(move |node| node.chain().outputs_for(&info, &target))
                    .await
                    .ok()
                    .flatten();
                let Some(outputs) = outputs else { continue };
                let part: u64 = outputs
                    .iter()
                    .filter(|(script, _)| script.as_bytes() == book.payout.as_slice())
                    .map(|(_, value)| *value)
                    .sum();
                if part == 0 {
                    continue;
                }
                // The hash as the engine records the block it found itself.
                let hash = match share.header() {
                    Some(header) => {
                        let mut hash = header.block_hash();
                        hash.reverse();
                        otedama_core::encode_hex(&hash)
                    }
                    None => crate::monero::rx_block_id(&share.pow_input()),
                };
                let record = BlockRecord {
                    algorithm: book.algorithm.clone(),
                    // When it is booked, after the share came: a block this pool found keeps
                    // its finder's share inside its PPLNS window whichever record stands.
                    time_ms: crate::accounting::now_ms(),
                    height: u64::from(share.info.main_height),
                    hash,
                    address: book.names.name(&share.info.payout),
                    worker: String::new(),
                    reward: part,
                    status: BlockStatus::Submitted,
                    detail: Some(format!("share {} of the sharechain", share.id())),
                    payee: None,
                };
                let log = log.clone();
                // A block this pool found is recorded by its engine too: the first record
                // stands, and both carry the same part.
                let _ = tokio::task::spawn_blocking(move || log.record_block(record)).await;
            }
        }))
    }

    fn track(&self, task: tokio::task::JoinHandle<()>) -> tokio::task::JoinHandle<()> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task.abort_handle());
        task
    }

    /// Stops the node, its connections, and the tasks that follow it.
    pub fn shutdown(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        self.service.shutdown();
    }
}

/// The next share's base on `chain` for `template`, as a pool's plan builds it: for
/// embedders that drive a [`Sharechain`] themselves (a simulator, a test).
pub fn template_base(
    chain: &Sharechain,
    template: &BlockTemplate,
    now: u64,
) -> Result<TemplateBase, otedama_p2p::ShareError> {
    chain.template_base(
        main_work(template),
        now,
        EXTRANONCE1_SIZE + EXTRANONCE2_SIZE,
    )
}

/// The next share's base from `build`, once the node has synced: until then no work goes out,
/// so nobody mines on an isolated chain.
fn synced_base<M>(
    node: &Node,
    build: impl FnOnce(&Sharechain) -> Result<TemplateBase<M>, otedama_p2p::ShareError>,
) -> Result<TemplateBase<M>, SourceError> {
    if !node.is_synced() {
        return Err(SourceError::NotReady {
            what: format!(
                "the sharechain is syncing ({} shares held)",
                node.chain().len()
            ),
        });
    }
    build(node.chain()).map_err(|e| SourceError::NotReady {
        what: format!("the sharechain cannot build a share: {e}"),
    })
}

/// Whether a share's block meets the main chain's target (its header's bits, or its
/// committed difficulty): a main-chain block.
fn main_block(share: &Share, kernel: &dyn PowAlgorithm) -> bool {
    let Ok(target) = share.main_target() else {
        return false;
    };
    kernel
        .hash(&share.pow_input())
        .is_ok_and(|out| kernel.algorithm().hash_order().meets(&out.hash, &target))
}

/// `GET /api/sharechain` for a pool on this node: `names` names the addresses its window pays.
#[cfg(feature = "http")]
#[derive(Debug, Clone)]
pub struct SharechainApi {
    /// The node.
    pub node: SharechainNode,
    /// How the window's payouts read as addresses.
    pub names: PayoutNames,
}

#[cfg(feature = "http")]
impl crate::http::SharechainStatus for SharechainApi {
    fn status(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<crate::http::SharechainBody>> + Send + '_>,
    > {
        Box::pin(async move {
            use crate::http::{SharechainBody, SharechainPayoutBody, SharechainPeerBody};
            let service = self.node.service();
            let names = self.names;
            let mut body = service
                .inspect(move |node| {
                    let c = node.chain();
                    let tip = c.tip();
                    let window = tip
                        .and_then(|t| {
                            let target = t.share.main_target().ok()?;
                            c.outputs_for(&t.share.info, &target)
                        })
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(script, amount)| SharechainPayoutBody {
                            address: names.name(script.as_bytes()),
                            amount,
                        })
                        .collect();
                    SharechainBody {
                        chain: c.params().name.clone(),
                        synced: node.is_synced(),
                        height: tip.map(|t| t.share.info.height),
                        tip: tip.map(|t| t.share.id().to_string()),
                        shares: c.len(),
                        received: node.received(),
                        refused: node.rejected(),
                        peers: Vec::new(),
                        window,
                    }
                })
                .await
                .ok()?;
            body.peers = service
                .peers()
                .await
                .ok()?
                .into_iter()
                .map(|p| SharechainPeerBody {
                    address: p.addr.to_string(),
                    inbound: p.inbound,
                    key: otedama_core::encode_hex(&p.key),
                })
                .collect();
            Some(body)
        })
    }
}
