//! Ethash's hash: hashimoto over the dataset, light (items from the cache) or full.

use super::keccak::{keccak256_seed_mix, keccak512_header_nonce};
use super::node::{fnv1, FastMod, Lookup, NodeBackend};

/// Dataset reads per hash.
const ACCESSES: u32 = 64;

/// The words of a 128-byte mix.
const MIX_WORDS: usize = 32;

/// The mix hash and final hash of one Ethash evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EthashHash {
    pub(crate) mix: [u8; 32],
    pub(crate) final_hash: [u8; 32],
}

/// Ethash's seed for a header hash and nonce: Keccak-512 of the 40 bytes.
#[inline]
pub(crate) fn seed(header_hash: &[u8; 32], nonce: u64) -> [u32; 16] {
    keccak512_header_nonce(header_hash, nonce)
}

/// The final hash for a seed and a mix hash (claimed or computed).
#[inline]
pub(crate) fn final_hash(seed: &[u32; 16], mix: &[u8; 32]) -> [u8; 32] {
    keccak256_seed_mix(seed, &words8(mix))
}

/// Hashimoto for `K` seeds at once: 64 reads of 128-byte items at indices that depend on the
/// mix so far, folded in with FNV, then compressed to 32 bytes. The `K` hashes advance in
/// lockstep so that their `N = 2·K` item halves are looked up together.
#[inline]
pub(crate) fn mix_hashes<L: Lookup, const K: usize, const N: usize>(
    seeds: &[[u32; 16]; K],
    lookup: &L,
    items: FastMod,
) -> [[u8; 32]; K] {
    const { assert!(N == 2 * K) };
    let mut mixes = [[0u32; MIX_WORDS]; K];
    for (mix, seed) in mixes.iter_mut().zip(seeds) {
        mix[..16].copy_from_slice(seed);
        mix[16..].copy_from_slice(seed);
    }
    for i in 0..ACCESSES {
        let mut nodes = [0u64; N];
        for ((pair, mix), seed) in nodes.chunks_exact_mut(2).zip(&mixes).zip(seeds) {
            let index = items.reduce(fnv1(i ^ seed[0], mix[i as usize % MIX_WORDS]));
            pair[0] = u64::from(index) * 2;
            pair[1] = u64::from(index) * 2 + 1;
        }
        let data = lookup.nodes(nodes);
        for (mix, pair) in mixes.iter_mut().zip(data.chunks_exact(2)) {
            let (lo, hi) = mix.split_at_mut(16);
            for (m, d) in lo.iter_mut().zip(pair[0].0) {
                *m = fnv1(*m, d);
            }
            for (m, d) in hi.iter_mut().zip(pair[1].0) {
                *m = fnv1(*m, d);
            }
        }
    }
    let mut out = [[0u8; 32]; K];
    for (o, mix) in out.iter_mut().zip(&mixes) {
        for (chunk, four) in o.chunks_exact_mut(4).zip(mix.chunks_exact(4)) {
            let folded = fnv1(fnv1(fnv1(four[0], four[1]), four[2]), four[3]);
            chunk.copy_from_slice(&folded.to_le_bytes());
        }
    }
    out
}

/// Hashimoto for one seed.
#[inline]
pub(crate) fn mix_hash<L: Lookup>(seed: &[u32; 16], lookup: &L, items: FastMod) -> [u8; 32] {
    let [mix] = mix_hashes::<L, 1, 2>(&[*seed], lookup, items);
    mix
}

/// Mix hashes for any number of seeds, several at a time: eight with AVX2, whose lean node
/// loop keeps sixteen walks in flight, four on the portable path, where more would crowd the
/// out-of-order window.
pub(crate) fn mix_hashes_all<L: Lookup>(
    seeds: &[[u32; 16]],
    lookup: &L,
    items: FastMod,
    out: &mut [[u8; 32]],
) {
    match lookup.backend() {
        NodeBackend::Portable => in_groups::<L, 4, 8>(seeds, lookup, items, out),
        #[cfg(target_arch = "x86_64")]
        NodeBackend::Avx2 => in_groups::<L, 8, 16>(seeds, lookup, items, out),
    }
}

/// Mix hashes in groups of `K` (`N = 2·K` nodes per lookup), the rest one at a time.
fn in_groups<L: Lookup, const K: usize, const N: usize>(
    seeds: &[[u32; 16]],
    lookup: &L,
    items: FastMod,
    out: &mut [[u8; 32]],
) {
    let mut seed_groups = seeds.chunks_exact(K);
    let mut out_groups = out.chunks_exact_mut(K);
    for (group, dst) in (&mut seed_groups).zip(&mut out_groups) {
        if let (Ok(group), Ok(dst)) = (
            <&[[u32; 16]; K]>::try_from(group),
            <&mut [[u8; 32]; K]>::try_from(dst),
        ) {
            *dst = mix_hashes::<L, K, N>(group, lookup, items);
        }
    }
    for (seed, dst) in seed_groups
        .remainder()
        .iter()
        .zip(out_groups.into_remainder())
    {
        *dst = mix_hash(seed, lookup, items);
    }
}

/// The whole evaluation for a header hash and nonce.
#[inline]
pub(crate) fn hash<L: Lookup>(
    lookup: &L,
    items: FastMod,
    header_hash: &[u8; 32],
    nonce: u64,
) -> EthashHash {
    let seed = seed(header_hash, nonce);
    let mix = mix_hash(&seed, lookup, items);
    EthashHash {
        mix,
        final_hash: final_hash(&seed, &mix),
    }
}

/// Eight little-endian words of 32 bytes.
#[inline]
pub(crate) fn words8(bytes: &[u8; 32]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (w, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    out
}
