//! Runnable examples live beside this file; run one with `cargo run -p otedama-examples --example <name>`.
