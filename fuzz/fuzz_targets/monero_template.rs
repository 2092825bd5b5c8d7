//! `MoneroTemplate::parse` (`otedama_core::monero`) on arbitrary bytes: the first two bytes
//! are the reserved offset (little-endian), the rest the block template blob.
//!
//! Checks:
//! - nothing panics and nothing allocates past the input, whatever the bytes;
//! - a template that parses takes any reserved bytes up to its room, and none past it;
//! - the block rebuilt from the hashing blob and the body is the template with the reserved
//!   bytes written in, and the hashing blob keeps the template's header and counts its
//!   transactions with the miner's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_core::monero::{header_len, MoneroTemplate};
use otedama_core::rx::read_varint;

fuzz_target!(|data: &[u8]| {
    let Some((offset, blob)) = data.split_first_chunk::<2>() else {
        return;
    };
    let offset = usize::from(u16::from_le_bytes(*offset));
    let Ok(template) = MoneroTemplate::parse(blob, offset) else {
        return;
    };
    let room = template.reserved_room();
    assert!(template
        .with_reserved(&vec![0; room.saturating_add(1)])
        .is_err());
    let reserved: Vec<u8> = (0..room.min(16)).map(|i| i as u8 ^ 0xa5).collect();
    let (hashing, body) = template.with_reserved(&reserved).expect("fits its room");
    let mut expected = blob.to_vec();
    expected[offset..offset + reserved.len()].copy_from_slice(&reserved);
    assert_eq!(
        MoneroTemplate::block(&hashing, &body).expect("own hashing blob"),
        expected
    );
    let header = header_len(blob).expect("parsed");
    assert_eq!(hashing[..header], blob[..header]);
    let mut pos = header + 32;
    let count = read_varint(&hashing, &mut pos).expect("count");
    assert_eq!(pos, hashing.len());
    assert_eq!(count, template.tx_count() as u64 + 1);
});
