//! Thin tokio adapters over the sans-IO sessions (feature `tokio`).
//!
//! Everything protocol-shaped stays in [`PoolSession`](crate::PoolSession) and
//! [`MinerSession`](crate::MinerSession); these modules only move bytes between them and TCP
//! sockets, keep time with `tokio::time`, and hand decisions to the caller over channels.
//! They spawn their tasks on the caller's runtime and never start one of their own.

pub mod client;
pub mod server;
