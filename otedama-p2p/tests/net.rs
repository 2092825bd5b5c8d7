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
        ..NetConfig::default()
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
    // Outbound only: it reaches the chain through b.
    let c = start("net", false, vec![b_addr], false).await;
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
    bad.header.merkle_root[0] ^= 1;
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
