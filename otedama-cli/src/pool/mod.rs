//! `otedama-cli pool`: a Stratum v1 pool on a node or the embedded devnet.

pub(crate) mod jobs;
mod run;
pub(crate) mod validate;

pub(crate) use run::{run, serve, PoolArgs, ServeOptions};
