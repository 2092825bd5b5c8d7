//! scrypt N = 1024, r = 1 on 256-bit vectors, eight independent nonces per call.
//!
//! The state is kept "vertical": register k holds word k of all eight lanes, so Salsa20/8 needs
//! no shuffles at all. The scratchpad is not: each lane's rows lie contiguous in its own
//! 128 KiB, so the random reads of the second loop fetch whole cache lines per lane (four
//! loads) instead of gathering one word per lane and word (thirty-two gathers). The price is an
//! 8 x 8 transpose of each row on the way in and out, which costs less than the gathers did and
//! lets the hardware prefetch the adjacent line.
//!
//! The kernel is compiled twice: for AVX2, where a rotate is two shifts and an or, and for
//! AVX-512VL, which rotates in one instruction (`vprold`) on the same 256-bit registers.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_load_si256, _mm256_or_si256, _mm256_permute2x128_si256,
    _mm256_rol_epi32, _mm256_set1_epi32, _mm256_slli_epi32, _mm256_srli_epi32, _mm256_store_si256,
    _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
    _mm256_xor_si256,
};

use super::salsa::salsa8_rounds;
use super::{MiningKdf, MINING_N};

/// Lanes, one nonce each.
pub(crate) const LANES: usize = 8;

/// One 128-byte scratchpad row of one lane, two cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Row([u32; 32]);

/// A scratchpad for the eight-lane kernels: 1 MiB, lane after lane.
pub(crate) fn scratchpad() -> Vec<Row> {
    vec![Row([0; 32]); MINING_N * LANES]
}

/// Word l of each of eight vectors, for every l: turns eight vertical words into eight lanes'
/// rows, and back.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    // u[c] holds word c of vectors 0-3 in its low half and word c + 4 in its high half; v[c]
    // the same of vectors 4-7.
    let u = [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ];
    let v = [
        _mm256_unpacklo_epi64(t4, t6),
        _mm256_unpackhi_epi64(t4, t6),
        _mm256_unpacklo_epi64(t5, t7),
        _mm256_unpackhi_epi64(t5, t7),
    ];
    [
        _mm256_permute2x128_si256::<0x20>(u[0], v[0]),
        _mm256_permute2x128_si256::<0x20>(u[1], v[1]),
        _mm256_permute2x128_si256::<0x20>(u[2], v[2]),
        _mm256_permute2x128_si256::<0x20>(u[3], v[3]),
        _mm256_permute2x128_si256::<0x31>(u[0], v[0]),
        _mm256_permute2x128_si256::<0x31>(u[1], v[1]),
        _mm256_permute2x128_si256::<0x31>(u[2], v[2]),
        _mm256_permute2x128_si256::<0x31>(u[3], v[3]),
    ]
}

macro_rules! rotl_shifts256 {
    ($v:expr, $n:literal) => {{
        let v = $v;
        _mm256_or_si256(
            _mm256_slli_epi32::<$n>(v),
            _mm256_srli_epi32::<{ 32 - $n }>(v),
        )
    }};
}

macro_rules! rotl_vprold256 {
    ($v:expr, $n:literal) => {
        _mm256_rol_epi32::<$n>($v)
    };
}

macro_rules! wide_kernel {
    ($module:ident, $features:literal, $rotl:ident) => {
        pub(crate) mod $module {
            use super::*;

            #[target_feature(enable = $features)]
            #[inline]
            fn add(a: __m256i, b: __m256i) -> __m256i {
                _mm256_add_epi32(a, b)
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn xor(a: __m256i, b: __m256i) -> __m256i {
                _mm256_xor_si256(a, b)
            }

            /// Salsa20/8 with feed-forward on 16 vertical words.
            #[target_feature(enable = $features)]
            #[inline]
            fn salsa(b: &mut [__m256i; 16]) {
                let mut x = *b;
                salsa8_rounds!(x, add, $rotl, xor);
                for (o, v) in b.iter_mut().zip(x) {
                    *o = add(*o, v);
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn block_mix(lo: &mut [__m256i; 16], hi: &mut [__m256i; 16]) {
                for (l, h) in lo.iter_mut().zip(hi.iter()) {
                    *l = xor(*l, *h);
                }
                salsa(lo);
                for (h, l) in hi.iter_mut().zip(lo.iter()) {
                    *h = xor(*h, *l);
                }
                salsa(hi);
            }

            /// Vertical words 8g..8g+8 of the 32-word state.
            #[target_feature(enable = $features)]
            #[inline]
            fn eighth(lo: &[__m256i; 16], hi: &[__m256i; 16], g: usize) -> [__m256i; 8] {
                let half = if g < 2 { lo } else { hi };
                let at = 8 * (g % 2);
                core::array::from_fn(|i| half[at + i])
            }

            /// Hashes eight inputs (typically one header with eight nonces) with
            /// scrypt(N = 1024, r = 1, p = 1) and returns the eight 32-byte results in input
            /// order.
            ///
            /// # Safety
            /// The CPU must support every feature this module is compiled for.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn scrypt_1024_1_1(
                inputs: &[Vec<u8>; LANES],
                scratch: &mut [Row],
            ) -> [[u8; 32]; LANES] {
                assert!(
                    scratch.len() >= MINING_N * LANES,
                    "scrypt scratchpad too small"
                );
                let kdfs: [MiningKdf; LANES] = core::array::from_fn(|l| MiningKdf::new(&inputs[l]));
                let mut rows: [Row; LANES] =
                    core::array::from_fn(|l| Row(kdfs[l].expand(&inputs[l])));

                // Each lane's row becomes the vertical state, eight words at a time.
                let mut lo = [_mm256_set1_epi32(0); 16];
                let mut hi = lo;
                for g in 0..4 {
                    // SAFETY: word 8g of a row is 32-byte aligned and eight words long.
                    let lanes: [__m256i; 8] = core::array::from_fn(|l| unsafe {
                        _mm256_load_si256(rows[l].0.as_ptr().add(8 * g).cast())
                    });
                    let words = transpose8(lanes);
                    let (half, at) = if g < 2 {
                        (&mut lo, 8 * g)
                    } else {
                        (&mut hi, 8 * (g - 2))
                    };
                    half[at..at + 8].copy_from_slice(&words);
                }

                let base = scratch.as_mut_ptr();
                for i in 0..MINING_N {
                    for g in 0..4 {
                        let lanes = transpose8(eighth(&lo, &hi, g));
                        for (l, v) in lanes.into_iter().enumerate() {
                            // SAFETY: lane l's row i is inside the scratchpad (l < 8, i < 1024,
                            // and it holds 8 * 1024 rows); word 8g of a row is 32-byte aligned.
                            unsafe {
                                let row = base.add(l * MINING_N + i);
                                _mm256_store_si256((*row).0.as_mut_ptr().add(8 * g).cast(), v);
                            }
                        }
                    }
                    block_mix(&mut lo, &mut hi);
                }

                let mask = (MINING_N - 1) as u32;
                let mut index = Row([0; 32]);
                for _ in 0..MINING_N {
                    // SAFETY: `index` is 32-byte aligned and at least eight words long.
                    unsafe { _mm256_store_si256(index.0.as_mut_ptr().cast(), hi[0]) };
                    let picked: [*const Row; LANES] = core::array::from_fn(|l| {
                        let j = (index.0[l] & mask) as usize;
                        // l < 8 and j < 1024: lane l's row j is inside the scratchpad.
                        base.wrapping_add(l * MINING_N + j).cast_const()
                    });
                    for g in 0..4 {
                        // SAFETY: each pointer is a row written by the first loop; word 8g of
                        // it is 32-byte aligned.
                        let lanes: [__m256i; 8] = core::array::from_fn(|l| unsafe {
                            _mm256_load_si256((*picked[l]).0.as_ptr().add(8 * g).cast())
                        });
                        let words = transpose8(lanes);
                        let (half, at) = if g < 2 {
                            (&mut lo, 8 * g)
                        } else {
                            (&mut hi, 8 * (g - 2))
                        };
                        for (w, v) in half[at..at + 8].iter_mut().zip(words) {
                            *w = xor(*w, v);
                        }
                    }
                    block_mix(&mut lo, &mut hi);
                }

                for g in 0..4 {
                    let lanes = transpose8(eighth(&lo, &hi, g));
                    for (row, v) in rows.iter_mut().zip(lanes) {
                        // SAFETY: word 8g of a row is 32-byte aligned and eight words long.
                        unsafe { _mm256_store_si256(row.0.as_mut_ptr().add(8 * g).cast(), v) };
                    }
                }
                core::array::from_fn(|l| kdfs[l].finish(&rows[l].0))
            }
        }
    };
}

wide_kernel!(avx2x8, "avx2", rotl_shifts256);
wide_kernel!(avx512x8, "avx2,avx512f,avx512vl", rotl_vprold256);
