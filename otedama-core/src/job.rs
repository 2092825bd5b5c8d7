//! Mining jobs and submitted shares, and the pure rebuild of a header from the two.

use core::fmt;

use crate::header::{apply_version_bits, BlockHeader};
use crate::merkle::{coinbase_txid_from_parts, MerkleBranch};
use crate::target::{CompactTarget, Target};

/// A job identifier as a pool sends it (the first parameter of `mining.notify`); opaque text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct JobId(String);

impl JobId {
    /// Wraps a job id.
    pub fn new(id: impl Into<String>) -> JobId {
        JobId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> JobId {
        JobId(s.to_owned())
    }
}

impl From<String> for JobId {
    fn from(s: String) -> JobId {
        JobId(s)
    }
}

/// A unit of work for SHA-256d-style headers, in the shape of a Stratum v1 `mining.notify`
/// plus the share target in force for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job id.
    pub id: JobId,
    /// Previous block hash in internal (header) byte order; convert the Stratum form with
    /// [`prevhash_from_stratum`](crate::prevhash_from_stratum).
    pub prevhash: [u8; 32],
    /// Coinbase serialization before the extranonce slot.
    pub coinb1: Vec<u8>,
    /// Coinbase serialization after the extranonce slot.
    pub coinb2: Vec<u8>,
    /// Merkle path from the coinbase to the root.
    pub merkle_branch: MerkleBranch,
    /// Header version before rolling.
    pub version: u32,
    /// Network target of the block.
    pub bits: CompactTarget,
    /// Header time proposed by the pool.
    pub time: u32,
    /// Whether earlier jobs are void (`clean_jobs`).
    pub clean: bool,
    /// Height of the block being mined.
    pub height: u32,
    /// Target a share must meet to be credited.
    pub share_target: Target,
}

/// A share a miner submits for a [`Job`] (Stratum v1 `mining.submit` plus the session's
/// extranonce1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Share {
    /// The job the share claims to solve.
    pub job_id: JobId,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// The miner's extranonce2.
    pub extranonce2: Vec<u8>,
    /// Header time chosen by the miner.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits, when version rolling was negotiated.
    pub version_bits: Option<u32>,
    /// Worker name as authorized.
    pub worker: String,
}

/// Why a header could not be rebuilt from a job and a share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShareHeaderError {
    /// The share names another job.
    #[error("share for job {share} does not belong to job {job}")]
    JobMismatch {
        /// The job's id.
        job: JobId,
        /// The id in the share.
        share: JobId,
    },
    /// The share's version bits touch bits outside the negotiated mask.
    #[error("job {job}: version bits {bits:#010x} fall outside mask {mask:#010x}")]
    VersionBitsOutsideMask {
        /// The job's id.
        job: JobId,
        /// The submitted bits.
        bits: u32,
        /// The negotiated mask.
        mask: u32,
    },
}

impl Job {
    /// The coinbase txid (internal order) for these extranonces.
    pub fn coinbase_txid(&self, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
        coinbase_txid_from_parts(&self.coinb1, extranonce1, extranonce2, &self.coinb2)
    }

    /// The merkle root (internal order) for these extranonces.
    pub fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
        self.merkle_branch
            .root(&self.coinbase_txid(extranonce1, extranonce2))
    }

    /// Rebuilds the header a share claims: coinbase → merkle root → header, with the
    /// version rolled as `(version & !mask) | (bits & mask)` when the share carries version
    /// bits. Pure: no clock, no I/O; extranonce sizes and ntime ranges are the caller's
    /// policy.
    pub fn header_for(
        &self,
        share: &Share,
        version_mask: u32,
    ) -> Result<BlockHeader, ShareHeaderError> {
        if share.job_id != self.id {
            return Err(ShareHeaderError::JobMismatch {
                job: self.id.clone(),
                share: share.job_id.clone(),
            });
        }
        let version = match share.version_bits {
            None => self.version,
            Some(bits) if bits & !version_mask != 0 => {
                return Err(ShareHeaderError::VersionBitsOutsideMask {
                    job: self.id.clone(),
                    bits,
                    mask: version_mask,
                })
            }
            Some(bits) => apply_version_bits(self.version, bits, version_mask),
        };
        Ok(BlockHeader {
            version,
            prev_blockhash: self.prevhash,
            merkle_root: self.merkle_root(&share.extranonce1, &share.extranonce2),
            time: share.ntime,
            bits: self.bits,
            nonce: share.nonce,
        })
    }
}
