//! scrypt N = 1024, r = 1 on 256-bit vectors, eight independent nonces per call.
//!
//! The state is kept "vertical": register k holds word k of all eight lanes, so Salsa20/8 needs
//! no shuffles at all. The scratchpad keeps the same layout (1 KiB per step), and the random reads
//! of the second loop, where each lane wants a different row, are gathers.
//!
//! The kernel is compiled twice: for AVX2, where a rotate is two shifts and an or, and for
//! AVX-512VL, which rotates in one instruction (`vprold`) on the same 256-bit registers.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_i32gather_epi32, _mm256_or_si256,
    _mm256_rol_epi32, _mm256_set1_epi32, _mm256_setr_epi32, _mm256_slli_epi32, _mm256_srli_epi32,
    _mm256_store_si256, _mm256_xor_si256,
};

use super::salsa::salsa8_rounds;
use super::{MiningKdf, MINING_N};

/// One 32-byte row of the vertical scratchpad: word k of eight lanes.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
pub(crate) struct Lane8([u32; 8]);

/// A scratchpad for the eight-lane kernels: 1 MiB, 32-byte aligned.
pub(crate) fn scratchpad() -> Vec<Lane8> {
    vec![Lane8::default(); MINING_N * 32]
}

macro_rules! rotl_shifts {
    ($v:expr, $n:literal) => {{
        let v = $v;
        _mm256_or_si256(
            _mm256_slli_epi32::<$n>(v),
            _mm256_srli_epi32::<{ 32 - $n }>(v),
        )
    }};
}

macro_rules! rotl_vprold {
    ($v:expr, $n:literal) => {
        _mm256_rol_epi32::<$n>($v)
    };
}

macro_rules! x8_kernel {
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
                    *o = _mm256_add_epi32(*o, v);
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn block_mix(lo: &mut [__m256i; 16], hi: &mut [__m256i; 16]) {
                for (l, h) in lo.iter_mut().zip(hi.iter()) {
                    *l = _mm256_xor_si256(*l, *h);
                }
                salsa(lo);
                for (h, l) in hi.iter_mut().zip(lo.iter()) {
                    *h = _mm256_xor_si256(*h, *l);
                }
                salsa(hi);
            }

            /// Hashes eight inputs (typically one header with eight nonces) with scrypt(N = 1024, r = 1,
            /// p = 1) and returns the eight 32-byte results in input order.
            ///
            /// # Safety
            /// The CPU must support every feature this module is compiled for.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn scrypt_1024_1_1_x8(
                inputs: &[Vec<u8>; 8],
                scratch: &mut [Lane8],
            ) -> [[u8; 32]; 8] {
                assert!(
                    scratch.len() >= MINING_N * 32,
                    "scrypt scratchpad too small"
                );
                let kdfs: [MiningKdf; 8] = core::array::from_fn(|l| MiningKdf::new(&inputs[l]));
                let lanes: [[u32; 32]; 8] = core::array::from_fn(|l| kdfs[l].expand(&inputs[l]));

                // Transpose eight 32-word states into 32 vertical registers.
                let mut lo = [_mm256_set1_epi32(0); 16];
                let mut hi = [_mm256_set1_epi32(0); 16];
                for k in 0..32 {
                    let w = |l: usize| lanes[l][k] as i32;
                    let v = _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
                    if k < 16 {
                        lo[k] = v;
                    } else {
                        hi[k - 16] = v;
                    }
                }

                let v = scratch.as_mut_ptr().cast::<__m256i>();
                for i in 0..MINING_N {
                    for k in 0..16 {
                        // SAFETY: row i of 32 vectors lies inside the scratchpad (i < 1024 and the pad holds
                        // 1024 * 32 rows); `Lane8` is 32-byte aligned.
                        unsafe {
                            let p = v.add(i * 32 + k);
                            _mm256_store_si256(p, lo[k]);
                            _mm256_store_si256(p.add(16), hi[k]);
                        }
                    }
                    block_mix(&mut lo, &mut hi);
                }

                let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mask = _mm256_set1_epi32((MINING_N - 1) as i32);
                let words = scratch.as_ptr().cast::<i32>();
                for _ in 0..MINING_N {
                    // Row j of lane l starts at word j * 256 + l; word k of it sits 8 * k further on.
                    let j = _mm256_and_si256(hi[0], mask);
                    let row = _mm256_add_epi32(_mm256_slli_epi32::<8>(j), lane_ids);
                    for k in 0..16 {
                        let idx_lo = _mm256_add_epi32(row, _mm256_set1_epi32(8 * k as i32));
                        let idx_hi = _mm256_add_epi32(row, _mm256_set1_epi32(8 * (k + 16) as i32));
                        // SAFETY: j < 1024 and k < 32, so every index is below 1024 * 256 words, inside the
                        // scratchpad written by the first loop.
                        unsafe {
                            lo[k] =
                                _mm256_xor_si256(lo[k], _mm256_i32gather_epi32::<4>(words, idx_lo));
                            hi[k] =
                                _mm256_xor_si256(hi[k], _mm256_i32gather_epi32::<4>(words, idx_hi));
                        }
                    }
                    block_mix(&mut lo, &mut hi);
                }

                let mut out_words = [[0u32; 32]; 8];
                let mut tmp = Lane8::default();
                for k in 0..32 {
                    let reg = if k < 16 { lo[k] } else { hi[k - 16] };
                    // SAFETY: `tmp` is a 32-byte aligned row of eight words.
                    unsafe { _mm256_store_si256((&mut tmp as *mut Lane8).cast(), reg) };
                    for (l, w) in tmp.0.iter().enumerate() {
                        out_words[l][k] = *w;
                    }
                }
                core::array::from_fn(|l| kdfs[l].finish(&out_words[l]))
            }
        }
    };
}

x8_kernel!(avx2, "avx2", rotl_shifts);
x8_kernel!(avx512vl, "avx2,avx512f,avx512vl", rotl_vprold);
