//! The epoch context that ties a light cache to an algorithm, the lookups the hash loops read
//! dataset nodes through, and the full dataset.
//!
//! Everything is held as little-endian 32-bit words, the unit FNV works on; byte strings are
//! produced only at the edges. Nodes come from the light cache on the backend it was built for
//! (`simd`), so a light lookup, a dataset build and a single node all run the same loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tiny_keccak::{Hasher, Keccak};

use crate::algorithm::Progress;
use crate::HashError;

use super::epoch::{DagAlgorithm, EpochParams, ITEM_BYTES, NODE_BYTES};
use super::hugepages;
use super::light::LightCache;
use super::node::{flatten2, FastMod, Lookup, Node, NodeBackend, L1_WORDS};
use super::simd;

/// One 128-byte full-dataset item (two nodes), aligned to a cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Item(pub(crate) [u32; 32]);

/// The dataset nodes at `indices` of `cache`, each mixing `parents` cache nodes, on the fastest
/// backend this CPU has.
#[inline]
fn nodes_at<const N: usize>(cache: &LightCache, indices: [u64; N], parents: u32) -> [Node; N] {
    simd::dataset_nodes(cache.backend(), cache, indices, parents)
}

/// Nodes computed on demand from the light cache: verification needs nothing more.
#[derive(Clone, Copy)]
pub(crate) struct LightLookup<'a> {
    cache: &'a LightCache,
    parents: u32,
}

impl<'a> LightLookup<'a> {
    pub(crate) fn new(context: &'a EpochContext) -> Self {
        LightLookup {
            cache: &context.light,
            parents: context.algorithm.dataset_parents(),
        }
    }
}

impl Lookup for LightLookup<'_> {
    #[inline]
    fn nodes<const N: usize>(&self, indices: [u64; N]) -> [Node; N] {
        nodes_at(self.cache, indices, self.parents)
    }

    fn backend(&self) -> NodeBackend {
        self.cache.backend()
    }
}

/// Nodes read from a built dataset; those the dataset does not hold (a partial build) are
/// computed from the light cache instead, so a lookup never fails.
#[derive(Clone, Copy)]
pub(crate) struct FullLookup<'a> {
    dataset: &'a FullDataset,
    light: LightLookup<'a>,
}

impl<'a> FullLookup<'a> {
    pub(crate) fn new(dataset: &'a FullDataset) -> Self {
        FullLookup {
            dataset,
            light: LightLookup::new(&dataset.context),
        }
    }
}

impl Lookup for FullLookup<'_> {
    #[inline]
    fn nodes<const N: usize>(&self, indices: [u64; N]) -> [Node; N] {
        let mut out = [Node([0u32; 16]); N];
        for (node, index) in out.iter_mut().zip(indices) {
            let item = usize::try_from(index / 2)
                .ok()
                .and_then(|i| self.dataset.items.get(i));
            match item {
                Some(item) => {
                    let half = if index % 2 == 0 { 0..16 } else { 16..32 };
                    node.0.copy_from_slice(&item.0[half]);
                }
                None => {
                    let [computed] = self.light.nodes([index]);
                    *node = computed;
                }
            }
        }
        out
    }

    fn backend(&self) -> NodeBackend {
        self.light.backend()
    }
}

/// One epoch's verification state for one algorithm: the light cache (shared when both
/// algorithms use the same epoch number) and, for KawPow, the 16 KiB L1 cache.
///
/// Build one with [`EpochContext::build`], or let an [`EpochCache`](super::EpochCache) build and
/// share them. It is read-only once built, so any number of threads use it at once through an
/// `Arc`. Its memory is the light cache (16 MiB at epoch 0, growing by 128 KiB an epoch) plus
/// 16 KiB for KawPow; verification needs nothing else.
pub struct EpochContext {
    algorithm: DagAlgorithm,
    light: Arc<LightCache>,
    items_1024: FastMod,
    items_2048: FastMod,
    l1: Option<Box<[u32; L1_WORDS]>>,
}

impl std::fmt::Debug for EpochContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochContext")
            .field("algorithm", &self.algorithm)
            .field("epoch", &self.epoch())
            .field("light_cache_bytes", &self.params().light_cache_bytes())
            .finish_non_exhaustive()
    }
}

impl EpochContext {
    /// Builds the context of `epoch` for `algorithm`: the light cache (single-threaded by
    /// nature; about 0.4 s for epoch 0's 16 MiB on the development machine, growing with the
    /// epoch) and, for KawPow, the L1 cache.
    pub fn build(algorithm: DagAlgorithm, epoch: u32) -> Result<Self, HashError> {
        let params = EpochParams::new(epoch)?;
        Ok(EpochContext::from_light(
            algorithm,
            Arc::new(LightCache::build(params)?),
        ))
    }

    /// A context over an existing light cache (the other algorithm's, for the same epoch).
    pub(crate) fn from_light(algorithm: DagAlgorithm, light: Arc<LightCache>) -> Self {
        let items = light.params().full_dataset_items();
        let mut context = EpochContext {
            algorithm,
            light,
            items_1024: FastMod::new(items),
            items_2048: FastMod::new(items / 2),
            l1: None,
        };
        if algorithm == DagAlgorithm::KawPow {
            let mut l1 = Box::new([0u32; L1_WORDS]);
            let lookup = LightLookup::new(&context);
            for (index, chunk) in l1.chunks_exact_mut(64).enumerate() {
                chunk.copy_from_slice(&lookup.item_2048(index as u32));
            }
            context.l1 = Some(l1);
        }
        context
    }

    /// The algorithm this context serves.
    pub fn algorithm(&self) -> DagAlgorithm {
        self.algorithm
    }

    /// The epoch number.
    pub fn epoch(&self) -> u32 {
        self.light.params().epoch()
    }

    /// The epoch's seed and sizes.
    pub fn params(&self) -> &EpochParams {
        self.light.params()
    }

    /// Bytes this context holds: the light cache, plus KawPow's 16 KiB L1 cache.
    pub fn memory_bytes(&self) -> u64 {
        let l1 = if self.l1.is_some() {
            L1_WORDS as u64 * 4
        } else {
            0
        };
        self.params().light_cache_bytes() + l1
    }

    /// Keccak-256 of the whole light cache as bytes: a fingerprint to check a cache against
    /// published values.
    pub fn light_cache_digest(&self) -> [u8; 32] {
        let mut hasher = Keccak::v256();
        for node in self.light.nodes() {
            let mut bytes = [0u8; 64];
            for (chunk, word) in bytes.chunks_exact_mut(4).zip(node.0) {
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            hasher.update(&bytes);
        }
        let mut out = [0u8; 32];
        hasher.finalize(&mut out);
        out
    }

    /// The 64-byte dataset node `index`, with this algorithm's parent count. Indices past the
    /// dataset's end are still defined (the cache index wraps), as the reference code has it.
    pub fn dataset_node(&self, index: u64) -> [u8; 64] {
        let [node] = nodes_at(&self.light, [index], self.algorithm.dataset_parents());
        let mut out = [0u8; 64];
        for (chunk, word) in out.chunks_exact_mut(4).zip(node.0) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// The 128-byte dataset item `index` (nodes `2·index` and `2·index + 1`).
    pub fn dataset_item(&self, index: u32) -> [u8; 128] {
        let words = LightLookup::new(self).item_1024(index);
        let mut out = [0u8; 128];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// KawPow's L1 cache (the first 16 KiB of its dataset) as 4096 words; `None` for Ethash.
    pub fn l1_cache(&self) -> Option<&[u32]> {
        self.l1.as_deref().map(|l1| l1.as_slice())
    }

    pub(crate) fn light(&self) -> &Arc<LightCache> {
        &self.light
    }

    /// KawPow's L1 cache; an all-zero one for Ethash, which never reads it.
    pub(crate) fn l1(&self) -> &[u32; L1_WORDS] {
        static UNUSED: [u32; L1_WORDS] = [0; L1_WORDS];
        self.l1.as_deref().unwrap_or(&UNUSED)
    }

    /// The full dataset's item count as a reducer (Ethash's 1024-bit items).
    pub(crate) fn items_1024(&self) -> FastMod {
        self.items_1024
    }

    /// KawPow's 2048-bit item count as a reducer.
    pub(crate) fn items_2048(&self) -> FastMod {
        self.items_2048
    }
}

/// Items built per unit of work: the unit of progress reports and of cancellation.
const BUILD_CHUNK: usize = 4096;

/// An epoch's full dataset (about 1 GiB at epoch 0, growing by 8 MiB an epoch), for mining.
///
/// Built only when mining is asked for, by several threads, with progress reports and
/// cancellation. It keeps its [`EpochContext`] alive.
pub struct FullDataset {
    context: Arc<EpochContext>,
    items: Box<[Item]>,
}

impl std::fmt::Debug for FullDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullDataset")
            .field("algorithm", &self.context.algorithm)
            .field("epoch", &self.context.epoch())
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl FullDataset {
    /// Builds the whole dataset of `context` with `threads` threads (at least one), calling
    /// `progress(done, total)` in items as chunks finish. Setting `cancel` stops the build at
    /// the next chunk (a few milliseconds) and returns [`HashError::Cancelled`].
    pub fn build(
        context: Arc<EpochContext>,
        threads: usize,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self, HashError> {
        let count = context.params().full_dataset_items();
        FullDataset::build_prefix(context, count, threads, progress, cancel)
    }

    /// Builds only the first `count` items; the rest are computed from the light cache when
    /// read. Used by tests to check a dataset without building a gigabyte.
    pub(crate) fn build_prefix(
        context: Arc<EpochContext>,
        count: u32,
        threads: usize,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self, HashError> {
        let count = count.min(context.params().full_dataset_items()) as usize;
        let mut items: Vec<Item> = Vec::new();
        items
            .try_reserve_exact(count)
            .map_err(|_| HashError::OutOfMemory {
                what: "full dataset",
                bytes: count as u64 * ITEM_BYTES,
            })?;
        hugepages::advise(&mut items);
        items.resize(count, Item([0u32; 32]));
        fill(&context, &mut items, threads.max(1), progress, cancel)?;
        Ok(FullDataset {
            context,
            items: items.into_boxed_slice(),
        })
    }

    /// The context the dataset was built from.
    pub fn context(&self) -> &Arc<EpochContext> {
        &self.context
    }

    /// Bytes of dataset held.
    pub fn memory_bytes(&self) -> u64 {
        self.items.len() as u64 * ITEM_BYTES
    }
}

/// Computes `items` (the dataset from item 0) on `threads` threads taking chunks in turn.
fn fill(
    context: &EpochContext,
    items: &mut [Item],
    threads: usize,
    progress: Progress<'_>,
    cancel: &AtomicBool,
) -> Result<(), HashError> {
    let total = items.len() as u64;
    let parents = context.algorithm.dataset_parents();
    let cache: &LightCache = &context.light;
    let chunks = Mutex::new(items.chunks_mut(BUILD_CHUNK).enumerate());
    let done = AtomicU64::new(0);
    let work = || loop {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let next = match chunks.lock() {
            Ok(mut guard) => guard.next(),
            Err(poisoned) => poisoned.into_inner().next(),
        };
        let Some((chunk_index, chunk)) = next else {
            return;
        };
        let first = (chunk_index * BUILD_CHUNK) as u64;
        match cache.backend() {
            NodeBackend::Portable => fill_items::<4, 8>(cache, parents, first, chunk),
            #[cfg(target_arch = "x86_64")]
            NodeBackend::Avx2 => fill_items::<8, 16>(cache, parents, first, chunk),
        }
        let len = chunk.len() as u64;
        let finished = done.fetch_add(len, Ordering::Relaxed) + len;
        progress(finished, total);
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    if cancel.load(Ordering::Relaxed) && done.load(Ordering::Relaxed) < total {
        return Err(HashError::Cancelled {
            what: "full dataset",
            epoch: context.epoch(),
        });
    }
    Ok(())
}

/// Computes `items`, the dataset from item `first` on, `K` items (`N = 2·K` nodes) at a time.
fn fill_items<const K: usize, const N: usize>(
    cache: &LightCache,
    parents: u32,
    first: u64,
    items: &mut [Item],
) {
    const { assert!(N == 2 * K) };
    let mut index = first;
    let mut groups = items.chunks_exact_mut(K);
    for group in &mut groups {
        let nodes = nodes_at::<N>(
            cache,
            std::array::from_fn(|k| index * 2 + k as u64),
            parents,
        );
        for (item, two) in group.iter_mut().zip(nodes.chunks_exact(2)) {
            item.0[..16].copy_from_slice(&two[0].0);
            item.0[16..].copy_from_slice(&two[1].0);
        }
        index += K as u64;
    }
    for item in groups.into_remainder() {
        item.0 = flatten2(nodes_at(cache, [index * 2, index * 2 + 1], parents));
        index += 1;
    }
}

#[cfg(test)]
impl FullDataset {
    pub(crate) fn items_built(&self) -> usize {
        self.items.len()
    }
}

/// Whether two sizes describe the same node layout (keeps the constants honest).
const _: () = assert!(std::mem::size_of::<Node>() as u64 == NODE_BYTES);
const _: () = assert!(std::mem::size_of::<Item>() as u64 == ITEM_BYTES);
