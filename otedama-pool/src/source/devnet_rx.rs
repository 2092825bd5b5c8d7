//! The embedded RandomX devnet: an in-process chain with an easy, adjustable difficulty, so a
//! RandomX pool works on a fresh machine with no monerod. Its hashing blobs have Monero's
//! layout, so xmrig-style miners mine it unchanged, and it checks submitted blocks as a node
//! would: parent, coinbase height and amounts, tree root and RandomX proof of work.
//!
//! Devnet simplifications, all deliberate:
//! - One RandomX key for the whole chain, [`DEVNET_RX_SEED`] (Monero re-keys every 2048 blocks
//!   from an older block's id).
//! - The coinbase is a devnet byte string ([`otedama_core::rx`]): the height (8 bytes
//!   little-endian), 8 reserved bytes the pool fills per session, then either the payout
//!   address as text ([`coinbase`]) or a list of outputs and extra data (a sharechain's
//!   coinbase, which pays its whole window); outputs may not add up to more than the reward, and
//!   a sharechain's extra data must commit to the network's difficulty.
//! - The tree root is sha256d(coinbase) (Monero hashes a keccak tree of transaction ids), and a
//!   block's id is Monero's (Keccak-256 of the hashing blob after its length).
//! - The difficulty is fixed (Monero retargets every block).
//!
//! The hashing blob, 76 bytes: varint major version 16, varint minor version 16, varint
//! timestamp (5 bytes for current unix times), previous block id (32), nonce (4, little-endian,
//! at byte [`RX_NONCE_OFFSET`]), tree root (32), varint transaction count 1.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otedama_core::rx::{RxCoinbase, RxFormatError, RxPayees};
use otedama_core::{encode_hex, monero_check_hash, sha256d};
use otedama_hash::{HashError, PowAlgorithm, RandomX, RandomXMode};

use crate::monero::{RxSource, RxWork};
use crate::source::{BlockRejection, SourceError, SubmitError};

/// The RandomX key (Monero's "seed hash") of every devnet block: 32 fixed ASCII bytes.
pub const DEVNET_RX_SEED: [u8; 32] = *b"otedama randomx devnet seed 0001";

/// The block major and minor version the devnet writes (Monero's RandomX era).
pub const RX_BLOCK_VERSION: u64 = 16;

pub use otedama_core::rx::{RxBlob, RX_BLOB_LEN, RX_NONCE_OFFSET};

// The devnet's blobs put the nonce where xmrig and the stratum codec expect it.
const _: () = assert!(RX_NONCE_OFFSET == otedama_stratum::MONERO_NONCE_OFFSET);

/// The reward of every devnet block, in piconero (0.6 XMR, Monero's tail emission).
pub const RX_DEVNET_REWARD: u64 = 600_000_000_000;

/// Timestamps from here on take exactly five varint bytes, which puts the nonce at byte 39.
const MIN_TIMESTAMP: u64 = 1 << 28;

/// Why the devnet refused a block; the messages name what a node would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RxReject {
    /// The blob or coinbase cannot be read.
    #[error("bad-block-encoding: {0}")]
    Malformed(String),
    /// A version other than [`RX_BLOCK_VERSION`].
    #[error("bad-version: major {major} minor {minor} (expected {RX_BLOCK_VERSION})")]
    BadVersion {
        /// The major version.
        major: u64,
        /// The minor version.
        minor: u64,
    },
    /// The block is already in the chain.
    #[error("duplicate: block {0} is already in the chain")]
    Duplicate(String),
    /// The block does not build on the tip.
    #[error("bad-prevblk: builds on {got}, the tip is {tip}")]
    BadPrev {
        /// The parent the block names.
        got: String,
        /// The current tip.
        tip: String,
    },
    /// The coinbase names another height.
    #[error("bad-cb-height: coinbase height {got}, expected {expected}")]
    BadHeight {
        /// The height the coinbase names.
        got: u64,
        /// The next height.
        expected: u64,
    },
    /// The coinbase's outputs add up to more than the block's reward (`None`: past 2^64).
    #[error("bad-cb-amount: the coinbase pays {total:?}, more than the reward {reward}")]
    Overpays {
        /// What the outputs add up to.
        total: Option<u64>,
        /// The reward.
        reward: u64,
    },
    /// A sharechain coinbase commits to another difficulty than the network's.
    #[error("bad-cb-difficulty: the coinbase commits to difficulty {committed}, the network's is {network}")]
    WrongDifficulty {
        /// What the coinbase's extra data names.
        committed: u64,
        /// The network difficulty.
        network: u64,
    },
    /// The tree root is not sha256d(coinbase).
    #[error("bad-tree-root: the blob's tree root does not commit to the coinbase")]
    BadTreeRoot,
    /// The proof of work misses the network difficulty.
    #[error("high-hash: proof of work {hash} misses difficulty {difficulty}")]
    HighHash {
        /// The RandomX hash, hex as computed.
        hash: String,
        /// The network difficulty.
        difficulty: u64,
    },
    /// RandomX could not hash the blob.
    #[error("proof of work: {0}")]
    Pow(String),
}

/// Work for one miner (or one pool session): a hashing blob with a zero nonce and the
/// coinbase it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxTemplate {
    /// The hashing blob, nonce zero.
    pub blob: Vec<u8>,
    /// The coinbase the blob's tree root commits to.
    pub coinbase: Vec<u8>,
    /// Height of the block being built.
    pub height: u64,
    /// The network difficulty (Monero convention).
    pub difficulty: u64,
    /// The RandomX key.
    pub seed: [u8; 32],
    /// The block this one builds on.
    pub prev_id: [u8; 32],
    /// What the block pays, in piconero.
    pub reward: u64,
}

impl From<RxReject> for SubmitError {
    /// A refusal as a node's: a block already in the chain is a duplicate, anything else
    /// invalid with the devnet's reason.
    fn from(reject: RxReject) -> SubmitError {
        SubmitError::Rejected(match reject {
            RxReject::Duplicate(_) => BlockRejection::Duplicate,
            other => BlockRejection::Invalid(other.to_string()),
        })
    }
}

impl From<RxTemplate> for RxWork {
    fn from(t: RxTemplate) -> RxWork {
        RxWork {
            blob: t.blob,
            coinbase: t.coinbase,
            height: t.height,
            difficulty: t.difficulty,
            seed: t.seed,
            prev_id: t.prev_id,
            reward: t.reward,
        }
    }
}

/// The devnet coinbase paying one address (v1): height (8 bytes little-endian),
/// `reserved`, then `address`.
pub fn coinbase(height: u64, reserved: [u8; 8], address: &str) -> Vec<u8> {
    RxCoinbase {
        height,
        reserved,
        payees: RxPayees::Address(address.as_bytes().to_vec()),
    }
    .to_bytes()
}

impl From<RxFormatError> for RxReject {
    fn from(e: RxFormatError) -> RxReject {
        RxReject::Malformed(e.to_string())
    }
}

#[derive(Debug)]
struct Chain {
    tip: [u8; 32],
    height: u64,
    last_time: u64,
    accepted: Vec<[u8; 32]>,
}

/// The RandomX devnet. Share it behind an `Arc`; every method takes `&self`.
pub struct RxDevnet {
    chain: Mutex<Chain>,
    difficulty: u64,
    kernel: RandomX,
    tips: Condvar,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RxDevnet {
    /// A fresh chain at height 0 whose blocks must meet the Monero `difficulty` (at least 1).
    /// Builds the devnet's own light-mode RandomX verifier for [`DEVNET_RX_SEED`].
    pub fn new(difficulty: u64) -> Result<RxDevnet, HashError> {
        let kernel = RandomX::new(&DEVNET_RX_SEED, RandomXMode::Light, 1)?;
        Ok(RxDevnet {
            chain: Mutex::new(Chain {
                tip: sha256d(b"otedama randomx devnet genesis"),
                height: 0,
                last_time: now_secs().max(MIN_TIMESTAMP),
                accepted: Vec::new(),
            }),
            difficulty: difficulty.max(1),
            kernel,
            tips: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The network difficulty.
    pub fn difficulty(&self) -> u64 {
        self.difficulty
    }

    /// The height of the tip.
    pub fn height(&self) -> u64 {
        self.lock().height
    }

    /// Ids of the accepted blocks, oldest first.
    pub fn accepted(&self) -> Vec<[u8; 32]> {
        self.lock().accepted.clone()
    }

    /// Waits up to `timeout` for the tip to move past `height`; returns the tip's height
    /// either way.
    pub fn wait_for_tip(&self, height: u64, timeout: Duration) -> u64 {
        let chain = self.lock();
        let (chain, _) = self
            .tips
            .wait_timeout_while(chain, timeout, |c| c.height <= height)
            .unwrap_or_else(|p| p.into_inner());
        chain.height
    }

    /// Waits up to `timeout` for the tip to be another block than `tip`; returns whether it
    /// is.
    pub fn wait_for_new_tip(&self, tip: &[u8; 32], timeout: Duration) -> bool {
        let chain = self.lock();
        let (chain, _) = self
            .tips
            .wait_timeout_while(chain, timeout, |c| c.tip == *tip)
            .unwrap_or_else(|p| p.into_inner());
        chain.tip != *tip
    }

    /// Work on the tip paying `address`, with `reserved` in the coinbase (a pool gives every
    /// session its own, so no two sessions hash the same blob).
    pub fn template(&self, address: &str, reserved: [u8; 8]) -> RxTemplate {
        let chain = self.lock();
        let height = chain.height + 1;
        let coinbase = coinbase(height, reserved, address);
        let blob = RxBlob {
            major: RX_BLOCK_VERSION,
            minor: RX_BLOCK_VERSION,
            timestamp: now_secs().max(chain.last_time).max(MIN_TIMESTAMP),
            prev_id: chain.tip,
            nonce: 0,
            tree_root: sha256d(&coinbase),
            tx_count: 1,
        };
        RxTemplate {
            blob: blob.to_bytes(),
            coinbase,
            height,
            difficulty: self.difficulty,
            seed: DEVNET_RX_SEED,
            prev_id: chain.tip,
            reward: RX_DEVNET_REWARD,
        }
    }

    /// Checks a block (hashing blob and coinbase) as a node would and, when it is good, makes
    /// it the tip; returns its id.
    pub fn submit(&self, blob: &[u8], coinbase: &[u8]) -> Result<[u8; 32], RxReject> {
        let parsed = RxBlob::parse(blob)?;
        if parsed.major != RX_BLOCK_VERSION || parsed.minor != RX_BLOCK_VERSION {
            return Err(RxReject::BadVersion {
                major: parsed.major,
                minor: parsed.minor,
            });
        }
        if parsed.tx_count != 1 {
            return Err(RxReject::Malformed(format!(
                "{} transactions; the devnet takes the coinbase alone",
                parsed.tx_count
            )));
        }
        let id = otedama_core::monero::block_id(blob);
        // The hash is the slow part: compute it before taking the chain lock.
        let pow = self
            .kernel
            .hash(blob)
            .map_err(|e| RxReject::Pow(e.to_string()))?
            .hash;
        let mut chain = self.lock();
        if parsed.prev_id != chain.tip {
            if chain.accepted.contains(&id) {
                return Err(RxReject::Duplicate(encode_hex(&id)));
            }
            return Err(RxReject::BadPrev {
                got: encode_hex(&parsed.prev_id),
                tip: encode_hex(&chain.tip),
            });
        }
        let cb = RxCoinbase::parse(coinbase)?;
        if cb.height != chain.height + 1 {
            return Err(RxReject::BadHeight {
                got: cb.height,
                expected: chain.height + 1,
            });
        }
        match cb.payees.total() {
            Some(total) if total <= RX_DEVNET_REWARD => {}
            total => {
                return Err(RxReject::Overpays {
                    total,
                    reward: RX_DEVNET_REWARD,
                })
            }
        }
        if let RxPayees::Outputs { extra, .. } = &cb.payees {
            match otedama_p2p::rx_committed_difficulty(extra) {
                Some(committed) if committed != self.difficulty => {
                    return Err(RxReject::WrongDifficulty {
                        committed,
                        network: self.difficulty,
                    })
                }
                _ => {}
            }
        }
        if parsed.tree_root != sha256d(coinbase) {
            return Err(RxReject::BadTreeRoot);
        }
        if !monero_check_hash(&pow, self.difficulty) {
            return Err(RxReject::HighHash {
                hash: encode_hex(&pow),
                difficulty: self.difficulty,
            });
        }
        chain.tip = id;
        chain.height += 1;
        chain.last_time = chain.last_time.max(parsed.timestamp);
        chain.accepted.push(id);
        drop(chain);
        self.tips.notify_all();
        Ok(id)
    }
}

/// The devnet as a RandomX pool's work source: every call answers at once and never fails
/// for want of a node.
impl RxSource for RxDevnet {
    fn work(&self, payout: &str, reserved: [u8; 8]) -> Result<RxWork, SourceError> {
        Ok(self.template(payout, reserved).into())
    }

    fn wait_for_tip(&self, tip: &[u8; 32], timeout: Duration) -> Result<bool, SourceError> {
        Ok(self.wait_for_new_tip(tip, timeout))
    }

    fn submit(&self, blob: &[u8], coinbase: &[u8]) -> Result<(), SubmitError> {
        RxDevnet::submit(self, blob, coinbase)
            .map(|_| ())
            .map_err(SubmitError::from)
    }
}

impl std::fmt::Debug for RxDevnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain = self.lock();
        write!(
            f,
            "RxDevnet(height {}, tip {}, difficulty {})",
            chain.height,
            encode_hex(&chain.tip),
            self.difficulty
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

    /// The first nonce from `start` whose hash does (`wanted`) or does not meet `difficulty`.
    fn find(devnet: &RxDevnet, blob: &[u8], difficulty: u64, wanted: bool) -> Vec<u8> {
        let mut blob = blob.to_vec();
        for nonce in 0u32.. {
            blob[RX_NONCE_OFFSET..RX_NONCE_OFFSET + 4].copy_from_slice(&nonce.to_le_bytes());
            let hash = devnet.kernel.hash(&blob).expect("hash").hash;
            if monero_check_hash(&hash, difficulty) == wanted {
                return blob;
            }
        }
        unreachable!("some nonce meets or misses")
    }

    #[test]
    fn a_coinbase_paying_many_is_taken_up_to_the_reward() {
        let devnet = RxDevnet::new(1).expect("devnet");
        let t = devnet.template(ADDRESS, [0; 8]);
        let block = |amounts: &[u64]| {
            let coinbase = RxCoinbase {
                height: 1,
                reserved: [9; 8],
                payees: RxPayees::Outputs {
                    outputs: amounts.iter().map(|a| (b"44x".to_vec(), *a)).collect(),
                    extra: b"OTDM".to_vec(),
                },
            }
            .to_bytes();
            let mut blob = RxBlob::parse(&t.blob).expect("blob");
            blob.tree_root = sha256d(&coinbase);
            (find(&devnet, &blob.to_bytes(), 1, true), coinbase)
        };
        let (blob, coinbase) = block(&[RX_DEVNET_REWARD, 1]);
        assert_eq!(
            devnet.submit(&blob, &coinbase),
            Err(RxReject::Overpays {
                total: Some(RX_DEVNET_REWARD + 1),
                reward: RX_DEVNET_REWARD
            })
        );
        let (blob, coinbase) = block(&[u64::MAX, 2]);
        assert!(matches!(
            devnet.submit(&blob, &coinbase),
            Err(RxReject::Overpays { total: None, .. })
        ));
        // A sharechain's extra data naming another difficulty (a smaller window) is refused.
        let mut extra = otedama_p2p::RX_EXTRA_PREFIX.to_vec();
        extra.extend_from_slice(&[0; 32]);
        extra.extend_from_slice(&7u64.to_le_bytes());
        let forged = RxCoinbase {
            height: 1,
            reserved: [9; 8],
            payees: RxPayees::Outputs {
                outputs: vec![(b"44x".to_vec(), 5)],
                extra,
            },
        }
        .to_bytes();
        let mut blob = RxBlob::parse(&t.blob).expect("blob");
        blob.tree_root = sha256d(&forged);
        let blob = find(&devnet, &blob.to_bytes(), 1, true);
        assert_eq!(
            devnet.submit(&blob, &forged),
            Err(RxReject::WrongDifficulty {
                committed: 7,
                network: 1
            })
        );
        let (blob, coinbase) = block(&[RX_DEVNET_REWARD - 5, 5]);
        devnet
            .submit(&blob, &coinbase)
            .expect("pays exactly the reward");
        assert_eq!(devnet.height(), 1);
    }

    #[test]
    fn blobs_have_the_monero_layout() {
        let devnet = RxDevnet::new(4).expect("devnet");
        let t = devnet.template(ADDRESS, [7; 8]);
        assert_eq!(t.blob.len(), RX_BLOB_LEN);
        assert_eq!(&t.blob[..2], &[16, 16]);
        assert_eq!(&t.blob[7..39], &t.prev_id);
        assert_eq!(&t.blob[39..43], &[0; 4]);
        assert_eq!(&t.blob[43..75], &sha256d(&t.coinbase));
        assert_eq!(t.blob[75], 1);
        assert_eq!(&t.coinbase[..8], &1u64.to_le_bytes());
        assert_eq!(&t.coinbase[8..16], &[7; 8]);
        let parsed = RxBlob::parse(&t.blob).expect("parse");
        assert_eq!(parsed.to_bytes(), t.blob);
        assert!(parsed.timestamp >= MIN_TIMESTAMP);
        // The captured monerod template has the same shape.
        let captured = otedama_core::decode_hex("1010b5d493d80698f51c3ad889a73ad53d581795180b6b5c66cfb442f0179a1858082a2a6b73b800000000a2860f81d2c7bab7fa5e5113b96228a5d18538a382f94e31279ff7454553d60e01").expect("hex");
        let monerod = RxBlob::parse(&captured).expect("monerod blob");
        assert_eq!(
            (monerod.major, monerod.minor, monerod.tx_count),
            (16, 16, 1)
        );
        assert_eq!(captured.len(), RX_BLOB_LEN);
    }

    #[test]
    fn the_devnet_serves_a_pool_as_its_rx_source() {
        let devnet = RxDevnet::new(4).expect("devnet");
        let source: &dyn RxSource = &devnet;
        let work = source.work(ADDRESS, [3; 8]).expect("work");
        assert_eq!((work.height, work.difficulty), (1, 4));
        assert_eq!((work.seed, work.reward), (DEVNET_RX_SEED, RX_DEVNET_REWARD));
        assert_eq!(&work.coinbase[8..16], &[3; 8]);
        assert_eq!(&work.blob[43..75], &sha256d(&work.coinbase));
        assert!(!source
            .wait_for_tip(&work.prev_id, Duration::from_millis(1))
            .expect("tip"));
        assert!(source
            .wait_for_tip(&[9; 32], Duration::from_millis(1))
            .expect("tip"));
        // A refusal is typed as a node's: invalid with the devnet's reason, or a duplicate.
        let other = coinbase(1, [4; 8], ADDRESS);
        let refused = source.submit(&work.blob, &other);
        assert!(
            matches!(
                &refused,
                Err(SubmitError::Rejected(BlockRejection::Invalid(reason)))
                    if *reason == RxReject::BadTreeRoot.to_string()
            ),
            "{refused:?}"
        );
        assert!(matches!(
            SubmitError::from(RxReject::Duplicate("ab".into())),
            SubmitError::Rejected(BlockRejection::Duplicate)
        ));
    }

    #[test]
    fn a_mined_block_extends_the_chain_and_bad_ones_are_refused() {
        let devnet = RxDevnet::new(4).expect("devnet");
        let t = devnet.template(ADDRESS, [1; 8]);

        // A hash that misses the difficulty.
        let weak = find(&devnet, &t.blob, t.difficulty, false);
        assert!(matches!(
            devnet.submit(&weak, &t.coinbase),
            Err(RxReject::HighHash { difficulty: 4, .. })
        ));
        let good = find(&devnet, &t.blob, t.difficulty, true);
        // Another coinbase than the tree root commits to.
        let other = coinbase(1, [2; 8], ADDRESS);
        assert_eq!(devnet.submit(&good, &other), Err(RxReject::BadTreeRoot));
        // A coinbase for the wrong height (its root written into the blob).
        let wrong_height = coinbase(5, [1; 8], ADDRESS);
        let mut blob = RxBlob::parse(&good).expect("parse");
        blob.tree_root = sha256d(&wrong_height);
        assert_eq!(
            devnet.submit(&blob.to_bytes(), &wrong_height),
            Err(RxReject::BadHeight {
                got: 5,
                expected: 1
            })
        );
        assert!(matches!(
            devnet.submit(&good[..40], &t.coinbase),
            Err(RxReject::Malformed(_))
        ));
        assert_eq!(devnet.height(), 0);
        assert_eq!(devnet.wait_for_tip(0, Duration::from_millis(1)), 0);

        let id = devnet.submit(&good, &t.coinbase).expect("accepted");
        assert_eq!(id, otedama_core::monero::block_id(&good));
        assert_eq!(devnet.height(), 1);
        assert_eq!(devnet.accepted(), vec![id]);
        assert_eq!(devnet.wait_for_tip(0, Duration::from_secs(5)), 1);
        assert!(matches!(
            devnet.submit(&good, &t.coinbase),
            Err(RxReject::Duplicate(_))
        ));

        // The next template builds on the new tip; the old one no longer does.
        let next = devnet.template(ADDRESS, [1; 8]);
        assert_eq!((next.height, next.prev_id), (2, id));
        // Another block on the old parent (a later timestamp): no longer on the tip.
        let mut old = RxBlob::parse(&good).expect("parse");
        old.timestamp += 1;
        let stale = find(&devnet, &old.to_bytes(), t.difficulty, true);
        assert!(matches!(
            devnet.submit(&stale, &t.coinbase),
            Err(RxReject::BadPrev { .. })
        ));
        let second = find(&devnet, &next.blob, next.difficulty, true);
        devnet.submit(&second, &next.coinbase).expect("block 2");
        assert_eq!(devnet.height(), 2);
    }
}
