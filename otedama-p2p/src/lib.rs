//! The otedama sharechain and its gossip network.
//!
//! This crate will hold the sharechain rules (share validity, the PPLNS window whose payouts go
//! straight into the coinbase) and a sans-IO gossip state machine that exchanges shares between
//! pool nodes. A `tokio` feature will add the networking adapter.
//!
//! The crate is laid out now so that the workspace builds end to end; its contents arrive with the
//! sharechain issue.
#![forbid(unsafe_code)]
