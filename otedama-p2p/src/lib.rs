//! The otedama sharechain: a chain of shares that every node of a peer-to-peer pool agrees
//! on, whose window is paid straight from the coinbase of every block any of them finds.
//!
//! - [`ChainParams`] holds every rule of a chain; they hash to a [`ConsensusId`], so chains
//!   with different rules never mix.
//! - A [`Share`] is a main-chain block that meets the share target, plus its [`ShareInfo`]
//!   (parent, uncles, height, time, target, payout), bound to the block through a commitment
//!   in a coinbase that every node rebuilds: an `OP_RETURN` output up the merkle branch to a
//!   Bitcoin-family header, or the extra data of a RandomX devnet coinbase whose sha256d is the
//!   blob's tree root ([`Layout`], [`MainProof`]; [`Sharechain::rx_template_base`]).
//! - [`Sharechain`] validates shares (targets by integer ASERT, timestamps, uncles, the
//!   coinbase) and chooses the tip by cumulative work, uncles' work included.
//! - [`window`] computes the PPLNS window in work and its payout outputs, exactly.
//! - [`Node`] is the gossip state machine (announce, fetch ancestors, sync a horizon,
//!   limits), sans-IO; [`sim`] drives many nodes in virtual time.
//!
//! # Example
//!
//! Start a chain, mine its genesis share on a main-chain block, and check what a peer checks:
//!
//! ```
//! use otedama_core::{BlockHeader, CompactTarget, MerkleBranch, Target};
//! use otedama_hash::Algorithm;
//! use otedama_p2p::{ChainParams, MainWork, Sharechain};
//!
//! let params = ChainParams::main("devnet", Algorithm::Sha256d, "devnet", Target::MAX);
//! let mut chain = Sharechain::new(params.clone());
//! let main = MainWork {
//!     header: BlockHeader {
//!         version: 0x2000_0000,
//!         prev_blockhash: [0; 32],
//!         merkle_root: [0; 32],
//!         time: 1_700_000_000,
//!         bits: CompactTarget::from_consensus(0x207f_ffff),
//!         nonce: 0,
//!     },
//!     height: 1,
//!     reward: 5_000_000_000,
//!     witness_root: None,
//!     branch: MerkleBranch::default(),
//! };
//! let payout = [0x51]; // OP_TRUE, a script anyone can spend: fine on a devnet.
//! let template = chain.template(&payout, main, 1_700_000_000, 8)?;
//! // The easiest target accepts any hash, so the first nonce solves this share.
//! let header = template.header(&[0; 8])?;
//! let share = template.finish(header, &[0; 8]);
//! let added = chain.add(share, 1_700_000_000)?;
//! assert!(added.new_tip);
//! assert_eq!(template.outputs.iter().map(|(_, v)| v).sum::<u64>(), 5_000_000_000);
//!
//! // Another node with the same rules rebuilds the same coinbase and accepts the share.
//! let mut peer = Sharechain::new(params);
//! peer.add(chain.tip().unwrap().share.clone(), 1_700_000_000)?;
//! # Ok::<(), otedama_p2p::ShareError>(())
//! ```
#![forbid(unsafe_code)]

mod asert;
mod chain;
mod error;
mod message;
#[cfg(feature = "tokio")]
mod net;
mod node;
mod params;
#[cfg(feature = "tokio")]
mod secure;
mod share;
pub mod sim;
#[cfg(feature = "sqlite")]
mod store;
pub mod window;

pub use asert::next_target;
pub use chain::{
    Added, Entry, MainWork, RxMainWork, RxShareTemplate, ShareTemplate, Sharechain, TemplateBase,
    Verification,
};
pub use error::{DecodeError, ParamsError, ShareError};
pub use message::{
    Message, MAX_ANCESTORS, MAX_BLOCK, MAX_GOSSIP, MAX_MESSAGE, MAX_PEER_ADDRS, MAX_REQUEST_IDS,
};
#[cfg(feature = "tokio")]
pub use net::{NetConfig, NetError, P2pService, PeerInfo};
pub use node::{Node, NodeEvent, PeerId, PeerLimits, PowPolicy, ShareSink};
pub use params::{ChainParams, ConsensusId};
#[cfg(feature = "tokio")]
pub use secure::{frame, Channel, ChannelError, FrameReader, Handshake, NodeKey, Role, Step};
pub use share::{
    build_coinbase, coinbase_root, rx_coinbase, rx_committed_difficulty, BitcoinProof, Layout,
    MainProof, RxProof, Share, ShareId, ShareInfo, COMMITMENT_SCRIPT_PREFIX, MAX_BRANCH,
    MAX_EXTRANONCE, MAX_PAYOUT_SCRIPT, MAX_RX_BLOB, MAX_UNCLES_ENCODED, RX_EXTRA_PREFIX,
};
#[cfg(feature = "sqlite")]
pub use store::{ShareStore, StoreError};
