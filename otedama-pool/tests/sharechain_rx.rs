//! Two RandomX pools on one devnet, each with its own sharechain node, peered over TCP, and a
//! Monero-dialect miner on each over a real socket: both nodes agree on one chain of RandomX
//! shares, every block either pool finds is taken by the devnet with a coinbase paying the
//! window exactly as the other node rebuilds it, and both miners are paid in it.

#![cfg(all(feature = "devnet", feature = "p2p", feature = "sqlite"))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::rx::{RxBlob, RxCoinbase, RxPayees};
use otedama_core::{monero_target, sha256d};
use otedama_hash::{Algorithm, PowAlgorithm, RandomX, RandomXMode};
use otedama_p2p::{ChainParams, MainProof, NetConfig, NodeKey, Share};
use otedama_pool::service::{PoolService, RxServiceConfig};
use otedama_pool::sharechain::{SharechainConfig, SharechainNode};
use otedama_pool::source::devnet_rx::{RxDevnet, DEVNET_RX_SEED, RX_DEVNET_REWARD};
use otedama_pool::store::{ShareLog, SqliteStore};
use otedama_pool::{Engine, RxConfig, RxKeys, RX_ALGO};
use otedama_stratum::client::{ClientConfig, MoneroClient};
use otedama_stratum::server::MoneroServerConfig;
use otedama_stratum::{ExtranonceAllocator, MoneroMinerConfig, MoneroMinerEvent, MoneroMinerShare};

/// The two miners' wallets: xmrig's in the captured session, and one made of fixed keys.
const ALICE: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

/// The devnet's difficulty: a block every dozen hashes or so, a few a minute in light mode.
const NETWORK_DIFFICULTY: u64 = 12;

fn bob() -> String {
    otedama_pool::xmr_address::standard_address(&[3; 32], &[4; 32])
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otedama-sc-rx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Shares at Monero difficulty 2 at the easiest, aiming at one every two seconds.
fn params() -> ChainParams {
    ChainParams {
        share_interval_secs: 2,
        half_life_secs: 120,
        window_max_shares: 200,
        ..ChainParams::main("devnet", Algorithm::RandomX, "devnet", monero_target(2))
    }
}

struct Pool {
    node: SharechainNode,
    service: PoolService,
    _writer: std::thread::JoinHandle<()>,
}

async fn pool(
    name: &str,
    dir: &std::path::Path,
    devnet: &Arc<RxDevnet>,
    kernel: &Arc<RandomX>,
    peers: Vec<String>,
    payout: &str,
) -> Pool {
    let node = SharechainNode::start(SharechainConfig {
        params: params(),
        net: NetConfig {
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            peers,
            pow_bits: 4,
            ..NetConfig::default()
        },
        key: NodeKey::generate().expect("key"),
        store: dir.join(format!("{name}-sharechain.sqlite")),
        kernel: kernel.clone(),
    })
    .await
    .expect("the node starts");
    let (log, writer) = ShareLog::start(Box::new(
        SqliteStore::open(&dir.join(format!("{name}-pool.db"))).expect("db"),
    ))
    .expect("log");
    let service = PoolService::start_rx_sharechain(
        RxServiceConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            server: MoneroServerConfig::default(),
            more: Vec::new(),
            allocator: ExtranonceAllocator::new(&[], 4).expect("allocator"),
            engine: Engine::randomx(RxConfig {
                algorithm: "randomx".into(),
                algo: RX_ALGO.into(),
                share_difficulty: 2,
                vardiff: None,
            }),
            keys: Arc::new(RxKeys::new(
                DEVNET_RX_SEED,
                kernel.clone(),
                Box::new(|seed| {
                    Ok(Arc::new(RandomX::new(seed, RandomXMode::Light, 1)?)
                        as Arc<dyn PowAlgorithm>)
                }),
            )),
            payout: payout.to_owned(),
        },
        devnet.clone(),
        log,
        Arc::new(|_| {}),
        node.rx_side_chain(),
    )
    .await
    .expect("the pool listens");
    node.follow(service.work_trigger(), |_| {});
    Pool {
        node,
        service,
        _writer: writer,
    }
}

/// Mines on `url` as `login` until `until`, hashing in light mode on a blocking thread;
/// returns the shares the pool accepted.
async fn mine(url: String, login: &str, kernel: Arc<RandomX>, until: Instant) -> u64 {
    let mut client = MoneroClient::connect(
        &url,
        ClientConfig::new(MoneroMinerConfig {
            login: login.to_owned(),
            ..MoneroMinerConfig::default()
        }),
    )
    .await
    .expect("the miner connects");
    let (mut job, mut nonce, mut accepted) = (None, 0u32, 0u64);
    while Instant::now() < until {
        // Take what the pool sent, then hash a few nonces.
        while let Ok(event) =
            tokio::time::timeout(Duration::from_millis(5), client.next_event()).await
        {
            match event.expect("the session runs") {
                MoneroMinerEvent::NewJob { job: j, .. } => {
                    job = Some(j);
                    nonce = 0;
                }
                MoneroMinerEvent::ShareResult { accepted: true, .. } => accepted += 1,
                // A block the other pool found retires the job a share was on.
                MoneroMinerEvent::ShareResult { error, .. } => {
                    let stale = error.as_ref().is_some_and(|e| e.message.contains("Stale"));
                    assert!(stale, "refused: {error:?}");
                }
                _ => {}
            }
        }
        let Some(j) = job.clone() else { continue };
        let (k, start) = (kernel.clone(), nonce);
        let found = tokio::task::spawn_blocking(move || {
            (start..start + 8).find_map(|n| {
                let hash = k.hash(&j.blob_with_nonce(n)?).ok()?.hash;
                j.target
                    .is_met_by(&hash)
                    .then_some((j.job_id.clone(), n, hash))
            })
        })
        .await
        .expect("hashing");
        nonce = match &found {
            Some((_, n, _)) => n + 1,
            None => start + 8,
        };
        if let Some((job_id, nonce, result)) = found {
            client.submit(MoneroMinerShare {
                job_id,
                nonce,
                result,
                algo: Some(RX_ALGO.into()),
            });
        }
    }
    accepted
}

/// The share of `shares` whose blob is the block `id`.
fn share_of<'a>(shares: &'a [Share], id: &[u8; 32]) -> Option<&'a Share> {
    shares.iter().find(|s| match &s.main {
        MainProof::RandomX(p) => otedama_core::monero::block_id(&p.blob) == *id,
        MainProof::Bitcoin(_) => false,
    })
}

#[test]
fn two_randomx_pools_share_one_chain_and_every_block_pays_the_window() {
    let dir = temp_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let devnet = Arc::new(RxDevnet::new(NETWORK_DIFFICULTY).expect("devnet"));
    let kernel = Arc::new(RandomX::new(&DEVNET_RX_SEED, RandomXMode::Light, 1).expect("randomx"));
    let bob = bob();
    let (a, b) = runtime.block_on(async {
        let a = pool("a", &dir, &devnet, &kernel, Vec::new(), ALICE).await;
        let at = a
            .node
            .service()
            .local_addr()
            .expect("a listens")
            .to_string();
        let b = pool("b", &dir, &devnet, &kernel, vec![at], &bob).await;
        (a, b)
    });

    // Each pool's miner until both pools' shares are in the chain and blocks were found.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut rounds = 0;
    let (shares, blocks) = loop {
        let until = Instant::now() + Duration::from_secs(20);
        let (sa, sb) = runtime.block_on(async {
            tokio::join!(
                mine(
                    format!("stratum+tcp://{}", a.service.local_addr()),
                    ALICE,
                    kernel.clone(),
                    until
                ),
                mine(
                    format!("stratum+tcp://{}", b.service.local_addr()),
                    &bob,
                    kernel.clone(),
                    until
                ),
            )
        });
        rounds += 1;
        assert!(sa > 0 && sb > 0, "both pools take shares ({sa}, {sb})");
        let shares: Vec<Share> = runtime
            .block_on(
                b.node
                    .service()
                    .inspect(|n| n.chain().iter().map(|e| e.share.clone()).collect()),
            )
            .expect("b answers");
        let payouts: std::collections::BTreeSet<Vec<u8>> =
            shares.iter().map(|s| s.info.payout.clone()).collect();
        let blocks = devnet.accepted();
        let ours = blocks
            .iter()
            .filter(|id| share_of(&shares, id).is_some())
            .count();
        if payouts.len() == 2 && ours >= 2 {
            break (shares, blocks);
        }
        assert!(
            Instant::now() < deadline,
            "after {rounds} rounds: {} shares, payouts {}, {ours} blocks on the chain",
            shares.len(),
            payouts.len()
        );
    };

    // The two nodes hold the same tip once gossip settles.
    let tip = |p: &Pool| {
        runtime
            .block_on(
                p.node
                    .service()
                    .inspect(|n| n.chain().tip().map(|t| t.share.id())),
            )
            .expect("answers")
    };
    let settle = Instant::now() + Duration::from_secs(20);
    while tip(&a) != tip(&b) {
        assert!(Instant::now() < settle, "the nodes never agreed on a tip");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every block that is a share: the devnet took it with a coinbase paying the window as
    // node A (which did not necessarily find it) rebuilds it, and both miners are paid.
    let mut checked = 0;
    let mut paid = std::collections::BTreeSet::new();
    for id in &blocks {
        let Some(share) = share_of(&shares, id) else {
            continue;
        };
        let MainProof::RandomX(proof) = &share.main else {
            unreachable!()
        };
        let (info, target) = (share.info.clone(), share.main_target().expect("target"));
        let outputs = runtime
            .block_on(
                a.node
                    .service()
                    .inspect(move |n| n.chain().outputs_for(&info, &target)),
            )
            .expect("a answers")
            .expect("a holds the window");
        let coinbase = otedama_p2p::rx_coinbase(
            &share.info,
            &params().consensus_id(),
            &outputs,
            proof.reserved,
            proof.difficulty,
        );
        let blob = RxBlob::parse(&proof.blob).expect("blob");
        assert_eq!(blob.tree_root, sha256d(&coinbase.to_bytes()));
        assert_eq!(proof.difficulty, NETWORK_DIFFICULTY);
        let RxPayees::Outputs { outputs, .. } = &coinbase.payees else {
            unreachable!()
        };
        assert_eq!(coinbase.payees.total(), Some(RX_DEVNET_REWARD));
        paid.extend(outputs.iter().map(|(p, _)| p.clone()));
        assert_eq!(
            RxCoinbase::parse(&coinbase.to_bytes()).expect("parses"),
            coinbase
        );
        checked += 1;
    }
    assert!(checked >= 2, "{checked} blocks checked");
    let last_paid: Vec<&str> = paid
        .iter()
        .filter_map(|p| std::str::from_utf8(p).ok())
        .collect();
    assert!(
        last_paid.contains(&ALICE) && last_paid.contains(&bob.as_str()),
        "{last_paid:?}"
    );

    a.node.shutdown();
    b.node.shutdown();
    drop((a, b));
    runtime.shutdown_timeout(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}
