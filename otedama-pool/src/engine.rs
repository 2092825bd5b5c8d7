//! The pool engine as a sans-IO state machine, in the manner of quinn-proto's `Endpoint`.
//!
//! The engine never blocks, hashes, sleeps or reads a clock. The caller feeds it what
//! happened (`handle_template`, `handle_share`, `handle_checked`, `handle_block_result`,
//! `handle_persisted`) with the time passed in ([`Now`]), and carries out the [`Action`]s it
//! polls out (`poll_action`): announce a job, submit a block, make a share durable, answer
//! the miner, fetch fresh work. Its own deadlines come out of [`Engine::poll_timeout`]; the
//! caller calls [`Engine::handle_timeout`] once that instant has passed. A share whose check,
//! block submission or commit does not come back in time ([`Deadlines`]) is answered as not
//! accepted (a block whose submission was never answered is recorded as submitted, for the
//! block tracker to settle), so a lost thread or a hung database never leaves a miner waiting
//! or the engine's memory growing; and a job older than [`Deadlines::refresh`] asks for fresh
//! work ([`Action::RefreshWork`]), so a quiet source still gets its job's time refreshed.
//!
//! Proof of work runs outside: [`Engine::handle_share`] hands back a [`ShareCheck`] that the
//! caller verifies on a thread of its choosing ([`ShareCheck::verify`]) and feeds back with
//! [`Engine::handle_checked`]. So the engine can sit behind one lock while many threads hash.
//!
//! The order every share follows:
//! 1. a block goes out first ([`Action::SubmitBlock`]): every second counts against a
//!    competing block;
//! 2. the share (and the block with the node's answer) is made durable ([`Action::Persist`]);
//! 3. only then is the miner answered ([`Action::Answer`]). A share that could not be made
//!    durable is answered as not accepted.
//!
//! `R` is the caller's handle for answering one share (a connection and a request token,
//! say); the engine keeps it until the answer is due.
//!
//! Two families of work go through that one path. The Bitcoin family (sha256d, scrypt;
//! [`Engine::new`]): the engine builds each job from a [`BlockTemplate`]
//! ([`Engine::handle_template`]) and a share is a Stratum v1 [`Submission`]
//! ([`Engine::handle_share`]). The Monero layout (RandomX; [`Engine::randomx`]): the work
//! source hands out hashing blobs and coinbases, one pair per session ([`RxWork`]), the engine
//! keeps them in its RandomX job table ([`Engine::handle_rx_work`],
//! [`Engine::rx_session_job`]) and a share is an [`RxSubmission`]
//! ([`Engine::handle_rx_share`]). From [`ShareCheck::verify`] on, both are the same: the
//! found block ([`FoundBlock`]) goes out first, then the records, then the answer, counted in
//! the same [`EngineStats`] and reported in the same [`Report`]s.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otedama_core::bitcoin::ScriptBuf;
use otedama_core::Share;
use otedama_core::{AddressParams, BlockTemplate, Difficulty, DifficultyConvention};
use otedama_hash::PowAlgorithm;
use otedama_rewards::FeeRate;
use otedama_stratum::{JobAnnouncement, ShareSubmission, ShareVerdict};

use crate::identity::{Identity, IdentityError};
use crate::jobs::{JobBook, PoolJob, SideJob};
use crate::monero::{
    self, RxBook, RxConfig, RxDifficulties, RxJob, RxJobError, RxSubmission, RxWork,
};
use crate::source::{SourceError, SubmitError};
use crate::store::{BlockRecord, BlockStatus, ShareRecord, StoreError};
pub use crate::validate::FoundBlock;
use crate::validate::{share_of, validate_header, ShareError, Stage, Verified};
use crate::xmr_address::{check_address, XmrAddressError};

/// A share as any session hands it over: the header fields the miner chose, and what the
/// session negotiated for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The share: job, extranonces, time, nonce, version bits and the worker it came from.
    pub share: Share,
    /// The version-rolling mask the session negotiated (0 when none).
    pub version_mask: u32,
    /// The difficulty the job was announced with: the share must meet it.
    pub difficulty: f64,
}

impl From<&ShareSubmission> for Submission {
    fn from(s: &ShareSubmission) -> Submission {
        Submission {
            share: share_of(s),
            version_mask: s.version_mask,
            difficulty: s.difficulty,
        }
    }
}

/// What the engine needs to know about a Bitcoin-family pool ([`Engine::new`]); a RandomX
/// pool has an [`RxConfig`] instead ([`Engine::randomx`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The algorithm's name, recorded with every share and block (`sha256d`, `scrypt`).
    pub algorithm: String,
    /// How share difficulty reads as a target.
    pub convention: DifficultyConvention,
    /// Whose addresses miners use.
    pub chain: AddressParams,
    /// The pool's own coinbase output.
    pub payout: ScriptBuf,
    /// The tag every coinbase carries.
    pub pool_tag: Vec<u8>,
    /// Under SOLO, the pool's fee: every miner's job pays its own address the reward less
    /// this, and the pool the fee. `None` for pooled schemes.
    pub solo_fee: Option<FeeRate>,
}

/// The time as the caller reads it: the monotonic clock for the engine's deadlines, the wall
/// clock for the times it records and puts in jobs. The engine never reads a clock itself, so
/// a harness can run it in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock.
    pub instant: Instant,
    /// The wall clock, Unix milliseconds.
    pub unix_ms: i64,
}

impl Now {
    /// Reads both clocks.
    pub fn read() -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// `later` after this time, on both clocks.
    pub fn after(self, later: Duration) -> Now {
        Now {
            instant: self.instant + later,
            unix_ms: self
                .unix_ms
                .saturating_add(i64::try_from(later.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// The wall clock in Unix seconds, as a block header holds it.
    pub fn unix_secs(self) -> u32 {
        u32::try_from(self.unix_ms.max(0) / 1000).unwrap_or(u32::MAX)
    }
}

/// How long the engine waits on its caller before it stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From [`Engine::handle_share`] to [`Engine::handle_checked`]: a share whose check does
    /// not come back is answered as not accepted.
    pub check: Duration,
    /// From [`Action::SubmitBlock`] to [`Engine::handle_block_result`]: a block the node never
    /// answered about is recorded as submitted, for the block tracker to settle, and its
    /// share goes on to its commit.
    pub block: Duration,
    /// From [`Action::Persist`] to [`Engine::handle_persisted`]: a share whose commit does not
    /// come back is answered as not accepted (should the commit land after all, the share
    /// is credited; the miner is never told it was accepted when that is not known).
    pub persist: Duration,
    /// The age of the newest job after which the engine asks for fresh work
    /// ([`Action::RefreshWork`]).
    pub refresh: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            check: Duration::from_secs(30),
            block: Duration::from_secs(60),
            persist: Duration::from_secs(30),
            refresh: Duration::from_secs(30),
        }
    }
}

/// One share the engine is following, from submission to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareId(u64);

/// What the engine reports for the operator's log.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Report {
    /// The chain tip moved: jobs for a new height.
    NewHeight {
        /// The height now mined.
        height: u64,
    },
    /// A job could not be built from the work source's work.
    JobFailed {
        /// The work's height.
        height: u64,
        /// The worker it was for, when it was one session's own job.
        worker: Option<String>,
        /// Why.
        error: JobError,
    },
    /// A share was answered as not accepted because a step did not finish in time.
    ShareTimedOut {
        /// The share.
        share: ShareId,
        /// The step that did not finish.
        stage: Stage,
    },
    /// A block was found and submitted.
    BlockSubmitted {
        /// Its height.
        height: u64,
        /// Its hash, display order hex.
        hash: String,
        /// The address that found it (the payee under SOLO).
        finder: String,
        /// The node's answer.
        result: Result<(), SubmitError>,
    },
}

/// What the caller must do.
// Actions live between two calls; boxing the records would cost an allocation per share.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Action<R> {
    /// Announce a new job to every session.
    Announce {
        /// The job.
        job: Arc<PoolJob>,
    },
    /// Announce a new RandomX job to every session (each session mines its own version of
    /// it: [`Engine::rx_session_job`]).
    AnnounceRx {
        /// The job, on the pool's own coinbase.
        job: Arc<RxJob>,
    },
    /// Submit a block to the node; answer with [`Engine::handle_block_result`].
    SubmitBlock {
        /// The share that found it.
        share: ShareId,
        /// The block, in its family's form.
        block: FoundBlock,
    },
    /// Hand a share to the sharechain (it met the sharechain's target on a sharechain job:
    /// [`Engine::handle_sharechain_work`]). Nothing is answered back: the share is also in
    /// the share log like any other.
    SideShare {
        /// The sharechain share, ready to add and announce.
        share: Box<otedama_p2p::Share>,
    },
    /// Make these records durable; answer with [`Engine::handle_persisted`].
    Persist {
        /// The share they belong to.
        share: ShareId,
        /// The share.
        record: ShareRecord,
        /// The block it found, with the node's answer.
        block: Option<BlockRecord>,
    },
    /// Tell the miner.
    Answer {
        /// The caller's handle, as given to [`Engine::handle_share`].
        reply: R,
        /// The verdict.
        verdict: ShareVerdict,
        /// The share's difficulty (for hashrate accounting when accepted).
        difficulty: f64,
        /// The worker that sent it, as it logged in.
        worker: String,
    },
    /// Fetch fresh work from the source and hand it over as usual (`handle_template`,
    /// `handle_rx_work`): the newest job is older than [`Deadlines::refresh`].
    RefreshWork,
    /// Something for the operator's log.
    Report(Report),
}

/// Why a job could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The coinbase could not be built (a template's outputs or sizes).
    #[error(transparent)]
    Coinbase(#[from] otedama_core::CoinbaseError),
    /// The RandomX work could not become a job.
    #[error(transparent)]
    Rx(#[from] RxJobError),
    /// The work source could not give a session its own work.
    #[error("the work source failed")]
    Source(#[from] SourceError),
    /// The sharechain's share template could not be built.
    #[error(transparent)]
    Sharechain(#[from] otedama_p2p::ShareError),
    /// A block template handed to a RandomX engine.
    #[error("a randomx engine takes monero-layout work, not block templates")]
    NotBitcoin,
}

/// The chain tip the pool mines on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tip {
    /// The height of the block being mined.
    pub height: u64,
    /// The network's difficulty there, in the pool's share-difficulty units (0 when the
    /// work carries no target).
    pub network_difficulty: f64,
}

/// Counters since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Shares accepted (durable and acknowledged).
    pub accepted: u64,
    /// Shares answered with anything else.
    pub rejected: u64,
    /// Blocks found.
    pub blocks: u64,
    /// The sum of the difficulties of accepted shares: the pool's work, in share units.
    pub difficulty_sum: f64,
}

/// A share whose job is known, ready for proof-of-work checking on any thread.
#[derive(Debug)]
pub struct ShareCheck {
    id: ShareId,
    facts: Facts,
    work: CheckWork,
}

/// The job and share to check, by family.
#[derive(Debug)]
enum CheckWork {
    Bitcoin {
        job: Arc<PoolJob>,
        submission: Submission,
        convention: DifficultyConvention,
    },
    Rx {
        job: Arc<RxJob>,
        submission: RxSubmission,
    },
}

/// What the records of a share need from its job and submission, whatever its family.
#[derive(Debug, Clone)]
struct Facts {
    worker: String,
    difficulty: f64,
    job_id: String,
    height: u64,
    network_difficulty: f64,
    block_value: u64,
    tx_fees: u64,
    /// The address the coinbase pays directly (SOLO), when it is not the pool's.
    payee: Option<String>,
    /// The job was the miner's own: its coinbase paid the miner (SOLO, or a sharechain share
    /// paying the miner's address), so the ledger owes nothing for the share.
    direct: bool,
    /// On a sharechain, what the coinbase pays the pool's own address (its pooled miners'
    /// part of the window): all the pool's ledger gets of a block.
    pool_part: Option<u64>,
    /// The Monero-dialect session whose difficulty vardiff steers.
    session: Option<u64>,
}

/// A share after its proof-of-work check; hand it back with [`Engine::handle_checked`].
#[derive(Debug)]
pub struct CheckedShare {
    id: ShareId,
    facts: Facts,
    outcome: Result<Verified, ShareError>,
}

impl ShareCheck {
    /// The share being checked.
    pub fn id(&self) -> ShareId {
        self.id
    }

    /// The RandomX key the share must be checked with; `None` for the Bitcoin family.
    pub fn rx_seed(&self) -> Option<[u8; 32]> {
        match &self.work {
            CheckWork::Rx { job, .. } => Some(job.work.seed),
            CheckWork::Bitcoin { .. } => None,
        }
    }

    /// Checks the proof of work with `kernel`: the slow part, on the caller's thread. A
    /// Bitcoin-family share's header is rebuilt and hashed; a RandomX share's blob is rebuilt
    /// from the engine's job and its nonce and hashed with `kernel` (RandomX keyed with
    /// [`rx_seed`](ShareCheck::rx_seed)), and the hash must equal the one the miner claims.
    pub fn verify(self, kernel: &dyn PowAlgorithm) -> CheckedShare {
        let outcome = match &self.work {
            CheckWork::Bitcoin {
                job,
                submission,
                convention,
            } => validate_header(
                job,
                &submission.share,
                submission.version_mask,
                submission.difficulty,
                kernel,
                *convention,
            )
            .map(|(outcome, header)| {
                let pow_hash = outcome.pow_hash();
                let mut verified = Verified::from(outcome);
                verified.side = job.side.as_ref().and_then(|side| {
                    let target = side.template.target();
                    kernel
                        .algorithm()
                        .hash_order()
                        .meets(&pow_hash, &target)
                        .then(|| {
                            let mut extranonce = submission.share.extranonce1.clone();
                            extranonce.extend_from_slice(&submission.share.extranonce2);
                            side.template.finish(header, &extranonce)
                        })
                });
                verified
            }),
            CheckWork::Rx { job, submission } => monero::verify(job, submission, kernel),
        };
        CheckedShare {
            id: self.id,
            facts: self.facts,
            outcome,
        }
    }
}

/// The block a share found, while the node is asked.
#[derive(Debug)]
struct PendingBlock {
    height: u64,
    hash: String,
    reward: u64,
    payee: Option<String>,
}

struct Pending<R> {
    reply: R,
    difficulty: f64,
    worker: String,
    record: Option<ShareRecord>,
    block: Option<PendingBlock>,
    /// The step it waits on, and until when.
    stage: Stage,
    deadline: Instant,
    /// The Monero-dialect session whose vardiff counts it once accepted.
    session: Option<u64>,
}

/// What the engine serves.
#[derive(Debug)]
enum Family {
    Bitcoin(EngineConfig),
    Rx(RxConfig),
}

/// The pool engine. See the [module documentation](self).
pub struct Engine<R> {
    family: Family,
    book: JobBook,
    rx: RxBook,
    rx_difficulties: RxDifficulties,
    current_prev: Option<[u8; 32]>,
    next_id: u64,
    pending: HashMap<ShareId, Pending<R>>,
    /// Every pending share's deadline, soonest first.
    deadlines: BTreeSet<(Instant, ShareId)>,
    limits: Deadlines,
    /// When the newest job was made, or fresh work last asked for.
    work_at: Option<Instant>,
    /// When the newest job was made.
    job_at: Option<Instant>,
    tip: Option<Tip>,
    actions: VecDeque<Action<R>>,
    stats: EngineStats,
}

impl<R> std::fmt::Debug for Engine<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("algorithm", &self.algorithm())
            .field("pending", &self.pending.len())
            .field("actions", &self.actions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<R> Engine<R> {
    /// A Bitcoin-family engine with no job yet.
    pub fn new(config: EngineConfig) -> Engine<R> {
        Engine::with_family(Family::Bitcoin(config))
    }

    /// A RandomX engine (Monero-layout work) with no job yet.
    pub fn randomx(config: RxConfig) -> Engine<R> {
        Engine::with_family(Family::Rx(config))
    }

    fn with_family(family: Family) -> Engine<R> {
        Engine {
            family,
            book: JobBook::default(),
            rx: RxBook::default(),
            rx_difficulties: RxDifficulties::default(),
            current_prev: None,
            next_id: 0,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            limits: Deadlines::default(),
            work_at: None,
            job_at: None,
            tip: None,
            actions: VecDeque::new(),
            stats: EngineStats::default(),
        }
    }

    /// The same engine with other [`Deadlines`].
    pub fn with_deadlines(mut self, limits: Deadlines) -> Engine<R> {
        self.limits = limits;
        self
    }

    /// The engine's deadlines.
    pub fn deadlines(&self) -> Deadlines {
        self.limits
    }

    /// The chain tip the newest job builds on; `None` before the first job.
    pub fn tip(&self) -> Option<Tip> {
        self.tip
    }

    /// How old the newest job is at `now`; `None` before the first. A job older than a few
    /// [refresh intervals](Deadlines::refresh) means the work source is not answering.
    pub fn job_age(&self, now: Instant) -> Option<Duration> {
        self.job_at.map(|at| now.saturating_duration_since(at))
    }

    /// The instant by which [`handle_timeout`](Engine::handle_timeout) must be called next;
    /// `None` while nothing waits (no share in flight and no job yet).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let share = self.deadlines.first().map(|(at, _)| *at);
        let refresh = self.work_at.map(|at| at + self.limits.refresh);
        let retarget = self.rx_difficulties.next_check();
        [share, refresh, retarget].into_iter().flatten().min()
    }

    /// Acts on every deadline passed at `now`: shares whose step did not finish are answered
    /// (a block never answered goes on to its commit), and a job past
    /// [`Deadlines::refresh`] asks for fresh work.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now.instant {
                break;
            }
            self.deadlines.remove(&(at, id));
            let Some(stage) = self.pending.get(&id).map(|p| p.stage) else {
                continue;
            };
            self.actions
                .push_back(Action::Report(Report::ShareTimedOut { share: id, stage }));
            match stage {
                Stage::Block => self.block_result(id, Err(SubmitError::TimedOut), now),
                Stage::Check | Stage::Persist => {
                    self.answer(id, Err(ShareError::TimedOut(stage)));
                }
            }
        }
        let mut refresh = false;
        if let Some(at) = self.work_at {
            if at + self.limits.refresh <= now.instant {
                // Asked once per interval: a source that stays silent is not asked in a loop.
                self.work_at = Some(now.instant);
                refresh = true;
            }
        }
        if let Family::Rx(RxConfig {
            vardiff: Some(vardiff),
            ..
        }) = &self.family
        {
            if self
                .rx_difficulties
                .next_check()
                .is_some_and(|at| at <= now.instant)
            {
                // A session's new difficulty reaches it with its next job: fresh work makes
                // one for every session.
                refresh |= self.rx_difficulties.retarget(vardiff, now.instant);
            }
        }
        if refresh {
            self.actions.push_back(Action::RefreshWork);
        }
    }

    /// Moves share `id` to `stage`, due within that stage's limit from `now`.
    fn wait_in(&mut self, id: ShareId, stage: Stage, now: Instant) {
        let limit = match stage {
            Stage::Check => self.limits.check,
            Stage::Block => self.limits.block,
            Stage::Persist => self.limits.persist,
        };
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        self.deadlines.remove(&(pending.deadline, id));
        pending.stage = stage;
        pending.deadline = now + limit;
        self.deadlines.insert((pending.deadline, id));
    }

    /// The configuration of a Bitcoin-family engine; `None` for a RandomX engine.
    pub fn config(&self) -> Option<&EngineConfig> {
        match &self.family {
            Family::Bitcoin(config) => Some(config),
            Family::Rx(_) => None,
        }
    }

    /// The configuration of a RandomX engine; `None` for a Bitcoin-family engine.
    pub fn rx_config(&self) -> Option<&RxConfig> {
        match &self.family {
            Family::Rx(config) => Some(config),
            Family::Bitcoin(_) => None,
        }
    }

    /// The algorithm's name, as recorded with every share and block.
    pub fn algorithm(&self) -> &str {
        match &self.family {
            Family::Bitcoin(config) => &config.algorithm,
            Family::Rx(config) => &config.algorithm,
        }
    }

    /// The hashes a share of difficulty 1 stands for on average (2^32 for SHA256d, 2^16 for
    /// scrypt's pool convention, 1 for RandomX): share difficulty times this is work.
    pub fn hashes_per_difficulty(&self) -> f64 {
        match &self.family {
            Family::Bitcoin(config) => config.convention.expected_hashes(Difficulty::ONE),
            Family::Rx(_) => 1.0,
        }
    }

    /// Counters since the start.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Shares between submission and answer.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action<R>> {
        self.actions.pop_front()
    }

    /// A job by id, while it is still valid.
    pub fn job(&self, id: &str) -> Option<Arc<PoolJob>> {
        self.book.get(id)
    }

    /// A RandomX job by id, while it is still valid.
    pub fn rx_job(&self, id: &str) -> Option<Arc<RxJob>> {
        self.rx.get(id)
    }

    /// A template from the work source, at `now`: builds the job (clean when the tip moved)
    /// and queues its announcement. A RandomX engine reports the template as a job that
    /// could not be built.
    pub fn handle_template(&mut self, template: BlockTemplate, now: Now) {
        let Family::Bitcoin(config) = &self.family else {
            return self.not_bitcoin(template.height);
        };
        let clean = self.current_prev != Some(template.prev_hash);
        let height = template.height;
        let made = self
            .book
            .make(
                Arc::new(template),
                &config.payout,
                &config.pool_tag,
                clean,
                now.unix_secs(),
            )
            .map_err(JobError::from);
        self.job_made(made, clean, height, now);
    }

    /// A template from the work source with the sharechain's next share on it, at `now`. The
    /// job's coinbase is the sharechain's, paying its window (this job's own share pays the
    /// pool's payout); a share meeting `base`'s target goes to the sharechain as well
    /// ([`Action::SideShare`]), and each miner mines its own version, whose share pays the
    /// miner ([`Engine::own_job`]). Clean only when the main chain's tip moved: shares on an
    /// older sharechain tip still count, as uncles.
    pub fn handle_sharechain_work(
        &mut self,
        template: BlockTemplate,
        base: otedama_p2p::TemplateBase,
        now: Now,
    ) {
        let Family::Bitcoin(config) = &self.family else {
            return self.not_bitcoin(template.height);
        };
        let clean = self.current_prev != Some(template.prev_hash);
        let height = template.height;
        let base = Arc::new(base);
        let made = base
            .for_payout(config.payout.as_bytes())
            .map_err(JobError::from)
            .and_then(|t| {
                let side = SideJob {
                    template: Arc::new(t),
                    base,
                };
                self.book
                    .make_side(Arc::new(template), side, clean, now.unix_secs())
                    .map_err(JobError::from)
            });
        self.job_made(made, clean, height, now);
    }

    fn not_bitcoin(&mut self, height: u64) {
        self.actions.push_back(Action::Report(Report::JobFailed {
            height,
            worker: None,
            error: JobError::NotBitcoin,
        }));
    }

    /// Announces a job just made (or reports why it could not be).
    fn job_made(
        &mut self,
        made: Result<Arc<PoolJob>, JobError>,
        clean: bool,
        height: u64,
        now: Now,
    ) {
        let job = match made {
            Ok(job) => job,
            Err(error) => {
                return self.actions.push_back(Action::Report(Report::JobFailed {
                    height,
                    worker: None,
                    error,
                }));
            }
        };
        let template = &job.template;
        let network_difficulty = match &self.family {
            Family::Bitcoin(config) => template
                .target()
                .and_then(|t| config.convention.difficulty_of(&t).ok())
                .map_or(0.0, Difficulty::as_f64),
            Family::Rx(_) => 0.0,
        };
        self.work_at = Some(now.instant);
        self.job_at = Some(now.instant);
        self.current_prev = Some(template.prev_hash);
        self.tip = Some(Tip {
            height,
            network_difficulty,
        });
        if clean {
            self.actions
                .push_back(Action::Report(Report::NewHeight { height }));
        }
        self.actions.push_back(Action::Announce { job });
    }

    /// The work source's work for the pool as a whole (reserved bytes of its own) on the
    /// current tip: on a new tip (another parent) the RandomX jobs below its height are
    /// retired and the new height reported; the job is queued for announcement. Each session
    /// then mines its own version ([`Engine::rx_session_job`]).
    pub fn handle_rx_work(&mut self, work: RxWork, now: Now) {
        self.handle_rx_work_on(work, None, now);
    }

    /// [`Engine::handle_rx_work`] on a sharechain: the common job mines `side`'s blob and
    /// coinbase (the next share, paying the pool's address), and a hash meeting its target
    /// is a share of the sharechain ([`Action::SideShare`]).
    pub fn handle_rx_share_work(
        &mut self,
        work: RxWork,
        side: Arc<otedama_p2p::RxShareTemplate>,
        now: Now,
    ) {
        self.handle_rx_work_on(work, Some(side), now);
    }

    fn handle_rx_work_on(
        &mut self,
        work: RxWork,
        side: Option<Arc<otedama_p2p::RxShareTemplate>>,
        now: Now,
    ) {
        let height = work.height;
        let Family::Rx(config) = &self.family else {
            self.actions.push_back(Action::Report(Report::JobFailed {
                height,
                worker: None,
                error: RxJobError::NotRandomX.into(),
            }));
            return;
        };
        let new_tip = self.rx.follow(&work);
        let tip = Tip {
            height,
            network_difficulty: work.difficulty as f64,
        };
        match self.rx.insert(
            work,
            config.share_difficulty,
            &config.algo,
            true,
            None,
            side,
        ) {
            Ok(job) => {
                self.work_at = Some(now.instant);
                self.job_at = Some(now.instant);
                self.tip = Some(tip);
                if new_tip {
                    self.actions
                        .push_back(Action::Report(Report::NewHeight { height }));
                }
                self.actions.push_back(Action::AnnounceRx { job });
            }
            Err(e) => self.actions.push_back(Action::Report(Report::JobFailed {
                height,
                worker: None,
                error: e.into(),
            })),
        }
    }

    /// Registers the job of one session: `work` carries the session's own reserved bytes, so
    /// that no two sessions hash the same blob. The share difficulty is the pool's, or more
    /// when `worker` asks for it with `+difficulty`, and never above the network's.
    pub fn rx_session_job(&mut self, work: RxWork, worker: &str) -> Result<Arc<RxJob>, RxJobError> {
        self.rx_session_job_on(work, worker, None, None)
    }

    /// [`Engine::rx_session_job`] for session `session` (its connection's id) at `now`: under
    /// [`RxConfig::vardiff`] the job's share difficulty is the session's own, steered toward
    /// the target share rate by its accepted shares, unless the miner asked for one with
    /// `+difficulty`. A session whose difficulty moves gets it with its next job, which the
    /// engine asks for ([`Action::RefreshWork`]) when a retarget changes any session's.
    pub fn rx_session_job_for(
        &mut self,
        work: RxWork,
        worker: &str,
        session: u64,
        now: Now,
    ) -> Result<Arc<RxJob>, RxJobError> {
        self.rx_session_job_on(work, worker, None, Some((session, now.instant)))
    }

    /// [`Engine::rx_session_job`] on a sharechain: the session mines `side`'s blob and
    /// coinbase (its own share, paying its own address), at a share difficulty no higher than
    /// the sharechain's, and a hash meeting `side`'s target is a share of the sharechain
    /// ([`Action::SideShare`]).
    pub fn rx_share_job(
        &mut self,
        work: RxWork,
        worker: &str,
        side: Arc<otedama_p2p::RxShareTemplate>,
    ) -> Result<Arc<RxJob>, RxJobError> {
        self.rx_session_job_on(work, worker, Some(side), None)
    }

    fn rx_session_job_on(
        &mut self,
        work: RxWork,
        worker: &str,
        side: Option<Arc<otedama_p2p::RxShareTemplate>>,
        session: Option<(u64, Instant)>,
    ) -> Result<Arc<RxJob>, RxJobError> {
        let Family::Rx(config) = &self.family else {
            return Err(RxJobError::NotRandomX);
        };
        if self.rx.is_stale(&work) {
            return Err(RxJobError::Stale {
                height: work.height,
                tip: self.rx.tip_height().unwrap_or(work.height),
            });
        }
        let asked = Identity::parse(worker)
            .ok()
            .and_then(|identity| identity.difficulty)
            .map_or(0, |d| d.min(u64::MAX as f64) as u64);
        let difficulty = match (&config.vardiff, session) {
            (Some(vardiff), Some((id, now))) if asked == 0 => {
                self.rx_difficulties
                    .difficulty(vardiff, id, config.share_difficulty, now)
            }
            _ => config.share_difficulty.max(asked),
        };
        let session = session.map(|(id, _)| id);
        self.rx
            .insert(work, difficulty, &config.algo, false, session, side)
    }

    /// Checks a worker's identity (`address[.worker][+difficulty]`): the address must be one
    /// of the pool's chain (a Monero mainnet address for a RandomX engine). Returns it with
    /// the address in its canonical spelling, so one account is kept per address however a
    /// miner writes it.
    pub fn authorize(&self, username: &str) -> Result<Identity, AuthorizeError> {
        let mut identity = Identity::parse(username)?;
        match &self.family {
            Family::Bitcoin(config) => {
                identity.address = config.chain.canonical(&identity.address)?;
            }
            Family::Rx(_) => check_address(&identity.address)?,
        }
        Ok(identity)
    }

    /// The version of job `base` that `worker` mines on its own: on a sharechain, the job
    /// whose share pays the worker's address; under SOLO, [`Engine::solo_job`]. `None` for
    /// pooled schemes, a job no longer valid, or a worker whose address is not the chain's.
    ///
    /// On a sharechain a worker whose `hashrate` (expected hashes per second; 0 while
    /// unknown) is below [`TemplateBase::direct_hashrate`](otedama_p2p::TemplateBase::direct_hashrate)
    /// gets `None` too: it mines the common job, whose shares pay the pool's address, and
    /// the pool's ledger pays it ([`ShareRecord::direct`](crate::store::ShareRecord::direct)
    /// is false for its shares).
    pub fn own_job(
        &mut self,
        base: &JobAnnouncement,
        worker: &str,
        hashrate: f64,
    ) -> Option<Arc<PoolJob>> {
        let job = self.book.get(&base.notify.job_id)?;
        let Some(side) = &job.side else {
            return self.solo_job(base, worker);
        };
        if hashrate < side.base.direct_hashrate() {
            return None;
        }
        let identity = self.authorize(worker).ok()?;
        let Family::Bitcoin(config) = &self.family else {
            return None;
        };
        let script = config.chain.script_pubkey(&identity.address).ok()?;
        let made = self
            .book
            .derive_side(&base.notify.job_id, &identity.address, &script)?;
        self.own_or_report(made, base.height, identity.address)
    }

    /// A session's own job, or the report of why it could not be made (the session then
    /// mines the common job).
    fn own_or_report(
        &mut self,
        made: Result<Arc<PoolJob>, JobError>,
        height: u64,
        address: String,
    ) -> Option<Arc<PoolJob>> {
        match made {
            Ok(job) => Some(job),
            Err(error) => {
                self.actions.push_back(Action::Report(Report::JobFailed {
                    height,
                    worker: Some(address),
                    error,
                }));
                None
            }
        }
    }

    /// Under SOLO, the version of job `base` whose coinbase pays `worker`'s own address (the
    /// reward less the pool's fee, and the fee to the pool); `None` for pooled schemes, a
    /// job no longer valid, or a worker whose address is not the chain's.
    pub fn solo_job(&mut self, base: &JobAnnouncement, worker: &str) -> Option<Arc<PoolJob>> {
        let identity = self.authorize(worker).ok()?;
        let Family::Bitcoin(config) = &self.family else {
            return None;
        };
        let fee_rate = config.solo_fee?;
        let script = config.chain.script_pubkey(&identity.address).ok()?;
        let value = self.book.get(&base.notify.job_id)?.template.coinbase_value;
        let fee = fee_rate.fee_of(value);
        let mut outputs = vec![(script, value - fee)];
        if fee > 0 {
            outputs.push((config.payout.clone(), fee));
        }
        let made = self
            .book
            .derive(
                &base.notify.job_id,
                &identity.address,
                &outputs,
                &config.pool_tag,
            )?
            .map_err(JobError::from);
        self.own_or_report(made, base.height, identity.address)
    }

    /// A share a session handed over at `now`. Returns the check to run (and hand back with
    /// [`handle_checked`](Engine::handle_checked) within [`Deadlines::check`]) when its job is
    /// valid; otherwise the answer (stale) is queued at once.
    pub fn handle_share(
        &mut self,
        submission: Submission,
        reply: R,
        now: Now,
    ) -> Option<ShareCheck> {
        let id = self.next_share();
        let difficulty = submission.difficulty;
        let (Some(job), Family::Bitcoin(config)) = (
            self.book.get(submission.share.job_id.as_str()),
            &self.family,
        ) else {
            let stale = ShareError::Stale(submission.share.job_id.to_string());
            self.answer_now(reply, stale, difficulty, &submission.share.worker);
            return None;
        };
        let convention = config.convention;
        let template = &job.template;
        let facts = Facts {
            worker: submission.share.worker.clone(),
            difficulty,
            job_id: submission.share.job_id.to_string(),
            height: template.height,
            network_difficulty: template
                .target()
                .and_then(|t| convention.difficulty_of(&t).ok())
                .map_or(0.0, Difficulty::as_f64),
            block_value: template.coinbase_value,
            tx_fees: job.tx_fees,
            // A sharechain job's coinbase pays the whole window, not its miner alone.
            payee: job.payee.clone().filter(|_| job.side.is_none()),
            direct: job.payee.is_some(),
            pool_part: job.side.as_ref().map(|side| {
                side.template
                    .outputs
                    .iter()
                    .filter(|(script, _)| *script == config.payout)
                    .map(|(_, value)| *value)
                    .sum()
            }),
            session: None,
        };
        self.wait_for(id, reply, &facts, now.instant);
        Some(ShareCheck {
            id,
            facts,
            work: CheckWork::Bitcoin {
                job,
                submission,
                convention,
            },
        })
    }

    /// A Monero-dialect share a session handed over at `now`. Returns the check to run when
    /// its job is still in the RandomX job table; otherwise the answer (stale) is queued at
    /// once.
    pub fn handle_rx_share(
        &mut self,
        submission: RxSubmission,
        reply: R,
        now: Now,
    ) -> Option<ShareCheck> {
        let id = self.next_share();
        let Some(job) = self.rx.get(&submission.job_id) else {
            let stale = ShareError::Stale(submission.job_id.clone());
            self.answer_now(
                reply,
                stale,
                submission.difficulty as f64,
                &submission.worker,
            );
            return None;
        };
        let difficulty = job.share_difficulty as f64;
        if job.shared {
            let shared = ShareError::SharedJob(submission.job_id.clone());
            self.answer_now(reply, shared, difficulty, &submission.worker);
            return None;
        }
        let facts = Facts {
            worker: submission.worker.clone(),
            difficulty,
            job_id: submission.job_id.clone(),
            height: job.work.height,
            network_difficulty: job.work.difficulty as f64,
            block_value: job.work.reward,
            tx_fees: 0,
            payee: None,
            direct: false,
            pool_part: None,
            session: job.session,
        };
        self.wait_for(id, reply, &facts, now.instant);
        Some(ShareCheck {
            id,
            facts,
            work: CheckWork::Rx { job, submission },
        })
    }

    fn next_share(&mut self) -> ShareId {
        self.next_id += 1;
        ShareId(self.next_id)
    }

    fn wait_for(&mut self, id: ShareId, reply: R, facts: &Facts, now: Instant) {
        let deadline = now + self.limits.check;
        self.pending.insert(
            id,
            Pending {
                reply,
                difficulty: facts.difficulty,
                worker: facts.worker.clone(),
                record: None,
                block: None,
                stage: Stage::Check,
                deadline,
                session: facts.session,
            },
        );
        self.deadlines.insert((deadline, id));
    }

    fn answer_now(&mut self, reply: R, error: ShareError, difficulty: f64, worker: &str) {
        self.stats.rejected += 1;
        self.actions.push_back(Action::Answer {
            reply,
            verdict: error.verdict(),
            difficulty,
            worker: worker.to_owned(),
        });
    }

    /// A checked share, at `now`: an invalid one is answered at once, a block goes to the
    /// node first, a share goes to storage. A share answered already (its check came back
    /// after [`Deadlines::check`]) is dropped.
    pub fn handle_checked(&mut self, checked: CheckedShare, now: Now) {
        let CheckedShare { id, facts, outcome } = checked;
        if !self.pending.contains_key(&id) {
            return;
        }
        let verified = match outcome {
            Ok(v) => v,
            Err(e) => return self.answer(id, Err(e)),
        };
        // The session authorized this worker; an address the chain does not take (a
        // session driven without authorization) is recorded as written.
        let (address, worker) = match self.authorize(&facts.worker) {
            Ok(identity) => (identity.address, identity.worker),
            Err(_) => match Identity::parse(&facts.worker) {
                Ok(identity) => (identity.address, identity.worker),
                Err(_) => (facts.worker.clone(), String::new()),
            },
        };
        let record = ShareRecord {
            algorithm: self.algorithm().to_owned(),
            // A block and its share carry one time, so that the block's own share is in its
            // PPLNS window.
            time_ms: now.unix_ms,
            address,
            worker,
            difficulty: facts.difficulty,
            job_id: facts.job_id,
            height: facts.height,
            pow_hash: verified.pow_hash,
            is_block: verified.block.is_some(),
            network_difficulty: facts.network_difficulty,
            block_value: facts.block_value,
            tx_fees: facts.tx_fees,
            direct: facts.direct,
        };
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        let side = verified.side.map(|share| Action::SideShare {
            share: Box::new(share),
        });
        match verified.block {
            None => {
                pending.record = Some(record.clone());
                self.wait_in(id, Stage::Persist, now.instant);
                self.actions.push_back(Action::Persist {
                    share: id,
                    record,
                    block: None,
                });
            }
            Some((hash, block)) => {
                pending.record = Some(record);
                pending.block = Some(PendingBlock {
                    height: facts.height,
                    hash,
                    reward: facts.pool_part.unwrap_or(facts.block_value),
                    payee: facts.payee,
                });
                self.wait_in(id, Stage::Block, now.instant);
                self.actions
                    .push_back(Action::SubmitBlock { share: id, block });
            }
        }
        // After the block: a found block goes to the node before anything else.
        self.actions.extend(side);
    }

    /// The node's answer to a block submission, at `now`: the block and its share go to
    /// storage, the block with its status. An answer after [`Deadlines::block`] is dropped
    /// (the block was recorded as submitted then).
    pub fn handle_block_result(
        &mut self,
        share: ShareId,
        result: Result<(), SubmitError>,
        now: Now,
    ) {
        self.block_result(share, result, now);
    }

    fn block_result(&mut self, share: ShareId, result: Result<(), SubmitError>, now: Now) {
        let Some(pending) = self.pending.get_mut(&share) else {
            return;
        };
        let (Some(record), Some(found)) = (pending.record.clone(), pending.block.take()) else {
            return;
        };
        self.stats.blocks += 1;
        let (status, detail) = match &result {
            Ok(()) => (BlockStatus::Accepted, None),
            // Valid, but another block at its height came first: it may still win, so the
            // block tracker watches it like any accepted block.
            Err(SubmitError::Rejected(r)) if r.may_still_win() => {
                (BlockStatus::Accepted, Some(r.to_string()))
            }
            Err(SubmitError::Rejected(r)) => (BlockStatus::Rejected, Some(r.to_string())),
            Err(e) => (BlockStatus::Submitted, Some(e.to_string())),
        };
        // Under SOLO the coinbase's payee found it, whatever worker name the share used.
        let finder = found
            .payee
            .clone()
            .unwrap_or_else(|| record.address.clone());
        let block = BlockRecord {
            algorithm: self.algorithm().to_owned(),
            time_ms: record.time_ms,
            height: found.height,
            hash: found.hash.clone(),
            address: finder.clone(),
            payee: found.payee,
            worker: record.worker.clone(),
            reward: found.reward,
            status,
            detail,
        };
        self.actions
            .push_back(Action::Report(Report::BlockSubmitted {
                height: found.height,
                hash: found.hash,
                finder,
                result,
            }));
        self.wait_in(share, Stage::Persist, now.instant);
        self.actions.push_back(Action::Persist {
            share,
            record,
            block: Some(block),
        });
    }

    /// Storage's answer: a durable share is accepted; one that is not durable is not
    /// acknowledged as accepted. An answer after [`Deadlines::persist`] is dropped.
    pub fn handle_persisted(&mut self, share: ShareId, result: Result<(), StoreError>) {
        match result {
            Ok(()) => self.answer(share, Ok(())),
            Err(e) => self.answer(share, Err(ShareError::NotRecorded(e))),
        }
    }

    fn answer(&mut self, id: ShareId, result: Result<(), ShareError>) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        self.deadlines.remove(&(pending.deadline, id));
        let verdict = match result {
            Ok(()) => {
                self.stats.accepted += 1;
                self.stats.difficulty_sum += pending.difficulty;
                if let Some(session) = pending.session {
                    self.rx_difficulties.record_share(session);
                }
                ShareVerdict::Accepted
            }
            Err(e) => {
                self.stats.rejected += 1;
                e.verdict()
            }
        };
        self.actions.push_back(Action::Answer {
            reply: pending.reply,
            verdict,
            difficulty: pending.difficulty,
            worker: pending.worker,
        });
    }
}

/// Why a worker was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// The identity does not parse.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The address is not one of the pool's chain.
    #[error(transparent)]
    Address(#[from] otedama_core::AddressError),
    /// The address is not a Monero mainnet address (a RandomX engine).
    #[error(transparent)]
    MoneroAddress(#[from] XmrAddressError),
}
