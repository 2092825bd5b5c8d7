//! Transaction merkle trees: the full root of a block and the Stratum coinbase branch.
//!
//! All hashes are in internal byte order (as sha256d produces them), never reversed.

use crate::header::sha256d;

/// sha256d(left || right).
fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left);
    buf[32..].copy_from_slice(right);
    sha256d(&buf)
}

/// The merkle root of a block's transaction ids (coinbase first), with Bitcoin's rule of
/// pairing the last element of an odd level with itself. `None` for an empty list; a
/// single txid is its own root.
pub fn merkle_root(txids: &[[u8; 32]]) -> Option<[u8; 32]> {
    let mut level: Vec<[u8; 32]> = txids.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => hash_pair(a, b),
                [a] => hash_pair(a, a),
                _ => unreachable_pair(),
            })
            .collect();
    }
    level.first().copied()
}

/// `chunks(2)` never yields an empty or longer slice; kept total without a panic.
fn unreachable_pair() -> [u8; 32] {
    [0u8; 32]
}

/// The segwit witness merkle root of a block, given the wtxids of its non-coinbase
/// transactions in block order: the coinbase's wtxid counts as 32 zero bytes (BIP141).
pub fn witness_merkle_root(non_coinbase_wtxids: &[[u8; 32]]) -> [u8; 32] {
    let mut all = Vec::with_capacity(non_coinbase_wtxids.len() + 1);
    all.push([0u8; 32]);
    all.extend_from_slice(non_coinbase_wtxids);
    merkle_root(&all).unwrap_or([0u8; 32])
}

/// The BIP141 witness commitment: sha256d(witness_root || witness_reserved_value).
pub fn witness_commitment(witness_root: &[u8; 32], reserved_value: &[u8; 32]) -> [u8; 32] {
    hash_pair(witness_root, reserved_value)
}

/// The merkle path from the coinbase to the root: the sibling hashes `mining.notify` sends
/// as `merkle_branch`, lowest level first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MerkleBranch(Vec<[u8; 32]>);

impl MerkleBranch {
    /// Builds the coinbase branch from the txids of the block's **other** transactions, in
    /// block order (the coinbase itself is not given: its id changes with the extranonce).
    pub fn from_txids(non_coinbase_txids: &[[u8; 32]]) -> MerkleBranch {
        let mut branch = Vec::new();
        // The coinbase's slot at index 0 of every level is unknown; only the rest is hashed.
        let mut rest: Vec<[u8; 32]> = non_coinbase_txids.to_vec();
        while let Some((&sibling, others)) = rest.split_first() {
            branch.push(sibling);
            // The level is [coinbase path, sibling, others...]; pair up `others`, duplicating
            // the last one when the level has an odd length (i.e. `others` is odd).
            rest = others
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => hash_pair(a, b),
                    [a] => hash_pair(a, a),
                    _ => unreachable_pair(),
                })
                .collect();
        }
        MerkleBranch(branch)
    }

    /// Wraps sibling hashes received from a pool, lowest level first.
    pub fn from_hashes(hashes: Vec<[u8; 32]>) -> MerkleBranch {
        MerkleBranch(hashes)
    }

    /// The sibling hashes, lowest level first.
    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.0
    }

    /// Number of levels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when the coinbase is the only transaction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The merkle root for a coinbase txid: fold(sha256d(acc || sibling)).
    pub fn root(&self, coinbase_txid: &[u8; 32]) -> [u8; 32] {
        self.0
            .iter()
            .fold(*coinbase_txid, |acc, sibling| hash_pair(&acc, sibling))
    }
}

/// The coinbase txid from Stratum parts: sha256d(coinb1 || extranonce1 || extranonce2 ||
/// coinb2).
pub fn coinbase_txid_from_parts(
    coinb1: &[u8],
    extranonce1: &[u8],
    extranonce2: &[u8],
    coinb2: &[u8],
) -> [u8; 32] {
    let mut buf =
        Vec::with_capacity(coinb1.len() + extranonce1.len() + extranonce2.len() + coinb2.len());
    buf.extend_from_slice(coinb1);
    buf.extend_from_slice(extranonce1);
    buf.extend_from_slice(extranonce2);
    buf.extend_from_slice(coinb2);
    sha256d(&buf)
}

/// The Stratum v1 merkle root: the branch folded over the coinbase txid built from the parts.
pub fn stratum_merkle_root(
    coinb1: &[u8],
    extranonce1: &[u8],
    extranonce2: &[u8],
    coinb2: &[u8],
    branch: &MerkleBranch,
) -> [u8; 32] {
    branch.root(&coinbase_txid_from_parts(
        coinb1,
        extranonce1,
        extranonce2,
        coinb2,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn single_and_empty() {
        assert_eq!(merkle_root(&[]), None);
        assert_eq!(merkle_root(&[[7u8; 32]]), Some([7u8; 32]));
        assert!(MerkleBranch::from_txids(&[]).is_empty());
        assert_eq!(MerkleBranch::from_txids(&[]).root(&[7u8; 32]), [7u8; 32]);
    }

    #[test]
    fn three_transactions() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let expected = hash_pair(&hash_pair(&a, &b), &hash_pair(&c, &c));
        assert_eq!(merkle_root(&[a, b, c]), Some(expected));
        let branch = MerkleBranch::from_txids(&[b, c]);
        assert_eq!(branch.hashes(), &[b, hash_pair(&c, &c)]);
        assert_eq!(branch.root(&a), expected);
    }
}
