//! The light cache, dataset items computed from it, the full dataset, and the epoch context
//! that ties them to an algorithm.
//!
//! Everything is held as little-endian 32-bit words, the unit FNV works on; byte strings are
//! produced only at the edges. Dataset nodes are computed several at a time with their parent
//! walks interleaved, so the independent cache reads overlap in the memory system.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tiny_keccak::{Hasher, Keccak};

use crate::randomx::Progress;
use crate::HashError;

use super::epoch::{DagAlgorithm, EpochParams, ITEM_BYTES, NODE_BYTES};
use super::hugepages;
use super::keccak::{keccak512, keccak512_words};
use super::simd::NodeBackend;

/// FNV-1 as Ethash uses it: multiply, then xor.
#[inline(always)]
pub(crate) fn fnv1(u: u32, v: u32) -> u32 {
    u.wrapping_mul(0x0100_0193) ^ v
}

/// `a % d` for a fixed 32-bit divisor by two multiplications instead of a division
/// (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019; exact for every
/// 32-bit `a` and `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FastMod {
    divisor: u32,
    magic: u64,
}

impl FastMod {
    /// A reducer for `divisor`, which must not be zero (one is returned in its place).
    pub(crate) fn new(divisor: u32) -> Self {
        let divisor = divisor.max(1);
        FastMod {
            divisor,
            magic: (u64::MAX / u64::from(divisor)).wrapping_add(1),
        }
    }

    /// `a % divisor`.
    #[inline(always)]
    pub(crate) fn reduce(self, a: u32) -> u32 {
        let low = self.magic.wrapping_mul(u64::from(a));
        ((u128::from(low) * u128::from(self.divisor)) >> 64) as u32
    }
}

/// One 64-byte light-cache node, aligned so that reading it touches one cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Node(pub(crate) [u32; 16]);

/// One 128-byte full-dataset item (two nodes), aligned to a cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Item(pub(crate) [u32; 32]);

/// Rounds of the light cache's RandMemoHash.
const CACHE_ROUNDS: usize = 3;

/// An epoch's light cache: the same for Ethash and KawPow, so one can serve both.
#[derive(Debug)]
pub(crate) struct LightCache {
    params: EpochParams,
    nodes: Box<[Node]>,
    modulus: FastMod,
    backend: NodeBackend,
}

impl LightCache {
    /// Builds the cache of an epoch: a Keccak-512 chain from the seed, then three rounds of
    /// RandMemoHash. Single-threaded by nature (each node depends on the one before it).
    pub(crate) fn build(params: EpochParams) -> Result<Self, HashError> {
        let n = params.light_cache_items() as usize;
        let mut nodes: Vec<Node> = Vec::new();
        nodes
            .try_reserve_exact(n)
            .map_err(|_| HashError::OutOfMemory {
                what: "light cache",
                bytes: params.light_cache_bytes(),
            })?;
        hugepages::advise(&mut nodes);
        let first = keccak512(&params.seed());
        let mut node = [0u32; 16];
        for (word, chunk) in node.iter_mut().zip(first.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        nodes.push(Node(node));
        for _ in 1..n {
            node = keccak512_words(&node);
            nodes.push(Node(node));
        }
        let modulus = FastMod::new(params.light_cache_items());
        for _ in 0..CACHE_ROUNDS {
            let mut previous = n - 1;
            for i in 0..n {
                let other = modulus.reduce(nodes[i].0[0]) as usize;
                let mut mixed = nodes[previous].0;
                for (m, o) in mixed.iter_mut().zip(nodes[other].0) {
                    *m ^= o;
                }
                nodes[i].0 = keccak512_words(&mixed);
                previous = i;
            }
        }
        Ok(LightCache {
            params,
            nodes: nodes.into_boxed_slice(),
            modulus,
            backend: NodeBackend::detect(),
        })
    }

    pub(crate) fn params(&self) -> &EpochParams {
        &self.params
    }

    /// A copy of this cache that runs on `backend`, to test one backend against another.
    #[cfg(test)]
    pub(crate) fn on_backend(&self, backend: NodeBackend) -> Self {
        LightCache {
            params: self.params,
            nodes: self.nodes.clone(),
            modulus: self.modulus,
            backend,
        }
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// [`dataset_nodes`](Self::dataset_nodes) on the fastest backend this CPU has.
    #[inline]
    pub(crate) fn nodes_at<const N: usize>(&self, indices: [u64; N], parents: u32) -> [Node; N] {
        self.backend.nodes(self, indices, parents)
    }

    /// The dataset nodes at `indices`, each mixing `parents` cache nodes, computed together so
    /// that their cache reads overlap (each node's parent walk is a chain of dependent reads;
    /// `N` of them keep `N` reads in flight).
    #[inline(always)]
    pub(crate) fn dataset_nodes<const N: usize>(
        &self,
        indices: [u64; N],
        parents: u32,
    ) -> [Node; N] {
        let count = self.nodes.len() as u64;
        let mut seeds = [0u32; N];
        let mut mix = [Node([0u32; 16]); N];
        for ((seed, m), index) in seeds.iter_mut().zip(mix.iter_mut()).zip(indices) {
            *seed = index as u32;
            // `index % count < count`, the length of `nodes`.
            let mut words = self.nodes[(index % count) as usize].0;
            words[0] ^= *seed;
            m.0 = keccak512_words(&words);
        }
        for j in 0..parents {
            for (seed, m) in seeds.iter().zip(mix.iter_mut()) {
                let t = fnv1(seed ^ j, m.0[(j % 16) as usize]);
                // `reduce` returns a value below the divisor, the length of `nodes`.
                let parent = &self.nodes[self.modulus.reduce(t) as usize].0;
                for (w, p) in m.0.iter_mut().zip(parent) {
                    *w = fnv1(*w, *p);
                }
            }
        }
        for m in mix.iter_mut() {
            m.0 = keccak512_words(&m.0);
        }
        mix
    }
}

/// Where the hash loops get dataset nodes: computed from the light cache, or read from a built
/// dataset. Hashes ask for several nodes at once (both halves of an item, several items of
/// interleaved hashes) so that a light lookup can overlap their computation.
pub(crate) trait Lookup {
    /// The 64-byte dataset nodes at `indices`.
    fn nodes<const N: usize>(&self, indices: [u64; N]) -> [Node; N];

    /// The backend the hash loops built on this lookup run on.
    fn backend(&self) -> NodeBackend;

    /// The 1024-bit item `index` (nodes `2·index` and `2·index + 1`), as Ethash reads it.
    fn item_1024(&self, index: u32) -> [u32; 32] {
        let first = u64::from(index) * 2;
        flatten2(self.nodes([first, first + 1]))
    }

    /// The 2048-bit item `index` (nodes `4·index` to `4·index + 3`), as KawPow reads it.
    fn item_2048(&self, index: u32) -> [u32; 64] {
        let first = u64::from(index) * 4;
        let nodes = self.nodes([first, first + 1, first + 2, first + 3]);
        let mut out = [0u32; 64];
        for (chunk, node) in out.chunks_exact_mut(16).zip(nodes) {
            chunk.copy_from_slice(&node.0);
        }
        out
    }
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

fn flatten2(nodes: [Node; 2]) -> [u32; 32] {
    let mut out = [0u32; 32];
    out[..16].copy_from_slice(&nodes[0].0);
    out[16..].copy_from_slice(&nodes[1].0);
    out
}

impl Lookup for LightLookup<'_> {
    #[inline]
    fn nodes<const N: usize>(&self, indices: [u64; N]) -> [Node; N] {
        self.cache.nodes_at(indices, self.parents)
    }

    fn backend(&self) -> NodeBackend {
        self.cache.backend
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

/// Words in KawPow's L1 cache: the first 16 KiB of its dataset.
pub(crate) const L1_WORDS: usize = 4096;

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
        let [node] = self
            .light
            .nodes_at([index], self.algorithm.dataset_parents());
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
        match cache.backend {
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
        let nodes = cache.nodes_at::<N>(std::array::from_fn(|k| index * 2 + k as u64), parents);
        for (item, two) in group.iter_mut().zip(nodes.chunks_exact(2)) {
            item.0[..16].copy_from_slice(&two[0].0);
            item.0[16..].copy_from_slice(&two[1].0);
        }
        index += K as u64;
    }
    for item in groups.into_remainder() {
        item.0 = flatten2(cache.nodes_at([index * 2, index * 2 + 1], parents));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastmod_is_exact() {
        let divisors = [1u32, 2, 3, 7, 262_139, 8_388_593, 2_147_418_083, u32::MAX];
        let mut x = 0x9e37_79b9u32;
        for d in divisors {
            let fm = FastMod::new(d);
            for a in [0, 1, d.wrapping_sub(1), d, d.wrapping_add(1), u32::MAX] {
                assert_eq!(fm.reduce(a), a % d, "{a} % {d}");
            }
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                assert_eq!(fm.reduce(x), x % d, "{x} % {d}");
            }
        }
    }
}
