//! Compact `nBits` decoding and encoding.
//!
//! Input: 4 bytes of `nBits` (little-endian), then up to 32 bytes of a target (little-endian,
//! zero-padded).
//!
//! Checks:
//! - `decode_raw` equals an independent byte-wise model of Bitcoin Core's `SetCompact`
//!   (value, negative flag, overflow flag), and `decode` maps the flags to errors in order;
//! - a decoded target re-encodes without loss: `decode(to_compact(t)) == t`, and the
//!   re-encoding is a fixed point;
//! - both directions agree with the `bitcoin` crate wherever its functions are defined;
//! - any 256-bit target encodes to a compact whose decoding is that target with the bytes
//!   below the mantissa cleared.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_core::bitcoin;
use otedama_core::{decode_hex32, CompactTarget, CompactTargetError, Target};

/// Bitcoin Core's `SetCompact`, written byte by byte instead of with shifts: mantissa byte `k`
/// has weight 256^(k + size − 3); bytes below weight 1 fall off, bytes at 256^32 or above
/// overflow. Returns the little-endian value (bytes that fit), negative and overflow.
fn model_set_compact(bits: u32) -> ([u8; 32], bool, bool) {
    let size = i64::from(bits >> 24);
    let sign = bits & 0x0080_0000 != 0;
    let mantissa = (bits & 0x007f_ffff).to_le_bytes();
    let mut value = [0u8; 32];
    let mut nonzero = false;
    let mut overflow = false;
    for (k, &byte) in mantissa.iter().take(3).enumerate() {
        let position = k as i64 + size - 3;
        if position < 0 || byte == 0 {
            continue;
        }
        nonzero = true;
        match usize::try_from(position) {
            Ok(p) if p < 32 => value[p] = byte,
            _ => overflow = true,
        }
    }
    (value, nonzero && sign, overflow)
}

fn check_bits(bits: u32) {
    let compact = CompactTarget::from_consensus(bits);
    assert_eq!(compact.to_consensus(), bits);

    let (value, negative, overflow) = compact.decode_raw();
    let (model_value, model_negative, model_overflow) = model_set_compact(bits);
    assert_eq!(value.to_le_bytes(), model_value, "value of {bits:#010x}");
    assert_eq!(negative, model_negative, "negative flag of {bits:#010x}");
    assert_eq!(overflow, model_overflow, "overflow flag of {bits:#010x}");

    match compact.decode() {
        Ok(target) => {
            assert!(!negative && !overflow && !value.is_zero());
            assert_eq!(target.as_u256(), value);

            // Lossless re-encoding, and the re-encoding is canonical.
            let again = target.to_compact();
            assert_eq!(again.decode(), Ok(target), "{bits:#010x} -> {again:?}");
            assert_eq!(again.decode().map(|t| t.to_compact()), Ok(again));
            let (_, again_negative, again_overflow) = again.decode_raw();
            assert!(!again_negative && !again_overflow);

            // The bitcoin crate agrees on every nBits that Core accepts.
            let theirs =
                bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits));
            assert_eq!(
                theirs.to_le_bytes(),
                target.to_le_bytes(),
                "bitcoin decode of {bits:#010x}"
            );
            assert_eq!(
                theirs.to_compact_lossy().to_consensus(),
                again.to_consensus()
            );

            // Display is 64 hex digits, most significant first.
            let shown = target.to_string();
            assert_eq!(shown.len(), 64);
            let parsed = decode_hex32(&shown).map(Target::from_be_bytes);
            assert_eq!(parsed, Ok(target));

            // A non-zero target has at least one hash of work.
            assert!(!target.to_work().as_u256().is_zero());
        }
        Err(CompactTargetError::Negative { bits: b }) => {
            assert_eq!(b, bits);
            assert!(negative);
        }
        Err(CompactTargetError::Overflow { bits: b }) => {
            assert_eq!(b, bits);
            assert!(!negative && overflow);
        }
        Err(CompactTargetError::Zero { bits: b }) => {
            assert_eq!(b, bits);
            assert!(!negative && !overflow && value.is_zero());
        }
        Err(other) => panic!("unexpected error {other:?} for {bits:#010x}"),
    }
}

fn check_target(bytes: [u8; 32]) {
    let target = Target::from_le_bytes(bytes);
    assert_eq!(target.to_le_bytes(), bytes);
    let compact = target.to_compact();
    let theirs = bitcoin::Target::from_le_bytes(bytes).to_compact_lossy();
    assert_eq!(
        compact.to_consensus(),
        theirs.to_consensus(),
        "to_compact of {target:?}"
    );

    if target.as_u256().is_zero() {
        assert_eq!(compact.to_consensus(), 0);
        assert_eq!(compact.decode(), Err(CompactTargetError::Zero { bits: 0 }));
        return;
    }
    let size = compact.to_consensus() >> 24;
    assert!((1..=33).contains(&size), "size {size} of {compact:?}");
    let decoded = match compact.decode() {
        Ok(t) => t,
        Err(e) => panic!("{target:?} encodes to {compact:?}, which does not decode: {e}"),
    };
    // Encoding keeps the top bytes and clears the ones below the mantissa.
    let dropped = 8 * size.saturating_sub(3);
    let truncated = (target.as_u256() >> dropped) << dropped;
    assert_eq!(decoded.as_u256(), truncated, "{target:?} -> {compact:?}");
    assert!(decoded <= target);
    assert_eq!(decoded.to_compact(), compact);
    // The mantissa is never read as negative.
    assert_eq!(compact.to_consensus() & 0x0080_0000, 0);
    // The encoding is normalised: the top mantissa byte is used, or the sign bit forced a
    // one-byte shift and the next byte has its top bit set.
    let mantissa = compact.to_consensus() & 0x00ff_ffff;
    assert!(
        mantissa >= 0x8000,
        "mantissa {mantissa:#x} of {compact:?} is not normalised"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    check_bits(u32::from_le_bytes(*head));
    let mut bytes = [0u8; 32];
    let n = rest.len().min(32);
    bytes[..n].copy_from_slice(&rest[..n]);
    check_target(bytes);
});
