//! SHA256d on AVX-512: sixteen nonces at once, one per 32-bit lane.
//!
//! Where a core has AVX-512, a "vertical" SHA-256 (register k holds word k of sixteen
//! independent hashes) does more work per cycle than the SHA extensions: rotates are one
//! instruction (`vprord`), and `vpternlogd` computes Ch, Maj and each three-way xor in one.

use core::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_cmple_epu32_mask, _mm512_set1_epi32, _mm512_setr_epi32,
    _mm512_shuffle_epi8, _mm512_ternarylogic_epi32,
};

use super::portable::{IV, K};

/// Whether this CPU can run the AVX-512 backend.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

type V = __m512i;

macro_rules! ror {
    ($x:expr, $n:literal) => {
        core::arch::x86_64::_mm512_ror_epi32::<$n>($x)
    };
}

macro_rules! shr {
    ($x:expr, $n:literal) => {
        core::arch::x86_64::_mm512_srli_epi32::<$n>($x)
    };
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn add(a: V, b: V) -> V {
    _mm512_add_epi32(a, b)
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn splat(x: u32) -> V {
    _mm512_set1_epi32(x as i32)
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn xor3(a: V, b: V, c: V) -> V {
    _mm512_ternarylogic_epi32::<0x96>(a, b, c)
}

/// (e & f) ^ (!e & g)
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn ch(e: V, f: V, g: V) -> V {
    _mm512_ternarylogic_epi32::<0xCA>(e, f, g)
}

/// Majority of a, b, c.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn maj(a: V, b: V, c: V) -> V {
    _mm512_ternarylogic_epi32::<0xE8>(a, b, c)
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn big_sigma0(a: V) -> V {
    xor3(ror!(a, 2), ror!(a, 13), ror!(a, 22))
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn big_sigma1(e: V) -> V {
    xor3(ror!(e, 6), ror!(e, 11), ror!(e, 25))
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn small_sigma0(w: V) -> V {
    xor3(ror!(w, 7), ror!(w, 18), shr!(w, 3))
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn small_sigma1(w: V) -> V {
    xor3(ror!(w, 17), ror!(w, 19), shr!(w, 10))
}

/// Extends the message schedule from its first sixteen words up to (not including) `upto`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn expand(w: &mut [V; 64], upto: usize) {
    for t in 16..upto.min(64) {
        w[t] = add(
            add(small_sigma1(w[t - 2]), w[t - 7]),
            add(small_sigma0(w[t - 15]), w[t - 16]),
        );
    }
}

/// One round; the caller rotates the names so no state moves between registers.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:expr, $t:expr) => {{
        let t1 = add(
            add($h, big_sigma1($e)),
            add(ch($e, $f, $g), add(splat(K[$t]), $w)),
        );
        let t2 = add(big_sigma0($a), maj($a, $b, $c));
        $d = add($d, t1);
        $h = add(t1, t2);
    }};
}

/// Runs `blocks` groups of eight rounds from round 0 over `state` (a..h).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn rounds(state: &mut [V; 8], w: &[V; 64], blocks: usize) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..blocks.min(8) {
        let t = 8 * i;
        round!(a, b, c, d, e, f, g, h, w[t], t);
        round!(h, a, b, c, d, e, f, g, w[t + 1], t + 1);
        round!(g, h, a, b, c, d, e, f, w[t + 2], t + 2);
        round!(f, g, h, a, b, c, d, e, w[t + 3], t + 3);
        round!(e, f, g, h, a, b, c, d, w[t + 4], t + 4);
        round!(d, e, f, g, h, a, b, c, w[t + 5], t + 5);
        round!(c, d, e, f, g, h, a, b, w[t + 6], t + 6);
        round!(b, c, d, e, f, g, h, a, w[t + 7], t + 7);
    }
    *state = [a, b, c, d, e, f, g, h];
}

/// Scans nonces `start..=end` (inclusive, as header nonces), sixteen at a time, and calls `hit`
/// with the nonce and final state words of every nonce whose top digest word passes
/// `top_limit`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW (see [`available`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn scan(
    midstate: &[u32; 8],
    tail: &[u32; 3],
    start: u32,
    end: u32,
    top_limit: u32,
    hit: &mut dyn FnMut(u32, [u32; 8]) -> bool,
) -> u64 {
    let lane_offsets = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Reverses the bytes of each 32-bit word: nonces are little-endian in the header, and the
    // digest's last word is compared as the little-endian top of the hash.
    let bswap = {
        let mut idx = [0i8; 64];
        for (i, b) in idx.iter_mut().enumerate() {
            *b = ((i & !3) + 3 - (i & 3)) as i8;
        }
        // SAFETY: `idx` is 64 readable bytes.
        unsafe { core::arch::x86_64::_mm512_loadu_si512(idx.as_ptr().cast()) }
    };
    let mid: [V; 8] = core::array::from_fn(|i| splat(midstate[i]));
    let iv: [V; 8] = core::array::from_fn(|i| splat(IV[i]));
    let limit = splat(top_limit);
    let zero = splat(0);
    let mut w1 = [zero; 64];
    w1[0] = splat(tail[0]);
    w1[1] = splat(tail[1]);
    w1[2] = splat(tail[2]);
    w1[4] = splat(0x8000_0000);
    w1[15] = splat(640);
    let mut w2 = [zero; 64];
    w2[8] = splat(0x8000_0000);
    w2[15] = splat(256);

    let mut done = 0u64;
    let mut base = start;
    loop {
        let remaining = u64::from(end - base) + 1;
        let count = remaining.min(16) as u32;
        let nonces = add(splat(base), lane_offsets);
        let mut w = w1;
        w[3] = _mm512_shuffle_epi8(nonces, bswap);
        expand(&mut w, 64);
        let mut s = mid;
        rounds(&mut s, &w, 8);
        let mut w = w2;
        for i in 0..8 {
            w[i] = add(s[i], mid[i]);
        }
        // Rounds 0..=60 of the second hash are enough: the e of round 60 is the h that the
        // last rounds add into digest word 7.
        expand(&mut w, 61);
        let mut s = iv;
        rounds(&mut s, &w, 7);
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = s;
        round!(a, b, c, d, e, f, g, h, w[56], 56);
        round!(h, a, b, c, d, e, f, g, w[57], 57);
        round!(g, h, a, b, c, d, e, f, w[58], 58);
        round!(f, g, h, a, b, c, d, e, w[59], 59);
        round!(e, f, g, h, a, b, c, d, w[60], 60);
        let _ = (a, b, c, d, e, f, g);
        let h7 = add(h, iv[7]);
        let lanes_in_range = if count == 16 {
            u16::MAX
        } else {
            (1u16 << count) - 1
        };
        let mut passing =
            _mm512_cmple_epu32_mask(_mm512_shuffle_epi8(h7, bswap), limit) & lanes_in_range;
        while passing != 0 {
            let lane = passing.trailing_zeros();
            passing &= passing - 1;
            let nonce = base.wrapping_add(lane);
            let words = super::portable::sha256d_tail(midstate, tail, nonce.swap_bytes());
            if !hit(nonce, words) {
                return done + u64::from(count);
            }
        }
        done += u64::from(count);
        if count < 16 || base.wrapping_add(15) == end {
            return done;
        }
        base = base.wrapping_add(16);
    }
}
