//! The words every layer of the DAG family speaks in: dataset nodes, FNV-1, the fixed-divisor
//! remainder, KawPow's L1 size, which backend computes nodes, and the [`Lookup`] trait the hash
//! loops read nodes through.
//!
//! This module is the bottom of `ethash/`: it uses nothing else here, so the light cache, the
//! ProgPoW mix, the SIMD backend and the dataset all depend on it and never on each other in a
//! circle. From the bottom: `node`, then `light` (the light cache) and `progpow`, then `simd`
//! (the backends over both), then `dag` (contexts, lookups, the full dataset).

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

/// Words in KawPow's L1 cache: the first 16 KiB of its dataset.
pub(crate) const L1_WORDS: usize = 4096;

/// How dataset nodes are computed from the light cache. The loops that run on each are in
/// `simd`; this is only the choice, detected once per light cache.
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

/// Two nodes as the 32 words of one 1024-bit item.
pub(crate) fn flatten2(nodes: [Node; 2]) -> [u32; 32] {
    let mut out = [0u32; 32];
    out[..16].copy_from_slice(&nodes[0].0);
    out[16..].copy_from_slice(&nodes[1].0);
    out
}

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
