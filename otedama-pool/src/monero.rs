//! Monero-layout work for the engine: RandomX jobs whose hashing blob and coinbase come whole
//! from the work source, one pair per session.
//!
//! A Bitcoin-family job is built by the engine (it writes the coinbase and leaves the miner an
//! extranonce). A Monero-layout job is not: the work source writes the coinbase, with bytes
//! reserved for the pool, and commits to it in the hashing blob the miner hashes. So a pool
//! asks its source for one [`RxWork`] per session (its own reserved bytes, so that no two
//! sessions hash the same blob) and registers each with the engine
//! ([`Engine::rx_session_job`](crate::Engine::rx_session_job)), which keeps them in its job
//! table until a new tip retires them
//! ([`Engine::handle_rx_work`](crate::Engine::handle_rx_work)).
//!
//! A share on such a job is checked on the caller's thread like any other
//! ([`ShareCheck::verify`](crate::ShareCheck::verify)): the blob is rebuilt from the engine's
//! own job and the share's nonce, hashed with RandomX, the hash must equal the claimed
//! result, meet the job's share target, and, meeting the network difficulty
//! ([`monero_check_hash`]), it is a block: the blob and the coinbase go to the source
//! ([`RxSource::submit`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otedama_core::{encode_hex, monero_check_hash, MoneroTarget, MoneroTargetError, Target, U256};
use otedama_hash::{HashError, PowAlgorithm, RandomX, RandomXMode};
use otedama_p2p::RxShareTemplate;
use otedama_stratum::{
    MoneroJob, MoneroShareSubmission, Vardiff, VardiffConfig, MONERO_NONCE_OFFSET,
};

use crate::source::{SourceError, SubmitError};
use crate::validate::ShareError;
use crate::validate::{FoundBlock, Verified};

/// The algorithm name RandomX jobs carry for miners (xmrig's name for Monero's RandomX).
pub const RX_ALGO: &str = "rx/0";

/// Most RandomX jobs kept for checking shares: one per session each time the pool's work
/// changes on a tip (a new tip, a refresh, a vardiff retarget), so this bounds the sessions a
/// tip can serve with their own blobs before the oldest jobs are forgotten.
pub const MAX_RX_JOBS: usize = 65_536;

/// Work on one block in the Monero layout, as a work source hands it to one session: the
/// engine's side of a source's template (the devnet's
/// [`RxTemplate`](crate::source::devnet_rx::RxTemplate) converts into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxWork {
    /// The hashing blob, nonce zero (the nonce sits at [`MONERO_NONCE_OFFSET`]).
    pub blob: Vec<u8>,
    /// The coinbase the blob commits to, with the session's reserved bytes: submitted with a
    /// found block.
    pub coinbase: Vec<u8>,
    /// The height of the block being built.
    pub height: u64,
    /// The network difficulty (Monero convention): a hash meeting it is a block.
    pub difficulty: u64,
    /// The RandomX key (Monero's seed hash); shares must be checked with a kernel keyed so.
    pub seed: [u8; 32],
    /// The block this one builds on: work with another parent is a new tip.
    pub prev_id: [u8; 32],
    /// What the block pays, in the coin's smallest unit.
    pub reward: u64,
}

/// The engine's settings for a RandomX pool ([`Engine::randomx`](crate::Engine::randomx)).
#[derive(Debug, Clone, PartialEq)]
pub struct RxConfig {
    /// The algorithm's name, recorded with every share and block (`randomx`).
    pub algorithm: String,
    /// The algorithm name jobs carry for miners ([`RX_ALGO`]).
    pub algo: String,
    /// The share difficulty of every job, and each session's first under vardiff. A miner
    /// may ask for more with `+difficulty` in its login, never for less (its difficulty is
    /// then fixed); no job's share difficulty exceeds its network difficulty.
    pub share_difficulty: u64,
    /// Steers each session's share difficulty toward a share every `target_interval`
    /// ([`Engine::rx_session_job_for`](crate::Engine::rx_session_job_for)); `None` keeps
    /// `share_difficulty`.
    pub vardiff: Option<VardiffConfig>,
}

/// One RandomX job: the work it was made from and what its session announces.
#[derive(Debug, Clone, PartialEq)]
pub struct RxJob {
    /// The work: blob, coinbase, height, difficulties, key and reward.
    pub work: RxWork,
    /// The job as the Monero dialect announces it (job id, blob, share target, algorithm,
    /// height, seed hash).
    pub announcement: MoneroJob,
    /// The share difficulty its target stands for.
    pub share_difficulty: u64,
    /// Whether this is the pool's common job (no session's own reserved bytes): announced to
    /// every connection, so its shares are not credited.
    pub shared: bool,
    /// The session whose difficulty vardiff steers, for a session's own job.
    pub session: Option<u64>,
    /// On a sharechain, the share this job's blob is (its coinbase pays the sharechain's
    /// window): a hash meeting its target is a share of the sharechain.
    pub side: Option<Arc<RxShareTemplate>>,
}

/// The largest Monero difficulty whose target admits every hash meeting `target`: a job at
/// this difficulty or below has its miners submit every hash that is a sharechain share.
pub(crate) fn difficulty_admitting(target: &Target) -> u64 {
    U256::MAX
        .checked_div(target.as_u256())
        .and_then(|d| d.to_u64().or(Some(u64::MAX)))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A Monero-dialect share as the engine takes it. The engine rebuilds the blob from its own
/// job, so only the nonce and the claimed hash come from the miner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxSubmission {
    /// The job it was mined on.
    pub job_id: String,
    /// The login it came under (`address[.worker][+difficulty]`).
    pub worker: String,
    /// The nonce.
    pub nonce: u32,
    /// The hash the miner claims.
    pub result: [u8; 32],
    /// The share difficulty the session announced the job with (the engine's own job's
    /// difficulty counts when the job is known).
    pub difficulty: u64,
}

impl From<&MoneroShareSubmission> for RxSubmission {
    fn from(s: &MoneroShareSubmission) -> RxSubmission {
        RxSubmission {
            job_id: s.job_id.clone(),
            worker: s.worker.clone(),
            nonce: s.nonce,
            result: s.result,
            difficulty: s.difficulty,
        }
    }
}

/// Why a RandomX job could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RxJobError {
    /// The engine serves the Bitcoin family, not RandomX.
    #[error("the engine serves the bitcoin family, not randomx work")]
    NotRandomX,
    /// The work builds on a block the engine's tip left behind: a lower height, or another
    /// parent at the tip's height.
    #[error("work for height {height} is not on the tip (height {tip})")]
    Stale {
        /// The work's height.
        height: u64,
        /// The height the engine mines.
        tip: u64,
    },
    /// The blob cannot hold a nonce at [`MONERO_NONCE_OFFSET`].
    #[error("hashing blob of {0} bytes cannot hold the nonce at byte {MONERO_NONCE_OFFSET}")]
    ShortBlob(usize),
    /// The share difficulty has no Monero target.
    #[error("share difficulty: {0}")]
    Difficulty(#[from] MoneroTargetError),
}

/// Where a RandomX pool's work comes from and where its blocks go (the Monero layout's
/// counterpart of [`TemplateSource`](crate::TemplateSource) and
/// [`BlockSubmitter`](crate::BlockSubmitter)).
///
/// [`wait_for_tip`](RxSource::wait_for_tip) and [`submit`](RxSource::submit) may block; a
/// pool calls them from threads of its own. [`work`](RxSource::work) is asked for every
/// session's job, so it should answer at once (a source on a node writes the reserved bytes
/// into a template it holds). Methods take `&self` so that one source serves the tip watcher,
/// the sessions' jobs and the block submissions at once; a source on a node should give
/// submissions a connection of their own, so that a block never waits behind a tip watch.
pub trait RxSource: Send + Sync {
    /// Work on the current tip whose coinbase pays `payout`, with `reserved` in the bytes the
    /// coinbase reserves for the pool (a pool gives every session its own).
    fn work(&self, payout: &str, reserved: [u8; 8]) -> Result<RxWork, SourceError>;

    /// Waits up to `timeout` for the chain's tip to be another block than `tip` (the parent
    /// of the work last taken: a new block, or a reorganisation to any height); returns
    /// whether it is.
    fn wait_for_tip(&self, tip: &[u8; 32], timeout: Duration) -> Result<bool, SourceError>;

    /// Submits a found block: its hashing blob (nonce written in) and the coinbase the blob
    /// commits to.
    fn submit(&self, blob: &[u8], coinbase: &[u8]) -> Result<(), SubmitError>;
}

impl<T: RxSource + ?Sized> RxSource for Arc<T> {
    fn work(&self, payout: &str, reserved: [u8; 8]) -> Result<RxWork, SourceError> {
        (**self).work(payout, reserved)
    }

    fn wait_for_tip(&self, tip: &[u8; 32], timeout: Duration) -> Result<bool, SourceError> {
        (**self).wait_for_tip(tip, timeout)
    }

    fn submit(&self, blob: &[u8], coinbase: &[u8]) -> Result<(), SubmitError> {
        (**self).submit(blob, coinbase)
    }
}

/// How many RandomX keys [`RxKeys`] keeps kernels for: the current seed and the one before
/// it, whose shares may still be in flight when the seed changes.
pub const RX_KEYS_KEPT: usize = 2;

/// Builds a share verifier keyed with a seed.
pub type RxKernelMaker =
    Box<dyn Fn(&[u8; 32]) -> Result<Arc<dyn PowAlgorithm>, HashError> + Send + Sync>;

/// RandomX share verifiers by key (Monero's seed hash, which changes every 2048 blocks): a
/// pool checks each share with the kernel keyed by its job's seed, and builds the kernel of a
/// new seed once, before any job with it goes out.
pub struct RxKeys {
    kernels: Mutex<VecDeque<Keyed>>,
    make: RxKernelMaker,
    /// Held while a kernel is built: one at a time, so that many share checks meeting a new
    /// key wait for one 256 MiB cache instead of each building its own.
    building: Mutex<()>,
}

/// A verifier and the key it is built with.
type Keyed = ([u8; 32], Arc<dyn PowAlgorithm>);

impl std::fmt::Debug for RxKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .lock()
            .iter()
            .map(|(seed, _)| encode_hex(&seed[..8]))
            .collect();
        f.debug_struct("RxKeys").field("keys", &keys).finish()
    }
}

impl RxKeys {
    /// Verifiers made by `make`, starting with `kernel`, already keyed with `seed`.
    pub fn new(seed: [u8; 32], kernel: Arc<dyn PowAlgorithm>, make: RxKernelMaker) -> RxKeys {
        RxKeys {
            kernels: Mutex::new(VecDeque::from([(seed, kernel)])),
            make,
            building: Mutex::new(()),
        }
    }

    /// Light-mode RandomX verifiers (a 256 MiB cache each), starting with one keyed with
    /// `seed`.
    pub fn light(seed: [u8; 32]) -> Result<RxKeys, HashError> {
        let make: RxKernelMaker = Box::new(|seed| {
            Ok(Arc::new(RandomX::new(seed, RandomXMode::Light, 1)?) as Arc<dyn PowAlgorithm>)
        });
        let first = make(&seed)?;
        Ok(RxKeys::new(seed, first, make))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Keyed>> {
        self.kernels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verifier keyed with `seed`, when it is built.
    pub fn get(&self, seed: &[u8; 32]) -> Option<Arc<dyn PowAlgorithm>> {
        self.lock()
            .iter()
            .find(|(s, _)| s == seed)
            .map(|(_, k)| Arc::clone(k))
    }

    /// The verifier keyed with `seed`, built now when it is not (a second or so, in light
    /// mode; shares waiting on it wait that long), with `true` when it was. Only the newest
    /// [`RX_KEYS_KEPT`] keys are kept.
    pub fn prepare(&self, seed: &[u8; 32]) -> Result<(Arc<dyn PowAlgorithm>, bool), HashError> {
        if let Some(kernel) = self.get(seed) {
            return Ok((kernel, false));
        }
        // Built outside the kernels' lock, so shares on the other keys are checked meanwhile,
        // and one at a time: whoever waited finds it built.
        let _one_at_a_time = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kernel) = self.get(seed) {
            return Ok((kernel, false));
        }
        let kernel = (self.make)(seed)?;
        let mut kernels = self.lock();
        kernels.push_back((*seed, Arc::clone(&kernel)));
        while kernels.len() > RX_KEYS_KEPT {
            kernels.pop_front();
        }
        Ok((kernel, true))
    }

    /// The keys held, oldest first.
    pub fn keys(&self) -> Vec<[u8; 32]> {
        self.lock().iter().map(|(seed, _)| *seed).collect()
    }
}

/// How long a session's difficulty is kept after its last job: it has left.
const SESSION_FORGOTTEN: Duration = Duration::from_secs(30 * 60);

/// Each Monero-dialect session's share difficulty under vardiff. A Monero job carries its
/// target, so a new difficulty reaches a session with its next job: at the next tip, or when
/// a retarget asks for fresh work ([`RxDifficulties::retarget`]), which it does at most once
/// a retarget interval whatever the number of sessions.
#[derive(Debug, Default)]
pub(crate) struct RxDifficulties {
    sessions: HashMap<u64, SessionDifficulty>,
    next_check: Option<Instant>,
    /// A session still connected has a new difficulty its jobs do not carry yet.
    pending: bool,
    /// When fresh work was last asked for.
    last_refresh: Option<Instant>,
}

#[derive(Debug)]
struct SessionDifficulty {
    vardiff: Vardiff,
    difficulty: u64,
    seen: Instant,
    /// A job or a share since the last ask for fresh work: the session is connected (one
    /// that is gone gets no job from that ask and stops counting).
    active: bool,
}

/// A vardiff difficulty as a Monero difficulty: whole, at least 1.
fn whole(difficulty: f64) -> u64 {
    if difficulty.is_finite() && difficulty >= 1.0 {
        difficulty.round().min(u64::MAX as f64) as u64
    } else {
        1
    }
}

impl RxDifficulties {
    /// Session `session`'s share difficulty at `now` (`base` for a session seen first).
    pub(crate) fn difficulty(
        &mut self,
        config: &VardiffConfig,
        session: u64,
        base: u64,
        now: Instant,
    ) -> u64 {
        let state = self
            .sessions
            .entry(session)
            .or_insert_with(|| SessionDifficulty {
                vardiff: Vardiff::new(config.clone(), now),
                difficulty: whole(config.clamp(base as f64)),
                seen: now,
                active: true,
            });
        state.seen = now;
        state.active = true;
        self.next_check.get_or_insert(now + check_every(config));
        state.difficulty
    }

    /// Counts an accepted share of `session`.
    pub(crate) fn record_share(&mut self, session: u64) {
        if let Some(state) = self.sessions.get_mut(&session) {
            state.vardiff.record_share();
            state.active = true;
        }
    }

    /// When [`RxDifficulties::retarget`] is due next; `None` with no session.
    pub(crate) fn next_check(&self) -> Option<Instant> {
        self.next_check
    }

    /// Retargets every session whose share rate is off target at `now`, and forgets the
    /// sessions without a job for [`SESSION_FORGOTTEN`]; whether to ask for fresh work now,
    /// so that the connected sessions whose difficulty moved get it (at most once a retarget
    /// interval; a change that has to wait is asked for at a later look).
    pub(crate) fn retarget(&mut self, config: &VardiffConfig, now: Instant) -> bool {
        self.sessions
            .retain(|_, state| now.saturating_duration_since(state.seen) < SESSION_FORGOTTEN);
        for state in self.sessions.values_mut() {
            if let Some(d) = state.vardiff.retarget(state.difficulty as f64, now) {
                let d = whole(config.clamp(d));
                if d != state.difficulty {
                    state.difficulty = d;
                    self.pending |= state.active;
                }
            }
        }
        self.next_check = (!self.sessions.is_empty()).then(|| now + check_every(config));
        let allowed = self
            .last_refresh
            .is_none_or(|at| now.saturating_duration_since(at) >= config.retarget_interval);
        if !(self.pending && allowed) {
            return false;
        }
        self.pending = false;
        self.last_refresh = Some(now);
        for state in self.sessions.values_mut() {
            state.active = false;
        }
        true
    }
}

/// How often the sessions' rates are looked at: often enough for the early ramp of a miner
/// far below its capacity (its window closes early), never more than once a second.
fn check_every(config: &VardiffConfig) -> Duration {
    (config.retarget_interval / 8).max(Duration::from_secs(1))
}

/// The RandomX jobs still valid for shares, oldest first, and the tip they are on.
#[derive(Debug, Default)]
pub(crate) struct RxBook {
    jobs: HashMap<String, Arc<RxJob>>,
    order: VecDeque<String>,
    counter: u64,
    /// The height and parent of the newest tip seen.
    tip: Option<(u64, [u8; 32])>,
}

impl RxBook {
    /// The height mined now, once a tip is known.
    pub(crate) fn tip_height(&self) -> Option<u64> {
        self.tip.map(|(height, _)| height)
    }

    /// Whether `work` builds on a block the book's tip has left behind: a lower height, or
    /// another parent at the tip's height (a reorganisation's losing side). Work above the
    /// tip passes: most often a newer tip the book has not followed yet (after a
    /// reorganisation to a lower height, work read just before it also passes, until the
    /// book follows the new tip and retires it).
    pub(crate) fn is_stale(&self, work: &RxWork) -> bool {
        self.tip.is_some_and(|(height, parent)| {
            work.height < height || (work.height == height && work.prev_id != parent)
        })
    }

    /// Records the tip `work` is on; returns whether it is a new one (another parent), in
    /// which case the jobs on every other parent are retired (a reorganisation may bring a
    /// tip at the same height or below).
    pub(crate) fn follow(&mut self, work: &RxWork) -> bool {
        if self.tip.map(|(_, prev)| prev) == Some(work.prev_id) {
            return false;
        }
        self.tip = Some((work.height, work.prev_id));
        self.retire_other_than(&work.prev_id);
        true
    }

    /// Registers a job for `work` at share difficulty `share_difficulty` (capped at the
    /// network difficulty and, on a sharechain, at the share target of `side`, at least 1),
    /// announced with the algorithm name `algo`. With `side`, the job mines `side`'s blob and
    /// coinbase.
    pub(crate) fn insert(
        &mut self,
        mut work: RxWork,
        share_difficulty: u64,
        algo: &str,
        shared: bool,
        session: Option<u64>,
        side: Option<Arc<RxShareTemplate>>,
    ) -> Result<Arc<RxJob>, RxJobError> {
        let mut cap = work.difficulty;
        if let Some(side) = &side {
            work.blob = side.blob.clone();
            work.coinbase = side.coinbase.clone();
            cap = cap.min(difficulty_admitting(&side.target()));
        }
        if work.blob.len() < MONERO_NONCE_OFFSET + 4 {
            return Err(RxJobError::ShortBlob(work.blob.len()));
        }
        let share_difficulty = share_difficulty.min(cap).max(1);
        let target = MoneroTarget::from_difficulty(share_difficulty)?;
        self.counter += 1;
        let id = format!("{:x}", self.counter);
        let job = Arc::new(RxJob {
            announcement: MoneroJob {
                blob: work.blob.clone(),
                job_id: id.clone(),
                target,
                algo: Some(algo.to_owned()),
                height: Some(work.height),
                seed_hash: Some(work.seed),
            },
            work,
            share_difficulty: target.difficulty(),
            shared,
            session,
            side,
        });
        self.jobs.insert(id.clone(), Arc::clone(&job));
        self.order.push_back(id);
        while self.order.len() > MAX_RX_JOBS {
            if let Some(old) = self.order.pop_front() {
                self.jobs.remove(&old);
            }
        }
        Ok(job)
    }

    /// Forgets the jobs that do not build on `parent`: their shares are stale.
    pub(crate) fn retire_other_than(&mut self, parent: &[u8; 32]) {
        let jobs = &mut self.jobs;
        self.order.retain(|id| {
            let keep = jobs.get(id).is_some_and(|j| j.work.prev_id == *parent);
            if !keep {
                jobs.remove(id);
            }
            keep
        });
    }

    /// A job by id, while it is still valid.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<RxJob>> {
        self.jobs.get(id).cloned()
    }

    /// How many jobs are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }
}

/// A found block's id as the pool records it: Monero's block id of the hashing blob
/// ([`otedama_core::monero::block_id`]), hex as monerod prints it.
pub fn rx_block_id(blob: &[u8]) -> String {
    encode_hex(&otedama_core::monero::block_id(blob))
}

/// Checks `submission` against `job` with `kernel` (RandomX keyed with the job's seed): the
/// slow part, on the caller's thread.
pub(crate) fn verify(
    job: &RxJob,
    submission: &RxSubmission,
    kernel: &dyn PowAlgorithm,
) -> Result<Verified, ShareError> {
    let blob = job
        .announcement
        .blob_with_nonce(submission.nonce)
        .ok_or(ShareError::ShortBlob(job.announcement.blob.len()))?;
    let hash = kernel.hash(&blob)?.hash;
    if hash != submission.result {
        return Err(ShareError::ResultMismatch {
            nonce: submission.nonce,
            claimed: encode_hex(&submission.result),
            computed: encode_hex(&hash),
        });
    }
    // A block is a block even below the share difficulty (see `validate_header`).
    // A zero network difficulty (a broken daemon) would make every hash a block.
    let block = job.work.difficulty > 0 && monero_check_hash(&hash, job.work.difficulty);
    if !job.announcement.target.is_met_by(&hash) && !block {
        return Err(ShareError::LowDifficulty);
    }
    let side = job
        .side
        .as_ref()
        .filter(|side| side.target().is_met_by(&hash))
        .map(|side| side.finish(submission.nonce));
    if !monero_check_hash(&hash, job.work.difficulty) {
        return Ok(Verified {
            pow_hash: hash,
            block: None,
            side,
        });
    }
    Ok(Verified {
        pow_hash: hash,
        block: Some((
            rx_block_id(&blob),
            FoundBlock::Rx {
                blob,
                coinbase: job.work.coinbase.clone(),
            },
        )),
        side,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(height: u64, prev: u8) -> RxWork {
        RxWork {
            blob: vec![0; 76],
            coinbase: Vec::new(),
            height,
            difficulty: 1000,
            seed: [1; 32],
            prev_id: [prev; 32],
            reward: 5,
        }
    }

    #[test]
    fn a_new_tip_retires_the_jobs_on_other_parents() {
        let mut book = RxBook::default();
        assert!(book.follow(&work(1, 0)));
        let a = book
            .insert(work(1, 0), 10, RX_ALGO, false, None, None)
            .expect("job");
        assert!(!book.follow(&work(1, 0)), "the same parent is the same tip");
        let b = book
            .insert(work(1, 0), 10, RX_ALGO, false, None, None)
            .expect("job");
        assert_ne!(a.announcement.job_id, b.announcement.job_id);
        assert_eq!(a.announcement.height, Some(1));
        assert_eq!(a.announcement.algo.as_deref(), Some(RX_ALGO));
        assert!(book.follow(&work(2, 1)));
        assert_eq!(book.tip_height(), Some(2));
        let c = book
            .insert(work(2, 1), 10, RX_ALGO, false, None, None)
            .expect("job");
        assert!(book.get(&a.announcement.job_id).is_none());
        assert!(book.get(&b.announcement.job_id).is_none());
        assert!(book.get(&c.announcement.job_id).is_some());
        assert_eq!(book.len(), 1);
        assert!(book.is_stale(&work(1, 0)), "below the tip");
        assert!(
            book.is_stale(&work(2, 7)),
            "the tip's height, another parent"
        );
        assert!(!book.is_stale(&work(2, 1)));
        assert!(!book.is_stale(&work(3, 5)), "a newer tip not followed yet");
        // A reorganisation to a tip below: the higher jobs on the old parent go too.
        assert!(book.follow(&work(1, 9)));
        assert_eq!(book.tip_height(), Some(1));
        assert!(book.get(&c.announcement.job_id).is_none());
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn keys_are_built_once_and_the_two_newest_are_kept() {
        let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let make: RxKernelMaker = Box::new(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Arc::new(otedama_hash::Sha256d::default()) as Arc<dyn PowAlgorithm>)
        });
        let keys = RxKeys::new([1; 32], Arc::new(otedama_hash::Sha256d::default()), make);
        assert!(keys.get(&[1; 32]).is_some());
        assert!(keys.get(&[2; 32]).is_none());
        assert!(keys.prepare(&[2; 32]).expect("built").1);
        assert!(!keys.prepare(&[2; 32]).expect("kept").1);
        assert!(!keys.prepare(&[1; 32]).expect("kept").1);
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(keys.prepare(&[3; 32]).expect("built").1);
        assert_eq!(keys.keys(), vec![[2; 32], [3; 32]]);
        assert!(keys.get(&[1; 32]).is_none());
        // Eight checks meeting a new key at once build it once.
        let keys = Arc::new(keys);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let keys = Arc::clone(&keys);
                std::thread::spawn(move || keys.prepare(&[4; 32]).expect("built").1)
            })
            .collect();
        let fresh = threads
            .into_iter()
            .map(|t| t.join().expect("joined"))
            .filter(|&built| built)
            .count();
        assert_eq!(fresh, 1);
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[test]
    fn vardiff_raises_a_fast_session_and_forgets_a_gone_one() {
        let config = VardiffConfig {
            target_interval: Duration::from_secs(10),
            retarget_interval: Duration::from_secs(60),
            min_difficulty: 1.0,
            max_difficulty: 1e12,
            tolerance: 0.3,
            max_step: 4.0,
        };
        let start = Instant::now();
        let mut d = RxDifficulties::default();
        assert_eq!(d.next_check(), None);
        assert_eq!(d.difficulty(&config, 7, 100, start), 100);
        assert_eq!(d.difficulty(&config, 8, 100, start), 100);
        assert!(d.next_check().is_some());
        // Session 7 sends a share a second, ten times the target rate; 8 sends none.
        for _ in 0..60 {
            d.record_share(7);
        }
        assert!(d.retarget(&config, start + Duration::from_secs(61)));
        assert_eq!(
            d.difficulty(&config, 7, 100, start + Duration::from_secs(61)),
            400,
            "raised by at most max_step"
        );
        assert!(d.difficulty(&config, 8, 100, start + Duration::from_secs(61)) < 100);
        // Within the interval no second ask, even for a change; the change waits for it.
        for _ in 0..60 {
            d.record_share(7);
        }
        assert!(!d.retarget(&config, start + Duration::from_secs(70)));
        assert!(d.retarget(&config, start + Duration::from_secs(122)));
        // A session with no job and no share since the last ask is gone: its change (8's
        // empty windows keep lowering it) asks for nothing.
        assert!(!d.retarget(&config, start + Duration::from_secs(200)));
        // Nothing more from either: after half an hour without a job both are forgotten.
        d.retarget(&config, start + Duration::from_secs(61) + SESSION_FORGOTTEN);
        assert_eq!(d.next_check(), None);
        assert_eq!(
            d.difficulty(&config, 7, 100, start + SESSION_FORGOTTEN * 2),
            100
        );
    }

    #[test]
    fn share_difficulty_stays_within_the_network_difficulty() {
        let mut book = RxBook::default();
        let job = book
            .insert(work(1, 0), 1_000_000, RX_ALGO, false, None, None)
            .expect("job");
        assert_eq!(job.share_difficulty, 1000);
        assert_eq!(job.announcement.target.difficulty(), 1000);
        let job = book
            .insert(work(1, 0), 0, RX_ALGO, false, None, None)
            .expect("job");
        assert_eq!(job.share_difficulty, 1);
        let mut short = work(1, 0);
        short.blob.truncate(40);
        assert_eq!(
            book.insert(short, 10, RX_ALGO, false, None, None)
                .map(|_| ()),
            Err(RxJobError::ShortBlob(40))
        );
    }
}
