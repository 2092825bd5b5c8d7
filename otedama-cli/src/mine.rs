//! `otedama-cli mine`: a CPU miner for Stratum v1 pools, with backup pools and failover.
//!
//! One task speaks Stratum through [`MinerSession`]; mining threads scan the current job,
//! each on its own slice of the extranonce2 space, and hand solutions back to be submitted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_core::{DifficultyConvention, Hashrate, Target};
use otedama_hash::{Algorithm, PowAlgorithm, RandomXMode, ScanJob};
use otedama_stratum::{LineBuffer, MinerConfig, MinerEvent, MinerJob, MinerSession, MinerShare};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::kernel::build;

/// Arguments of `otedama-cli mine`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MineArgs {
    /// Pool URL, `stratum+tcp://host:port`; repeat for backup pools, tried in order.
    #[arg(short = 'o', long = "url", required = true)]
    pub(crate) urls: Vec<String>,
    /// Worker name: the payout address, optionally `.workername`.
    #[arg(short = 'u', long)]
    pub(crate) user: String,
    /// Password (most pools ignore it).
    #[arg(short = 'p', long, default_value = "x")]
    pub(crate) password: String,
    /// The algorithm: sha256d, scrypt or randomx (randomx speaks the Monero dialect).
    #[arg(long)]
    pub(crate) algo: Algorithm,
    /// Mining threads.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// SIMD backend (as in `bench --backend`); the fastest available when left out.
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Exit after this many accepted shares (for scripts and tests).
    #[arg(long)]
    pub(crate) max_shares: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) stats_interval: f64,
    /// RandomX only: fast (the 2 GiB dataset) or light (the 256 MiB cache, slow).
    #[arg(long, value_enum, default_value_t = crate::mine_randomx::RandomXModeArg::Fast)]
    pub(crate) randomx_mode: crate::mine_randomx::RandomXModeArg,
}

/// What a mining run ended with.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MinerTotals {
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) hashes: u64,
}

/// The job the threads mine, with a generation that changes whenever it does.
struct Work {
    job: MinerJob,
    target: Target,
    generation: u64,
}

struct Shared {
    work: Mutex<Option<Arc<Work>>>,
    generation: AtomicU64,
    hashes: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn current(&self) -> Option<Arc<Work>> {
        self.work.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, job: Option<MinerJob>, convention: DifficultyConvention) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let work = job.map(|job| {
            Arc::new(Work {
                target: job.share_target(convention),
                job,
                generation,
            })
        });
        *self.work.lock().unwrap_or_else(|p| p.into_inner()) = work;
    }
}

fn convention_for(algo: Algorithm) -> Result<DifficultyConvention> {
    Ok(match algo {
        Algorithm::Sha256d => DifficultyConvention::Bitcoin,
        Algorithm::Scrypt => DifficultyConvention::Scrypt,
        other => bail!("the Stratum v1 miner mines sha256d and scrypt, not {other}"),
    })
}

/// Nonces per scan call: large enough to amortise, small enough to react to a new job fast.
fn chunk_for(algo: Algorithm) -> u64 {
    match algo {
        Algorithm::Sha256d => 1 << 20,
        _ => 256,
    }
}

/// Splits `stratum+tcp://host:port` into host and port.
pub(crate) fn parse_url(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("stratum+tcp://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').with_context(|| {
        format!("pool url {url:?} has no port (expected stratum+tcp://host:port)")
    })?;
    if host.is_empty() {
        bail!("pool url {url:?} has no host");
    }
    let port: u16 = port
        .parse()
        .with_context(|| format!("pool url {url:?} has a bad port {port:?}"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

fn worker_loop(
    index: usize,
    threads: usize,
    kernel: &dyn PowAlgorithm,
    shared: &Shared,
    chunk: u64,
    found_tx: &mpsc::UnboundedSender<(u64, MinerShare)>,
) -> Result<()> {
    let mut worker = kernel.worker()?;
    let mut found = Vec::new();
    let mut idle_generation = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(work) = shared.current().filter(|w| w.generation != idle_generation) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let job = &work.job;
        let ntime = job.notify.ntime;
        'extranonce: for en2 in job
            .extranonce2_values()
            .starting_at(index as u64)
            .with_stride(threads as u64)
        {
            let header = job.header(&en2, ntime, 0, None)?;
            let scan = ScanJob::header80(header);
            let mut start = 0u64;
            while start < (1 << 32) {
                if shared.stop.load(Ordering::Relaxed)
                    || shared.generation.load(Ordering::Relaxed) != work.generation
                {
                    break 'extranonce;
                }
                let end = (start + chunk).min(1 << 32);
                found.clear();
                let done = worker.scan(&scan, start..end, &work.target, &mut found)?;
                shared.hashes.fetch_add(done, Ordering::Relaxed);
                for s in &found {
                    let share = job.share(&en2, ntime, s.nonce as u32, None);
                    let _ = found_tx.send((work.generation, share));
                }
                start = end;
            }
        }
        // The whole extranonce2 slice is done: wait for the next job.
        if shared.generation.load(Ordering::Relaxed) == work.generation {
            idle_generation = work.generation;
        }
    }
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

#[allow(clippy::too_many_arguments)]
async fn run_session(
    url: &str,
    args: &MineArgs,
    convention: DifficultyConvention,
    shared: &Shared,
    counters: &Counters,
    found_rx: &mut mpsc::UnboundedReceiver<(u64, MinerShare)>,
    stop: &mut watch::Receiver<bool>,
    resume: &mut Option<String>,
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
    let config = MinerConfig {
        user: args.user.clone(),
        password: args.password.clone(),
        ..MinerConfig::default()
    };
    let mut session =
        MinerSession::new(config, std::time::Instant::now()).with_pool_host(host.clone());
    if let Some(sid) = resume.clone() {
        session = session.with_resume(sid);
    }
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
                MinerEvent::Subscribed { session_id, .. } => {
                    *resume = session_id;
                }
                MinerEvent::Authorized(false, reason) => {
                    bail!(
                        "the pool refused worker {}: {}",
                        args.user,
                        reason.unwrap_or_default()
                    );
                }
                MinerEvent::NewJob(job) => shared.set(Some(job), convention),
                MinerEvent::ShareResult {
                    accepted, error, ..
                } => {
                    if accepted {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.rejected.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "share rejected: {}",
                            error.map_or_else(|| "no reason given".to_owned(), |e| e.to_string())
                        );
                    }
                    if args
                        .max_shares
                        .is_some_and(|m| counters.accepted.load(Ordering::Relaxed) >= m)
                    {
                        return Ok(SessionEnd::Stopped);
                    }
                }
                MinerEvent::Reconnect(_) => {
                    return Ok(SessionEnd::Lost("the pool asked to reconnect".into()))
                }
                MinerEvent::ShowMessage(m) => eprintln!("pool says: {m}"),
                MinerEvent::Error(e) => eprintln!("pool sent something unusable: {e}"),
                MinerEvent::Closed(reason) => {
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
                let now = std::time::Instant::now();
                while let Some(line) = lines.next_line() {
                    session.handle_line(line, now);
                }
            }
            Some((generation, share)) = found_rx.recv() => {
                // Solutions for a job that was replaced by a clean one are not worth sending.
                let stale = shared.current().is_none_or(|w| w.generation != generation && w.job.clean);
                if !stale {
                    // The session answers every submit with one ShareResult.
                    session.submit(share);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                session.handle_timeout(std::time::Instant::now());
            }
            _ = stop.changed() => return Ok(SessionEnd::Stopped),
        }
    }
}

/// Mines until stopped (Ctrl-C, `stop`, `--max-shares`, `--seconds`), failing over between the
/// pool URLs; returns the totals.
pub(crate) async fn mine(args: MineArgs, mut stop: watch::Receiver<bool>) -> Result<MinerTotals> {
    if args.algo == Algorithm::RandomX {
        return crate::mine_randomx::mine(args, stop).await;
    }
    if args.threads == 0 || args.threads > 1024 {
        bail!("--threads must be between 1 and 1024, got {}", args.threads);
    }
    for url in &args.urls {
        parse_url(url)?;
    }
    let convention = convention_for(args.algo)?;
    let kernel: Arc<dyn PowAlgorithm> = Arc::from(build(
        args.algo,
        args.backend.as_deref(),
        None,
        RandomXMode::Light,
        1,
    )?);
    let shared = Arc::new(Shared {
        work: Mutex::new(None),
        generation: AtomicU64::new(0),
        hashes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let counters = Arc::new(Counters {
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let (found_tx, mut found_rx) = mpsc::unbounded_channel();
    let chunk = chunk_for(args.algo);
    let mut handles = Vec::new();
    for index in 0..args.threads {
        let (kernel, shared, found_tx) =
            (Arc::clone(&kernel), Arc::clone(&shared), found_tx.clone());
        let threads = args.threads;
        handles.push(
            std::thread::Builder::new()
                .name(format!("miner-{index}"))
                .spawn(move || {
                    worker_loop(index, threads, kernel.as_ref(), &shared, chunk, &found_tx)
                })
                .context("cannot start a mining thread")?,
        );
    }
    drop(found_tx);

    let started = Instant::now();
    let stats = {
        let (shared, counters) = (Arc::clone(&shared), Arc::clone(&counters));
        let interval = Duration::from_secs_f64(args.stats_interval.max(0.5));
        let algo = args.algo;
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(interval).await;
                let hashes = shared.hashes.load(Ordering::Relaxed);
                let secs = last.0.elapsed().as_secs_f64();
                let rate = Hashrate::from_hashes_and_secs((hashes - last.1) as f64, secs)
                    .unwrap_or(Hashrate::ZERO);
                let difficulty = shared.current().map_or(0.0, |w| w.job.difficulty);
                eprintln!(
                    "[mine {algo}] {rate:.2}  accepted {} rejected {}  difficulty {difficulty}",
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
    let mut resume = None;
    let mut failures = 0u32;
    let result = 'outer: loop {
        for url in &args.urls {
            let session = run_session(
                url,
                &args,
                convention,
                &shared,
                &counters,
                &mut found_rx,
                &mut stop,
                &mut resume,
            );
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
            shared.set(None, convention);
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
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("mining thread stopped: {e:#}"),
            Err(_) => eprintln!("a mining thread panicked"),
        }
    }
    let totals = MinerTotals {
        accepted: counters.accepted.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        hashes: shared.hashes.load(Ordering::Relaxed),
    };
    let rate =
        Hashrate::from_hashes_and_secs(totals.hashes as f64, started.elapsed().as_secs_f64())
            .unwrap_or(Hashrate::ZERO);
    eprintln!(
        "[mine {}] done: {} accepted, {} rejected, {rate:.2} average",
        args.algo, totals.accepted, totals.rejected
    );
    result.map(|()| totals)
}

/// Runs `otedama-cli mine` until Ctrl-C.
pub(crate) fn run(args: MineArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            crate::signals::wait_for_shutdown().await;
            let _ = stop_tx.send(true);
        });
        mine(args, stop_rx).await.map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_urls_parse() {
        assert_eq!(
            parse_url("stratum+tcp://127.0.0.1:3333").expect("url"),
            ("127.0.0.1".into(), 3333)
        );
        assert_eq!(
            parse_url("pool.example:4444/").expect("url"),
            ("pool.example".into(), 4444)
        );
        assert_eq!(
            parse_url("stratum+tcp://[::1]:3333").expect("url"),
            ("::1".into(), 3333)
        );
        assert!(parse_url("stratum+tcp://host").is_err());
        assert!(parse_url("stratum+tcp://host:99999").is_err());
        assert!(parse_url("stratum+tcp://:3333").is_err());
    }
}
