//! The pool side of a Stratum V2 mining connection (feature `noise`), sans-IO: the Noise
//! handshake, `SetupConnection`, standard and extended channels, jobs, targets and shares.
//!
//! [`Sv2PoolSession`] implements [`PoolProtocol`] with the same job and share types as the
//! Stratum v1 session ([`JobAnnouncement`], [`ShareSubmission`]), so a pool serves SV2 miners
//! from the same jobs, and judges, records and credits their shares the same way:
//!
//! - An extended channel's extranonce prefix is an extranonce1 from the pool's allocator, and
//!   the miner rolls `extranonce2_size` bytes after it, so a `NewExtendedMiningJob` is the
//!   v1 notify's coinbase halves (`coinb1`, `coinb2`) and merkle branch, and a
//!   `SubmitSharesExtended` is a v1 share.
//! - A standard channel gets a whole extranonce (an extranonce1, then zeros for the
//!   extranonce2), and its jobs carry the merkle root the pool computes with it.
//! - A job with a new previous hash goes out as a future job followed by `SetNewPrevHash`;
//!   one on the same block goes out active at once.
//! - Each channel has its own difficulty and vardiff (announced with `SetTarget` before the
//!   next job); a share counts at the lower of its job's difficulty and the channel's.
//! - Every share is answered one by one, with `SubmitShares.Success` once the caller says
//!   it is recorded, or `SubmitShares.Error`.
//!
//! A connection may open several channels, each authorized as its `user_identity`; jobs are
//! tailored for the first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use otedama_core::{
    coinbase_txid_from_parts, Difficulty, DifficultyConvention, MerkleBranch, Target,
};

use super::frame::Frame;
use super::message::{self as m, flags, Message, Protocol};
use super::noise::{AuthorityKeypair, ResponderLink, Took};
use super::types::DecodeError;
use crate::session::{
    AuthorizeToken, CloseReason, PoolProtocol, SeenShares, SessionEvent, ShareToken, ShareVerdict,
};
use crate::v1::extranonce::Extranonce1;
use crate::v1::message::Reconnect;
use crate::v1::pool::{JobAnnouncement, PoolConfig, ShareSubmission};
use crate::{ExtranonceAllocator, Vardiff};

/// The largest payload a miner's frame may carry: its largest message, `SetupConnection` or
/// an `OpenExtendedMiningChannel`, is a few hundred bytes.
const MAX_MINER_FRAME: usize = 4096;

/// Ban-score points a malformed or unexpected message costs.
const PENALTY: i32 = 5;

/// Settings of every SV2 session of a server.
#[derive(Debug, Clone)]
pub struct Sv2PoolConfig {
    /// The settings shared with the Stratum v1 sessions: extranonce2 size, version rolling
    /// mask, starting difficulty, vardiff, timeouts (the subscribe timeout is the time to
    /// open a first channel), ntime window, jobs kept, duplicate memory, ban threshold.
    pub pool: PoolConfig,
    /// Signs each connection's certificate.
    pub authority: AuthorityKeypair,
    /// How long a certificate is valid, seconds.
    pub certificate_validity: u32,
    /// How the difficulty reads as a target.
    pub convention: DifficultyConvention,
    /// Channels one connection may have open.
    pub max_channels: usize,
}

impl Sv2PoolConfig {
    /// The defaults for `authority`: v1's pool settings, certificates valid for a day, the
    /// Bitcoin difficulty convention, 64 channels per connection.
    pub fn new(authority: AuthorityKeypair) -> Sv2PoolConfig {
        Sv2PoolConfig {
            pool: PoolConfig::default(),
            authority,
            certificate_validity: 86_400,
            convention: DifficultyConvention::Bitcoin,
            max_channels: 64,
        }
    }
}

/// Why a session could not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Sv2OpenError {
    /// The extranonce2 size cannot fit an extended channel's `extranonce_size`.
    #[error("an extranonce2 of {0} bytes does not fit SV2's 32-byte extranonce")]
    Extranonce(usize),
}

/// One job as a channel knows it.
#[derive(Debug, Clone)]
struct ChannelJob {
    id: u32,
    v1_id: String,
    version: u32,
    ntime: u32,
    difficulty: f64,
    /// The extranonce1 the job was sent with: a `SetExtranoncePrefix` applies to the jobs
    /// after it, and the old value stays taken while a job of it lives.
    extranonce1: Arc<Extranonce1>,
}

/// A standard or extended channel.
#[derive(Debug)]
struct Channel {
    worker: String,
    /// `None` for an extended channel; the extranonce2 the pool fills in for a standard one.
    standard: Option<Vec<u8>>,
    extranonce1: Arc<Extranonce1>,
    difficulty: f64,
    /// The easiest target the miner asked for, as a difficulty floor.
    floor: f64,
    vardiff: Vardiff,
    announced: Option<f64>,
    jobs: VecDeque<ChannelJob>,
    next_job: u32,
    prevhash: Option<[u8; 32]>,
    tip: Option<u64>,
    seen: SeenShares<(u32, Vec<u8>, u32, u32, u32)>,
}

/// A share awaiting its verdict, or judged and waiting for those before it.
#[derive(Debug)]
struct PendingShare {
    token: u64,
    channel_id: u32,
    sequence_number: u32,
    difficulty: f64,
    verdict: Option<ShareVerdict>,
}

/// A channel awaiting the caller's authorization.
#[derive(Debug)]
struct PendingOpen {
    request_id: u32,
    worker: String,
    standard: bool,
    floor: f64,
}

/// The pool side of one SV2 mining connection.
pub struct Sv2PoolSession {
    config: Arc<Sv2PoolConfig>,
    allocator: Arc<ExtranonceAllocator>,
    link: ResponderLink,
    set_up: bool,
    version_mask: u32,
    channels: HashMap<u32, Channel>,
    first_channel: Option<u32>,
    next_channel: u32,
    pending_open: HashMap<u64, PendingOpen>,
    /// Shares handed to the caller, in the order they came: answered in that order, so that
    /// a `SubmitShares.Success` never covers a share judged later.
    pending_shares: VecDeque<PendingShare>,
    next_token: u64,
    last_job: Option<JobAnnouncement>,
    liveness: crate::session::Liveness,
    ban_score: i32,
    output: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent<ShareSubmission>>,
    closed: Option<CloseReason>,
}

impl std::fmt::Debug for Sv2PoolSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sv2PoolSession")
            .field("channels", &self.channels.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Sv2PoolSession {
    /// A session for a connection opened at `now`, drawing each channel's extranonce prefix
    /// from `allocator`.
    pub fn new(
        config: Arc<Sv2PoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Sv2PoolSession, Sv2OpenError> {
        if config.pool.extranonce2_size > 32 {
            return Err(Sv2OpenError::Extranonce(config.pool.extranonce2_size));
        }
        let liveness = crate::session::Liveness::new(
            now,
            config.pool.subscribe_timeout,
            config.pool.idle_timeout,
        );
        Ok(Sv2PoolSession {
            allocator,
            link: ResponderLink::new(),
            set_up: false,
            version_mask: config.pool.version_rolling_mask,
            channels: HashMap::new(),
            first_channel: None,
            next_channel: 1,
            pending_open: HashMap::new(),
            pending_shares: VecDeque::new(),
            next_token: 0,
            last_job: None,
            liveness,
            ban_score: 0,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
            config,
        })
    }

    /// Handles bytes from the miner; returns how many messages they completed.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> usize {
        if self.closed.is_some() || bytes.is_empty() {
            return 0;
        }
        self.liveness.seen(now);
        let took = self.link.take(
            bytes,
            &self.config.authority,
            self.config.certificate_validity,
            MAX_MINER_FRAME,
            unix_now(),
        );
        let mut count = match took {
            Ok(Took::Waiting) => return 0,
            Ok(Took::Answered(act2)) => {
                self.output.push_back(act2.to_vec());
                1
            }
            Ok(Took::Queued) => 0,
            Err(_) => {
                self.close(CloseReason::NotStratum);
                return 1;
            }
        };
        loop {
            match self.link.next_frame() {
                Ok(Some(frame)) => {
                    count += 1;
                    self.handle_frame(&frame, now);
                    if self.closed.is_some() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    // A frame that does not open or announces too much: the stream is lost.
                    self.close(CloseReason::NotStratum);
                    break;
                }
            }
        }
        count
    }

    fn send(&mut self, message: Message) {
        match self.link.seal(&message) {
            Some(Ok(bytes)) => self.output.push_back(bytes),
            // Only a field too long for its type or an exhausted nonce: neither comes from
            // the miner, and the connection cannot go on.
            Some(Err(_)) => self.close(CloseReason::Requested),
            None => {}
        }
    }

    fn penalize(&mut self, points: i32) {
        self.ban_score = self.ban_score.saturating_sub(points);
        if self.ban_score <= self.config.pool.ban_threshold {
            self.close(CloseReason::Banned);
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn handle_frame(&mut self, frame: &Frame, now: Instant) {
        let message = match Message::from_frame(frame) {
            Ok((message, _)) => message,
            // An extension's message this pool does not speak is dropped, as the
            // specification says, at no cost.
            Err(DecodeError::UnknownMessage { extension, .. }) if extension != 0 && self.set_up => {
                return;
            }
            Err(_) if !self.set_up => {
                self.close(CloseReason::NotStratum);
                return;
            }
            Err(_) => {
                self.penalize(PENALTY);
                return;
            }
        };
        if !self.set_up {
            let Message::SetupConnection(setup) = message else {
                self.close(CloseReason::NotStratum);
                return;
            };
            self.setup(setup);
            return;
        }
        match message {
            Message::OpenStandardMiningChannel(open) => self.open_channel(
                open.request_id,
                open.user_identity,
                open.max_target,
                true,
                0,
            ),
            Message::OpenExtendedMiningChannel(open) => self.open_channel(
                open.request_id,
                open.user_identity,
                open.max_target,
                false,
                open.min_extranonce_size,
            ),
            Message::SubmitSharesStandard(s) => self.submit(
                s.channel_id,
                s.sequence_number,
                s.job_id,
                s.nonce,
                s.ntime,
                s.version,
                None,
            ),
            Message::SubmitSharesExtended(s) => self.submit(
                s.channel_id,
                s.sequence_number,
                s.job_id,
                s.nonce,
                s.ntime,
                s.version,
                Some(s.extranonce),
            ),
            Message::UpdateChannel(update) => self.update_channel(update, now),
            Message::CloseChannel(close) => {
                self.channels.remove(&close.channel_id);
                if self.first_channel == Some(close.channel_id) {
                    self.first_channel = self.channels.keys().min().copied();
                }
            }
            Message::SetCustomMiningJob(custom) => {
                self.send(
                    m::SetCustomMiningJobError {
                        channel_id: custom.channel_id,
                        request_id: custom.request_id,
                        error_code: "unsupported: this pool does not take custom jobs".into(),
                    }
                    .into(),
                );
            }
            // Messages only a pool sends, or a second setup.
            _ => self.penalize(PENALTY),
        }
    }

    fn setup(&mut self, setup: m::SetupConnection) {
        let refuse = |this: &mut Sv2PoolSession, flags: u32, code: &str| {
            this.send(
                m::SetupConnectionError {
                    flags,
                    error_code: code.into(),
                }
                .into(),
            );
            this.close(CloseReason::NotStratum);
        };
        if setup.protocol != Protocol::Mining {
            return refuse(self, 0, "unsupported-protocol");
        }
        if !(setup.min_version..=setup.max_version).contains(&2) {
            return refuse(self, 0, "protocol-version-mismatch");
        }
        let mut unsupported = setup.flags & flags::REQUIRES_WORK_SELECTION;
        if self.version_mask == 0 {
            unsupported |= setup.flags & flags::REQUIRES_VERSION_ROLLING;
        }
        if unsupported != 0 {
            return refuse(self, unsupported, "unsupported-feature-flags");
        }
        self.set_up = true;
        let mut answer_flags = 0;
        if self.version_mask == 0 {
            answer_flags |= flags::REQUIRES_FIXED_VERSION;
        }
        self.send(
            m::SetupConnectionSuccess {
                used_version: 2,
                flags: answer_flags,
            }
            .into(),
        );
    }

    fn difficulty_of(&self, target: &[u8; 32]) -> f64 {
        self.config
            .convention
            .difficulty_of(&Target::from_le_bytes(*target))
            .map_or(f64::MAX, Difficulty::as_f64)
    }

    fn target_of(&self, difficulty: f64) -> [u8; 32] {
        Difficulty::new(difficulty)
            .map(|d| self.config.convention.target_for(d))
            .unwrap_or_else(|_| self.config.convention.diff1_target())
            .to_le_bytes()
    }

    fn open_channel(
        &mut self,
        request_id: u32,
        worker: String,
        max_target: [u8; 32],
        standard: bool,
        min_extranonce_size: u16,
    ) {
        let error = |code: &str| {
            Message::from(m::OpenMiningChannelError {
                request_id,
                error_code: code.into(),
            })
        };
        if self.channels.len() + self.pending_open.len() >= self.config.max_channels {
            self.send(error("max-channels-reached"));
            return;
        }
        if usize::from(min_extranonce_size) > self.config.pool.extranonce2_size {
            self.send(error("min-extranonce-size-too-large"));
            return;
        }
        // Jobs are tailored for the connection's first worker (a SOLO coinbase, a sharechain
        // share paying it): another payout address on the same connection would mine for it.
        let address = |w: &str| w.split(['.', '+']).next().unwrap_or_default().to_owned();
        let first = self
            .first_channel
            .and_then(|id| self.channels.get(&id))
            .map(|c| address(&c.worker))
            .or_else(|| {
                self.pending_open
                    .values()
                    .next()
                    .map(|p| address(&p.worker))
            });
        if first.is_some_and(|first| first != address(&worker)) {
            self.send(error("one-payout-address-per-connection"));
            return;
        }
        let floor = self.difficulty_of(&max_target);
        let token = self.token();
        self.pending_open.insert(
            token,
            PendingOpen {
                request_id,
                worker: worker.clone(),
                standard,
                floor,
            },
        );
        self.events.push_back(SessionEvent::Authorize {
            token: AuthorizeToken(token),
            username: worker,
            password: None,
        });
    }

    /// Answers a channel's authorization: opens it, or refuses it with the reason.
    pub fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>) {
        let Some(pending) = self.pending_open.remove(&token.0) else {
            return;
        };
        if let Err(reason) = result {
            self.send(
                m::OpenMiningChannelError {
                    request_id: pending.request_id,
                    error_code: truncated(format!("unknown-user: {reason}")),
                }
                .into(),
            );
            self.penalize(PENALTY);
            return;
        }
        let Some(extranonce1) = self.allocator.allocate(None) else {
            self.send(
                m::OpenMiningChannelError {
                    request_id: pending.request_id,
                    error_code: "pool-full".into(),
                }
                .into(),
            );
            return;
        };
        let id = self.next_channel;
        self.next_channel = self.next_channel.wrapping_add(1).max(1);
        let config = Arc::clone(&self.config);
        let pool = &config.pool;
        let difficulty = pool
            .vardiff
            .clamp(pool.initial_difficulty.max(pending.floor));
        let target = self.target_of(difficulty);
        let en2 = pool.extranonce2_size;
        let prefix = extranonce1.as_bytes().to_vec();
        let standard = pending.standard.then(|| vec![0u8; en2]);
        let answer: Message = match &standard {
            Some(en2_fill) => {
                let mut whole = prefix.clone();
                whole.extend_from_slice(en2_fill);
                m::OpenStandardMiningChannelSuccess {
                    request_id: pending.request_id,
                    channel_id: id,
                    target,
                    extranonce_prefix: whole,
                    group_channel_id: 0,
                }
                .into()
            }
            None => m::OpenExtendedMiningChannelSuccess {
                request_id: pending.request_id,
                channel_id: id,
                target,
                extranonce_size: en2 as u16,
                extranonce_prefix: prefix,
                group_channel_id: 0,
            }
            .into(),
        };
        self.send(answer);
        let now = Instant::now();
        self.channels.insert(
            id,
            Channel {
                worker: pending.worker,
                standard,
                extranonce1: Arc::new(extranonce1),
                difficulty,
                floor: pending.floor,
                vardiff: Vardiff::new(pool.vardiff.clone(), now),
                announced: Some(difficulty),
                jobs: VecDeque::new(),
                next_job: 1,
                prevhash: None,
                tip: None,
                seen: SeenShares::new(pool.max_seen_shares),
            },
        );
        self.first_channel.get_or_insert(id);
        if let Some(job) = self.last_job.clone() {
            self.send_channel_job(id, &job, now);
        }
    }

    fn update_channel(&mut self, update: m::UpdateChannel, now: Instant) {
        let floor = self.difficulty_of(&update.maximum_target);
        let pool = &self.config.pool;
        // The difficulty at which the announced hashrate finds a share every target interval.
        let from_rate = f64::from(update.nominal_hash_rate)
            * pool.vardiff.target_interval.as_secs_f64()
            / self
                .config
                .convention
                .expected_hashes(Difficulty::ONE)
                .max(1.0);
        let Some(channel) = self.channels.get_mut(&update.channel_id) else {
            self.send(
                m::UpdateChannelError {
                    channel_id: update.channel_id,
                    error_code: "invalid-channel-id".into(),
                }
                .into(),
            );
            return;
        };
        channel.floor = floor;
        if from_rate.is_finite() && from_rate > 0.0 {
            channel.difficulty = pool.vardiff.clamp(from_rate.max(floor));
            channel.vardiff.reset(now);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        channel_id: u32,
        sequence_number: u32,
        job_id: u32,
        nonce: u32,
        ntime: u32,
        version: u32,
        extranonce: Option<Vec<u8>>,
    ) {
        let error = |code: &str| {
            Message::from(m::SubmitSharesError {
                channel_id,
                sequence_number,
                error_code: code.into(),
            })
        };
        let mask = self.version_mask;
        let ntime_ahead = self.config.pool.ntime_ahead;
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            self.send(error("invalid-channel-id"));
            self.penalize(PENALTY);
            return;
        };
        let Some(job) = channel.jobs.iter().find(|j| j.id == job_id).cloned() else {
            let stale = job_id < channel.next_job;
            self.send(error(if stale {
                "stale-share"
            } else {
                "invalid-job-id"
            }));
            self.penalize(if stale { 1 } else { PENALTY });
            return;
        };
        let extranonce2 = match (&channel.standard, extranonce) {
            (Some(fill), None) => fill.clone(),
            (None, Some(e)) if e.len() == self.config.pool.extranonce2_size => e,
            (None, Some(_)) => {
                self.send(error("invalid-extranonce-size"));
                self.penalize(PENALTY);
                return;
            }
            // A standard share on an extended channel or the reverse.
            _ => {
                self.send(error("invalid-channel-id"));
                self.penalize(PENALTY);
                return;
            }
        };
        if ntime < job.ntime || ntime > job.ntime.saturating_add(ntime_ahead) {
            self.send(error("invalid-timestamp"));
            self.penalize(PENALTY);
            return;
        }
        if (version ^ job.version) & !mask != 0 {
            self.send(error("invalid-version"));
            self.penalize(PENALTY);
            return;
        }
        if !channel
            .seen
            .insert((job_id, extranonce2.clone(), ntime, nonce, version))
        {
            self.send(error("duplicate-share"));
            self.penalize(PENALTY);
            return;
        }
        let difficulty = job.difficulty.min(channel.difficulty);
        let submission = ShareSubmission {
            token: ShareToken(0),
            worker: channel.worker.clone(),
            job_id: job.v1_id,
            extranonce1: job.extranonce1.as_bytes().to_vec(),
            extranonce2,
            ntime,
            nonce,
            version_bits: (mask != 0).then_some(version & mask),
            version_mask: mask,
            difficulty,
        };
        let token = self.token();
        self.pending_shares.push_back(PendingShare {
            token,
            channel_id,
            sequence_number,
            difficulty,
            verdict: None,
        });
        self.events.push_back(SessionEvent::Share(ShareSubmission {
            token: ShareToken(token),
            ..submission
        }));
    }

    /// Answers a share: `SubmitShares.Success` once accepted (and recorded), or
    /// `SubmitShares.Error` with the reason. Answers go out in the order the shares came, and
    /// accepted shares in a row on one channel share one `SubmitShares.Success`.
    pub fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict) {
        let Some(pending) = self.pending_shares.iter_mut().find(|p| p.token == token.0) else {
            return;
        };
        if pending.verdict.is_some() {
            return;
        }
        if verdict == ShareVerdict::Accepted {
            if let Some(channel) = self.channels.get_mut(&pending.channel_id) {
                channel.vardiff.record_share();
            }
            self.ban_score = (self.ban_score + 1).min(10);
        }
        let penalty = verdict.penalty();
        pending.verdict = Some(verdict);
        self.answer_judged();
        self.penalize(penalty);
    }

    /// Sends the answers of the judged shares at the front of the queue.
    fn answer_judged(&mut self) {
        // (channel, last sequence number, count, difficulty sum) of accepted shares in a row.
        let mut run: Option<(u32, u32, u32, f64)> = None;
        let mut answers = Vec::new();
        while let Some(front) = self.pending_shares.front() {
            let Some(verdict) = &front.verdict else { break };
            let (channel, sequence, difficulty) =
                (front.channel_id, front.sequence_number, front.difficulty);
            if *verdict == ShareVerdict::Accepted {
                run = match run {
                    Some((c, _, n, sum)) if c == channel => {
                        Some((c, sequence, n + 1, sum + difficulty))
                    }
                    other => {
                        answers.extend(other.map(success));
                        Some((channel, sequence, 1, difficulty))
                    }
                };
            } else {
                answers.extend(run.take().map(success));
                answers.push(
                    m::SubmitSharesError {
                        channel_id: channel,
                        sequence_number: sequence,
                        error_code: error_code(verdict),
                    }
                    .into(),
                );
            }
            self.pending_shares.pop_front();
        }
        answers.extend(run.map(success));
        for answer in answers {
            self.send(answer);
        }
    }

    /// Announces a job on every open channel (and to channels opened later).
    pub fn send_job(&mut self, job: &JobAnnouncement, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.last_job = Some(job.clone());
        let mut ids: Vec<u32> = self.channels.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.send_channel_job(id, job, now);
        }
    }

    fn send_channel_job(&mut self, id: u32, job: &JobAnnouncement, now: Instant) {
        let pool = self.config.pool.clone();
        let mask = self.version_mask;
        let Some(channel) = self.channels.get_mut(&id) else {
            return;
        };
        if pool.vardiff_enabled {
            if let Some(d) = channel.vardiff.retarget(channel.difficulty, now) {
                channel.difficulty = pool.vardiff.clamp(d.max(channel.floor));
            }
        }
        let retarget =
            (channel.announced != Some(channel.difficulty)).then_some(channel.difficulty);
        channel.announced = Some(channel.difficulty);
        let notify = &job.notify;
        let new_tip = channel.prevhash != Some(notify.prevhash)
            || channel.tip.is_some_and(|tip| job.height > tip);
        if new_tip {
            channel.jobs.clear();
            channel.seen.clear();
            channel.prevhash = Some(notify.prevhash);
        }
        channel.tip = Some(channel.tip.map_or(job.height, |t| t.max(job.height)));
        let job_id = channel.next_job;
        channel.next_job = channel.next_job.wrapping_add(1).max(1);
        channel.jobs.push_back(ChannelJob {
            id: job_id,
            v1_id: notify.job_id.clone(),
            version: notify.version,
            ntime: notify.ntime,
            difficulty: channel.difficulty,
            extranonce1: Arc::clone(&channel.extranonce1),
        });
        while channel.jobs.len() > pool.max_jobs.max(1) {
            channel.jobs.pop_front();
        }
        let min_ntime = (!new_tip).then_some(notify.ntime);
        let message: Message = match &channel.standard {
            Some(fill) => {
                let txid = coinbase_txid_from_parts(
                    &notify.coinb1,
                    channel.extranonce1.as_bytes(),
                    fill,
                    &notify.coinb2,
                );
                m::NewMiningJob {
                    channel_id: id,
                    job_id,
                    min_ntime,
                    version: notify.version,
                    merkle_root: MerkleBranch::from_hashes(notify.merkle_branch.clone())
                        .root(&txid),
                }
                .into()
            }
            None => m::NewExtendedMiningJob {
                channel_id: id,
                job_id,
                min_ntime,
                version: notify.version,
                version_rolling_allowed: mask != 0,
                merkle_path: notify.merkle_branch.clone(),
                coinbase_tx_prefix: notify.coinb1.clone(),
                coinbase_tx_suffix: notify.coinb2.clone(),
            }
            .into(),
        };
        if let Some(d) = retarget {
            let maximum_target = self.target_of(d);
            self.send(
                m::SetTarget {
                    channel_id: id,
                    maximum_target,
                }
                .into(),
            );
        }
        self.send(message);
        if new_tip {
            self.send(
                m::SetNewPrevHash {
                    channel_id: id,
                    job_id,
                    prev_hash: notify.prevhash,
                    min_ntime: notify.ntime,
                    nbits: notify.nbits,
                }
                .into(),
            );
        }
    }

    /// The next bytes to write to the miner.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        self.output.pop_front()
    }

    /// The next decision needed from the caller.
    pub fn poll_event(&mut self) -> Option<SessionEvent<ShareSubmission>> {
        self.events.pop_front()
    }

    /// Tells the miner to reconnect elsewhere (`host` and `port` left out: here again), as
    /// `client.reconnect` does in v1; SV2 has no wait. The miner closes the connection.
    pub fn reconnect(&mut self, reconnect: Reconnect) {
        if self.closed.is_some() {
            return;
        }
        self.send(
            m::Reconnect {
                new_host: truncated(reconnect.host.unwrap_or_default()),
                new_port: reconnect.port.unwrap_or(0),
            }
            .into(),
        );
    }

    /// Gives extended channel `channel_id` a new extranonce prefix from the pool's
    /// allocator (`SetExtranoncePrefix`), for the jobs from the next one on: the channel's
    /// current job goes out again with it. Shares on the jobs before keep their old prefix.
    /// `false` when there is no such extended channel or the allocator has no value free.
    pub fn renew_extranonce(&mut self, channel_id: u32, now: Instant) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let Some(channel) = self.channels.get(&channel_id) else {
            return false;
        };
        if channel.standard.is_some() {
            return false;
        }
        let Some(fresh) = self.allocator.allocate(None) else {
            return false;
        };
        let prefix = fresh.as_bytes().to_vec();
        if let Some(channel) = self.channels.get_mut(&channel_id) {
            channel.extranonce1 = Arc::new(fresh);
        }
        self.send(
            m::SetExtranoncePrefix {
                channel_id,
                extranonce_prefix: prefix,
            }
            .into(),
        );
        if let Some(job) = self.last_job.clone() {
            self.send_channel_job(channel_id, &job, now);
        }
        true
    }

    /// The channels open now.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Ends the session.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(SessionEvent::Closed(reason));
            self.channels.clear();
            self.pending_open.clear();
            self.pending_shares.clear();
            self.link.fail();
        }
    }
}

/// The `SubmitShares.Success` of accepted shares in a row: (channel, last sequence number,
/// count, difficulty sum).
fn success((channel_id, last_sequence_number, count, sum): (u32, u32, u32, f64)) -> Message {
    m::SubmitSharesSuccess {
        channel_id,
        last_sequence_number,
        new_submits_accepted_count: count,
        // Fractional difficulties (a devnet's, a small miner's) count at least one each.
        new_shares_sum: sum.max(f64::from(count)).round() as u64,
    }
    .into()
}

/// The error code of a refused share, at most 255 bytes.
fn error_code(verdict: &ShareVerdict) -> String {
    let code = match verdict {
        ShareVerdict::LowDifficulty => "difficulty-too-low".into(),
        ShareVerdict::Stale => "stale-share".into(),
        ShareVerdict::Invalid(reason) => format!("invalid-share: {reason}"),
        ShareVerdict::PoolError(reason) => format!("pool-error: {reason}"),
        ShareVerdict::Accepted => String::new(),
    };
    truncated(code)
}

/// `text` cut to the 255 bytes a `STR0_255` holds, on a character boundary.
fn truncated(mut text: String) -> String {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

impl PoolProtocol for Sv2PoolSession {
    type Config = Sv2PoolConfig;
    type Job = JobAnnouncement;
    type Share = ShareSubmission;
    type OpenError = Sv2OpenError;
    type Output = Vec<u8>;
    const FRAMING: crate::session::Framing = crate::session::Framing::Binary;

    fn open(
        config: Arc<Sv2PoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, Sv2OpenError> {
        Sv2PoolSession::new(config, allocator, now)
    }

    /// Binary framing: the server hands bytes to [`handle_bytes`](PoolProtocol::handle_bytes).
    fn handle_line(&mut self, line: &[u8], now: Instant) {
        self.handle_bytes(line, now);
    }

    fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> usize {
        Sv2PoolSession::handle_bytes(self, bytes, now)
    }

    fn poll_output(&mut self) -> Option<Vec<u8>> {
        Sv2PoolSession::poll_output(self)
    }

    fn poll_event(&mut self) -> Option<SessionEvent<ShareSubmission>> {
        Sv2PoolSession::poll_event(self)
    }

    fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>) {
        Sv2PoolSession::authorize_result(self, token, result);
    }

    fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict) {
        Sv2PoolSession::share_result(self, token, verdict);
    }

    /// A channel is open.
    fn wants_jobs(&self) -> bool {
        !self.channels.is_empty()
    }

    fn worker(&self) -> Option<&str> {
        self.first_channel
            .and_then(|id| self.channels.get(&id))
            .map(|c| c.worker.as_str())
    }

    fn send_job(&mut self, job: &JobAnnouncement, now: Instant) {
        Sv2PoolSession::send_job(self, job, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        Some(self.liveness.deadline(!self.channels.is_empty()))
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Some(reason) = self.liveness.expired(now, !self.channels.is_empty()) {
            self.close(reason);
        }
    }

    fn close(&mut self, reason: CloseReason) {
        Sv2PoolSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        self.closed.is_some()
    }
}
