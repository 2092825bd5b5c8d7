//! Shared test support.

#![allow(unreachable_pub)]

#[path = "../../../otedama-pool/tests/support/litecoind.rs"]
pub mod litecoind;
pub mod pool;
#[path = "../../../otedama-pool/tests/support/postgres.rs"]
pub mod postgres;
