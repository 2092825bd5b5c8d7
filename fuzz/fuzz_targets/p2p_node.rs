//! The gossip state machine fed arbitrary events from four peers: connections (with and
//! without their addresses), disconnections, the clock, and any message the codec decodes.
//!
//! Checks:
//! - nothing panics, whatever peers send and in whatever order;
//! - what a node remembers from peers stays bounded: its address book (1,024), the addresses
//!   it would dial, and the shares it holds;
//! - every message it sends encodes within the transport's cap and decodes back to itself;
//! - it never reports a main-chain block that is not a share of its chain, and never tells a
//!   peer more than 32 addresses.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use otedama_core::Target;
use otedama_hash::Algorithm;
use otedama_p2p::{
    ChainParams, Message, Node, NodeEvent, PeerLimits, PowPolicy, ShareId, Sharechain, MAX_MESSAGE,
};

fuzz_target!(|data: &[u8]| {
    let mut params = ChainParams::main("fuzz", Algorithm::Sha256d, "devnet", Target::MAX);
    params.window_max_shares = 20;
    let mut node = Node::new(
        Sharechain::new(params),
        PowPolicy::Simulated,
        PeerLimits::default(),
    );
    node.set_listen_port(9333);
    let mut now = 1_700_000_000_000u64;
    let mut at = 0usize;
    let addr = |peer: u64| SocketAddr::from(([10, 0, 0, peer as u8], 9000 + peer as u16));
    while at < data.len() {
        let op = data[at];
        at += 1;
        let peer = u64::from(op & 3) + 1;
        match op >> 2 {
            0 => node.on_connect(peer, now),
            1 => node.on_connect_from(peer, now, addr(peer), op & 0x10 != 0),
            2 => node.on_disconnect(peer),
            3 => {
                now += 1_000 * u64::from(op & 0x3f);
                node.handle_timeout(now);
            }
            _ => {
                let Some(len) = data.get(at..at + 2) else {
                    break;
                };
                let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
                at += 2;
                let end = (at + len).min(data.len());
                let bytes = &data[at..end];
                at = end;
                if let Ok(msg) = Message::decode(bytes) {
                    node.on_message(peer, msg, now);
                }
            }
        }
        while let Some((to, msg)) = node.poll_transmit() {
            let bytes = msg.encode();
            assert!(bytes.len() <= MAX_MESSAGE, "a message over the cap");
            assert_eq!(
                Message::decode(&bytes).as_ref(),
                Ok(&msg),
                "a message that does not decode back"
            );
            if let Message::Peers(told) = &msg {
                assert!(told.len() <= 32, "{to} told {} addresses", told.len());
            }
        }
        while let Some(event) = node.poll_event() {
            if let NodeEvent::MainBlock { hash, .. } = event {
                assert!(
                    node.chain().contains(&ShareId(hash)),
                    "a block released without its share"
                );
            }
        }
        assert!(node.dial_candidates(usize::MAX).len() <= 1_024);
        assert!(node.chain().len() <= 10_000);
    }
});
