//! `otedama-cli devnet --listen`: the embedded devnet as a node of its own, over the JSON-RPC
//! calls a pool makes of bitcoind or litecoind (`getblocktemplate` with long-poll,
//! `submitblock`, `getblockheader`), so several pools, in several processes, mine one chain.
//!
//! A devnet, not a node: any credentials are taken, blocks carry only their coinbase, and
//! the chain lives in memory until the process stops.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use clap::Args;
use otedama_core::bitcoin::consensus::encode::serialize_hex;
use otedama_core::{encode_hex, reverse_hash, BlockTemplate, Difficulty};
use otedama_hash::RandomXMode;
use otedama_pool::source::devnet::Devnet;
use otedama_pool::source::{BlockRejection, SubmitError};
use otedama_pool::{BlockSubmitter, ChainView, TemplateSource};
use serde_json::{json, Value};

/// Arguments of `otedama-cli devnet`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DevnetArgs {
    /// Where the JSON-RPC server listens.
    #[arg(long, default_value = "127.0.0.1:18443")]
    listen: SocketAddr,
    /// sha256d or scrypt.
    #[arg(long, default_value = "sha256d")]
    algo: String,
    /// The network difficulty, in the algorithm's pool convention; the pool's devnet default
    /// when absent.
    #[arg(long)]
    difficulty: Option<f64>,
    /// Also serve Stratum V2 template distribution here (a template provider for pools that
    /// build their own jobs); its authority key is made for the run and printed.
    #[arg(long)]
    sv2_tp_listen: Option<SocketAddr>,
    /// Stop after this many seconds (for scripts and tests).
    #[arg(long)]
    seconds: Option<f64>,
}

/// How long a long-poll is held before the unchanged template is answered.
const LONG_POLL: Duration = Duration::from_secs(30);

/// Runs the devnet's RPC server until SIGINT/SIGTERM (or `--seconds`).
pub(crate) fn run(args: &DevnetArgs) -> Result<()> {
    let settings = crate::pool::algo_settings(&args.algo)?;
    let difficulty = Difficulty::new(args.difficulty.unwrap_or(settings.devnet_difficulty))
        .context("--difficulty")?;
    let target = settings.convention.target_for(difficulty);
    let kernel = crate::kernel::build(settings.algo, None, None, RandomXMode::Light, 1, true)?;
    let devnet = Devnet::new(kernel, target);
    crate::serve::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        tracing::info!(
            "devnet: {} at difficulty {} serving JSON-RPC on http://{local}",
            settings.algo,
            difficulty.as_f64()
        );
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let provider = match args.sv2_tp_listen {
            // Stratum V2 pools solve SHA-256d headers.
            Some(_) if settings.algo != otedama_hash::Algorithm::Sha256d => {
                anyhow::bail!(
                    "--sv2-tp-listen serves sha256d templates, not {}",
                    settings.algo
                )
            }
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let authority = otedama_stratum::sv2::noise::AuthorityKeypair::generate()
                    .context("cannot make an authority key")?;
                tracing::info!(
                    "devnet: Stratum V2 template distribution on {} (authority key {})",
                    listener.local_addr()?,
                    authority.public().to_base58()
                );
                Some(tokio::spawn(crate::template_provider::serve(
                    devnet.clone(),
                    listener,
                    authority,
                    stopped,
                )))
            }
            None => None,
        };
        let app = Router::new()
            .route("/", post(rpc))
            .with_state(devnet.clone());
        let seconds = args.seconds;
        let stop = async move {
            match seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
                None => crate::signals::wait_for_shutdown().await,
            }
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("devnet server");
        // The template provider and the thread following the devnet stop either way.
        stopping.send_replace(true);
        if let Some(provider) = provider {
            provider.await.ok();
        }
        served?;
        tracing::info!("devnet stopped at height {}", devnet.height());
        Ok(())
    })
}

/// A JSON-RPC reply: the result, or a node-style error.
fn reply(id: &Value, outcome: Result<Value, (i64, String)>) -> Json<Value> {
    Json(match outcome {
        Ok(result) => json!({"result": result, "error": null, "id": id}),
        Err((code, message)) => {
            json!({"result": null, "error": {"code": code, "message": message}, "id": id})
        }
    })
}

async fn rpc(State(devnet): State<Devnet>, body: axum::body::Bytes) -> Json<Value> {
    // Any content type, as a node takes it.
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return reply(&Value::Null, Err((-32700, "Parse error".to_owned())));
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let params = request.get("params").cloned().unwrap_or(json!([]));
    // Every call may wait (a long-poll holds for seconds): off the runtime's threads.
    let outcome = tokio::task::spawn_blocking(move || call(devnet, &method, &params))
        .await
        .unwrap_or_else(|_| Err((-1, "the call failed".to_owned())));
    reply(&id, outcome)
}

fn param(params: &Value, i: usize) -> Option<&Value> {
    params.as_array().and_then(|p| p.get(i))
}

/// A display-order block hash parameter, as internal bytes.
fn hash_param(params: &Value, i: usize) -> Result<[u8; 32], (i64, String)> {
    param(params, i)
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|b| reverse_hash(&b))
        .ok_or((-8, "blockhash must be 64 hex characters".to_owned()))
}

fn template_json(t: &BlockTemplate) -> Value {
    json!({
        "version": t.version,
        "previousblockhash": encode_hex(&reverse_hash(&t.prev_hash)),
        "transactions": [],
        "coinbasevalue": t.coinbase_value,
        "longpollid": t.id,
        "target": "",
        "mintime": t.mintime,
        "curtime": t.curtime,
        "bits": format!("{:08x}", t.bits.to_consensus()),
        "height": t.height,
    })
}

fn call(mut devnet: Devnet, method: &str, params: &Value) -> Result<Value, (i64, String)> {
    let source = |e: otedama_pool::SourceError| (-1, e.to_string());
    match method {
        "getblocktemplate" => {
            let asked = param(params, 0)
                .and_then(|r| r.get("longpollid"))
                .and_then(Value::as_str);
            let template = match asked {
                Some(id) => match devnet.wait_for_change(id, LONG_POLL).map_err(source)? {
                    Some(t) => t,
                    None => devnet.template().map_err(source)?,
                },
                None => devnet.template().map_err(source)?,
            };
            Ok(template_json(&template))
        }
        "submitblock" => {
            let block = param(params, 0)
                .and_then(Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .ok_or((-22, "block decode failed".to_owned()))?;
            match devnet.submit_block(&block) {
                Ok(()) => Ok(Value::Null),
                Err(SubmitError::Rejected(BlockRejection::Invalid(reason))) => {
                    Ok(Value::String(reason))
                }
                Err(SubmitError::Rejected(other)) => Ok(Value::String(other.to_string())),
                Err(e) => Err((-1, e.to_string())),
            }
        }
        "getblockheader" => {
            let hash = hash_param(params, 0)?;
            match devnet.block_confirmations(&hash).map_err(source)? {
                Some(confirmations) => Ok(json!({
                    "hash": encode_hex(&reverse_hash(&hash)),
                    "confirmations": confirmations,
                    "height": devnet.coinbase(&hash).map(|(h, _)| h),
                })),
                None => Err((-5, "Block not found".to_owned())),
            }
        }
        "getblock" => {
            let hash = hash_param(params, 0)?;
            let (height, coinbase) = devnet
                .coinbase(&hash)
                .ok_or((-5, "Block not found".to_owned()))?;
            Ok(json!({
                "hash": encode_hex(&reverse_hash(&hash)),
                "height": height,
                "tx": [{
                    "txid": coinbase.compute_txid().to_string(),
                    "hex": serialize_hex(&coinbase),
                }],
            }))
        }
        "getblockcount" => Ok(json!(devnet.height())),
        "getbestblockhash" => Ok(json!(devnet
            .accepted()
            .last()
            .map(|h| encode_hex(&reverse_hash(h))))),
        "getblockhash" => {
            let height = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or((-8, "height must be a number".to_owned()))?;
            let accepted = devnet.accepted();
            height
                .checked_sub(1)
                .and_then(|i| accepted.get(i as usize))
                .map(|h| json!(encode_hex(&reverse_hash(h))))
                .ok_or((-8, "Block height out of range".to_owned()))
        }
        other => Err((-32601, format!("Method not found: {other}"))),
    }
}
