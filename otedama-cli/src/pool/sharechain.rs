//! `p2p:`: the pool's node on a sharechain, from the configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use otedama_core::{Difficulty, DifficultyConvention};
use otedama_hash::{Algorithm, PowAlgorithm};
use otedama_p2p::{ChainParams, NetConfig, NodeEvent, NodeKey};
use otedama_pool::sharechain::{SharechainConfig, SharechainNode};

use crate::config::Config;

/// The chain's rules from `p2p:`: the tier's, with the configured minimum difficulty and
/// share interval. `coin` names the main chain (`pool.chain`), `network` whether it is the
/// embedded devnet or a node's.
pub(crate) fn chain_params(
    config: &Config,
    algo: Algorithm,
    convention: DifficultyConvention,
    default_difficulty: f64,
    coin: &str,
    network: &str,
) -> Result<ChainParams> {
    let p2p = &config.p2p;
    let min = Difficulty::new(p2p.min_difficulty.unwrap_or(default_difficulty))
        .context("p2p.min_difficulty")?;
    let easiest = convention.target_for(min);
    let mut params = match p2p.tier.as_str() {
        "nano" => ChainParams::nano(coin, algo, network, easiest),
        _ => ChainParams::main(coin, algo, network, easiest),
    };
    if let Some(interval) = p2p.share_interval {
        params.share_interval_secs = interval;
        // The tiers' half-life: 60 share intervals.
        params.half_life_secs = interval * 60;
    }
    params.validate().context("p2p")?;
    Ok(params)
}

/// The node's key: read from `path`, or made and written there on the first run.
fn node_key(path: &Path) -> Result<NodeKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the p2p key {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{} does not hold 32 bytes of hex", path.display()))?;
        return NodeKey::from_private(bytes).context("p2p key");
    }
    let key = NodeKey::generate().context("cannot make a p2p key")?;
    write_private(path, &hex::encode(key.private_bytes()))
        .with_context(|| format!("cannot write the p2p key {}", path.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Starts the pool's sharechain node: its chain from its SQLite file, its key, its peers.
pub(crate) async fn start(
    config: &Config,
    params: ChainParams,
    database: &str,
    kernel: Arc<dyn PowAlgorithm>,
) -> Result<SharechainNode> {
    let p2p = &config.p2p;
    let dir = super::tls::data_dir(database);
    let store = p2p
        .data
        .as_ref()
        .map_or_else(|| dir.join("sharechain.sqlite"), PathBuf::from);
    let key_path = p2p.key.as_ref().map_or_else(
        || {
            store
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                .join("p2p-key.hex")
        },
        PathBuf::from,
    );
    let key = node_key(&key_path)?;
    let public = key.public();
    let net = NetConfig {
        listen: p2p.listen,
        peers: p2p.peers.clone(),
        trusted_only: p2p.trusted_only,
        pow_bits: p2p.handshake_pow_bits,
        ..NetConfig::default()
    };
    let name = params.name.clone();
    let node = SharechainNode::start(SharechainConfig {
        params,
        net,
        key,
        store: store.clone(),
        kernel,
    })
    .await
    .with_context(|| format!("cannot start the sharechain node ({})", store.display()))?;
    tracing::info!(
        "p2p: sharechain {name}, {} shares loaded from {}, node key {}, {}{}",
        node.loaded(),
        store.display(),
        hex::encode(&public[..8]),
        match node.service().local_addr() {
            Some(addr) => format!("listening on {addr}"),
            None => "outbound only".to_owned(),
        },
        if p2p.peers.is_empty() {
            ", no peers: starting the chain".to_owned()
        } else {
            format!(", peers {}", p2p.peers.join(" "))
        }
    );
    Ok(node)
}

/// Logs what the node reports.
pub(crate) fn print_node_event(event: &NodeEvent) {
    match event {
        NodeEvent::NewTip {
            height,
            reorg: Some((_, depth)),
            ..
        } => tracing::info!("p2p: sharechain reorganised {depth} deep, tip at height {height}"),
        NodeEvent::NewTip { height, id, .. } => {
            tracing::debug!("p2p: sharechain tip {id} at height {height}")
        }
        NodeEvent::Synced { height } => {
            tracing::info!("p2p: sharechain synced at height {height}; work is released")
        }
        NodeEvent::Misbehaved { peer, reason } => {
            tracing::warn!("p2p: peer {peer:?} misbehaved and is banned: {reason}")
        }
        NodeEvent::MainBlock { raw, .. } => {
            tracing::debug!(
                "p2p: a peer relayed a main-chain block of {} bytes",
                raw.len()
            )
        }
        other => tracing::debug!("p2p: {other:?}"),
    }
}

/// The status line's sharechain part.
pub(crate) async fn status(node: &SharechainNode) -> Option<String> {
    let (height, len, synced, rejected) = node
        .service()
        .inspect(|n| {
            (
                n.chain().tip().map(|t| t.share.info.height),
                n.chain().len(),
                n.is_synced(),
                n.rejected(),
            )
        })
        .await
        .ok()?;
    let peers = node.service().peers().await.ok()?.len();
    Some(format!(
        "sharechain height {}  shares held {len}  peers {peers}  {}  refused {rejected}",
        height.map_or("-".to_owned(), |h| h.to_string()),
        if synced { "synced" } else { "syncing" }
    ))
}
