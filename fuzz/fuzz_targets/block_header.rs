//! `BlockHeader::from_bytes` on arbitrary bytes.
//!
//! Checks:
//! - parsing succeeds exactly for 80-byte inputs, and a wrong length reports that length;
//! - every field is read from its consensus offset, little-endian, and `to_bytes` gives the
//!   input back;
//! - the header agrees with the `bitcoin` crate: consensus decoding accepts the same inputs,
//!   the conversions both ways are inverse, and the block hashes match;
//! - `block_hash` is sha256d of the bytes, and the own-target check agrees with decoding
//!   `bits` by hand.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_core::bitcoin::{self, hashes::Hash};
use otedama_core::{sha256d, BlockHeader, HeaderError};

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fuzz_target!(|data: &[u8]| {
    let parsed = BlockHeader::from_bytes(data);
    let theirs: Result<bitcoin::block::Header, _> = bitcoin::consensus::deserialize(data);
    assert_eq!(
        parsed.is_ok(),
        theirs.is_ok(),
        "accepting {} bytes",
        data.len()
    );

    let header = match parsed {
        Ok(header) => header,
        Err(HeaderError::WrongLength { len }) => {
            assert_ne!(data.len(), BlockHeader::SIZE);
            assert_eq!(len, data.len());
            return;
        }
        Err(other) => panic!("unexpected error {other:?}"),
    };
    assert_eq!(data.len(), BlockHeader::SIZE);

    // Field layout.
    assert_eq!(header.version, u32_at(data, 0));
    assert_eq!(&header.prev_blockhash[..], &data[4..36]);
    assert_eq!(&header.merkle_root[..], &data[36..68]);
    assert_eq!(header.time, u32_at(data, 68));
    assert_eq!(header.bits.to_consensus(), u32_at(data, 72));
    assert_eq!(header.nonce, u32_at(data, 76));

    // Round trip.
    let bytes = header.to_bytes();
    assert_eq!(&bytes[..], data);
    assert_eq!(BlockHeader::from_bytes(&bytes), Ok(header));

    // The bitcoin crate reads the same header and hashes it the same way.
    let Ok(theirs) = theirs else {
        unreachable!("checked above that both parsers agree")
    };
    assert_eq!(BlockHeader::from(theirs), header);
    assert_eq!(bitcoin::block::Header::from(header), theirs);
    let hash = header.block_hash();
    assert_eq!(hash, sha256d(data));
    assert_eq!(hash, theirs.block_hash().to_byte_array());

    // The own-target check is decoding `bits` and comparing.
    match (header.meets_own_target(), header.target()) {
        (Ok(met), Ok(target)) => assert_eq!(met, target.is_met_by(&hash)),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("meets_own_target {a:?} disagrees with target {b:?}"),
    }
});
