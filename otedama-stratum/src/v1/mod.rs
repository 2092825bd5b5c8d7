//! Stratum v1 for the Bitcoin family: framing, messages, and session state machines.

pub(crate) mod error;
pub(crate) mod extranonce;
pub(crate) mod frame;
pub(crate) mod message;
pub(crate) mod miner;
pub(crate) mod pool;
pub(crate) mod vardiff;
