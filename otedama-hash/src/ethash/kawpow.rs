//! KawPow's hash: ProgPoW 0.9.4 between two Keccak-f[800] passes padded with "RAVENCOINKAWPOW".

use super::ethash::words8;
use super::keccak::keccakf800;
use super::node::{FastMod, Lookup, NodeBackend, L1_WORDS};
use super::progpow::Program;
use super::simd;

/// Blocks per ProgPoW period: the program changes every three blocks.
pub(crate) const PERIOD_LENGTH: u64 = 3;

/// Ravencoin's padding words, one letter per word: 'r' (lowercase), then "AVENCOINKAWPOW".
const RAVENCOIN_KAWPOW: [u32; 15] = [
    0x72, 0x41, 0x56, 0x45, 0x4e, 0x43, 0x4f, 0x49, 0x4e, 0x4b, 0x41, 0x57, 0x50, 0x4f, 0x57,
];

/// The mix hash and final hash of one KawPow evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KawPowHash {
    pub(crate) mix: [u8; 32],
    pub(crate) final_hash: [u8; 32],
}

/// The first pass: header hash words, the nonce, and the 15 padding words. Its first eight
/// output words carry into the final pass; the first two seed the mix.
#[inline]
pub(crate) fn initial_state(header_hash: &[u8; 32], nonce: u64) -> [u32; 8] {
    let mut state = [0u32; 25];
    state[..8].copy_from_slice(&words8(header_hash));
    state[8] = nonce as u32;
    state[9] = (nonce >> 32) as u32;
    state[10..].copy_from_slice(&RAVENCOIN_KAWPOW);
    keccakf800(&mut state);
    let mut out = [0u32; 8];
    out.copy_from_slice(&state[..8]);
    out
}

/// The final pass: the carried words, the mix hash, and the first nine padding words.
#[inline]
pub(crate) fn final_hash(carried: &[u32; 8], mix: &[u8; 32]) -> [u8; 32] {
    let mut state = [0u32; 25];
    state[..8].copy_from_slice(carried);
    state[8..16].copy_from_slice(&words8(mix));
    state[16..].copy_from_slice(&RAVENCOIN_KAWPOW[..9]);
    keccakf800(&mut state);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

fn mix_bytes(words: [u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// The mix hash for a first-pass state.
#[inline]
pub(crate) fn mix<L: Lookup>(
    carried: &[u32; 8],
    program: &Program,
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
) -> [u8; 32] {
    let [words] = simd::progpow_mixes::<L, 1, 4>(
        lookup.backend(),
        [[carried[0], carried[1]]],
        [program],
        l1,
        lookup,
        items,
    );
    mix_bytes(words)
}

/// Mix hashes for any number of (first-pass state, program) pairs, several at a time: four
/// with AVX2 (sixteen node walks in flight), two on the portable path.
pub(crate) fn mixes_all<L: Lookup>(
    jobs: &[([u32; 8], &Program)],
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
    out: &mut [[u8; 32]],
) {
    match lookup.backend() {
        NodeBackend::Portable => in_groups::<L, 2, 8>(jobs, l1, lookup, items, out),
        #[cfg(target_arch = "x86_64")]
        NodeBackend::Avx2 => in_groups::<L, 4, 16>(jobs, l1, lookup, items, out),
    }
}

/// Mix hashes in groups of `K` (`N = 4·K` nodes per lookup), the rest one at a time.
fn in_groups<L: Lookup, const K: usize, const N: usize>(
    jobs: &[([u32; 8], &Program)],
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
    out: &mut [[u8; 32]],
) {
    let mut job_groups = jobs.chunks_exact(K);
    let mut out_groups = out.chunks_exact_mut(K);
    for (group, dst) in (&mut job_groups).zip(&mut out_groups) {
        let (Ok(group), Ok(dst)) = (
            <&[([u32; 8], &Program); K]>::try_from(group),
            <&mut [[u8; 32]; K]>::try_from(dst),
        ) else {
            continue;
        };
        let seeds = group.map(|(carried, _)| [carried[0], carried[1]]);
        let programs = group.map(|(_, program)| program);
        let words =
            simd::progpow_mixes::<L, K, N>(lookup.backend(), seeds, programs, l1, lookup, items);
        for (d, w) in dst.iter_mut().zip(words) {
            *d = mix_bytes(w);
        }
    }
    for ((carried, program), dst) in job_groups
        .remainder()
        .iter()
        .zip(out_groups.into_remainder())
    {
        *dst = mix(carried, program, l1, lookup, items);
    }
}

/// The whole evaluation for a header hash and nonce.
#[inline]
pub(crate) fn hash<L: Lookup>(
    program: &Program,
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
    header_hash: &[u8; 32],
    nonce: u64,
) -> KawPowHash {
    let carried = initial_state(header_hash, nonce);
    let mix = mix(&carried, program, l1, lookup, items);
    KawPowHash {
        mix,
        final_hash: final_hash(&carried, &mix),
    }
}
