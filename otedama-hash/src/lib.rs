//! Proof-of-work kernels for otedama, behind one trait.
//!
//! [`PowAlgorithm`] hashes one input or hands out [`Worker`]s that scan nonce ranges against a
//! [`Target`](otedama_core::Target). The kernels:
//!
//! - [`Sha256d`]: midstate plus two compressions per nonce; SHA-NI with four nonces in flight,
//!   or AVX-512 with sixteen, whichever this CPU runs faster (timed once per process), a
//!   portable path otherwise.
//! - [`Scrypt`]: N = 1024, r = 1, p = 1; eight nonces per call on AVX2 or AVX-512VL, one on the
//!   portable path; the general RFC 7914 function as [`scrypt()`].
//! - [`RandomX`] (feature `randomx`, on by default): rx/0 on the reference library, light mode
//!   to verify and fast mode (2 GiB dataset, built by several threads) to mine, re-keyed with
//!   [`RandomX::set_key`].
//! - [`Ethash`] and [`KawPow`]: the DAG family, bound to a block height; light caches shared
//!   across threads and epochs prepared ahead by an [`EpochCache`], share verification with
//!   [`EpochContext::verify`] (one) or [`EpochContext::verify_many`] (batched), and search over
//!   a [`FullDataset`] built only when mining is asked for.
//!
//! Every kernel is checked against published known-answer vectors.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `randomx` | on | [`RandomX`], [`RandomXMode`] and [`randomx_commitment`], on the reference C++ library that `randomx-rs` builds with CMake and a C++ compiler |
//!
//! Without `randomx` the crate has SHA256d, scrypt, Ethash and KawPow, and needs no C++
//! toolchain. [`Algorithm::RandomX`] is still there, so configuration names it and `match`es
//! stay the same in every build; [`Algorithm::check_enabled`] turns it into
//! [`HashError::AlgorithmDisabled`] where no kernel can be built.
//!
//! # Example
//!
//! Find the nonce of the Bitcoin genesis block by scanning around it:
//!
//! ```
//! use otedama_core::{CompactTarget, Target};
//! use otedama_hash::{PowAlgorithm, ScanJob, Sha256d};
//!
//! let header: [u8; 80] = hex::decode(
//!     "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b2\
//!      7ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
//! )?
//! .try_into()
//! .expect("80 bytes");
//! let target: Target = CompactTarget::from_consensus(0x1d00ffff).decode()?;
//! let mut worker = Sha256d::new().worker()?;
//! let mut found = Vec::new();
//! let genesis_nonce = 2_083_236_893u64;
//! let hashed = worker.scan(
//!     &ScanJob::header80(header),
//!     genesis_nonce - 1000..genesis_nonce + 1000,
//!     &target,
//!     &mut found,
//! )?;
//! assert_eq!(hashed, 2000);
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].nonce, genesis_nonce);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// Without `randomx` the RandomX items are gone; their links above point at the features table.
#![cfg_attr(
    not(feature = "randomx"),
    doc = "[`RandomX`]: #features\n[`RandomX::set_key`]: #features\n\
           [`RandomXMode`]: #features\n[`randomx_commitment`]: #features"
)]

mod algorithm;
mod ethash;
#[cfg(feature = "randomx")]
mod randomx;
mod scrypt;
mod sha256d;

pub use algorithm::{
    Algorithm, HashOrder, NonceWidth, PowAlgorithm, PowOutput, Progress, ScanJob, Solution, Worker,
};
pub use ethash::{
    epoch_seed, keccak256, keccak512, DagAlgorithm, DagMode, EpochCache, EpochContext, EpochParams,
    Ethash, FullDataset, KawPow, ShareClaim, Verification, HEADER_NONCE_LEN, MAX_EPOCH,
};
#[cfg(feature = "randomx")]
pub use randomx::{randomx_commitment, DatasetPages, RandomX, RandomXMode};
pub use scrypt::{
    block_mix, pbkdf2_hmac_sha256, ro_mix, salsa20_8, scrypt, scrypt_1024_1_1, Scrypt,
    ScryptBackend, MINING_N,
};
pub use sha256d::{sha256d, Sha256d, Sha256dBackend};

/// Why a hashing call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The name matches no supported algorithm.
    #[error("unknown algorithm {0:?} (expected one of sha256d, scrypt, randomx, ethash, kawpow)")]
    UnknownAlgorithm(String),
    /// The CPU lacks the instructions a requested backend needs.
    #[error("the {0} backend is not supported by this cpu")]
    BackendUnavailable(&'static str),
    /// The nonce slot does not fit in the input.
    #[error("nonce slot of {width} bytes at offset {offset} does not fit a {len}-byte input")]
    NonceSlot {
        /// Where the slot starts.
        offset: usize,
        /// Its width in bytes.
        width: usize,
        /// The input's length.
        len: usize,
    },
    /// A nonce range reaches past what the slot can hold.
    #[error("nonce range ends at {end}, past the slot's limit of {limit}")]
    NonceRange {
        /// The range's end (exclusive).
        end: u128,
        /// One past the largest nonce the slot holds.
        limit: u128,
    },
    /// scrypt parameters that RFC 7914 forbids or that need too much memory.
    #[error("invalid scrypt parameters n={n} r={r} p={p}: {reason}")]
    ScryptParams {
        /// Cost.
        n: u64,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The algorithm's kernel is not in this build: the crate was built without the feature
    /// that holds it (see [`Algorithm::check_enabled`]).
    #[error("the {algorithm} kernel is not in this build (otedama-hash was built without its {feature:?} feature)")]
    AlgorithmDisabled {
        /// The algorithm asked for.
        algorithm: Algorithm,
        /// The cargo feature that would add it.
        feature: &'static str,
    },
    /// The RandomX library could not do what was asked (only with the `randomx` feature).
    #[error("randomx: {0}")]
    RandomX(String),
    /// An Ethash or KawPow epoch past the last one supported ([`MAX_EPOCH`]).
    #[error("epoch {epoch} is past the last supported epoch {max}")]
    EpochOutOfRange {
        /// The epoch asked for.
        epoch: u64,
        /// The last epoch supported.
        max: u32,
    },
    /// An algorithm without epochs where Ethash or KawPow was needed.
    #[error("{0} is not an ethash-family algorithm")]
    NotDagAlgorithm(Algorithm),
    /// An epoch context used for a height outside its epoch.
    #[error("the {algorithm} context of epoch {context_epoch} cannot serve height {height} (epoch {height_epoch})")]
    EpochMismatch {
        /// The context's algorithm.
        algorithm: Algorithm,
        /// The context's epoch.
        context_epoch: u32,
        /// The height asked for.
        height: u64,
        /// The epoch of that height.
        height_epoch: u32,
    },
    /// Memory for a light cache or full dataset could not be allocated.
    #[error("could not allocate {bytes} bytes for the {what}")]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// How many bytes.
        bytes: u64,
    },
    /// A dataset build stopped because its cancellation flag was set.
    #[error("building the {what} of epoch {epoch} was cancelled")]
    Cancelled {
        /// What was being built.
        what: &'static str,
        /// Its epoch.
        epoch: u32,
    },
    /// An Ethash or KawPow input that is not a 32-byte header hash and an 8-byte nonce.
    #[error("an ethash or kawpow input is a 32-byte header hash and an 8-byte little-endian nonce (40 bytes), not {len} bytes")]
    HeaderNonceInput {
        /// The input's length.
        len: usize,
    },
    /// An Ethash or KawPow scan job not laid out as header hash, then a 64-bit nonce.
    #[error("an ethash or kawpow scan job needs a 40-byte input with an 8-byte nonce at offset 32, not {len} bytes with a {width}-byte nonce at {offset}")]
    ScanLayout {
        /// The input's length.
        len: usize,
        /// Where its nonce slot starts.
        offset: usize,
        /// The slot's width in bytes.
        width: usize,
    },
}
