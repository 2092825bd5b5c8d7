//! What the sharechain's integration tests share: an easy chain and main-chain work.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use otedama_core::{BlockHeader, CompactTarget, MerkleBranch, Target};
use otedama_hash::Algorithm;
use otedama_p2p::{ChainParams, MainWork};

/// A chain where any hash is a share, with a window of at most `window` shares and no floor
/// on outputs.
pub(crate) fn params(name: &str, window: u32) -> ChainParams {
    let mut p = ChainParams::main(name, Algorithm::Sha256d, "devnet", Target::MAX);
    p.window_max_shares = window;
    p.min_output = 0;
    p
}

/// The clock, in Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A main-chain block at `time` worth about four shares, so a window spans eight.
pub(crate) fn main_work(time: u64) -> MainWork {
    MainWork {
        header: BlockHeader {
            version: 0x2000_0000,
            prev_blockhash: [1; 32],
            merkle_root: [0; 32],
            time: time as u32,
            bits: CompactTarget::from_consensus(0x203f_ffff),
            nonce: 0,
        },
        height: 10,
        reward: 1_000_000,
        witness_root: None,
        branch: MerkleBranch::default(),
    }
}

/// Asserts that adding a share was refused as invalid for a reason containing `needle`.
pub(crate) fn is_invalid(r: Result<otedama_p2p::Added, otedama_p2p::ShareError>, needle: &str) {
    match r {
        Err(otedama_p2p::ShareError::Invalid { reason, .. }) => {
            assert!(reason.contains(needle), "{reason}")
        }
        other => panic!("expected invalid ({needle}), got {other:?}"),
    }
}
