//! The Monero stratum dialect (xmrig, nodejs-pool, p2pool): JSON-RPC 2.0 objects with named
//! params, one per line.
//!
//! | message | shape |
//! |---|---|
//! | `login` | `{"login", "pass", "agent", "rigid"?, "algo"?: [..]}` → `{"id", "job", "status": "OK", "extensions"}` |
//! | `job` | notification `{"blob", "job_id", "target", "algo"?, "height"?, "seed_hash"?}` |
//! | `submit` | `{"id", "job_id", "nonce": 8 hex (4 little-endian bytes), "result": 64 hex, "algo"?}` → `{"status": "OK"}` |
//! | `keepalived` | `{"id"}` → `{"status": "KEEPALIVED"}` (p2pool sends no reply) |
//! | errors | `{"code": -1, "message": ..}`, or a message alone (p2pool) |
//!
//! The target is little-endian hex in a 4-byte or 8-byte form
//! ([`MoneroTarget`](otedama_core::MoneroTarget)). The nonce sits at byte
//! [`MONERO_NONCE_OFFSET`](crate::MONERO_NONCE_OFFSET) of the hashing blob.
//!
//! [`MoneroPoolSession`](crate::MoneroPoolSession) is the pool side and
//! [`MoneroMinerSession`](crate::MoneroMinerSession) the miner side, both
//! sans-IO in the shape of [`PoolSession`](crate::PoolSession) and
//! [`MinerSession`](crate::MinerSession). The pool session never hashes: it checks what it can
//! without RandomX (job known, nonce and result well formed, no duplicate, the claimed hash
//! under the target) and hands the share to the caller.
//!
//! The pool session implements [`PoolProtocol`](crate::PoolProtocol), so the tokio server
//! (feature `tokio`) serves xmrig as it serves Stratum v1 miners.
//!
//! - `message`: the typed messages and their wire forms;
//! - `pool`: [`MoneroPoolSession`](crate::MoneroPoolSession);
//! - `miner`: [`MoneroMinerSession`](crate::MoneroMinerSession).

pub(crate) mod message;
pub(crate) mod miner;
pub(crate) mod pool;

#[cfg(test)]
mod tests;
