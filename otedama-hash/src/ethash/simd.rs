//! The hot loops compiled a second time with AVX2 enabled, chosen at run time.
//!
//! Both backends run the same source: [`LightCache::dataset_nodes`] and
//! [`progpow::mix_hashes`] are inlined into functions carrying
//! `#[target_feature(enable = "avx2")]`, where LLVM turns the 16-word FNV steps and the 16-lane
//! ProgPoW operations into 256-bit instructions (SSE2, the baseline, has no 32-bit lane
//! multiply and no per-lane shifts). A lean node loop lets more interleaved node walks sit in
//! the out-of-order window, so batched verification and dataset builds can interleave twice as
//! many hashes or nodes (see `mix_hashes_all`, `mixes_all` and the dataset fill) and keep twice
//! as many cache reads in flight; one-by-one verification waits on memory either way and does
//! not change. The ProgPoW math is about a quarter faster too, which shows in KawPow search.
//!
//! The backend ([`NodeBackend`]) is detected once per light cache; tests run both and compare.
//! This module sits above the light cache and the ProgPoW mix, whose loops it compiles, and
//! below the dataset and the hash kernels, which call it.

use super::light::LightCache;
use super::node::{FastMod, Lookup, Node, NodeBackend, L1_WORDS};
use super::progpow::{self, Program};

/// The dataset nodes at `indices` of `cache`, each mixing `parents` cache nodes, on `backend`.
#[inline]
pub(crate) fn dataset_nodes<const N: usize>(
    backend: NodeBackend,
    cache: &LightCache,
    indices: [u64; N],
    parents: u32,
) -> [Node; N] {
    match backend {
        NodeBackend::Portable => cache.dataset_nodes(indices, parents),
        #[cfg(target_arch = "x86_64")]
        NodeBackend::Avx2 => {
            // SAFETY: `Avx2` is only ever produced by `detect`, after the CPU reported AVX2
            // (tests check the same before naming it), so the instructions `nodes_avx2` is
            // compiled with are supported; it has no other requirements.
            unsafe { nodes_avx2(cache, indices, parents) }
        }
    }
}

/// [`progpow::mix_hashes`] on `backend`: with AVX2, the lane loops of the random math
/// (multiplies, per-lane rotates) become 256-bit instructions. It matters for search, where
/// dataset items are reads rather than computations.
#[inline]
pub(crate) fn progpow_mixes<L: Lookup, const K: usize, const N: usize>(
    backend: NodeBackend,
    seeds: [[u32; 2]; K],
    programs: [&Program; K],
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
) -> [[u32; 8]; K] {
    match backend {
        NodeBackend::Portable => progpow::mix_hashes::<L, K, N>(seeds, programs, l1, lookup, items),
        #[cfg(target_arch = "x86_64")]
        NodeBackend::Avx2 => {
            // SAFETY: as in `dataset_nodes`: `Avx2` means the CPU reported AVX2.
            unsafe { progpow_mixes_avx2::<L, K, N>(seeds, programs, l1, lookup, items) }
        }
    }
}

/// [`progpow::mix_hashes`] compiled with AVX2.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn progpow_mixes_avx2<L: Lookup, const K: usize, const N: usize>(
    seeds: [[u32; 2]; K],
    programs: [&Program; K],
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
) -> [[u32; 8]; K] {
    progpow::mix_hashes::<L, K, N>(seeds, programs, l1, lookup, items)
}

/// [`LightCache::dataset_nodes`] compiled with AVX2.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nodes_avx2<const N: usize>(
    cache: &LightCache,
    indices: [u64; N],
    parents: u32,
) -> [Node; N] {
    cache.dataset_nodes(indices, parents)
}
