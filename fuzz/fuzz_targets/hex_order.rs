//! The hex and byte-order helpers of `otedama_core` (the `order` module).
//!
//! Input: arbitrary bytes, read both as text (hex to decode) and as raw bytes (to encode and to
//! reorder as a 32-byte hash).
//!
//! Checks:
//! - `decode_hex` matches a plain model: odd length, then the first non-hex byte, is the error;
//!   otherwise it decodes and `encode_hex` gives back the lowercased text;
//! - `decode_hex32` accepts exactly the 64-digit strings and reports the decoded length
//!   otherwise;
//! - `encode_hex` of any bytes is lowercase hex of twice the length and decodes back;
//! - `reverse_hash` and `swap_words` move each byte where they say, are involutions, and the
//!   Stratum prevhash conversions are inverse pairs that commute with display order.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use otedama_core::{
    decode_hex, decode_hex32, encode_hex, prevhash_display_to_stratum, prevhash_from_stratum,
    prevhash_stratum_to_display, prevhash_to_stratum, reverse_hash, swap_words, HexError,
};

/// What `decode_hex` must return for `text`, computed the obvious way.
fn model_decode(text: &str) -> Result<Vec<u8>, HexError> {
    let raw = text.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return Err(HexError::OddLength { len: raw.len() });
    }
    if let Some(position) = raw.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(HexError::InvalidChar { position });
    }
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8).unwrap_or(0);
    Ok(raw
        .chunks_exact(2)
        .map(|pair| digit(pair[0]) * 16 + digit(pair[1]))
        .collect())
}

fn check_text(text: &str) {
    let decoded = decode_hex(text);
    assert_eq!(decoded, model_decode(text), "decode_hex({text:?})");
    if let Ok(bytes) = &decoded {
        assert_eq!(bytes.len() * 2, text.len());
        assert_eq!(encode_hex(bytes), text.to_ascii_lowercase());
    }

    let decoded32 = decode_hex32(text);
    match (&decoded, &decoded32) {
        (Ok(bytes), Ok(hash)) => assert_eq!(&bytes[..], &hash[..]),
        (Ok(bytes), Err(e)) => {
            assert_ne!(bytes.len(), 32);
            assert_eq!(
                e,
                &HexError::WrongLength {
                    expected: 32,
                    got: bytes.len()
                }
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(a), Ok(_)) => panic!("decode_hex32 accepted {text:?}, decode_hex said {a:?}"),
    }
}

fn check_bytes(data: &[u8]) {
    let text = encode_hex(data);
    assert_eq!(text.len(), 2 * data.len());
    assert!(text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(decode_hex(&text).as_deref(), Ok(data));
    assert_eq!(decode_hex(&text.to_ascii_uppercase()).as_deref(), Ok(data));
}

fn check_hash(hash: [u8; 32]) {
    let reversed = reverse_hash(&hash);
    let swapped = swap_words(&hash);
    for i in 0..32 {
        assert_eq!(reversed[i], hash[31 - i]);
        assert_eq!(swapped[i], hash[i - i % 4 + 3 - i % 4]);
    }
    assert_eq!(reverse_hash(&reversed), hash);
    assert_eq!(swap_words(&swapped), hash);

    // Read `hash` as each of the three orders in turn and go around.
    let internal = prevhash_from_stratum(&hash);
    assert_eq!(prevhash_to_stratum(&internal), hash);
    assert_eq!(prevhash_from_stratum(&prevhash_to_stratum(&hash)), hash);

    let display = prevhash_stratum_to_display(&hash);
    assert_eq!(display, reverse_hash(&internal));
    assert_eq!(prevhash_display_to_stratum(&display), hash);
    assert_eq!(
        prevhash_stratum_to_display(&prevhash_display_to_stratum(&hash)),
        hash
    );
    assert_eq!(
        prevhash_display_to_stratum(&hash),
        prevhash_to_stratum(&reverse_hash(&hash))
    );

    // The 64-digit hex form of each order decodes back.
    for order in [hash, internal, display] {
        assert_eq!(decode_hex32(&encode_hex(&order)), Ok(order));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(data),
    };
    check_text(&text);
    check_bytes(data);

    let mut hash = [0u8; 32];
    let n = data.len().min(32);
    hash[..n].copy_from_slice(&data[..n]);
    check_hash(hash);
});
