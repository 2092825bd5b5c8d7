//! SHA-256d with the x86 SHA extensions, two nonces interleaved.
//!
//! `sha256rnds2` has a multi-cycle latency but can issue every cycle or two, so one dependency
//! chain leaves the unit idle; two independent nonces per iteration fill it.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_cvtsi128_si32, _mm_insert_epi32,
    _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
};

use super::portable::{IV, K};

/// Whether this CPU can run the SHA-NI backend.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
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
    ($m0:ident, $m1:ident, $m2:ident, $m3:ident) => {{
        let t = _mm_add_epi32(_mm_sha256msg1_epu32($m0, $m1), _mm_alignr_epi8($m3, $m2, 4));
        $m0 = _mm_sha256msg2_epu32(t, $m3);
    }};
}

/// Four rounds for each of two independent lanes.
macro_rules! rounds2x4 {
    ($q:expr, $a0:ident, $c0:ident, $m0:ident, $a1:ident, $c1:ident, $m1:ident) => {{
        let k = k4($q);
        let w0 = _mm_add_epi32($m0, k);
        let w1 = _mm_add_epi32($m1, k);
        $c0 = _mm_sha256rnds2_epu32($c0, $a0, w0);
        $c1 = _mm_sha256rnds2_epu32($c1, $a1, w1);
        $a0 = _mm_sha256rnds2_epu32($a0, $c0, _mm_shuffle_epi32(w0, 0x0E));
        $a1 = _mm_sha256rnds2_epu32($a1, $c1, _mm_shuffle_epi32(w1, 0x0E));
    }};
}

/// Quads 1..=15 of a compression for two lanes, after quad 0; stops after rounds 60-61 when
/// `$early` is true (enough for the last digest word).
macro_rules! quads_1_to_15 {
    ($a0:ident, $c0:ident, $a1:ident, $c1:ident,
     [$x0:ident, $x1:ident, $x2:ident, $x3:ident], [$y0:ident, $y1:ident, $y2:ident, $y3:ident],
     $early:expr) => {{
        rounds2x4!(1, $a0, $c0, $x1, $a1, $c1, $y1);
        rounds2x4!(2, $a0, $c0, $x2, $a1, $c1, $y2);
        rounds2x4!(3, $a0, $c0, $x3, $a1, $c1, $y3);
        macro_rules! step {
            ($q:expr, $p0:ident, $p1:ident, $p2:ident, $p3:ident,
                                                 $r0:ident, $r1:ident, $r2:ident, $r3:ident) => {{
                schedule!($p0, $p1, $p2, $p3);
                schedule!($r0, $r1, $r2, $r3);
                rounds2x4!($q, $a0, $c0, $p0, $a1, $c1, $r0);
            }};
        }
        step!(4, $x0, $x1, $x2, $x3, $y0, $y1, $y2, $y3);
        step!(5, $x1, $x2, $x3, $x0, $y1, $y2, $y3, $y0);
        step!(6, $x2, $x3, $x0, $x1, $y2, $y3, $y0, $y1);
        step!(7, $x3, $x0, $x1, $x2, $y3, $y0, $y1, $y2);
        step!(8, $x0, $x1, $x2, $x3, $y0, $y1, $y2, $y3);
        step!(9, $x1, $x2, $x3, $x0, $y1, $y2, $y3, $y0);
        step!(10, $x2, $x3, $x0, $x1, $y2, $y3, $y0, $y1);
        step!(11, $x3, $x0, $x1, $x2, $y3, $y0, $y1, $y2);
        step!(12, $x0, $x1, $x2, $x3, $y0, $y1, $y2, $y3);
        step!(13, $x1, $x2, $x3, $x0, $y1, $y2, $y3, $y0);
        step!(14, $x2, $x3, $x0, $x1, $y2, $y3, $y0, $y1);
        schedule!($x3, $x0, $x1, $x2);
        schedule!($y3, $y0, $y1, $y2);
        if $early {
            // Rounds 60-61 only: afterwards lane 0 of the new ABEF holds f, which is the e of
            // round 60 and so the h that the last two rounds would add into digest word 7.
            let k = k4(15);
            $c0 = _mm_sha256rnds2_epu32($c0, $a0, _mm_add_epi32($x3, k));
            $c1 = _mm_sha256rnds2_epu32($c1, $a1, _mm_add_epi32($y3, k));
        } else {
            rounds2x4!(15, $a0, $c0, $x3, $a1, $c1, $y3);
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

/// SHA256d of two header nonces (given as big-endian message words), returning for each the
/// last digest word only.
#[target_feature(enable = "sha,sse4.1,ssse3")]
#[inline]
#[allow(unused_assignments)] // the early stop leaves the last half-quad's state unread
unsafe fn last_words_pair(start: &Block2Start, iv: (__m128i, __m128i), w3: [u32; 2]) -> [u32; 2] {
    let pad1 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let zero = _mm_set_epi32(0, 0, 0, 0);
    let len1 = _mm_set_epi32(640, 0, 0, 0);
    let len2 = _mm_set_epi32(256, 0, 0, 0);
    // SAFETY: features enabled on this function; K loads stay in the table.
    unsafe {
        // Block 2, lanes 0 and 1; rounds 0-1 come precomputed.
        let (mut a0, mut a1) = (start.mid.0, start.mid.0);
        let (mut c0, mut c1) = (start.abef01, start.abef01);
        let half = |w3: u32| {
            let pair = (u64::from(w3.wrapping_add(K[3])) << 32) | u64::from(start.w2k);
            _mm_set_epi64x(0, pair as i64)
        };
        a0 = _mm_sha256rnds2_epu32(a0, c0, half(w3[0]));
        a1 = _mm_sha256rnds2_epu32(a1, c1, half(w3[1]));
        let (mut x0, mut x1, mut x2, mut x3) = (
            _mm_insert_epi32(start.base, w3[0] as i32, 3),
            pad1,
            zero,
            len1,
        );
        let (mut y0, mut y1, mut y2, mut y3) = (
            _mm_insert_epi32(start.base, w3[1] as i32, 3),
            pad1,
            zero,
            len1,
        );
        quads_1_to_15!(a0, c0, a1, c1, [x0, x1, x2, x3], [y0, y1, y2, y3], false);
        let (d0lo, d0hi) = unpack_state(
            _mm_add_epi32(a0, start.mid.0),
            _mm_add_epi32(c0, start.mid.1),
        );
        let (d1lo, d1hi) = unpack_state(
            _mm_add_epi32(a1, start.mid.0),
            _mm_add_epi32(c1, start.mid.1),
        );

        // The digest's own hash, stopped after round 61.
        let (mut a0, mut c0, mut a1, mut c1) = (iv.0, iv.1, iv.0, iv.1);
        let (mut x0, mut x1, mut x2, mut x3) = (d0lo, d0hi, pad1, len2);
        let (mut y0, mut y1, mut y2, mut y3) = (d1lo, d1hi, pad1, len2);
        rounds2x4!(0, a0, c0, x0, a1, c1, y0);
        quads_1_to_15!(a0, c0, a1, c1, [x0, x1, x2, x3], [y0, y1, y2, y3], true);
        [
            (_mm_cvtsi128_si32(c0) as u32).wrapping_add(IV[7]),
            (_mm_cvtsi128_si32(c1) as u32).wrapping_add(IV[7]),
        ]
    }
}

/// Scans nonces `start..=end` (inclusive, both as header nonces) and calls `hit` with the nonce
/// and final state words of every nonce whose top digest word passes `top_limit`.
///
/// # Safety
/// The CPU must support SHA, SSE4.1 and SSSE3 (see [`available`]).
#[target_feature(enable = "sha,sse4.1,ssse3")]
pub(crate) unsafe fn scan(
    midstate: &[u32; 8],
    tail: &[u32; 3],
    start: u32,
    end: u32,
    top_limit: u32,
    hit: &mut dyn FnMut(u32, [u32; 8]) -> bool,
) -> u64 {
    // SAFETY: the features are enabled on this function; the arrays have the sizes the loads
    // need.
    unsafe {
        let prepared = block2_start(midstate, tail);
        let iv = pack_state(&IV);
        let mut nonce = start;
        let mut done = 0u64;
        loop {
            let n0 = nonce;
            let n1 = nonce.wrapping_add(1);
            let last = last_words_pair(&prepared, iv, [n0.swap_bytes(), n1.swap_bytes()]);
            let count = if n0 == end { 1 } else { 2 };
            for (&n, h7) in [n0, n1].iter().zip(last).take(count) {
                // Digest word 7 holds the most significant bytes of the hash read as a
                // little-endian number; the rare nonce that passes is rehashed in full.
                if h7.swap_bytes() <= top_limit {
                    let words = super::portable::sha256d_tail(midstate, tail, n.swap_bytes());
                    if !hit(n, words) {
                        return done + count as u64;
                    }
                }
            }
            done += count as u64;
            if count == 1 || n1 == end {
                return done;
            }
            nonce = nonce.wrapping_add(2);
        }
    }
}
