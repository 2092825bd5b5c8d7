//! The proof-of-work trait every kernel implements, and the types it speaks in.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use otedama_core::Target;

use crate::HashError;

/// A proof-of-work algorithm that otedama can hash and mine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Double SHA-256 over the 80-byte header (Bitcoin, Bitcoin Cash).
    Sha256d,
    /// scrypt with N = 1024, r = 1, p = 1 over the 80-byte header (Litecoin, Dogecoin).
    Scrypt,
    /// RandomX rx/0 over the block hashing blob (Monero).
    RandomX,
    /// Ethash over the seal hash and a 64-bit nonce (Ethereum Classic family).
    Ethash,
    /// KawPow (ProgPoW 0.9.4 with Ravencoin's changes).
    KawPow,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Sha256d,
        Algorithm::Scrypt,
        Algorithm::RandomX,
        Algorithm::Ethash,
        Algorithm::KawPow,
    ];

    /// The lowercase name used in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256d => "sha256d",
            Algorithm::Scrypt => "scrypt",
            Algorithm::RandomX => "randomx",
            Algorithm::Ethash => "ethash",
            Algorithm::KawPow => "kawpow",
        }
    }

    /// Whether this build holds the algorithm's kernel: always, except RandomX without the
    /// `randomx` feature.
    pub fn is_enabled(self) -> bool {
        self.check_enabled().is_ok()
    }

    /// Checks that this build holds the algorithm's kernel, so that a caller holding a parsed
    /// [`Algorithm`] refuses one it cannot build with a typed error
    /// ([`HashError::AlgorithmDisabled`]) and needs no `cfg` of its own.
    pub fn check_enabled(self) -> Result<(), HashError> {
        if self == Algorithm::RandomX && !cfg!(feature = "randomx") {
            return Err(HashError::AlgorithmDisabled {
                algorithm: self,
                feature: "randomx",
            });
        }
        Ok(())
    }

    /// How the final hash is read as a number when it is compared with a target.
    pub fn hash_order(self) -> HashOrder {
        match self {
            Algorithm::Sha256d | Algorithm::Scrypt | Algorithm::RandomX => HashOrder::LittleEndian,
            Algorithm::Ethash | Algorithm::KawPow => HashOrder::BigEndian,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let found = match lower.as_str() {
            "sha256d" | "sha256" => Algorithm::Sha256d,
            "scrypt" => Algorithm::Scrypt,
            "randomx" | "rx/0" | "rx0" => Algorithm::RandomX,
            "ethash" => Algorithm::Ethash,
            "kawpow" => Algorithm::KawPow,
            _ => return Err(HashError::UnknownAlgorithm(s.to_owned())),
        };
        Ok(found)
    }
}

/// How a 32-byte hash is read as a 256-bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashOrder {
    /// Byte 31 is the most significant (Bitcoin, Litecoin, Monero).
    LittleEndian,
    /// Byte 0 is the most significant (Ethash, KawPow).
    BigEndian,
}

impl HashOrder {
    /// Whether `hash`, read in this order, is at or below `target`.
    #[inline]
    pub fn meets(self, hash: &[u8; 32], target: &Target) -> bool {
        match self {
            HashOrder::LittleEndian => target.is_met_by(hash),
            HashOrder::BigEndian => target.is_met_by_be(hash),
        }
    }
}

/// What one proof-of-work evaluation produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowOutput {
    /// The final hash, in the byte order the algorithm writes it.
    pub hash: [u8; 32],
    /// The mix hash for the Ethash family; `None` for the others.
    pub mix: Option<[u8; 32]>,
}

impl PowOutput {
    /// An output with only a final hash.
    pub fn hash_only(hash: [u8; 32]) -> Self {
        PowOutput { hash, mix: None }
    }
}

/// The width of the nonce slot in a hashing input; nonces are written little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceWidth {
    /// A 32-bit nonce (Bitcoin header, Monero blob).
    U32,
    /// A 64-bit nonce (Ethash family).
    U64,
}

impl NonceWidth {
    /// The slot size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            NonceWidth::U32 => 4,
            NonceWidth::U64 => 8,
        }
    }

    /// One past the largest nonce the slot can hold.
    pub fn limit(self) -> u128 {
        match self {
            NonceWidth::U32 => 1 << 32,
            NonceWidth::U64 => 1 << 64,
        }
    }
}

/// A hashing input with a marked nonce slot: what a worker scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanJob {
    input: Vec<u8>,
    nonce_offset: usize,
    nonce_width: NonceWidth,
}

impl ScanJob {
    /// A job over `input` whose nonce sits at `nonce_offset` with the given width.
    pub fn new(
        input: Vec<u8>,
        nonce_offset: usize,
        nonce_width: NonceWidth,
    ) -> Result<Self, HashError> {
        let fits = nonce_offset
            .checked_add(nonce_width.bytes())
            .is_some_and(|end| end <= input.len());
        if !fits {
            return Err(HashError::NonceSlot {
                offset: nonce_offset,
                width: nonce_width.bytes(),
                len: input.len(),
            });
        }
        Ok(ScanJob {
            input,
            nonce_offset,
            nonce_width,
        })
    }

    /// A job over an 80-byte Bitcoin-style header (nonce in bytes 76..80).
    pub fn header80(header: [u8; 80]) -> Self {
        ScanJob {
            input: header.to_vec(),
            nonce_offset: 76,
            nonce_width: NonceWidth::U32,
        }
    }

    /// A job over a Monero block hashing blob (nonce in bytes 39..43).
    pub fn monero_blob(blob: Vec<u8>) -> Result<Self, HashError> {
        ScanJob::new(blob, 39, NonceWidth::U32)
    }

    /// The input bytes, with whatever nonce they were built with.
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// Where the nonce starts.
    pub fn nonce_offset(&self) -> usize {
        self.nonce_offset
    }

    /// The nonce slot's width.
    pub fn nonce_width(&self) -> NonceWidth {
        self.nonce_width
    }

    /// The input with `nonce` written into the slot.
    pub fn with_nonce(&self, nonce: u64) -> Result<Vec<u8>, HashError> {
        let mut input = self.input.clone();
        self.write_nonce(&mut input, nonce)?;
        Ok(input)
    }

    /// Writes `nonce` into the slot of `buf`, which must be a copy of this job's input.
    pub fn write_nonce(&self, buf: &mut [u8], nonce: u64) -> Result<(), HashError> {
        if u128::from(nonce) >= self.nonce_width.limit() {
            return Err(HashError::NonceRange {
                end: u128::from(nonce) + 1,
                limit: self.nonce_width.limit(),
            });
        }
        let bytes = nonce.to_le_bytes();
        let width = self.nonce_width.bytes();
        let slot = buf
            .get_mut(self.nonce_offset..self.nonce_offset + width)
            .ok_or(HashError::NonceSlot {
                offset: self.nonce_offset,
                width,
                len: self.input.len(),
            })?;
        slot.copy_from_slice(&bytes[..width]);
        Ok(())
    }

    /// Checks that every nonce of `nonces` fits the slot.
    pub fn check_range(&self, nonces: &Range<u64>) -> Result<(), HashError> {
        let limit = self.nonce_width.limit();
        if u128::from(nonces.end) > limit {
            return Err(HashError::NonceRange {
                end: u128::from(nonces.end),
                limit,
            });
        }
        Ok(())
    }
}

/// Progress of a dataset build (RandomX fast mode, an Ethash or KawPow full dataset): called
/// with the items done and the total.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A nonce whose hash met the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solution {
    /// The winning nonce.
    pub nonce: u64,
    /// Its proof-of-work output.
    pub output: PowOutput,
}

/// A proof-of-work algorithm: hash one input, or hand out workers that scan nonce ranges.
///
/// Implementations hold whatever the algorithm needs across calls (a RandomX dataset, an Ethash
/// epoch context) and share it between the workers they create; a worker holds the per-thread
/// state (a scratchpad, a virtual machine). Both are `Send`, so a miner moves one worker into each
/// thread.
pub trait PowAlgorithm: Send + Sync {
    /// Which algorithm this is.
    fn algorithm(&self) -> Algorithm;

    /// Evaluates the proof of work of one complete input (nonce included).
    fn hash(&self, input: &[u8]) -> Result<PowOutput, HashError>;

    /// Creates a worker for one mining thread.
    fn worker(&self) -> Result<Box<dyn Worker>, HashError>;
}

/// Per-thread mining state that scans nonce ranges.
pub trait Worker: Send {
    /// Hashes `job` with every nonce in `nonces`, appends each solution whose hash meets
    /// `target` to `found`, and returns how many nonces were hashed.
    ///
    /// The caller picks the range size: it is the unit of cancellation and of progress
    /// reporting.
    fn scan(
        &mut self,
        job: &ScanJob,
        nonces: Range<u64>,
        target: &Target,
        found: &mut Vec<Solution>,
    ) -> Result<u64, HashError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomx_is_named_in_every_build_and_built_only_with_its_feature() {
        for algorithm in Algorithm::ALL {
            let enabled = algorithm != Algorithm::RandomX || cfg!(feature = "randomx");
            assert_eq!(algorithm.is_enabled(), enabled, "{algorithm}");
            assert_eq!(algorithm.name().parse::<Algorithm>().ok(), Some(algorithm));
        }
        let refused = Algorithm::RandomX.check_enabled();
        if cfg!(feature = "randomx") {
            assert!(refused.is_ok());
        } else {
            assert!(matches!(
                refused,
                Err(HashError::AlgorithmDisabled {
                    algorithm: Algorithm::RandomX,
                    feature: "randomx",
                })
            ));
        }
    }
}
