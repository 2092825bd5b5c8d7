//! Stratum V2 frames and messages (`otedama_stratum::sv2`) on arbitrary bytes.
//!
//! The first byte picks the frame decoder's payload limit (1 KiB to 16 MiB); the rest is a
//! byte stream from a peer, fed in pieces whose sizes come from the bytes themselves.
//!
//! Checks:
//! - nothing panics and nothing allocates past the input: a frame is held only once its bytes
//!   arrived, and a header over the limit fails the stream for good;
//! - every frame the decoder yields has the length its header announced;
//! - whatever message decodes writes a payload that decodes to the same TLV fields and writes
//!   the same bytes again (a BOOL's high bits and the channel bit may differ on the way in, so
//!   the first bytes themselves may not; messages are compared as bytes, since an F32 may be a
//!   NaN);
//! - a payload cut short of a decoded message's own bytes does not decode to that message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_stratum::sv2::frame::{FrameDecoder, Header};
use otedama_stratum::sv2::message::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let limit = 1024usize << (limit % 15);
    let mut decoder = FrameDecoder::new(limit);
    let mut rest = stream;
    let mut failed = false;
    while !rest.is_empty() {
        let take = usize::from(rest[0] % 64) + 1;
        let (piece, tail) = rest.split_at(take.min(rest.len()));
        rest = tail;
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(!failed, "no frame after a failure");
                    assert_eq!(frame.payload.len(), frame.header.length as usize);
                    assert!(frame.payload.len() <= limit);
                    check(&frame.header, &frame.payload);
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    assert!(decoder.next_frame().is_err(), "the failure stays");
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    // The bytes as one payload of every message type.
    for msg_type in 0..=u8::MAX {
        let header = Header {
            extension_type: 0,
            channel_msg: false,
            msg_type,
            length: stream.len() as u32,
        };
        check(&header, stream);
    }
});

fn check(header: &Header, payload: &[u8]) {
    let Ok((message, tlvs)) = Message::decode(header, payload) else {
        return;
    };
    assert_eq!(message.msg_type(), header.msg_type);
    // Compared as bytes: an F32 may be a NaN, which equals nothing, itself included.
    let written = message.to_payload_with(&tlvs).expect("what was read fits");
    let (again, again_tlvs) = Message::decode(header, &written).expect("what was written reads");
    assert_eq!(again_tlvs, tlvs);
    assert_eq!(
        again.to_payload_with(&again_tlvs).expect("fits"),
        written,
        "one encoding for what was read"
    );
    let own = message.to_payload().expect("fits");
    if let Some(short) = own.len().checked_sub(1) {
        let cut = Message::decode(header, &own[..short])
            .ok()
            .and_then(|(m, _)| m.to_payload().ok());
        assert_ne!(
            cut,
            Some(own),
            "a payload cut short reads as the whole message"
        );
    }
}
