//! Block templates: what a node (or the devnet) offers to be mined, and the full block built
//! from a template once a share solves it.

use crate::header::BlockHeader;
use crate::merkle::{witness_merkle_root, MerkleBranch};
use crate::target::{CompactTarget, Target};

/// A transaction the template asks to include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateTransaction {
    /// The serialized transaction (with witness when it has one).
    pub data: Vec<u8>,
    /// Its txid, internal byte order.
    pub txid: [u8; 32],
    /// Its wtxid, internal byte order.
    pub wtxid: [u8; 32],
    /// Its fee in the coin's smallest unit.
    pub fee: u64,
}

/// Everything needed to build jobs for one block and, when a share solves it, the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTemplate {
    /// Height of the block to build.
    pub height: u64,
    /// Block version.
    pub version: u32,
    /// Previous block hash, internal byte order.
    pub prev_hash: [u8; 32],
    /// Network target, compact.
    pub bits: CompactTarget,
    /// The time the node proposes.
    pub curtime: u32,
    /// The earliest valid time.
    pub mintime: u32,
    /// Subsidy plus fees available to the coinbase, in the smallest unit.
    pub coinbase_value: u64,
    /// Transactions after the coinbase, in block order.
    pub transactions: Vec<TemplateTransaction>,
    /// The coinbase output script committing to the witnesses, when the block has any
    /// (segwit active); `None` for a block without witness data.
    pub witness_commitment: Option<Vec<u8>>,
    /// Litecoin's MWEB extension block, appended after the transactions as `0x01 || mweb`.
    pub mweb: Option<Vec<u8>>,
    /// Changes whenever the template does (the node's long-poll id, or the devnet tip).
    pub id: String,
}

impl BlockTemplate {
    /// The network target.
    pub fn target(&self) -> Option<Target> {
        self.bits.decode().ok()
    }

    /// The merkle branch from the coinbase to the root (the `mining.notify` form).
    pub fn merkle_branch(&self) -> MerkleBranch {
        let txids: Vec<[u8; 32]> = self.transactions.iter().map(|t| t.txid).collect();
        MerkleBranch::from_txids(&txids)
    }

    /// The witness merkle root over the non-coinbase wtxids (the coinbase counts as zero).
    pub fn witness_root(&self) -> [u8; 32] {
        let wtxids: Vec<[u8; 32]> = self.transactions.iter().map(|t| t.wtxid).collect();
        witness_merkle_root(&wtxids)
    }

    /// Serializes the full block: header, transaction count, the coinbase (`coinbase` is its
    /// serialization, with witness when the block commits to witnesses), the template's
    /// transactions, and for Litecoin after MWEB activation the byte `0x01` and the MWEB data.
    pub fn assemble_block(&self, header: &BlockHeader, coinbase: &[u8]) -> Vec<u8> {
        let mut block = Vec::with_capacity(
            80 + 9
                + coinbase.len()
                + self
                    .transactions
                    .iter()
                    .map(|t| t.data.len())
                    .sum::<usize>(),
        );
        block.extend_from_slice(&header.to_bytes());
        write_compact_size(&mut block, self.transactions.len() as u64 + 1);
        block.extend_from_slice(coinbase);
        for tx in &self.transactions {
            block.extend_from_slice(&tx.data);
        }
        if let Some(mweb) = &self.mweb {
            block.push(0x01);
            block.extend_from_slice(mweb);
        }
        block
    }
}

/// Appends Bitcoin's CompactSize encoding of `n`.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_boundaries() {
        let cases: [(u64, &[u8]); 6] = [
            (0, &[0]),
            (0xfc, &[0xfc]),
            (0xfd, &[0xfd, 0xfd, 0x00]),
            (0xffff, &[0xfd, 0xff, 0xff]),
            (0x1_0000, &[0xfe, 0, 0, 1, 0]),
            (0x1_0000_0000, &[0xff, 0, 0, 0, 0, 1, 0, 0, 0]),
        ];
        for (n, bytes) in cases {
            let mut out = Vec::new();
            write_compact_size(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }
}
