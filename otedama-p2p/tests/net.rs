//! Nodes on real sockets: they handshake, sync, relay through an outbound-only node, refuse
//! another chain, and ban a peer that sends an invalid share.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use otedama_p2p::{
    frame, ChainParams, FrameReader, Handshake, MainWork, Message, NetConfig, Node, NodeKey,
    P2pService, PeerLimits, PowPolicy, Role, Sharechain, Step,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::now;

fn params(name: &str) -> ChainParams {
    support::params(name, 20)
}

fn main_work() -> MainWork {
    support::main_work(now())
}

async fn start(name: &str, listen: bool, peers: Vec<String>, alone: bool) -> P2pService {
    start_with(name, listen, peers, alone, NetConfig::default()).await
}

async fn start_with(
    name: &str,
    listen: bool,
    peers: Vec<String>,
    alone: bool,
    config: NetConfig,
) -> P2pService {
    let mut node = Node::new(
        Sharechain::new(params(name)),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    if alone {
        node.start_alone();
    }
    let config = NetConfig {
        listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
        peers,
        pow_bits: 12,
        ..config
    };
    P2pService::start(node, NodeKey::generate().unwrap(), config)
        .await
        .unwrap()
}

async fn mine(service: &P2pService, payout: u8, tag: u64) -> otedama_p2p::Share {
    let template = service
        .inspect(move |n| n.chain().template(&[0x51, payout], main_work(), now(), 8))
        .await
        .unwrap()
        .unwrap();
    let en = tag.to_le_bytes();
    let header = template.header(&en).unwrap();
    let share = template.finish(header, &en);
    service.submit(share.clone()).await.unwrap().unwrap();
    share
}

async fn tip(service: &P2pService) -> Option<otedama_p2p::ShareId> {
    service
        .inspect(|n| n.chain().tip().map(|t| t.share.id()))
        .await
        .unwrap()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sync_relay_and_ban_over_tcp() {
    let a = start("net", true, vec![], true).await;
    let a_addr = a.local_addr().unwrap().to_string();
    let mut last = None;
    for i in 0..30 {
        last = Some(mine(&a, (i % 3) as u8, i).await.id());
    }
    let b = start("net", true, vec![a_addr.clone()], false).await;
    let b_addr = b.local_addr().unwrap().to_string();
    // Outbound only, and dialling no address it learns: it reaches the chain through b.
    let solitary = NetConfig {
        max_discovered: 0,
        ..NetConfig::default()
    };
    let c = start_with("net", false, vec![b_addr], false, solitary).await;
    // Synced: the tip reached, and no request left waiting (a request that crossed a relay
    // of the same share is settled by its answer or its timeout).
    wait_for("b and c to sync", async || {
        tip(&b).await == last
            && tip(&c).await == last
            && c.inspect(|n| n.is_synced()).await.unwrap()
    })
    .await;

    let from_c = mine(&c, 9, 1_000).await.id();
    wait_for("c's share to reach a through b", async || {
        tip(&a).await == Some(from_c)
    })
    .await;

    // Another chain's node dials a but never completes the handshake.
    let d = start("other", false, vec![a_addr.clone()], false).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(d.peers().await.unwrap().is_empty());
    assert_eq!(tip(&d).await, None);
    assert_eq!(
        a.peers().await.unwrap().len(),
        1,
        "only b is connected to a"
    );

    // A peer of the right chain sends a share whose coinbase pays itself: banned.
    let mut events = a.events();
    let stream = TcpStream::connect(&a_addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let key = NodeKey::generate().unwrap();
    let mut hs = Handshake::new(Role::Initiator, &params("net").consensus_id(), &key, 12).unwrap();
    write
        .write_all(&frame(&hs.start().unwrap().unwrap()))
        .await
        .unwrap();
    let mut reader = FrameReader::default();
    let mut buf = vec![0u8; 65_536];
    let payload = loop {
        if let Some(f) = reader.next_frame() {
            break f;
        }
        let n = read.read(&mut buf).await.unwrap();
        assert!(n > 0, "a closed the handshake");
        reader.push(&buf[..n]);
    };
    let (_, Step::Done(Some(last_frame), mut channel)) = hs.on_frame(&payload).unwrap() else {
        panic!("handshake did not finish");
    };
    write.write_all(&frame(&last_frame)).await.unwrap();
    let mut bad = mine(&b, 1, 2_000).await;
    bad.bitcoin_mut().expect("bitcoin").header.merkle_root[0] ^= 1;
    for f in channel.seal(&Message::Announce(Box::new(bad))).unwrap() {
        write.write_all(&frame(&f)).await.unwrap();
    }
    let banned = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(otedama_p2p::NodeEvent::Misbehaved { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(banned.is_ok(), "the invalid share was not reported");
    // The connection is closed and the address refused from now on.
    let mut closed = false;
    for _ in 0..50 {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed);
    let mut again = TcpStream::connect(&a_addr).await.unwrap();
    let mut one = [0u8; 1];
    let refused = tokio::time::timeout(Duration::from_secs(5), again.read(&mut one)).await;
    assert!(
        matches!(refused, Ok(Ok(0)) | Ok(Err(_))),
        "a banned address was served"
    );
    for s in [a, b, c, d] {
        s.shutdown();
    }
}

async fn keys(service: &P2pService) -> Vec<[u8; 32]> {
    // Each node once: two connections to one node are one while its twin closes.
    service
        .peers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_meet_through_peer_lists_but_a_federation_dials_only_its_own() {
    let a = start("meet", true, vec![], true).await;
    let a_addr = a.local_addr().unwrap().to_string();
    let b = start("meet", true, vec![a_addr.clone()], false).await;
    let c = start("meet", true, vec![a_addr.clone()], false).await;
    let federated = NetConfig {
        trusted_only: true,
        ..NetConfig::default()
    };
    let d = start_with("meet", true, vec![a_addr.clone()], false, federated).await;
    // b and c know only a; a tells each where the other listens.
    for _ in 0..200 {
        if keys(&b).await.len() >= 3 && keys(&c).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        keys(&b).await.len() >= 3 && keys(&c).await.len() >= 3,
        "b and c did not meet: a {:?} b {:?} c {:?} d {:?}",
        a.peers().await.unwrap(),
        b.peers().await.unwrap(),
        c.peers().await.unwrap(),
        d.peers().await.unwrap()
    );
    let (b_addr, c_addr) = (b.local_addr().unwrap(), c.local_addr().unwrap());
    let dialled =
        |peers: Vec<otedama_p2p::PeerInfo>, to| peers.iter().any(|p| !p.inbound && p.addr == to);
    assert!(
        dialled(b.peers().await.unwrap(), c_addr) || dialled(c.peers().await.unwrap(), b_addr),
        "b and c are connected only through what they dialled themselves"
    );
    // A federation's node accepts the others (all on 127.0.0.1, a's address) but dials only
    // its configured peer.
    let d_peers = d.peers().await.unwrap();
    assert!(
        d_peers.iter().filter(|p| !p.inbound).count() == 1,
        "a federated node dialled a learnt address: {d_peers:?}"
    );
    for s in [a, b, c, d] {
        s.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_found_block_reaches_every_node_once() {
    let a = start("relay", true, vec![], true).await;
    let a_addr = a.local_addr().unwrap().to_string();
    let b = start("relay", true, vec![a_addr.clone()], false).await;
    let b_addr = b.local_addr().unwrap().to_string();
    let solitary = NetConfig {
        max_discovered: 0,
        ..NetConfig::default()
    };
    let c = start_with("relay", false, vec![b_addr], false, solitary).await;
    wait_for("a, b and c to connect", async || {
        a.peers().await.unwrap().len() == 1 && c.peers().await.unwrap().len() == 1
    })
    .await;
    let (mut at_b, mut at_c, mut at_a) = (b.events(), c.events(), a.events());
    // A found block is a share's header with the block's transactions: the share first
    // reaches everyone here, then a relays the block.
    let share = mine(&a, 1, 7).await;
    wait_for("the share to reach c", async || {
        tip(&c).await == Some(share.id())
    })
    .await;
    let mut block = share.header().expect("header").to_bytes().to_vec();
    block.extend_from_slice(&[1, 0xaa, 0xbb]);
    a.relay_block(block.clone()).await.unwrap();
    for (name, events) in [("b", &mut at_b), ("c", &mut at_c)] {
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(otedama_p2p::NodeEvent::MainBlock { raw, .. }) = events.recv().await {
                    return raw;
                }
            }
        })
        .await;
        assert_eq!(
            got.ok(),
            Some(block.clone()),
            "{name} did not get the block"
        );
    }
    // a sent it; it does not come back to a as news.
    let echoed = tokio::time::timeout(Duration::from_millis(1_500), async {
        loop {
            if let Ok(otedama_p2p::NodeEvent::MainBlock { .. }) = at_a.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(echoed.is_err(), "the block came back to its finder");
    for s in [a, b, c] {
        s.shutdown();
    }
}
