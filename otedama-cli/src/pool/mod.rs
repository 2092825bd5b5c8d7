//! `otedama-cli pool`: a Stratum v1 pool on a node or the embedded devnet, and a RandomX pool
//! in the Monero dialect on the embedded RandomX devnet.

mod common;
mod ledger;
mod randomx;
mod run;
mod sharechain;
mod sv2;
mod tls;

pub(crate) use common::{ServeOptions, Started};
pub(crate) use run::{algo_settings, run, serve, LogFlags, PoolArgs};
