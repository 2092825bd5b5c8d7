//! A node keeps its sharechain in SQLite: restarted, it loads its own chain and fetches only
//! the shares it missed.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use otedama_p2p::{
    ChainParams, MainWork, NetConfig, Node, NodeKey, P2pService, PeerLimits, PowPolicy, ShareStore,
    Sharechain,
};

mod support;

use support::now;

fn params() -> ChainParams {
    support::params("restart", 10)
}

fn main_work() -> MainWork {
    support::main_work(now())
}

async fn mine(service: &P2pService, tag: u64) {
    let t = service
        .inspect(|n| n.chain().template(&[0x51], main_work(), now(), 8))
        .await
        .unwrap()
        .unwrap();
    let en = tag.to_le_bytes();
    let header = t.header(&en).unwrap();
    service
        .submit(t.finish(header, &en))
        .await
        .unwrap()
        .unwrap();
}

async fn tip(s: &P2pService) -> Option<otedama_p2p::ShareId> {
    s.inspect(|n| n.chain().tip().map(|t| t.share.id()))
        .await
        .unwrap()
}

async fn converge(a: &P2pService, b: &P2pService) {
    for _ in 0..200 {
        if tip(a).await.is_some()
            && tip(a).await == tip(b).await
            && b.inspect(|n| n.is_synced()).await.unwrap()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = b
        .inspect(|n| format!("{n:?} len {}", n.chain().len()))
        .await
        .unwrap();
    panic!("did not converge: a {:?}, b {state}", tip(a).await);
}

async fn start_b(path: &std::path::Path, a: &str) -> (P2pService, usize) {
    let p = params();
    let store = ShareStore::open(path, &p.consensus_id()).unwrap();
    let mut chain = Sharechain::new(p);
    let (loaded, skipped) = store.load_into(&mut chain, now()).unwrap();
    assert_eq!(skipped, 0);
    let mut node = Node::new(chain, PowPolicy::Simulated, PeerLimits::default());
    node.persist_to(Box::new(store));
    let config = NetConfig {
        peers: vec![a.to_owned()],
        pow_bits: 8,
        ..NetConfig::default()
    };
    (
        P2pService::start(node, NodeKey::generate().unwrap(), config)
            .await
            .unwrap(),
        loaded,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_fetches_only_what_it_missed() {
    let dir = std::env::temp_dir().join(format!("otedama-p2p-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shares.sqlite");
    let _ = std::fs::remove_file(&path);

    let mut node = Node::new(
        Sharechain::new(params()),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    node.start_alone();
    let config = NetConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        pow_bits: 8,
        ..NetConfig::default()
    };
    let a = P2pService::start(node, NodeKey::generate().unwrap(), config)
        .await
        .unwrap();
    let a_addr = a.local_addr().unwrap().to_string();
    for i in 0..40 {
        mine(&a, i).await;
    }

    let (b, loaded) = start_b(&path, &a_addr).await;
    assert_eq!(loaded, 0);
    converge(&a, &b).await;
    let held = b.inspect(|n| n.chain().len()).await.unwrap();
    b.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;

    for i in 100..105 {
        mine(&a, i).await;
    }
    let (b, loaded) = start_b(&path, &a_addr).await;
    assert_eq!(loaded, held, "the restarted node loads its whole chain");
    converge(&a, &b).await;
    let fetched = b.inspect(|n| n.received()).await.unwrap();
    assert_eq!(fetched, 5, "only the five missed shares travel");

    // The sync happened before anyone asked for events: only the receiver kept from the
    // start saw it, once.
    let mut late = b.events();
    assert!(
        late.try_recv().is_err(),
        "a late receiver sees no past events"
    );
    let mut first = b.events_since_start().expect("not taken yet");
    let mut synced = 0;
    while let Ok(event) = first.try_recv() {
        if matches!(event, otedama_p2p::NodeEvent::Synced { .. }) {
            synced += 1;
        }
    }
    assert_eq!(synced, 1, "the restarted node's sync is reported once");
    assert!(b.events_since_start().is_none(), "handed out once");
    a.shutdown();
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
