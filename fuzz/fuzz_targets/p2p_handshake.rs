//! The responder side of the p2p handshake and an open channel, fed arbitrary frames.
//!
//! Checks:
//! - nothing panics, whatever a dialling stranger sends;
//! - arbitrary bytes never complete a handshake (they would need the chain's id and a proof of
//!   work bound to this handshake), and never decrypt on an open channel.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use otedama_p2p::{ConsensusId, FrameReader, Handshake, NodeKey, Role, Step};

fn keys() -> &'static (NodeKey, NodeKey) {
    static KEYS: OnceLock<(NodeKey, NodeKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            NodeKey::from_private([7; 32]).expect("a valid key"),
            NodeKey::from_private([9; 32]).expect("a valid key"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, other) = keys();
    let chain = ConsensusId([1; 32]);
    let mut reader = FrameReader::default();
    reader.push(data);
    let mut state = Handshake::new(Role::Responder, &chain, key, 8).ok();
    while let Some(frame) = reader.next_frame() {
        let Some(hs) = state.take() else { break };
        match hs.on_frame(&frame) {
            Ok((next, Step::Send(_))) => state = next,
            Ok((_, Step::Done(..))) => panic!("a stranger's bytes completed the handshake"),
            Err(_) => break,
        }
    }

    // An honest pair, then garbage on the open channel.
    let mut i = Handshake::new(Role::Initiator, &chain, other, 1).expect("builds");
    let r = Handshake::new(Role::Responder, &chain, key, 1).expect("builds");
    let m1 = i.start().expect("starts").expect("initiator speaks first");
    let Ok((Some(r), Step::Send(m2))) = r.on_frame(&m1) else {
        panic!("honest step 1")
    };
    let Ok((_, Step::Done(Some(m3), _))) = i.on_frame(&m2) else {
        panic!("honest step 2")
    };
    let Ok((_, Step::Done(None, mut channel))) = r.on_frame(&m3) else {
        panic!("honest step 3")
    };
    assert!(channel.open_frame(data).is_err() || data.len() < 16);
});
