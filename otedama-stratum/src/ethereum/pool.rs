//! The pool side of EthereumStratum/1.0.0, as a sans-IO state machine.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{encode_hex, Target};
use serde_json::Value;

use super::message::{
    cut, eth_share_target, positive_number, EthClientRequest, EthNotify, EthServerRequest,
    EthSubmit, EthSubscribeResult, ETH_MAX_EXTRANONCE, ETH_STRATUM_PROTOCOL,
};
use crate::session::{
    AuthorizeToken, CloseReason, PoolProtocol, SeenShares, SessionCore, SessionEvent, ShareToken,
    ShareVerdict, SubmittedShare, PENALTY,
};
use crate::v1::error::{ErrorCode, StratumError};
use crate::v1::extranonce::ExtranonceAllocator;
use crate::v1::frame::LineBuffer;
use crate::v1::message::{RequestId, Response};
use crate::v1::pool::verdict_answer;

/// Pool-side settings for EthereumStratum.
#[derive(Debug, Clone, PartialEq)]
pub struct EthPoolConfig {
    /// Difficulty for a new session (NiceHash convention: Bitcoin's diff-1 boundary / d).
    pub initial_difficulty: f64,
    /// How long a connection may stay without subscribing.
    pub subscribe_timeout: Duration,
    /// How long a connection may stay silent.
    pub idle_timeout: Duration,
    /// How many recent jobs stay valid for shares.
    pub max_jobs: usize,
    /// How many submitted shares are remembered for duplicate detection.
    pub max_seen_shares: usize,
    /// Score at or below which the connection is dropped for bad shares.
    pub ban_threshold: i32,
}

impl Default for EthPoolConfig {
    fn default() -> Self {
        EthPoolConfig {
            initial_difficulty: 1.0,
            subscribe_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_jobs: 8,
            max_seen_shares: 65_536,
            ban_threshold: -30,
        }
    }
}

/// Why an [`EthPoolSession`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EthConfigError {
    /// The allocator hands out extranonces longer than EthereumStratum allows.
    #[error(
        "extranonce of {len} bytes is too long for ethereumstratum (at most {ETH_MAX_EXTRANONCE})"
    )]
    ExtranonceTooLong {
        /// The allocator's value length.
        len: usize,
    },
}

/// Identifies an authorization awaiting the caller's verdict (the token every dialect uses).
pub type EthAuthorizeToken = AuthorizeToken;

/// Identifies a share awaiting the caller's verdict (the token every dialect uses).
pub type EthShareToken = ShareToken;

/// A share that passed the session's checks, for the caller to verify with Ethash: hash
/// `header_hash` with `nonce` in the epoch of `seed_hash`, check the result against `target`
/// (big-endian) and, if sent, against `mix_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct EthShareSubmission {
    /// Answer with [`EthPoolSession::share_result`].
    pub token: EthShareToken,
    /// The authorized worker name it was submitted under.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The full nonce, extranonce ‖ miner nonce.
    pub nonce: u64,
    /// The job's seed hash.
    pub seed_hash: [u8; 32],
    /// The job's header hash.
    pub header_hash: [u8; 32],
    /// The mix hash, when the miner sent one.
    pub mix_hash: Option<[u8; 32]>,
    /// The difficulty the job was announced with.
    pub difficulty: f64,
    /// The boundary for that difficulty.
    pub target: Target,
}

/// What an [`EthPoolSession`] needs the caller to decide: a worker to authorize (answer
/// with [`EthPoolSession::authorize_result`]), a share to verify (answer with
/// [`EthPoolSession::share_result`]), or the end of the session.
pub type EthPoolEvent = SessionEvent<EthShareSubmission>;

#[derive(Debug, Clone)]
struct EthActiveJob {
    job_id: String,
    seed_hash: [u8; 32],
    header_hash: [u8; 32],
    difficulty: f64,
}

/// One EthereumStratum/1.0.0 miner connection, pool side.
#[derive(Debug)]
pub struct EthPoolSession {
    config: Arc<EthPoolConfig>,
    allocator: Arc<ExtranonceAllocator>,
    core: SessionCore<EthPoolEvent>,
    authorized: HashSet<String>,
    extranonce_subscribed: bool,
    difficulty: f64,
    announced_difficulty: Option<f64>,
    jobs: VecDeque<EthActiveJob>,
    seen: SeenShares<(String, u64)>,
}

impl EthPoolSession {
    /// A new connection at `now`, drawing its extranonce from `allocator`, whose values must
    /// be at most [`ETH_MAX_EXTRANONCE`] bytes.
    pub fn new(
        config: Arc<EthPoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, EthConfigError> {
        if allocator.len() > ETH_MAX_EXTRANONCE {
            return Err(EthConfigError::ExtranonceTooLong {
                len: allocator.len(),
            });
        }
        let difficulty = positive_number(&Value::from(config.initial_difficulty)).unwrap_or(1.0);
        let core = SessionCore::new(
            now,
            config.subscribe_timeout,
            config.idle_timeout,
            config.ban_threshold,
        );
        let seen = SeenShares::new(config.max_seen_shares);
        Ok(EthPoolSession {
            config,
            allocator,
            core,
            authorized: HashSet::new(),
            extranonce_subscribed: false,
            difficulty,
            announced_difficulty: None,
            jobs: VecDeque::new(),
            seen,
        })
    }

    /// The next line to write to the miner.
    pub fn poll_output(&mut self) -> Option<String> {
        self.core.poll_output()
    }

    /// The next decision needed from the caller.
    pub fn poll_event(&mut self) -> Option<EthPoolEvent> {
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

    /// The session's extranonce, once subscribed.
    pub fn extranonce(&self) -> Option<&[u8]> {
        self.core.extranonce()
    }

    /// Whether the miner asked for `mining.set_extranonce`.
    pub fn extranonce_subscribed(&self) -> bool {
        self.extranonce_subscribed
    }

    /// The difficulty the next job will carry.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Shares accepted and rejected so far.
    pub fn share_counts(&self) -> (u64, u64) {
        self.core.share_counts()
    }

    /// Sets the difficulty for the jobs sent from now on (a value that is not a positive
    /// number is ignored).
    pub fn set_difficulty(&mut self, difficulty: f64) {
        if let Some(d) = positive_number(&Value::from(difficulty)) {
            self.difficulty = d;
        }
    }

    /// The instant by which [`handle_timeout`](EthPoolSession::handle_timeout) must be called
    /// next.
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

    fn reply(&mut self, id: Option<RequestId>, result: Result<Value, StratumError>) {
        if id.is_none() {
            return;
        }
        let response = match result {
            Ok(v) => Response::ok(id, v),
            // NiceHash answers `false` with the error.
            Err(e) => Response {
                id,
                result: Value::Bool(false),
                error: Some(e),
            },
        };
        self.core.send(response.to_line());
    }

    /// Handles one line from the miner (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        let subscribed = self.is_subscribed();
        let max_line = Some(LineBuffer::DEFAULT_MAX_LINE);
        let Some(request) = self.core.receive(line, now, subscribed, max_line) else {
            return;
        };
        let id = request.id.clone();
        match EthClientRequest::from_request(&request) {
            Ok(msg) => self.dispatch(id, msg),
            Err(e) => {
                self.reply(id, Err(StratumError::new(ErrorCode::Other, e.to_string())));
                self.core.penalize(PENALTY);
            }
        }
    }

    fn dispatch(&mut self, id: Option<RequestId>, msg: EthClientRequest) {
        match msg {
            EthClientRequest::Subscribe(_) => {
                if !self.is_subscribed() {
                    // NiceHash's params[1] is the protocol, not a session id: no resume.
                    match self.allocator.allocate(None) {
                        Some(e) => self.core.set_extranonce(e),
                        None => {
                            self.reply(
                                id,
                                Err(StratumError::new(ErrorCode::Other, "pool is full")),
                            );
                            self.close(CloseReason::PoolFull);
                            return;
                        }
                    }
                }
                let extranonce = self.extranonce().map(<[u8]>::to_vec).unwrap_or_default();
                let result = EthSubscribeResult {
                    session_id: Some(encode_hex(&extranonce)),
                    protocol: Some(ETH_STRATUM_PROTOCOL.to_owned()),
                    extranonce,
                };
                self.reply(id, Ok(result.to_json()));
            }
            EthClientRequest::Authorize(a) => {
                let token = self.core.await_authorize(id, a.username.clone());
                self.core.event(EthPoolEvent::Authorize {
                    token,
                    username: a.username,
                    password: a.password,
                });
            }
            EthClientRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                self.reply(id, Ok(Value::Bool(true)));
            }
            EthClientRequest::Submit(s) => self.submit(id, s),
            EthClientRequest::Unknown { method, .. } => {
                let message = format!("unsupported method {}", cut(&method));
                self.reply(id, Err(StratumError::new(ErrorCode::Other, message)));
            }
        }
    }

    /// Announces a job: `mining.set_difficulty` first when the difficulty changed (it applies
    /// from this job on), then `mining.notify`. A clean job voids every earlier one.
    pub fn send_job(&mut self, job: &EthNotify) {
        if self.is_closed() || !self.is_subscribed() {
            return;
        }
        if self.announced_difficulty != Some(self.difficulty) {
            let line = EthServerRequest::SetDifficulty(self.difficulty)
                .to_request(None)
                .to_line();
            self.core.send(line);
            self.announced_difficulty = Some(self.difficulty);
        }
        if job.clean {
            self.jobs.clear();
            self.seen.clear();
        }
        self.jobs.retain(|j| j.job_id != job.job_id);
        self.jobs.push_back(EthActiveJob {
            job_id: job.job_id.clone(),
            seed_hash: job.seed_hash,
            header_hash: job.header_hash,
            difficulty: self.difficulty,
        });
        while self.jobs.len() > self.config.max_jobs.max(1) {
            self.jobs.pop_front();
        }
        let line = EthServerRequest::Notify(job.clone())
            .to_request(None)
            .to_line();
        self.core.send(line);
    }

    fn submit(&mut self, id: Option<RequestId>, s: EthSubmit) {
        let reject = |this: &mut Self,
                      id: Option<RequestId>,
                      code: ErrorCode,
                      message: &str,
                      points: i32| {
            this.reply(id, Err(StratumError::new(code, message)));
            this.core.reject(points);
        };
        let Some(extranonce) = self.extranonce().map(<[u8]>::to_vec) else {
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
        let Some(job) = self.jobs.iter().find(|j| j.job_id == s.job_id).cloned() else {
            return reject(self, id, ErrorCode::JobNotFound, "job not found", 1);
        };
        let Some(nonce) = s.full_nonce(&extranonce) else {
            let message = format!(
                "nonce of {} bytes does not complete extranonce {}",
                s.nonce.len(),
                encode_hex(&extranonce)
            );
            return reject(self, id, ErrorCode::Other, &message, PENALTY);
        };
        if !self.seen.insert((s.job_id.clone(), nonce)) {
            return reject(self, id, ErrorCode::Duplicate, "duplicate share", PENALTY);
        }
        let token = self.core.await_share(id);
        self.core.event(EthPoolEvent::Share(EthShareSubmission {
            token,
            worker: s.worker,
            job_id: s.job_id,
            nonce,
            seed_hash: job.seed_hash,
            header_hash: job.header_hash,
            mix_hash: s.mix_hash,
            difficulty: job.difficulty,
            target: eth_share_target(job.difficulty),
        }));
    }

    /// Answers an authorization: `Ok` authorizes the worker, `Err` refuses it with the reason.
    pub fn authorize_result(&mut self, token: EthAuthorizeToken, result: Result<(), String>) {
        let Some((id, username)) = self.core.take_authorize(token) else {
            return;
        };
        match result {
            Ok(()) => {
                self.authorized.insert(username);
                self.reply(id, Ok(Value::Bool(true)));
            }
            Err(reason) => {
                self.reply(id, Err(StratumError::new(ErrorCode::Unauthorized, reason)));
                self.core.penalize(PENALTY);
            }
        }
    }

    /// Answers a share. Call it only once the share is durably recorded when accepting.
    pub fn share_result(&mut self, token: EthShareToken, verdict: ShareVerdict) {
        let Some(id) = self.core.take_share(token) else {
            return;
        };
        self.reply(id, verdict_answer(&verdict));
        self.core.judge(&verdict);
    }
}

impl SubmittedShare for EthShareSubmission {
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

impl PoolProtocol for EthPoolSession {
    type Config = EthPoolConfig;
    type Job = EthNotify;
    type Share = EthShareSubmission;
    type OpenError = EthConfigError;
    type Output = String;

    /// [`EthPoolSession::new`]: the allocator's values must be at most
    /// [`ETH_MAX_EXTRANONCE`] bytes.
    fn open(
        config: Arc<EthPoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, EthConfigError> {
        EthPoolSession::new(config, allocator, now)
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        EthPoolSession::handle_line(self, line, now);
    }

    fn poll_output(&mut self) -> Option<String> {
        EthPoolSession::poll_output(self)
    }

    fn poll_event(&mut self) -> Option<EthPoolEvent> {
        EthPoolSession::poll_event(self)
    }

    fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>) {
        EthPoolSession::authorize_result(self, token, result);
    }

    fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict) {
        EthPoolSession::share_result(self, token, verdict);
    }

    /// Subscribed, with a worker authorized.
    fn wants_jobs(&self) -> bool {
        self.is_subscribed() && !self.authorized.is_empty()
    }

    fn worker(&self) -> Option<&str> {
        self.authorized.iter().next().map(String::as_str)
    }

    /// [`EthPoolSession::send_job`]; the time is not needed.
    fn send_job(&mut self, job: &EthNotify, _now: Instant) {
        EthPoolSession::send_job(self, job);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        EthPoolSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        EthPoolSession::handle_timeout(self, now);
    }

    fn close(&mut self, reason: CloseReason) {
        EthPoolSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        EthPoolSession::is_closed(self)
    }
}
