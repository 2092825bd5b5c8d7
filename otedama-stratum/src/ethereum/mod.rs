//! EthereumStratum/1.0.0 (NiceHash) for Ethash-family coins, and the kawpowminer variant for
//! KawPow.
//!
//! | message | shape |
//! |---|---|
//! | `mining.subscribe` | `["Miner/1.0", "EthereumStratum/1.0.0"]` → `[["mining.notify", sid, "EthereumStratum/1.0.0"], extranonce_hex]` (kawpowminer: `[null, prefix_hex]`) |
//! | `mining.set_difficulty` | `[d]`: boundary = Bitcoin's diff-1 target / d, from the next job; 1 until set |
//! | `mining.set_extranonce` | `[extranonce_hex]`, from the next job |
//! | `mining.set_target` | `[target_hex]` (kawpowminer; a short target is left-padded) |
//! | `mining.notify` | `[job_id, seed_hash, header_hash, clean]`, or kawpowminer's `[job_id, header_hash, seed_hash, share_target, clean, height, nbits]` |
//! | `mining.submit` | `[worker, job_id, miner_nonce]`: the full 8-byte nonce is extranonce ‖ miner_nonce; kawpowminer sends `[worker, job_id, "0x"+nonce16, "0x"+header, "0x"+mix]` |
//!
//! Hex may carry a `0x` prefix on input; NiceHash forms are written without one. Ethash and
//! KawPow compare hashes with the boundary as **big-endian** numbers
//! ([`Target::is_met_by_be`](otedama_core::Target::is_met_by_be)).
//!
//! [`EthPoolSession`](crate::EthPoolSession) is the pool side for the NiceHash form, in the shape of
//! [`PoolSession`](crate::PoolSession): it checks shares for job, nonce size and duplicates
//! and hands them to the caller, who runs Ethash and answers.
//! It implements [`PoolProtocol`](crate::PoolProtocol), so the tokio server (feature `tokio`)
//! serves it as it serves Stratum v1 miners.
//!
//! - `message`: the typed messages and their wire forms;
//! - `pool`: [`EthPoolSession`](crate::EthPoolSession).

pub(crate) mod message;
pub(crate) mod pool;

#[cfg(test)]
mod tests;
