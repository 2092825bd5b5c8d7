//! scrypt: the Litecoin proof of work, and the general RFC 7914 function it is a case of.
//!
//! Mining uses N = 1024, r = 1, p = 1 with the 80-byte header as both password and salt. The
//! portable path hashes one nonce at a time; the AVX2 path hashes eight nonces at once, one per
//! 32-bit lane, which is how the fastest CPU miners reach their speed.

mod salsa;
#[cfg(target_arch = "x86_64")]
mod wide;

use std::ops::Range;

use otedama_core::Target;
use sha2::{Digest, Sha256};

use crate::algorithm::{Algorithm, PowAlgorithm, PowOutput, ScanJob, Solution, Worker};
use crate::HashError;
use salsa::salsa8_rounds;

/// The N that Litecoin and Dogecoin use.
pub const MINING_N: usize = 1024;

/// Largest scratchpad the general function agrees to allocate (2 GiB).
const MAX_KDF_MEMORY: u128 = 2 << 30;

macro_rules! rotl_u32 {
    ($v:expr, $n:expr) => {
        u32::rotate_left($v, $n)
    };
}

/// The Salsa20/8 core (RFC 7914 section 3) on 16 little-endian words, with its feed-forward.
pub fn salsa20_8(block: &mut [u32; 16]) {
    let mut x = *block;
    salsa8_rounds!(x, u32::wrapping_add, rotl_u32, xor_u32);
    for (b, v) in block.iter_mut().zip(x) {
        *b = b.wrapping_add(v);
    }
}

#[inline(always)]
fn xor_u32(a: u32, b: u32) -> u32 {
    a ^ b
}

fn xor_into(dst: &mut [u32; 16], src: &[u32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= *s;
    }
}

/// scryptBlockMix (RFC 7914 section 4) over `2 * r` blocks of 16 words; `scratch` must be the
/// same length as `b`.
pub fn block_mix(b: &mut [u32], scratch: &mut [u32]) {
    let blocks = b.len() / 16;
    let mut x = [0u32; 16];
    x.copy_from_slice(&b[b.len() - 16..]);
    for i in 0..blocks {
        xor_into(&mut x, &b[i * 16..i * 16 + 16]);
        salsa20_8(&mut x);
        // Even outputs go to the first half, odd ones to the second (the Y shuffle).
        let dst = if i % 2 == 0 {
            i / 2
        } else {
            blocks / 2 + i / 2
        };
        scratch[dst * 16..dst * 16 + 16].copy_from_slice(&x);
    }
    b.copy_from_slice(scratch);
}

/// scryptROMix (RFC 7914 section 5) on `b` (32 * r words) with cost `n`; `v` must hold
/// `n * b.len()` words.
pub fn ro_mix(b: &mut [u32], n: usize, v: &mut [u32]) {
    let len = b.len();
    let mut scratch = vec![0u32; len];
    for i in 0..n {
        v[i * len..(i + 1) * len].copy_from_slice(b);
        block_mix(b, &mut scratch);
    }
    for _ in 0..n {
        let j = (b[len - 16] as usize) & (n - 1);
        for (x, y) in b.iter_mut().zip(&v[j * len..(j + 1) * len]) {
            *x ^= *y;
        }
        block_mix(b, &mut scratch);
    }
}

/// HMAC-SHA256 keyed once and reused.
#[derive(Clone)]
struct HmacSha256 {
    inner: Sha256,
    outer: Sha256,
}

impl HmacSha256 {
    fn new(key: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut ipad = [0u8; 64];
        let mut opad = [0u8; 64];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(block) {
            *i = k ^ 0x36;
            *o = k ^ 0x5c;
        }
        HmacSha256 {
            inner: Sha256::new_with_prefix(ipad),
            outer: Sha256::new_with_prefix(opad),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for p in parts {
            inner.update(p);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

fn pbkdf2_with(mac: &HmacSha256, salt: &[u8], iterations: u32, out: &mut [u8]) {
    for (block_index, chunk) in out.chunks_mut(32).enumerate() {
        let counter = (block_index as u32 + 1).to_be_bytes();
        let mut u = mac.mac(&[salt, &counter]);
        let mut t = u;
        for _ in 1..iterations {
            u = mac.mac(&[&u]);
            for (a, b) in t.iter_mut().zip(u) {
                *a ^= b;
            }
        }
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
}

/// PBKDF2-HMAC-SHA256 (RFC 8018) filling `out`.
pub fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2_with(&HmacSha256::new(password), salt, iterations, out);
}

/// The general scrypt function (RFC 7914) with cost `n`, block size `r` and parallelism `p`.
///
/// Fails on parameters RFC 7914 forbids and on a scratchpad above 2 GiB.
pub fn scrypt(
    password: &[u8],
    salt: &[u8],
    n: u64,
    r: u32,
    p: u32,
    dk_len: usize,
) -> Result<Vec<u8>, HashError> {
    let bad = |reason: &'static str| HashError::ScryptParams { n, r, p, reason };
    if n < 2 || !n.is_power_of_two() {
        return Err(bad("n must be a power of two above 1"));
    }
    if r == 0 || p == 0 {
        return Err(bad("r and p must be positive"));
    }
    let memory = 128u128 * u128::from(r) * u128::from(n);
    if memory > MAX_KDF_MEMORY || u128::from(r) * u128::from(p) >= 1 << 30 {
        return Err(bad("parameters need more memory than allowed"));
    }
    // Bounded above, so these conversions cannot truncate.
    let (n, r, p) = (n as usize, r as usize, p as usize);
    let block_bytes = 128 * r;
    let mac = HmacSha256::new(password);
    let mut b = vec![0u8; block_bytes * p];
    pbkdf2_with(&mac, salt, 1, &mut b);
    let mut words = vec![0u32; 32 * r];
    let mut v = vec![0u32; 32 * r * n];
    for chunk in b.chunks_mut(block_bytes) {
        for (w, c) in words.iter_mut().zip(chunk.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        ro_mix(&mut words, n, &mut v);
        for (w, c) in words.iter().zip(chunk.chunks_exact_mut(4)) {
            c.copy_from_slice(&w.to_le_bytes());
        }
    }
    let mut out = vec![0u8; dk_len];
    pbkdf2_with(&mac, &b, 1, &mut out);
    Ok(out)
}

/// The first and last PBKDF2 steps of scrypt with N = 1024, r = 1, p = 1, shared by every
/// backend.
pub(crate) struct MiningKdf {
    mac: HmacSha256,
}

impl MiningKdf {
    pub(crate) fn new(input: &[u8]) -> Self {
        MiningKdf {
            mac: HmacSha256::new(input),
        }
    }

    /// B = PBKDF2(input, input, 1, 128) as 32 little-endian words.
    pub(crate) fn expand(&self, input: &[u8]) -> [u32; 32] {
        let mut bytes = [0u8; 128];
        pbkdf2_with(&self.mac, input, 1, &mut bytes);
        let mut words = [0u32; 32];
        for (w, c) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        words
    }

    /// PBKDF2(input, B, 1, 32).
    pub(crate) fn finish(&self, words: &[u32; 32]) -> [u8; 32] {
        let mut bytes = [0u8; 128];
        for (w, c) in words.iter().zip(bytes.chunks_exact_mut(4)) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        let mut out = [0u8; 32];
        pbkdf2_with(&self.mac, &bytes, 1, &mut out);
        out
    }
}

/// The mining ROMix (N = 1024, r = 1) on the portable path; `v` holds 1024 * 32 words.
fn ro_mix_1024(x: &mut [u32; 32], v: &mut [u32]) {
    fn mix(x: &mut [u32; 32]) {
        let mut lo = [0u32; 16];
        let mut hi = [0u32; 16];
        lo.copy_from_slice(&x[..16]);
        hi.copy_from_slice(&x[16..]);
        xor_into(&mut lo, &hi);
        salsa20_8(&mut lo);
        xor_into(&mut hi, &lo);
        salsa20_8(&mut hi);
        x[..16].copy_from_slice(&lo);
        x[16..].copy_from_slice(&hi);
    }
    for chunk in v.chunks_exact_mut(32) {
        chunk.copy_from_slice(x);
        mix(x);
    }
    for _ in 0..MINING_N {
        let j = (x[16] as usize) & (MINING_N - 1);
        for (a, b) in x.iter_mut().zip(&v[j * 32..j * 32 + 32]) {
            *a ^= *b;
        }
        mix(x);
    }
}

/// scrypt(input, input, N = 1024, r = 1, p = 1, 32): the Litecoin proof-of-work hash.
pub fn scrypt_1024_1_1(input: &[u8]) -> [u8; 32] {
    let mut v = vec![0u32; MINING_N * 32];
    let kdf = MiningKdf::new(input);
    let mut x = kdf.expand(input);
    ro_mix_1024(&mut x, &mut v);
    kdf.finish(&x)
}

/// Which scrypt implementation runs the nonce loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScryptBackend {
    /// Plain Rust, one nonce at a time; runs everywhere.
    Portable,
    /// AVX2, eight nonces at a time.
    Avx2x8,
    /// AVX-512VL on 256-bit registers (one-instruction rotates), eight nonces at a time.
    Avx512x8,
}

impl ScryptBackend {
    /// Every backend, portable first.
    pub const ALL: [ScryptBackend; 3] = [
        ScryptBackend::Portable,
        ScryptBackend::Avx2x8,
        ScryptBackend::Avx512x8,
    ];

    /// The fastest backend this CPU supports.
    pub fn detect() -> Self {
        [ScryptBackend::Avx512x8, ScryptBackend::Avx2x8]
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(ScryptBackend::Portable)
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            ScryptBackend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            ScryptBackend::Avx2x8 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            ScryptBackend::Avx512x8 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            ScryptBackend::Avx2x8 | ScryptBackend::Avx512x8 => false,
        }
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            ScryptBackend::Portable => "portable",
            ScryptBackend::Avx2x8 => "avx2x8",
            ScryptBackend::Avx512x8 => "avx512x8",
        }
    }
}

/// The scrypt (N = 1024, r = 1, p = 1) kernel.
#[derive(Debug, Clone, Copy)]
pub struct Scrypt {
    backend: ScryptBackend,
}

impl Default for Scrypt {
    fn default() -> Self {
        Scrypt::new()
    }
}

impl Scrypt {
    /// The kernel on the fastest backend this CPU supports.
    pub fn new() -> Self {
        Scrypt {
            backend: ScryptBackend::detect(),
        }
    }

    /// The kernel on a chosen backend; fails when the CPU lacks it.
    pub fn with_backend(backend: ScryptBackend) -> Result<Self, HashError> {
        if !backend.is_available() {
            return Err(HashError::BackendUnavailable(backend.name()));
        }
        Ok(Scrypt { backend })
    }

    /// The backend in use.
    pub fn backend(&self) -> ScryptBackend {
        self.backend
    }
}

impl PowAlgorithm for Scrypt {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Scrypt
    }

    fn hash(&self, input: &[u8]) -> Result<PowOutput, HashError> {
        Ok(PowOutput::hash_only(scrypt_1024_1_1(input)))
    }

    fn worker(&self) -> Result<Box<dyn Worker>, HashError> {
        let scratch = match self.backend {
            #[cfg(target_arch = "x86_64")]
            ScryptBackend::Avx2x8 | ScryptBackend::Avx512x8 => {
                Scratch::Wide(self.backend, wide::scratchpad())
            }
            _ => Scratch::Narrow(vec![0u32; MINING_N * 32]),
        };
        Ok(Box::new(ScryptWorker { scratch }))
    }
}

/// A scrypt mining thread's scratchpad, shaped for its backend.
enum Scratch {
    /// One lane of 1024 * 32 words.
    Narrow(Vec<u32>),
    /// Vertical lanes, for the wide backends.
    #[cfg(target_arch = "x86_64")]
    Wide(ScryptBackend, Vec<wide::Row>),
}

/// A wide kernel: one input per lane in, their hashes out.
#[cfg(target_arch = "x86_64")]
type WideKernel = unsafe fn(&[Vec<u8>; wide::LANES], &mut [wide::Row]) -> [[u8; 32]; wide::LANES];

/// Hashes `nonces`, a lane's worth at a time, with a wide kernel.
///
/// # Safety
/// The CPU must support the features `kernel` is compiled for.
#[cfg(target_arch = "x86_64")]
unsafe fn scan_wide(
    kernel: WideKernel,
    scratch: &mut [wide::Row],
    job: &ScanJob,
    header: &[u8],
    nonces: Range<u64>,
    report: &mut dyn FnMut(u64, [u8; 32]),
) -> Result<(), HashError> {
    let mut inputs: [Vec<u8>; wide::LANES] = core::array::from_fn(|_| header.to_vec());
    let mut nonce = nonces.start;
    while nonce < nonces.end {
        let count = (nonces.end - nonce).min(wide::LANES as u64) as usize;
        for (lane, input) in inputs.iter_mut().enumerate() {
            // Spare lanes repeat the last nonce; their results are dropped.
            job.write_nonce(input, nonce + (lane.min(count - 1)) as u64)?;
        }
        // SAFETY: the caller guarantees the features `kernel` is compiled for.
        let hashes = unsafe { kernel(&inputs, scratch) };
        for (lane, hash) in hashes.into_iter().take(count).enumerate() {
            report(nonce + lane as u64, hash);
        }
        nonce += count as u64;
    }
    Ok(())
}

/// A scrypt mining thread.
struct ScryptWorker {
    scratch: Scratch,
}

impl Worker for ScryptWorker {
    fn scan(
        &mut self,
        job: &ScanJob,
        nonces: Range<u64>,
        target: &Target,
        found: &mut Vec<Solution>,
    ) -> Result<u64, HashError> {
        job.check_range(&nonces)?;
        let total = nonces.end.saturating_sub(nonces.start);
        let mut buf = job.input().to_vec();
        let mut report = |nonce: u64, hash: [u8; 32]| {
            if target.is_met_by(&hash) {
                found.push(Solution {
                    nonce,
                    output: PowOutput::hash_only(hash),
                });
            }
        };
        match &mut self.scratch {
            #[cfg(target_arch = "x86_64")]
            Scratch::Wide(backend, scratch) => {
                let kernel: WideKernel = match backend {
                    ScryptBackend::Avx512x8 => wide::avx512x8::scrypt_1024_1_1,
                    _ => wide::avx2x8::scrypt_1024_1_1,
                };
                // SAFETY: a wide scratchpad is only made for a wide backend, after
                // `is_available()` found the features its kernel is compiled for.
                unsafe { scan_wide(kernel, scratch, job, &buf, nonces, &mut report)? };
            }
            Scratch::Narrow(scratch) => {
                for nonce in nonces {
                    job.write_nonce(&mut buf, nonce)?;
                    let kdf = MiningKdf::new(&buf);
                    let mut x = kdf.expand(&buf);
                    ro_mix_1024(&mut x, scratch);
                    report(nonce, kdf.finish(&x));
                }
            }
        }
        Ok(total)
    }
}
