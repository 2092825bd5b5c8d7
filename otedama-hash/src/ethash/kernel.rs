//! The [`Ethash`] and [`KawPow`] kernels behind [`PowAlgorithm`], their workers, and direct
//! hashing and verification on an [`EpochContext`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use otedama_core::Target;

use crate::algorithm::{
    Algorithm, NonceWidth, PowAlgorithm, PowOutput, Progress, ScanJob, Solution, Worker,
};
use crate::HashError;

use super::cache::EpochCache;
use super::dag::{EpochContext, FullDataset, FullLookup, LightLookup};
use super::epoch::DagAlgorithm;
use super::node::Lookup;
use super::progpow::Program;
use super::{ethash, kawpow};

/// Bytes of an Ethash-family hashing input: the 32-byte header hash, then the nonce as 8
/// little-endian bytes.
pub const HEADER_NONCE_LEN: usize = 40;

/// The outcome of checking a claimed solution (header hash, nonce, mix hash) against a
/// boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The mix hash is right and the final hash meets the boundary.
    Valid(PowOutput),
    /// The final hash computed from the claimed mix hash is above the boundary. This is found
    /// without touching the dataset, so worthless shares cost almost nothing to reject.
    AboveBoundary {
        /// The final hash from the claimed mix hash.
        final_hash: [u8; 32],
    },
    /// The final hash from the claimed mix hash meets the boundary, but the mix hash is not the
    /// one the header hash and nonce give: a forged or corrupted share.
    MixMismatch {
        /// The mix hash that was claimed.
        claimed: [u8; 32],
        /// The mix hash the header hash and nonce give.
        expected: [u8; 32],
    },
}

impl Verification {
    /// Whether the solution is valid.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verification::Valid(_))
    }
}

/// A solution a miner claims, as a pool receives it: what [`EpochContext::verify_many`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareClaim {
    /// The block height of the job (picks the epoch and, for KawPow, the program).
    pub height: u64,
    /// The header hash the job gave.
    pub header_hash: [u8; 32],
    /// The nonce found.
    pub nonce: u64,
    /// The mix hash claimed.
    pub mix: [u8; 32],
    /// The boundary the share must meet (read big-endian), e.g. from the miner's difficulty.
    pub boundary: Target,
}

fn output(mix: [u8; 32], final_hash: [u8; 32]) -> PowOutput {
    PowOutput {
        hash: final_hash,
        mix: Some(mix),
    }
}

impl EpochContext {
    /// Checks that this context serves `height` (same algorithm family, same epoch).
    fn check_height(&self, height: u64) -> Result<(), HashError> {
        let epoch = self.algorithm().epoch_of(height)?;
        if epoch != self.epoch() {
            return Err(HashError::EpochMismatch {
                algorithm: self.algorithm().algorithm(),
                context_epoch: self.epoch(),
                height,
                height_epoch: epoch,
            });
        }
        Ok(())
    }

    /// Evaluates the proof of work of `header_hash` and `nonce` at block `height` from the light
    /// cache: the mix hash and the final hash (read the final hash big-endian against the
    /// boundary). `height` must fall in this context's epoch; for KawPow it also picks the
    /// program.
    pub fn hash(
        &self,
        height: u64,
        header_hash: &[u8; 32],
        nonce: u64,
    ) -> Result<PowOutput, HashError> {
        self.check_height(height)?;
        let lookup = LightLookup::new(self);
        Ok(match self.algorithm() {
            DagAlgorithm::Ethash => {
                let h = ethash::hash(&lookup, self.items_1024(), header_hash, nonce);
                output(h.mix, h.final_hash)
            }
            DagAlgorithm::KawPow => {
                let program = Program::generate(height / kawpow::PERIOD_LENGTH);
                let h = kawpow::hash(
                    &program,
                    self.l1(),
                    &lookup,
                    self.items_2048(),
                    header_hash,
                    nonce,
                );
                output(h.mix, h.final_hash)
            }
        })
    }

    /// Checks a claimed solution at `height` the way a pool checks a share: the final hash is
    /// first computed from the claimed mix hash (cheap) and compared with `boundary` read
    /// big-endian; only if it meets it is the mix hash recomputed from the light cache and
    /// compared with the claim.
    pub fn verify(
        &self,
        height: u64,
        header_hash: &[u8; 32],
        nonce: u64,
        mix: &[u8; 32],
        boundary: &Target,
    ) -> Result<Verification, HashError> {
        self.check_height(height)?;
        let lookup = LightLookup::new(self);
        let (final_hash, expected) = match self.algorithm() {
            DagAlgorithm::Ethash => {
                let seed = ethash::seed(header_hash, nonce);
                let final_hash = ethash::final_hash(&seed, mix);
                if !boundary.is_met_by_be(&final_hash) {
                    return Ok(Verification::AboveBoundary { final_hash });
                }
                (
                    final_hash,
                    ethash::mix_hash(&seed, &lookup, self.items_1024()),
                )
            }
            DagAlgorithm::KawPow => {
                let carried = kawpow::initial_state(header_hash, nonce);
                let final_hash = kawpow::final_hash(&carried, mix);
                if !boundary.is_met_by_be(&final_hash) {
                    return Ok(Verification::AboveBoundary { final_hash });
                }
                let program = Program::generate(height / kawpow::PERIOD_LENGTH);
                (
                    final_hash,
                    kawpow::mix(&carried, &program, self.l1(), &lookup, self.items_2048()),
                )
            }
        };
        if expected != *mix {
            return Ok(Verification::MixMismatch {
                claimed: *mix,
                expected,
            });
        }
        Ok(Verification::Valid(output(expected, final_hash)))
    }

    /// Checks many claimed solutions, each with its own height (in this context's epoch) and
    /// boundary, as [`verify`](Self::verify) does one; the results come back in order.
    ///
    /// The shares that pass the cheap boundary check have their mix hashes recomputed several
    /// at a time in lockstep (with AVX2, eight for Ethash and four for KawPow; half that on the
    /// portable path), which keeps many more cache reads in flight than one hash can: about
    /// five times the one-by-one rate for Ethash and three and a half for KawPow on one thread
    /// of the development machine.
    pub fn verify_many(&self, claims: &[ShareClaim]) -> Vec<Result<Verification, HashError>> {
        let mut results: Vec<Result<Verification, HashError>> = Vec::with_capacity(claims.len());
        // Claims that meet their boundary by the claimed mix: (claim index, final hash).
        let mut pending: Vec<(usize, [u8; 32])> = Vec::new();
        let mut ethash_seeds: Vec<[u32; 16]> = Vec::new();
        // KawPow: first-pass states, with the index of their period's program.
        let mut kawpow_states: Vec<([u32; 8], usize)> = Vec::new();
        let mut programs: Vec<Program> = Vec::new();
        let mut program_of_period: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, claim) in claims.iter().enumerate() {
            if let Err(e) = self.check_height(claim.height) {
                results.push(Err(e));
                continue;
            }
            let final_hash = match self.algorithm() {
                DagAlgorithm::Ethash => {
                    let seed = ethash::seed(&claim.header_hash, claim.nonce);
                    let f = ethash::final_hash(&seed, &claim.mix);
                    if claim.boundary.is_met_by_be(&f) {
                        ethash_seeds.push(seed);
                    }
                    f
                }
                DagAlgorithm::KawPow => {
                    let carried = kawpow::initial_state(&claim.header_hash, claim.nonce);
                    let f = kawpow::final_hash(&carried, &claim.mix);
                    if claim.boundary.is_met_by_be(&f) {
                        let period = claim.height / kawpow::PERIOD_LENGTH;
                        let program = *program_of_period.entry(period).or_insert_with(|| {
                            programs.push(Program::generate(period));
                            programs.len() - 1
                        });
                        kawpow_states.push((carried, program));
                    }
                    f
                }
            };
            if claim.boundary.is_met_by_be(&final_hash) {
                // Its result is replaced below, once the mix hash is known.
                pending.push((i, final_hash));
            }
            results.push(Ok(Verification::AboveBoundary { final_hash }));
        }
        let mut expected = vec![[0u8; 32]; pending.len()];
        let lookup = LightLookup::new(self);
        match self.algorithm() {
            DagAlgorithm::Ethash => {
                ethash::mix_hashes_all(&ethash_seeds, &lookup, self.items_1024(), &mut expected)
            }
            DagAlgorithm::KawPow => {
                // Each index was handed out just after pushing its program.
                let jobs: Vec<([u32; 8], &Program)> = kawpow_states
                    .iter()
                    .map(|&(carried, program)| (carried, &programs[program]))
                    .collect();
                kawpow::mixes_all(&jobs, self.l1(), &lookup, self.items_2048(), &mut expected);
            }
        }
        for ((i, final_hash), expected) in pending.into_iter().zip(expected) {
            let (Some(claim), Some(result)) = (claims.get(i), results.get_mut(i)) else {
                continue;
            };
            *result = Ok(if expected == claim.mix {
                Verification::Valid(output(expected, final_hash))
            } else {
                Verification::MixMismatch {
                    claimed: claim.mix,
                    expected,
                }
            });
        }
        results
    }
}

/// Whether a kernel reads dataset items from the light cache or from a built full dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagMode {
    /// Items computed from the light cache on demand: little memory, about a thousand times
    /// slower per hash. For verifying shares.
    Verify,
    /// Items read from the full dataset (built first: a gigabyte or more, tens of seconds on a
    /// few cores). For mining.
    Search,
}

/// What a kernel is bound to: a height, its epoch's context, the dataset in search mode, and
/// the ProgPoW program of the height's period (generated for Ethash too, and unused: it costs
/// microseconds).
struct Binding {
    height: u64,
    context: Arc<EpochContext>,
    dataset: Option<Arc<FullDataset>>,
    program: Program,
}

impl Binding {
    fn new(
        algorithm: DagAlgorithm,
        height: u64,
        epochs: &EpochCache,
        mode: DagMode,
        threads: usize,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self, HashError> {
        let epoch = algorithm.epoch_of(height)?;
        let context = epochs.context(algorithm, epoch)?;
        let dataset = match mode {
            DagMode::Verify => None,
            DagMode::Search => Some(epochs.dataset(algorithm, epoch, threads, progress, cancel)?),
        };
        Ok(Binding {
            height,
            context,
            dataset,
            program: Program::generate(height / kawpow::PERIOD_LENGTH),
        })
    }

    fn hash(&self, header_hash: &[u8; 32], nonce: u64) -> Result<PowOutput, HashError> {
        let mut out = None;
        self.scan(header_hash, nonce..nonce.saturating_add(1), &mut |_, o| {
            out = Some(o)
        });
        // An empty range only when `nonce` is u64::MAX; hash it on its own.
        match out {
            Some(o) => Ok(o),
            None => self.context.hash(self.height, header_hash, nonce),
        }
    }

    /// Hashes every nonce of `nonces`, handing each output to `each`.
    fn scan(
        &self,
        header_hash: &[u8; 32],
        nonces: Range<u64>,
        each: &mut dyn FnMut(u64, PowOutput),
    ) {
        match &self.dataset {
            Some(dataset) => self.scan_with(&FullLookup::new(dataset), header_hash, nonces, each),
            None => self.scan_with(&LightLookup::new(&self.context), header_hash, nonces, each),
        }
    }

    /// Hashes nonces in blocks, several hashes interleaved at a time (see `mix_hashes_all`
    /// and `mixes_all`), with no allocation.
    fn scan_with<L: Lookup>(
        &self,
        lookup: &L,
        header_hash: &[u8; 32],
        nonces: Range<u64>,
        each: &mut dyn FnMut(u64, PowOutput),
    ) {
        const BLOCK: usize = 16;
        let context = &self.context;
        let mut start = nonces.start;
        while start < nonces.end {
            let count = (nonces.end - start).min(BLOCK as u64) as usize;
            let mut mixes = [[0u8; 32]; BLOCK];
            match context.algorithm() {
                DagAlgorithm::Ethash => {
                    let mut seeds = [[0u32; 16]; BLOCK];
                    for (k, seed) in seeds.iter_mut().take(count).enumerate() {
                        *seed = ethash::seed(header_hash, start + k as u64);
                    }
                    ethash::mix_hashes_all(
                        &seeds[..count],
                        lookup,
                        context.items_1024(),
                        &mut mixes[..count],
                    );
                    for (k, (seed, mix)) in seeds.iter().zip(&mixes).take(count).enumerate() {
                        each(
                            start + k as u64,
                            output(*mix, ethash::final_hash(seed, mix)),
                        );
                    }
                }
                DagAlgorithm::KawPow => {
                    let mut jobs = [([0u32; 8], &self.program); BLOCK];
                    for (k, job) in jobs.iter_mut().take(count).enumerate() {
                        job.0 = kawpow::initial_state(header_hash, start + k as u64);
                    }
                    kawpow::mixes_all(
                        &jobs[..count],
                        context.l1(),
                        lookup,
                        context.items_2048(),
                        &mut mixes[..count],
                    );
                    for (k, ((carried, _), mix)) in jobs.iter().zip(&mixes).take(count).enumerate()
                    {
                        each(
                            start + k as u64,
                            output(*mix, kawpow::final_hash(carried, mix)),
                        );
                    }
                }
            }
            start += count as u64;
        }
    }
}

type Slot = Arc<Mutex<Arc<Binding>>>;

fn load(slot: &Slot) -> Arc<Binding> {
    match slot.lock() {
        Ok(guard) => Arc::clone(&guard),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// What [`Ethash`] and [`KawPow`] share.
struct Core {
    algorithm: DagAlgorithm,
    epochs: EpochCache,
    mode: DagMode,
    threads: usize,
    current: Slot,
}

impl Core {
    fn new(
        algorithm: DagAlgorithm,
        height: u64,
        epochs: &EpochCache,
        mode: DagMode,
        threads: usize,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Self, HashError> {
        let threads = threads.max(1);
        let binding = Binding::new(algorithm, height, epochs, mode, threads, progress, cancel)?;
        Ok(Core {
            algorithm,
            epochs: epochs.clone(),
            mode,
            threads,
            current: Arc::new(Mutex::new(Arc::new(binding))),
        })
    }

    fn binding(&self) -> Arc<Binding> {
        load(&self.current)
    }

    fn set_height(
        &self,
        height: u64,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<(), HashError> {
        if self.binding().height == height {
            return Ok(());
        }
        let binding = Arc::new(Binding::new(
            self.algorithm,
            height,
            &self.epochs,
            self.mode,
            self.threads,
            progress,
            cancel,
        )?);
        match self.current.lock() {
            Ok(mut guard) => *guard = binding,
            Err(poisoned) => *poisoned.into_inner() = binding,
        }
        Ok(())
    }

    fn hash_input(&self, input: &[u8]) -> Result<PowOutput, HashError> {
        let (header_hash, nonce) = split_input(input)?;
        self.binding().hash(&header_hash, nonce)
    }

    fn verify(
        &self,
        header_hash: &[u8; 32],
        nonce: u64,
        mix: &[u8; 32],
        boundary: &Target,
    ) -> Result<Verification, HashError> {
        let binding = self.binding();
        binding
            .context
            .verify(binding.height, header_hash, nonce, mix, boundary)
    }

    fn worker(&self) -> Box<dyn Worker> {
        Box::new(DagWorker {
            slot: Arc::clone(&self.current),
        })
    }
}

/// Splits a 40-byte input into the header hash and the little-endian nonce.
fn split_input(input: &[u8]) -> Result<([u8; 32], u64), HashError> {
    let wrong = || HashError::HeaderNonceInput { len: input.len() };
    if input.len() != HEADER_NONCE_LEN {
        return Err(wrong());
    }
    let (header, nonce) = input.split_at(32);
    let header: [u8; 32] = header.try_into().map_err(|_| wrong())?;
    let nonce: [u8; 8] = nonce.try_into().map_err(|_| wrong())?;
    Ok((header, u64::from_le_bytes(nonce)))
}

/// A mining thread of either kernel: follows the kernel's height at each scan.
struct DagWorker {
    slot: Slot,
}

impl Worker for DagWorker {
    fn scan(
        &mut self,
        job: &ScanJob,
        nonces: Range<u64>,
        target: &Target,
        found: &mut Vec<Solution>,
    ) -> Result<u64, HashError> {
        if job.input().len() != HEADER_NONCE_LEN
            || job.nonce_offset() != 32
            || job.nonce_width() != NonceWidth::U64
        {
            return Err(HashError::ScanLayout {
                len: job.input().len(),
                offset: job.nonce_offset(),
                width: job.nonce_width().bytes(),
            });
        }
        job.check_range(&nonces)?;
        let (header_hash, _) = split_input(job.input())?;
        let binding = load(&self.slot);
        binding.scan(&header_hash, nonces.clone(), &mut |nonce, output| {
            if target.is_met_by_be(&output.hash) {
                found.push(Solution { nonce, output });
            }
        });
        Ok(nonces.end - nonces.start)
    }
}

macro_rules! dag_kernel {
    ($name:ident, $algo:expr, $title:literal, $epoch_blocks:literal) => {
        #[doc = concat!("The ", $title, " kernel, bound to one block height at a time.")]
        ///
        #[doc = concat!("The hash depends on the height through the epoch (", $epoch_blocks, " blocks)")]
        /// and, for KawPow, the program period, so the kernel is created for a height and moved
        /// with [`set_height`](Self::set_height); its workers follow at their next scan.
        ///
        /// [`PowAlgorithm::hash`] takes the 40-byte input `header_hash || nonce` (nonce
        /// little-endian) and returns the final hash with `mix: Some(mix hash)`; read the final
        /// hash big-endian against the boundary. Workers scan jobs made with
        /// `ScanJob::new(input40, 32, NonceWidth::U64)`.
        pub struct $name {
            core: Core,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let binding = self.core.binding();
                f.debug_struct(stringify!($name))
                    .field("mode", &self.core.mode)
                    .field("height", &binding.height)
                    .field("epoch", &binding.context.epoch())
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            /// A kernel in verify mode at `height`, with its epoch's context from `epochs`
            /// (built there if it is not kept).
            pub fn new(height: u64, epochs: &EpochCache) -> Result<Self, HashError> {
                let never = AtomicBool::new(false);
                Ok($name {
                    core: Core::new(
                        $algo,
                        height,
                        epochs,
                        DagMode::Verify,
                        1,
                        &|_, _| {},
                        &never,
                    )?,
                })
            }

            /// A kernel in search mode at `height`: the epoch's full dataset comes from
            /// `epochs`, built there with `threads` threads if it is not kept (tens of seconds),
            /// with `progress(done, total)` reports; setting `cancel` stops the build with
            /// [`HashError::Cancelled`].
            pub fn with_dataset(
                height: u64,
                epochs: &EpochCache,
                threads: usize,
                progress: Progress<'_>,
                cancel: &AtomicBool,
            ) -> Result<Self, HashError> {
                Ok($name {
                    core: Core::new(
                        $algo,
                        height,
                        epochs,
                        DagMode::Search,
                        threads,
                        progress,
                        cancel,
                    )?,
                })
            }

            /// Moves the kernel to `height`. In search mode a new epoch means a new full
            /// dataset, built here (tens of seconds); use
            /// [`set_height_with_progress`](Self::set_height_with_progress) to watch or cancel
            /// it.
            pub fn set_height(&self, height: u64) -> Result<(), HashError> {
                let never = AtomicBool::new(false);
                self.core.set_height(height, &|_, _| {}, &never)
            }

            /// As [`set_height`](Self::set_height), reporting dataset progress and stopping
            /// when `cancel` is set (the kernel then stays at its old height).
            pub fn set_height_with_progress(
                &self,
                height: u64,
                progress: Progress<'_>,
                cancel: &AtomicBool,
            ) -> Result<(), HashError> {
                self.core.set_height(height, progress, cancel)
            }

            /// The height the kernel is bound to.
            pub fn height(&self) -> u64 {
                self.core.binding().height
            }

            /// The epoch of that height.
            pub fn epoch(&self) -> u32 {
                self.core.binding().context.epoch()
            }

            /// Verify or search mode.
            pub fn mode(&self) -> DagMode {
                self.core.mode
            }

            /// The epoch context in use.
            pub fn context(&self) -> Arc<EpochContext> {
                Arc::clone(&self.core.binding().context)
            }

            /// The mix hash and final hash of `header_hash` with `nonce` at the bound height.
            pub fn hash_header(
                &self,
                header_hash: &[u8; 32],
                nonce: u64,
            ) -> Result<PowOutput, HashError> {
                self.core.binding().hash(header_hash, nonce)
            }

            /// Checks a claimed solution at the bound height: see [`EpochContext::verify`].
            pub fn verify(
                &self,
                header_hash: &[u8; 32],
                nonce: u64,
                mix: &[u8; 32],
                boundary: &Target,
            ) -> Result<Verification, HashError> {
                self.core.verify(header_hash, nonce, mix, boundary)
            }
        }

        impl PowAlgorithm for $name {
            fn algorithm(&self) -> Algorithm {
                $algo.algorithm()
            }

            fn hash(&self, input: &[u8]) -> Result<PowOutput, HashError> {
                self.core.hash_input(input)
            }

            fn worker(&self) -> Result<Box<dyn Worker>, HashError> {
                Ok(self.core.worker())
            }
        }
    };
}

dag_kernel!(Ethash, DagAlgorithm::Ethash, "Ethash", "30,000");
dag_kernel!(KawPow, DagAlgorithm::KawPow, "KawPow", "7,500");
