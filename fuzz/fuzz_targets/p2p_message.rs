//! `Message::decode` and `Share::from_bytes_in` (both layouts) on arbitrary bytes.
//!
//! Checks:
//! - nothing panics and nothing allocates past the input, whatever the bytes;
//! - whatever decodes re-encodes to exactly the same bytes (one encoding per value), so two
//!   nodes never disagree on what a peer sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_p2p::{Layout, Message, Share};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        assert_eq!(msg.encode(), data);
    }
    for layout in [Layout::Bitcoin, Layout::RandomX] {
        if let Ok(share) = Share::from_bytes_in(data, layout) {
            assert_eq!(share.layout(), layout);
            assert_eq!(share.to_bytes(), data);
            assert_eq!(share.encoded_len(), data.len());
        }
    }
});
