//! Property tests: round trips and cross-checks against `u128` and the `bitcoin` crate.

#![allow(clippy::unwrap_used)]

use otedama_core::bitcoin;
use otedama_core::{
    merkle_root, monero_check_hash, stratum_merkle_root, BlockHeader, CompactTarget, Difficulty,
    DifficultyConvention, MerkleBranch, MoneroTarget, Target, Work, U256,
};
use proptest::prelude::*;

/// 256-bit values with a bias towards small and structured ones.
fn any_u256() -> impl Strategy<Value = U256> {
    prop_oneof![
        any::<[u64; 4]>().prop_map(U256::from_limbs),
        (any::<[u64; 4]>(), 0u32..256).prop_map(|(l, s)| U256::from_limbs(l) >> s),
        any::<u64>().prop_map(U256::from_u64),
        Just(U256::ZERO),
        Just(U256::ONE),
        Just(U256::MAX),
    ]
}

fn nonzero_u256() -> impl Strategy<Value = U256> {
    any_u256().prop_map(|v| if v.is_zero() { U256::ONE } else { v })
}

fn rel_err(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// What Core's GetCompact keeps of a target: the top three bytes, or two when the third
/// from the top would set the sign bit.
fn compact_rounding(t: U256) -> U256 {
    let size = t.bits().div_ceil(8);
    let top_byte = (t >> (8 * (size - 1))).low_u64();
    let keep = if top_byte & 0x80 != 0 { 2 } else { 3 };
    if size <= keep {
        t
    } else {
        let drop = 8 * (size - keep);
        (t >> drop) << drop
    }
}

fn difficulty_exponent() -> impl Strategy<Value = f64> {
    (-3.0f64..15.0).prop_map(|x| 10f64.powf(x))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // ----- U256 against u128 -------------------------------------------------------------

    #[test]
    fn u256_matches_u128(a in any::<u128>(), b in any::<u128>(), s in 0u32..128) {
        let (x, y) = (U256::from_u128(a), U256::from_u128(b));
        prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        prop_assert_eq!(x.checked_add(y).and_then(U256::to_u128), a.checked_add(b));
        match a.checked_add(b) {
            Some(_) => {}
            None => {
                let sum = x.checked_add(y).unwrap();
                prop_assert_eq!(sum >> 128, U256::ONE);
                prop_assert_eq!(sum.to_u128().is_none(), true);
                prop_assert_eq!((sum.wrapping_sub(U256::ONE << 128)).to_u128(), Some(a.wrapping_add(b)));
            }
        }
        prop_assert_eq!(x.checked_sub(y).map(|v| v.to_u128().unwrap()), a.checked_sub(b));
        let (a64, b64) = (a as u64, b as u64);
        prop_assert_eq!(
            U256::from_u64(a64).checked_mul(U256::from_u64(b64)).unwrap().to_u128(),
            Some(u128::from(a64) * u128::from(b64))
        );
        prop_assert_eq!(
            U256::from_u64(a64).checked_mul_u64(b64).unwrap().to_u128(),
            Some(u128::from(a64) * u128::from(b64))
        );
        let ours = x.div_rem(y).map(|(q, r)| (q.to_u128(), r.to_u128()));
        let theirs = a.checked_div(b).zip(a.checked_rem(b)).map(|(q, r)| (Some(q), Some(r)));
        prop_assert_eq!(ours, theirs);
        prop_assert_eq!((x >> s).to_u128(), Some(a >> s));
        prop_assert_eq!(((x << s) >> s).to_u128(), Some(a));
        prop_assert_eq!((x << s).to_u128().is_some(), a.leading_zeros() >= s);
        prop_assert_eq!(x.bits(), 128 - a.leading_zeros());
        prop_assert_eq!(x.leading_zeros(), 128 + a.leading_zeros());
        if a != 0 {
            prop_assert_eq!(x.trailing_zeros(), a.trailing_zeros());
        }
        prop_assert_eq!(x.to_f64(), a as f64);
        prop_assert_eq!(x.to_string(), format!("{a:064x}"));
        prop_assert_eq!(format!("{x:x}"), format!("{a:064x}"));
        prop_assert_eq!((x & y).to_u128(), Some(a & b));
        prop_assert_eq!((x | y).to_u128(), Some(a | b));
    }

    #[test]
    fn u256_division_identity(a in any_u256(), b in nonzero_u256()) {
        let (q, r) = a.div_rem(b).unwrap();
        prop_assert!(r < b);
        prop_assert_eq!(q.checked_mul(b).and_then(|p| p.checked_add(r)), Some(a));
        prop_assert_eq!(a.checked_div(b), Some(q));
        prop_assert_eq!(a.checked_rem(b), Some(r));
    }

    #[test]
    fn u256_add_sub_mul(a in any_u256(), b in any_u256(), k in any::<u64>()) {
        match a.checked_add(b) {
            Some(s) => prop_assert_eq!(s.checked_sub(b), Some(a)),
            None => prop_assert!(a > U256::MAX.wrapping_sub(b)),
        }
        prop_assert_eq!(a.wrapping_add(b).wrapping_sub(b), a);
        if let Some(p) = a.checked_mul_u64(k) {
            if k != 0 {
                prop_assert_eq!(p.div_rem_u64(k), Some((a, 0)));
            }
        }
        prop_assert_eq!(a.checked_mul_u64(k), a.checked_mul(U256::from_u64(k)));
        prop_assert_eq!(a.checked_mul(b), b.checked_mul(a));
    }

    #[test]
    fn u256_shifts_and_bits(a in any_u256(), s in 0u32..300) {
        let masked = if s >= 256 { U256::ZERO } else { a & (U256::MAX >> s) };
        prop_assert_eq!((a << s) >> s, masked);
        if s < 256 {
            prop_assert_eq!((a >> s) << s, a & !((U256::ONE << s).wrapping_sub(U256::ONE)));
        }
        prop_assert_eq!(a.bits() + a.leading_zeros(), 256);
        prop_assert_eq!(a.is_zero(), a.bits() == 0);
    }

    #[test]
    fn u256_to_f64_is_close(a in nonzero_u256()) {
        let f = a.to_f64();
        // Correct rounding: within half an ulp of the truncated top 64 bits' value.
        let shift = a.bits().saturating_sub(64);
        let top = (a >> shift).low_u64() as f64 * 2f64.powi(shift as i32);
        prop_assert!(rel_err(f, top) <= f64::EPSILON);
    }

    #[test]
    fn byte_round_trips(a in any_u256()) {
        prop_assert_eq!(U256::from_be_bytes(a.to_be_bytes()), a);
        prop_assert_eq!(U256::from_le_bytes(a.to_le_bytes()), a);
        let mut rev = a.to_be_bytes();
        rev.reverse();
        prop_assert_eq!(rev, a.to_le_bytes());
        let t = Target::from_u256(a);
        prop_assert_eq!(Target::from_le_bytes(t.to_le_bytes()), t);
        prop_assert_eq!(Target::from_be_bytes(t.to_be_bytes()), t);
        prop_assert_eq!(t.as_u256(), a);
        prop_assert_eq!(
            bitcoin::pow::Target::from_be_bytes(a.to_be_bytes()).to_le_bytes(),
            a.to_le_bytes()
        );
    }

    #[test]
    fn is_met_by_matches_integer_comparison(t in any_u256(), h in any_u256(), delta in 0u64..4, up in any::<bool>()) {
        // Also hashes that share their high limbs with the target.
        let near = if up { t.checked_add(U256::from_u64(delta)) } else { t.checked_sub(U256::from_u64(delta)) };
        let target = Target::from_u256(t);
        for hash in [Some(h), near].into_iter().flatten() {
            prop_assert_eq!(target.is_met_by(&hash.to_le_bytes()), hash <= t);
            prop_assert_eq!(target.is_met_by_be(&hash.to_be_bytes()), hash <= t);
            prop_assert_eq!(DifficultyConvention::Ethash.is_met(&target, &hash.to_be_bytes()), hash <= t);
            prop_assert_eq!(DifficultyConvention::Bitcoin.is_met(&target, &hash.to_le_bytes()), hash <= t);
        }
    }

    // ----- Compact targets ------------------------------------------------------------------

    #[test]
    fn compact_round_trip(t in nonzero_u256()) {
        let target = Target::from_u256(t);
        let compact = target.to_compact();
        let back = compact.decode().unwrap();
        prop_assert_eq!(back.as_u256(), compact_rounding(t));
        // Idempotent once rounded.
        prop_assert_eq!(back.to_compact(), compact);
        // Same as the bitcoin crate's GetCompact port.
        let theirs = bitcoin::pow::Target::from_be_bytes(t.to_be_bytes()).to_compact_lossy();
        prop_assert_eq!(compact.to_consensus(), theirs.to_consensus());
        // The mantissa never carries the sign bit.
        prop_assert_eq!(compact.to_consensus() & 0x0080_0000, 0);
    }

    #[test]
    fn compact_decode_matches_bitcoin_crate(bits in any::<u32>()) {
        let compact = CompactTarget::from_consensus(bits);
        let (value, negative, overflow) = compact.decode_raw();
        match compact.decode() {
            Ok(t) => {
                prop_assert!(!negative && !overflow && !value.is_zero());
                let theirs = bitcoin::pow::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits));
                prop_assert_eq!(t.to_be_bytes(), theirs.to_be_bytes());
                prop_assert_eq!(t.to_compact().decode().unwrap(), t);
            }
            Err(_) => prop_assert!(negative || overflow || value.is_zero()),
        }
    }

    // ----- Difficulty ---------------------------------------------------------------------

    #[test]
    fn difficulty_round_trip(x in difficulty_exponent(), big in 1.0f64..1e30) {
        use DifficultyConvention::*;
        for (conv, d) in [(Bitcoin, x), (Scrypt, x), (Monero, big), (Ethash, big), (Monero, 1.0 + x), (Ethash, 1.0 + x)] {
            let diff = Difficulty::new(d).unwrap();
            let target = conv.target_for(diff);
            let back = conv.difficulty_of(&target).unwrap().as_f64();
            prop_assert!(rel_err(back, d) < 1e-12, "{:?} {} -> {:?} -> {}", conv, d, target, back);
            // A larger difficulty never gives a larger target.
            let harder = conv.target_for(Difficulty::new(d * 1.5).unwrap());
            prop_assert!(harder <= target);
            let expected = conv.expected_hashes(diff);
            let per_diff = match conv { Bitcoin => 2f64.powi(48) / 65535.0, Scrypt => 2f64.powi(32) / 65535.0, _ => 1.0 };
            prop_assert!(rel_err(expected, d * per_diff) < 1e-9, "{:?} {} {}", conv, d, expected);
        }
    }

    #[test]
    fn integer_difficulties_are_exact(d in 1u64..u64::MAX, h in any_u256()) {
        use DifficultyConvention::*;
        let diff = Difficulty::new(d as f64).unwrap();
        // Use the exact integer the f64 holds.
        let di = diff.as_f64() as u128;
        let dk = U256::from_u128(di);
        let bitcoin = Bitcoin.target_for(diff).as_u256();
        prop_assert_eq!(bitcoin, otedama_core::BITCOIN_DIFF1_TARGET.as_u256().checked_div(dk).unwrap());
        let scrypt = Scrypt.target_for(diff).as_u256();
        prop_assert_eq!(scrypt, otedama_core::SCRYPT_DIFF1_TARGET.as_u256().checked_div(dk).unwrap());
        let monero = Monero.target_for(diff).as_u256();
        prop_assert_eq!(monero, U256::MAX.checked_div(dk).unwrap());
        let ethash = Ethash.target_for(diff).as_u256();
        let (q, r) = U256::MAX.div_rem(dk).unwrap();
        let exact = if r.checked_add(U256::ONE) == Some(dk) { q.checked_add(U256::ONE).unwrap_or(U256::MAX) } else { q };
        prop_assert_eq!(ethash, exact);
        // Monero's check_hash agrees with the target.
        if let Ok(d64) = u64::try_from(di) {
            let hash = h.to_le_bytes();
            prop_assert_eq!(monero_check_hash(&hash, d64), Monero.target_for(diff).is_met_by(&hash));
            let top = (monero >> 192).low_u64();
            let boundary = U256::from_u64(top) << 192;
            prop_assert_eq!(monero_check_hash(&boundary.to_le_bytes(), d64), boundary <= monero);
        }
    }

    #[test]
    fn fractional_difficulties_are_exact(k in 1u32..u32::MAX, j in 0u32..20) {
        // d = k / 2^j exactly: target = floor(diff1 · 2^j / k).
        let d = f64::from(k) / 2f64.powi(j as i32);
        let diff = Difficulty::new(d).unwrap();
        let expected = (otedama_core::BITCOIN_DIFF1_TARGET.as_u256() << j)
            .checked_div(U256::from_u64(u64::from(k)))
            .unwrap();
        prop_assert_eq!(DifficultyConvention::Bitcoin.target_for(diff).as_u256(), expected);
    }

    #[test]
    fn share_difficulty_matches_target(h in nonzero_u256()) {
        use DifficultyConvention::*;
        let sd = Bitcoin.share_difficulty(&h.to_le_bytes());
        let expected = otedama_core::BITCOIN_DIFF1_TARGET.as_u256().to_f64() / h.to_f64();
        prop_assert!(rel_err(sd, expected) < 1e-15);
        let sd_eth = Ethash.share_difficulty(&h.to_be_bytes());
        prop_assert!(rel_err(sd_eth, 2f64.powi(256) / h.to_f64()) < 1e-15);
    }

    // ----- Work -----------------------------------------------------------------------------

    #[test]
    fn work_is_floor_of_two_pow_256_over_target_plus_one(t in any_u256()) {
        let work = Work::from_target(&Target::from_u256(t)).as_u256();
        match t.checked_add(U256::ONE) {
            None => prop_assert_eq!(work, U256::ONE),
            Some(t1) => {
                let (q, r) = U256::MAX.div_rem(t1).unwrap();
                let exact = if r.checked_add(U256::ONE) == Some(t1) { q.checked_add(U256::ONE) } else { Some(q) };
                prop_assert_eq!(work, exact.unwrap_or(U256::MAX));
                // rust-bitcoin defines the work of targets 0 and 1 as MAX; Core (and we)
                // give 2^255 for target 1.
                if t > U256::ONE {
                    let theirs = bitcoin::pow::Target::from_be_bytes(t.to_be_bytes()).to_work();
                    prop_assert_eq!(work.to_be_bytes(), theirs.to_be_bytes());
                }
            }
        }
    }

    // ----- Monero stratum targets -------------------------------------------------------------

    #[test]
    fn monero_long_round_trip(d in 1u64..u64::MAX, hash in any::<[u8; 32]>()) {
        let t = MoneroTarget::long_from_difficulty(d).unwrap();
        let hex = t.to_hex();
        prop_assert_eq!(hex.len(), 16);
        prop_assert_eq!(MoneroTarget::from_hex(&hex).unwrap(), t);
        prop_assert_eq!(MoneroTarget::from_hex(&hex.to_uppercase()).unwrap(), t);
        let back = t.difficulty();
        if d <= u64::from(u32::MAX) {
            prop_assert_eq!(back, d);
        } else {
            prop_assert!(back >= d);
            prop_assert!(((back - d) as f64) / (d as f64) <= 2.0 * (d as f64) / 2f64.powi(64));
        }
        prop_assert_eq!(t.is_met_by(&hash), t.to_target().is_met_by(&hash));
    }

    #[test]
    fn monero_short_round_trip(d in 1u64..u64::from(u32::MAX), hash in any::<[u8; 32]>()) {
        let t = MoneroTarget::short_from_difficulty(d).unwrap();
        let hex = t.to_hex();
        prop_assert_eq!(hex.len(), 8);
        prop_assert_eq!(MoneroTarget::from_hex(&hex).unwrap(), t);
        let back = t.difficulty() as f64;
        let t32 = f64::from(u32::MAX / d as u32);
        // The 4-byte form has a resolution of one part in t32.
        prop_assert!(rel_err(back, d as f64) <= 2.0 / t32 + 1e-12, "{} -> {}", d, back);
        prop_assert_eq!(t.is_met_by(&hash), t.to_target().is_met_by(&hash));
        if d <= MoneroTarget::SHORT_FORM_MAX_DIFFICULTY {
            prop_assert_eq!(MoneroTarget::from_difficulty(d).unwrap(), t);
        }
    }

    // ----- Headers and merkle trees -------------------------------------------------------------

    #[test]
    fn header_round_trip(
        version in any::<u32>(), prev in any::<[u8; 32]>(), root in any::<[u8; 32]>(),
        time in any::<u32>(), bits in any::<u32>(), nonce in any::<u32>(),
    ) {
        let h = BlockHeader {
            version, prev_blockhash: prev, merkle_root: root, time,
            bits: CompactTarget::from_consensus(bits), nonce,
        };
        let bytes = h.to_bytes();
        prop_assert_eq!(BlockHeader::from_bytes(&bytes).unwrap(), h);
        let theirs = bitcoin::block::Header::from(h);
        prop_assert_eq!(bitcoin::consensus::encode::serialize(&theirs), bytes.to_vec());
        prop_assert_eq!(BlockHeader::from(theirs), h);
        prop_assert_eq!(
            bitcoin::hashes::Hash::to_byte_array(theirs.block_hash()),
            h.block_hash()
        );
    }

    #[test]
    fn header_from_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let parsed = BlockHeader::from_bytes(&bytes);
        prop_assert_eq!(parsed.is_ok(), bytes.len() == 80);
    }

    #[test]
    fn merkle_branch_matches_full_root(
        txids in proptest::collection::vec(any::<[u8; 32]>(), 1..=20),
        en1 in any::<[u8; 4]>(), en2 in any::<[u8; 4]>(),
    ) {
        let (coinbase, others) = txids.split_first().unwrap();
        let branch = MerkleBranch::from_txids(others);
        let full = merkle_root(&txids).unwrap();
        prop_assert_eq!(branch.root(coinbase), full);
        prop_assert_eq!(MerkleBranch::from_hashes(branch.hashes().to_vec()), branch.clone());
        // The bitcoin crate agrees on the full root.
        let theirs = bitcoin::merkle_tree::calculate_root(
            txids.iter().map(|t| <bitcoin::Txid as bitcoin::hashes::Hash>::from_byte_array(*t)),
        ).unwrap();
        prop_assert_eq!(bitcoin::hashes::Hash::to_byte_array(theirs), full);
        // Stratum form: the coinbase txid comes from coinb1 || en1 || en2 || coinb2.
        let coinb1 = b"prefix".to_vec();
        let coinb2 = b"suffix".to_vec();
        let stratum = stratum_merkle_root(&coinb1, &en1, &en2, &coinb2, &branch);
        let cb_txid = otedama_core::coinbase_txid_from_parts(&coinb1, &en1, &en2, &coinb2);
        let mut with_cb = vec![cb_txid];
        with_cb.extend_from_slice(others);
        prop_assert_eq!(Some(stratum), merkle_root(&with_cb));
    }

    #[test]
    fn prevhash_conversions_invert(h in any::<[u8; 32]>()) {
        use otedama_core::*;
        prop_assert_eq!(prevhash_to_stratum(&prevhash_from_stratum(&h)), h);
        prop_assert_eq!(prevhash_display_to_stratum(&prevhash_stratum_to_display(&h)), h);
        prop_assert_eq!(decode_hex32(&encode_hex(&h)).unwrap(), h);
    }
}
