//! Shares: a main-chain block (its header, or its hashing blob) plus the sharechain data its
//! coinbase commits to.
//!
//! A share binds to the main chain through its coinbase. The coinbase pays the
//! deterministic PPLNS outputs of the window ending at the share ([`crate::window`]) and
//! carries the share's [`commitment`](ShareInfo::commitment). A peer rebuilds that coinbase
//! from its own copy of the chain and checks that the block commits to it: the coinbase itself
//! is never sent.
//!
//! Two layouts ([`Layout`]), chosen by the chain's algorithm:
//! - Bitcoin family: the commitment is an `OP_RETURN` output; the rebuilt coinbase's txid is
//!   hashed up the merkle branch to the header's merkle root.
//! - RandomX on the devnet: the commitment and the main-chain difficulty are the coinbase's
//!   extra data ([`otedama_core::rx`]); sha256d of the rebuilt coinbase is the blob's tree
//!   root.

use std::borrow::Cow;

use bitcoin::ScriptBuf;
use otedama_core::rx::{RxBlob, RxCoinbase, RxPayees};
use otedama_core::{
    monero_target, sha256d, BlockHeader, CoinbaseBuilder, CompactTarget, MerkleBranch, Target,
};
use otedama_hash::{Algorithm, PowAlgorithm};
use sha2::{Digest, Sha256};

use crate::error::{DecodeError, ShareError};
use crate::params::ConsensusId;

/// The most uncles an encoding may carry (chains allow fewer).
pub const MAX_UNCLES_ENCODED: usize = 16;
/// The longest payout: a script (Bitcoin family), or an address as text (RandomX devnet;
/// Monero's integrated addresses take 106 characters).
pub const MAX_PAYOUT_SCRIPT: usize = 128;
/// The longest hashing blob of a RandomX share.
pub const MAX_RX_BLOB: usize = 128;
/// The start of a RandomX coinbase's extra data: "OTDM", then the commitment (32 bytes) and the
/// main-chain difficulty (8 bytes, little-endian).
pub const RX_EXTRA_PREFIX: [u8; 4] = *b"OTDM";
/// The longest extranonce.
pub const MAX_EXTRANONCE: usize = 32;
/// The deepest merkle branch (a block of 2^24 transactions).
pub const MAX_BRANCH: usize = 24;
/// The start of the commitment output's script: `OP_RETURN`, a 36-byte push, "OTDM".
pub const COMMITMENT_SCRIPT_PREFIX: [u8; 6] = [0x6a, 0x24, b'O', b'T', b'D', b'M'];

/// A share's id: the sha256d of its main-chain header (internal byte order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShareId(pub [u8; 32]);

impl ShareId {
    /// The parent of a genesis share.
    pub const NONE: ShareId = ShareId([0; 32]);
}

impl std::fmt::Display for ShareId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Display order, as block explorers print hashes; 16 hex digits identify a share.
        for b in self.0.iter().rev().take(8) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ShareId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShareId({self})")
    }
}

/// The sharechain data of a share, committed in its coinbase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShareInfo {
    /// The previous share on the chain, or [`ShareId::NONE`] for a genesis share.
    pub parent: ShareId,
    /// Recent side shares this share includes, sorted and unique.
    pub uncles: Vec<ShareId>,
    /// Height on the sharechain (genesis 0).
    pub height: u64,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// The genesis share's timestamp, which anchors the difficulty; carried by every share.
    pub anchor_time: u64,
    /// The share target, which must equal the difficulty rule's value for the parent.
    pub bits: CompactTarget,
    /// The main-chain height of the block this share would be (the coinbase's BIP34 push).
    pub main_height: u32,
    /// The main-chain block reward the coinbase splits, in the smallest unit.
    pub reward: u64,
    /// Where this share's part of the window is paid.
    pub payout: Vec<u8>,
}

impl ShareInfo {
    /// The canonical bytes of the info.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.parent.0);
        out.push(self.uncles.len() as u8);
        for u in &self.uncles {
            out.extend_from_slice(&u.0);
        }
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.anchor_time.to_le_bytes());
        out.extend_from_slice(&self.bits.to_consensus().to_le_bytes());
        out.extend_from_slice(&self.main_height.to_le_bytes());
        out.extend_from_slice(&self.reward.to_le_bytes());
        out.push(self.payout.len() as u8);
        out.extend_from_slice(&self.payout);
    }

    fn decode(r: &mut Reader<'_>) -> Result<ShareInfo, DecodeError> {
        let parent = ShareId(r.array("parent")?);
        let count = usize::from(r.u8("uncle count")?);
        if count > MAX_UNCLES_ENCODED {
            return Err(DecodeError::TooLong {
                what: "uncle list",
                len: count,
                max: MAX_UNCLES_ENCODED,
            });
        }
        let mut uncles = Vec::with_capacity(count);
        for _ in 0..count {
            uncles.push(ShareId(r.array("uncle")?));
        }
        let height = r.u64("height")?;
        let timestamp = r.u64("timestamp")?;
        let anchor_time = r.u64("anchor time")?;
        let bits = CompactTarget::from_consensus(r.u32("bits")?);
        let main_height = r.u32("main height")?;
        let reward = r.u64("reward")?;
        let payout = r.bytes("payout script", MAX_PAYOUT_SCRIPT)?;
        Ok(ShareInfo {
            parent,
            uncles,
            height,
            timestamp,
            anchor_time,
            bits,
            main_height,
            reward,
            payout,
        })
    }

    /// The hash the coinbase commits to: the info under this chain's consensus id, so a share
    /// is valid on one chain only.
    pub fn commitment(&self, chain: &ConsensusId) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(256);
        self.encode(&mut bytes);
        let mut h = Sha256::new();
        h.update(b"otedama/share/v1");
        h.update(chain.as_bytes());
        h.update(&bytes);
        h.finalize().into()
    }

    /// The `OP_RETURN` output script carrying the commitment.
    pub fn commitment_script(&self, chain: &ConsensusId) -> ScriptBuf {
        let mut script = COMMITMENT_SCRIPT_PREFIX.to_vec();
        script.extend_from_slice(&self.commitment(chain));
        ScriptBuf::from_bytes(script)
    }

    /// The share target.
    pub fn target(&self) -> Target {
        self.bits.decode().unwrap_or(Target::ZERO)
    }
}

/// How a chain's shares carry their main-chain block, chosen by the chain's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// An 80-byte header whose merkle root commits to the coinbase (SHA256d, scrypt).
    Bitcoin,
    /// A Monero-layout hashing blob whose tree root is sha256d of the devnet coinbase.
    RandomX,
}

impl Layout {
    /// The layout of a chain mining `algorithm`.
    pub fn of(algorithm: Algorithm) -> Layout {
        match algorithm {
            Algorithm::RandomX => Layout::RandomX,
            _ => Layout::Bitcoin,
        }
    }
}

/// A Bitcoin-family share's block: the header, and the coinbase parts that vary per miner (the
/// extranonce, the witness root, the merkle branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoinProof {
    /// The main-chain block header the miner solved.
    pub header: BlockHeader,
    /// The coinbase's extranonce bytes (extranonce1 followed by extranonce2).
    pub extranonce: Vec<u8>,
    /// The block's witness merkle root when the block is segwit.
    pub witness_root: Option<[u8; 32]>,
    /// The coinbase's merkle branch.
    pub branch: MerkleBranch,
}

/// A RandomX share's block: the hashing blob the miner solved, the coinbase's reserved bytes
/// (the miner's session), and the main-chain difficulty, also committed in the coinbase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxProof {
    /// The hashing blob, nonce written in.
    pub blob: Vec<u8>,
    /// The coinbase's reserved bytes.
    pub reserved: [u8; 8],
    /// The main chain's difficulty (Monero convention) when the share was mined.
    pub difficulty: u64,
}

/// The main-chain block a share is part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainProof {
    /// The Bitcoin-family layout.
    Bitcoin(BitcoinProof),
    /// The RandomX devnet layout.
    RandomX(RxProof),
}

/// A share as it travels: its main-chain block and its sharechain data. The payout outputs
/// are not sent; every node rebuilds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The main-chain block the miner solved.
    pub main: MainProof,
    /// The sharechain data.
    pub info: ShareInfo,
}

impl Share {
    /// The share's id: sha256d of the header (the Bitcoin family's block id), or of the hashing
    /// blob (not Monero's own block id, which is Keccak over the blob).
    pub fn id(&self) -> ShareId {
        ShareId(match &self.main {
            MainProof::Bitcoin(b) => b.header.block_hash(),
            MainProof::RandomX(r) => sha256d(&r.blob),
        })
    }

    /// The layout the share is in.
    pub fn layout(&self) -> Layout {
        match self.main {
            MainProof::Bitcoin(_) => Layout::Bitcoin,
            MainProof::RandomX(_) => Layout::RandomX,
        }
    }

    /// The Bitcoin-family header, when the share has one.
    pub fn header(&self) -> Option<&BlockHeader> {
        match &self.main {
            MainProof::Bitcoin(b) => Some(&b.header),
            MainProof::RandomX(_) => None,
        }
    }

    /// The Bitcoin-family block, when the share is in that layout.
    pub fn bitcoin(&self) -> Option<&BitcoinProof> {
        match &self.main {
            MainProof::Bitcoin(b) => Some(b),
            MainProof::RandomX(_) => None,
        }
    }

    /// The Bitcoin-family block, to change (a miner rolling its header, a test forging one).
    pub fn bitcoin_mut(&mut self) -> Option<&mut BitcoinProof> {
        match &mut self.main {
            MainProof::Bitcoin(b) => Some(b),
            MainProof::RandomX(_) => None,
        }
    }

    /// The bytes the proof of work hashes: the header, or the hashing blob.
    pub fn pow_input(&self) -> Cow<'_, [u8]> {
        match &self.main {
            MainProof::Bitcoin(b) => Cow::Owned(b.header.to_bytes().to_vec()),
            MainProof::RandomX(r) => Cow::Borrowed(&r.blob),
        }
    }

    /// The target a block must meet on the main chain: the header's bits, or the committed
    /// difficulty's target.
    pub fn main_target(&self) -> Result<Target, String> {
        match &self.main {
            MainProof::Bitcoin(b) => b
                .header
                .bits
                .decode()
                .map_err(|e| format!("main-chain bits do not decode: {e}")),
            MainProof::RandomX(r) if r.difficulty == 0 => {
                Err("a main-chain difficulty of zero".to_owned())
            }
            MainProof::RandomX(r) => Ok(monero_target(r.difficulty)),
        }
    }

    /// The canonical bytes (the layout's: a Bitcoin-family share's bytes start with its
    /// header, a RandomX share's with its blob).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.main {
            MainProof::Bitcoin(b) => {
                out.extend_from_slice(&b.header.to_bytes());
                self.info.encode(out);
                out.push(b.extranonce.len() as u8);
                out.extend_from_slice(&b.extranonce);
                match &b.witness_root {
                    Some(root) => {
                        out.push(1);
                        out.extend_from_slice(root);
                    }
                    None => out.push(0),
                }
                out.push(b.branch.len() as u8);
                for h in b.branch.hashes() {
                    out.extend_from_slice(h);
                }
            }
            MainProof::RandomX(r) => {
                out.push(r.blob.len().min(MAX_RX_BLOB) as u8);
                out.extend_from_slice(&r.blob[..r.blob.len().min(MAX_RX_BLOB)]);
                self.info.encode(out);
                out.extend_from_slice(&r.reserved);
                out.extend_from_slice(&r.difficulty.to_le_bytes());
            }
        }
    }

    /// The length of the canonical bytes.
    pub fn encoded_len(&self) -> usize {
        let info = 32 + 1 + 32 * self.info.uncles.len() + 8 * 3 + 4 + 4 + 8 + 1;
        let info = info + self.info.payout.len();
        match &self.main {
            MainProof::Bitcoin(b) => {
                let witness = if b.witness_root.is_some() { 33 } else { 1 };
                80 + info + 1 + b.extranonce.len() + witness + 1 + 32 * b.branch.len()
            }
            MainProof::RandomX(r) => 1 + r.blob.len().min(MAX_RX_BLOB) + info + 8 + 8,
        }
    }

    /// The canonical bytes, in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }

    /// Parses exactly one Bitcoin-family share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Share, DecodeError> {
        Share::from_bytes_in(bytes, Layout::Bitcoin)
    }

    /// Parses exactly one share in `layout`.
    pub fn from_bytes_in(bytes: &[u8], layout: Layout) -> Result<Share, DecodeError> {
        let mut r = Reader::new(bytes);
        let share = Share::decode(&mut r, layout)?;
        r.finish("share")?;
        Ok(share)
    }

    pub(crate) fn decode(r: &mut Reader<'_>, layout: Layout) -> Result<Share, DecodeError> {
        if layout == Layout::RandomX {
            let blob = r.bytes("hashing blob", MAX_RX_BLOB)?;
            let info = ShareInfo::decode(r)?;
            let reserved = r.array("reserved bytes")?;
            let difficulty = r.u64("main-chain difficulty")?;
            return Ok(Share {
                main: MainProof::RandomX(RxProof {
                    blob,
                    reserved,
                    difficulty,
                }),
                info,
            });
        }
        let header_bytes: [u8; 80] = r.array("header")?;
        let header = BlockHeader::from_bytes(&header_bytes)
            .map_err(|_| DecodeError::Invalid { what: "header" })?;
        let info = ShareInfo::decode(r)?;
        let extranonce = r.bytes("extranonce", MAX_EXTRANONCE)?;
        let witness_root = match r.u8("witness flag")? {
            0 => None,
            1 => Some(r.array("witness root")?),
            _ => {
                return Err(DecodeError::Invalid {
                    what: "witness flag",
                })
            }
        };
        let count = usize::from(r.u8("branch length")?);
        if count > MAX_BRANCH {
            return Err(DecodeError::TooLong {
                what: "merkle branch",
                len: count,
                max: MAX_BRANCH,
            });
        }
        let mut hashes = Vec::with_capacity(count);
        for _ in 0..count {
            hashes.push(r.array("merkle branch")?);
        }
        Ok(Share {
            main: MainProof::Bitcoin(BitcoinProof {
                header,
                extranonce,
                witness_root,
                branch: MerkleBranch::from_hashes(hashes),
            }),
            info,
        })
    }

    /// Checks the proof of work: the block's hash under the chain's algorithm meets the share
    /// target. The most expensive check, and the only one needing no chain state.
    pub fn check_pow(&self, pow: &dyn PowAlgorithm) -> Result<(), ShareError> {
        let id = self.id();
        let output = pow
            .hash(&self.pow_input())
            .map_err(|e| ShareError::Invalid {
                id,
                reason: format!("proof of work: {e}"),
            })?;
        if pow
            .algorithm()
            .hash_order()
            .meets(&output.hash, &self.info.target())
        {
            Ok(())
        } else {
            Err(ShareError::InsufficientWork { id })
        }
    }

    /// Rebuilds the coinbase from `outputs` (the payout set the chain computes for this share)
    /// and checks that the block commits to it.
    pub fn check_binding(
        &self,
        chain: &ConsensusId,
        outputs: &[(ScriptBuf, u64)],
    ) -> Result<(), ShareError> {
        let invalid = |reason: String| ShareError::Invalid {
            id: self.id(),
            reason,
        };
        let bound = match &self.main {
            MainProof::Bitcoin(b) => {
                let root = coinbase_root(
                    &self.info,
                    chain,
                    outputs,
                    &b.extranonce,
                    b.witness_root,
                    &b.branch,
                )
                .map_err(invalid)?;
                root == b.header.merkle_root
            }
            MainProof::RandomX(r) => {
                let blob =
                    RxBlob::parse(&r.blob).map_err(|e| invalid(format!("hashing blob: {e}")))?;
                let coinbase =
                    rx_coinbase(&self.info, chain, outputs, r.reserved, r.difficulty).to_bytes();
                blob.tree_root == sha256d(&coinbase)
            }
        };
        if bound {
            Ok(())
        } else {
            Err(invalid(
                "the coinbase does not pay the window's outputs".to_owned(),
            ))
        }
    }
}

/// The main-chain difficulty a RandomX sharechain coinbase's extra data commits to, when the
/// extra data is a sharechain's ([`RX_EXTRA_PREFIX`], the commitment, the difficulty). The
/// devnet refuses a block whose committed difficulty is not its own, as a Bitcoin-family chain
/// refuses a header with other bits: a share's window is sized by it, and only the main chain
/// can say it is right.
pub fn rx_committed_difficulty(extra: &[u8]) -> Option<u64> {
    let rest = extra.strip_prefix(&RX_EXTRA_PREFIX)?;
    let bytes: [u8; 8] = rest.get(32..)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The devnet coinbase a RandomX share's blob commits to: the payout outputs in their
/// canonical order, and as extra data [`RX_EXTRA_PREFIX`], the commitment and the main-chain
/// `difficulty`.
pub fn rx_coinbase(
    info: &ShareInfo,
    chain: &ConsensusId,
    outputs: &[(ScriptBuf, u64)],
    reserved: [u8; 8],
    difficulty: u64,
) -> RxCoinbase {
    let mut extra = RX_EXTRA_PREFIX.to_vec();
    extra.extend_from_slice(&info.commitment(chain));
    extra.extend_from_slice(&difficulty.to_le_bytes());
    RxCoinbase {
        height: u64::from(info.main_height),
        reserved,
        payees: RxPayees::Outputs {
            outputs: outputs
                .iter()
                .map(|(payout, value)| (payout.as_bytes().to_vec(), *value))
                .collect(),
            extra,
        },
    }
}

/// The coinbase a share's header commits to: the payout outputs in their canonical order,
/// then the commitment output, then (segwit) the witness commitment.
pub fn build_coinbase(
    info: &ShareInfo,
    chain: &ConsensusId,
    outputs: &[(ScriptBuf, u64)],
    extranonce_len: usize,
    witness_root: Option<[u8; 32]>,
) -> Result<otedama_core::Coinbase, String> {
    let mut builder = CoinbaseBuilder::new(info.main_height).extranonce_sizes(extranonce_len, 0);
    for (script, value) in outputs {
        builder = builder.output(script.clone(), *value);
    }
    builder = builder.output(info.commitment_script(chain), 0);
    if let Some(root) = witness_root {
        builder = builder.witness_root(root);
    }
    builder.build().map_err(|e| format!("coinbase: {e}"))
}

/// The merkle root a share's header must carry.
pub fn coinbase_root(
    info: &ShareInfo,
    chain: &ConsensusId,
    outputs: &[(ScriptBuf, u64)],
    extranonce: &[u8],
    witness_root: Option<[u8; 32]>,
    branch: &MerkleBranch,
) -> Result<[u8; 32], String> {
    let coinbase = build_coinbase(info, chain, outputs, extranonce.len(), witness_root)?;
    let txid = coinbase
        .txid(extranonce, &[])
        .map_err(|e| format!("coinbase: {e}"))?;
    Ok(branch.root(&txid))
}

/// A bounded reader over untrusted bytes: every read checks the length first.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A byte string with a one-byte length, at most `max` long.
    pub(crate) fn bytes(&mut self, what: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
        let len = usize::from(self.u8(what)?);
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        Ok(self.take(len, what)?.to_vec())
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing {
                what,
                len: self.bytes.len(),
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_info() -> impl Strategy<Value = ShareInfo> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_UNCLES_ENCODED),
            any::<(u64, u64, u64, u32, u32, u64)>(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_PAYOUT_SCRIPT),
        )
            .prop_map(
                |(
                    parent,
                    uncles,
                    (height, timestamp, anchor_time, bits, main_height, reward),
                    payout,
                )| {
                    ShareInfo {
                        parent: ShareId(parent),
                        uncles: uncles.into_iter().map(ShareId).collect(),
                        height,
                        timestamp,
                        anchor_time,
                        bits: CompactTarget::from_consensus(bits),
                        main_height,
                        reward,
                        payout,
                    }
                },
            )
    }

    fn arb_bitcoin() -> impl Strategy<Value = MainProof> {
        (
            proptest::collection::vec(any::<u8>(), 0..=MAX_EXTRANONCE),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_BRANCH),
            any::<(u32, u32, u32, u32)>(),
        )
            .prop_map(
                |(extranonce, witness_root, branch, (version, time, hbits, nonce))| {
                    MainProof::Bitcoin(BitcoinProof {
                        header: BlockHeader {
                            version,
                            prev_blockhash: [7; 32],
                            merkle_root: [9; 32],
                            time,
                            bits: CompactTarget::from_consensus(hbits),
                            nonce,
                        },
                        extranonce,
                        witness_root,
                        branch: MerkleBranch::from_hashes(branch),
                    })
                },
            )
    }

    fn arb_rx() -> impl Strategy<Value = MainProof> {
        (
            proptest::collection::vec(any::<u8>(), 0..=MAX_RX_BLOB),
            any::<[u8; 8]>(),
            any::<u64>(),
        )
            .prop_map(|(blob, reserved, difficulty)| {
                MainProof::RandomX(RxProof {
                    blob,
                    reserved,
                    difficulty,
                })
            })
    }

    /// A share of either layout.
    pub(crate) fn arb_share() -> impl Strategy<Value = Share> {
        (prop_oneof![arb_bitcoin(), arb_rx()], arb_info())
            .prop_map(|(main, info)| Share { main, info })
    }

    proptest! {
        #[test]
        fn shares_round_trip(share in arb_share()) {
            let bytes = share.to_bytes();
            prop_assert_eq!(bytes.len(), share.encoded_len());
            prop_assert_eq!(Share::from_bytes_in(&bytes, share.layout()), Ok(share));
        }

        #[test]
        fn any_prefix_is_truncated_and_any_suffix_trailing(share in arb_share(), cut in 0usize..400) {
            let layout = share.layout();
            let bytes = share.to_bytes();
            let cut = cut.min(bytes.len().saturating_sub(1));
            let truncated = matches!(Share::from_bytes_in(&bytes[..cut], layout), Err(DecodeError::Truncated { .. }));
            prop_assert!(truncated);
            let mut longer = bytes.clone();
            longer.push(0);
            let trailing = matches!(Share::from_bytes_in(&longer, layout), Err(DecodeError::Trailing { .. }));
            prop_assert!(trailing);
        }
    }

    #[test]
    fn oversized_fields_are_refused_before_reading_them() {
        let mut bytes = vec![0u8; 80 + 32];
        bytes.push(17);
        assert_eq!(
            Share::from_bytes(&bytes),
            Err(DecodeError::TooLong {
                what: "uncle list",
                len: 17,
                max: 16
            })
        );
    }

    #[test]
    fn commitment_depends_on_the_chain_and_every_field() {
        let a = ConsensusId([1; 32]);
        let b = ConsensusId([2; 32]);
        let info = ShareInfo {
            parent: ShareId([3; 32]),
            uncles: vec![],
            height: 5,
            timestamp: 6,
            anchor_time: 1,
            bits: CompactTarget::from_consensus(0x1e0fffff),
            main_height: 100,
            reward: 5_000,
            payout: vec![0x51],
        };
        assert_ne!(info.commitment(&a), info.commitment(&b));
        let mut other = info.clone();
        other.reward += 1;
        assert_ne!(info.commitment(&a), other.commitment(&a));
        let script = info.commitment_script(&a);
        assert_eq!(script.len(), 38);
        assert_eq!(&script.as_bytes()[..6], &COMMITMENT_SCRIPT_PREFIX);
    }
}
