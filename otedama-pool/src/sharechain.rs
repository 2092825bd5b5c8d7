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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use otedama_core::{BlockHeader, BlockTemplate};
use otedama_hash::PowAlgorithm;
use otedama_p2p::{
    ChainParams, MainWork, NetConfig, NetError, Node, NodeEvent, NodeKey, P2pService, PeerLimits,
    PowPolicy, ShareStore, Sharechain, TemplateBase,
};
use tokio::sync::broadcast::error::RecvError;

use crate::jobs::{EXTRANONCE1_SIZE, EXTRANONCE2_SIZE};
use crate::service::{SideChain, WorkTrigger};
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
#[derive(Debug, Clone)]
pub struct SharechainNode {
    service: P2pService,
    runtime: tokio::runtime::Handle,
    loaded: usize,
    /// Subscribed at the start, so [`SharechainNode::follow`] sees even a sync that finished
    /// before it was called.
    events: Arc<std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<NodeEvent>>>>,
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
        let mut node = Node::new(chain, PowPolicy::Verify(kernel), PeerLimits::default());
        node.persist_to(Box::new(store));
        if net.peers.is_empty() {
            node.start_alone();
        }
        let service = P2pService::start(node, key, net).await?;
        let events = Arc::new(std::sync::Mutex::new(Some(service.events())));
        Ok(SharechainNode {
            service,
            runtime: tokio::runtime::Handle::current(),
            loaded,
            events,
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
                if !node.is_synced() {
                    return Err(SourceError::NotReady {
                        what: format!(
                            "the sharechain is syncing ({} shares held)",
                            node.chain().len()
                        ),
                    });
                }
                node.chain()
                    .template_base(main, unix_now(), EXTRANONCE1_SIZE + EXTRANONCE2_SIZE)
                    .map_err(|e| SourceError::NotReady {
                        what: format!("the sharechain cannot build a share: {e}"),
                    })
            });
            // The template thread is not one of the runtime's: it may wait on the node.
            runtime.block_on(asked).map_err(|e| SourceError::NotReady {
                what: e.to_string(),
            })?
        };
        let (service, runtime) = (self.service.clone(), self.runtime.clone());
        let shares = move |share: otedama_p2p::Share| {
            let service = service.clone();
            // The share is in the pool's share log already; the sharechain takes it in the
            // background, and a share it refuses is reported through its events.
            runtime.spawn(async move {
                let _ = service.submit(share).await;
            });
        };
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
        self.runtime.spawn(async move {
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
        })
    }

    /// Stops the node and its connections.
    pub fn shutdown(&self) {
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
