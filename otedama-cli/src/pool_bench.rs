//! `otedama-cli bench-pool`: share validation throughput on one core, and submit-to-answer
//! latency with thousands of simulated miners against a real pool on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_core::bitcoin::ScriptBuf;
use otedama_core::{DifficultyConvention, Share};
use otedama_hash::{Algorithm, RandomXMode};
use otedama_pool::TemplateSource;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::kernel::build;
use crate::pool::{serve, ServeOptions};
use otedama_pool::source::devnet::Devnet;
use otedama_pool::validate;
use otedama_pool::JobBook;

/// Arguments of `otedama-cli bench-pool`.
#[derive(Debug, Args)]
pub(crate) struct PoolBenchArgs {
    /// sha256d or scrypt.
    #[arg(long, default_value = "sha256d")]
    algo: String,
    /// Simulated miner connections.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Shares per second each connection submits.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// What the simulated miners speak: v1 (JSON lines) or sv2 (an extended channel each,
    /// Noise-encrypted).
    #[arg(long, default_value = "v1", value_parser = ["v1", "sv2"])]
    protocol: String,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Validations per second on this thread, over `seconds`.
fn validation_rate(algo: Algorithm, convention: DifficultyConvention, seconds: f64) -> Result<f64> {
    let kernel = build(algo, None, None, RandomXMode::Light, 1, true)?;
    let mut devnet = Devnet::new(
        build(algo, None, None, RandomXMode::Light, 1, true)?,
        convention.diff1_target(),
    );
    let template = Arc::new(devnet.template()?);
    let job = JobBook::default().make(template, &ScriptBuf::new(), b"/otedama/", true, 0)?;
    let mut share = Share {
        job_id: job.job.id.clone(),
        extranonce1: vec![1; 4],
        extranonce2: vec![2; 4],
        ntime: job.job.time,
        nonce: 0,
        version_bits: None,
        worker: "bench".into(),
    };
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        for _ in 0..64 {
            share.nonce = share.nonce.wrapping_add(1);
            let _ =
                std::hint::black_box(validate(&job, &share, 0, 1e-9, kernel.as_ref(), convention));
        }
        done += 64;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

struct ClientResult {
    latencies_us: Vec<u64>,
    accepted: u64,
    rejected: u64,
}

async fn client(
    port: u16,
    index: usize,
    rate: f64,
    until: Instant,
    address: String,
) -> Result<ClientResult> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .context("connect")?;
    stream.set_nodelay(true).ok();
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    wr.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"bench\"]}\n")
        .await?;
    let auth = json!({"id": 2, "method": "mining.authorize", "params": [format!("{address}.c{index}"), "x"]});
    wr.write_all(format!("{auth}\n").as_bytes()).await?;
    let (job_id, ntime) = loop {
        let line = lines.next_line().await?.context("closed before a job")?;
        let v: Value = serde_json::from_str(&line)?;
        if v["method"] == "mining.notify" {
            break (
                v["params"][0].as_str().unwrap_or_default().to_owned(),
                v["params"][7].as_str().unwrap_or_default().to_owned(),
            );
        }
    };
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    // Spread the connections' submits over the interval.
    tokio::time::sleep(interval.mul_f64((index % 97) as f64 / 97.0)).await;
    let mut result = ClientResult {
        latencies_us: Vec::new(),
        accepted: 0,
        rejected: 0,
    };
    let mut nonce = 0u32;
    let mut ticker = tokio::time::interval(interval);
    while Instant::now() < until {
        ticker.tick().await;
        nonce += 1;
        let id = 100 + u64::from(nonce);
        let submit = format!(
            "{{\"id\":{id},\"method\":\"mining.submit\",\"params\":[\"{address}.c{index}\",\"{job_id}\",\"00000000\",\"{ntime}\",\"{nonce:08x}\"]}}\n"
        );
        let sent = Instant::now();
        wr.write_all(submit.as_bytes()).await?;
        loop {
            let line = lines.next_line().await?.context("closed")?;
            let v: Value = serde_json::from_str(&line)?;
            if v["id"] == json!(id) {
                result.latencies_us.push(sent.elapsed().as_micros() as u64);
                if v["result"] == json!(true) {
                    result.accepted += 1;
                } else {
                    result.rejected += 1;
                }
                break;
            }
        }
    }
    Ok(result)
}

/// A simulated SV2 miner: one extended channel through `otedama-stratum`'s client, one
/// share every `1 / rate` seconds, each timed until its answer.
async fn sv2_client(
    url: String,
    index: usize,
    rate: f64,
    until: Instant,
    address: String,
) -> Result<ClientResult> {
    use otedama_stratum::client::{ClientConfig, ProtocolClient};
    use otedama_stratum::sv2::miner::{Sv2MinerConfig, Sv2MinerSession};
    use otedama_stratum::{MinerConfig, MinerEvent, MinerShare};

    let config = Sv2MinerConfig {
        miner: MinerConfig {
            user: format!("{address}.c{index}"),
            ..MinerConfig::default()
        },
        ..Sv2MinerConfig::default()
    };
    let mut client = ProtocolClient::<Sv2MinerSession>::connect(&url, ClientConfig::new(config))
        .await
        .context("connect")?;
    let job = loop {
        if let MinerEvent::NewJob(job) = client.next_event().await? {
            break job;
        }
    };
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    tokio::time::sleep(interval.mul_f64((index % 97) as f64 / 97.0)).await;
    let mut result = ClientResult {
        latencies_us: Vec::new(),
        accepted: 0,
        rejected: 0,
    };
    let mut nonce = 0u32;
    let mut ticker = tokio::time::interval(interval);
    while Instant::now() < until {
        ticker.tick().await;
        nonce += 1;
        let sent = Instant::now();
        let number = client.submit(MinerShare {
            job_id: job.notify.job_id.clone(),
            extranonce2: vec![0; job.extranonce2_size],
            ntime: job.notify.ntime,
            nonce,
            version_bits: None,
        });
        loop {
            if let MinerEvent::ShareResult {
                sequence, accepted, ..
            } = client.next_event().await?
            {
                if sequence == number {
                    result.latencies_us.push(sent.elapsed().as_micros() as u64);
                    if accepted {
                        result.accepted += 1;
                    } else {
                        result.rejected += 1;
                    }
                    break;
                }
            }
        }
    }
    client.close().await;
    Ok(result)
}

/// Runs the benchmark.
pub(crate) fn run(args: &PoolBenchArgs) -> Result<()> {
    if args.connections == 0 || args.connections > 50_000 {
        bail!("--connections must be between 1 and 50000");
    }
    if !(args.seconds > 0.0 && args.seconds <= 3600.0 && args.rate > 0.0 && args.rate <= 1000.0) {
        bail!("--seconds must be in (0, 3600] and --rate in (0, 1000]");
    }
    let (algo, convention) = match args.algo.as_str() {
        "sha256d" => (Algorithm::Sha256d, DifficultyConvention::Bitcoin),
        "scrypt" => (Algorithm::Scrypt, DifficultyConvention::Scrypt),
        other => bail!("bench-pool measures sha256d or scrypt, not {other}"),
    };
    // Both ends of every connection live in this process.
    crate::limits::check_connections("--connections (twice: both ends)", 2 * args.connections);
    let per_core = validation_rate(algo, convention, 2.0_f64.min(args.seconds))?;

    let dir = std::env::temp_dir().join(format!("otedama-bench-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::default();
    config.mining.algorithm = args.algo.clone();
    config.mining.threads = Some(0);
    config.pool.listen = "127.0.0.1:0".parse()?;
    config.pool.database = dir.join("bench.db").display().to_string();
    config.pool.max_connections = args.connections + 16;
    // Every share valid (so each one is hashed and committed), and no block ever found.
    config.pool.difficulty = Some(1e-12);
    config.pool.devnet_difficulty = Some(1e12);
    config.monitoring.stats_interval = crate::config::Span(Duration::from_secs(3600));
    let sv2 = args.protocol == "sv2";
    if sv2 {
        config.pool.sv2.listen = Some("127.0.0.1:0".parse()?);
        config.pool.sv2.authority_key_file = Some(dir.join("sv2-authority.key"));
    }
    config.validate("<bench>")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let pool = tokio::spawn(serve(
            config,
            ServeOptions {
                vardiff: false,
                ready: Some(ready_tx),
                stop: stop_rx,
            },
        ));
        let started = ready_rx.await.context("the pool did not start")?;
        let addr = started.addr;
        let sv2_url = started.sv2.clone();
        let address = otedama_core::bitcoin::bech32::segwit::encode(
            otedama_core::bitcoin::bech32::Hrp::parse_unchecked("bcrt"),
            otedama_core::bitcoin::bech32::segwit::VERSION_0,
            &[7u8; 20],
        )?;
        let until = Instant::now() + Duration::from_secs_f64(args.seconds) + Duration::from_secs(5);
        let mut tasks = Vec::with_capacity(args.connections);
        for i in 0..args.connections {
            tasks.push(match (&sv2_url, sv2) {
                (Some(url), true) => tokio::spawn(sv2_client(
                    url.clone(),
                    i,
                    args.rate,
                    until,
                    address.clone(),
                )),
                (None, true) => bail!("the pool serves no Stratum V2 port"),
                _ => tokio::spawn(client(addr.port(), i, args.rate, until, address.clone())),
            });
        }
        let mut latencies = Vec::new();
        let (mut accepted, mut rejected, mut failed) = (0u64, 0u64, 0usize);
        for t in tasks {
            match t.await {
                Ok(Ok(r)) => {
                    latencies.extend(r.latencies_us);
                    accepted += r.accepted;
                    rejected += r.rejected;
                }
                Ok(Err(e)) => {
                    if failed == 0 {
                        eprintln!("a simulated miner failed: {e:#}");
                    }
                    failed += 1;
                }
                Err(_) => failed += 1,
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), pool).await;
        anyhow::Ok((latencies, accepted, rejected, failed))
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let (mut latencies, accepted, rejected, failed) = outcome;
    latencies.sort_unstable();
    let window = args.seconds + 5.0;
    let report = json!({
        "algo": args.algo,
        "protocol": args.protocol,
        "validations_per_second_one_core": per_core,
        "connections": args.connections,
        "failed_connections": failed,
        "shares_accepted": accepted,
        "shares_rejected": rejected,
        "shares_per_second": (accepted + rejected) as f64 / window,
        "latency_ms_p50": percentile(&latencies, 0.50),
        "latency_ms_p99": percentile(&latencies, 0.99),
        "latency_ms_max": percentile(&latencies, 1.0),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "share validation ({}): {:.0} shares/s on one core",
            args.algo, per_core
        );
        println!(
            "{} {} connections ({failed} failed): {accepted} accepted, {rejected} rejected, {:.0} shares/s",
            args.connections,
            args.protocol,
            (accepted + rejected) as f64 / window
        );
        println!(
            "submit-to-answer latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (durable commit included)",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
    }
    Ok(())
}
