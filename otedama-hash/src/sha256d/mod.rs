//! SHA256d: the Bitcoin proof of work.
//!
//! Mining an 80-byte header costs two compressions per nonce: the first 64 bytes never change
//! within a job, so their compression (the midstate) is done once, and each nonce pays for the
//! second block and for the hash of the 32-byte digest.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(target_arch = "x86_64")]
mod shani;

use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use otedama_core::Target;
use sha2::{Digest, Sha256};

use crate::algorithm::{Algorithm, NonceWidth, PowAlgorithm, PowOutput, ScanJob, Solution, Worker};
use crate::HashError;

/// Which SHA-256 implementation runs the nonce loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sha256dBackend {
    /// Plain Rust; runs everywhere.
    Portable,
    /// The x86 SHA extensions, four nonces at a time.
    ShaNi,
    /// AVX-512, sixteen nonces at a time in vector lanes.
    Avx512x16,
    /// The x86 SHA extensions with AVX-512VL computing part of the message schedule, four
    /// nonces at a time.
    ShaNiAvx512,
}

impl Sha256dBackend {
    /// Every backend, portable first.
    pub const ALL: [Sha256dBackend; 4] = [
        Sha256dBackend::Portable,
        Sha256dBackend::ShaNi,
        Sha256dBackend::Avx512x16,
        Sha256dBackend::ShaNiAvx512,
    ];

    /// The fastest backend on this CPU, found by timing every vector backend it supports on a
    /// short nonce range, once per process (about 50 ms in a release build).
    ///
    /// Feature flags cannot tell: on Zen 4 the SHA extensions beat AVX-512 by about 40 %,
    /// while on AVX-512 Intel cores, whose SHA unit is slower, the sixteen-lane path wins.
    pub fn detect() -> Self {
        static FASTEST: OnceLock<Sha256dBackend> = OnceLock::new();
        *FASTEST.get_or_init(measure_fastest)
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Sha256dBackend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Sha256dBackend::ShaNi => shani::available(),
            #[cfg(target_arch = "x86_64")]
            Sha256dBackend::Avx512x16 => avx512::available(),
            #[cfg(target_arch = "x86_64")]
            Sha256dBackend::ShaNiAvx512 => shani::available_vl(),
            #[cfg(not(target_arch = "x86_64"))]
            Sha256dBackend::ShaNi | Sha256dBackend::Avx512x16 | Sha256dBackend::ShaNiAvx512 => {
                false
            }
        }
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Sha256dBackend::Portable => "portable",
            Sha256dBackend::ShaNi => "sha-ni",
            Sha256dBackend::Avx512x16 => "avx512x16",
            Sha256dBackend::ShaNiAvx512 => "sha-ni-avx512",
        }
    }
}

/// SHA256(SHA256(input)), the 32 bytes as they come out of the hash.
pub fn sha256d(input: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(input);
    Sha256::digest(first).into()
}

/// The SHA256d kernel.
#[derive(Debug, Clone, Copy)]
pub struct Sha256d {
    backend: Sha256dBackend,
}

impl Default for Sha256d {
    fn default() -> Self {
        Sha256d::new()
    }
}

impl Sha256d {
    /// The kernel on the fastest backend this CPU supports.
    pub fn new() -> Self {
        Sha256d {
            backend: Sha256dBackend::detect(),
        }
    }

    /// The kernel on a chosen backend; fails when the CPU lacks it.
    pub fn with_backend(backend: Sha256dBackend) -> Result<Self, HashError> {
        if !backend.is_available() {
            return Err(HashError::BackendUnavailable(backend.name()));
        }
        Ok(Sha256d { backend })
    }

    /// The backend in use.
    pub fn backend(&self) -> Sha256dBackend {
        self.backend
    }
}

impl PowAlgorithm for Sha256d {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Sha256d
    }

    fn hash(&self, input: &[u8]) -> Result<PowOutput, HashError> {
        Ok(PowOutput::hash_only(sha256d(input)))
    }

    fn worker(&self) -> Result<Box<dyn Worker>, HashError> {
        Ok(Box::new(Sha256dWorker {
            backend: self.backend,
        }))
    }
}

/// A SHA256d mining thread's state (none beyond the backend choice).
#[derive(Debug)]
struct Sha256dWorker {
    backend: Sha256dBackend,
}

fn words_to_bytes(words: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// The header split for the nonce loop: the midstate of bytes 0..64 and words 16..19.
fn split_header(header: &[u8]) -> Option<([u32; 8], [u32; 3])> {
    let first: &[u8; 64] = header.get(..64)?.try_into().ok()?;
    let mut midstate = portable::IV;
    portable::compress(&mut midstate, &portable::block_words(first));
    let rest = header.get(64..76)?;
    let mut tail = [0u32; 3];
    for (t, chunk) in tail.iter_mut().zip(rest.chunks_exact(4)) {
        *t = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some((midstate, tail))
}

impl Worker for Sha256dWorker {
    fn scan(
        &mut self,
        job: &ScanJob,
        nonces: Range<u64>,
        target: &Target,
        found: &mut Vec<Solution>,
    ) -> Result<u64, HashError> {
        job.check_range(&nonces)?;
        if nonces.is_empty() {
            return Ok(0);
        }
        let header_layout = job.input().len() == 80
            && job.nonce_offset() == 76
            && job.nonce_width() == NonceWidth::U32;
        let Some((midstate, tail)) = header_layout.then(|| split_header(job.input())).flatten()
        else {
            return scan_generic(job, nonces, target, found);
        };
        let target_bytes = target.to_le_bytes();
        let top_limit = u32::from_le_bytes([
            target_bytes[28],
            target_bytes[29],
            target_bytes[30],
            target_bytes[31],
        ]);
        // `check_range` bounds the range to the 32-bit nonce space, so these fit.
        let start = nonces.start as u32;
        let last = (nonces.end - 1) as u32;
        let mut on_hit = |nonce: u32, words: [u32; 8]| {
            let hash = words_to_bytes(&words);
            if target.is_met_by(&hash) {
                found.push(Solution {
                    nonce: u64::from(nonce),
                    output: PowOutput::hash_only(hash),
                });
            }
            true
        };
        let done = run_backend(
            self.backend,
            &midstate,
            &tail,
            start,
            last,
            top_limit,
            &mut on_hit,
        );
        Ok(done)
    }
}

/// Times each available vector backend on the same nonces, in turns, and keeps the best time
/// of each. One untimed pass first lets the core reach its working clock; five timed rounds of
/// 2^16 nonces (a few milliseconds each) keep one interruption from deciding.
fn measure_fastest() -> Sha256dBackend {
    // The portable path never beats a vector one; it is the answer only when nothing else runs.
    let candidates: Vec<Sha256dBackend> = Sha256dBackend::ALL
        .into_iter()
        .filter(|b| *b != Sha256dBackend::Portable && b.is_available())
        .collect();
    match candidates.as_slice() {
        [] => return Sha256dBackend::Portable,
        [only] => return *only,
        _ => {}
    }
    let header = [0x5au8; 80];
    let Some((midstate, tail)) = split_header(&header) else {
        return Sha256dBackend::Portable;
    };
    let mut best = vec![Duration::MAX; candidates.len()];
    for round in 0..6 {
        for (backend, best) in candidates.iter().zip(best.iter_mut()) {
            let begun = Instant::now();
            // A zero limit passes only a hash whose top word is zero: the hit path stays cold.
            run_backend(
                *backend,
                &midstate,
                &tail,
                0,
                (1 << 16) - 1,
                0,
                &mut |_, _| true,
            );
            if round > 0 {
                *best = (*best).min(begun.elapsed());
            }
        }
    }
    candidates
        .iter()
        .zip(&best)
        .min_by_key(|(_, time)| **time)
        .map_or(Sha256dBackend::Portable, |(backend, _)| *backend)
}

/// Runs one backend's nonce loop over `start..=last`.
fn run_backend(
    backend: Sha256dBackend,
    midstate: &[u32; 8],
    tail: &[u32; 3],
    start: u32,
    last: u32,
    top_limit: u32,
    hit: &mut dyn FnMut(u32, [u32; 8]) -> bool,
) -> u64 {
    match backend {
        #[cfg(target_arch = "x86_64")]
        Sha256dBackend::ShaNi if shani::available() => {
            // SAFETY: `shani::available()` confirmed the CPU features `shani::plain::scan` is
            // compiled for.
            unsafe { shani::plain::scan(midstate, tail, start, last, top_limit, hit) }
        }
        #[cfg(target_arch = "x86_64")]
        Sha256dBackend::ShaNiAvx512 if shani::available_vl() => {
            // SAFETY: as above, for the SHA and AVX-512VL features `shani::vl::scan` needs.
            unsafe { shani::vl::scan(midstate, tail, start, last, top_limit, hit) }
        }
        #[cfg(target_arch = "x86_64")]
        Sha256dBackend::Avx512x16 if avx512::available() => {
            // SAFETY: as above, for the AVX-512 features `avx512::scan` needs.
            unsafe { avx512::scan(midstate, tail, start, last, top_limit, hit) }
        }
        _ => scan_portable(midstate, tail, start, last, top_limit, hit),
    }
}

fn scan_portable(
    midstate: &[u32; 8],
    tail: &[u32; 3],
    start: u32,
    last: u32,
    top_limit: u32,
    hit: &mut dyn FnMut(u32, [u32; 8]) -> bool,
) -> u64 {
    let mut done = 0u64;
    let mut nonce = start;
    loop {
        let words = portable::sha256d_tail(midstate, tail, nonce.swap_bytes());
        done += 1;
        if words[7].swap_bytes() <= top_limit && !hit(nonce, words) {
            return done;
        }
        if nonce == last {
            return done;
        }
        nonce = nonce.wrapping_add(1);
    }
}

fn scan_generic(
    job: &ScanJob,
    nonces: Range<u64>,
    target: &Target,
    found: &mut Vec<Solution>,
) -> Result<u64, HashError> {
    let mut buf = job.input().to_vec();
    let mut done = 0;
    for nonce in nonces {
        job.write_nonce(&mut buf, nonce)?;
        let hash = sha256d(&buf);
        done += 1;
        if target.is_met_by(&hash) {
            found.push(Solution {
                nonce,
                output: PowOutput::hash_only(hash),
            });
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis() -> Vec<u8> {
        hex::decode("0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c").expect("hex")
    }

    #[test]
    fn midstate_path_matches_plain_hash_on_every_backend() {
        let header = genesis();
        let (mid, tail) = split_header(&header).expect("80 bytes");
        let words = portable::sha256d_tail(
            &mid,
            &tail,
            u32::from_le_bytes([0x1d, 0xac, 0x2b, 0x7c]).swap_bytes(),
        );
        assert_eq!(words_to_bytes(&words), sha256d(&header));
    }

    #[test]
    fn every_backend_hits_the_same_nonces() {
        let header: [u8; 80] = genesis().try_into().expect("80");
        let job = ScanJob::header80(header);
        // A target that about one nonce in 256 meets.
        let mut t = [0xffu8; 32];
        t[31] = 0x00;
        let target = Target::from_le_bytes(t);
        let mut results = Vec::new();
        for backend in Sha256dBackend::ALL {
            let Ok(kernel) = Sha256d::with_backend(backend) else {
                continue;
            };
            let mut worker = kernel.worker().expect("worker");
            let mut found = Vec::new();
            // An odd-sized range that ends on the last nonce: every backend's final group is
            // short (4001 is 1 past a multiple of 4 and of 16).
            let done = worker
                .scan(&job, ((1u64 << 32) - 4001)..(1 << 32), &target, &mut found)
                .expect("scan");
            assert_eq!(done, 4001);
            for s in &found {
                let input = job.with_nonce(s.nonce).expect("nonce");
                assert_eq!(s.output.hash, sha256d(&input));
                assert!(target.is_met_by(&s.output.hash));
            }
            results.push(found);
        }
        assert!(!results[0].is_empty());
        assert!(results.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn ranges_shorter_than_a_group_count_every_nonce_once() {
        let header: [u8; 80] = genesis().try_into().expect("80");
        let job = ScanJob::header80(header);
        // A target every hash meets: each nonce scanned is reported, so both the count and
        // the nonces show what was covered.
        let target = Target::from_le_bytes([0xff; 32]);
        let top = 1u64 << 32;
        let ranges = [
            0..1,
            0..2,
            0..3,
            5..7,
            top - 2..top,
            top - 3..top,
            top - 17..top,
        ];
        for backend in Sha256dBackend::ALL {
            let Ok(kernel) = Sha256d::with_backend(backend) else {
                continue;
            };
            let mut worker = kernel.worker().expect("worker");
            for range in ranges.clone() {
                let mut found = Vec::new();
                let done = worker
                    .scan(&job, range.clone(), &target, &mut found)
                    .expect("scan");
                assert_eq!(done, range.end - range.start, "{backend:?} {range:?}");
                let nonces: Vec<u64> = found.iter().map(|s| s.nonce).collect();
                assert_eq!(nonces, range.clone().collect::<Vec<_>>(), "{backend:?}");
                for s in &found {
                    let input = job.with_nonce(s.nonce).expect("nonce");
                    assert_eq!(s.output.hash, sha256d(&input), "{backend:?} {}", s.nonce);
                }
            }
        }
    }
}
