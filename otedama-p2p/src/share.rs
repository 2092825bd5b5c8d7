//! Shares: a main-chain block header plus the sharechain data its coinbase commits to.
//!
//! A share binds to the main chain through its coinbase. The coinbase pays the
//! deterministic PPLNS outputs of the window ending at the share ([`crate::window`]) and
//! carries one `OP_RETURN` output with the share's [`commitment`](ShareInfo::commitment).
//! A peer rebuilds that coinbase from its own copy of the chain, hashes it up the merkle
//! branch, and compares the root with the header: the coinbase itself is never sent.

use bitcoin::ScriptBuf;
use otedama_core::{BlockHeader, CoinbaseBuilder, CompactTarget, MerkleBranch, Target};
use otedama_hash::PowAlgorithm;
use sha2::{Digest, Sha256};

use crate::error::{DecodeError, ShareError};
use crate::params::ConsensusId;

/// The most uncles an encoding may carry (chains allow fewer).
pub const MAX_UNCLES_ENCODED: usize = 16;
/// The longest payout script.
pub const MAX_PAYOUT_SCRIPT: usize = 80;
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

/// A share as it travels: the header, the sharechain data, and the coinbase parts that vary
/// per miner (the extranonce, the witness root, the merkle branch). The payout outputs are
/// not sent; every node rebuilds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The main-chain block header the miner solved.
    pub header: BlockHeader,
    /// The sharechain data.
    pub info: ShareInfo,
    /// The coinbase's extranonce bytes (extranonce1 followed by extranonce2).
    pub extranonce: Vec<u8>,
    /// The block's witness merkle root when the block is segwit.
    pub witness_root: Option<[u8; 32]>,
    /// The coinbase's merkle branch.
    pub branch: MerkleBranch,
}

impl Share {
    /// The share's id.
    pub fn id(&self) -> ShareId {
        ShareId(self.header.block_hash())
    }

    /// The canonical bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header.to_bytes());
        self.info.encode(out);
        out.push(self.extranonce.len() as u8);
        out.extend_from_slice(&self.extranonce);
        match &self.witness_root {
            Some(root) => {
                out.push(1);
                out.extend_from_slice(root);
            }
            None => out.push(0),
        }
        out.push(self.branch.len() as u8);
        for h in self.branch.hashes() {
            out.extend_from_slice(h);
        }
    }

    /// The canonical bytes, in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }

    /// Parses exactly one share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Share, DecodeError> {
        let mut r = Reader::new(bytes);
        let share = Share::decode(&mut r)?;
        r.finish("share")?;
        Ok(share)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Share, DecodeError> {
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
            header,
            info,
            extranonce,
            witness_root,
            branch: MerkleBranch::from_hashes(hashes),
        })
    }

    /// Checks the proof of work: the header's hash under the chain's algorithm meets the
    /// share target. The most expensive check, and the only one needing no chain state.
    pub fn check_pow(&self, pow: &dyn PowAlgorithm) -> Result<(), ShareError> {
        let id = self.id();
        let output = pow
            .hash(&self.header.to_bytes())
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
    /// and checks that it hashes up the merkle branch to the header's merkle root.
    pub fn check_binding(
        &self,
        chain: &ConsensusId,
        outputs: &[(ScriptBuf, u64)],
    ) -> Result<(), ShareError> {
        let root = coinbase_root(
            &self.info,
            chain,
            outputs,
            &self.extranonce,
            self.witness_root,
            &self.branch,
        )
        .map_err(|reason| ShareError::Invalid {
            id: self.id(),
            reason,
        })?;
        if root == self.header.merkle_root {
            Ok(())
        } else {
            Err(ShareError::Invalid {
                id: self.id(),
                reason: "the coinbase does not pay the window's outputs".to_owned(),
            })
        }
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

    pub(crate) fn arb_share() -> impl Strategy<Value = Share> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_UNCLES_ENCODED),
            any::<(u64, u64, u64, u32, u32, u64)>(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_PAYOUT_SCRIPT),
            proptest::collection::vec(any::<u8>(), 0..=MAX_EXTRANONCE),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_BRANCH),
            any::<(u32, u32, u32, u32)>(),
        )
            .prop_map(
                |(
                    parent,
                    uncles,
                    (height, timestamp, anchor_time, bits, main_height, reward),
                    payout,
                    extranonce,
                    witness_root,
                    branch,
                    (version, time, hbits, nonce),
                )| Share {
                    header: BlockHeader {
                        version,
                        prev_blockhash: [7; 32],
                        merkle_root: [9; 32],
                        time,
                        bits: CompactTarget::from_consensus(hbits),
                        nonce,
                    },
                    info: ShareInfo {
                        parent: ShareId(parent),
                        uncles: uncles.into_iter().map(ShareId).collect(),
                        height,
                        timestamp,
                        anchor_time,
                        bits: CompactTarget::from_consensus(bits),
                        main_height,
                        reward,
                        payout,
                    },
                    extranonce,
                    witness_root,
                    branch: MerkleBranch::from_hashes(branch),
                },
            )
    }

    proptest! {
        #[test]
        fn shares_round_trip(share in arb_share()) {
            let bytes = share.to_bytes();
            prop_assert_eq!(Share::from_bytes(&bytes), Ok(share));
        }

        #[test]
        fn any_prefix_is_truncated_and_any_suffix_trailing(share in arb_share(), cut in 0usize..400) {
            let bytes = share.to_bytes();
            let cut = cut.min(bytes.len().saturating_sub(1));
            let truncated = matches!(Share::from_bytes(&bytes[..cut]), Err(DecodeError::Truncated { .. }));
            prop_assert!(truncated);
            let mut longer = bytes.clone();
            longer.push(0);
            let trailing = matches!(Share::from_bytes(&longer), Err(DecodeError::Trailing { .. }));
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
