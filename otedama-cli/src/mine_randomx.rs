//! `otedama-cli mine --algo randomx`: a CPU miner for Monero-dialect (xmrig-style) pools, with
//! backup pools and failover.
//!
//! One task speaks the dialect through [`MoneroMinerSession`]; mining threads scan the current
//! job's hashing blob, each on its own slice of the 4-byte nonce, with one RandomX kernel keyed
//! by the job's seed hash (re-keyed when a job brings a new one).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use otedama_core::{encode_hex, Hashrate, Target};
use otedama_hash::{PowAlgorithm, RandomX, RandomXMode, ScanJob, Worker};
use otedama_stratum::{
    LineBuffer, MoneroJob, MoneroMinerConfig, MoneroMinerEvent, MoneroMinerSession,
    MoneroMinerShare,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::mine::{parse_url, MineArgs, MinerTotals};

/// `--randomx-mode`: how the RandomX miner holds its key's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum RandomXModeArg {
    /// The 2 GiB dataset, built first (seconds to a minute): full speed.
    #[default]
    Fast,
    /// The 256 MiB cache alone: ready in about a second, far slower (tests, small machines).
    Light,
}

impl RandomXModeArg {
    /// The kernel's mode.
    pub(crate) fn to_mode(self) -> RandomXMode {
        match self {
            RandomXModeArg::Fast => RandomXMode::Fast,
            RandomXModeArg::Light => RandomXMode::Light,
        }
    }
}

/// The job the threads mine, with a generation that changes whenever it does.
struct Work {
    job: MoneroJob,
    target: Target,
    difficulty: u64,
    generation: u64,
}

/// A solution found by a thread: its work's generation and height, and the share.
type Found = (u64, Option<u64>, MoneroMinerShare);

struct Shared {
    work: Mutex<Option<Arc<Work>>>,
    kernel: Mutex<Option<Arc<RandomX>>>,
    generation: AtomicU64,
    hashes: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn current(&self) -> Option<Arc<Work>> {
        self.work.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn kernel(&self) -> Option<Arc<RandomX>> {
        self.kernel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, job: Option<(MoneroJob, u64)>) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let work = job.map(|(job, difficulty)| {
            Arc::new(Work {
                target: job.target.to_target(),
                job,
                difficulty,
                generation,
            })
        });
        *self.work.lock().unwrap_or_else(|p| p.into_inner()) = work;
    }
}

/// Nonces per scan call: about a fifth of a second of hashing, so a new job is picked up fast.
fn chunk_for(mode: RandomXMode) -> u64 {
    match mode {
        RandomXMode::Light => 8,
        RandomXMode::Fast => 128,
    }
}

/// The nonces thread `index` of `threads` scans.
fn nonce_slice(index: usize, threads: usize) -> std::ops::Range<u64> {
    let span = (1u64 << 32) / threads.max(1) as u64;
    let start = index as u64 * span;
    let end = if index + 1 >= threads {
        1 << 32
    } else {
        start + span
    };
    start..end
}

fn worker_loop(
    index: usize,
    threads: usize,
    shared: &Shared,
    chunk: u64,
    found_tx: &mpsc::UnboundedSender<Found>,
) -> Result<()> {
    let mut worker: Option<Box<dyn Worker>> = None;
    let mut found = Vec::new();
    let mut idle_generation = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(work) = shared.current().filter(|w| w.generation != idle_generation) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if worker.is_none() {
            // The kernel exists once the first job's key is set up.
            match shared.kernel() {
                Some(kernel) => worker = Some(kernel.worker()?),
                None => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(w) = worker.as_mut() else { continue };
        let scan = ScanJob::monero_blob(work.job.blob.clone())?;
        let slice = nonce_slice(index, threads);
        let mut start = slice.start;
        while start < slice.end {
            if shared.stop.load(Ordering::Relaxed)
                || shared.generation.load(Ordering::Relaxed) != work.generation
            {
                break;
            }
            let end = (start + chunk).min(slice.end);
            found.clear();
            let done = w.scan(&scan, start..end, &work.target, &mut found)?;
            shared.hashes.fetch_add(done, Ordering::Relaxed);
            for s in &found {
                let share = MoneroMinerShare {
                    job_id: work.job.job_id.clone(),
                    nonce: s.nonce as u32,
                    result: s.output.hash,
                    algo: work.job.algo.clone(),
                };
                let _ = found_tx.send((work.generation, work.job.height, share));
            }
            start = end;
        }
        // The whole nonce slice is done: wait for the next job.
        if shared.generation.load(Ordering::Relaxed) == work.generation {
            idle_generation = work.generation;
        }
    }
    Ok(())
}

/// Makes the kernel hash with `seed`: builds it on the first job, re-keys it on a new seed.
/// The threads pause while the key changes.
async fn ensure_key(shared: &Arc<Shared>, seed: [u8; 32], mode: RandomXMode) -> Result<()> {
    let current = shared.kernel();
    if current.as_ref().is_some_and(|k| k.key() == seed) {
        return Ok(());
    }
    shared.set(None);
    let init_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let progress = move |done: u64, total: u64| {
        if done == total || done % (1 << 20) < (1 << 16) {
            eprint!(
                "\rbuilding RandomX dataset: {:5.1}%",
                100.0 * done as f64 / total.max(1) as f64
            );
        }
    };
    let kernel = tokio::task::spawn_blocking(move || -> Result<Arc<RandomX>> {
        let kernel = match current {
            Some(kernel) => {
                kernel
                    .set_key_with_progress(&seed, &progress)
                    .context("could not re-key RandomX")?;
                kernel
            }
            None => Arc::new(
                RandomX::with_progress(&seed, mode, init_threads, &progress)
                    .context("could not set up RandomX")?,
            ),
        };
        if mode == RandomXMode::Fast {
            eprintln!();
        }
        Ok(kernel)
    })
    .await
    .context("the RandomX set-up thread failed")??;
    eprintln!("[mine randomx] key {}", encode_hex(&seed));
    *shared.kernel.lock().unwrap_or_else(|p| p.into_inner()) = Some(kernel);
    Ok(())
}

/// How one connection ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
}

async fn run_session(
    url: &str,
    args: &MineArgs,
    shared: &Arc<Shared>,
    counters: &Counters,
    found_rx: &mut mpsc::UnboundedReceiver<Found>,
    stop: &mut watch::Receiver<bool>,
) -> Result<SessionEnd> {
    let (host, port) = parse_url(url)?;
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {url} timed out"))?
    .with_context(|| format!("cannot connect to {url}"))?;
    stream.set_nodelay(true).ok();
    let (mut rd, mut wr) = stream.into_split();
    let config = MoneroMinerConfig {
        login: args.user.clone(),
        pass: args.password.clone(),
        keepalive: Some(Duration::from_secs(60)),
        ..MoneroMinerConfig::default()
    };
    let mode = args.randomx_mode.to_mode();
    let mut session = MoneroMinerSession::new(config, Instant::now());
    session.start();
    let mut lines = LineBuffer::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(out) = session.poll_output() {
            wr.write_all(out.as_bytes())
                .await
                .context("write to pool")?;
        }
        while let Some(event) = session.poll_event() {
            match event {
                MoneroMinerEvent::LoginFailed(e) => {
                    bail!("the pool refused login {}: {}", args.user, e.message);
                }
                MoneroMinerEvent::NewJob { job, difficulty } => {
                    let Some(seed) = job.seed_hash else {
                        eprintln!(
                            "job {} has no seed_hash: a RandomX job needs one",
                            job.job_id
                        );
                        continue;
                    };
                    ensure_key(shared, seed, mode).await?;
                    shared.set(Some((job, difficulty)));
                }
                MoneroMinerEvent::ShareResult {
                    accepted, error, ..
                } => {
                    if accepted {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.rejected.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "share rejected: {}",
                            error.map_or_else(|| "no reason given".to_owned(), |e| e.message)
                        );
                    }
                    if args
                        .max_shares
                        .is_some_and(|m| counters.accepted.load(Ordering::Relaxed) >= m)
                    {
                        return Ok(SessionEnd::Stopped);
                    }
                }
                MoneroMinerEvent::Error(e) => eprintln!("pool sent something unusable: {e}"),
                MoneroMinerEvent::Closed(reason) => {
                    return Ok(SessionEnd::Lost(format!("session closed: {reason:?}")))
                }
                _ => {}
            }
        }
        let deadline = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60));
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = read.context("read from pool")?;
                if n == 0 {
                    return Ok(SessionEnd::Lost("the pool closed the connection".into()));
                }
                lines.feed(&buf[..n]).map_err(|e| anyhow::anyhow!("pool sent {e}"))?;
                let now = Instant::now();
                while let Some(line) = lines.next_line() {
                    session.handle_line(line, now);
                }
            }
            Some((generation, height, share)) = found_rx.recv() => {
                // A solution for a lower height than the current job's is stale: not worth sending.
                let stale = shared
                    .current()
                    .is_none_or(|w| w.generation != generation && w.job.height != height);
                if !stale {
                    session.submit(share);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                session.handle_timeout(Instant::now());
            }
            _ = stop.changed() => return Ok(SessionEnd::Stopped),
        }
    }
}

/// Mines RandomX until stopped (Ctrl-C, `stop`, `--max-shares`, `--seconds`), failing over
/// between the pool URLs; returns the totals.
pub(crate) async fn mine(args: MineArgs, mut stop: watch::Receiver<bool>) -> Result<MinerTotals> {
    if args.threads == 0 || args.threads > 1024 {
        bail!("--threads must be between 1 and 1024, got {}", args.threads);
    }
    if args.backend.is_some() {
        bail!("--backend only applies to sha256d and scrypt");
    }
    for url in &args.urls {
        parse_url(url)?;
    }
    let shared = Arc::new(Shared {
        work: Mutex::new(None),
        kernel: Mutex::new(None),
        generation: AtomicU64::new(0),
        hashes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let counters = Arc::new(Counters {
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let (found_tx, mut found_rx) = mpsc::unbounded_channel();
    let chunk = chunk_for(args.randomx_mode.to_mode());
    let mut handles = Vec::new();
    for index in 0..args.threads {
        let (shared, found_tx) = (Arc::clone(&shared), found_tx.clone());
        let threads = args.threads;
        handles.push(
            std::thread::Builder::new()
                .name(format!("miner-{index}"))
                .spawn(move || worker_loop(index, threads, &shared, chunk, &found_tx))
                .context("cannot start a mining thread")?,
        );
    }
    drop(found_tx);

    let started = Instant::now();
    let stats = {
        let (shared, counters) = (Arc::clone(&shared), Arc::clone(&counters));
        let interval = Duration::from_secs_f64(args.stats_interval.max(0.5));
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(interval).await;
                let hashes = shared.hashes.load(Ordering::Relaxed);
                let secs = last.0.elapsed().as_secs_f64();
                let rate = Hashrate::from_hashes_and_secs((hashes - last.1) as f64, secs)
                    .unwrap_or(Hashrate::ZERO);
                let difficulty = shared.current().map_or(0, |w| w.difficulty);
                eprintln!(
                    "[mine randomx] {rate:.2}  accepted {} rejected {}  difficulty {difficulty}",
                    counters.accepted.load(Ordering::Relaxed),
                    counters.rejected.load(Ordering::Relaxed),
                );
                last = (Instant::now(), hashes);
            }
        })
    };
    let deadline = args
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut failures = 0u32;
    let result = 'outer: loop {
        for url in &args.urls {
            let session = run_session(url, &args, &shared, &counters, &mut found_rx, &mut stop);
            let outcome = match deadline {
                Some(d) => match tokio::time::timeout_at(d, session).await {
                    Ok(r) => r,
                    Err(_) => break 'outer Ok(()),
                },
                None => session.await,
            };
            match outcome {
                Ok(SessionEnd::Stopped) => break 'outer Ok(()),
                Ok(SessionEnd::Lost(why)) => eprintln!("lost {url}: {why}"),
                Err(e) if failures > 1000 => break 'outer Err(e),
                Err(e) => eprintln!("{url}: {e:#}"),
            }
            // Nothing to mine while disconnected: stale work only wastes power.
            shared.set(None);
            failures += 1;
            if *stop.borrow() {
                break 'outer Ok(());
            }
        }
        let backoff = Duration::from_millis((250 * u64::from(failures.min(20))).min(5000));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break 'outer Ok(()),
        }
    };
    stats.abort();
    shared.stop.store(true, Ordering::Relaxed);
    let joined = tokio::task::spawn_blocking(move || {
        for handle in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("mining thread stopped: {e:#}"),
                Err(_) => eprintln!("a mining thread panicked"),
            }
        }
    });
    let _ = joined.await;
    let totals = MinerTotals {
        accepted: counters.accepted.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        hashes: shared.hashes.load(Ordering::Relaxed),
    };
    let rate =
        Hashrate::from_hashes_and_secs(totals.hashes as f64, started.elapsed().as_secs_f64())
            .unwrap_or(Hashrate::ZERO);
    eprintln!(
        "[mine randomx] done: {} accepted, {} rejected, {rate:.2} average",
        totals.accepted, totals.rejected
    );
    result.map(|()| totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_slices_cover_the_nonce_space_once() {
        for threads in [1usize, 2, 3, 7, 16] {
            let mut next = 0u64;
            for i in 0..threads {
                let s = nonce_slice(i, threads);
                assert_eq!(s.start, next);
                assert!(s.end > s.start);
                next = s.end;
            }
            assert_eq!(next, 1 << 32);
        }
    }
}
