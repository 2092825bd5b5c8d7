//! Criterion benchmarks of the sharechain: shares validated per second (the full check a
//! node runs on every share a peer sends, coinbase rebuild included), at two window sizes.
//!
//! Run with `cargo bench -p otedama-benches --bench sharechain`.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use otedama_core::{BlockHeader, MerkleBranch, Target, U256};
use otedama_hash::Algorithm;
use otedama_p2p::{ChainParams, MainWork, Share, Sharechain};

const T0: u64 = 1_700_000_000;

fn params() -> ChainParams {
    let mut p = ChainParams::main("bench", Algorithm::Sha256d, "devnet", Target::MAX);
    p.min_output = 0;
    p
}

/// A chain of `n` shares from `payees` miners, on main-chain blocks worth `per_block` shares.
fn chain(n: u64, payees: u64, per_block: u64) -> Vec<Share> {
    let mut c = Sharechain::new(params());
    let main_target = Target::from_u256(
        U256::MAX
            .div_rem_u64(per_block)
            .map(|(q, _)| q)
            .unwrap_or(U256::MAX),
    );
    let mut out = Vec::new();
    for i in 0..n {
        let main = MainWork {
            header: BlockHeader {
                version: 0x2000_0000,
                prev_blockhash: [1; 32],
                merkle_root: [0; 32],
                time: (T0 + 10 * i) as u32,
                bits: main_target.to_compact(),
                nonce: 0,
            },
            height: 100,
            reward: 312_500_000,
            witness_root: None,
            branch: MerkleBranch::from_hashes(vec![[7; 32]; 11]),
        };
        let payout = [0x00, 0x14, (i % payees) as u8, ((i % payees) >> 8) as u8];
        let t = c.template(&payout, main, T0 + 10 * i, 8).expect("template");
        let en = i.to_le_bytes();
        let share = t.finish(t.header(&en).expect("header"), &en);
        c.add(share.clone(), T0 + 10 * i).expect("valid");
        out.push(share);
    }
    out
}

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("sharechain validate");
    for (label, per_block, payees) in [
        ("window 200 shares, 50 payees", 100, 50),
        ("window 2160 shares, 200 payees", 1_080, 200),
    ] {
        let shares = chain(2_400, payees, per_block);
        let (warm, measured) = shares.split_at(2_200);
        g.throughput(Throughput::Elements(measured.len() as u64));
        g.sample_size(10);
        g.bench_function(label, |b| {
            b.iter_batched(
                || {
                    let mut c = Sharechain::new(params());
                    for s in warm {
                        c.add(s.clone(), T0 + 100_000).expect("valid");
                    }
                    c
                },
                |mut c| {
                    for s in measured {
                        c.add(s.clone(), T0 + 100_000).expect("valid");
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
