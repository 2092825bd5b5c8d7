//! `otedama-cli soak`: a long run of a real pool process under thousands of miners that
//! really hash, with vardiff and a new block template every block interval; reports the
//! pool's memory at start and end, the shares acknowledged, submit latency, and whether every
//! acknowledged share is in the share log once the pool has stopped.
//!
//! The pool runs as a child process (`otedama-cli pool` with a generated configuration on the
//! embedded devnet), so its memory is its own. The miners are `otedama-stratum` miner sessions
//! in this process: each hashes its jobs (sha256d, the whole header) at `--hashrate` and submits
//! what meets its share target, so the pool's vardiff sets each session's difficulty from the
//! shares it sees, as with real miners. The devnet's difficulty is set so that all the miners
//! together find a block every `--block-interval` seconds on average: every block is a new
//! template and a clean job to every connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_core::DifficultyConvention;
use otedama_stratum::{MinerConfig, MinerEvent, MinerJob, MinerSession};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::{Config, Span};

/// Arguments of `otedama-cli soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// Simulated miner connections.
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// How long the miners mine, in minutes.
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    /// Hashes per second each simulated miner computes (sha256d of real headers).
    #[arg(long, default_value_t = 100.0)]
    hashrate: f64,
    /// Mean seconds between blocks found by all the miners together; each block is a new
    /// template, so a clean job for every connection.
    #[arg(long, default_value_t = 30.0)]
    block_interval: f64,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 60.0)]
    report_every: f64,
    /// Keep the pool's directory (configuration, database, log) and say where it is.
    #[arg(long)]
    keep: bool,
    /// Print the final report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What the miners have done so far, all together.
#[derive(Default)]
struct Tally {
    connected: AtomicU64,
    working: AtomicU64,
    submitted: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    unanswered: AtomicU64,
    failed: AtomicU64,
    jobs: AtomicU64,
    /// Submit-to-answer latencies (microseconds) since the last progress line.
    recent: Mutex<Vec<u64>>,
    /// The difficulty each miner mines at now, by miner index.
    difficulty: Mutex<HashMap<usize, f64>>,
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

/// A process's resident and peak resident memory in KiB, from `/proc`.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A port on loopback nothing listens on now.
fn free_port() -> Result<u16> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(socket.local_addr()?.port())
}

/// The pool's configuration: the devnet sized for one block per `block_interval` from all
/// the miners, vardiff starting where each miner finds a share about every 3 seconds (the
/// pool's vardiff then moves it to its own aim), no API, no local miner.
fn pool_config(args: &SoakArgs, dir: &Path, port: u16) -> Result<Config> {
    let two32 = 2f64.powi(32);
    let mut config = Config::default();
    config.mining.algorithm = "sha256d".into();
    config.mining.threads = Some(0);
    config.pool.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.pool.database = dir.join("soak.db").display().to_string();
    config.pool.max_connections = args.connections + 64;
    config.pool.difficulty = Some(args.hashrate * 3.0 / two32);
    config.pool.devnet_difficulty =
        Some(args.connections as f64 * args.hashrate * args.block_interval / two32);
    config.api.enabled = false;
    config.monitoring.health.enabled = false;
    config.monitoring.stats_interval = Span(Duration::from_secs(60));
    config.validate("<soak>")?;
    Ok(config)
}

/// One simulated miner until `until`, then until its last share is answered.
async fn miner(
    port: u16,
    index: usize,
    hashrate: f64,
    until: Instant,
    user: String,
    tally: Arc<Tally>,
) -> Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .context("connect")?;
    stream.set_nodelay(true).ok();
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut session = MinerSession::new(
        MinerConfig {
            user: format!("{user}.s{index}"),
            user_agent: "otedama-soak".into(),
            ..MinerConfig::default()
        },
        Instant::now(),
    );
    session.start();

    let mut job: Option<(MinerJob, [u8; 80])> = None;
    let mut extranonce2 = 0u64;
    let mut nonce = 0u32;
    let mut budget = 0.0f64;
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut was_working = false;
    let tick = Duration::from_millis(250);
    let mut ticker = tokio::time::interval(tick);
    // Miners do not all hash on the same tick.
    ticker.reset_after(tick.mul_f64((index % 64) as f64 / 64.0));
    let mut last = Instant::now();
    let mut stopping = false;
    loop {
        while let Some(line) = session.poll_output() {
            wr.write_all(line.as_bytes()).await?;
            wr.write_all(b"\n").await?;
        }
        while let Some(event) = session.poll_event() {
            match event {
                MinerEvent::NewJob(new) => {
                    tally.jobs.fetch_add(1, Ordering::Relaxed);
                    if !was_working {
                        was_working = true;
                        tally.working.fetch_add(1, Ordering::Relaxed);
                    }
                    extranonce2 = 0;
                    nonce = 0;
                    let en2 = otedama_stratum::Extranonce2Iter::encode(new.extranonce2_size, 0);
                    let header = new.header(&en2, new.notify.ntime, 0, None)?;
                    job = Some((new, header));
                }
                MinerEvent::ShareResult {
                    sequence, accepted, ..
                } => {
                    if let Some(at) = sent.remove(&sequence) {
                        let us = at.elapsed().as_micros() as u64;
                        tally
                            .recent
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(us);
                    }
                    let counter = if accepted {
                        &tally.accepted
                    } else {
                        &tally.rejected
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                MinerEvent::Authorized(false, why) => {
                    bail!("not authorized: {}", why.unwrap_or_default())
                }
                MinerEvent::Closed(reason) => bail!("session closed: {reason:?}"),
                _ => {}
            }
        }
        if stopping && sent.is_empty() {
            break Ok(());
        }
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => session.handle_line(line.as_bytes(), Instant::now()),
                None => bail!("the pool closed the connection"),
            },
            _ = ticker.tick() => {
                let now = Instant::now();
                session.handle_timeout(now);
                if now >= until + Duration::from_secs(30) {
                    tally.unanswered.fetch_add(sent.len() as u64, Ordering::Relaxed);
                    break Ok(());
                }
                if now >= until {
                    stopping = true;
                    continue;
                }
                budget += hashrate * now.duration_since(last).as_secs_f64();
                last = now;
                let Some((current, header)) = job.as_mut() else { continue };
                let target = current.share_target(DifficultyConvention::Bitcoin);
                tally
                    .difficulty
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(index, current.difficulty);
                while budget >= 1.0 {
                    budget -= 1.0;
                    header[76..80].copy_from_slice(&nonce.to_le_bytes());
                    let hash = otedama_core::sha256d(header.as_slice());
                    if target.is_met_by(&hash) {
                        let en2 =
                            otedama_stratum::Extranonce2Iter::encode(current.extranonce2_size, extranonce2);
                        let share = current.share(&en2, current.notify.ntime, nonce, None);
                        let sequence = session.submit(share);
                        sent.insert(sequence, now);
                        tally.submitted.fetch_add(1, Ordering::Relaxed);
                    }
                    nonce = nonce.wrapping_add(1);
                    if nonce == 0 {
                        extranonce2 += 1;
                        let en2 =
                            otedama_stratum::Extranonce2Iter::encode(current.extranonce2_size, extranonce2);
                        *header = current.header(&en2, current.notify.ntime, 0, None)?;
                    }
                }
            }
        }
    }
}

/// Stops the pool with SIGTERM (a graceful stop) and waits for it, up to a minute.
fn stop_pool(child: &mut Child) -> Result<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the pool did not stop within a minute of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the pool accepts connections on `port`.
fn wait_listening(child: &mut Child, port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the pool exited ({status}) before listening; its log is {}",
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!("the pool did not listen within two minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the soak.
pub(crate) fn run(args: &SoakArgs) -> Result<()> {
    if args.connections == 0 || args.connections > 50_000 {
        bail!("--connections must be between 1 and 50000");
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !(positive(args.minutes) && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be in (0, 1440]");
    }
    if !(positive(args.hashrate) && args.hashrate <= 1e6) {
        bail!("--hashrate must be in (0, 1000000]");
    }
    if !(positive(args.block_interval) && positive(args.report_every)) {
        bail!("--block-interval and --report-every must be positive");
    }
    crate::limits::check_connections("--connections", args.connections);
    let dir: PathBuf = std::env::temp_dir().join(format!("otedama-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = free_port()?;
    let config = pool_config(args, &dir, port)?;
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, serde_yaml::to_string(&config)?)?;
    let log_path = dir.join("pool.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["pool", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the pool")?;
    let outcome = soak(args, &mut child, port, &log_path);
    let stopped = stop_pool(&mut child);
    let report = outcome.and_then(|report| {
        let status = stopped?;
        finish(report, status, &config.pool.database)
    });
    if args.keep {
        eprintln!("the pool's directory is kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = report?;
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    let lost = report["lost_acknowledged_shares"].as_u64().unwrap_or(0);
    if lost > 0 {
        bail!("{lost} acknowledged shares are missing from the share log");
    }
    Ok(())
}

/// The miners' part: connect, mine, report progress, and the figures for the report.
fn soak(args: &SoakArgs, child: &mut Child, port: u16, log: &Path) -> Result<serde_json::Value> {
    wait_listening(child, port, log)?;
    let pid = child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let address = otedama_core::bitcoin::bech32::segwit::encode(
        otedama_core::bitcoin::bech32::Hrp::parse_unchecked("bcrt"),
        otedama_core::bitcoin::bech32::segwit::VERSION_0,
        &[7u8; 20],
    )?;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let mine_for = Duration::from_secs_f64(args.minutes * 60.0);
    runtime.block_on(async {
        // The clock starts once every miner had the time to connect.
        let until = Instant::now() + mine_for + Duration::from_secs(30);
        let mut tasks = Vec::with_capacity(args.connections);
        for i in 0..args.connections {
            tasks.push(tokio::spawn(miner(
                port,
                i,
                args.hashrate,
                until,
                address.clone(),
                Arc::clone(&tally),
            )));
            // A burst, but not one the system's accept queue would drop.
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut start_memory = None;
        let mut all_latencies: Vec<u64> = Vec::new();
        let mut minutes = Vec::new();
        let mut last_accepted = 0u64;
        let mut last_at = Instant::now();
        let every = Duration::from_secs_f64(args.report_every);
        let mut next = Instant::now() + every;
        let hold =
            |v: &Mutex<Vec<u64>>| std::mem::take(&mut *v.lock().unwrap_or_else(|p| p.into_inner()));
        while Instant::now() < until + Duration::from_secs(31) {
            if start_memory.is_none()
                && tally.working.load(Ordering::Relaxed) as usize == args.connections
            {
                start_memory = memory_kib(pid);
                eprintln!(
                    "all {} miners have work after {:.1} s; pool RSS {} KiB",
                    args.connections,
                    started.elapsed().as_secs_f64(),
                    start_memory.map_or(0, |m| m.0)
                );
            }
            if tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            if Instant::now() >= next {
                next += every;
                let mut recent = hold(&tally.recent);
                recent.sort_unstable();
                let accepted = tally.accepted.load(Ordering::Relaxed);
                let rate = (accepted - last_accepted) as f64 / last_at.elapsed().as_secs_f64();
                last_accepted = accepted;
                last_at = Instant::now();
                let mut diffs: Vec<f64> = tally
                    .difficulty
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .copied()
                    .collect();
                diffs.sort_by(f64::total_cmp);
                let median_difficulty = diffs.get(diffs.len() / 2).copied().unwrap_or(0.0);
                let rss = memory_kib(pid).map_or(0, |m| m.0);
                eprintln!(
                    "{:>6.0} s: {} connected, {accepted} accepted ({rate:.0}/s), {} rejected, \
                     p50 {:.2} ms, p99 {:.2} ms, median difficulty {median_difficulty:.3e}, \
                     {} jobs sent, pool RSS {rss} KiB",
                    started.elapsed().as_secs_f64(),
                    tally.connected.load(Ordering::Relaxed),
                    tally.rejected.load(Ordering::Relaxed),
                    percentile_ms(&recent, 0.5),
                    percentile_ms(&recent, 0.99),
                    tally.jobs.load(Ordering::Relaxed),
                );
                minutes.push(json!({
                    "seconds": started.elapsed().as_secs_f64().round(),
                    "shares_per_second": rate,
                    "latency_ms_p99": percentile_ms(&recent, 0.99),
                    "median_difficulty": median_difficulty,
                    "rss_kib": rss,
                }));
                all_latencies.extend(recent);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let end_memory = memory_kib(pid);
        let mut first_error = None;
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
                Err(e) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        all_latencies.extend(hold(&tally.recent));
        all_latencies.sort_unstable();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Ok(json!({
            "connections": args.connections,
            "minutes": args.minutes,
            "hashrate_per_miner": args.hashrate,
            "block_interval_seconds": args.block_interval,
            "failed_miners": load(&tally.failed),
            "first_failure": first_error,
            "shares_submitted": load(&tally.submitted),
            "shares_accepted": load(&tally.accepted),
            "shares_rejected": load(&tally.rejected),
            "shares_unanswered": load(&tally.unanswered),
            "jobs_received": load(&tally.jobs),
            "latency_ms_p50": percentile_ms(&all_latencies, 0.50),
            "latency_ms_p99": percentile_ms(&all_latencies, 0.99),
            "latency_ms_max": percentile_ms(&all_latencies, 1.0),
            "pool_rss_kib_start": start_memory.map(|m| m.0),
            "pool_rss_kib_end": end_memory.map(|m| m.0),
            "pool_rss_kib_peak": end_memory.map(|m| m.1),
            "progress": minutes,
        }))
    })
}

/// Adds what the stopped pool's share log holds to the report.
fn finish(
    mut report: serde_json::Value,
    status: std::process::ExitStatus,
    database: &str,
) -> Result<serde_json::Value> {
    let mut store = otedama_pool::store::open(database).context("opening the share log")?;
    let logged = store.share_count()?;
    let blocks = store.blocks()?.len();
    let accepted = report["shares_accepted"].as_u64().unwrap_or(0);
    report["pool_exit"] = json!(status.to_string());
    report["shares_in_log"] = json!(logged);
    report["blocks_found"] = json!(blocks);
    report["lost_acknowledged_shares"] = json!(accepted.saturating_sub(logged));
    Ok(report)
}
