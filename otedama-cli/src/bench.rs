//! `otedama-cli bench`: the real mining kernels over nonce ranges, with a live rate.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use otedama_core::{Hashrate, Target};
use otedama_hash::{Algorithm, RandomXMode, ScanJob};

use crate::kernel::{build, parse_hex};

/// RandomX mode on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Mining mode: the 2 GiB dataset.
    Fast,
    /// Verification mode: the 256 MiB cache only.
    Light,
}

/// Arguments of `otedama-cli bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The algorithm: sha256d, scrypt or randomx.
    #[arg(long)]
    algo: Algorithm,
    /// Mining threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How long to measure, in seconds (set-up such as the RandomX dataset is not counted).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// RandomX mode.
    #[arg(long, value_enum, default_value_t = Mode::Fast)]
    mode: Mode,
    /// The SIMD backend for sha256d or scrypt (e.g. portable, sha-ni, avx512x16, avx2x8,
    /// avx512x8); the fastest this CPU supports when left out.
    #[arg(long)]
    backend: Option<String>,
    /// RandomX key in hex (a fixed key is used otherwise).
    #[arg(long)]
    key: Option<String>,
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
    let mode = match args.mode {
        Mode::Fast => RandomXMode::Fast,
        Mode::Light => RandomXMode::Light,
    };
    let kernel = build(
        args.algo,
        args.backend.as_deref(),
        key.as_deref(),
        mode,
        args.threads,
    )?;
    let job = bench_job(args.algo)?;
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

    let mut workers = Vec::with_capacity(args.threads);
    for _ in 0..args.threads {
        workers.push(kernel.worker().context("could not create a worker")?);
    }
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
        let object = serde_json::json!({
            "algo": args.algo.name(),
            "threads": args.threads,
            "hashes_per_second": total,
            "per_thread": per_thread,
            "seconds": secs,
        });
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
    }
    Ok(())
}
