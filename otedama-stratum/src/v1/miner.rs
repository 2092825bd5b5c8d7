//! The miner side of a Stratum v1 connection, as a sans-IO state machine.
//!
//! [`MinerSession::start`] queues the opening requests; feed the pool's lines to
//! [`MinerSession::handle_line`], write what [`MinerSession::poll_output`] returns, and act on
//! what [`MinerSession::poll_event`] reports: the subscription, the authorization, each job
//! with the difficulty that applies to it, share results. Shares go out through
//! [`MinerSession::submit`]. Time is always passed in.
//!
//! Rules the session follows, and the miners it copies them from:
//!
//! - `mining.set_difficulty` applies from the **next** `mining.notify` (cgminer, cpuminer);
//!   before any, difficulty 1. Every [`MinerJob`] carries the difficulty in force for it.
//! - `mining.set_extranonce` likewise applies from the next notify, even one that reuses a job
//!   id; each job carries the extranonce1 it must be mined with.
//! - A prevhash change makes a job clean whatever its flag says (cgminer).
//! - `client.reconnect` is honoured only when it stays on the same host (no host given, or the
//!   host set with [`MinerSession::with_pool_host`]), unless redirects are allowed with
//!   [`MinerSession::allow_redirects`]. cgminer limits redirects the same way and cpuminer
//!   needs `--redirect`: otherwise a hostile pool, or anyone on the path, could send the
//!   miner's hashrate anywhere. A refused redirect is reported as
//!   [`MinerEvent::ReconnectRefused`].
//! - `client.get_version` is answered `"otedama/<version>"`, `mining.ping` `"pong"` and
//!   `client.show_message` `true`, without the caller's help.
//! - Unknown methods are ignored. Responses are matched to requests by their exact id;
//!   anything else is dropped.
//! - `mining.extranonce.subscribe` and `mining.suggest_difficulty` go out after a successful
//!   authorize, as cpuminer-opt and ckpool expect.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use otedama_core::{
    decode_hex, CompactTarget, Difficulty, DifficultyConvention, Job, JobId, MerkleBranch, Share,
    ShareHeaderError, Target,
};
use serde_json::Value;

use super::error::{ErrorCode, StratumError};
use super::frame::LineBuffer;
use super::message::{
    Authorize, ClientRequest, Configure, Message, Notify, ParamsError, ParseError, Reconnect,
    Request, RequestId, Response, ServerRequest, Submit, Subscribe, SubscribeResult,
    VersionRollingRequest,
};
use crate::session::{MinerProtocol, PoolLink};

/// What otedama answers to `client.get_version`.
pub(crate) const VERSION_STRING: &str = concat!("otedama/", env!("CARGO_PKG_VERSION"));

/// The most merkle branch entries a job may carry (a branch of 32 covers 2^32 transactions,
/// far beyond any block); a notify with more is refused.
pub const MAX_MERKLE_BRANCH: usize = 32;

/// The longest extranonce1 accepted from a pool, in bytes.
const MAX_EXTRANONCE1: usize = 32;

/// The longest job id accepted from a pool, in bytes.
pub(crate) const MAX_JOB_ID: usize = 128;

/// How many recent jobs the session remembers for checking submits.
const MAX_RECENT_JOBS: usize = 16;

/// How many requests may await an answer; submits beyond it fail locally.
pub(crate) const MAX_PENDING: usize = 1024;

/// Miner-side session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// The worker name, `address` or `address.worker`.
    pub user: String,
    /// The password (`"x"` for most pools).
    pub password: String,
    /// The user agent sent with `mining.subscribe`.
    pub user_agent: String,
    /// The version bits to roll (BIP310 `mining.configure`), if any; 0x1fffe000 is BIP320's.
    pub version_rolling: Option<u32>,
    /// A difficulty to suggest after authorizing (`mining.suggest_difficulty`).
    pub suggest_difficulty: Option<f64>,
    /// Whether to send `mining.extranonce.subscribe` after authorizing (NiceHash needs it).
    pub extranonce_subscribe: bool,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            user: String::new(),
            password: "x".to_owned(),
            user_agent: VERSION_STRING.to_owned(),
            version_rolling: None,
            suggest_difficulty: None,
            extranonce_subscribe: false,
        }
    }
}

/// A job to mine: the pool's `mining.notify` plus everything in force for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerJob {
    /// The notify as the pool sent it (prevhash in header order).
    pub notify: Notify,
    /// The share difficulty for this job: the last `mining.set_difficulty` before the notify,
    /// or 1.
    pub difficulty: f64,
    /// The extranonce1 to mine this job with.
    pub extranonce1: Vec<u8>,
    /// How many extranonce2 bytes to fill in.
    pub extranonce2_size: usize,
    /// The negotiated version-rolling mask (0 when none).
    pub version_mask: u32,
    /// Whether earlier jobs are void: the notify's flag, or a new prevhash.
    pub clean: bool,
}

/// Why a header cannot be built for a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MinerJobError {
    /// The extranonce2 has the wrong length.
    #[error("job {job_id}: extranonce2 of {got} bytes, the pool wants {expected}")]
    Extranonce2Size {
        /// The job.
        job_id: String,
        /// The negotiated size.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// The header could not be rebuilt (version bits outside the mask).
    #[error(transparent)]
    Header(#[from] ShareHeaderError),
}

impl MinerJob {
    /// The target a share must meet, read with `convention`: [`DifficultyConvention::Bitcoin`]
    /// for SHA-256d pools, [`DifficultyConvention::Scrypt`] for scrypt pools (whose
    /// difficulty is ×65536).
    pub fn share_target(&self, convention: DifficultyConvention) -> Target {
        match Difficulty::new(self.difficulty) {
            Ok(d) => convention.target_for(d),
            Err(_) => convention.diff1_target(),
        }
    }

    /// The block height, read from the BIP34 push at the start of the coinbase script, when
    /// the coinbase has one.
    pub fn height(&self) -> Option<u32> {
        let c = &self.notify.coinb1;
        // version (4), an optional segwit marker and flag, one input, its outpoint (36).
        let mut pos = 4;
        if c.get(pos) == Some(&0) {
            pos += 2;
        }
        if c.get(pos) != Some(&1) {
            return None;
        }
        pos += 1 + 36;
        let script_len = *c.get(pos)?;
        if script_len >= 0xfd {
            return None;
        }
        pos += 1;
        match *c.get(pos)? {
            0 => Some(0),
            op @ 0x51..=0x60 => Some(u32::from(op - 0x50)),
            n @ 1..=4 => {
                let bytes = c.get(pos + 1..pos + 1 + usize::from(n))?;
                Some(
                    bytes
                        .iter()
                        .rev()
                        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
                )
            }
            _ => None,
        }
    }

    /// The job in otedama-core's form, with the share target read with `convention`.
    pub fn to_job(&self, convention: DifficultyConvention) -> Job {
        Job {
            id: JobId::new(self.notify.job_id.clone()),
            prevhash: self.notify.prevhash,
            coinb1: self.notify.coinb1.clone(),
            coinb2: self.notify.coinb2.clone(),
            merkle_branch: MerkleBranch::from_hashes(self.notify.merkle_branch.clone()),
            version: self.notify.version,
            bits: CompactTarget::from_consensus(self.notify.nbits),
            time: self.notify.ntime,
            clean: self.clean,
            height: self.height().unwrap_or(0),
            share_target: self.share_target(convention),
        }
    }

    /// The 80-byte header for this job's extranonce1 and the given extranonce2, time, nonce
    /// and rolled version bits.
    pub fn header(
        &self,
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version_bits: Option<u32>,
    ) -> Result<[u8; 80], MinerJobError> {
        if extranonce2.len() != self.extranonce2_size {
            return Err(MinerJobError::Extranonce2Size {
                job_id: self.notify.job_id.clone(),
                expected: self.extranonce2_size,
                got: extranonce2.len(),
            });
        }
        let share = Share {
            job_id: JobId::new(self.notify.job_id.clone()),
            extranonce1: self.extranonce1.clone(),
            extranonce2: extranonce2.to_vec(),
            ntime,
            nonce,
            version_bits,
            worker: String::new(),
        };
        let job = self.to_job(DifficultyConvention::Bitcoin);
        Ok(job.header_for(&share, self.version_mask)?.to_bytes())
    }

    /// The share to submit for a solution found with these values.
    pub fn share(
        &self,
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version_bits: Option<u32>,
    ) -> MinerShare {
        MinerShare {
            job_id: self.notify.job_id.clone(),
            extranonce2: extranonce2.to_vec(),
            ntime,
            nonce,
            version_bits,
        }
    }

    /// Every extranonce2 value for this job, from zero.
    pub fn extranonce2_values(&self) -> Extranonce2Iter {
        Extranonce2Iter::new(self.extranonce2_size)
    }
}

/// Extranonce2 values of a fixed size: a counter written little-endian (as cgminer fills it),
/// zero-padded past eight bytes. Split the space between threads with
/// [`starting_at`](Extranonce2Iter::starting_at) and [`with_stride`](Extranonce2Iter::with_stride).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extranonce2Iter {
    size: usize,
    next: Option<u64>,
    stride: u64,
}

impl Extranonce2Iter {
    /// Values of `size` bytes, counting from zero by one.
    pub fn new(size: usize) -> Self {
        Extranonce2Iter {
            size,
            next: Some(0),
            stride: 1,
        }
    }

    /// Starts at counter `start` instead of zero.
    pub fn starting_at(mut self, start: u64) -> Self {
        self.next = Some(start).filter(|s| self.in_range(*s));
        self
    }

    /// Steps the counter by `stride` (at least one) instead of one.
    pub fn with_stride(mut self, stride: u64) -> Self {
        self.stride = stride.max(1);
        self
    }

    /// The `size`-byte value of `counter` (its high bytes dropped when `size` is under 8).
    pub fn encode(size: usize, counter: u64) -> Vec<u8> {
        let le = counter.to_le_bytes();
        (0..size).map(|i| le.get(i).copied().unwrap_or(0)).collect()
    }

    fn in_range(&self, counter: u64) -> bool {
        self.size >= 8 || u128::from(counter) < 1u128 << (8 * self.size)
    }
}

impl Iterator for Extranonce2Iter {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let counter = self.next?;
        self.next = counter
            .checked_add(self.stride)
            .filter(|c| self.in_range(*c));
        Some(Extranonce2Iter::encode(self.size, counter))
    }
}

/// A share to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinerShare {
    /// The job.
    pub job_id: String,
    /// The extranonce2 bytes.
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits, when version rolling was negotiated.
    pub version_bits: Option<u32>,
}

/// Something wrong with what the pool sent; the session carries on unless it also reports
/// [`MinerEvent::Closed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MinerError {
    /// The line is not a Stratum message.
    #[error("pool line is not stratum: {0}")]
    Parse(ParseError),
    /// The line is longer than any real Stratum line.
    #[error("pool line of {len} bytes exceeds the {limit}-byte limit")]
    LineTooLong {
        /// The line's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A pool request's params do not fit its method.
    #[error("pool sent {0}")]
    Params(ParamsError),
    /// The pool refused the subscription.
    #[error("pool refused the subscribe: {0}")]
    SubscribeRejected(StratumError),
    /// The subscribe result has the wrong shape.
    #[error("pool sent a malformed subscribe result")]
    BadSubscribeResult,
    /// An extranonce2 size outside 1 to 16.
    #[error("pool sent extranonce2 size {size} (must be 1 to 16)")]
    Extranonce2Size {
        /// The value as sent (JSON text, cut short).
        size: String,
    },
    /// An extranonce1 longer than 32 bytes.
    #[error("pool sent an extranonce1 of {len} bytes (at most 32)")]
    Extranonce1TooLong {
        /// Its length.
        len: usize,
    },
    /// A notify with an absurd merkle branch.
    #[error("job {job_id}: merkle branch of {len} entries (at most {limit})")]
    MerkleBranchTooLong {
        /// The job.
        job_id: String,
        /// Entries sent.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A notify with an empty or overlong job id.
    #[error("pool sent a job id of {len} bytes (1 to {limit})")]
    BadJobId {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why a miner session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MinerCloseReason {
    /// The pool refused the subscription or login.
    Rejected,
    /// The pool broke the protocol (an unusable subscribe or login result).
    Protocol,
    /// The pool did not answer the subscribe, authorize or login in time.
    Timeout,
    /// The pool stayed silent for too long.
    Idle,
    /// Closed by the caller.
    Requested,
}

/// What the session reports to the caller.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MinerEvent {
    /// The pool accepted the subscription.
    Subscribed {
        /// The session's extranonce1.
        extranonce1: Vec<u8>,
        /// How many extranonce2 bytes to fill in (1 to 16).
        extranonce2_size: usize,
        /// The id to resume this session with after a reconnect
        /// ([`MinerSession::with_resume`]).
        session_id: Option<String>,
    },
    /// The answer to `mining.authorize`: authorized or not, with the pool's reason.
    Authorized(bool, Option<String>),
    /// A job to mine.
    NewJob(MinerJob),
    /// `mining.set_extranonce`: new values for the jobs from the next notify on.
    ExtranonceChanged {
        /// The new extranonce1.
        extranonce1: Vec<u8>,
        /// The new extranonce2 size.
        extranonce2_size: usize,
    },
    /// The version bits the miner may roll now (0: none), from `mining.configure` or
    /// `mining.set_version_mask`, already intersected with the configured mask.
    VersionMask(u32),
    /// The fate of a share from [`MinerSession::submit`].
    ShareResult {
        /// The number `submit` returned.
        sequence: u64,
        /// Whether the pool accepted it.
        accepted: bool,
        /// Why not.
        error: Option<StratumError>,
    },
    /// The pool asks the miner to reconnect, to this host or one it may go to; close and
    /// connect again (resuming with [`MinerSession::session_id`]).
    Reconnect(Reconnect),
    /// A `client.reconnect` to another host, refused (see the module docs).
    ReconnectRefused(Reconnect),
    /// `client.show_message`.
    ShowMessage(String),
    /// The pool sent something unusable; see [`MinerError`].
    Error(MinerError),
    /// The session ended; close the connection.
    Closed(MinerCloseReason),
}

#[derive(Debug, Clone, PartialEq)]
enum PendingKind {
    Configure,
    Subscribe { resume: Option<String> },
    Authorize,
    ExtranonceSubscribe,
    SuggestDifficulty,
    Submit { sequence: u64 },
}

#[derive(Debug, Clone)]
struct Pending {
    kind: PendingKind,
    /// When the request went out; `None` until the caller next passes the time in.
    sent: Option<Instant>,
}

/// One pool connection, miner side.
#[derive(Debug)]
pub struct MinerSession {
    config: MinerConfig,
    pool_host: Option<String>,
    allow_redirects: bool,
    response_timeout: Duration,
    idle_timeout: Duration,
    resume: Option<String>,
    resumed: bool,
    started: bool,
    next_id: u64,
    next_sequence: u64,
    pending: HashMap<u64, Pending>,
    subscribed: bool,
    session_id: Option<String>,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    authorized: bool,
    reauthorize: bool,
    version_mask: u32,
    difficulty: f64,
    last_prevhash: Option<[u8; 32]>,
    jobs: VecDeque<(String, usize)>,
    last_seen: Instant,
    output: VecDeque<String>,
    events: VecDeque<MinerEvent>,
    closed: Option<MinerCloseReason>,
}

impl MinerSession {
    /// A new connection at `now`; call [`start`](MinerSession::start) to send the opening
    /// requests.
    pub fn new(config: MinerConfig, now: Instant) -> Self {
        MinerSession {
            config,
            pool_host: None,
            allow_redirects: false,
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            resume: None,
            resumed: false,
            started: false,
            next_id: 0,
            next_sequence: 0,
            pending: HashMap::new(),
            subscribed: false,
            session_id: None,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            authorized: false,
            reauthorize: false,
            version_mask: 0,
            difficulty: 1.0,
            last_prevhash: None,
            jobs: VecDeque::new(),
            last_seen: now,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// Asks the pool to resume an earlier session (the `session_id` of its
    /// [`MinerEvent::Subscribed`]); if the pool refuses, the session subscribes afresh.
    pub fn with_resume(mut self, session_id: impl Into<String>) -> Self {
        let id = session_id.into();
        self.resume = (!id.is_empty()).then_some(id);
        self
    }

    /// The host this connection went to: `client.reconnect` may move the miner to it (on
    /// any port) without [`allow_redirects`](MinerSession::allow_redirects).
    pub fn with_pool_host(mut self, host: impl Into<String>) -> Self {
        self.pool_host = Some(host.into());
        self
    }

    /// Whether `client.reconnect` may send the miner to any host (cpuminer's `--redirect`).
    pub fn allow_redirects(mut self, allow: bool) -> Self {
        self.allow_redirects = allow;
        self
    }

    /// How long a request may wait for its answer (default 60 s) and how long the pool may
    /// stay silent (default 300 s).
    pub fn with_timeouts(mut self, response: Duration, idle: Duration) -> Self {
        self.response_timeout = response;
        self.idle_timeout = idle;
        self
    }

    /// Queues `mining.configure` (when version rolling is wanted), `mining.subscribe` (with
    /// the session id to resume, if any) and `mining.authorize`. Only the first call counts.
    pub fn start(&mut self) {
        if self.started || self.closed.is_some() {
            return;
        }
        self.started = true;
        if let Some(mask) = self.config.version_rolling {
            let configure = Configure {
                extensions: vec!["version-rolling".to_owned()],
                version_rolling: Some(VersionRollingRequest {
                    mask,
                    min_bit_count: mask.count_ones().min(2),
                }),
                ..Configure::default()
            };
            self.request(ClientRequest::Configure(configure), PendingKind::Configure);
        }
        let resume = self.resume.clone();
        self.send_subscribe(resume);
        self.send_authorize();
    }

    /// The next line to write to the pool.
    pub fn poll_output(&mut self) -> Option<String> {
        self.output.pop_front()
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<MinerEvent> {
        self.events.pop_front()
    }

    /// Whether the pool accepted the subscription.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// Whether the worker is authorized.
    pub fn is_authorized(&self) -> bool {
        self.authorized
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The id to resume this session with after a reconnect.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Whether the pool resumed the session asked for with
    /// [`with_resume`](MinerSession::with_resume).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The current extranonce1 (for jobs from the next notify on).
    pub fn extranonce1(&self) -> &[u8] {
        &self.extranonce1
    }

    /// The current extranonce2 size (0 before subscribing).
    pub fn extranonce2_size(&self) -> usize {
        self.extranonce2_size
    }

    /// The difficulty the next job will carry.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// The version bits the miner may roll now (0: none).
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }

    /// Ends the session.
    pub fn close(&mut self, reason: MinerCloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(MinerEvent::Closed(reason));
        }
    }

    /// The instant by which [`handle_timeout`](MinerSession::handle_timeout) must be called
    /// next. Requests queued since the caller last passed the time in are stamped by that
    /// call, so this asks for it at once.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let idle = self.last_seen + self.idle_timeout;
        let deadline = self
            .pending
            .values()
            .map(|p| p.sent.map_or(self.last_seen, |s| s + self.response_timeout))
            .min();
        Some(deadline.map_or(idle, |d| d.min(idle)))
    }

    /// Checks the timeouts at `now`: an unanswered share fails, an unanswered subscribe or
    /// authorize or a silent pool ends the session.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.stamp(now);
        let mut expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent.is_some_and(|s| now >= s + self.response_timeout))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        for id in expired {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            match p.kind {
                PendingKind::Submit { sequence } => self.share_failed(
                    sequence,
                    StratumError::new(ErrorCode::Other, "no answer from the pool"),
                ),
                PendingKind::Subscribe { .. } | PendingKind::Authorize => {
                    self.close(MinerCloseReason::Timeout);
                    return;
                }
                // Unanswered: no rolling was negotiated, but a `mining.set_version_mask` the
                // pool sent meanwhile stands; report the mask in force either way.
                PendingKind::Configure => self
                    .events
                    .push_back(MinerEvent::VersionMask(self.version_mask)),
                PendingKind::ExtranonceSubscribe | PendingKind::SuggestDifficulty => {}
            }
        }
        if now >= self.last_seen + self.idle_timeout {
            self.close(MinerCloseReason::Idle);
        }
    }

    /// Queues `mining.submit` and returns the sequence number its
    /// [`MinerEvent::ShareResult`] will carry. While the session is open every share gets
    /// exactly one result: one that cannot be sent (no subscription or authorization, a job
    /// this session never saw, an extranonce2 of the wrong size, version bits outside the
    /// mask, too many unanswered requests) fails at once without going out. Shares still
    /// awaiting the pool's answer when the session ends get none: the pool may or may not
    /// have counted them.
    pub fn submit(&mut self, share: MinerShare) -> u64 {
        self.next_sequence += 1;
        let sequence = self.next_sequence;
        if let Err(error) = self.check_share(&share) {
            self.share_failed(sequence, error);
            return sequence;
        }
        let version_bits = share.version_bits.filter(|_| self.version_mask != 0);
        let submit = Submit {
            worker: self.config.user.clone(),
            job_id: share.job_id,
            extranonce2: share.extranonce2,
            ntime: share.ntime,
            nonce: share.nonce,
            version_bits,
        };
        self.request(
            ClientRequest::Submit(submit),
            PendingKind::Submit { sequence },
        );
        sequence
    }

    fn check_share(&self, share: &MinerShare) -> Result<(), StratumError> {
        let refuse = |code, msg: String| Err(StratumError::new(code, format!("not sent: {msg}")));
        if self.closed.is_some() {
            return refuse(ErrorCode::Other, "session closed".to_owned());
        }
        if !self.subscribed {
            return refuse(ErrorCode::NotSubscribed, "not subscribed".to_owned());
        }
        if !self.authorized {
            return refuse(ErrorCode::Unauthorized, "not authorized".to_owned());
        }
        let Some((_, size)) = self.jobs.iter().find(|(id, _)| *id == share.job_id) else {
            return refuse(
                ErrorCode::JobNotFound,
                format!("job {} is unknown", share.job_id),
            );
        };
        if share.extranonce2.len() != *size {
            return refuse(
                ErrorCode::Other,
                format!(
                    "job {}: extranonce2 of {} bytes, the pool wants {size}",
                    share.job_id,
                    share.extranonce2.len()
                ),
            );
        }
        if let Some(bits) = share.version_bits {
            if bits & !self.version_mask != 0 {
                return refuse(
                    ErrorCode::Other,
                    format!(
                        "job {}: version bits {bits:08x} outside mask {:08x}",
                        share.job_id, self.version_mask
                    ),
                );
            }
        }
        if self.pending.len() >= MAX_PENDING {
            return refuse(
                ErrorCode::Other,
                format!("{MAX_PENDING} requests await an answer"),
            );
        }
        Ok(())
    }

    fn share_failed(&mut self, sequence: u64, error: StratumError) {
        self.events.push_back(MinerEvent::ShareResult {
            sequence,
            accepted: false,
            error: Some(error),
        });
    }

    fn request(&mut self, request: ClientRequest, kind: PendingKind) {
        self.next_id += 1;
        let id = self.next_id;
        self.output
            .push_back(request.to_request(Some(RequestId::number(id))).to_line());
        self.pending.insert(id, Pending { kind, sent: None });
    }

    fn send_subscribe(&mut self, resume: Option<String>) {
        let subscribe = Subscribe {
            user_agent: Some(self.config.user_agent.clone()),
            session_id: resume.clone(),
            host: None,
            port: None,
        };
        self.request(
            ClientRequest::Subscribe(subscribe),
            PendingKind::Subscribe { resume },
        );
    }

    fn send_authorize(&mut self) {
        let authorize = Authorize {
            username: self.config.user.clone(),
            password: Some(self.config.password.clone()),
        };
        self.request(ClientRequest::Authorize(authorize), PendingKind::Authorize);
    }

    fn stamp(&mut self, now: Instant) {
        for p in self.pending.values_mut() {
            p.sent.get_or_insert(now);
        }
    }

    fn error(&mut self, error: MinerError) {
        self.events.push_back(MinerEvent::Error(error));
    }

    fn reply(&mut self, id: Option<RequestId>, result: Value) {
        if id.is_some() {
            self.output.push_back(Response::ok(id, result).to_line());
        }
    }

    /// Handles one line from the pool (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.stamp(now);
        self.last_seen = now;
        if line.len() > LineBuffer::DEFAULT_MAX_LINE {
            self.error(MinerError::LineTooLong {
                len: line.len(),
                limit: LineBuffer::DEFAULT_MAX_LINE,
            });
            return;
        }
        match Message::parse(line) {
            Ok(Message::Response(r)) => self.handle_response(r),
            Ok(Message::Request(r)) => self.handle_request(&r),
            Err(e) => self.error(MinerError::Parse(e)),
        }
    }

    fn handle_request(&mut self, request: &Request) {
        let id = request.id.clone();
        let msg = match ServerRequest::from_request(request) {
            Ok(msg) => msg,
            Err(e) => return self.error(MinerError::Params(e)),
        };
        match msg {
            ServerRequest::Notify(n) => self.notify(n),
            ServerRequest::SetDifficulty(d) => self.difficulty = d,
            ServerRequest::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                if !(1..=16).contains(&extranonce2_size) {
                    return self.error(MinerError::Extranonce2Size {
                        size: extranonce2_size.to_string(),
                    });
                }
                if extranonce1.len() > MAX_EXTRANONCE1 {
                    return self.error(MinerError::Extranonce1TooLong {
                        len: extranonce1.len(),
                    });
                }
                self.extranonce1 = extranonce1.clone();
                self.extranonce2_size = extranonce2_size;
                self.events.push_back(MinerEvent::ExtranonceChanged {
                    extranonce1,
                    extranonce2_size,
                });
            }
            ServerRequest::SetVersionMask(mask) => {
                if let Some(ours) = self.config.version_rolling {
                    self.version_mask = mask & ours;
                    self.events
                        .push_back(MinerEvent::VersionMask(self.version_mask));
                }
            }
            ServerRequest::Reconnect(r) => {
                let allowed = match r.host.as_deref() {
                    None => true,
                    Some(host) => {
                        self.allow_redirects
                            || self
                                .pool_host
                                .as_deref()
                                .is_some_and(|ours| same_host(ours, host))
                    }
                };
                self.events.push_back(if allowed {
                    MinerEvent::Reconnect(r)
                } else {
                    MinerEvent::ReconnectRefused(r)
                });
            }
            ServerRequest::GetVersion => self.reply(id, Value::from(VERSION_STRING)),
            ServerRequest::Ping => self.reply(id, Value::from("pong")),
            ServerRequest::ShowMessage(text) => {
                self.events.push_back(MinerEvent::ShowMessage(text));
                self.reply(id, Value::Bool(true));
            }
            _ => {}
        }
    }

    fn notify(&mut self, notify: Notify) {
        if !self.subscribed {
            return;
        }
        let len = notify.job_id.len();
        if len == 0 || len > MAX_JOB_ID {
            return self.error(MinerError::BadJobId {
                len,
                limit: MAX_JOB_ID,
            });
        }
        if notify.merkle_branch.len() > MAX_MERKLE_BRANCH {
            return self.error(MinerError::MerkleBranchTooLong {
                job_id: notify.job_id,
                len: notify.merkle_branch.len(),
                limit: MAX_MERKLE_BRANCH,
            });
        }
        let new_tip = self.last_prevhash.is_some_and(|p| p != notify.prevhash);
        self.last_prevhash = Some(notify.prevhash);
        self.jobs.retain(|(id, _)| *id != notify.job_id);
        self.jobs
            .push_back((notify.job_id.clone(), self.extranonce2_size));
        while self.jobs.len() > MAX_RECENT_JOBS {
            self.jobs.pop_front();
        }
        let clean = notify.clean_jobs || new_tip;
        self.events.push_back(MinerEvent::NewJob(MinerJob {
            notify,
            difficulty: self.difficulty,
            extranonce1: self.extranonce1.clone(),
            extranonce2_size: self.extranonce2_size,
            version_mask: self.version_mask,
            clean,
        }));
    }

    fn handle_response(&mut self, response: Response) {
        let Some(id) = response.id.as_ref().and_then(our_id) else {
            return;
        };
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let ok = response.error.is_none();
        match pending.kind {
            PendingKind::Configure => {
                let mask = if ok {
                    configured_mask(&response.result)
                } else {
                    0
                };
                self.version_mask = mask & self.config.version_rolling.unwrap_or(0);
                self.events
                    .push_back(MinerEvent::VersionMask(self.version_mask));
            }
            PendingKind::Subscribe { resume } => self.subscribed(response, resume),
            PendingKind::Authorize => {
                if ok && response.result == Value::Bool(true) {
                    self.authorized = true;
                    self.events.push_back(MinerEvent::Authorized(true, None));
                    if self.config.extranonce_subscribe {
                        self.request(
                            ClientRequest::ExtranonceSubscribe,
                            PendingKind::ExtranonceSubscribe,
                        );
                    }
                    if let Some(d) = self.config.suggest_difficulty {
                        self.request(
                            ClientRequest::SuggestDifficulty(d),
                            PendingKind::SuggestDifficulty,
                        );
                    }
                } else if !self.subscribed
                    && response
                        .error
                        .as_ref()
                        .is_some_and(|e| e.code == ErrorCode::NotSubscribed)
                {
                    // The authorize overtook a subscribe being retried: send it again after.
                    self.reauthorize = true;
                } else {
                    let reason = response
                        .error
                        .map_or_else(|| "refused".to_owned(), |e| e.message);
                    self.events
                        .push_back(MinerEvent::Authorized(false, Some(reason)));
                }
            }
            PendingKind::Submit { sequence } => {
                let accepted = ok && response.result == Value::Bool(true);
                let error = if accepted {
                    None
                } else {
                    Some(
                        response
                            .error
                            .unwrap_or_else(|| StratumError::new(ErrorCode::Other, "rejected")),
                    )
                };
                self.events.push_back(MinerEvent::ShareResult {
                    sequence,
                    accepted,
                    error,
                });
            }
            PendingKind::ExtranonceSubscribe | PendingKind::SuggestDifficulty => {}
        }
    }

    fn subscribed(&mut self, response: Response, resume: Option<String>) {
        if self.subscribed {
            return;
        }
        if let Some(error) = response.error {
            if resume.is_some() {
                // cpuminer and bfgminer retry without the session id.
                return self.send_subscribe(None);
            }
            self.error(MinerError::SubscribeRejected(error));
            return self.close(MinerCloseReason::Rejected);
        }
        let result = match parse_subscribe_result(&response.result) {
            Ok(r) => r,
            Err(e) if resume.is_some() && e == MinerError::BadSubscribeResult => {
                return self.send_subscribe(None);
            }
            Err(e) => {
                self.error(e);
                return self.close(MinerCloseReason::Protocol);
            }
        };
        let session_id = result.session_id().map(str::to_owned);
        self.resumed = resume.is_some() && session_id == resume;
        self.subscribed = true;
        self.session_id.clone_from(&session_id);
        self.extranonce1.clone_from(&result.extranonce1);
        self.extranonce2_size = result.extranonce2_size;
        self.events.push_back(MinerEvent::Subscribed {
            extranonce1: result.extranonce1,
            extranonce2_size: result.extranonce2_size,
            session_id,
        });
        if std::mem::take(&mut self.reauthorize) {
            self.send_authorize();
        }
    }
}

/// The link's host bounds `client.reconnect` ([`MinerSession::with_pool_host`]), its session
/// id is asked for in `mining.subscribe` ([`MinerSession::with_resume`]), and its redirect
/// permission is [`MinerSession::allow_redirects`]. Timeouts are the defaults.
impl MinerProtocol for MinerSession {
    type Config = MinerConfig;
    type Event = MinerEvent;
    type Share = MinerShare;
    type Output = String;

    fn open(config: MinerConfig, link: &PoolLink, now: Instant) -> Self {
        let mut session = MinerSession::new(config, now)
            .with_pool_host(link.host.clone())
            .allow_redirects(link.allow_redirects);
        if let Some(resume) = &link.resume {
            session = session.with_resume(resume.clone());
        }
        session.start();
        session
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        MinerSession::handle_line(self, line, now);
    }

    fn poll_output(&mut self) -> Option<String> {
        MinerSession::poll_output(self)
    }

    fn poll_event(&mut self) -> Option<MinerEvent> {
        MinerSession::poll_event(self)
    }

    fn submit(&mut self, share: MinerShare) -> u64 {
        MinerSession::submit(self, share)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        MinerSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        MinerSession::handle_timeout(self, now);
    }

    fn close(&mut self, reason: MinerCloseReason) {
        MinerSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        MinerSession::is_closed(self)
    }
}

/// The id of one of our requests: a JSON number spelled exactly as we sent it.
pub(crate) fn our_id(id: &RequestId) -> Option<u64> {
    let n = id.as_u64()?;
    (id.as_json() == n.to_string()).then_some(n)
}

fn same_host(a: &str, b: &str) -> bool {
    let a = a.trim().trim_end_matches('.');
    let b = b.trim().trim_end_matches('.');
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// The mask a `mining.configure` result grants (0 when version rolling was refused).
fn configured_mask(result: &Value) -> u32 {
    let Some(map) = result.as_object() else {
        return 0;
    };
    if map.get("version-rolling") != Some(&Value::Bool(true)) {
        return 0;
    }
    map.get("version-rolling.mask")
        .and_then(Value::as_str)
        .map(|s| s.trim_start_matches("0x"))
        .filter(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .unwrap_or(0)
}

fn parse_subscribe_result(result: &Value) -> Result<SubscribeResult, MinerError> {
    let items = result.as_array().ok_or(MinerError::BadSubscribeResult)?;
    let size = items.get(2).ok_or(MinerError::BadSubscribeResult)?;
    if !size.as_u64().is_some_and(|n| (1..=16).contains(&n)) {
        let mut text = size.to_string();
        text.truncate(32);
        return Err(MinerError::Extranonce2Size { size: text });
    }
    let en1 = items
        .get(1)
        .and_then(Value::as_str)
        .ok_or(MinerError::BadSubscribeResult)?;
    let en1 = decode_hex(en1).map_err(|_| MinerError::BadSubscribeResult)?;
    if en1.len() > MAX_EXTRANONCE1 {
        return Err(MinerError::Extranonce1TooLong { len: en1.len() });
    }
    SubscribeResult::from_json(result).ok_or(MinerError::BadSubscribeResult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otedama_core::{sha256d, SCRYPT_DIFF1_TARGET};
    use proptest::prelude::*;
    use serde_json::json;

    const SUBSCRIBE_RESULT: &str = r#"{"id":2,"result":[[["mining.set_difficulty","d1"],["mining.notify","n1"]],"08000002",4],"error":null}"#;
    const NOTIFY: &str = r#"{"id":null,"method":"mining.notify","params":["job1","0000000011111111111111111111111111111111111111111111111111111111","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1b03a086010e2f6f746564616d612d746573742f","ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000",[],"20000000","1d00ffff","6b04e972",true]}"#;

    fn config() -> MinerConfig {
        MinerConfig {
            user: "otedama.worker1".into(),
            password: "x".into(),
            user_agent: "cpuminer/2.5.1".into(),
            ..MinerConfig::default()
        }
    }

    fn outputs(s: &mut MinerSession) -> Vec<Value> {
        std::iter::from_fn(|| s.poll_output())
            .map(|l| serde_json::from_str(&l).expect("json line"))
            .collect()
    }

    fn events(s: &mut MinerSession) -> Vec<MinerEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// A session that has subscribed (ids: subscribe 1, authorize 2) and been authorized.
    fn ready(cfg: MinerConfig, now: Instant) -> MinerSession {
        let mut s = MinerSession::new(cfg, now);
        s.start();
        outputs(&mut s);
        s.handle_line(
            SUBSCRIBE_RESULT
                .replace(r#""id":2"#, r#""id":1"#)
                .as_bytes(),
            now,
        );
        s.handle_line(br#"{"id":2,"result":true,"error":null}"#, now);
        events(&mut s);
        s
    }

    #[test]
    fn opening_requests_in_order() {
        let now = Instant::now();
        let cfg = MinerConfig {
            version_rolling: Some(0x1fff_e000),
            ..config()
        };
        let mut s = MinerSession::new(cfg, now).with_resume("n1");
        s.start();
        s.start();
        let out = outputs(&mut s);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["method"], "mining.configure");
        assert_eq!(
            out[0]["params"],
            json!([["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}])
        );
        assert_eq!(out[1]["method"], "mining.subscribe");
        assert_eq!(out[1]["params"], json!(["cpuminer/2.5.1", "n1"]));
        assert_eq!(out[2]["method"], "mining.authorize");
        assert_eq!(out[2]["params"], json!(["otedama.worker1", "x"]));
        assert_eq!(
            (out[0]["id"].clone(), out[2]["id"].clone()),
            (json!(1), json!(3))
        );

        s.handle_line(
            br#"{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"ffffffff"},"error":null}"#,
            now,
        );
        assert_eq!(events(&mut s), vec![MinerEvent::VersionMask(0x1fff_e000)]);
        s.handle_line(SUBSCRIBE_RESULT.as_bytes(), now);
        assert_eq!(
            events(&mut s),
            vec![MinerEvent::Subscribed {
                extranonce1: vec![8, 0, 0, 2],
                extranonce2_size: 4,
                session_id: Some("n1".into()),
            }]
        );
        assert!(s.resumed());
    }

    #[test]
    fn extranonce_subscribe_and_suggestion_follow_the_authorize_result() {
        let now = Instant::now();
        let cfg = MinerConfig {
            extranonce_subscribe: true,
            suggest_difficulty: Some(64.0),
            ..config()
        };
        let mut s = MinerSession::new(cfg, now);
        s.start();
        let out = outputs(&mut s);
        assert_eq!(out.len(), 2, "nothing before the authorize result");
        s.handle_line(
            SUBSCRIBE_RESULT
                .replace(r#""id":2"#, r#""id":1"#)
                .as_bytes(),
            now,
        );
        assert!(outputs(&mut s).is_empty());
        s.handle_line(br#"{"id":2,"result":true,"error":null}"#, now);
        let out = outputs(&mut s);
        assert_eq!(out[0]["method"], "mining.extranonce.subscribe");
        assert_eq!(out[0]["params"], json!([]));
        assert_eq!(out[1]["method"], "mining.suggest_difficulty");
        assert_eq!(out[1]["params"], json!([64]));
        assert!(events(&mut s).contains(&MinerEvent::Authorized(true, None)));
    }

    #[test]
    fn difficulty_applies_from_the_next_notify() {
        let now = Instant::now();
        let mut s = ready(config(), now);
        s.handle_line(NOTIFY.as_bytes(), now);
        let Some(MinerEvent::NewJob(first)) = s.poll_event() else {
            panic!("job")
        };
        assert_eq!(
            first.difficulty, 1.0,
            "difficulty 1 before any set_difficulty"
        );
        assert_eq!(first.height(), Some(100_000));
        s.handle_line(
            br#"{"id":null,"method":"mining.set_difficulty","params":[0.001]}"#,
            now,
        );
        assert!(s.poll_event().is_none());
        s.handle_line(NOTIFY.replace("job1", "job2").as_bytes(), now);
        let Some(MinerEvent::NewJob(second)) = s.poll_event() else {
            panic!("job")
        };
        assert_eq!((first.difficulty, second.difficulty), (1.0, 0.001));
        assert_eq!(
            second.share_target(DifficultyConvention::Scrypt),
            DifficultyConvention::Scrypt.target_for(Difficulty::new(0.001).expect("d"))
        );
        assert_eq!(
            first.share_target(DifficultyConvention::Scrypt),
            SCRYPT_DIFF1_TARGET
        );
    }

    #[test]
    fn header_matches_a_captured_share() {
        // minerd-sha256d.txt: extranonce1 08000002, extranonce2 00000000, nonce 1cd73400.
        let now = Instant::now();
        let mut s = ready(config(), now);
        s.handle_line(NOTIFY.as_bytes(), now);
        let Some(MinerEvent::NewJob(job)) = s.poll_event() else {
            panic!("job")
        };
        let header = job
            .header(&[0; 4], 0x6b04_e972, 0x1cd7_3400, None)
            .expect("header");
        assert_eq!(header[..4], 0x2000_0000u32.to_le_bytes());
        assert_eq!(header[4..36], job.notify.prevhash);
        assert_eq!(header[68..72], 0x6b04_e972u32.to_le_bytes());
        assert_eq!(header[72..76], 0x1d00_ffffu32.to_le_bytes());
        assert_eq!(header[76..80], 0x1cd7_3400u32.to_le_bytes());
        let mut coinbase = job.notify.coinb1.clone();
        coinbase.extend_from_slice(&[8, 0, 0, 2, 0, 0, 0, 0]);
        coinbase.extend_from_slice(&job.notify.coinb2);
        assert_eq!(
            header[36..68],
            sha256d(&coinbase),
            "empty branch: root = txid"
        );
        // The pool accepted it at difficulty 0.001, so the hash meets that target.
        let hash = sha256d(&header);
        let target = DifficultyConvention::Bitcoin.target_for(Difficulty::new(0.001).expect("d"));
        assert!(target.is_met_by(&hash));
        assert!(matches!(
            job.header(&[0; 3], 0, 0, None),
            Err(MinerJobError::Extranonce2Size {
                expected: 4,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            job.header(&[0; 4], 0, 0, Some(0x2000)),
            Err(MinerJobError::Header(_))
        ));
    }

    #[test]
    fn submit_tracks_results_by_exact_id() {
        let now = Instant::now();
        let mut s = ready(config(), now);
        s.handle_line(NOTIFY.as_bytes(), now);
        let Some(MinerEvent::NewJob(job)) = s.poll_event() else {
            panic!("job")
        };
        let seq = s.submit(job.share(&[0; 4], 0x6b04_e972, 0x1cd7_3400, None));
        let out = outputs(&mut s);
        assert_eq!(out[0]["method"], "mining.submit");
        assert_eq!(
            out[0]["params"],
            json!([
                "otedama.worker1",
                "job1",
                "00000000",
                "6b04e972",
                "1cd73400"
            ])
        );
        let id = out[0]["id"].as_u64().expect("numeric id");
        // Wrong spellings of the id are not ours.
        for wrong in [format!("\"{id}\""), format!("{id}.0"), "null".into()] {
            s.handle_line(
                format!(r#"{{"id":{wrong},"result":true,"error":null}}"#).as_bytes(),
                now,
            );
            assert!(s.poll_event().is_none(), "{wrong}");
        }
        s.handle_line(
            format!(r#"{{"id":{id},"result":null,"error":[23,"Low difficulty share",null]}}"#)
                .as_bytes(),
            now,
        );
        assert_eq!(
            s.poll_event(),
            Some(MinerEvent::ShareResult {
                sequence: seq,
                accepted: false,
                error: Some(StratumError::new(
                    ErrorCode::LowDifficulty,
                    "Low difficulty share"
                )),
            })
        );
        // A second answer to the same id is ignored.
        s.handle_line(
            format!(r#"{{"id":{id},"result":true,"error":null}}"#).as_bytes(),
            now,
        );
        assert!(s.poll_event().is_none());

        let seq2 = s.submit(job.share(&[0; 4], 0x6b04_e972, 1, None));
        let id2 = outputs(&mut s)[0]["id"].as_u64().expect("id");
        // ckpool's form: result false with a reject reason.
        s.handle_line(
            format!(r#"{{"id":{id2},"result":false,"error":null,"reject-reason":"Stale"}}"#)
                .as_bytes(),
            now,
        );
        let Some(MinerEvent::ShareResult {
            sequence,
            accepted: false,
            error: Some(e),
        }) = s.poll_event()
        else {
            panic!("result")
        };
        assert_eq!((sequence, e.code), (seq2, ErrorCode::JobNotFound));
    }

    #[test]
    fn bad_submits_fail_locally() {
        let now = Instant::now();
        let mut s = MinerSession::new(config(), now);
        let seq = s.submit(MinerShare {
            job_id: "job1".into(),
            extranonce2: vec![0; 4],
            ntime: 0,
            nonce: 0,
            version_bits: None,
        });
        let Some(MinerEvent::ShareResult {
            sequence,
            accepted: false,
            error: Some(e),
        }) = s.poll_event()
        else {
            panic!("result")
        };
        assert_eq!((sequence, e.code), (seq, ErrorCode::NotSubscribed));
        let mut s = ready(config(), now);
        s.handle_line(NOTIFY.as_bytes(), now);
        events(&mut s);
        for share in [
            MinerShare {
                job_id: "nope".into(),
                extranonce2: vec![0; 4],
                ntime: 0,
                nonce: 0,
                version_bits: None,
            },
            MinerShare {
                job_id: "job1".into(),
                extranonce2: vec![0; 5],
                ntime: 0,
                nonce: 0,
                version_bits: None,
            },
            MinerShare {
                job_id: "job1".into(),
                extranonce2: vec![0; 4],
                ntime: 0,
                nonce: 0,
                version_bits: Some(0x2000),
            },
        ] {
            s.submit(share);
            assert!(matches!(
                s.poll_event(),
                Some(MinerEvent::ShareResult {
                    accepted: false,
                    ..
                })
            ));
        }
        assert!(outputs(&mut s).is_empty());
    }

    #[test]
    fn extranonce_changes_apply_from_the_next_notify() {
        let now = Instant::now();
        let mut s = ready(config(), now);
        s.handle_line(NOTIFY.as_bytes(), now);
        s.handle_line(
            br#"{"id":null,"method":"mining.set_extranonce","params":["aabbccdd01",2]}"#,
            now,
        );
        s.handle_line(NOTIFY.as_bytes(), now);
        let ev = events(&mut s);
        let MinerEvent::NewJob(before) = &ev[0] else {
            panic!("job")
        };
        assert_eq!(
            ev[1],
            MinerEvent::ExtranonceChanged {
                extranonce1: vec![0xaa, 0xbb, 0xcc, 0xdd, 1],
                extranonce2_size: 2
            }
        );
        let MinerEvent::NewJob(after) = &ev[2] else {
            panic!("job")
        };
        assert_eq!(before.extranonce1, vec![8, 0, 0, 2]);
        assert_eq!(
            (after.extranonce1.len(), after.extranonce2_size),
            (5, 2),
            "same job id, new extranonce"
        );
        // Out-of-range sizes are errors, not changes.
        for size in ["0", "17", "-1", "99999999999", "\"4\""] {
            s.handle_line(
                format!(r#"{{"id":null,"method":"mining.set_extranonce","params":["aa",{size}]}}"#)
                    .as_bytes(),
                now,
            );
            assert!(
                matches!(s.poll_event(), Some(MinerEvent::Error(_))),
                "{size}"
            );
            assert_eq!(s.extranonce2_size(), 2);
        }
    }

    #[test]
    fn subscribe_results_with_bad_extranonce2_sizes_close() {
        let now = Instant::now();
        for size in ["0", "17", "-4", "1e9", "\"4\"", "null"] {
            let mut s = MinerSession::new(config(), now);
            s.start();
            s.handle_line(
                format!(r#"{{"id":1,"result":[[["mining.notify","n1"]],"08000002",{size}],"error":null}}"#)
                    .as_bytes(),
                now,
            );
            let ev = events(&mut s);
            assert!(
                matches!(ev[0], MinerEvent::Error(MinerError::Extranonce2Size { .. })),
                "{size}: {ev:?}"
            );
            assert_eq!(ev[1], MinerEvent::Closed(MinerCloseReason::Protocol));
        }
        // ckpool's one-pair form and size 16 are fine.
        let mut s = MinerSession::new(config(), now);
        s.start();
        s.handle_line(
            br#"{"id":1,"result":[["mining.notify","0000abcd"],"08000002",16],"error":null}"#,
            now,
        );
        assert_eq!(
            s.poll_event(),
            Some(MinerEvent::Subscribed {
                extranonce1: vec![8, 0, 0, 2],
                extranonce2_size: 16,
                session_id: Some("0000abcd".into())
            })
        );
    }

    #[test]
    fn a_refused_resume_subscribes_afresh() {
        let now = Instant::now();
        let mut s = MinerSession::new(config(), now).with_resume("deadbeef");
        s.start();
        outputs(&mut s);
        s.handle_line(
            br#"{"id":1,"result":null,"error":[20,"bad session",null]}"#,
            now,
        );
        // The authorize raced ahead and was refused for want of a subscription.
        s.handle_line(
            br#"{"id":2,"result":null,"error":[25,"Not subscribed",null]}"#,
            now,
        );
        assert!(events(&mut s).is_empty());
        let out = outputs(&mut s);
        assert_eq!(out[0]["method"], "mining.subscribe");
        assert_eq!(out[0]["params"], json!(["cpuminer/2.5.1"]));
        s.handle_line(
            SUBSCRIBE_RESULT
                .replace(r#""id":2"#, r#""id":3"#)
                .as_bytes(),
            now,
        );
        assert!(!s.resumed());
        let out = outputs(&mut s);
        assert_eq!(out[0]["method"], "mining.authorize");
        // A foreign id in the result is simply a new session.
        assert!(matches!(
            s.poll_event(),
            Some(MinerEvent::Subscribed { .. })
        ));
    }

    #[test]
    fn server_requests_are_answered() {
        let now = Instant::now();
        let mut s = ready(config(), now);
        s.handle_line(br#"{"id":42,"method":"mining.ping","params":[]}"#, now);
        s.handle_line(
            br#"{"id":"v","method":"client.get_version","params":[]}"#,
            now,
        );
        s.handle_line(
            br#"{"id":7,"method":"client.show_message","params":["hello"]}"#,
            now,
        );
        s.handle_line(
            br#"{"id":null,"method":"client.show_message","params":["again"]}"#,
            now,
        );
        s.handle_line(br#"{"id":8,"method":"mining.bogus","params":{"x":1}}"#, now);
        s.handle_line(br#"{"id":null,"method":"client.get_version"}"#, now);
        let out = outputs(&mut s);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], json!({"id": 42, "result": "pong", "error": null}));
        assert_eq!(out[1]["id"], "v");
        assert_eq!(out[1]["result"], VERSION_STRING);
        assert!(VERSION_STRING.starts_with("otedama/"));
        assert_eq!(out[2], json!({"id": 7, "result": true, "error": null}));
        assert_eq!(
            events(&mut s),
            vec![
                MinerEvent::ShowMessage("hello".into()),
                MinerEvent::ShowMessage("again".into())
            ]
        );
    }

    #[test]
    fn reconnects_stay_on_the_same_host_unless_allowed() {
        let now = Instant::now();
        let line = |host: &str| {
            format!(r#"{{"id":null,"method":"client.reconnect","params":["{host}",3334,5]}}"#)
        };
        let mut s = ready(config(), now).with_pool_host("Pool.Example.com");
        s.handle_line(
            br#"{"id":null,"method":"client.reconnect","params":[]}"#,
            now,
        );
        s.handle_line(line("pool.example.com.").as_bytes(), now);
        s.handle_line(line("evil.example.net").as_bytes(), now);
        let ev = events(&mut s);
        assert_eq!(ev[0], MinerEvent::Reconnect(Reconnect::default()));
        assert!(
            matches!(&ev[1], MinerEvent::Reconnect(r) if r.port == Some(3334) && r.wait_secs == Some(5))
        );
        assert!(matches!(&ev[2], MinerEvent::ReconnectRefused(_)));
        let mut s = ready(config(), now).allow_redirects(true);
        s.handle_line(line("evil.example.net").as_bytes(), now);
        assert!(matches!(s.poll_event(), Some(MinerEvent::Reconnect(_))));
        // Without a known host, only host-less reconnects are honoured.
        let mut s = ready(config(), now);
        s.handle_line(line("pool.example.com").as_bytes(), now);
        assert!(matches!(
            s.poll_event(),
            Some(MinerEvent::ReconnectRefused(_))
        ));
    }

    #[test]
    fn hostile_notifies_are_refused_without_panicking() {
        let now = Instant::now();
        let mut s = ready(config(), now);
        let branch: Vec<String> = (0..MAX_MERKLE_BRANCH + 1)
            .map(|_| "00".repeat(32))
            .collect();
        let giant = json!({"id": null, "method": "mining.notify", "params": [
            "j", "00".repeat(32), "", "", branch, "20000000", "1d00ffff", "6b04e972", true]});
        s.handle_line(giant.to_string().as_bytes(), now);
        assert!(matches!(
            s.poll_event(),
            Some(MinerEvent::Error(MinerError::MerkleBranchTooLong {
                len: 33,
                ..
            }))
        ));
        let hostile = [
            r#"{"id":null,"method":"mining.notify","params":[1,2,3,4,5,6,7,8,9]}"#.to_owned(),
            r#"{"id":null,"method":"mining.notify","params":"job"}"#.to_owned(),
            r#"{"id":null,"method":"mining.notify","params":[]}"#.to_owned(),
            r#"{"id":null,"method":"mining.notify","params":["j",null,"","",[],"20000000","1d00ffff","6b04e972",true]}"#.to_owned(),
            NOTIFY.replace("\"job1\"", "\"\""),
            NOTIFY.replace("[]", "[\"zz\"]"),
            NOTIFY.replace("\"1d00ffff\"", "\"1d00ffff00\""),
            r#"{"id":null,"method":"mining.set_difficulty","params":["-1"]}"#.to_owned(),
            r#"{"id":null,"method":"mining.set_difficulty","params":[1e999]}"#.to_owned(),
            "\u{16}\u{3}\u{1}garbage".to_owned(),
            "x".repeat(LineBuffer::DEFAULT_MAX_LINE + 1),
        ];
        for line in hostile {
            s.handle_line(line.as_bytes(), now);
            assert!(
                matches!(s.poll_event(), Some(MinerEvent::Error(_))),
                "{line:.80}"
            );
        }
        assert!(!s.is_closed());
        assert_eq!(s.difficulty(), 1.0);
        s.handle_line(b"\xff\xfe", now);
        s.handle_line(br#"{"id":1}"#, now);
        assert_eq!(events(&mut s).len(), 2);
        s.handle_line(NOTIFY.as_bytes(), now);
        assert!(matches!(s.poll_event(), Some(MinerEvent::NewJob(_))));
    }

    #[test]
    fn prevhash_changes_make_jobs_clean() {
        let now = Instant::now();
        let mut s = ready(config(), now);
        s.handle_line(NOTIFY.replace("true]", "false]").as_bytes(), now);
        s.handle_line(NOTIFY.replace("true]", "false]").as_bytes(), now);
        let other = NOTIFY
            .replace("0000000011111111", "0000000022222222")
            .replace("true]", "false]");
        s.handle_line(other.as_bytes(), now);
        let clean: Vec<bool> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                MinerEvent::NewJob(j) => Some(j.clean),
                _ => None,
            })
            .collect();
        assert_eq!(clean, vec![false, false, true]);
    }

    #[test]
    fn version_masks_follow_configure_and_set_version_mask() {
        let now = Instant::now();
        let cfg = MinerConfig {
            version_rolling: Some(0x1fff_e000),
            ..config()
        };
        let mut s = MinerSession::new(cfg.clone(), now);
        s.start();
        s.handle_line(
            br#"{"id":1,"result":{"version-rolling":false},"error":null}"#,
            now,
        );
        assert_eq!(s.poll_event(), Some(MinerEvent::VersionMask(0)));
        s.handle_line(
            br#"{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}"#,
            now,
        );
        assert_eq!(s.poll_event(), Some(MinerEvent::VersionMask(0x00ff_e000)));
        // Without version rolling configured, set_version_mask changes nothing.
        let mut s = ready(config(), now);
        s.handle_line(
            br#"{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}"#,
            now,
        );
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.version_mask(), 0);
        // An error answer (an old pool) means no rolling.
        let mut s = MinerSession::new(cfg, now);
        s.start();
        s.handle_line(
            br#"{"id":1,"result":null,"error":[20,"unknown method",null]}"#,
            now,
        );
        assert_eq!(s.poll_event(), Some(MinerEvent::VersionMask(0)));
    }

    /// Found by the `stratum_v1_miner_session` fuzz target: a configure left unanswered
    /// reported a mask of 0 while a `mining.set_version_mask` that came meanwhile stood.
    #[test]
    fn an_unanswered_configure_reports_the_mask_in_force() {
        let t0 = Instant::now();
        let cfg = MinerConfig {
            version_rolling: Some(0x1fff_e000),
            ..config()
        };
        let mut s = MinerSession::new(cfg, t0);
        s.start();
        s.handle_timeout(t0);
        s.handle_line(
            br#"{"id":null,"method":"mining.set_version_mask","params":["00006000"]}"#,
            t0,
        );
        let mut reported = None;
        while let Some(event) = s.poll_event() {
            if let MinerEvent::VersionMask(mask) = event {
                reported = Some(mask);
            }
        }
        s.handle_timeout(t0 + Duration::from_secs(59));
        s.handle_timeout(t0 + Duration::from_secs(60));
        while let Some(event) = s.poll_event() {
            if let MinerEvent::VersionMask(mask) = event {
                reported = Some(mask);
            }
        }
        assert_eq!(
            reported,
            Some(s.version_mask()),
            "the events agree with the session"
        );
    }

    #[test]
    fn timeouts() {
        let t0 = Instant::now();
        let mut s = MinerSession::new(config(), t0);
        s.start();
        assert_eq!(
            s.poll_timeout(),
            Some(t0),
            "stamp the opening requests at once"
        );
        s.handle_timeout(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        s.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(
            s.poll_event(),
            Some(MinerEvent::Closed(MinerCloseReason::Timeout))
        );

        let mut s = ready(config(), t0);
        s.handle_line(NOTIFY.as_bytes(), t0);
        events(&mut s);
        let t1 = t0 + Duration::from_secs(10);
        let seq = s.submit(MinerShare {
            job_id: "job1".into(),
            extranonce2: vec![0; 4],
            ntime: 0,
            nonce: 0,
            version_bits: None,
        });
        s.handle_timeout(t1);
        s.handle_timeout(t1 + Duration::from_secs(59));
        assert!(s.poll_event().is_none());
        s.handle_timeout(t1 + Duration::from_secs(60));
        assert!(matches!(
            s.poll_event(),
            Some(MinerEvent::ShareResult { sequence, accepted: false, .. }) if sequence == seq
        ));
        s.handle_timeout(t0 + Duration::from_secs(300));
        assert_eq!(
            s.poll_event(),
            Some(MinerEvent::Closed(MinerCloseReason::Idle))
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn extranonce2_iteration() {
        let values: Vec<Vec<u8>> = Extranonce2Iter::new(1).collect();
        assert_eq!(values.len(), 256);
        assert_eq!(values[1], vec![1]);
        let mut it = Extranonce2Iter::new(4)
            .starting_at(0x0102)
            .with_stride(0x100);
        assert_eq!(it.next(), Some(vec![2, 1, 0, 0]));
        assert_eq!(it.next(), Some(vec![2, 2, 0, 0]));
        assert_eq!(Extranonce2Iter::new(2).starting_at(0x1_0000).next(), None);
        let mut big = Extranonce2Iter::new(12).starting_at(u64::MAX);
        assert_eq!(big.next().map(|v| v.len()), Some(12));
        assert_eq!(big.next(), None);
    }

    #[test]
    fn session_time_is_only_what_is_passed_in() {
        // Nothing answers without lines: no hidden clock.
        let t0 = Instant::now();
        let mut s = ready(config(), t0);
        assert!(s.poll_output().is_none());
        s.close(MinerCloseReason::Requested);
        s.handle_line(NOTIFY.as_bytes(), t0);
        assert_eq!(
            events(&mut s),
            vec![MinerEvent::Closed(MinerCloseReason::Requested)]
        );
    }

    proptest! {
        #[test]
        fn submits_round_trip(
            job in "[a-zA-Z0-9]{1,16}",
            en2 in proptest::collection::vec(any::<u8>(), 1..=16),
            ntime in any::<u32>(),
            nonce in any::<u32>(),
            bits in proptest::option::of(any::<u32>()),
        ) {
            let share = MinerShare { job_id: job, extranonce2: en2, ntime, nonce, version_bits: bits };
            let submit = Submit {
                worker: "w".into(),
                job_id: share.job_id.clone(),
                extranonce2: share.extranonce2.clone(),
                ntime, nonce, version_bits: bits,
            };
            let line = ClientRequest::Submit(submit.clone()).to_request(Some(RequestId::number(9))).to_line();
            let Ok(Message::Request(req)) = Message::parse(line.trim_end().as_bytes()) else {
                return Err(TestCaseError::fail("not a request"));
            };
            prop_assert_eq!(ClientRequest::from_request(&req), Ok(ClientRequest::Submit(submit)));
        }

        #[test]
        fn arbitrary_pool_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let now = Instant::now();
            let mut s = ready(config(), now);
            s.handle_line(&line, now);
            let _ = events(&mut s);
        }

        #[test]
        fn notifies_round_trip_into_jobs(
            prev in any::<[u8; 32]>(),
            coinb1 in proptest::collection::vec(any::<u8>(), 0..64),
            branch in proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            version in any::<u32>(),
            clean in any::<bool>(),
        ) {
            let now = Instant::now();
            let mut s = ready(config(), now);
            let notify = Notify {
                job_id: "j".into(), prevhash: prev, coinb1, coinb2: vec![0xff], merkle_branch: branch,
                version, nbits: 0x1d00ffff, ntime: 5, clean_jobs: clean,
            };
            let line = ServerRequest::Notify(notify.clone()).to_request(None).to_line();
            s.handle_line(line.trim_end().as_bytes(), now);
            let Some(MinerEvent::NewJob(job)) = s.poll_event() else {
                return Err(TestCaseError::fail("no job"));
            };
            prop_assert_eq!(job.notify, notify);
        }
    }
}
