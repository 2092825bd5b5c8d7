//! The RandomX pool: the embedded RandomX devnet → a job per session (its own reserved bytes
//! in the coinbase) → the Monero stratum dialect that xmrig speaks → RandomX verification off
//! the event loop → the durable share log → block submission to the devnet.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use otedama_core::{encode_hex, monero_check_hash, sha256d, Hashrate, MoneroTarget};
use otedama_hash::{Algorithm, PowAlgorithm, RandomX, RandomXMode};
use otedama_stratum::{
    CloseReason, LineBuffer, MoneroJob, MoneroPoolConfig, MoneroPoolEvent, MoneroPoolSession,
    MoneroShareSubmission, MoneroShareToken, ShareVerdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::ServeOptions;
use crate::config::Config;
use otedama_pool::source::devnet_rx::{RxDevnet, RxTemplate, DEVNET_RX_SEED};
use otedama_pool::store::{BlockRecord, BlockStatus, ShareLog, ShareRecord};
use otedama_pool::xmr_address::{check_address, devnet_address};

/// Share difficulty when `pool.difficulty` is absent: a share every second or so from one
/// fast-mode thread.
const DEFAULT_SHARE_DIFFICULTY: f64 = 500.0;

/// Devnet difficulty when `pool.devnet_difficulty` is absent: a block every few seconds on one
/// fast-mode thread.
const DEFAULT_DEVNET_DIFFICULTY: f64 = 5000.0;

/// The algorithm name in jobs (xmrig's name for Monero's RandomX).
const ALGO: &str = "rx/0";

/// Most jobs kept for checking shares (one per session per tip).
const MAX_JOBS: usize = 65_536;

/// One session's job: the devnet template with the session's reserved bytes.
#[derive(Debug)]
struct RxJob {
    template: RxTemplate,
}

/// Jobs by id, oldest first.
#[derive(Debug, Default)]
struct JobTable {
    jobs: HashMap<String, Arc<RxJob>>,
    order: VecDeque<String>,
    counter: u64,
}

impl JobTable {
    fn insert(&mut self, template: RxTemplate) -> (String, Arc<RxJob>) {
        self.counter += 1;
        let id = format!("{:x}", self.counter);
        let job = Arc::new(RxJob { template });
        self.jobs.insert(id.clone(), Arc::clone(&job));
        self.order.push_back(id.clone());
        while self.order.len() > MAX_JOBS {
            if let Some(old) = self.order.pop_front() {
                self.jobs.remove(&old);
            }
        }
        (id, job)
    }

    /// Forgets jobs below `height`: their shares are stale.
    fn retire_below(&mut self, height: u64) {
        let jobs = &mut self.jobs;
        self.order.retain(|id| {
            let keep = jobs.get(id).is_some_and(|j| j.template.height >= height);
            if !keep {
                jobs.remove(id);
            }
            keep
        });
    }
}

#[derive(Debug, Default)]
struct Totals {
    accepted: u64,
    rejected: u64,
    blocks: u64,
    difficulty_sum: f64,
}

/// What every connection shares.
struct Ctx {
    devnet: Arc<RxDevnet>,
    /// The devnet's tip height, followed by a thread of its own.
    tips: watch::Sender<u64>,
    /// The pool's own light-mode verifier for the devnet's key.
    verifier: RandomX,
    log: ShareLog,
    jobs: Mutex<JobTable>,
    totals: Mutex<Totals>,
    pool_address: String,
    share_target: MoneroTarget,
    monero: Arc<MoneroPoolConfig>,
    sessions: AtomicU64,
    connections: AtomicUsize,
    max_connections: usize,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `address.worker` (xmrig also appends `+difficulty` in some setups): the address and the
/// worker name.
fn split_login(login: &str) -> (String, String) {
    let login = login.split('+').next().unwrap_or_default();
    match login.split_once('.') {
        Some((a, w)) => (a.to_owned(), w.to_owned()),
        None => (login.to_owned(), String::new()),
    }
}

/// A Monero difficulty from the configuration's floating-point value: rounded, at least 1.
fn monero_difficulty(value: f64) -> u64 {
    if value.is_finite() && value >= 1.0 {
        value.round().min(u64::MAX as f64) as u64
    } else {
        1
    }
}

impl Ctx {
    /// A fresh job on the devnet tip for the session whose coinbase reserves `reserved`.
    fn job_for(&self, reserved: [u8; 8]) -> MoneroJob {
        let template = self.devnet.template(&self.pool_address, reserved);
        let (height, seed, blob) = (template.height, template.seed, template.blob.clone());
        let (id, _) = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(template);
        MoneroJob {
            blob,
            job_id: id,
            target: self.share_target,
            algo: Some(ALGO.to_owned()),
            height: Some(height),
            seed_hash: Some(seed),
        }
    }

    /// Verifies a share with RandomX, submits it to the devnet when it is a block, and records
    /// it durably; returns what the miner is told.
    fn judge(&self, share: &MoneroShareSubmission) -> ShareVerdict {
        let job = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .get(&share.job_id)
            .cloned();
        let Some(job) = job else {
            return ShareVerdict::Stale;
        };
        let hash = match self.verifier.hash(&share.blob) {
            Ok(out) => out.hash,
            Err(e) => return ShareVerdict::Invalid(format!("proof of work: {e}")),
        };
        if hash != share.result {
            return ShareVerdict::Invalid(format!(
                "result {} is not the hash of nonce {:08x} (RandomX gives {})",
                encode_hex(&share.result),
                share.nonce,
                encode_hex(&hash)
            ));
        }
        if !share.target.is_met_by(&hash) {
            return ShareVerdict::LowDifficulty;
        }
        let (address, worker) = split_login(&share.worker);
        let template = &job.template;
        let is_block = monero_check_hash(&hash, template.difficulty);
        if is_block {
            // The block goes out first: every second counts against a competing block.
            let result = self.devnet.submit(&share.blob, &template.coinbase);
            let id = encode_hex(&sha256d(&share.blob));
            println!(
                "[randomx] BLOCK height {} {id} by {address}: {}",
                template.height,
                match &result {
                    Ok(_) => "accepted".to_owned(),
                    Err(e) => e.to_string(),
                }
            );
            let (status, detail) = match &result {
                Ok(_) => (BlockStatus::Accepted, None),
                Err(e) => (BlockStatus::Rejected, Some(e.to_string())),
            };
            if result.is_ok() {
                self.totals.lock().unwrap_or_else(|p| p.into_inner()).blocks += 1;
            }
            let record = BlockRecord {
                algorithm: "randomx".into(),
                time_ms: now_ms(),
                height: template.height,
                hash: id.clone(),
                address: address.clone(),
                worker: worker.clone(),
                reward: template.reward,
                status,
                detail,
                payee: None,
            };
            if let Err(e) = self.log.record_block(record) {
                eprintln!("cannot record block {id}: {e}");
            }
        }
        let record = ShareRecord {
            algorithm: "randomx".into(),
            time_ms: now_ms(),
            address,
            worker,
            difficulty: share.difficulty as f64,
            job_id: share.job_id.clone(),
            height: template.height,
            pow_hash: hash,
            is_block,
            network_difficulty: template.difficulty as f64,
            block_value: template.reward,
            tx_fees: 0,
        };
        match self.log.record_share(record) {
            Ok(()) => ShareVerdict::Accepted,
            // Not durable, so not acknowledged: the miner learns the share was not credited.
            Err(e) => ShareVerdict::Invalid(format!("share not recorded: {e}")),
        }
    }

    fn count(&self, verdict: &ShareVerdict, difficulty: u64) {
        let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        match verdict {
            ShareVerdict::Accepted => {
                t.accepted += 1;
                t.difficulty_sum += difficulty as f64;
            }
            _ => t.rejected += 1,
        }
    }
}

/// Drives one miner connection until it closes or the pool stops.
async fn connection(
    ctx: Arc<Ctx>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let n = ctx.sessions.fetch_add(1, Ordering::Relaxed) + 1;
    // Every session mines its own coinbase: no two sessions ever hash the same blob.
    let reserved = n.to_le_bytes();
    let mut session = MoneroPoolSession::new(Arc::clone(&ctx.monero), format!("{n:016x}"), {
        Instant::now()
    });
    let mut tips = ctx.tips.subscribe();
    let (verdict_tx, mut verdicts) = mpsc::unbounded_channel::<(MoneroShareToken, ShareVerdict)>();
    stream.set_nodelay(true).ok();
    let (mut rd, mut wr) = stream.into_split();
    let mut lines = LineBuffer::default();
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                MoneroPoolEvent::Login { token, login } => {
                    let (address, _) = split_login(&login.login);
                    match check_address(&address) {
                        Ok(()) => {
                            tips.borrow_and_update();
                            let job = ctx.job_for(reserved);
                            session.login_result(token, Ok(job));
                        }
                        Err(e) => {
                            eprintln!("refused login {:?} from {peer}: {e}", login.login);
                            session
                                .login_result(token, Err(format!("invalid payout address: {e}")));
                        }
                    }
                }
                MoneroPoolEvent::Share(share) => {
                    let (ctx, verdict_tx) = (Arc::clone(&ctx), verdict_tx.clone());
                    // Hashing, the block submission and the durable commit happen off the
                    // event loop; the miner hears back only once the share is on disk.
                    tokio::task::spawn_blocking(move || {
                        let verdict = ctx.judge(&share);
                        ctx.count(&verdict, share.difficulty);
                        let _ = verdict_tx.send((share.token, verdict));
                    });
                }
                MoneroPoolEvent::Closed(reason) if !matches!(reason, CloseReason::Requested) => {
                    eprintln!("closed {peer}: {reason:?}");
                }
                _ => {}
            }
        }
        while let Some(out) = session.poll_output() {
            if wr.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
        if session.is_closed() {
            return;
        }
        let deadline = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60));
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if let Err(e) = lines.feed(&buf[..n]) {
                    eprintln!("closed {peer}: {e}");
                    return;
                }
                let now = Instant::now();
                while let Some(line) = lines.next_line() {
                    session.handle_line(line, now);
                }
            }
            Some((token, verdict)) = verdicts.recv() => session.share_result(token, verdict),
            Ok(()) = tips.changed(), if session.is_logged_in() => {
                tips.borrow_and_update();
                let job = ctx.job_for(reserved);
                session.send_job(&job);
            }
            _ = tokio::time::sleep_until(deadline) => session.handle_timeout(Instant::now()),
            _ = stop.changed() => session.close(CloseReason::Requested),
        }
    }
}

/// Accepts miners until the pool stops, then waits briefly for their sessions to end.
async fn accept_loop(ctx: Arc<Ctx>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if ctx.connections.load(Ordering::Relaxed) >= ctx.max_connections {
                    eprintln!("refused {peer}: {} connections already", ctx.max_connections);
                    continue;
                }
                ctx.connections.fetch_add(1, Ordering::Relaxed);
                let (ctx, stop) = (Arc::clone(&ctx), stop.clone());
                tasks.spawn(async move {
                    connection(Arc::clone(&ctx), stream, peer, stop).await;
                    ctx.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// Runs the RandomX pool on the embedded devnet with `config` until stopped.
pub(crate) async fn serve(config: Config, options: ServeOptions) -> Result<()> {
    let ServeOptions {
        seconds,
        vardiff: _,
        ready,
        randomx_mode,
    } = options;
    if config.pool.node.is_some() {
        bail!("pool.node: a RandomX pool runs on the embedded devnet only for now (no monerod work source yet); remove pool.node");
    }
    if let Some(chain) = &config.pool.chain {
        bail!("pool.chain {chain}: chains name Bitcoin-family networks; a RandomX pool pays Monero mainnet addresses and takes no chain");
    }
    let pool_address = match &config.pool.address {
        Some(a) => {
            check_address(a).with_context(|| format!("pool.address {a}"))?;
            a.clone()
        }
        None => devnet_address(),
    };
    let devnet_difficulty = monero_difficulty(
        config
            .pool
            .devnet_difficulty
            .unwrap_or(DEFAULT_DEVNET_DIFFICULTY),
    );
    // A share difficulty above the network's would throw away blocks.
    let share_difficulty =
        monero_difficulty(config.pool.difficulty.unwrap_or(DEFAULT_SHARE_DIFFICULTY))
            .min(devnet_difficulty);
    let share_target = MoneroTarget::from_difficulty(share_difficulty)
        .with_context(|| format!("share difficulty {share_difficulty}"))?;

    let database = config.pool.database.clone();
    let (log, _log_thread) = {
        let opening = database.clone();
        tokio::task::spawn_blocking(move || otedama_pool::store::open_share_log(&opening))
            .await
            .context("the database opener stopped")?
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    otedama_pool::store::display_database(&database)
                )
            })?
    };

    // Two RandomX caches of 256 MiB: the devnet's own (a node checks blocks itself) and the
    // pool's share verifier.
    let (devnet, verifier) = tokio::task::spawn_blocking(move || {
        let devnet = RxDevnet::new(devnet_difficulty).context("cannot start the RandomX devnet")?;
        let verifier = RandomX::new(&DEVNET_RX_SEED, RandomXMode::Light, 1)
            .context("cannot set up the RandomX share verifier")?;
        anyhow::Ok((devnet, verifier))
    })
    .await
    .context("the RandomX set-up thread failed")??;

    let devnet = Arc::new(devnet);
    let (tips, _) = watch::channel(devnet.height());
    let ctx = Arc::new(Ctx {
        devnet: Arc::clone(&devnet),
        tips,
        verifier,
        log: log.clone(),
        jobs: Mutex::new(JobTable::default()),
        totals: Mutex::new(Totals::default()),
        pool_address: pool_address.clone(),
        share_target,
        monero: Arc::new(MoneroPoolConfig::default()),
        sessions: AtomicU64::new(0),
        connections: AtomicUsize::new(0),
        max_connections: config.pool.max_connections,
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let listener = TcpListener::bind(config.pool.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.pool.listen))?;
    let local = listener.local_addr()?;
    if let Some(ready) = ready {
        let _ = ready.send(local);
    }
    println!(
        "otedama pool: {} on stratum+tcp://{local} (embedded devnet, difficulty {}, share difficulty {}, payouts to {pool_address}, database {})",
        Algorithm::RandomX,
        ctx.devnet.difficulty(),
        share_target.difficulty(),
        otedama_pool::store::display_database(&database)
    );
    println!(
        "[randomx] new block to mine: height {}",
        ctx.devnet.height() + 1
    );
    let accept_task = tokio::spawn(accept_loop(Arc::clone(&ctx), listener, stop_rx.clone()));

    // The devnet's tip, watched on a thread (the wait blocks) and published to the sessions.
    {
        let (ctx, stop) = (Arc::clone(&ctx), stop_rx.clone());
        std::thread::Builder::new()
            .name("rx-tips".into())
            .spawn(move || {
                let mut known = ctx.devnet.height();
                while !*stop.borrow() {
                    let height = ctx.devnet.wait_for_tip(known, Duration::from_millis(500));
                    if height > known {
                        known = height;
                        ctx.tips.send_replace(height);
                    }
                }
            })?;
    }

    // The tip follower: announces new heights and forgets the jobs they made stale.
    let tip_task = {
        let (ctx, mut tips, mut stop) = (Arc::clone(&ctx), ctx.tips.subscribe(), stop_rx.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = tips.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let height = *tips.borrow_and_update();
                        ctx.jobs.lock().unwrap_or_else(|p| p.into_inner()).retire_below(height + 1);
                        println!("[randomx] new block to mine: height {}", height + 1);
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };

    let miner_task = if config.mining.threads > 0 {
        let args = crate::mine::MineArgs {
            urls: vec![format!("stratum+tcp://{local}")],
            user: format!("{pool_address}.builtin"),
            password: "x".into(),
            algo: Algorithm::RandomX,
            threads: config.mining.threads,
            backend: None,
            max_shares: None,
            seconds: None,
            stats_interval: config.monitoring.stats_interval.0.as_secs_f64(),
            randomx_mode,
        };
        Some(tokio::spawn(crate::mine::mine(args, stop_rx.clone())))
    } else {
        None
    };

    let shutdown = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => crate::signals::wait_for_shutdown().await,
        }
    };
    tokio::pin!(shutdown);
    let mut stats = tokio::time::interval(config.monitoring.stats_interval.0);
    stats.tick().await;
    let mut last_stats = (Instant::now(), 0.0f64);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = stats.tick() => {
                let t = ctx.totals.lock().unwrap_or_else(|p| p.into_inner());
                let secs = last_stats.0.elapsed().as_secs_f64();
                // A share of Monero difficulty d is worth d hashes.
                let rate = Hashrate::from_hashes_and_secs(t.difficulty_sum - last_stats.1, secs)
                    .unwrap_or(Hashrate::ZERO);
                println!("[pool randomx] shares accepted {} rejected {}  blocks {}  pool hashrate {rate:.2}", t.accepted, t.rejected, t.blocks);
                last_stats = (Instant::now(), t.difficulty_sum);
            }
        }
    }
    println!("shutting down: closing connections and flushing the share log");
    let _ = stop_tx.send(true);
    if let Some(task) = miner_task {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(Err(e))) => eprintln!("the built-in miner stopped: {e:#}"),
            Ok(_) => {}
            Err(_) => eprintln!("the built-in miner did not stop in 10 s"),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), accept_task).await;
    let _ = tip_task.await;
    // Shares already being judged finish and commit before the log is flushed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if !log.flush(Duration::from_secs(30)) {
        eprintln!("the share log did not flush in 30 s");
    }
    let t = ctx.totals.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "pool stopped: {} shares accepted, {} rejected, {} blocks found",
        t.accepted, t.rejected, t.blocks
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_split_into_address_and_worker() {
        assert_eq!(split_login("4abc.rig1"), ("4abc".into(), "rig1".into()));
        assert_eq!(split_login("4abc+5000"), ("4abc".into(), String::new()));
        assert_eq!(split_login("4abc"), ("4abc".into(), String::new()));
        assert_eq!(monero_difficulty(0.2), 1);
        assert_eq!(monero_difficulty(f64::NAN), 1);
        assert_eq!(monero_difficulty(99.6), 100);
    }

    #[test]
    fn jobs_below_the_tip_are_forgotten() {
        let mut table = JobTable::default();
        let template = |height| RxTemplate {
            blob: vec![0; 76],
            coinbase: Vec::new(),
            height,
            difficulty: 1,
            seed: DEVNET_RX_SEED,
            prev_id: [0; 32],
            reward: 0,
        };
        let (a, _) = table.insert(template(1));
        let (b, _) = table.insert(template(2));
        assert_ne!(a, b);
        table.retire_below(2);
        assert!(!table.jobs.contains_key(&a));
        assert!(table.jobs.contains_key(&b));
        assert_eq!(table.order.len(), 1);
    }
}
