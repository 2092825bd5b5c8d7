//! Quantities and block data shared by every otedama crate: 256-bit targets, compact `nBits`,
//! difficulty conventions, work and hashrate, the 80-byte block header, Stratum byte orders,
//! merkle branches, coinbase building, jobs and shares.
//!
//! Nothing here does I/O, reads a clock or draws random numbers.
//!
//! # Byte orders
//!
//! Hashes are `[u8; 32]` in **internal** order (as sha256d outputs them and as headers
//! store them). Explorers print the reverse ([`reverse_hash`]); Stratum v1 swaps each
//! 4-byte word of the previous block hash ([`prevhash_from_stratum`]). Bitcoin, scrypt and
//! RandomX compare a hash with a target as a little-endian integer ([`Target::is_met_by`]);
//! Ethash and KawPow as a big-endian one ([`Target::is_met_by_be`]).
//!
//! # Example
//!
//! ```
//! use otedama_core::{BlockHeader, CompactTarget, DifficultyConvention, Difficulty, Target};
//!
//! // The difficulty-1 target of Bitcoin.
//! let target = CompactTarget::from_consensus(0x1d00ffff).decode()?;
//! assert_eq!(
//!     target.to_string(),
//!     "00000000ffff0000000000000000000000000000000000000000000000000000"
//! );
//! assert_eq!(target, DifficultyConvention::Bitcoin.target_for(Difficulty::ONE));
//! assert_eq!(target.to_compact().to_consensus(), 0x1d00ffff);
//!
//! // The genesis block header hashes to 000000000019d668... and meets that target.
//! let mut merkle_root = otedama_core::decode_hex32(
//!     "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
//! )?;
//! merkle_root.reverse(); // display order -> internal order
//! let genesis = BlockHeader {
//!     version: 1,
//!     prev_blockhash: [0; 32],
//!     merkle_root,
//!     time: 1231006505,
//!     bits: CompactTarget::from_consensus(0x1d00ffff),
//!     nonce: 2083236893,
//! };
//! let hash = genesis.block_hash();
//! assert_eq!(
//!     otedama_core::encode_hex(&otedama_core::reverse_hash(&hash)),
//!     "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
//! );
//! assert!(target.is_met_by(&hash));
//! assert_eq!(BlockHeader::from_bytes(&genesis.to_bytes())?, genesis);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod address;
mod coinbase;
mod header;
mod job;
mod merkle;
pub mod monero;
mod order;
pub mod rx;
mod target;
mod template;

/// The `bitcoin` crate this crate's conversions use, re-exported so that callers name the
/// same version.
pub use bitcoin;

pub use address::{AddressError, AddressParams};
pub use coinbase::{
    bip34_height_push, witness_commitment_script, Coinbase, CoinbaseBuilder, CoinbaseError,
    COINBASE_SCRIPT_SIG_MAX, COINBASE_SCRIPT_SIG_MIN, MAX_MONEY_SAT, WITNESS_COMMITMENT_HEADER,
    WITNESS_RESERVED_VALUE,
};
pub use header::{apply_version_bits, sha256d, BlockHeader, HeaderError, BIP320_VERSION_MASK};
pub use job::{Job, JobId, Share, ShareHeaderError};
pub use merkle::{
    coinbase_txid_from_parts, merkle_root, stratum_merkle_root, witness_commitment,
    witness_merkle_root, MerkleBranch,
};
pub use order::{
    decode_hex, decode_hex32, encode_hex, prevhash_display_to_stratum, prevhash_from_stratum,
    prevhash_stratum_to_display, prevhash_to_stratum, reverse_hash, swap_words, HexError,
};
pub use target::{
    monero_check_hash, monero_target, CompactTarget, CompactTargetError, Difficulty,
    DifficultyConvention, DifficultyError, Hashrate, HashrateError, MoneroTarget,
    MoneroTargetError, Target, Work, BITCOIN_DIFF1_TARGET, SCRYPT_DIFF1_TARGET, U256,
};
pub use template::{write_compact_size, BlockTemplate, TemplateTransaction};
