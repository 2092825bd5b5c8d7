//! Stratum mining protocols for otedama, sans-IO.
//!
//! This crate will hold the Stratum v1 codec (with the Monero `login`/`job` dialect and
//! EthereumStratum/1.0.0), Stratum v2 binary framing with the Noise handshake, and the pool-side
//! and miner-side session state machines that drive them. Bytes go in, events and bytes come out;
//! time is passed in by the caller. A `tokio` feature will add TCP server and client adapters.
//!
//! The crate is laid out now so that the workspace builds end to end; the protocol arrives with
//! the Stratum issues.
#![forbid(unsafe_code)]
