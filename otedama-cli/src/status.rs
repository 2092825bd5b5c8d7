//! `otedama-cli status`: a running pool's or miner's state, read from its API.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_core::Hashrate;
use serde_json::Value;

/// Arguments of `otedama-cli status`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// The API's base URL (with --ready, the health server's).
    #[arg(long, env = "OTEDAMA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Print the API's answers as one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// Only ask `/health/ready`: exit 0 when the pool is ready, else print why and fail (a
    /// container's health check).
    #[arg(long)]
    ready: bool,
}

fn get(agent: &ureq::Agent, url: &str) -> Result<Value> {
    let mut response = agent
        .get(url)
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let json: Value = serde_json::from_str(&body)
        .with_context(|| format!("{url} did not answer JSON (is it an otedama API?)"))?;
    if status != 200 {
        let reason = match (&json["error"], &json["problems"]) {
            (Value::String(e), _) => e.clone(),
            (_, Value::Array(problems)) => problems
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
            _ => "no reason given".to_owned(),
        };
        bail!("{url}: {status}: {reason}");
    }
    Ok(json)
}

fn rate(v: &Value) -> String {
    let h = v.as_f64().unwrap_or(0.0);
    format!(
        "{:.2}",
        Hashrate::from_hashes_and_secs(h, 1.0).unwrap_or(Hashrate::ZERO)
    )
}

fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Prints the state of the pool or miner at `args.url`.
pub(crate) fn run(args: &StatusArgs) -> Result<()> {
    let base = args.url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url {base:?}: give the API's http:// URL, e.g. http://127.0.0.1:8080");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    if args.ready {
        let url = format!("{base}/health/ready");
        let json = get(&agent, &url).map_err(|e| {
            // A 503 carries the reasons; say them rather than the status alone.
            anyhow::anyhow!("not ready: {e:#}")
        })?;
        println!("ready: {json}");
        return Ok(());
    }
    let status = get(&agent, &format!("{base}/api/status"))?;
    let stats = get(&agent, &format!("{base}/api/stats"))?;
    let workers = if status["role"] == "pool" {
        Some(get(&agent, &format!("{base}/api/workers"))?)
    } else {
        None
    };
    if args.json {
        let all = serde_json::json!({"status": status, "stats": stats, "workers": workers});
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "{} {} ({}), version {}, up {}",
        status["role"].as_str().unwrap_or("?"),
        base,
        status["state"].as_str().unwrap_or("?"),
        status["version"].as_str().unwrap_or("?"),
        duration(status["uptime_seconds"].as_f64().unwrap_or(0.0))
    );
    for problem in status["problems"].as_array().into_iter().flatten() {
        println!("  problem: {}", problem.as_str().unwrap_or("?"));
    }
    for algo in status["algorithms"].as_array().into_iter().flatten() {
        let ports: Vec<&str> = algo["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if ports.is_empty() {
            println!(
                "  {} on {}",
                algo["algorithm"].as_str().unwrap_or("?"),
                algo["pool"].as_str().unwrap_or("?")
            );
            continue;
        }
        println!(
            "  {} on {}: node {} ({}), height {}, job {} old, database {}",
            algo["algorithm"].as_str().unwrap_or("?"),
            ports.join(", "),
            algo["node"].as_str().unwrap_or("?"),
            if algo["node_reachable"].as_bool() == Some(true) {
                "reachable"
            } else {
                "NOT REACHABLE"
            },
            algo["height"]
                .as_u64()
                .map_or("-".to_owned(), |h| h.to_string()),
            algo["job_age_seconds"]
                .as_f64()
                .map_or("-".to_owned(), duration),
            if algo["database_ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILING"
            },
        );
    }
    let h = &stats["hashrate"];
    println!(
        "  hashrate {} (1m)  {} (5m)  {} (1h)",
        rate(&h["1m"]),
        rate(&h["5m"]),
        rate(&h["1h"])
    );
    let shares = &stats["shares"];
    let by = &shares["rejected_by_reason"];
    println!(
        "  shares accepted {}  rejected {} (stale {}, low difficulty {}, invalid {}, pool error {})",
        shares["accepted"],
        shares["rejected"],
        by["stale"].as_u64().unwrap_or(0),
        by["low_difficulty"].as_u64().unwrap_or(0),
        by["invalid"].as_u64().unwrap_or(0),
        by["pool_error"].as_u64().unwrap_or(0),
    );
    if status["role"] == "pool" {
        println!(
            "  blocks found {}  effort {}  workers {}  connections {}",
            stats["blocks"]["found"],
            stats["effort_percent"]
                .as_f64()
                .map_or("-".to_owned(), |e| format!("{e:.1} %")),
            stats["workers"],
            stats["connections"]["live"]
        );
    }
    for w in workers
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "    worker {}  {} (1m)  {} (5m)  accepted {} rejected {}  difficulty {}",
            w["name"].as_str().unwrap_or("?"),
            rate(&w["hashrate"]["1m"]),
            rate(&w["hashrate"]["5m"]),
            w["accepted"],
            w["rejected"],
            w["difficulty"]
        );
    }
    Ok(())
}
