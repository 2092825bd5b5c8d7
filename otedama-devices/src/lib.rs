//! Mining devices behind one trait.
//!
//! This crate will hold the `Device` trait and its implementations: CPU workers over the
//! `otedama-hash` kernels, GPUs through wgpu compute shaders (feature `gpu`) and ASICs through
//! USB and the cgminer-style TCP API (feature `asic`).
//!
//! The crate is laid out now so that the workspace builds end to end; the devices arrive with the
//! devices issue.
#![forbid(unsafe_code)]
