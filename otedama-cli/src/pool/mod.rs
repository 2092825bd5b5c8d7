//! `otedama-cli pool`: a Stratum v1 pool on a node or the embedded devnet.

pub(crate) mod jobs;
pub(crate) mod validate;
