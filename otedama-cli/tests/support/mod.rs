//! Shared test support.

#![allow(unreachable_pub)]

#[path = "../../../otedama-pool/tests/support/litecoind.rs"]
pub mod litecoind;
#[path = "../../../otedama-pool/tests/support/monerod.rs"]
pub mod monerod;
pub mod pool;
#[path = "../../../otedama-pool/tests/support/postgres.rs"]
pub mod postgres;
