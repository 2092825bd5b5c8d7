//! Reward schemes for mining pools, as pure functions over share records.
//!
//! This crate will hold PPLNS, PPS, FPPS, PROP and SOLO with the pool fee, in exact integer
//! arithmetic in the coin's smallest unit, so that payouts plus fee always add up to the block
//! reward. No I/O: the pool feeds it share records and reads back amounts per address.
//!
//! The crate is laid out now so that the workspace builds end to end; the schemes arrive with the
//! rewards issue.
#![forbid(unsafe_code)]
