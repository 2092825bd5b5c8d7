//! Where the pool's work comes from: a node over RPC, or the embedded devnet.

pub(crate) mod devnet;
pub(crate) mod devnet_rx;
pub(crate) mod node;
