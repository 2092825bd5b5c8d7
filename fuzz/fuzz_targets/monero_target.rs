//! `MoneroTarget::from_hex` (the `"target"` field of a Monero stratum job) and the Monero
//! difficulty helpers.
//!
//! Input: arbitrary bytes, read as the hex text; the first 32 bytes (zero-padded) double as a
//! hash and the first 8 as a little-endian `u64` difficulty.
//!
//! Checks:
//! - `from_hex` matches a plain model: the length, then non-hex characters, then zero are the
//!   errors, in that order; 8 digits give the 4-byte form and 16 the 8-byte form, read
//!   little-endian;
//! - a parsed target prints back as the lowercased input and parses again to itself;
//! - `target64`, `difficulty`, `is_met_by`, `to_target` and `monero_check_hash` agree with one
//!   another at the boundary and on the fuzzed hash;
//! - targets built from a difficulty round-trip through hex and are the exact floors their
//!   documentation gives.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use otedama_core::{
    monero_check_hash, Difficulty, DifficultyConvention, MoneroTarget, MoneroTargetError,
};

/// What `from_hex` must return for `text`, computed the obvious way.
fn model_from_hex(text: &str) -> Result<MoneroTarget, MoneroTargetError> {
    let raw = text.as_bytes();
    if raw.len() != 8 && raw.len() != 16 {
        return Err(MoneroTargetError::Length {
            hex: text.to_owned(),
        });
    }
    if !raw.iter().all(u8::is_ascii_hexdigit) {
        return Err(MoneroTargetError::NotHex {
            hex: text.to_owned(),
        });
    }
    let digit = |b: u8| u64::from(char::from(b).to_digit(16).unwrap_or(0));
    // Little-endian: the first pair of digits is the lowest byte.
    let value = raw.chunks_exact(2).rev().fold(0u64, |acc, pair| {
        (acc << 8) | (digit(pair[0]) << 4) | digit(pair[1])
    });
    if value == 0 {
        return Err(MoneroTargetError::Zero {
            hex: text.to_owned(),
        });
    }
    Ok(if raw.len() == 8 {
        MoneroTarget::Short(value as u32)
    } else {
        MoneroTarget::Long(value)
    })
}

/// The hash with its top 8 bytes (the part Monero compares) replaced by `top`.
fn with_top(hash: &[u8; 32], top: u64) -> [u8; 32] {
    let mut out = *hash;
    out[24..].copy_from_slice(&top.to_le_bytes());
    out
}

fn check_target(target: MoneroTarget, hash: &[u8; 32]) {
    let t64 = target.target64();
    assert!(t64 >= 1, "{target:?} has a zero target64");
    if let MoneroTarget::Short(t32) = target {
        // target64 = (2^64 − 1) / ((2^32 − 1) / t32) is at least t32 · 2^32.
        assert!(t32 >= 1);
        assert!(t64 >= u64::from(t32) << 32, "{target:?} -> {t64:#x}");
    }
    let difficulty = target.difficulty();
    assert_eq!(difficulty, u64::MAX / t64);
    assert!(difficulty >= 1);

    // Boundary: a top word just below target64 meets it, target64 itself does not.
    assert!(target.is_met_by(&with_top(hash, t64 - 1)));
    assert!(!target.is_met_by(&with_top(hash, t64)));

    // The 256-bit form decides every hash the same way.
    let wide = target.to_target();
    for h in [*hash, with_top(hash, t64 - 1), with_top(hash, t64)] {
        let met = target.is_met_by(&h);
        assert_eq!(wide.is_met_by(&h), met, "{target:?} vs {wide:?} on {h:?}");
        // A hash under target64 meets the target's own difficulty in Monero's check.
        if met {
            assert!(monero_check_hash(&h, difficulty));
        }
    }

    // Hex round trip.
    let hex = target.to_hex();
    let digits = match target {
        MoneroTarget::Short(_) => 8,
        MoneroTarget::Long(_) => 16,
    };
    assert_eq!(hex.len(), digits);
    assert_eq!(MoneroTarget::from_hex(&hex), Ok(target));
    assert_eq!(
        MoneroTarget::from_hex(&hex.to_ascii_uppercase()),
        Ok(target)
    );
}

fn check_difficulty(d: u64, hash: &[u8; 32]) {
    if d == 0 {
        assert_eq!(
            MoneroTarget::long_from_difficulty(0),
            Err(MoneroTargetError::ZeroDifficulty)
        );
        assert_eq!(
            MoneroTarget::short_from_difficulty(0),
            Err(MoneroTargetError::ZeroDifficulty)
        );
        assert!(monero_check_hash(hash, 0));
        return;
    }
    let m = u128::from(u64::MAX);
    let long = MoneroTarget::long_from_difficulty(d);
    let Ok(MoneroTarget::Long(t64)) = long else {
        panic!("long_from_difficulty({d}) = {long:?}")
    };
    // t64 = floor((2^64 − 1) / d).
    assert!(u128::from(t64) * u128::from(d) <= m);
    assert!((u128::from(t64) + 1) * u128::from(d) > m);
    assert!(MoneroTarget::Long(t64).difficulty() >= d);
    check_target(MoneroTarget::Long(t64), hash);

    let short = MoneroTarget::short_from_difficulty(d);
    let Ok(MoneroTarget::Short(t32)) = short else {
        panic!("short_from_difficulty({d}) = {short:?}")
    };
    assert_eq!(t32, (u32::MAX as u64 / d).max(1) as u32);
    if d <= u64::from(u32::MAX) {
        assert!(MoneroTarget::Short(t32).difficulty() >= d);
    }
    check_target(MoneroTarget::Short(t32), hash);

    let chosen = MoneroTarget::from_difficulty(d);
    if d <= MoneroTarget::SHORT_FORM_MAX_DIFFICULTY {
        assert_eq!(chosen, short);
    } else {
        assert_eq!(chosen, long);
    }

    // monero_check_hash(h, d) is h <= floor((2^256 − 1) / d), the Monero convention's
    // target, wherever `d` converts to f64 exactly.
    if d < 1 << 53 {
        let Ok(difficulty) = Difficulty::new(d as f64) else {
            panic!("difficulty {d} rejected")
        };
        let target = DifficultyConvention::Monero.target_for(difficulty);
        assert_eq!(
            monero_check_hash(hash, d),
            target.is_met_by(hash),
            "d = {d}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(data),
    };
    let mut hash = [0u8; 32];
    let n = data.len().min(32);
    hash[..n].copy_from_slice(&data[..n]);

    let parsed = MoneroTarget::from_hex(&text);
    assert_eq!(parsed, model_from_hex(&text), "from_hex({text:?})");
    if let Ok(target) = parsed {
        assert_eq!(target.to_hex(), text.to_ascii_lowercase());
        check_target(target, &hash);
    }

    let mut le = [0u8; 8];
    le.copy_from_slice(&hash[..8]);
    check_difficulty(u64::from_le_bytes(le), &hash);
});
