//! The Stratum V2 template provider session (`otedama_stratum::sv2::template`) driven by a
//! pool whose frames come from the input, sealed after a real Noise handshake.
//!
//! Input: a sequence of steps, each `[op][len lo][len hi][bytes]`. An op below 0xf0 is a
//! message type: the bytes (at most the length) are its payload, framed, sealed and fed in
//! two cuts. 0xf0 offers a template (on a new block or not by the first byte), 0xf3 feeds
//! raw bytes past the sealer.
//!
//! Checks: nothing panics; everything the session writes opens with the pool's keys and
//! reads as a message; a solution comes out only for a template offered on the current
//! block; once closed, the session writes nothing more and raises no event but its closing.
#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use otedama_stratum::sv2::frame::{Frame, Header};
use otedama_stratum::sv2::message::Message;
use otedama_stratum::sv2::noise::{AuthorityKeypair, Initiator};
use otedama_stratum::sv2::template::{
    Sv2TemplateConfig, Sv2TemplateSession, TemplateEvent, TemplateOffer,
};

fn authority() -> &'static AuthorityKeypair {
    static KEY: OnceLock<AuthorityKeypair> = OnceLock::new();
    KEY.get_or_init(|| AuthorityKeypair::generate().expect("key"))
}

fn offer(id: u64, block: u64) -> TemplateOffer {
    let mut prev_hash = [0; 32];
    prev_hash[..8].copy_from_slice(&block.to_le_bytes());
    TemplateOffer {
        template_id: id,
        version: 0x2000_0000,
        coinbase_tx_version: 2,
        coinbase_prefix: vec![1, block as u8],
        coinbase_tx_input_sequence: u32::MAX,
        coinbase_tx_value_remaining: 5_000_000_000,
        coinbase_tx_outputs: vec![vec![0; 9]],
        coinbase_tx_locktime: 0,
        merkle_path: vec![[6; 32]],
        prev_hash,
        header_timestamp: 1_700_000_000,
        nbits: 0x207f_ffff,
        target: [0xff; 32],
        transactions: vec![vec![1, 2, 3]],
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Arc::new(Sv2TemplateConfig {
        authority: authority().clone(),
        certificate_validity: 3600,
    });
    let mut provider = Sv2TemplateSession::new(config);
    let mut initiator = Initiator::new(Some(authority().public())).expect("initiator");
    provider.handle_bytes(&initiator.act1());
    let act2 = provider.poll_output().expect("act 2");
    let (transport, _) = initiator.act2(&act2, unix_now()).expect("handshake");
    let (mut sealer, mut opener) = transport.split(1 << 20);

    let mut next_id = 0u64;
    let mut block = 1u64;
    // The templates a solution may name: those offered since the last new block.
    let mut current = HashSet::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let (op, len) = (rest[0], usize::from(u16::from_le_bytes([rest[1], rest[2]])));
        let body = &rest[3..3 + len.min(rest.len() - 3)];
        rest = &rest[3 + body.len()..];
        let was_closed = provider.is_closed();
        match op {
            0xf0 => {
                next_id += 1;
                if body.first().is_none_or(|b| b & 1 == 1) {
                    block += 1;
                    if provider.is_ready() {
                        current.clear();
                    }
                }
                if provider.is_ready() && !provider.is_closed() {
                    current.insert(next_id);
                }
                provider.offer(&offer(next_id, block));
            }
            0xf3 => {
                provider.handle_bytes(body);
            }
            msg_type => {
                let channel = body.first().is_some_and(|b| b & 0x80 != 0);
                let frame = Frame {
                    header: Header::for_payload(0, channel, msg_type, body.len()).expect("fits"),
                    payload: body.to_vec(),
                };
                let sealed = sealer.seal(&frame).expect("seal");
                let cut = usize::from(body.first().copied().unwrap_or(0)) % (sealed.len() + 1);
                provider.handle_bytes(&sealed[..cut]);
                provider.handle_bytes(&sealed[cut..]);
            }
        }
        if was_closed {
            assert!(provider.poll_output().is_none(), "output after the close");
        }
        while let Some(bytes) = provider.poll_output() {
            opener.push(&bytes);
        }
        while let Some(frame) = opener.next_frame().expect("what the provider writes opens") {
            Message::from_frame(&frame).expect("what the provider writes reads");
        }
        while let Some(event) = provider.poll_event() {
            assert!(!was_closed || matches!(event, TemplateEvent::Closed(_)));
            if let TemplateEvent::Solution(s) = event {
                assert!(
                    current.contains(&s.template_id),
                    "a solution for template {} that is not on the current block",
                    s.template_id
                );
            }
        }
    }
});

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}
