//! Ethash and KawPow: the DAG-based proof-of-work family.
//!
//! Both algorithms hash a 32-byte header hash and a 64-bit nonce into a mix hash and a final
//! hash, reading a dataset (the "DAG") that changes every epoch. They share the epoch machinery:
//! the seed, the light cache (Keccak-512 chain plus three rounds of RandMemoHash) and the sizes
//! of cache and dataset are the same functions of the epoch number. They differ in:
//!
//! | | Ethash | KawPow |
//! |---|---|---|
//! | epoch length | 30,000 blocks | 7,500 blocks |
//! | parents per dataset node | 256 | 512 |
//! | hash | hashimoto: 64 reads of 128 bytes, FNV, Keccak-256/512 | ProgPoW 0.9.4: 64 rounds of a per-period random program over 16 lanes, Keccak-f[800] with "RAVENCOINKAWPOW" padding |
//!
//! Layers, from the bottom:
//!
//! - [`EpochParams`], [`epoch_seed`], [`DagAlgorithm::epoch_of`]: the numbers.
//! - [`EpochContext`]: one epoch's light cache (and KawPow's L1 cache), enough to hash and
//!   verify; [`EpochContext::hash`] and [`EpochContext::verify`].
//! - [`FullDataset`]: the whole dataset, built by several threads with progress and
//!   cancellation, only when mining.
//! - [`EpochCache`]: contexts and datasets shared across threads, built once each, kept within
//!   a limit; [`EpochCache::prepare_next`] builds the next epoch ahead.
//! - [`Ethash`] and [`KawPow`]: [`PowAlgorithm`](crate::PowAlgorithm) kernels bound to a height,
//!   in [`DagMode::Verify`] (light cache) or [`DagMode::Search`] (full dataset).
//!
//! Hash loops read dataset items through one small internal trait with two implementations,
//! computed from the light cache or read from the built dataset, so the search path runs the
//! same code as the verified light path.

mod cache;
mod dag;
mod epoch;
#[allow(clippy::module_inception)]
mod ethash;
mod hugepages;
mod kawpow;
mod keccak;
mod kernel;
mod light;
mod node;
mod progpow;
mod simd;

#[cfg(test)]
mod tests;

pub use cache::EpochCache;
pub use dag::{EpochContext, FullDataset};
pub use epoch::{epoch_seed, DagAlgorithm, EpochParams, MAX_EPOCH};
pub use keccak::{keccak256, keccak512};
pub use kernel::{DagMode, Ethash, KawPow, ShareClaim, Verification, HEADER_NONCE_LEN};
