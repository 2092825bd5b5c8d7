//! Share validation: rebuild coinbase → merkle root → header (with version rolling) → proof
//! of work → share target and network target; a block candidate comes back fully assembled.

use otedama_core::bitcoin::consensus::serialize;
use otedama_core::{reverse_hash, sha256d, Difficulty, DifficultyConvention, Share};
use otedama_hash::PowAlgorithm;
use otedama_stratum::ShareSubmission;

use crate::jobs::PoolJob;

/// Why a share was not accepted. Each reason is its own variant, with the error behind it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The job is no longer valid (a new block replaced it, or it never existed).
    #[error("job {0} is stale or unknown")]
    Stale(String),
    /// The hash misses the share difficulty.
    #[error("the hash misses the share difficulty")]
    LowDifficulty,
    /// The header cannot be rebuilt from the job and the share.
    #[error(transparent)]
    Header(#[from] otedama_core::ShareHeaderError),
    /// The proof-of-work kernel failed.
    #[error("proof of work")]
    Pow(#[from] otedama_hash::HashError),
    /// The session's share difficulty is not a usable difficulty.
    #[error("share difficulty")]
    Difficulty(#[from] otedama_core::DifficultyError),
    /// The coinbase cannot be filled in with the share's extranonces.
    #[error(transparent)]
    Coinbase(#[from] otedama_core::CoinbaseError),
    /// The hash the miner claims is not the hash of its nonce (a Monero-dialect share).
    #[error("result {claimed} is not the hash of nonce {nonce:08x} (randomx gives {computed})")]
    ResultMismatch {
        /// The nonce.
        nonce: u32,
        /// The claimed hash, hex.
        claimed: String,
        /// The hash of the job's blob with the nonce, hex.
        computed: String,
    },
    /// The job's hashing blob is too short to hold a nonce (a Monero-layout job).
    #[error("hashing blob of {0} bytes cannot hold a nonce")]
    ShortBlob(usize),
    /// A share on the pool's common RandomX job: every connection given that job hashes the
    /// same blob, so its shares could be submitted once per connection.
    #[error("job {0} is the pool's common job; only a connection's own job is credited")]
    SharedJob(String),
    /// The share could not be made durable, so it is not acknowledged.
    #[error("share not recorded")]
    NotRecorded(#[source] crate::store::StoreError),
    /// The caller did not finish a step of the share in time (its proof-of-work check, or
    /// its commit); the share is not acknowledged.
    #[error("the pool did not finish the share's {0} in time")]
    TimedOut(Stage),
}

/// A step a share goes through in the engine, each with its own deadline
/// ([`Deadlines`](crate::Deadlines)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Its proof-of-work check ([`ShareCheck::verify`](crate::ShareCheck::verify)).
    Check,
    /// The node's answer to the block it found.
    Block,
    /// Its commit to storage.
    Persist,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Check => "proof-of-work check",
            Stage::Block => "block submission",
            Stage::Persist => "commit",
        })
    }
}

impl ShareError {
    /// What a Stratum session tells the miner.
    pub fn verdict(&self) -> otedama_stratum::ShareVerdict {
        use otedama_stratum::ShareVerdict;
        match self {
            ShareError::Stale(_) => ShareVerdict::Stale,
            ShareError::LowDifficulty => ShareVerdict::LowDifficulty,
            // The pool's own failures: the miner did nothing wrong.
            ShareError::NotRecorded(_) | ShareError::TimedOut(_) => {
                ShareVerdict::PoolError(crate::ErrorChain(self).to_string())
            }
            other => ShareVerdict::Invalid(crate::ErrorChain(other).to_string()),
        }
    }
}

/// What a share turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Meets the share target.
    Share {
        /// The proof-of-work hash.
        pow_hash: [u8; 32],
    },
    /// Meets the network target too: a block.
    Block {
        /// The proof-of-work hash.
        pow_hash: [u8; 32],
        /// The block's id (sha256d of the header), display order hex.
        block_hash: String,
        /// The full block to submit.
        block: Vec<u8>,
    },
}

impl Outcome {
    /// The proof-of-work hash.
    pub fn pow_hash(&self) -> [u8; 32] {
        match self {
            Outcome::Share { pow_hash } | Outcome::Block { pow_hash, .. } => *pow_hash,
        }
    }
}

/// A found block, in the form its work source takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoundBlock {
    /// A Bitcoin-family block, serialized whole: what `submitblock` takes
    /// ([`BlockSubmitter::submit_block`](crate::BlockSubmitter::submit_block)).
    Bitcoin(Vec<u8>),
    /// A Monero-layout block: the hashing blob with the winning nonce, and the coinbase its
    /// tree root commits to ([`RxSource::submit`](crate::RxSource::submit)).
    Rx {
        /// The hashing blob.
        blob: Vec<u8>,
        /// The coinbase.
        coinbase: Vec<u8>,
    },
}

/// A share that passed its proof-of-work check.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The proof-of-work hash.
    pub(crate) pow_hash: [u8; 32],
    /// The block it found, with the block's id as recorded.
    pub(crate) block: Option<(String, FoundBlock)>,
    /// The sharechain share it is, when its job is a sharechain job and it meets the share
    /// target there.
    pub(crate) side: Option<otedama_p2p::Share>,
}

impl From<Outcome> for Verified {
    fn from(outcome: Outcome) -> Verified {
        match outcome {
            Outcome::Share { pow_hash } => Verified {
                pow_hash,
                block: None,
                side: None,
            },
            Outcome::Block {
                pow_hash,
                block_hash,
                block,
            } => Verified {
                pow_hash,
                block: Some((block_hash, FoundBlock::Bitcoin(block))),
                side: None,
            },
        }
    }
}

/// The share a session handed over, in core's form.
pub fn share_of(submission: &ShareSubmission) -> Share {
    Share {
        job_id: submission.job_id.as_str().into(),
        extranonce1: submission.extranonce1.clone(),
        extranonce2: submission.extranonce2.clone(),
        ntime: submission.ntime,
        nonce: submission.nonce,
        version_bits: submission.version_bits,
        worker: submission.worker.clone(),
    }
}

/// Checks `share` against `job` with `kernel`: the version mask negotiated by the session,
/// and the share difficulty read in `convention`. Pure: run it on whatever thread the caller
/// picks for hashing.
pub fn validate(
    job: &PoolJob,
    share: &Share,
    version_mask: u32,
    share_difficulty: f64,
    kernel: &dyn PowAlgorithm,
    convention: DifficultyConvention,
) -> Result<Outcome, ShareError> {
    validate_header(
        job,
        share,
        version_mask,
        share_difficulty,
        kernel,
        convention,
    )
    .map(|(outcome, _)| outcome)
}

/// [`validate`], with the header the share rebuilt.
pub(crate) fn validate_header(
    job: &PoolJob,
    share: &Share,
    version_mask: u32,
    share_difficulty: f64,
    kernel: &dyn PowAlgorithm,
    convention: DifficultyConvention,
) -> Result<(Outcome, otedama_core::BlockHeader), ShareError> {
    let header = job.job.header_for(share, version_mask)?;
    let header_bytes = header.to_bytes();
    let pow_hash = kernel.hash(&header_bytes)?.hash;
    let difficulty = Difficulty::new(share_difficulty)?;
    // A block is a block even below the share difficulty (a chain easier than the pool's
    // shares: regtest, a devnet, a testnet): refusing it would throw the block away.
    if !job.network_target.is_met_by(&pow_hash) {
        if !convention.target_for(difficulty).is_met_by(&pow_hash) {
            return Err(ShareError::LowDifficulty);
        }
        return Ok((Outcome::Share { pow_hash }, header));
    }
    let coinbase = job
        .coinbase
        .transaction(&share.extranonce1, &share.extranonce2)?;
    let coinbase = serialize(&coinbase);
    let block = job.template.assemble_block(&header, &coinbase);
    Ok((
        Outcome::Block {
            pow_hash,
            block_hash: otedama_core::encode_hex(&reverse_hash(&sha256d(&header_bytes))),
            block,
        },
        header,
    ))
}

#[cfg(all(test, feature = "devnet"))]
mod tests {
    use std::sync::Arc;

    use otedama_core::{stratum_merkle_root, BlockHeader, Target};
    use otedama_hash::{ScanJob, Sha256d};

    use super::*;
    use crate::jobs::JobBook;
    use crate::source::devnet::Devnet;
    use crate::source::{BlockSubmitter, TemplateSource};

    fn share(job: &PoolJob, nonce: u32) -> Share {
        Share {
            job_id: job.job.id.clone(),
            extranonce1: vec![0xaa; 4],
            extranonce2: vec![0xbb; 4],
            ntime: job.job.time,
            nonce,
            version_bits: None,
            worker: "w".into(),
        }
    }

    /// Finds a nonce the way a miner does: from the notify fields alone.
    fn mine(job: &PoolJob, target: &Target) -> u32 {
        let n = &job.announcement.notify;
        let root = stratum_merkle_root(
            &n.coinb1,
            &[0xaa; 4],
            &[0xbb; 4],
            &n.coinb2,
            &job.job.merkle_branch,
        );
        let header = BlockHeader {
            version: n.version,
            prev_blockhash: n.prevhash,
            merkle_root: root,
            time: n.ntime,
            bits: otedama_core::CompactTarget::from_consensus(n.nbits),
            nonce: 0,
        };
        let mut worker = Sha256d::new().worker().expect("worker");
        let job = ScanJob::header80(header.to_bytes());
        let mut found = Vec::new();
        let mut start = 0;
        while found.is_empty() {
            worker
                .scan(&job, start..start + 65_536, target, &mut found)
                .expect("scan");
            start += 65_536;
        }
        found[0].nonce as u32
    }

    #[test]
    fn shares_and_blocks_from_a_miners_view_validate_and_the_block_is_accepted() {
        let network =
            DifficultyConvention::Bitcoin.target_for(Difficulty::new(1.0 / 1024.0).expect("d"));
        let mut devnet = Devnet::new(Box::new(Sha256d::new()), network);
        let template = Arc::new(devnet.template().expect("template"));
        let mut book = JobBook::default();
        let payout = otedama_core::bitcoin::ScriptBuf::new();
        let job = book
            .make(template, &payout, b"/otedama/", true, 0)
            .expect("job");
        let kernel = Sha256d::new();

        // A block: meets the network target, and the devnet takes it.
        let nonce = mine(&job, &job.network_target);
        let bitcoin = DifficultyConvention::Bitcoin;
        let Ok(Outcome::Block { block, .. }) =
            validate(&job, &share(&job, nonce), 0, 1.0 / 1024.0, &kernel, bitcoin)
        else {
            panic!("expected a block");
        };
        devnet
            .submit_block(&block)
            .expect("devnet accepts the pool's block");
        assert_eq!(devnet.height(), 1);

        // The same nonce at a share difficulty far above the network's is still the block:
        // refusing it as low difficulty would throw the block away.
        assert!(matches!(
            validate(&job, &share(&job, nonce), 0, 1e12, &kernel, bitcoin),
            Ok(Outcome::Block { .. })
        ));
        // Any other hash at that share difficulty is low difficulty.
        let mut low = 0;
        for other in 0..16 {
            match validate(&job, &share(&job, other), 0, 1e12, &kernel, bitcoin) {
                Err(ShareError::LowDifficulty) => low += 1,
                Ok(Outcome::Block { .. }) => {}
                other => panic!("neither low nor a block: {other:?}"),
            }
        }
        assert!(low > 0);
        // Version bits outside the mask cannot be rebuilt.
        let mut rolled = share(&job, nonce);
        rolled.version_bits = Some(0x0000_2000);
        assert!(matches!(
            validate(&job, &rolled, 0, 1.0 / 1024.0, &kernel, bitcoin),
            Err(ShareError::Header(_))
        ));
        // Inside the mask they roll the version: a different header, still checked.
        rolled.version_bits = Some(0x0000_2000);
        assert!(!matches!(
            validate(&job, &rolled, 0x1fff_e000, 1.0 / 1024.0, &kernel, bitcoin),
            Err(ShareError::Header(_))
        ));
    }
}
