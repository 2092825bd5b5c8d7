//! Difficulty and target conversions from arbitrary `f64` bit patterns.
//!
//! Input: 8 bytes of an `f64` (little-endian bits), optionally 8 more for a second one, then up
//! to 32 bytes of a hash (zero-padded).
//!
//! Checks, for every [`DifficultyConvention`]:
//! - `Difficulty::new` accepts exactly the finite values above zero, and nothing panics on any
//!   bit pattern (NaN payloads, infinities, subnormals, negative zero);
//! - `target_for` is the exact floor its documentation gives wherever that can be checked in
//!   256-bit integers, and is monotonic in the difficulty;
//! - `difficulty_of(target_for(d))` gives `d` back to float precision when the target is wide
//!   enough for the floor not to matter, and is an error only for the zero target;
//! - a hash at the target meets it, the hash one above does not, and `share_difficulty` of
//!   each lands on the matching side of `d`;
//! - `Hashrate` accepts exactly the finite non-negative values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_core::{
    Difficulty, DifficultyConvention, DifficultyError, Hashrate, HashrateError, Target, Work, U256,
};

const CONVENTIONS: [DifficultyConvention; 4] = [
    DifficultyConvention::Bitcoin,
    DifficultyConvention::Scrypt,
    DifficultyConvention::Monero,
    DifficultyConvention::Ethash,
];

/// Relative tolerance for float round trips (f64 carries 53 bits; the targets checked are at
/// least 64 bits wide, so flooring them costs less than 2^-63).
const TOLERANCE: f64 = 1e-12;

fn check_new(x: f64) -> Option<Difficulty> {
    match Difficulty::new(x) {
        Ok(d) => {
            assert!(x.is_finite() && x > 0.0, "accepted {x:?}");
            assert_eq!(d.as_f64().to_bits(), x.to_bits());
            Some(d)
        }
        Err(DifficultyError::NotFinite { value }) => {
            assert!(!x.is_finite(), "{x:?} called not finite");
            assert_eq!(value.to_bits(), x.to_bits());
            None
        }
        Err(DifficultyError::NotPositive { value }) => {
            assert!(x.is_finite() && x <= 0.0, "{x:?} called not positive");
            assert_eq!(value.to_bits(), x.to_bits());
            None
        }
        Err(other) => panic!("Difficulty::new({x:?}) gave {other:?}"),
    }
}

/// `d = m · 2^e` with `m` odd (or zero), read straight from the float's bits.
fn split(d: f64) -> (u64, i32) {
    let bits = d.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & 0x000f_ffff_ffff_ffff;
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 0x0010_0000_0000_0000, biased - 1075)
    };
    if m == 0 {
        return (0, 0);
    }
    let zeros = m.trailing_zeros();
    (m >> zeros, e + zeros as i32)
}

/// The dividend and divisor of `floor(n / d)` in integers, when both fit: `n · 2^-e / m` for
/// `e <= 0`, `n / (m · 2^e)` for `e > 0`.
fn as_fraction(n: U256, d: f64) -> Option<(U256, u64)> {
    let (m, e) = split(d);
    if e <= 0 {
        let s = e.unsigned_abs();
        if n.bits() + s > 256 {
            return None;
        }
        Some((n << s, m))
    } else {
        let s = e.unsigned_abs();
        if s >= 64 || m.leading_zeros() < s {
            return None;
        }
        Some((n, m << s))
    }
}

/// `t == floor(n / divisor)`, checked with multiplications only.
fn is_floor(t: U256, n: U256, divisor: u64) -> bool {
    let low_ok = t.checked_mul_u64(divisor).is_some_and(|p| p <= n);
    let high_ok = match t.checked_add(U256::ONE) {
        Some(t1) => t1.checked_mul_u64(divisor).is_none_or(|p| p > n),
        None => true,
    };
    low_ok && high_ok
}

fn hash_of(convention: DifficultyConvention, value: U256) -> [u8; 32] {
    if convention.hash_is_big_endian() {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOLERANCE * b.abs()
}

fn check_convention(convention: DifficultyConvention, d: Difficulty, hash: &[u8; 32]) {
    let x = d.as_f64();
    let target = convention.target_for(d);
    let t = target.as_u256();
    assert_eq!(
        convention.target_for(Difficulty::ONE),
        convention.diff1_target()
    );

    // Exact floors where the integers fit.
    match convention {
        DifficultyConvention::Bitcoin | DifficultyConvention::Scrypt => {
            if let Some((n, divisor)) = as_fraction(convention.diff1_target().as_u256(), x) {
                assert!(
                    is_floor(t, n, divisor),
                    "{convention:?} target_for({x:?}) = {target:?}"
                );
            }
        }
        DifficultyConvention::Monero => {
            // Largest h with h · d < 2^256, i.e. floor((2^256 − 1) / d).
            if let Some((n, divisor)) = as_fraction(U256::MAX, x).filter(|_| x >= 1.0) {
                assert!(
                    is_floor(t, n, divisor),
                    "Monero target_for({x:?}) = {target:?}"
                );
            }
        }
        DifficultyConvention::Ethash => {
            // floor(2^256 / d) is floor((2^256 − 1) / d), plus one when d divides 2^256.
            if x >= 1.0 && x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0 {
                let di = x as u64;
                let monero = DifficultyConvention::Monero.target_for(d).as_u256();
                let bump = if di.is_power_of_two() {
                    U256::ONE
                } else {
                    U256::ZERO
                };
                assert_eq!(t, monero.saturating_add(bump), "Ethash target_for({x:?})");
            }
            if x <= 1.0 {
                assert_eq!(target, Target::MAX);
            }
        }
        _ => {}
    }

    // Back to a difficulty.
    match convention.difficulty_of(&target) {
        Ok(back) => {
            assert!(!t.is_zero());
            let back = back.as_f64();
            assert!(back.is_finite() && back > 0.0);
            if t.bits() >= 64 && target != Target::MAX {
                assert!(
                    close(back, x),
                    "{convention:?}: {x:?} -> {target:?} -> {back:?}"
                );
            }
        }
        Err(DifficultyError::ZeroTarget) => assert!(t.is_zero()),
        Err(other) => panic!("{convention:?} difficulty_of({target:?}) gave {other:?}"),
    }

    // The boundary: the target itself meets, one above does not.
    let at = hash_of(convention, t);
    assert!(convention.is_met(&target, &at));
    let wide = t.bits() >= 64;
    if wide {
        let share = convention.share_difficulty(&at);
        assert!(
            share >= x * (1.0 - TOLERANCE),
            "{convention:?} {x:?}: share at target {share:?}"
        );
    }
    if let Some(above) = t.checked_add(U256::ONE) {
        let above_hash = hash_of(convention, above);
        assert!(!convention.is_met(&target, &above_hash));
        if wide {
            let share = convention.share_difficulty(&above_hash);
            assert!(
                share <= x * (1.0 + TOLERANCE),
                "{convention:?} {x:?}: share above {share:?}"
            );
        }
    }

    // The fuzzed hash lands on the side its share difficulty says.
    let met = convention.is_met(&target, hash);
    let share = convention.share_difficulty(hash);
    assert!(share > 0.0 && !share.is_nan());
    if wide {
        if met {
            assert!(
                share >= x * (1.0 - TOLERANCE),
                "{convention:?} {x:?}: met with {share:?}"
            );
        } else {
            assert!(
                share <= x * (1.0 + TOLERANCE),
                "{convention:?} {x:?}: missed with {share:?}"
            );
        }
    }

    // Work and expected hashes.
    assert_eq!(convention.work_for(d), Work::from_target(&target));
    let expected = convention.expected_hashes(d);
    assert!(
        expected.is_finite() && expected >= 1.0,
        "{convention:?} {x:?}: {expected:?}"
    );
}

fn check_order(convention: DifficultyConvention, a: Difficulty, b: Difficulty) {
    let (low, high) = if a.as_f64() <= b.as_f64() {
        (a, b)
    } else {
        (b, a)
    };
    let (t_low, t_high) = (convention.target_for(low), convention.target_for(high));
    assert!(
        t_low >= t_high,
        "{convention:?}: {low:?} -> {t_low:?}, {high:?} -> {t_high:?}"
    );
    if let (Ok(d_low), Ok(d_high)) = (
        convention.difficulty_of(&t_low),
        convention.difficulty_of(&t_high),
    ) {
        assert!(d_low.as_f64() <= d_high.as_f64());
    }
}

fn check_hashrate(x: f64, secs: Option<f64>) {
    match Hashrate::new(x) {
        Ok(h) => {
            assert!(x.is_finite() && x >= 0.0);
            assert!(!h.to_string().is_empty());
        }
        Err(HashrateError::InvalidHashes { .. }) => assert!(!(x.is_finite() && x >= 0.0)),
        Err(other) => panic!("Hashrate::new({x:?}) gave {other:?}"),
    }
    if let Some(secs) = secs {
        if let Ok(h) = Hashrate::from_hashes_and_secs(x, secs) {
            assert!(secs.is_finite() && secs > 0.0);
            let rate = h.as_f64();
            assert!(rate.is_finite() && rate >= 0.0);
            assert!(!format!("{h:.3}").is_empty());
        }
    }
}

fn f64_at(bytes: &[u8]) -> Option<f64> {
    bytes
        .first_chunk::<8>()
        .map(|b| f64::from_bits(u64::from_le_bytes(*b)))
}

fuzz_target!(|data: &[u8]| {
    let Some(x) = f64_at(data) else {
        return;
    };
    let y = f64_at(&data[8..]);
    let mut hash = [0u8; 32];
    let tail = data.get(16..).unwrap_or(&[]);
    let n = tail.len().min(32);
    hash[..n].copy_from_slice(&tail[..n]);

    check_hashrate(x, y);
    let dx = check_new(x);
    let dy = y.and_then(check_new);
    for convention in CONVENTIONS {
        if let Some(d) = dx {
            check_convention(convention, d, &hash);
        }
        if let (Some(a), Some(b)) = (dx, dy) {
            check_order(convention, a, b);
        }
    }
    if let Some(d) = dx {
        assert!(!d.to_string().is_empty());
    }
});
