//! Monero's own block format, as monerod's `get_block_template` hands it out: the block blob
//! (header, miner transaction, the other transactions' hashes), the miner transaction's hash,
//! the transaction tree root, the hashing blob a miner hashes, and the block id.
//!
//! A pool writes its own bytes into the space the node reserved in the miner transaction's
//! extra field; that changes the miner transaction's hash, so the tree root and the hashing
//! blob are computed again here rather than asked of the node for every miner.
//!
//! ```
//! use otedama_core::monero::{block_id, tree_hash, MoneroTemplate};
//! # fn hex(s: &str) -> Vec<u8> {
//! #     (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
//! # }
//! // monerod 0.18 on regtest, height 5 (`get_block_template` with 8 reserved bytes).
//! let blob = hex("1010b5d493d80698f51c3ad889a73ad53d581795180b6b5c66cfb442f0179a1858082a2a6b73b8\
//!     00000000024101ff0501ff8780f0feff0703bf81538301f03a7e4af5876fa2dca952e734a308471ed4f21c1244\
//!     3de8c5f420282b01f40aba8c407b48d7cde3c434f837883865e806f7a08f8c69ac700668e97962f00208000000\
//!     00000000000000");
//! let template = MoneroTemplate::parse(&blob, 126)?;
//! let (hashing, body) = template.with_reserved(&[0; 8])?;
//! assert_eq!(
//!     hashing,
//!     hex("1010b5d493d80698f51c3ad889a73ad53d581795180b6b5c66cfb442f0179a1858082a2a6b73b8\
//!         00000000a2860f81d2c7bab7fa5e5113b96228a5d18538a382f94e31279ff7454553d60e01"),
//! );
//! // The whole block is the hashing blob's header followed by the body.
//! assert_eq!(MoneroTemplate::block(&hashing, &body)?, blob);
//! assert_eq!(tree_hash(&[[7; 32]]), Some([7; 32]));
//! let _id = block_id(&hashing);
//! # Ok::<(), otedama_core::rx::RxFormatError>(())
//! ```

use tiny_keccak::{Hasher, Keccak};

use crate::rx::{read_varint, write_varint, RxFormatError};

/// Monero's `cn_fast_hash`: Keccak-256 with the original padding (not SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak::v256();
    hasher.update(data);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

fn keccak_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Keccak::v256();
    hasher.update(a);
    hasher.update(b);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

/// The root of Monero's transaction tree over `hashes` (the miner transaction's first); `None`
/// for no hashes.
///
/// Not a plain binary tree: the leaves beyond the largest power of two below the count are
/// paired first, so that the rest of the tree is perfect.
pub fn tree_hash(hashes: &[[u8; 32]]) -> Option<[u8; 32]> {
    match hashes {
        [] => None,
        [one] => Some(*one),
        [a, b] => Some(keccak_pair(a, b)),
        _ => {
            let count = hashes.len();
            // The largest power of two strictly below `count`.
            let mut cnt = 1usize;
            while cnt * 2 < count {
                cnt *= 2;
            }
            let kept = 2 * cnt - count;
            let mut level: Vec<[u8; 32]> = hashes[..kept].to_vec();
            level.extend(
                hashes[kept..]
                    .chunks_exact(2)
                    .map(|pair| keccak_pair(&pair[0], &pair[1])),
            );
            while level.len() > 1 {
                level = level
                    .chunks_exact(2)
                    .map(|pair| keccak_pair(&pair[0], &pair[1]))
                    .collect();
            }
            level.first().copied()
        }
    }
}

/// A block's id from its hashing blob: Keccak-256 of the blob's length as a varint followed by
/// the blob. (Mainnet's block 202612 is named otherwise by a historical exception; no block a
/// pool builds today is that one.)
pub fn block_id(hashing_blob: &[u8]) -> [u8; 32] {
    let mut prefixed = Vec::with_capacity(hashing_blob.len() + 2);
    write_varint(&mut prefixed, hashing_blob.len() as u64);
    prefixed.extend_from_slice(hashing_blob);
    keccak256(&prefixed)
}

/// The length of a block header in Monero's layout (major, minor and timestamp varints, the
/// previous id, the nonce) at the start of `bytes`.
pub fn header_len(bytes: &[u8]) -> Result<usize, RxFormatError> {
    let mut pos = 0;
    for _ in 0..3 {
        read_varint(bytes, &mut pos)?;
    }
    let end = pos + 32 + 4;
    if bytes.len() < end {
        return Err(RxFormatError::Truncated("block header"));
    }
    Ok(end)
}

/// A node's block template taken apart: where the miner transaction lies, where its prefix
/// ends (its hash covers prefix and signatures apart), and the other transactions' hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroTemplate {
    blob: Vec<u8>,
    header_len: usize,
    /// End of the miner transaction's prefix (its first signature byte, for version 2).
    prefix_end: usize,
    /// End of the miner transaction.
    tx_end: usize,
    version: u64,
    reserved_offset: usize,
    tx_hashes: Vec<[u8; 32]>,
}

impl MoneroTemplate {
    /// Reads `blob` (`blocktemplate_blob`), whose miner transaction reserves the bytes from
    /// `reserved_offset` (`reserved_offset`) for the pool.
    pub fn parse(blob: &[u8], reserved_offset: usize) -> Result<MoneroTemplate, RxFormatError> {
        let header_len = header_len(blob)?;
        let mut pos = header_len;
        let version = read_varint(blob, &mut pos)?;
        if !(1..=2).contains(&version) {
            return Err(RxFormatError::Payees(
                "miner transaction version is not 1 or 2",
            ));
        }
        read_varint(blob, &mut pos)?; // unlock time
        let inputs = read_varint(blob, &mut pos)?;
        if inputs != 1 {
            return Err(RxFormatError::Payees("miner transaction has not one input"));
        }
        if blob.get(pos) != Some(&0xff) {
            return Err(RxFormatError::Payees(
                "miner transaction input is not a generation input",
            ));
        }
        pos += 1;
        read_varint(blob, &mut pos)?; // height
        let outputs = read_varint(blob, &mut pos)?;
        if outputs > 1 << 16 {
            return Err(RxFormatError::TooLong {
                what: "miner transaction outputs",
                len: outputs,
                max: 1 << 16,
            });
        }
        for _ in 0..outputs {
            read_varint(blob, &mut pos)?; // amount
            let key_len = match blob.get(pos) {
                Some(0x02) => 32,
                Some(0x03) => 33,
                Some(_) => return Err(RxFormatError::Payees("unknown output type")),
                None => return Err(RxFormatError::Truncated("output")),
            };
            pos += 1 + key_len;
        }
        let extra_len = read_varint(blob, &mut pos)?;
        let extra_start = pos;
        pos = usize::try_from(extra_len)
            .ok()
            .and_then(|n| pos.checked_add(n))
            .filter(|&end| end <= blob.len())
            .ok_or(RxFormatError::Truncated("miner transaction extra"))?;
        let prefix_end = pos;
        if version == 2 {
            // A miner transaction carries no ring signatures: its signature part is the
            // single byte of the null type.
            if blob.get(pos) != Some(&0) {
                return Err(RxFormatError::Payees(
                    "miner transaction signatures are not null",
                ));
            }
            pos += 1;
        }
        let tx_end = pos;
        let count = read_varint(blob, &mut pos)?;
        if count > (blob.len() - pos) as u64 / 32 {
            return Err(RxFormatError::Truncated("transaction hashes"));
        }
        let mut tx_hashes = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let hash = blob
                .get(pos..pos + 32)
                .ok_or(RxFormatError::Truncated("transaction hash"))?;
            let mut h = [0u8; 32];
            h.copy_from_slice(hash);
            tx_hashes.push(h);
            pos += 32;
        }
        if pos != blob.len() {
            return Err(RxFormatError::Trailing(blob.len() - pos));
        }
        if reserved_offset < extra_start || reserved_offset > prefix_end {
            return Err(RxFormatError::Payees(
                "the reserved offset is outside the miner transaction's extra",
            ));
        }
        Ok(MoneroTemplate {
            blob: blob.to_vec(),
            header_len,
            prefix_end,
            tx_end,
            version,
            reserved_offset,
            tx_hashes,
        })
    }

    /// How many bytes are reserved for the pool (up to the end of the extra field).
    pub fn reserved_room(&self) -> usize {
        self.prefix_end - self.reserved_offset
    }

    /// The transactions the block carries besides the miner's.
    pub fn tx_count(&self) -> usize {
        self.tx_hashes.len()
    }

    /// The hashing blob (nonce as in the template) and the block's body (miner transaction
    /// and transaction hashes) with `reserved` written at the reserved offset.
    pub fn with_reserved(&self, reserved: &[u8]) -> Result<(Vec<u8>, Vec<u8>), RxFormatError> {
        if reserved.len() > self.reserved_room() {
            return Err(RxFormatError::TooLong {
                what: "reserved bytes",
                len: reserved.len() as u64,
                max: self.reserved_room(),
            });
        }
        let mut blob = self.blob.clone();
        blob[self.reserved_offset..self.reserved_offset + reserved.len()].copy_from_slice(reserved);
        let miner = &blob[self.header_len..self.tx_end];
        let miner_hash = if self.version == 1 {
            keccak256(miner)
        } else {
            let prefix = keccak256(&blob[self.header_len..self.prefix_end]);
            let base = keccak256(&blob[self.prefix_end..self.tx_end]);
            let mut parts = [0u8; 96];
            parts[..32].copy_from_slice(&prefix);
            parts[32..64].copy_from_slice(&base);
            // The prunable part of a null-signature transaction hashes as zeros.
            keccak256(&parts)
        };
        let mut hashes = Vec::with_capacity(self.tx_hashes.len() + 1);
        hashes.push(miner_hash);
        hashes.extend_from_slice(&self.tx_hashes);
        let root = tree_hash(&hashes).ok_or(RxFormatError::Truncated("transactions"))?;
        let mut hashing = blob[..self.header_len].to_vec();
        hashing.extend_from_slice(&root);
        write_varint(&mut hashing, hashes.len() as u64);
        let body = blob[self.header_len..].to_vec();
        Ok((hashing, body))
    }

    /// The whole block from a hashing blob (its header carries the nonce) and the body
    /// [`MoneroTemplate::with_reserved`] gave with it.
    pub fn block(hashing_blob: &[u8], body: &[u8]) -> Result<Vec<u8>, RxFormatError> {
        let header = header_len(hashing_blob)?;
        let mut block = hashing_blob[..header].to_vec();
        block.extend_from_slice(body);
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_is_the_original_padding() {
        // Keccak-256 of the empty string (SHA3-256 would be a7ffc6f8...).
        let empty = keccak256(b"");
        assert_eq!(empty[..4], [0xc5, 0xd2, 0x46, 0x01]);
    }

    fn pair(a: [u8; 32], b: [u8; 32]) -> [u8; 32] {
        keccak_pair(&a, &b)
    }

    #[test]
    fn tree_of_three_pairs_the_last_two_first() {
        let h = [[1u8; 32], [2; 32], [3; 32]];
        assert_eq!(tree_hash(&h), Some(pair([1; 32], pair([2; 32], [3; 32]))));
    }

    #[test]
    fn tree_of_five_and_of_four() {
        let h: Vec<[u8; 32]> = (1..=5).map(|i| [i as u8; 32]).collect();
        // Five leaves: the largest power of two below is four; three are kept, two paired.
        let level = [h[0], h[1], h[2], pair(h[3], h[4])];
        let expected = pair(pair(level[0], level[1]), pair(level[2], level[3]));
        assert_eq!(tree_hash(&h), Some(expected));
        let four = &h[..4];
        assert_eq!(
            tree_hash(four),
            Some(pair(pair(h[0], h[1]), pair(h[2], h[3])))
        );
        assert_eq!(tree_hash(&[]), None);
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(MoneroTemplate::parse(&[], 0).is_err());
        assert!(MoneroTemplate::parse(&[0x10; 50], 0).is_err());
    }
}
