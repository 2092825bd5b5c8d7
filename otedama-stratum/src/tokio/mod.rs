//! Thin tokio adapters over the sans-IO sessions (feature `tokio`).
//!
//! Everything protocol-shaped stays in the sans-IO sessions: the pool sessions of every dialect
//! behind [`PoolProtocol`](crate::PoolProtocol), which the one [`server`] drives, and the
//! miner sessions behind [`MinerProtocol`](crate::MinerProtocol), which the one [`client`]
//! drives. These modules only move bytes between them and TCP sockets, keep time with
//! `tokio::time`, and hand decisions to the caller over channels (the server) or as return
//! values (the client).
//! They spawn their tasks on the caller's runtime and never start one of their own.

pub mod client;
mod link;
pub(crate) mod proxy;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
