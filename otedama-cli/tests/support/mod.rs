//! Shared test support.

pub mod litecoind;
