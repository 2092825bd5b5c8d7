//! SHA-256d with the x86 SHA extensions, several nonces interleaved.
//!
//! `sha256rnds2` has a latency of several cycles but can issue far more often (on Zen 4: four
//! cycles, one per cycle), so one dependency chain leaves the unit idle most of the time. Each
//! iteration hashes [`LANES`] independent nonces, one chain each, to keep it busy.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_cvtsi128_si32, _mm_insert_epi32,
    _mm_loadu_si128, _mm_ror_epi32, _mm_set_epi32, _mm_set_epi64x, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_srli_epi32, _mm_ternarylogic_epi32,
};

use super::portable::{IV, K};

/// Nonces hashed per iteration. Four chains cover the latency of `sha256rnds2` on cores that
/// issue it every cycle; where it issues less often the extra lanes cost only registers.
pub(crate) const LANES: usize = 4;

/// Whether this CPU can run the SHA-NI backend.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// Whether this CPU can run the SHA-NI backend with AVX-512VL.
pub(crate) fn available_vl() -> bool {
    available()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[target_feature(enable = "sha,sse4.1,ssse3")]
#[inline]
unsafe fn k4(q: usize) -> __m128i {
    debug_assert!(q < 16);
    // SAFETY: q < 16, so the 16 bytes at K[4q..4q+4] lie inside the 64-word table.
    unsafe { _mm_loadu_si128(K.as_ptr().add(4 * q).cast()) }
}

/// Converts state words A..H into the (ABEF, CDGH) register pair that `sha256rnds2` works on.
#[target_feature(enable = "sha,sse4.1,ssse3")]
#[inline]
unsafe fn pack_state(h: &[u32; 8]) -> (__m128i, __m128i) {
    // SAFETY: `h` has eight words; each load reads four of them.
    let (lo, hi) = unsafe {
        (
            _mm_loadu_si128(h.as_ptr().cast()),
            _mm_loadu_si128(h.as_ptr().add(4).cast()),
        )
    };
    let cdab = _mm_shuffle_epi32(lo, 0xB1);
    let hgfe = _mm_shuffle_epi32(hi, 0x1B);
    (
        _mm_alignr_epi8(cdab, hgfe, 8),
        _mm_blend_epi16(hgfe, cdab, 0xF0),
    )
}

/// Converts (ABEF, CDGH) back into message-order vectors (A, B, C, D) and (E, F, G, H).
#[target_feature(enable = "sha,sse4.1,ssse3")]
#[inline]
fn unpack_state(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    (
        _mm_blend_epi16(feba, dchg, 0xF0),
        _mm_alignr_epi8(dchg, feba, 8),
    )
}

/// Computes message words W[4q..4q+4] from the previous sixteen.
macro_rules! schedule {
    ($m0:expr, $m1:expr, $m2:expr, $m3:expr) => {{
        // `msg1` is the kernel's own: the SHA instruction, or its AVX-512VL equivalent.
        let t = _mm_add_epi32(msg1($m0, $m1), _mm_alignr_epi8($m3, $m2, 4));
        $m0 = _mm_sha256msg2_epu32(t, $m3);
    }};
}

/// Rounds 4q..4q+4 in every lane, on message words `$m[lane][$j]`.
macro_rules! quad {
    ($q:expr, $abef:ident, $cdgh:ident, $m:ident, $j:literal) => {{
        let k = k4($q);
        let mut w = [k; LANES];
        for l in 0..LANES {
            w[l] = _mm_add_epi32($m[l][$j], k);
        }
        for l in 0..LANES {
            $cdgh[l] = _mm_sha256rnds2_epu32($cdgh[l], $abef[l], w[l]);
        }
        for l in 0..LANES {
            $abef[l] = _mm_sha256rnds2_epu32($abef[l], $cdgh[l], _mm_shuffle_epi32(w[l], 0x0E));
        }
    }};
}

/// Quads 1..=15 of a compression in every lane, after quad 0; stops after rounds 60-61 when
/// `$early` is true (enough for the last digest word).
macro_rules! quads_1_to_15 {
    ($abef:ident, $cdgh:ident, $m:ident, $early:expr) => {{
        quad!(1, $abef, $cdgh, $m, 1);
        quad!(2, $abef, $cdgh, $m, 2);
        quad!(3, $abef, $cdgh, $m, 3);
        macro_rules! step {
            ($q:expr, $p0:literal, $p1:literal, $p2:literal, $p3:literal) => {{
                for l in 0..LANES {
                    schedule!($m[l][$p0], $m[l][$p1], $m[l][$p2], $m[l][$p3]);
                }
                quad!($q, $abef, $cdgh, $m, $p0);
            }};
        }
        step!(4, 0, 1, 2, 3);
        step!(5, 1, 2, 3, 0);
        step!(6, 2, 3, 0, 1);
        step!(7, 3, 0, 1, 2);
        step!(8, 0, 1, 2, 3);
        step!(9, 1, 2, 3, 0);
        step!(10, 2, 3, 0, 1);
        step!(11, 3, 0, 1, 2);
        step!(12, 0, 1, 2, 3);
        step!(13, 1, 2, 3, 0);
        step!(14, 2, 3, 0, 1);
        if $early {
            // Rounds 60-61 only: afterwards lane 0 of the new ABEF holds f, which is the e of
            // round 60 and so the h that the last two rounds would add into digest word 7.
            let k = k4(15);
            for l in 0..LANES {
                schedule!($m[l][3], $m[l][0], $m[l][1], $m[l][2]);
                $cdgh[l] = _mm_sha256rnds2_epu32($cdgh[l], $abef[l], _mm_add_epi32($m[l][3], k));
            }
        } else {
            step!(15, 3, 0, 1, 2);
        }
    }};
}

/// The state after rounds 0-1 of the header's second block, which use only words the nonce
/// does not touch.
#[derive(Clone, Copy)]
struct Block2Start {
    mid: (__m128i, __m128i),
    /// ABEF after rounds 0-1 (the old ABEF is the new CDGH).
    abef01: __m128i,
    /// W2 + K2 in the low word, for the half-quad that also takes the nonce.
    w2k: u32,
    /// Words 0..3 without the nonce (lane 3 zero).
    base: __m128i,
}

#[target_feature(enable = "sha,sse4.1,ssse3")]
#[inline]
unsafe fn block2_start(midstate: &[u32; 8], tail: &[u32; 3]) -> Block2Start {
    // SAFETY: features enabled on this function; the state array has eight words.
    unsafe {
        let mid = pack_state(midstate);
        let base = _mm_set_epi32(0, tail[2] as i32, tail[1] as i32, tail[0] as i32);
        let abef01 = _mm_sha256rnds2_epu32(mid.1, mid.0, _mm_add_epi32(base, k4(0)));
        Block2Start {
            mid,
            abef01,
            w2k: tail[2].wrapping_add(K[2]),
            base,
        }
    }
}

/// `sha256msg1` done on AVX-512VL: W[i] + sigma0(W[i + 1]) for four words. On Zen 4 this
/// takes the shared SHA unit off one instruction per four rounds, for about 3 % more hashes.
#[target_feature(enable = "sha,sse4.1,ssse3,avx512f,avx512vl")]
#[inline]
fn msg1_vl(a: __m128i, b: __m128i) -> __m128i {
    let x = _mm_alignr_epi8(b, a, 4);
    let sigma0 = _mm_ternarylogic_epi32::<0x96>(
        _mm_ror_epi32::<7>(x),
        _mm_ror_epi32::<18>(x),
        _mm_srli_epi32::<3>(x),
    );
    _mm_add_epi32(a, sigma0)
}

/// The nonce loop, compiled once per way of computing `sha256msg1`.
macro_rules! kernel {
    ($module:ident, $features:literal, $msg1:path) => {
        pub(crate) mod $module {
            use super::*;
            use $msg1 as msg1;

            /// SHA256d of [`LANES`] header nonces (given as big-endian message words),
            /// returning for each the last digest word only.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn last_words(
                start: &Block2Start,
                iv: (__m128i, __m128i),
                w3: [u32; LANES],
            ) -> [u32; LANES] {
                let pad1 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
                let zero = _mm_set_epi32(0, 0, 0, 0);
                let len1 = _mm_set_epi32(640, 0, 0, 0);
                let len2 = _mm_set_epi32(256, 0, 0, 0);
                // SAFETY: features enabled on this function; K loads stay in the table.
                unsafe {
                    // Block 2; rounds 0-1 come precomputed, rounds 2-3 take the nonce.
                    let mut abef = [start.mid.0; LANES];
                    let mut cdgh = [start.abef01; LANES];
                    let mut m = [[start.base, pad1, zero, len1]; LANES];
                    for l in 0..LANES {
                        let pair =
                            (u64::from(w3[l].wrapping_add(K[3])) << 32) | u64::from(start.w2k);
                        abef[l] =
                            _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_set_epi64x(0, pair as i64));
                        m[l][0] = _mm_insert_epi32(start.base, w3[l] as i32, 3);
                    }
                    quads_1_to_15!(abef, cdgh, m, false);

                    // The digest's own hash, stopped after round 61.
                    let mut digest = [[zero, zero, pad1, len2]; LANES];
                    for l in 0..LANES {
                        let (lo, hi) = unpack_state(
                            _mm_add_epi32(abef[l], start.mid.0),
                            _mm_add_epi32(cdgh[l], start.mid.1),
                        );
                        digest[l][0] = lo;
                        digest[l][1] = hi;
                    }
                    let mut abef = [iv.0; LANES];
                    let mut cdgh = [iv.1; LANES];
                    quad!(0, abef, cdgh, digest, 0);
                    quads_1_to_15!(abef, cdgh, digest, true);
                    let mut last = [0u32; LANES];
                    for l in 0..LANES {
                        last[l] = (_mm_cvtsi128_si32(cdgh[l]) as u32).wrapping_add(IV[7]);
                    }
                    last
                }
            }

            /// Scans nonces `start..=end` (inclusive, both as header nonces) and calls `hit`
            /// with the nonce and final state words of every nonce whose top digest word
            /// passes `top_limit`.
            ///
            /// # Safety
            /// The CPU must support every feature this module is compiled for (see
            /// [`available`] and [`available_vl`]).
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn scan(
                midstate: &[u32; 8],
                tail: &[u32; 3],
                start: u32,
                end: u32,
                top_limit: u32,
                hit: &mut dyn FnMut(u32, [u32; 8]) -> bool,
            ) -> u64 {
                // SAFETY: the features are enabled on this function; the arrays have the sizes
                // the loads need.
                unsafe {
                    let prepared = super::block2_start(midstate, tail);
                    let iv = super::pack_state(&IV);
                    let mut base = start;
                    let mut done = 0u64;
                    loop {
                        // Past `end` the spare lanes hash nonces that are neither counted nor
                        // reported.
                        let count = (u64::from(end - base) + 1).min(LANES as u64) as u32;
                        let mut words = [0u32; LANES];
                        for (l, w) in words.iter_mut().enumerate() {
                            *w = base.wrapping_add(l as u32).swap_bytes();
                        }
                        let last = last_words(&prepared, iv, words);
                        for (lane, h7) in last.iter().enumerate().take(count as usize) {
                            // Digest word 7 holds the most significant bytes of the hash read as a
                            // little-endian number; the rare nonce that passes is rehashed in full.
                            if h7.swap_bytes() <= top_limit {
                                let n = base.wrapping_add(lane as u32);
                                let words = super::super::portable::sha256d_tail(
                                    midstate,
                                    tail,
                                    n.swap_bytes(),
                                );
                                if !hit(n, words) {
                                    return done + u64::from(count);
                                }
                            }
                        }
                        done += u64::from(count);
                        if base.wrapping_add(count - 1) == end {
                            return done;
                        }
                        base = base.wrapping_add(count);
                    }
                }
            }
        }
    };
}

kernel!(
    plain,
    "sha,sse4.1,ssse3",
    core::arch::x86_64::_mm_sha256msg1_epu32
);
kernel!(vl, "sha,sse4.1,ssse3,avx512f,avx512vl", super::msg1_vl);
