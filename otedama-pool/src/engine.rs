//! The pool engine as a sans-IO state machine, in the manner of quinn-proto's `Endpoint`.
//!
//! The engine never blocks, hashes, sleeps or reads a clock. The caller feeds it what
//! happened (`handle_template`, `handle_share`, `handle_checked`, `handle_block_result`,
//! `handle_persisted`) with the time passed in, and carries out the [`Action`]s it polls out
//! (`poll_action`): announce a job, submit a block, make a share durable, answer the miner.
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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use otedama_core::bitcoin::ScriptBuf;
use otedama_core::Share;
use otedama_core::{AddressParams, BlockTemplate, Difficulty, DifficultyConvention};
use otedama_hash::PowAlgorithm;
use otedama_rewards::FeeRate;
use otedama_stratum::{JobAnnouncement, ShareSubmission, ShareVerdict};

use crate::identity::{Identity, IdentityError};
use crate::jobs::{JobBook, PoolJob};
use crate::source::SubmitError;
use crate::store::{BlockRecord, BlockStatus, ShareRecord};
use crate::validate::{share_of, validate, Outcome, ShareError};

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

/// What the engine needs to know about the pool it runs.
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

/// One share the engine is following, from submission to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareId(u64);

/// What the engine reports for the operator's log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Report {
    /// The chain tip moved: jobs for a new height.
    NewHeight {
        /// The height now mined.
        height: u64,
    },
    /// A job could not be built from a template.
    JobFailed {
        /// The template's height.
        height: u64,
        /// Why.
        error: String,
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
    /// Submit a block to the node; answer with [`Engine::handle_block_result`].
    SubmitBlock {
        /// The share that found it.
        share: ShareId,
        /// The full block.
        block: Vec<u8>,
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
    },
    /// Something for the operator's log.
    Report(Report),
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
    job: Arc<PoolJob>,
    submission: Submission,
    convention: DifficultyConvention,
}

/// A share after its proof-of-work check; hand it back with [`Engine::handle_checked`].
#[derive(Debug)]
pub struct CheckedShare {
    id: ShareId,
    job: Arc<PoolJob>,
    submission: Submission,
    outcome: Result<Outcome, ShareError>,
}

impl ShareCheck {
    /// The share being checked.
    pub fn id(&self) -> ShareId {
        self.id
    }

    /// Rebuilds the header and hashes it with `kernel`: the slow part, on the caller's thread.
    pub fn verify(self, kernel: &dyn PowAlgorithm) -> CheckedShare {
        let outcome = validate(
            &self.job,
            &self.submission.share,
            self.submission.version_mask,
            self.submission.difficulty,
            kernel,
            self.convention,
        );
        CheckedShare {
            id: self.id,
            job: self.job,
            submission: self.submission,
            outcome,
        }
    }
}

struct Pending<R> {
    reply: R,
    difficulty: f64,
    record: Option<ShareRecord>,
    block: Option<(Arc<PoolJob>, String)>,
}

/// The pool engine. See the [module documentation](self).
pub struct Engine<R> {
    config: EngineConfig,
    book: JobBook,
    current_prev: Option<[u8; 32]>,
    next_id: u64,
    pending: HashMap<ShareId, Pending<R>>,
    actions: VecDeque<Action<R>>,
    stats: EngineStats,
}

impl<R> std::fmt::Debug for Engine<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("algorithm", &self.config.algorithm)
            .field("pending", &self.pending.len())
            .field("actions", &self.actions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<R> Engine<R> {
    /// An engine with no job yet.
    pub fn new(config: EngineConfig) -> Engine<R> {
        Engine {
            config,
            book: JobBook::default(),
            current_prev: None,
            next_id: 0,
            pending: HashMap::new(),
            actions: VecDeque::new(),
            stats: EngineStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
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

    /// A template from the work source, at `now_secs` (Unix seconds): builds the job (clean
    /// when the tip moved) and queues its announcement.
    pub fn handle_template(&mut self, template: BlockTemplate, now_secs: u32) {
        let clean = self.current_prev != Some(template.prev_hash);
        let (height, prev) = (template.height, template.prev_hash);
        match self.book.make(
            Arc::new(template),
            &self.config.payout,
            &self.config.pool_tag,
            clean,
            now_secs,
        ) {
            Ok(job) => {
                self.current_prev = Some(prev);
                if clean {
                    self.actions
                        .push_back(Action::Report(Report::NewHeight { height }));
                }
                self.actions.push_back(Action::Announce { job });
            }
            Err(e) => self.actions.push_back(Action::Report(Report::JobFailed {
                height,
                error: e.to_string(),
            })),
        }
    }

    /// Checks a worker's identity (`address[.worker][+difficulty]`): the address must be one
    /// of the pool's chain. Returns it with the address in its canonical spelling, so one
    /// account is kept per address however a miner writes it.
    pub fn authorize(&self, username: &str) -> Result<Identity, AuthorizeError> {
        let mut identity = Identity::parse(username)?;
        identity.address = self.config.chain.canonical(&identity.address)?;
        Ok(identity)
    }

    /// Under SOLO, the version of job `base` whose coinbase pays `worker`'s own address (the
    /// reward less the pool's fee, and the fee to the pool); `None` for pooled schemes, a
    /// job no longer valid, or a worker whose address is not the chain's.
    pub fn solo_job(&mut self, base: &JobAnnouncement, worker: &str) -> Option<Arc<PoolJob>> {
        let fee_rate = self.config.solo_fee?;
        let identity = self.authorize(worker).ok()?;
        let script = self.config.chain.script_pubkey(&identity.address).ok()?;
        let value = self.book.get(&base.notify.job_id)?.template.coinbase_value;
        let fee = fee_rate.fee_of(value);
        let mut outputs = vec![(script, value - fee)];
        if fee > 0 {
            outputs.push((self.config.payout.clone(), fee));
        }
        match self.book.derive(
            &base.notify.job_id,
            &identity.address,
            &outputs,
            &self.config.pool_tag,
        )? {
            Ok(job) => Some(job),
            Err(e) => {
                self.actions.push_back(Action::Report(Report::JobFailed {
                    height: base.height,
                    error: format!("solo job for {}: {e}", identity.address),
                }));
                None
            }
        }
    }

    /// A share a session handed over. Returns the check to run when its job is valid;
    /// otherwise the answer (stale) is queued at once.
    pub fn handle_share(&mut self, submission: Submission, reply: R) -> Option<ShareCheck> {
        self.next_id += 1;
        let id = ShareId(self.next_id);
        let difficulty = submission.difficulty;
        match self.book.get(submission.share.job_id.as_str()) {
            Some(job) => {
                self.pending.insert(
                    id,
                    Pending {
                        reply,
                        difficulty,
                        record: None,
                        block: None,
                    },
                );
                Some(ShareCheck {
                    id,
                    job,
                    submission,
                    convention: self.config.convention,
                })
            }
            None => {
                self.stats.rejected += 1;
                self.actions.push_back(Action::Answer {
                    reply,
                    verdict: ShareError::Stale(submission.share.job_id.to_string()).verdict(),
                    difficulty,
                });
                None
            }
        }
    }

    /// A checked share, at `now_ms` (Unix milliseconds): an invalid one is answered at once,
    /// a block goes to the node first, a share goes to storage.
    pub fn handle_checked(&mut self, checked: CheckedShare, now_ms: i64) {
        let CheckedShare {
            id,
            job,
            submission,
            outcome,
        } = checked;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return self.answer(id, Err(e)),
        };
        // The session authorized this worker; an address the chain does not take (a
        // session driven without authorization) is recorded as written.
        let worker = &submission.share.worker;
        let (address, worker) = match self.authorize(worker) {
            Ok(identity) => (identity.address, identity.worker),
            Err(_) => match Identity::parse(worker) {
                Ok(identity) => (identity.address, identity.worker),
                Err(_) => (worker.clone(), String::new()),
            },
        };
        let template = &job.template;
        let record = ShareRecord {
            algorithm: self.config.algorithm.clone(),
            // A block and its share carry one time, so that the block's own share is in its
            // PPLNS window.
            time_ms: now_ms,
            address,
            worker,
            difficulty: submission.difficulty,
            job_id: submission.share.job_id.to_string(),
            height: template.height,
            pow_hash: outcome.pow_hash(),
            is_block: matches!(outcome, Outcome::Block { .. }),
            network_difficulty: template
                .target()
                .and_then(|t| self.config.convention.difficulty_of(&t).ok())
                .map_or(0.0, Difficulty::as_f64),
            block_value: template.coinbase_value,
            tx_fees: job.tx_fees,
        };
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        match outcome {
            Outcome::Share { .. } => {
                pending.record = Some(record.clone());
                self.actions.push_back(Action::Persist {
                    share: id,
                    record,
                    block: None,
                });
            }
            Outcome::Block {
                block_hash, block, ..
            } => {
                pending.record = Some(record);
                pending.block = Some((Arc::clone(&job), block_hash));
                self.actions
                    .push_back(Action::SubmitBlock { share: id, block });
            }
        }
    }

    /// The node's answer to a block submission: the block and its share go to storage, the
    /// block with its status.
    pub fn handle_block_result(&mut self, share: ShareId, result: Result<(), SubmitError>) {
        let Some(pending) = self.pending.get_mut(&share) else {
            return;
        };
        let (Some(record), Some((job, hash))) = (pending.record.clone(), pending.block.take())
        else {
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
        let finder = job.payee.clone().unwrap_or_else(|| record.address.clone());
        let block = BlockRecord {
            algorithm: self.config.algorithm.clone(),
            time_ms: record.time_ms,
            height: job.template.height,
            hash: hash.clone(),
            address: finder.clone(),
            payee: job.payee.clone(),
            worker: record.worker.clone(),
            reward: job.template.coinbase_value,
            status,
            detail,
        };
        self.actions
            .push_back(Action::Report(Report::BlockSubmitted {
                height: job.template.height,
                hash,
                finder,
                result,
            }));
        self.actions.push_back(Action::Persist {
            share,
            record,
            block: Some(block),
        });
    }

    /// Storage's answer: a durable share is accepted; one that is not durable is not
    /// acknowledged as accepted.
    pub fn handle_persisted(&mut self, share: ShareId, result: Result<(), String>) {
        match result {
            Ok(()) => self.answer(share, Ok(())),
            Err(e) => self.answer(share, Err(ShareError::NotRecorded(e))),
        }
    }

    fn answer(&mut self, id: ShareId, result: Result<(), ShareError>) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let verdict = match result {
            Ok(()) => {
                self.stats.accepted += 1;
                self.stats.difficulty_sum += pending.difficulty;
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
}
