//! `otedama-cli bench`: the real mining kernels over nonce ranges, with a live rate.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use otedama_core::{Hashrate, Target};
use otedama_hash::{
    Algorithm, DagAlgorithm, EpochContext, HashError, NonceWidth, RandomXMode, ScanJob,
    ScryptBackend, Sha256dBackend, Solution, Worker,
};

use crate::kernel::{build, build_dag_search, parse_hex};

/// Mode on the command line, for RandomX, Ethash and KawPow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Mining mode (also `search`): the full dataset (RandomX 2 GiB, Ethash and KawPow about
    /// 1 GiB at epoch 0, built first).
    #[value(alias = "search")]
    Fast,
    /// Verification mode (also `verify`): the cache only (RandomX 256 MiB, Ethash and KawPow
    /// 16 MiB at epoch 0); for Ethash and KawPow, one share verification after another.
    #[value(alias = "verify")]
    Light,
}

/// Arguments of `otedama-cli bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The algorithm: sha256d, scrypt, randomx, ethash or kawpow.
    #[arg(long)]
    algo: Algorithm,
    /// Mining threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How long to measure, in seconds (set-up such as the RandomX dataset is not counted).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Mode for randomx, ethash and kawpow: fast (or search) mines with the full dataset,
    /// light (or verify) uses the cache alone; fast when left out.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// The block height for ethash and kawpow (picks the epoch); 0 when left out.
    #[arg(long)]
    height: Option<u64>,
    /// The SIMD backend for sha256d or scrypt (e.g. portable, sha-ni, avx512x16, avx2x8,
    /// avx512x8); the fastest this CPU supports when left out.
    #[arg(long)]
    backend: Option<String>,
    /// RandomX key in hex (a fixed key is used otherwise).
    #[arg(long)]
    key: Option<String>,
    /// Keep the RandomX dataset on small pages, for comparisons (xmrig's `--no-huge-pages`
    /// still advises transparent huge pages for its dataset); by default it takes reserved or
    /// transparent huge pages where the host offers them.
    #[arg(long)]
    no_huge_pages: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Nonces per scan call: large enough that call overhead vanishes, small enough to stop promptly.
fn chunk_for(algo: Algorithm) -> u64 {
    match algo {
        Algorithm::Sha256d => 1 << 18,
        Algorithm::Scrypt => 128,
        _ => 16,
    }
}

/// A job with the layout each algorithm mines: an 80-byte header, or a 76-byte Monero blob.
fn bench_job(algo: Algorithm) -> Result<ScanJob> {
    // The Bitcoin genesis header; its contents only matter for being realistic.
    let genesis = parse_hex(
        "header",
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
    )?;
    Ok(match algo {
        Algorithm::RandomX => ScanJob::monero_blob(genesis[..76].to_vec())?,
        _ => ScanJob::header80(
            genesis
                .try_into()
                .map_err(|_| anyhow::anyhow!("header is not 80 bytes"))?,
        ),
    })
}

/// A rate for display; a bad measurement (no time elapsed) shows as zero.
fn rate(hashes: f64, secs: f64) -> String {
    format!(
        "{:.2}",
        Hashrate::from_hashes_and_secs(hashes, secs).unwrap_or(Hashrate::ZERO)
    )
}

/// Runs the command.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    if args.threads == 0 || args.threads > 1024 {
        bail!("--threads must be between 1 and 1024, got {}", args.threads);
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 86_400.0) {
        bail!(
            "--seconds must be above 0 and at most a day, got {}",
            args.seconds
        );
    }
    let key = args
        .key
        .as_deref()
        .map(|k| parse_hex("--key", k))
        .transpose()?;
    let dag = DagAlgorithm::try_from(args.algo).ok();
    if args.mode.is_some() && matches!(args.algo, Algorithm::Sha256d | Algorithm::Scrypt) {
        bail!(
            "{} has no --mode (only randomx, ethash and kawpow have light and fast modes)",
            args.algo
        );
    }
    if args.height.is_some() && dag.is_none() {
        bail!(
            "--height only applies to ethash and kawpow, not {}",
            args.algo
        );
    }
    let mode = args.mode.unwrap_or(Mode::Fast);
    let (job, workers) = match dag {
        Some(dag) => dag_workers(dag, args.height.unwrap_or(0), mode, args.threads)?,
        None => {
            let randomx_mode = match mode {
                Mode::Fast => RandomXMode::Fast,
                Mode::Light => RandomXMode::Light,
            };
            let backend = match (args.algo, args.backend.as_deref()) {
                (_, Some(named)) => Some(named.to_owned()),
                (Algorithm::Sha256d, None) => Some(Sha256dBackend::detect().name().to_owned()),
                (Algorithm::Scrypt, None) => Some(ScryptBackend::detect().name().to_owned()),
                _ => None,
            };
            if let (Some(backend), false) = (backend, args.json) {
                eprintln!("{} backend: {backend}", args.algo);
            }
            let kernel = build(
                args.algo,
                args.backend.as_deref(),
                key.as_deref(),
                randomx_mode,
                args.threads,
                !args.no_huge_pages,
            )?;
            let mut workers = Vec::with_capacity(args.threads);
            for _ in 0..args.threads {
                workers.push(kernel.worker().context("could not create a worker")?);
            }
            (bench_job(args.algo)?, workers)
        }
    };
    let verifying = dag.is_some() && mode == Mode::Light;
    // Bitcoin's difficulty-1 target: hits are rare, so the loop measured is the real one.
    let target = Target::from_be_bytes({
        let mut t = [0u8; 32];
        t[4] = 0xff;
        t[5] = 0xff;
        t
    });
    let chunk = chunk_for(args.algo);
    let counters: Vec<AtomicU64> = (0..args.threads).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let span = (1u64 << 32) / args.threads as u64;
    let duration = Duration::from_secs_f64(args.seconds);

    let started = Instant::now();
    let elapsed = std::thread::scope(|scope| -> Result<Duration> {
        let mut handles = Vec::new();
        for (index, mut worker) in workers.into_iter().enumerate() {
            let (job, target, counter, stop) = (&job, &target, &counters[index], &stop);
            handles.push(scope.spawn(move || -> Result<()> {
                let base = span * index as u64;
                let mut offset = 0u64;
                let mut found = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let start = base + offset;
                    let end = (start + chunk).min(base + span);
                    let done = worker.scan(job, start..end, target, &mut found)?;
                    counter.fetch_add(done, Ordering::Relaxed);
                    found.clear();
                    offset = if end >= base + span {
                        0
                    } else {
                        offset + chunk
                    };
                }
                Ok(())
            }));
        }
        let mut last_print = Instant::now();
        while started.elapsed() < duration {
            std::thread::sleep(Duration::from_millis(50));
            if handles.iter().any(|h| h.is_finished()) {
                break;
            }
            if !args.json && last_print.elapsed() >= Duration::from_millis(500) {
                let total: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                let secs = started.elapsed().as_secs_f64();
                eprint!(
                    "\r[{}] {secs:5.1}s  {}    ",
                    args.algo,
                    rate(total as f64, secs)
                );
                let _ = std::io::stderr().flush();
                last_print = Instant::now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a mining thread panicked"))??;
        }
        Ok(elapsed)
    })?;
    let secs = elapsed.as_secs_f64();
    let per_thread: Vec<f64> = counters
        .iter()
        .map(|c| c.load(Ordering::Relaxed) as f64 / secs)
        .collect();
    let total: f64 = per_thread.iter().sum();
    if args.json {
        let mut object = serde_json::json!({
            "algo": args.algo.name(),
            "threads": args.threads,
            "hashes_per_second": total,
            "per_thread": per_thread,
            "seconds": secs,
        });
        if dag.is_some() {
            object["mode"] = serde_json::json!(if verifying { "verify" } else { "search" });
        }
        if verifying {
            object["verifications_per_second"] = serde_json::json!(total);
        }
        println!("{object}");
    } else {
        eprintln!();
        for (i, per_sec) in per_thread.iter().enumerate() {
            println!("thread {i}: {}", rate(*per_sec, 1.0));
        }
        println!(
            "{} total: {} over {:.1}s on {} thread(s)",
            args.algo,
            rate(total, 1.0),
            secs,
            args.threads
        );
        if verifying {
            println!(
                "{} verify: {:.0} verifications/s ({:.0} per thread)",
                args.algo,
                total,
                total / args.threads as f64
            );
        }
    }
    Ok(())
}

/// The job and workers of an Ethash or KawPow run at `height`: search mode mines with the full
/// dataset; verify mode checks one share after another from the light cache, as a pool does.
fn dag_workers(
    algo: DagAlgorithm,
    height: u64,
    mode: Mode,
    threads: usize,
) -> Result<(ScanJob, Vec<Box<dyn Worker>>)> {
    let header = [0x2au8; 32];
    let mut input = header.to_vec();
    input.extend_from_slice(&[0u8; 8]);
    let job = ScanJob::new(input, 32, NonceWidth::U64)?;
    let mut workers: Vec<Box<dyn Worker>> = Vec::with_capacity(threads);
    match mode {
        Mode::Fast => {
            let kernel = build_dag_search(algo, height, threads)?;
            for _ in 0..threads {
                workers.push(kernel.worker().context("could not create a worker")?);
            }
        }
        Mode::Light => {
            let epoch = algo.epoch_of(height)?;
            let context = std::sync::Arc::new(
                EpochContext::build(algo, epoch)
                    .with_context(|| format!("could not build the {algo} light cache"))?,
            );
            for _ in 0..threads {
                workers.push(Box::new(Verifier {
                    context: std::sync::Arc::clone(&context),
                    height,
                    header,
                }));
            }
        }
    }
    Ok((job, workers))
}

/// Verifies one claimed share per nonce. The claimed mix hash is zeros and the boundary the
/// largest, so every claim passes the cheap check and has its mix hash recomputed from the
/// light cache: the full cost of verifying a valid share.
struct Verifier {
    context: std::sync::Arc<EpochContext>,
    height: u64,
    header: [u8; 32],
}

impl Worker for Verifier {
    fn scan(
        &mut self,
        _job: &ScanJob,
        nonces: std::ops::Range<u64>,
        _target: &Target,
        _found: &mut Vec<Solution>,
    ) -> Result<u64, HashError> {
        for nonce in nonces.clone() {
            let verdict =
                self.context
                    .verify(self.height, &self.header, nonce, &[0u8; 32], &Target::MAX)?;
            std::hint::black_box(verdict);
        }
        Ok(nonces.end - nonces.start)
    }
}
