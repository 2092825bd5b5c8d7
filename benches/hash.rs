//! Criterion benchmarks of the mining kernels: nonces per second through the real scan loop.
//!
//! Run with `cargo bench -p otedama-benches --bench hash`. RandomX fast mode builds its 2 GiB
//! dataset before measuring.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otedama_core::Target;
use otedama_hash::{
    PowAlgorithm, RandomX, RandomXMode, ScanJob, Scrypt, ScryptBackend, Sha256d, Sha256dBackend,
};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

fn header() -> [u8; 80] {
    hex::decode(GENESIS)
        .expect("hex")
        .try_into()
        .expect("80 bytes")
}

/// Bitcoin's difficulty-1 target: hits are rare, so the measured loop is the mining loop.
fn diff1() -> Target {
    let mut t = [0u8; 32];
    t[4] = 0xff;
    t[5] = 0xff;
    Target::from_be_bytes(t)
}

fn scan_bench(
    c: &mut Criterion,
    group: &str,
    name: &str,
    kernel: &dyn PowAlgorithm,
    job: &ScanJob,
    batch: u64,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(batch));
    let mut worker = kernel.worker().expect("worker");
    let target = diff1();
    let mut found = Vec::new();
    let mut start = 0u64;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| {
            found.clear();
            let done = worker
                .scan(job, start..start + batch, &target, &mut found)
                .expect("scan");
            start = (start + batch) % (1 << 31);
            done
        })
    });
    g.finish();
}

fn sha256d(c: &mut Criterion) {
    let job = ScanJob::header80(header());
    for backend in Sha256dBackend::ALL {
        if let Ok(kernel) = Sha256d::with_backend(backend) {
            scan_bench(c, "sha256d", backend.name(), &kernel, &job, 1 << 16);
        }
    }
}

fn scrypt(c: &mut Criterion) {
    let job = ScanJob::header80(header());
    for backend in ScryptBackend::ALL {
        if let Ok(kernel) = Scrypt::with_backend(backend) {
            scan_bench(c, "scrypt", backend.name(), &kernel, &job, 64);
        }
    }
}

fn randomx(c: &mut Criterion) {
    let job = ScanJob::monero_blob(header()[..76].to_vec()).expect("blob");
    let light = RandomX::new(b"otedama bench", RandomXMode::Light, 1).expect("light");
    scan_bench(c, "randomx", "light", &light, &job, 4);
    drop(light);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fast = RandomX::new(b"otedama bench", RandomXMode::Fast, threads).expect("fast");
    scan_bench(c, "randomx", "fast", &fast, &job, 64);
}

criterion_group!(benches, sha256d, scrypt, randomx);
criterion_main!(benches);
