//! The light cache, and dataset nodes computed from it on the portable path.
//!
//! Dataset nodes are computed several at a time with their parent walks interleaved, so the
//! independent cache reads overlap in the memory system. `simd` compiles the same loop a second
//! time with AVX2 and picks between the two by the cache's [`NodeBackend`].

use crate::HashError;

use super::epoch::EpochParams;
use super::hugepages;
use super::keccak::{keccak512, keccak512_words};
use super::node::{fnv1, FastMod, Node, NodeBackend};

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

    /// The backend dataset nodes of this cache are computed on: the fastest this CPU has.
    pub(crate) fn backend(&self) -> NodeBackend {
        self.backend
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
