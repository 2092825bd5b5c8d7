//! Epochs: which algorithm, which epoch a height falls in, and each epoch's seed and sizes.

use std::fmt;

use crate::algorithm::Algorithm;
use crate::HashError;

use super::keccak::keccak256;

/// The last epoch supported: its full dataset has 2^31 − 65,565 items of 128 bytes, the largest
/// count whose indices still fit the 32-bit arithmetic of the algorithm (chfast/ethash's limit).
pub const MAX_EPOCH: u32 = 32_639;

/// Bytes in a light-cache node (one Keccak-512 digest).
pub(crate) const NODE_BYTES: u64 = 64;
/// Bytes in a full-dataset item as Ethash reads it (two nodes).
pub(crate) const ITEM_BYTES: u64 = 128;

const CACHE_INIT_BYTES: u64 = 1 << 24;
const CACHE_GROWTH_BYTES: u64 = 1 << 17;
const DATASET_INIT_BYTES: u64 = 1 << 30;
const DATASET_GROWTH_BYTES: u64 = 1 << 23;

/// An algorithm of the Ethash family: the two that share the epoch machinery (seed, light cache,
/// dataset sizes) and differ in epoch length, dataset parents and the hash itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DagAlgorithm {
    /// Ethash: 30,000-block epochs, 256 parents per dataset node.
    Ethash,
    /// KawPow: 7,500-block epochs, 512 parents per dataset node.
    KawPow,
}

impl DagAlgorithm {
    /// Both algorithms.
    pub const ALL: [DagAlgorithm; 2] = [DagAlgorithm::Ethash, DagAlgorithm::KawPow];

    /// Blocks per epoch: 30,000 for Ethash, 7,500 for KawPow.
    pub const fn epoch_length(self) -> u64 {
        match self {
            DagAlgorithm::Ethash => 30_000,
            DagAlgorithm::KawPow => 7_500,
        }
    }

    /// Light-cache parents mixed into each 64-byte dataset node: 256 for Ethash, 512 for KawPow.
    pub const fn dataset_parents(self) -> u32 {
        match self {
            DagAlgorithm::Ethash => 256,
            DagAlgorithm::KawPow => 512,
        }
    }

    /// The epoch a block height falls in, or an error past [`MAX_EPOCH`].
    pub fn epoch_of(self, height: u64) -> Result<u32, HashError> {
        let epoch = height / self.epoch_length();
        match u32::try_from(epoch) {
            Ok(e) if e <= MAX_EPOCH => Ok(e),
            _ => Err(HashError::EpochOutOfRange {
                epoch,
                max: MAX_EPOCH,
            }),
        }
    }

    /// The general [`Algorithm`] this is.
    pub const fn algorithm(self) -> Algorithm {
        match self {
            DagAlgorithm::Ethash => Algorithm::Ethash,
            DagAlgorithm::KawPow => Algorithm::KawPow,
        }
    }
}

impl TryFrom<Algorithm> for DagAlgorithm {
    type Error = HashError;

    fn try_from(algorithm: Algorithm) -> Result<Self, Self::Error> {
        match algorithm {
            Algorithm::Ethash => Ok(DagAlgorithm::Ethash),
            Algorithm::KawPow => Ok(DagAlgorithm::KawPow),
            other => Err(HashError::NotDagAlgorithm(other)),
        }
    }
}

impl fmt::Display for DagAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm().name())
    }
}

/// The parameters of one epoch: its seed and the sizes of its light cache and full dataset.
///
/// These are the same functions of the epoch number for Ethash and KawPow; only the mapping
/// from height to epoch differs ([`DagAlgorithm::epoch_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochParams {
    epoch: u32,
    seed: [u8; 32],
    light_cache_items: u32,
    full_dataset_items: u32,
}

impl EpochParams {
    /// Computes the parameters of `epoch` (the seed takes `epoch` Keccak-256 calls).
    pub fn new(epoch: u32) -> Result<Self, HashError> {
        if epoch > MAX_EPOCH {
            return Err(HashError::EpochOutOfRange {
                epoch: u64::from(epoch),
                max: MAX_EPOCH,
            });
        }
        Ok(EpochParams {
            epoch,
            seed: epoch_seed(epoch),
            light_cache_items: largest_prime_item_count(
                CACHE_INIT_BYTES,
                CACHE_GROWTH_BYTES,
                NODE_BYTES,
                epoch,
            ),
            full_dataset_items: largest_prime_item_count(
                DATASET_INIT_BYTES,
                DATASET_GROWTH_BYTES,
                ITEM_BYTES,
                epoch,
            ),
        })
    }

    /// The epoch number.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The seed hash: Keccak-256 applied `epoch` times to 32 zero bytes.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// Light-cache nodes of 64 bytes (a prime).
    pub fn light_cache_items(&self) -> u32 {
        self.light_cache_items
    }

    /// Light-cache size in bytes.
    pub fn light_cache_bytes(&self) -> u64 {
        u64::from(self.light_cache_items) * NODE_BYTES
    }

    /// Full-dataset items of 128 bytes (a prime).
    pub fn full_dataset_items(&self) -> u32 {
        self.full_dataset_items
    }

    /// Full-dataset size in bytes.
    pub fn full_dataset_bytes(&self) -> u64 {
        u64::from(self.full_dataset_items) * ITEM_BYTES
    }
}

/// The seed hash of `epoch`: Keccak-256 applied `epoch` times to 32 zero bytes.
pub fn epoch_seed(epoch: u32) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for _ in 0..epoch {
        seed = keccak256(&seed);
    }
    seed
}

/// The largest prime item count at most `(init + growth·epoch) / item` (an even bound, so the
/// search starts one below it and steps over odd numbers).
fn largest_prime_item_count(init: u64, growth: u64, item: u64, epoch: u32) -> u32 {
    let bound = (init + growth * u64::from(epoch)) / item;
    let mut candidate = bound - 1;
    while !is_prime(candidate) {
        candidate -= 2;
    }
    // The bound is below 2^31 for every epoch up to MAX_EPOCH, and so is every candidate.
    candidate as u32
}

/// Trial division; the numbers asked about are below 2^32, so at most ~33,000 odd divisors.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_by_algorithm() {
        assert_eq!(DagAlgorithm::Ethash.epoch_of(29_999).ok(), Some(0));
        assert_eq!(DagAlgorithm::Ethash.epoch_of(30_000).ok(), Some(1));
        assert_eq!(DagAlgorithm::KawPow.epoch_of(7_499).ok(), Some(0));
        assert_eq!(DagAlgorithm::KawPow.epoch_of(7_500).ok(), Some(1));
        assert!(DagAlgorithm::KawPow.epoch_of(7_500 * 32_640).is_err());
        assert!(DagAlgorithm::Ethash.epoch_of(u64::MAX).is_err());
        assert!(EpochParams::new(MAX_EPOCH + 1).is_err());
    }

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(2_147_483_647));
        assert!(!is_prime(2_147_483_649));
    }
}
