//! The pool side of a Stratum v1 connection, as a sans-IO state machine.
//!
//! Feed it the lines the miner sends ([`PoolSession::handle_line`]) and the jobs to announce
//! ([`PoolSession::send_job`]); take the lines to write from [`PoolSession::poll_output`] and
//! the decisions it needs from [`PoolSession::poll_event`]. Authorization and share validity
//! (proof of work, payout addresses) are the caller's: the session hands them over as events
//! and sends the answer when [`PoolSession::authorize_result`] or
//! [`PoolSession::share_result`] is called, which lets a pool acknowledge a share only once it
//! is durably recorded. Time is always passed in.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::encode_hex;
use serde_json::{json, Map, Value};

use super::error::{ErrorCode, StratumError};
use super::extranonce::ExtranonceAllocator;
use super::message::{
    ClientRequest, Configure, Notify, Request, RequestId, Response, ServerRequest, Submit,
    SubscribeResult,
};
use super::vardiff::{Vardiff, VardiffConfig};
use crate::session::{
    AuthorizeToken, CloseReason, PoolProtocol, SeenShares, SessionCore, SessionEvent, ShareToken,
    ShareVerdict, SubmittedShare, PENALTY,
};

/// Pool-side session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Bytes of extranonce2 the miner fills in.
    pub extranonce2_size: usize,
    /// The version bits miners may roll (BIP320: 0x1fffe000).
    pub version_rolling_mask: u32,
    /// Difficulty for a new session.
    pub initial_difficulty: f64,
    /// Vardiff settings; its bounds also limit `suggest_difficulty`.
    pub vardiff: VardiffConfig,
    /// Whether vardiff runs at all.
    pub vardiff_enabled: bool,
    /// How long a connection may stay without subscribing.
    pub subscribe_timeout: Duration,
    /// How long a connection may stay silent.
    pub idle_timeout: Duration,
    /// How far past the job's time a share's ntime may be, in seconds.
    pub ntime_ahead: u32,
    /// How many recent jobs stay valid for shares (older ones are stale).
    pub max_jobs: usize,
    /// How many submitted shares are remembered for duplicate detection.
    pub max_seen_shares: usize,
    /// Score at or below which the connection is dropped for bad shares.
    pub ban_threshold: i32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            extranonce2_size: 4,
            version_rolling_mask: 0x1fff_e000,
            initial_difficulty: 1.0,
            vardiff: VardiffConfig::default(),
            vardiff_enabled: true,
            subscribe_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            ntime_ahead: 7000,
            max_jobs: 16,
            max_seen_shares: 65_536,
            ban_threshold: -30,
        }
    }
}

/// A job to announce; built once per template and shared by every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAnnouncement {
    /// The `mining.notify` content.
    pub notify: Notify,
    /// Identifies the chain tip the job builds on; jobs of an older tip are stale.
    pub height: u64,
}

/// A share that passed the session's checks, for the caller to validate.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareSubmission {
    /// Answer with [`PoolSession::share_result`].
    pub token: ShareToken,
    /// The authorized worker name it was submitted under.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// The miner's extranonce2 (length already checked).
    pub extranonce2: Vec<u8>,
    /// Header time (window already checked).
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits (inside the mask, already checked), when sent.
    pub version_bits: Option<u32>,
    /// The negotiated version mask (0 when none).
    pub version_mask: u32,
    /// The difficulty the job was announced with: the share must meet it.
    pub difficulty: f64,
}

/// What a [`PoolSession`] needs the caller to decide: a worker to authorize (answer with
/// [`PoolSession::authorize_result`]), a share to validate (answer with
/// [`PoolSession::share_result`]), or the end of the session.
pub type PoolEvent = SessionEvent<ShareSubmission>;

#[derive(Debug, Clone)]
struct ActiveJob {
    ntime: u32,
    difficulty: f64,
}

/// The decoded bytes that make a share unique; hex case and spelling do not matter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShareKey {
    job_id: String,
    extranonce2: Vec<u8>,
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
}

/// One miner connection, pool side.
#[derive(Debug)]
pub struct PoolSession {
    config: Arc<PoolConfig>,
    allocator: Arc<ExtranonceAllocator>,
    core: SessionCore<PoolEvent>,
    session_id: Option<String>,
    user_agent: Option<String>,
    authorized: HashSet<String>,
    version_mask: Option<u32>,
    extranonce_subscribed: bool,
    difficulty: f64,
    announced_difficulty: Option<f64>,
    minimum_difficulty: Option<f64>,
    jobs: VecDeque<(String, ActiveJob)>,
    tip_height: Option<u64>,
    seen: SeenShares<ShareKey>,
    vardiff: Vardiff,
}

impl PoolSession {
    /// A new connection at `now`.
    pub fn new(config: Arc<PoolConfig>, allocator: Arc<ExtranonceAllocator>, now: Instant) -> Self {
        let vardiff = Vardiff::new(config.vardiff.clone(), now);
        let difficulty = config.vardiff.clamp(config.initial_difficulty);
        let core = SessionCore::new(
            now,
            config.subscribe_timeout,
            config.idle_timeout,
            config.ban_threshold,
        );
        let seen = SeenShares::new(config.max_seen_shares);
        PoolSession {
            config,
            allocator,
            core,
            session_id: None,
            user_agent: None,
            authorized: HashSet::new(),
            version_mask: None,
            extranonce_subscribed: false,
            difficulty,
            announced_difficulty: None,
            minimum_difficulty: None,
            jobs: VecDeque::new(),
            tip_height: None,
            seen,
            vardiff,
        }
    }

    /// The next line to write to the miner.
    pub fn poll_output(&mut self) -> Option<String> {
        self.core.poll_output()
    }

    /// The next decision needed from the caller.
    pub fn poll_event(&mut self) -> Option<PoolEvent> {
        self.core.poll_event()
    }

    /// Whether the session has subscribed.
    pub fn is_subscribed(&self) -> bool {
        self.core.extranonce().is_some()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The session's extranonce1, once subscribed.
    pub fn extranonce1(&self) -> Option<&[u8]> {
        self.core.extranonce()
    }

    /// The miner's user agent, if it sent one.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The authorized worker names.
    pub fn workers(&self) -> impl Iterator<Item = &str> {
        self.authorized.iter().map(String::as_str)
    }

    /// The difficulty the next job will carry.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// The negotiated version-rolling mask, if any.
    pub fn version_mask(&self) -> Option<u32> {
        self.version_mask
    }

    /// Shares accepted and rejected so far.
    pub fn share_counts(&self) -> (u64, u64) {
        self.core.share_counts()
    }

    /// The instant by which [`PoolSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout(self.is_subscribed())
    }

    /// Checks the timeouts at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let subscribed = self.is_subscribed();
        self.core.handle_timeout(now, subscribed);
    }

    /// Ends the session.
    ///
    /// Authorizations and shares still awaiting a verdict are forgotten: answering them
    /// afterwards writes nothing.
    pub fn close(&mut self, reason: CloseReason) {
        self.core.close(reason);
    }

    fn send(&mut self, line: String) {
        self.core.send(line);
    }

    /// Replies to a request; notifications (null id) get no reply, as JSON-RPC has it.
    /// bfgminer sends `mining.suggest_target` with a null id before subscribing and takes the
    /// first response it reads for the subscribe result.
    fn reply(&mut self, id: Option<RequestId>, result: Result<Value, StratumError>) {
        if id.is_some() {
            self.answer(id, result);
        }
    }

    /// Replies to a request whose answer the miner cannot do without (subscribe, authorize,
    /// submit, configure), with `"id":null` when it came with a null id.
    fn answer(&mut self, id: Option<RequestId>, result: Result<Value, StratumError>) {
        let response = match result {
            Ok(v) => Response::ok(id, v),
            Err(e) => Response::err(id, e),
        };
        self.send(response.to_line());
    }

    /// Handles one line from the miner (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        let subscribed = self.is_subscribed();
        // Lines are bounded by the caller's `LineBuffer`.
        let Some(request) = self.core.receive(line, now, subscribed, None) else {
            return;
        };
        let id = request.id.clone();
        match ClientRequest::from_request(&request) {
            Ok(msg) => self.dispatch(id, msg, now),
            Err(e) => {
                let error = Err(StratumError::new(ErrorCode::Other, e.to_string()));
                if needs_answer(&request.method) {
                    self.answer(id, error);
                } else {
                    self.reply(id, error);
                }
                self.core.penalize(PENALTY);
            }
        }
    }

    fn dispatch(&mut self, id: Option<RequestId>, msg: ClientRequest, now: Instant) {
        match msg {
            ClientRequest::Subscribe(s) => {
                if !self.is_subscribed() {
                    let resume = s
                        .session_id
                        .as_deref()
                        .and_then(|sid| otedama_core::decode_hex(sid).ok());
                    match self.allocator.allocate(resume.as_deref()) {
                        Some(en1) => {
                            self.session_id = Some(encode_hex(en1.as_bytes()));
                            self.core.set_extranonce(en1);
                        }
                        None => {
                            self.answer(
                                id,
                                Err(StratumError::new(ErrorCode::Other, "pool is full")),
                            );
                            self.close(CloseReason::PoolFull);
                            return;
                        }
                    }
                }
                self.user_agent = s.user_agent.or(self.user_agent.take());
                let sid = self.session_id.clone().unwrap_or_default();
                let result = SubscribeResult {
                    subscriptions: vec![
                        ("mining.set_difficulty".into(), sid.clone()),
                        ("mining.notify".into(), sid),
                    ],
                    extranonce1: self.extranonce1().map(<[u8]>::to_vec).unwrap_or_default(),
                    extranonce2_size: self.config.extranonce2_size,
                };
                self.answer(id, Ok(result.to_json()));
            }
            ClientRequest::Authorize(a) => {
                let token = self.core.await_authorize(id, a.username.clone());
                self.core.event(PoolEvent::Authorize {
                    token,
                    username: a.username,
                    password: a.password,
                });
            }
            ClientRequest::Submit(s) => self.submit(id, s),
            ClientRequest::Configure(c) => {
                let result = self.configure(&c);
                self.answer(id, Ok(result));
            }
            ClientRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                self.reply(id, Ok(Value::Bool(true)));
            }
            ClientRequest::SuggestDifficulty(d) => {
                self.set_difficulty(d, now);
                self.reply(id, Ok(Value::Bool(true)));
            }
            ClientRequest::SuggestTarget(target) => {
                // target = diff1 / d, read with Bitcoin's diff-1.
                let t = otedama_core::Target::from_be_bytes(target);
                if let Ok(d) = otedama_core::DifficultyConvention::Bitcoin.difficulty_of(&t) {
                    self.set_difficulty(d.as_f64(), now);
                }
                self.reply(id, Ok(Value::Bool(true)));
            }
            ClientRequest::Unknown { method, .. } => {
                self.reply(
                    id,
                    Err(StratumError::new(
                        ErrorCode::Other,
                        format!("unsupported method {method}"),
                    )),
                );
            }
        }
    }

    fn configure(&mut self, c: &Configure) -> Value {
        let mut out = Map::new();
        for ext in &c.extensions {
            match ext.as_str() {
                "version-rolling" => {
                    let req = c
                        .version_rolling
                        .unwrap_or(super::message::VersionRollingRequest {
                            mask: u32::MAX,
                            min_bit_count: 0,
                        });
                    let mask = self.config.version_rolling_mask & req.mask;
                    if mask.count_ones() >= req.min_bit_count && mask != 0 {
                        self.version_mask = Some(mask);
                        out.insert("version-rolling".into(), Value::Bool(true));
                        out.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
                    } else {
                        out.insert("version-rolling".into(), Value::Bool(false));
                    }
                }
                "minimum-difficulty" => {
                    let ok = c.minimum_difficulty.is_some();
                    self.minimum_difficulty = c.minimum_difficulty;
                    out.insert("minimum-difficulty".into(), Value::Bool(ok));
                }
                "subscribe-extranonce" => {
                    self.extranonce_subscribed = true;
                    out.insert("subscribe-extranonce".into(), Value::Bool(true));
                }
                "info" => {
                    out.insert("info".into(), Value::Bool(true));
                }
                other => {
                    out.insert(other.to_owned(), Value::Bool(false));
                }
            }
        }
        Value::Object(out)
    }

    fn set_difficulty(&mut self, d: f64, now: Instant) {
        let floor = self.minimum_difficulty.unwrap_or(0.0);
        self.difficulty = self.config.vardiff.clamp(d.max(floor));
        self.vardiff.reset(now);
    }

    /// Announces a job: `mining.set_difficulty` first when the difficulty changed (miners apply
    /// it from the next notify), then `mining.notify`. A clean job voids every earlier one; so
    /// does a job whose `height` is above every earlier one (a new chain tip), which then goes
    /// out with `clean_jobs` set whatever the announcement said.
    pub fn send_job(&mut self, job: &JobAnnouncement, now: Instant) {
        if self.is_closed() || !self.is_subscribed() {
            return;
        }
        if self.config.vardiff_enabled {
            if let Some(d) = self.vardiff.retarget(self.difficulty, now) {
                let floor = self.minimum_difficulty.unwrap_or(0.0);
                self.difficulty = self.config.vardiff.clamp(d.max(floor));
            }
        }
        if self.announced_difficulty != Some(self.difficulty) {
            let line = ServerRequest::SetDifficulty(self.difficulty)
                .to_request(None)
                .to_line();
            self.send(line);
            self.announced_difficulty = Some(self.difficulty);
        }
        let new_tip = self.tip_height.is_some_and(|tip| job.height > tip);
        let clean = job.notify.clean_jobs || new_tip;
        if clean {
            self.jobs.clear();
            self.seen.clear();
            self.tip_height = Some(job.height);
        } else {
            self.tip_height = Some(
                self.tip_height
                    .map_or(job.height, |tip| tip.max(job.height)),
            );
        }
        self.jobs.retain(|(id, _)| *id != job.notify.job_id);
        self.jobs.push_back((
            job.notify.job_id.clone(),
            ActiveJob {
                ntime: job.notify.ntime,
                difficulty: self.difficulty,
            },
        ));
        while self.jobs.len() > self.config.max_jobs.max(1) {
            self.jobs.pop_front();
        }
        let mut notify = job.notify.clone();
        notify.clean_jobs = clean;
        let line = ServerRequest::Notify(notify).to_request(None).to_line();
        self.send(line);
    }

    /// Checks a submitted share against the session's state and hands it to the caller.
    fn submit(&mut self, id: Option<RequestId>, s: Submit) {
        let reject = |this: &mut PoolSession,
                      id: Option<RequestId>,
                      code: ErrorCode,
                      msg: &str,
                      points: i32| {
            this.answer(id, Err(StratumError::new(code, msg)));
            this.core.reject(points);
        };
        let Some(en1) = self.extranonce1().map(<[u8]>::to_vec) else {
            return reject(
                self,
                id,
                ErrorCode::NotSubscribed,
                "not subscribed",
                PENALTY,
            );
        };
        if !self.authorized.contains(&s.worker) {
            return reject(
                self,
                id,
                ErrorCode::Unauthorized,
                "unauthorized worker",
                PENALTY,
            );
        }
        let Some(job) = self
            .jobs
            .iter()
            .find(|(j, _)| *j == s.job_id)
            .map(|(_, job)| job.clone())
        else {
            // Stale shares happen to honest miners around block changes: a light penalty.
            return reject(self, id, ErrorCode::JobNotFound, "job not found (stale)", 1);
        };
        if s.extranonce2.len() != self.config.extranonce2_size {
            return reject(
                self,
                id,
                ErrorCode::Other,
                "extranonce2 has the wrong size",
                PENALTY,
            );
        }
        if s.ntime < job.ntime || s.ntime - job.ntime > self.config.ntime_ahead {
            return reject(self, id, ErrorCode::Other, "ntime out of range", PENALTY);
        }
        let mask = self.version_mask.unwrap_or(0);
        if let Some(bits) = s.version_bits {
            if bits & !mask != 0 {
                return reject(
                    self,
                    id,
                    ErrorCode::Other,
                    "version bits outside the negotiated mask",
                    PENALTY,
                );
            }
        }
        let key = ShareKey {
            job_id: s.job_id.clone(),
            extranonce2: s.extranonce2.clone(),
            ntime: s.ntime,
            nonce: s.nonce,
            version_bits: s.version_bits.filter(|b| *b != 0),
        };
        if !self.seen.insert(key) {
            return reject(self, id, ErrorCode::Duplicate, "duplicate share", PENALTY);
        }
        let token = self.core.await_share(id);
        self.core.event(PoolEvent::Share(ShareSubmission {
            token,
            worker: s.worker,
            job_id: s.job_id,
            extranonce1: en1,
            extranonce2: s.extranonce2,
            ntime: s.ntime,
            nonce: s.nonce,
            version_bits: s.version_bits,
            version_mask: mask,
            difficulty: job.difficulty,
        }));
    }

    /// Answers an authorization: `Ok` authorizes the worker, `Err` refuses it with the reason
    /// (e.g. "invalid payout address").
    pub fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>) {
        let Some((id, username)) = self.core.take_authorize(token) else {
            return;
        };
        match result {
            Ok(()) => {
                self.authorized.insert(username);
                self.answer(id, Ok(Value::Bool(true)));
            }
            Err(reason) => {
                self.answer(id, Err(StratumError::new(ErrorCode::Unauthorized, reason)));
                self.core.penalize(PENALTY);
            }
        }
    }

    /// Answers a share. Call it only once the share is durably recorded when accepting.
    pub fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict) {
        let Some(id) = self.core.take_share(token) else {
            return;
        };
        if verdict == ShareVerdict::Accepted {
            self.vardiff.record_share();
        }
        self.answer(id, verdict_answer(&verdict));
        self.core.judge(&verdict);
    }

    /// Sends `client.reconnect` to move the miner elsewhere (or back here after `wait_secs`).
    pub fn reconnect(&mut self, reconnect: super::message::Reconnect) {
        let line = ServerRequest::Reconnect(reconnect)
            .to_request(None)
            .to_line();
        self.send(line);
    }

    /// Sends a server-to-client request such as `client.get_version` or `mining.ping`, with a
    /// fresh numeric id.
    pub fn server_request(&mut self, request: ServerRequest) {
        let id = RequestId::number(self.core.token());
        let line: String = Request {
            id: Some(id),
            ..request.to_request(None)
        }
        .to_line();
        self.send(line);
    }
}

/// Methods whose result a miner waits for: answered even when sent with a null id.
fn needs_answer(method: &str) -> bool {
    matches!(
        method,
        "mining.subscribe" | "mining.authorize" | "mining.submit" | "mining.configure"
    )
}

/// The answer to a share the caller judged, in the v1 error codes (EthereumStratum uses them
/// too): `true`, or the error for the verdict.
pub(crate) fn verdict_answer(verdict: &ShareVerdict) -> Result<Value, StratumError> {
    match verdict {
        ShareVerdict::Accepted => Ok(Value::Bool(true)),
        ShareVerdict::LowDifficulty => Err(StratumError::new(
            ErrorCode::LowDifficulty,
            "low difficulty share",
        )),
        ShareVerdict::Stale => Err(StratumError::new(ErrorCode::JobNotFound, "stale share")),
        ShareVerdict::Invalid(reason) | ShareVerdict::PoolError(reason) => {
            Err(StratumError::new(ErrorCode::Other, reason.clone()))
        }
    }
}

impl SubmittedShare for ShareSubmission {
    fn token(&self) -> ShareToken {
        self.token
    }

    fn worker(&self) -> &str {
        &self.worker
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }
}

impl PoolProtocol for PoolSession {
    type Config = PoolConfig;
    type Job = JobAnnouncement;
    type Share = ShareSubmission;
    type OpenError = Infallible;
    type Output = String;

    fn open(
        config: Arc<PoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, Infallible> {
        Ok(PoolSession::new(config, allocator, now))
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        PoolSession::handle_line(self, line, now);
    }

    fn poll_output(&mut self) -> Option<String> {
        PoolSession::poll_output(self)
    }

    fn poll_event(&mut self) -> Option<PoolEvent> {
        PoolSession::poll_event(self)
    }

    fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>) {
        PoolSession::authorize_result(self, token, result);
    }

    fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict) {
        PoolSession::share_result(self, token, verdict);
    }

    /// Subscribed, with a worker authorized.
    fn wants_jobs(&self) -> bool {
        self.is_subscribed() && !self.authorized.is_empty()
    }

    fn worker(&self) -> Option<&str> {
        self.workers().next()
    }

    fn send_job(&mut self, job: &JobAnnouncement, now: Instant) {
        PoolSession::send_job(self, job, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        PoolSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        PoolSession::handle_timeout(self, now);
    }

    fn close(&mut self, reason: CloseReason) {
        PoolSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        PoolSession::is_closed(self)
    }
}
