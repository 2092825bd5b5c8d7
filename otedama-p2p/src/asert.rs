//! Share difficulty by integer ASERT (absolutely scheduled exponentially rising targets).
//!
//! The target of the share after `parent` is
//! `anchor_target * 2^((parent_time - anchor_time - interval * parent_height) / half_life)`,
//! anchored at the chain's genesis (height 0, the easiest target, the genesis timestamp,
//! which every share carries forward as `anchor_time`). It depends only on the parent, so a
//! node that never saw the genesis computes the same target, and rounding never accumulates:
//! every target is computed from the anchor, not from the previous target. The fractional
//! power of two is the cubic approximation Bitcoin Cash's aserti3-2d uses, in 16-bit fixed
//! point, so every platform gets the same bits.

use otedama_core::{CompactTarget, Target, U256};

/// The target a share must meet when its parent sits at `parent_height` with timestamp
/// `parent_time`, on a chain anchored at `anchor_time` with the easiest target `max_target`.
/// The result is in compact form, as shares commit to it, and never easier than `max_target`.
pub fn next_target(
    max_target: CompactTarget,
    anchor_time: u64,
    parent_height: u64,
    parent_time: u64,
    interval_secs: u64,
    half_life_secs: u64,
) -> CompactTarget {
    let anchor = max_target.decode().unwrap_or(Target::MAX).as_u256();
    let half_life = i128::from(half_life_secs.max(1));
    // i128 keeps every combination of u64 times and heights exact.
    let schedule = i128::from(interval_secs).saturating_mul(i128::from(parent_height));
    let drift = i128::from(parent_time) - i128::from(anchor_time) - schedule;
    let exponent = drift.saturating_mul(65_536) / half_life;
    // Floor division by 65536, as an arithmetic shift: the fraction stays in 0..65536.
    let shifts = exponent >> 16;
    let frac = (exponent - (shifts << 16)) as u128;
    let factor: u128 = 65_536
        + ((195_766_423_245_049u128 * frac
            + 971_821_376u128 * frac * frac
            + 5_127u128 * frac * frac * frac
            + (1u128 << 47))
            >> 48);
    let easiest = anchor;
    // anchor * factor needs anchor.bits() + 17 bits; drop 16 bits first when that overflows.
    let (base, pre_shifted) = if anchor.bits() > 239 {
        (anchor >> 16, true)
    } else {
        (anchor, false)
    };
    let Some(scaled) = base.checked_mul(U256::from_u128(factor)) else {
        return max_target;
    };
    let net_shift = if pre_shifted { shifts } else { shifts - 16 };
    let target = if net_shift >= 0 {
        if net_shift >= 256 || scaled.bits() as i128 + net_shift > 256 {
            return max_target;
        }
        scaled << net_shift as u32
    } else if -net_shift >= 256 {
        U256::ZERO
    } else {
        scaled >> (-net_shift) as u32
    };
    let clamped = if target > easiest {
        easiest
    } else if target.is_zero() {
        U256::ONE
    } else {
        target
    };
    let compact = Target::from_u256(clamped).to_compact();
    // Compact rounding never makes the target easier than the chain allows.
    match compact.decode() {
        Ok(t) if t.as_u256() <= easiest => compact,
        _ => max_target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EASY: u32 = 0x1e0fffff;

    fn t(bits: CompactTarget) -> f64 {
        bits.decode().map(|t| t.as_u256().to_f64()).unwrap_or(0.0)
    }

    fn harder_start() -> CompactTarget {
        CompactTarget::from_consensus(EASY)
    }

    #[test]
    fn on_schedule_keeps_the_anchor_target() {
        let bits = harder_start();
        for h in [0u64, 1, 100, 10_000] {
            assert_eq!(next_target(bits, 1_000, h, 1_000 + 10 * h, 10, 600), bits);
        }
    }

    #[test]
    fn one_half_life_ahead_halves_the_target_and_behind_is_capped() {
        let bits = harder_start();
        // 600 s early at height 120: half the target.
        let ahead = next_target(bits, 0, 120, 600, 10, 600);
        let ratio = t(bits) / t(ahead);
        assert!((ratio - 2.0).abs() < 0.001, "{ratio}");
        // Two half-lives early: a quarter.
        let ahead2 = next_target(bits, 0, 240, 1_200, 10, 600);
        assert!((t(bits) / t(ahead2) - 4.0).abs() < 0.002);
        // Late: never easier than the anchor (the easiest target).
        assert_eq!(next_target(bits, 0, 1, 1_000_000, 10, 600), bits);
    }

    #[test]
    fn fractional_steps_are_monotonic_and_close_to_the_exponential() {
        let bits = harder_start();
        let mut last = f64::MAX;
        for early in (0..=600u64).step_by(7) {
            let got = t(next_target(bits, 0, 1_000, 10_000 - early, 10, 600));
            assert!(got <= last, "not monotonic at {early}");
            last = got;
            let want = t(bits) * 2f64.powf(-(early as f64) / 600.0);
            assert!(
                (got / want - 1.0).abs() < 0.0005,
                "{early}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn extremes_stay_in_range() {
        for bits in [0x2100ffffu32, 0x207fffff, 0x1d00ffff, 0x03000001] {
            let bits = CompactTarget::from_consensus(bits);
            for (h, time) in [
                (0u64, 0u64),
                (u64::MAX, 0),
                (0, u64::MAX),
                (u64::MAX, u64::MAX),
            ] {
                let got = next_target(bits, 5, h, time, 10, 600);
                let value = got.decode().map(|t| t.as_u256());
                assert!(
                    matches!(value, Ok(v) if !v.is_zero()),
                    "{bits:?} {h} {time}"
                );
            }
        }
    }
}
