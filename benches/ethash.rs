//! Criterion benchmarks of Ethash and KawPow: light verification (shares per second per
//! thread, from the light cache alone), the light-cache build of an epoch, and search with the
//! full dataset.
//!
//! `cargo bench -p otedama-benches --bench ethash -- light` measures verification and the
//! cache build in a minute or two. The `search` benchmarks first build the real epoch-0
//! dataset (1 GiB; about 20 seconds each for Ethash and KawPow on two cores), once, outside
//! the measurement, and only when they are selected: `-- search`.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otedama_core::Target;
use otedama_hash::{
    DagAlgorithm, EpochCache, EpochContext, Ethash, KawPow, NonceWidth, PowAlgorithm, ScanJob,
    ShareClaim,
};

/// A header hash for the runs; its value does not change the work.
const HEADER: [u8; 32] = [0x2a; 32];

/// Epoch 0 heights: Ethash block 22 and KawPow block 49 (both in published vectors).
fn height(algorithm: DagAlgorithm) -> u64 {
    match algorithm {
        DagAlgorithm::Ethash => 22,
        DagAlgorithm::KawPow => 49,
    }
}

fn epochs() -> &'static EpochCache {
    static CACHE: OnceLock<EpochCache> = OnceLock::new();
    CACHE.get_or_init(|| EpochCache::new(4))
}

/// Verification of valid shares: the final hash from the claimed mix, then the mix recomputed
/// from the light cache and compared (the whole cost a pool pays per accepted share).
fn light_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("light_verify");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    for algorithm in DagAlgorithm::ALL {
        let height = height(algorithm);
        let context = epochs()
            .context_for_height(algorithm, height)
            .expect("context");
        let shares: Vec<(u64, [u8; 32])> = (0..64u64)
            .map(|nonce| {
                let out = context.hash(height, &HEADER, nonce).expect("hash");
                (nonce, out.mix.expect("mix"))
            })
            .collect();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            b.iter(|| {
                let (nonce, mix) = &shares[i % shares.len()];
                i += 1;
                let verdict = context
                    .verify(height, &HEADER, *nonce, mix, &Target::MAX)
                    .expect("verify");
                assert!(verdict.is_valid());
            })
        });
    }
    g.finish();
}

/// The same valid shares verified 64 at a time with `verify_many`, which recomputes several
/// mix hashes in lockstep (four for Ethash, two for KawPow) on the one thread.
fn light_verify_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("light_verify_batch");
    const SHARES: u64 = 64;
    g.throughput(Throughput::Elements(SHARES));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    for algorithm in DagAlgorithm::ALL {
        let height = height(algorithm);
        let context = epochs()
            .context_for_height(algorithm, height)
            .expect("context");
        let claims: Vec<ShareClaim> = (0..SHARES)
            .map(|nonce| {
                let out = context.hash(height, &HEADER, nonce).expect("hash");
                ShareClaim {
                    height,
                    header_hash: HEADER,
                    nonce,
                    mix: out.mix.expect("mix"),
                    boundary: Target::MAX,
                }
            })
            .collect();
        g.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            b.iter(|| {
                let results = context.verify_many(&claims);
                assert!(results.iter().all(|r| matches!(r, Ok(v) if v.is_valid())));
            })
        });
    }
    g.finish();
}

/// Building one epoch's light cache (epoch 0, 16 MiB; the same cache serves both algorithms).
fn light_cache_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("light_cache_build");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("epoch_0", |b| {
        b.iter(|| EpochContext::build(DagAlgorithm::Ethash, 0).expect("context"))
    });
    g.finish();
}

/// The scan loop in search mode, over the real full dataset of epoch 0.
fn search(c: &mut Criterion) {
    let mut g = c.benchmark_group("search");
    const BATCH: u64 = 256;
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    for algorithm in DagAlgorithm::ALL {
        let kernel: OnceLock<Box<dyn PowAlgorithm>> = OnceLock::new();
        let mut start = 0u64;
        g.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            b.iter_custom(|iters| {
                let kernel = kernel.get_or_init(|| build_search_kernel(algorithm));
                let mut input = HEADER.to_vec();
                input.extend_from_slice(&[0u8; 8]);
                let job = ScanJob::new(input, 32, NonceWidth::U64).expect("job");
                let mut worker = kernel.worker().expect("worker");
                let mut found = Vec::new();
                // An Ethash-style boundary at difficulty 2^32: hits are rare.
                let mut boundary = [0u8; 32];
                boundary[4..].fill(0xff);
                let target = Target::from_be_bytes(boundary);
                let began = Instant::now();
                for _ in 0..iters {
                    found.clear();
                    worker
                        .scan(&job, start..start + BATCH, &target, &mut found)
                        .expect("scan");
                    start += BATCH;
                }
                began.elapsed()
            })
        });
    }
    g.finish();
}

fn build_search_kernel(algorithm: DagAlgorithm) -> Box<dyn PowAlgorithm> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let never = AtomicBool::new(false);
    let began = Instant::now();
    let progress = |_: u64, _: u64| {};
    let height = height(algorithm);
    let kernel: Box<dyn PowAlgorithm> = match algorithm {
        DagAlgorithm::Ethash => Box::new(
            Ethash::with_dataset(height, epochs(), threads, &progress, &never).expect("dataset"),
        ),
        DagAlgorithm::KawPow => Box::new(
            KawPow::with_dataset(height, epochs(), threads, &progress, &never).expect("dataset"),
        ),
    };
    eprintln!(
        "{algorithm} epoch-0 dataset built in {:.1}s on {threads} thread(s)",
        began.elapsed().as_secs_f64()
    );
    kernel
}

criterion_group!(
    benches,
    light_verify,
    light_verify_batch,
    light_cache_build,
    search
);
criterion_main!(benches);
