//! ProgPoW 0.9.4's mix, as KawPow runs it: 16 lanes of 32 registers, a random program per
//! period, 64 rounds each reading one 2048-bit dataset item.
//!
//! The program depends only on the period (for KawPow, height / 3), and every round runs the
//! same one, so it is generated once into a [`Program`] of decoded operations. The mix is held
//! register-major (`mix[register][lane]`): each operation then works on 16 lanes side by side,
//! which the compiler turns into vector code, and its dispatch is paid once per round instead
//! of once per lane.

use super::node::{FastMod, Lookup, Node, L1_WORDS};

/// Lanes of the mix.
pub(crate) const LANES: usize = 16;
/// Registers per lane.
pub(crate) const REGS: usize = 32;
/// Random reads of the L1 cache per round.
const CACHE_ACCESSES: usize = 11;
/// Random math operations per round.
const MATH_OPERATIONS: usize = 18;
/// Dataset words each lane takes from a round's 2048-bit item.
const DAG_WORDS_PER_LANE: usize = 4;
/// Rounds per hash.
const ROUNDS: u32 = 64;

const FNV_PRIME: u32 = 0x0100_0193;
/// FNV's 32-bit offset basis.
pub(crate) const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;

/// FNV-1a: xor, then multiply.
#[inline(always)]
pub(crate) fn fnv1a(u: u32, v: u32) -> u32 {
    (u ^ v).wrapping_mul(FNV_PRIME)
}

/// Marsaglia's KISS generator (the 1999 posting), on 32-bit words.
#[derive(Debug, Clone)]
pub(crate) struct Kiss99 {
    z: u32,
    w: u32,
    jsr: u32,
    jcong: u32,
}

impl Kiss99 {
    pub(crate) fn new(z: u32, w: u32, jsr: u32, jcong: u32) -> Self {
        Kiss99 { z, w, jsr, jcong }
    }

    #[inline]
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.z = 36_969u32
            .wrapping_mul(self.z & 0xffff)
            .wrapping_add(self.z >> 16);
        self.w = 18_000u32
            .wrapping_mul(self.w & 0xffff)
            .wrapping_add(self.w >> 16);
        self.jcong = 69_069u32.wrapping_mul(self.jcong).wrapping_add(1_234_567);
        self.jsr ^= self.jsr << 17;
        self.jsr ^= self.jsr >> 13;
        self.jsr ^= self.jsr << 5;
        ((self.z << 16).wrapping_add(self.w) ^ self.jcong).wrapping_add(self.jsr)
    }
}

/// How a value is merged into a register, decoded from a selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// `a·33 + b`
    MulAdd,
    /// `(a ^ b)·33`
    XorMul,
    /// `rotl(a, r) ^ b`, `r` in 1..=31
    RotlXor(u32),
    /// `rotr(a, r) ^ b`, `r` in 1..=31
    RotrXor(u32),
}

impl Merge {
    fn from_selector(selector: u32) -> Self {
        let r = (selector >> 16) % 31 + 1;
        match selector % 4 {
            0 => Merge::MulAdd,
            1 => Merge::XorMul,
            2 => Merge::RotlXor(r),
            _ => Merge::RotrXor(r),
        }
    }

    #[inline(always)]
    fn apply(self, a: u32, b: u32) -> u32 {
        match self {
            Merge::MulAdd => a.wrapping_mul(33).wrapping_add(b),
            Merge::XorMul => (a ^ b).wrapping_mul(33),
            Merge::RotlXor(r) => a.rotate_left(r) ^ b,
            Merge::RotrXor(r) => a.rotate_right(r) ^ b,
        }
    }

    /// Merges `data` into every lane of `dst`, with the match outside the lane loop.
    #[inline(always)]
    fn apply_row(self, dst: &mut [u32; LANES], data: &[u32; LANES]) {
        match self {
            Merge::MulAdd => {
                for (a, b) in dst.iter_mut().zip(data) {
                    *a = a.wrapping_mul(33).wrapping_add(*b);
                }
            }
            Merge::XorMul => {
                for (a, b) in dst.iter_mut().zip(data) {
                    *a = (*a ^ *b).wrapping_mul(33);
                }
            }
            Merge::RotlXor(r) => {
                for (a, b) in dst.iter_mut().zip(data) {
                    *a = a.rotate_left(r) ^ *b;
                }
            }
            Merge::RotrXor(r) => {
                for (a, b) in dst.iter_mut().zip(data) {
                    *a = a.rotate_right(r) ^ *b;
                }
            }
        }
    }
}

/// A random math operation, decoded from a selector (`selector % 11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Math {
    Add,
    Mul,
    MulHi,
    Min,
    Rotl,
    Rotr,
    And,
    Or,
    Xor,
    Clz,
    Popcount,
}

impl Math {
    fn from_selector(selector: u32) -> Self {
        match selector % 11 {
            0 => Math::Add,
            1 => Math::Mul,
            2 => Math::MulHi,
            3 => Math::Min,
            4 => Math::Rotl,
            5 => Math::Rotr,
            6 => Math::And,
            7 => Math::Or,
            8 => Math::Xor,
            9 => Math::Clz,
            _ => Math::Popcount,
        }
    }

    #[cfg(test)]
    fn apply(self, a: u32, b: u32) -> u32 {
        let mut out = [0u32; LANES];
        self.apply_row(&[a; LANES], &[b; LANES], &mut out);
        out[0]
    }

    /// `out[l] = op(a[l], b[l])` for every lane.
    #[inline(always)]
    fn apply_row(self, a: &[u32; LANES], b: &[u32; LANES], out: &mut [u32; LANES]) {
        let lanes = out.iter_mut().zip(a.iter().zip(b));
        match self {
            Math::Add => lanes.for_each(|(o, (a, b))| *o = a.wrapping_add(*b)),
            Math::Mul => lanes.for_each(|(o, (a, b))| *o = a.wrapping_mul(*b)),
            Math::MulHi => lanes.for_each(|(o, (a, b))| {
                *o = ((u64::from(*a) * u64::from(*b)) >> 32) as u32;
            }),
            Math::Min => lanes.for_each(|(o, (a, b))| *o = (*a).min(*b)),
            Math::Rotl => lanes.for_each(|(o, (a, b))| *o = a.rotate_left(b & 31)),
            Math::Rotr => lanes.for_each(|(o, (a, b))| *o = a.rotate_right(b & 31)),
            Math::And => lanes.for_each(|(o, (a, b))| *o = a & b),
            Math::Or => lanes.for_each(|(o, (a, b))| *o = a | b),
            Math::Xor => lanes.for_each(|(o, (a, b))| *o = a ^ b),
            Math::Clz => lanes.for_each(|(o, (a, b))| *o = a.leading_zeros() + b.leading_zeros()),
            Math::Popcount => lanes.for_each(|(o, (a, b))| *o = a.count_ones() + b.count_ones()),
        }
    }
}

/// One step of a round's program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Read the L1 cache at `reg[src] % 4096` and merge the word into `reg[dst]`.
    Cache {
        src: usize,
        dst: usize,
        merge: Merge,
    },
    /// Merge `math(reg[a], reg[b])` into `reg[dst]`.
    Math {
        a: usize,
        b: usize,
        math: Math,
        dst: usize,
        merge: Merge,
    },
}

/// The decoded program of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    ops: [Op; CACHE_ACCESSES + MATH_OPERATIONS],
    dag_dst: [usize; DAG_WORDS_PER_LANE],
    dag_merge: [Merge; DAG_WORDS_PER_LANE],
}

/// The generator state of a period: KISS99 seeded from the period number, and two random
/// permutations of the registers that destinations and sources are drawn from in turn.
struct ProgramRng {
    rng: Kiss99,
    dst_seq: [usize; REGS],
    dst_next: usize,
    src_seq: [usize; REGS],
    src_next: usize,
}

impl ProgramRng {
    fn new(period: u64) -> Self {
        let lo = period as u32;
        let hi = (period >> 32) as u32;
        let z = fnv1a(FNV_OFFSET_BASIS, lo);
        let w = fnv1a(z, hi);
        let jsr = fnv1a(w, lo);
        let jcong = fnv1a(jsr, hi);
        let mut rng = Kiss99::new(z, w, jsr, jcong);
        let mut dst_seq: [usize; REGS] = std::array::from_fn(|i| i);
        let mut src_seq: [usize; REGS] = std::array::from_fn(|i| i);
        // Fisher–Yates, both permutations drawing from the one generator in turn.
        for i in (2..=REGS).rev() {
            let j = rng.next_u32() as usize % i;
            dst_seq.swap(i - 1, j);
            let j = rng.next_u32() as usize % i;
            src_seq.swap(i - 1, j);
        }
        ProgramRng {
            rng,
            dst_seq,
            dst_next: 0,
            src_seq,
            src_next: 0,
        }
    }

    fn next_dst(&mut self) -> usize {
        let r = self.dst_seq[self.dst_next % REGS];
        self.dst_next += 1;
        r
    }

    fn next_src(&mut self) -> usize {
        let r = self.src_seq[self.src_next % REGS];
        self.src_next += 1;
        r
    }
}

impl Program {
    /// The program of `period` (KawPow: height / 3).
    pub(crate) fn generate(period: u64) -> Self {
        let mut state = ProgramRng::new(period);
        let mut ops = [Op::Cache {
            src: 0,
            dst: 0,
            merge: Merge::MulAdd,
        }; CACHE_ACCESSES + MATH_OPERATIONS];
        // Cache reads and math interleave until the cache reads run out.
        let mut slots = ops.iter_mut();
        for i in 0..CACHE_ACCESSES.max(MATH_OPERATIONS) {
            if i < CACHE_ACCESSES {
                let src = state.next_src();
                let dst = state.next_dst();
                let merge = Merge::from_selector(state.rng.next_u32());
                if let Some(slot) = slots.next() {
                    *slot = Op::Cache { src, dst, merge };
                }
            }
            if i < MATH_OPERATIONS {
                let pair = state.rng.next_u32() % (REGS * (REGS - 1)) as u32;
                let a = (pair % REGS as u32) as usize;
                let mut b = (pair / REGS as u32) as usize;
                if b >= a {
                    b += 1;
                }
                let math = Math::from_selector(state.rng.next_u32());
                let dst = state.next_dst();
                let merge = Merge::from_selector(state.rng.next_u32());
                if let Some(slot) = slots.next() {
                    *slot = Op::Math {
                        a,
                        b,
                        math,
                        dst,
                        merge,
                    };
                }
            }
        }
        let mut dag_dst = [0usize; DAG_WORDS_PER_LANE];
        let mut dag_merge = [Merge::MulAdd; DAG_WORDS_PER_LANE];
        for (i, (dst, merge)) in dag_dst.iter_mut().zip(dag_merge.iter_mut()).enumerate() {
            *dst = if i == 0 { 0 } else { state.next_dst() };
            *merge = Merge::from_selector(state.rng.next_u32());
        }
        Program {
            ops,
            dag_dst,
            dag_merge,
        }
    }
}

/// The mix: `mix[register][lane]`.
type Mix = [[u32; LANES]; REGS];

/// The starting mix of a hash: each lane's registers from KISS99 seeded by the hash seed and
/// the lane number.
fn init_mix(seed: [u32; 2]) -> Mix {
    let z = fnv1a(FNV_OFFSET_BASIS, seed[0]);
    let w = fnv1a(z, seed[1]);
    let mut mix = [[0u32; LANES]; REGS];
    for lane in 0..LANES {
        let jsr = fnv1a(w, lane as u32);
        let jcong = fnv1a(jsr, lane as u32);
        let mut rng = Kiss99::new(z, w, jsr, jcong);
        for reg in mix.iter_mut() {
            reg[lane] = rng.next_u32();
        }
    }
    mix
}

/// One round's program on one mix, given the round's 2048-bit item (as four nodes).
#[inline(always)]
fn round(r: u32, mix: &mut Mix, program: &Program, l1: &[u32; L1_WORDS], item: &[Node]) {
    for op in &program.ops {
        match *op {
            Op::Cache { src, dst, merge } => {
                let src = mix[src % REGS];
                let mut data = [0u32; LANES];
                for (d, s) in data.iter_mut().zip(src) {
                    *d = l1[s as usize % L1_WORDS];
                }
                merge.apply_row(&mut mix[dst % REGS], &data);
            }
            Op::Math {
                a,
                b,
                math,
                dst,
                merge,
            } => {
                let mut data = [0u32; LANES];
                math.apply_row(&mix[a % REGS], &mix[b % REGS], &mut data);
                merge.apply_row(&mut mix[dst % REGS], &data);
            }
        }
    }
    // Lane `l` takes the four words at `((l ^ r) % 16) · 4` of the item: word `w` of the item
    // is word `w % 16` of node `w / 16`.
    for (i, (&dst, &merge)) in program.dag_dst.iter().zip(&program.dag_merge).enumerate() {
        let reg = &mut mix[dst % REGS];
        for (lane, value) in reg.iter_mut().enumerate() {
            let word = ((lane ^ r as usize) % LANES) * DAG_WORDS_PER_LANE + i;
            let node = item.get(word / 16).map_or(0, |n| n.0[word % 16]);
            *value = merge.apply(*value, node);
        }
    }
}

/// The ProgPoW mix hashes (eight words each) of `K` hashes at once, each with its own seed and
/// program. The hashes advance round by round in lockstep so that their `N = 4·K` dataset
/// nodes are looked up together.
#[inline(always)]
pub(crate) fn mix_hashes<L: Lookup, const K: usize, const N: usize>(
    seeds: [[u32; 2]; K],
    programs: [&Program; K],
    l1: &[u32; L1_WORDS],
    lookup: &L,
    items: FastMod,
) -> [[u32; 8]; K] {
    const { assert!(N == 4 * K) };
    let mut mixes: [Mix; K] = seeds.map(init_mix);
    for r in 0..ROUNDS {
        let mut indices = [0u64; N];
        for (four, mix) in indices.chunks_exact_mut(4).zip(&mixes) {
            let item = u64::from(items.reduce(mix[0][r as usize % LANES]));
            for (k, index) in four.iter_mut().enumerate() {
                *index = item * 4 + k as u64;
            }
        }
        let nodes = lookup.nodes(indices);
        for ((mix, program), item) in mixes.iter_mut().zip(programs).zip(nodes.chunks_exact(4)) {
            round(r, mix, program, l1, item);
        }
    }
    let mut out = [[FNV_OFFSET_BASIS; 8]; K];
    for (o, mix) in out.iter_mut().zip(&mixes) {
        let mut lane_hash = [FNV_OFFSET_BASIS; LANES];
        for reg in mix {
            for (h, v) in lane_hash.iter_mut().zip(reg) {
                *h = fnv1a(*h, *v);
            }
        }
        for (lane, h) in lane_hash.iter().enumerate() {
            o[lane % 8] = fnv1a(o[lane % 8], *h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_matches_the_spec_cases() {
        // ifdefelse/ProgPOW's test_progpow_math: (a, b, expected) with selector = case index.
        let cases: [(u32, u32, u32); 22] = [
            (20, 22, 42),
            (70000, 80000, 1305032704),
            (70000, 80000, 1),
            (1, 2, 1),
            (3, 10000, 196608),
            (3, 0, 3),
            (3, 6, 2),
            (3, 6, 7),
            (3, 6, 5),
            (0, 0xffffffff, 32),
            (3 << 13, 1 << 5, 3),
            (22, 20, 42),
            (80000, 70000, 1305032704),
            (80000, 70000, 1),
            (2, 1, 1),
            (10000, 3, 80000),
            (0, 3, 0),
            (6, 3, 2),
            (6, 3, 7),
            (6, 3, 5),
            (0, 0xffffffff, 32),
            (3 << 13, 1 << 5, 3),
        ];
        for (i, (a, b, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                Math::from_selector(i as u32).apply(a, b),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn merge_matches_the_spec_cases() {
        // ifdefelse/ProgPOW's test_progpow_merge: (a, b, expected) with selector = case index.
        let cases: [(u32, u32, u32); 8] = [
            (1000000, 101, 33000101),
            (2000000, 102, 66003366),
            (3000000, 103, 6000103),
            (4000000, 104, 2000104),
            (1000000, 0, 33000000),
            (2000000, 0, 66000000),
            (3000000, 0, 6000000),
            (4000000, 0, 2000000),
        ];
        for (i, (a, b, expected)) in cases.into_iter().enumerate() {
            let merge = Merge::from_selector(i as u32);
            assert_eq!(merge.apply(a, b), expected, "case {i}");
            let mut row = [a; LANES];
            merge.apply_row(&mut row, &[b; LANES]);
            assert_eq!(row, [expected; LANES], "row case {i}");
        }
    }

    #[test]
    fn kiss99_matches_marsaglia() {
        // The default seeds of the 1999 posting; its check value is the 100,000th output.
        let mut rng = Kiss99::new(362_436_069, 521_288_629, 123_456_789, 380_116_160);
        let first: Vec<u32> = (0..4).map(|_| rng.next_u32()).collect();
        assert_eq!(
            first,
            [769_445_856, 742_012_328, 2_121_196_314, 2_805_620_942]
        );
        for _ in 4..99_999 {
            rng.next_u32();
        }
        assert_eq!(rng.next_u32(), 941_074_834);
    }

    #[test]
    fn spec_vectors_for_fnv_fill_mix_and_init() {
        // ifdefelse/ProgPOW test-vectors.md.
        assert_eq!(fnv1a(0x811C9DC5, 0xDDD0A47B), 0xD37EE61A);
        assert_eq!(fnv1a(0xD37EE61A, 0xEE304846), 0xDEDC7AD4);
        assert_eq!(fnv1a(0xDEDC7AD4, 0x00000000), 0xA9155BBC);

        let mix = init_mix([0xDDD0A47B, 0xEE304846]);
        let lane = |l: usize| -> Vec<u32> { mix.iter().map(|reg| reg[l]).collect() };
        assert_eq!(
            lane(0),
            [
                0x10C02F0D, 0x99891C9E, 0xC59649A0, 0x43F0394D, 0x24D2BAE4, 0xC4E89D4C, 0x398AD25C,
                0xF5C0E467, 0x7A3302D6, 0xE6245C6C, 0x760726D3, 0x1F322EE7, 0x85405811, 0xC2F1E765,
                0xA0EB7045, 0xDA39E821, 0x79FC6A48, 0x089E401F, 0x8488779F, 0xD79E414F, 0x041A826B,
                0x313C0D79, 0x10125A3C, 0x3F4BDFAC, 0xA7352F36, 0x7E70CB54, 0x3B0BB37D, 0x74A3E24A,
                0xCC37236A, 0xA442B311, 0x955AB27A, 0x6D175B7E
            ]
        );
        assert_eq!(
            lane(13),
            [
                0x4E46D05D, 0x2E77E734, 0x2C479399, 0x70712177, 0xA75D7FF5, 0xBEF18D17, 0x8D42252E,
                0x35B4FA0E, 0x462C850A, 0x2DD2B5D5, 0x5F32B5EC, 0xED5D9EED, 0xF9E2685E, 0x1F29DC8E,
                0xA78F098B, 0x86A8687B, 0xEA7A10E7, 0xBE732B9D, 0x4EEBCB60, 0x94DD7D97, 0x39A425E9,
                0xC0E782BF, 0xBA7B870F, 0x4823FF60, 0xF97A5A1C, 0xB00BCAF4, 0x02D0F8C4, 0x28399214,
                0xB4CCB32D, 0x83A09132, 0x27EA8279, 0x3837DDA3
            ]
        );

        let init = ProgramRng::new(600);
        assert_eq!(
            init.src_seq,
            [
                0x1A, 0x1E, 0x01, 0x13, 0x0B, 0x15, 0x0F, 0x12, 0x03, 0x11, 0x1F, 0x10, 0x1C, 0x04,
                0x16, 0x17, 0x02, 0x0D, 0x1D, 0x18, 0x0A, 0x0C, 0x05, 0x14, 0x07, 0x08, 0x0E, 0x1B,
                0x06, 0x19, 0x09, 0x00
            ]
        );
        assert_eq!(
            init.dst_seq,
            [
                0x00, 0x04, 0x1B, 0x1A, 0x0D, 0x0F, 0x11, 0x07, 0x0E, 0x08, 0x09, 0x0C, 0x03, 0x0A,
                0x01, 0x0B, 0x06, 0x10, 0x1C, 0x1F, 0x02, 0x13, 0x1E, 0x16, 0x1D, 0x05, 0x18, 0x12,
                0x19, 0x17, 0x15, 0x14
            ]
        );
        assert_eq!(
            (init.rng.z, init.rng.w, init.rng.jsr, init.rng.jcong),
            (0x6535921C, 0x29345B16, 0xC0DD7F78, 0x1165D7EB)
        );

        // merge and math with full selectors, one row per path.
        let merges = [
            (0x3B0BB37D, 0xA0212004, 0x9BD26AB0, 0x3CA34321),
            (0x10C02F0D, 0x870FA227, 0xD4F45515, 0x91C1326A),
            (0x24D2BAE4, 0x0FFB4C9B, 0x7FDBC2F2, 0x2EDDD94C),
            (0xDA39E821, 0x089C4008, 0x8B6CD8C3, 0x8A81E396),
        ];
        for (a, b, r, expected) in merges {
            assert_eq!(
                Merge::from_selector(r).apply(a, b),
                expected,
                "merge {r:#x}"
            );
        }
        let maths = [
            (0x8626BB1F, 0xBBDFBC4E, 0x883E5B49, 0x4206776D),
            (0x3F4BDFAC, 0xD79E414F, 0x36B71236, 0x4C5CB214),
            (0x6D175B7E, 0xC4E89D4C, 0x944ECABB, 0x53E9023F),
            (0x2EDDD94C, 0x7E70CB54, 0x3F472A85, 0x2EDDD94C),
            (0x61AE0E62, 0xe0596b32, 0x3F472A85, 0x61AE0E62),
            (0x8A81E396, 0x3F4BDFAC, 0xCEC46E67, 0x1E3968A8),
            (0x8A81E396, 0x7E70CB54, 0xDBE71FF7, 0x1E3968A8),
            (0xA7352F36, 0xA0EB7045, 0x59E7B9D8, 0xA0212004),
            (0xC89805AF, 0x64291E2F, 0x1BDC84A9, 0xECB91FAF),
            (0x760726D3, 0x79FC6A48, 0xC675CAC5, 0x0FFB4C9B),
            (0x75551D43, 0x3383BA34, 0x2863AD31, 0x00000003),
            (0xEA260841, 0xE92C44B7, 0xF83FFE7D, 0x0000001B),
        ];
        for (a, b, r, expected) in maths {
            assert_eq!(Math::from_selector(r).apply(a, b), expected, "math {r:#x}");
        }
    }

    #[test]
    fn programs_differ_by_period_and_repeat_within_one() {
        assert_eq!(Program::generate(7), Program::generate(7));
        assert_ne!(Program::generate(7), Program::generate(8));
        let p = Program::generate(0);
        let cache_ops = p
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Cache { .. }))
            .count();
        assert_eq!(cache_ops, CACHE_ACCESSES);
        assert_eq!(p.dag_dst[0], 0);
    }
}
