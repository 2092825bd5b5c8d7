//! The 80-byte Bitcoin block header and BIP320 version rolling.

use bitcoin::hashes::{sha256d, Hash};

use crate::target::{CompactTarget, CompactTargetError, Target};

/// The BIP320 mask of header version bits a miner may roll (bits 13 to 28).
pub const BIP320_VERSION_MASK: u32 = 0x1fff_e000;

/// Rolls a job's version: `(job_version & !mask) | (version_bits & mask)` (BIP310).
///
/// Bits of `version_bits` outside `mask` are ignored; callers that must reject them (a pool
/// checking `mining.submit`) test `version_bits & !mask != 0` first.
pub const fn apply_version_bits(job_version: u32, version_bits: u32, mask: u32) -> u32 {
    (job_version & !mask) | (version_bits & mask)
}

/// Double SHA-256, as the bytes come out of the hash ("internal" order).
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256d::Hash::hash(data).to_byte_array()
}

/// Why bytes could not be read as a block header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The input is not exactly 80 bytes.
    #[error("block header must be 80 bytes, got {len}")]
    WrongLength {
        /// The length received.
        len: usize,
    },
}

/// A Bitcoin block header in its 80-byte consensus form.
///
/// Hashes are kept in internal byte order (as serialized; the reverse of what explorers
/// print).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHeader {
    /// Block version (the consensus `int32`, handled as its unsigned bit pattern).
    pub version: u32,
    /// Hash of the previous block, internal byte order.
    pub prev_blockhash: [u8; 32],
    /// Merkle root of the block's transactions, internal byte order.
    pub merkle_root: [u8; 32],
    /// Block time, seconds since the Unix epoch.
    pub time: u32,
    /// Compact target.
    pub bits: CompactTarget,
    /// Nonce.
    pub nonce: u32,
}

impl BlockHeader {
    /// Serialized size in bytes.
    pub const SIZE: usize = 80;

    /// The 80 consensus bytes: version, prev hash, merkle root, time, bits, nonce, with the
    /// integers little-endian.
    pub fn to_bytes(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_blockhash);
        out[36..68].copy_from_slice(&self.merkle_root);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_consensus().to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses exactly 80 bytes; any other length is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlockHeader, HeaderError> {
        let b: &[u8; 80] = bytes
            .try_into()
            .map_err(|_| HeaderError::WrongLength { len: bytes.len() })?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut prev_blockhash = [0u8; 32];
        prev_blockhash.copy_from_slice(&b[4..36]);
        let mut merkle_root = [0u8; 32];
        merkle_root.copy_from_slice(&b[36..68]);
        Ok(BlockHeader {
            version: u32_at(0),
            prev_blockhash,
            merkle_root,
            time: u32_at(68),
            bits: CompactTarget::from_consensus(u32_at(72)),
            nonce: u32_at(76),
        })
    }

    /// sha256d of the 80 bytes, internal byte order (the proof-of-work hash for SHA-256d
    /// coins; reverse it for display).
    pub fn block_hash(&self) -> [u8; 32] {
        sha256d(&self.to_bytes())
    }

    /// The target encoded in `bits`.
    pub fn target(&self) -> Result<Target, CompactTargetError> {
        self.bits.decode()
    }

    /// Whether the block hash meets the header's own target (Bitcoin's proof-of-work rule,
    /// without the network's proof-of-work limit).
    pub fn meets_own_target(&self) -> Result<bool, CompactTargetError> {
        Ok(self.target()?.is_met_by(&self.block_hash()))
    }
}

impl From<BlockHeader> for bitcoin::block::Header {
    fn from(h: BlockHeader) -> bitcoin::block::Header {
        bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(h.version as i32),
            prev_blockhash: bitcoin::BlockHash::from_byte_array(h.prev_blockhash),
            merkle_root: bitcoin::TxMerkleNode::from_byte_array(h.merkle_root),
            time: h.time,
            bits: h.bits.into(),
            nonce: h.nonce,
        }
    }
}

impl From<bitcoin::block::Header> for BlockHeader {
    fn from(h: bitcoin::block::Header) -> BlockHeader {
        BlockHeader {
            version: h.version.to_consensus() as u32,
            prev_blockhash: h.prev_blockhash.to_byte_array(),
            merkle_root: h.merkle_root.to_byte_array(),
            time: h.time,
            bits: h.bits.into(),
            nonce: h.nonce,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_are_errors() {
        assert_eq!(
            BlockHeader::from_bytes(&[0u8; 79]),
            Err(HeaderError::WrongLength { len: 79 })
        );
        assert_eq!(
            BlockHeader::from_bytes(&[0u8; 81]),
            Err(HeaderError::WrongLength { len: 81 })
        );
        assert!(BlockHeader::from_bytes(&[]).is_err());
    }

    #[test]
    fn version_rolling() {
        assert_eq!(
            apply_version_bits(0x2000_0000, 0x0000_e000, BIP320_VERSION_MASK),
            0x2000_e000
        );
        // Bits outside the mask are ignored, bits inside replaced.
        assert_eq!(
            apply_version_bits(0x2000_0004, 0xffff_ffff, BIP320_VERSION_MASK),
            0x3fff_e004
        );
    }
}
