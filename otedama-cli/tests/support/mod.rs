//! Shared test support.

#![allow(unreachable_pub)]

pub mod litecoind;
pub mod pool;
pub mod postgres;
