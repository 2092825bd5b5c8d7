//! The dataset-node loop compiled a second time with AVX2 enabled, chosen at run time.
//!
//! Both backends run the same source, [`LightCache::dataset_nodes`], which is inlined into a
//! function carrying `#[target_feature(enable = "avx2")]`; there LLVM turns each 16-word FNV
//! step into two 256-bit multiplies instead of SSE2's emulated ones. A lean loop lets more
//! interleaved node walks sit in the out-of-order window, so batched verification and dataset
//! builds keep more cache reads in flight (about a quarter faster on the development machine;
//! one-by-one verification waits on memory either way and does not change).

use super::dag::{LightCache, Node};

/// How dataset nodes are computed from the light cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeBackend {
    /// The baseline build: runs everywhere.
    Portable,
    /// The same loop with AVX2 enabled; only chosen when the CPU has it.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl NodeBackend {
    /// The fastest backend this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return NodeBackend::Avx2;
            }
        }
        NodeBackend::Portable
    }

    /// The dataset nodes at `indices`, each mixing `parents` cache nodes.
    #[inline]
    pub(crate) fn nodes<const N: usize>(
        self,
        cache: &LightCache,
        indices: [u64; N],
        parents: u32,
    ) -> [Node; N] {
        match self {
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
