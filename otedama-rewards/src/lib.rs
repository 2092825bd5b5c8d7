//! Reward schemes for mining pools, as pure functions over share records: PPLNS, PROP and SOLO
//! split a found block; PPS and FPPS price each share on its own.
//!
//! All money is an integer count of the coin's smallest unit (`u64`), and all arithmetic on it
//! is exact: products go through 256-bit integers, never floats. For the block-based schemes
//! the pool fee plus the miners' amounts always add up to the block reward, to the unit.
//!
//! # The formulas
//!
//! Let `R` be the block reward (subsidy plus transaction fees) and `f` the fee rate in parts
//! per million. The pool keeps `F = floor(R * f / 1_000_000)`; the miners share `R - F`.
//!
//! - **PPLNS** (pay per last N shares): the shares in a window ending at the block (the last
//!   N shares, or those of the last T milliseconds) are summed per address by their work `w`
//!   (expected hashes, so shares of different difficulty weigh what they are worth). Address
//!   `a` gets `floor((R - F) * w_a / W)`, where `W` is the window's total work; the units the
//!   floors leave over go one each to the addresses with the largest remainders, ties broken
//!   by address, so the split is deterministic.
//! - **PROP** (proportional): the same split over the shares of the round (since the last
//!   block) instead of a window.
//! - **SOLO**: the finder gets `R - F`.
//! - **PPS** (pay per share): a share of work `w` on a network whose blocks need `N` expected
//!   hashes is worth `floor(S * w * (1_000_000 - f) / (N * 1_000_000))`, `S` the subsidy. The
//!   pool pays it whether or not a block is found, and keeps the block rewards: the pool
//!   carries the variance ([`PpsLedger`] shows its running position).
//! - **FPPS** (full PPS): as PPS with `S` replaced by the subsidy plus the expected
//!   transaction fees per block.
//!
//! # Worked example
//!
//! A 50-coin block (`5_000_000_000` units), a 1 % fee, two miners with work 3 and 1 in the
//! window: the pool keeps 50,000,000 units; 4,950,000,000 are split 3 : 1.
//!
//! ```
//! use otedama_rewards::{pplns, FeeRate, ShareRecord, Window};
//!
//! let shares = [
//!     ShareRecord::new("alice", 2, 1_000),
//!     ShareRecord::new("bob", 1, 2_000),
//!     ShareRecord::new("alice", 1, 3_000),
//! ];
//! let payout = pplns(&shares, 3_000, Window::Shares(10), 5_000_000_000, FeeRate::from_percent(1.0)?)?;
//! assert_eq!(payout.pool_fee, 50_000_000);
//! assert_eq!(payout.amounts["alice"], 3_712_500_000);
//! assert_eq!(payout.amounts["bob"], 1_237_500_000);
//! assert_eq!(payout.total(), 5_000_000_000);
//! # Ok::<(), otedama_rewards::RewardError>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod fee;
mod schemes;
mod split;

pub use error::RewardError;
pub use fee::FeeRate;
pub use schemes::{
    fpps_value, pplns, pps_value, prop, solo, Payout, PpsLedger, ShareRecord, Window,
};
pub use split::{split_proportionally, split_proportionally_by};
