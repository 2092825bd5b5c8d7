//! Measures how long a fresh node takes to sync a full horizon (two windows of 2,160 shares
//! and the uncle depth) from one peer over 127.0.0.1, handshake and full validation included.
//!
//! ```text
//! cargo run --release -p otedama-p2p --features tokio --example sync_window
//! ```

use std::time::{Duration, Instant};

use otedama_core::{BlockHeader, MerkleBranch, Target, U256};
use otedama_hash::Algorithm;
use otedama_p2p::{
    ChainParams, MainWork, NetConfig, Node, NodeKey, P2pService, PeerLimits, PowPolicy, Sharechain,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut params = ChainParams::main("sync", Algorithm::Sha256d, "devnet", Target::MAX);
    params.min_output = 0;
    let horizon = params.horizon();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let start = now - 10 * (horizon + 100);
    // Main-chain blocks worth 1,080 shares: the window spans its cap of 2,160.
    let main_target = Target::from_u256(
        U256::MAX
            .div_rem_u64(1_080)
            .map(|(q, _)| q)
            .unwrap_or(U256::MAX),
    );
    let mut chain = Sharechain::new(params.clone());
    let built = Instant::now();
    for i in 0..horizon + 100 {
        let t = start + 10 * i;
        let main = MainWork {
            header: BlockHeader {
                version: 0x2000_0000,
                prev_blockhash: [1; 32],
                merkle_root: [0; 32],
                time: t as u32,
                bits: main_target.to_compact(),
                nonce: 0,
            },
            height: 100,
            reward: 312_500_000,
            witness_root: None,
            branch: MerkleBranch::from_hashes(vec![[7; 32]; 11]),
        };
        let payout = [0x00, 0x14, (i % 200) as u8];
        let template = chain.template(&payout, main, t, 8)?;
        let en = i.to_le_bytes();
        let share = template.finish(template.header(&en)?, &en);
        chain.add(share, t)?;
    }
    println!(
        "built {} shares in {:.1} s",
        chain.len(),
        built.elapsed().as_secs_f64()
    );
    let tip = chain.tip().map(|t| t.share.id());
    let mut a = Node::new(chain, PowPolicy::Simulated, PeerLimits::default());
    a.start_alone();
    let a = P2pService::start(
        a,
        NodeKey::generate()?,
        NetConfig {
            listen: Some("127.0.0.1:0".parse()?),
            ..NetConfig::default()
        },
    )
    .await?;
    let addr = a.local_addr().ok_or("no address")?.to_string();

    let synced_at = Instant::now();
    let b = Node::new(
        Sharechain::new(params),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    let b = P2pService::start(
        b,
        NodeKey::generate()?,
        NetConfig {
            peers: vec![addr],
            ..NetConfig::default()
        },
    )
    .await?;
    loop {
        let (t, synced, len) = b
            .inspect(|n| {
                (
                    n.chain().tip().map(|t| t.share.id()),
                    n.is_synced(),
                    n.chain().len(),
                )
            })
            .await?;
        if synced && t == tip {
            println!(
                "synced {len} shares in {:.2} s (handshake with a 16-bit proof of work included)",
                synced_at.elapsed().as_secs_f64()
            );
            break;
        }
        if synced_at.elapsed() > Duration::from_secs(120) {
            println!("not synced after 120 s: {len} shares");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown();
    b.shutdown();
    Ok(())
}
