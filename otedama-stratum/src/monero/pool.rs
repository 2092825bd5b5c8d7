//! The pool side of the Monero dialect, as a sans-IO state machine.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{encode_hex, MoneroTarget};
use serde_json::Value;

use super::message::{
    cut, monero_status, MoneroClientRequest, MoneroError, MoneroJob, MoneroLogin,
    MoneroLoginResult, MoneroResponse, MoneroServerRequest, MoneroSubmit, MONERO_STATUS_KEEPALIVED,
    MONERO_STATUS_OK,
};
use crate::session::{
    AuthorizeToken, CloseReason, PoolProtocol, SeenShares, SessionCore, SessionEvent,
    SessionEvents, ShareToken, ShareVerdict, SubmittedShare, PENALTY,
};
use crate::v1::extranonce::ExtranonceAllocator;
use crate::v1::frame::LineBuffer;
use crate::v1::message::RequestId;

/// Pool-side settings for the Monero dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroPoolConfig {
    /// How long a connection may stay without logging in.
    pub login_timeout: Duration,
    /// How long a connection may stay silent.
    pub idle_timeout: Duration,
    /// How many recent jobs stay valid for shares.
    pub max_jobs: usize,
    /// How many submitted shares are remembered for duplicate detection.
    pub max_seen_shares: usize,
    /// Score at or below which the connection is dropped for bad shares.
    pub ban_threshold: i32,
    /// The extensions announced in the login result.
    pub extensions: Vec<String>,
    /// Whether `keepalived` is answered (nodejs-pool does; p2pool does not).
    pub reply_keepalived: bool,
}

impl Default for MoneroPoolConfig {
    fn default() -> Self {
        MoneroPoolConfig {
            login_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_jobs: 4,
            max_seen_shares: 65_536,
            ban_threshold: -30,
            extensions: vec!["algo".to_owned(), "keepalive".to_owned()],
            reply_keepalived: true,
        }
    }
}

/// Identifies a login awaiting the caller's verdict (the token every dialect uses).
pub type MoneroLoginToken = AuthorizeToken;

/// Identifies a share awaiting the caller's verdict (the token every dialect uses).
pub type MoneroShareToken = ShareToken;

/// A share that passed the session's checks, for the caller to verify with RandomX (or the
/// job's algorithm): hash `blob`, compare with `result`, and check it against `difficulty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroShareSubmission {
    /// Answer with [`MoneroPoolSession::share_result`].
    pub token: MoneroShareToken,
    /// The login the session was accepted under.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The nonce (little-endian at [`MONERO_NONCE_OFFSET`](crate::MONERO_NONCE_OFFSET)).
    pub nonce: u32,
    /// The job's blob with the nonce written in.
    pub blob: Vec<u8>,
    /// The hash the miner claims (already under the target).
    pub result: [u8; 32],
    /// The job's share difficulty.
    pub difficulty: u64,
    /// The job's share target.
    pub target: MoneroTarget,
    /// The algorithm: the submit's, else the job's.
    pub algo: Option<String>,
    /// The job's seed hash.
    pub seed_hash: Option<[u8; 32]>,
    /// The job's height.
    pub height: Option<u64>,
}

/// What a [`MoneroPoolSession`] needs the caller to decide.
///
/// Through [`PoolProtocol::poll_event`] the same events come in the shape every dialect
/// shares, [`SessionEvent`]: a login becomes [`SessionEvent::Authorize`] with the `login`
/// and `pass` fields as username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneroPoolEvent {
    /// A miner logs in; check the payout address and answer with
    /// [`MoneroPoolSession::login_result`].
    Login {
        /// The request to answer.
        token: MoneroLoginToken,
        /// What the miner sent.
        login: MoneroLogin,
    },
    /// A share to verify; answer with [`MoneroPoolSession::share_result`].
    Share(MoneroShareSubmission),
    /// The session ended; close the connection.
    Closed(CloseReason),
}

impl SessionEvents for MoneroPoolEvent {
    fn closed(reason: CloseReason) -> Self {
        MoneroPoolEvent::Closed(reason)
    }
}

impl From<MoneroPoolEvent> for SessionEvent<MoneroShareSubmission> {
    fn from(event: MoneroPoolEvent) -> Self {
        match event {
            MoneroPoolEvent::Login { token, login } => SessionEvent::Authorize {
                token,
                username: login.login,
                password: login.pass,
            },
            MoneroPoolEvent::Share(share) => SessionEvent::Share(share),
            MoneroPoolEvent::Closed(reason) => SessionEvent::Closed(reason),
        }
    }
}

/// A login the caller accepted through [`PoolProtocol::authorize_result`], answered with the
/// first job [`PoolProtocol::send_job`] brings.
#[derive(Debug)]
struct AcceptedLogin {
    id: Option<RequestId>,
    worker: String,
}

/// One xmrig-style miner connection, pool side.
#[derive(Debug)]
pub struct MoneroPoolSession {
    config: Arc<MoneroPoolConfig>,
    session_id: String,
    core: SessionCore<MoneroPoolEvent>,
    worker: Option<String>,
    accepted_login: Option<AcceptedLogin>,
    jobs: VecDeque<MoneroJob>,
    stale: VecDeque<String>,
    seen: SeenShares<(String, u32)>,
}

/// How many retired job ids are remembered to tell "stale" from "unknown".
const MAX_STALE_IDS: usize = 64;

impl MoneroPoolSession {
    /// A new connection at `now`; `session_id` is the id the login result hands the miner
    /// (the caller picks it, e.g. from a counter or its random source).
    pub fn new(config: Arc<MoneroPoolConfig>, session_id: impl Into<String>, now: Instant) -> Self {
        let core = SessionCore::new(
            now,
            config.login_timeout,
            config.idle_timeout,
            config.ban_threshold,
        );
        let seen = SeenShares::new(config.max_seen_shares);
        MoneroPoolSession {
            config,
            session_id: session_id.into(),
            core,
            worker: None,
            accepted_login: None,
            jobs: VecDeque::new(),
            stale: VecDeque::new(),
            seen,
        }
    }

    /// The next line to write to the miner.
    pub fn poll_output(&mut self) -> Option<String> {
        self.core.poll_output()
    }

    /// The next decision needed from the caller.
    pub fn poll_event(&mut self) -> Option<MoneroPoolEvent> {
        self.core.poll_event()
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The accepted login, once the caller has accepted it.
    pub fn worker(&self) -> Option<&str> {
        self.worker.as_deref()
    }

    /// Whether the login was accepted.
    pub fn is_logged_in(&self) -> bool {
        self.worker.is_some()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Shares accepted and rejected so far.
    pub fn share_counts(&self) -> (u64, u64) {
        self.core.share_counts()
    }

    /// The instant by which [`handle_timeout`](MoneroPoolSession::handle_timeout) must be
    /// called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout(self.is_logged_in())
    }

    /// Checks the timeouts at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let logged_in = self.is_logged_in();
        self.core.handle_timeout(now, logged_in);
    }

    /// Ends the session.
    ///
    /// Logins and shares still awaiting a verdict are forgotten: answering them afterwards
    /// writes nothing.
    pub fn close(&mut self, reason: CloseReason) {
        self.core.close(reason);
    }

    fn reply(&mut self, id: Option<RequestId>, result: Result<Value, MoneroError>) {
        if id.is_some() {
            self.core.send(MoneroResponse { id, result }.to_line());
        }
    }

    /// Whether a login is accepted, or on its way to be.
    fn logging_in(&self) -> bool {
        self.worker.is_some() || self.accepted_login.is_some() || self.core.authorize_pending()
    }

    /// Handles one line from the miner (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        let greeted = self.logging_in();
        let max_line = Some(LineBuffer::DEFAULT_MAX_LINE);
        let Some(request) = self.core.receive(line, now, greeted, max_line) else {
            return;
        };
        let id = request.id.clone();
        match MoneroClientRequest::from_request(&request) {
            Ok(msg) => self.dispatch(id, msg),
            Err(e) => {
                if request.method == "submit" {
                    self.core.count_rejected();
                }
                self.reply(id, Err(MoneroError::new(e.to_string())));
                self.core.penalize(PENALTY);
            }
        }
    }

    fn dispatch(&mut self, id: Option<RequestId>, msg: MoneroClientRequest) {
        match msg {
            MoneroClientRequest::Login(login) => {
                if self.logging_in() {
                    self.reply(id, Err(MoneroError::new("already logged in")));
                    return;
                }
                let token = self.core.await_authorize(id, login.login.clone());
                self.core.event(MoneroPoolEvent::Login { token, login });
            }
            MoneroClientRequest::Submit(s) => self.submit(id, s),
            MoneroClientRequest::Keepalived(_) => {
                if self.config.reply_keepalived {
                    self.reply(id, Ok(monero_status(MONERO_STATUS_KEEPALIVED)));
                }
            }
            MoneroClientRequest::Unknown { method, .. } => {
                let message = format!("unsupported method {}", cut(&method));
                self.reply(id, Err(MoneroError::new(message)));
            }
        }
    }

    /// Answers a login: `Ok(job)` accepts it and sends the result with that first job;
    /// `Err(reason)` refuses it (e.g. "invalid payout address").
    pub fn login_result(&mut self, token: MoneroLoginToken, result: Result<MoneroJob, String>) {
        let Some((id, worker)) = self.core.take_authorize(token) else {
            return;
        };
        match result {
            Ok(job) => self.logged_in(id, worker, job),
            Err(reason) => {
                self.reply(id, Err(MoneroError::new(reason)));
                self.core.penalize(PENALTY);
            }
        }
    }

    /// Accepts the login of `worker` requested with `id`, with `job` as the first job.
    fn logged_in(&mut self, id: Option<RequestId>, worker: String, job: MoneroJob) {
        self.worker = Some(worker);
        let login = MoneroLoginResult {
            id: self.session_id.clone(),
            job: Some(job.clone()),
            status: MONERO_STATUS_OK.to_owned(),
            extensions: self.config.extensions.clone(),
        };
        self.register_job(job);
        self.reply(id, Ok(login.to_json()));
    }

    /// Sends a new job (after the login was accepted). A job at a greater height retires the
    /// jobs of lower heights at once; otherwise the last `max_jobs` stay valid.
    pub fn send_job(&mut self, job: &MoneroJob) {
        if self.is_closed() || !self.is_logged_in() {
            return;
        }
        self.register_job(job.clone());
        self.core
            .send(MoneroServerRequest::Job(job.clone()).to_line());
    }

    fn retire(&mut self, job_id: String) {
        self.stale.push_back(job_id);
        while self.stale.len() > MAX_STALE_IDS {
            self.stale.pop_front();
        }
    }

    fn register_job(&mut self, job: MoneroJob) {
        let mut keep = VecDeque::with_capacity(self.jobs.len() + 1);
        for old in std::mem::take(&mut self.jobs) {
            let older_tip = matches!((old.height, job.height), (Some(a), Some(b)) if a < b);
            if old.job_id == job.job_id {
                continue;
            }
            if older_tip {
                self.retire(old.job_id);
            } else {
                keep.push_back(old);
            }
        }
        self.jobs = keep;
        self.stale.retain(|id| *id != job.job_id);
        self.jobs.push_back(job);
        while self.jobs.len() > self.config.max_jobs.max(1) {
            if let Some(old) = self.jobs.pop_front() {
                self.retire(old.job_id);
            }
        }
    }

    fn submit(&mut self, id: Option<RequestId>, s: MoneroSubmit) {
        let reject = |this: &mut Self, id: Option<RequestId>, message: &str, points: i32| {
            this.reply(id, Err(MoneroError::new(message)));
            this.core.reject(points);
        };
        let Some(worker) = self.worker.clone() else {
            return reject(self, id, "Unauthenticated", PENALTY);
        };
        if s.id != self.session_id {
            return reject(self, id, "Unauthenticated", PENALTY);
        }
        let Some(job) = self.jobs.iter().find(|j| j.job_id == s.job_id).cloned() else {
            // Stale shares happen to honest miners around block changes: a light penalty.
            if self.stale.contains(&s.job_id) {
                return reject(self, id, "Stale share", 1);
            }
            return reject(self, id, "Invalid job id", PENALTY);
        };
        if !self.seen.insert((s.job_id.clone(), s.nonce)) {
            return reject(self, id, "Duplicate share", PENALTY);
        }
        let Some(blob) = job.blob_with_nonce(s.nonce) else {
            return reject(self, id, "Invalid job", 0);
        };
        if !job.target.is_met_by(&s.result) {
            return reject(self, id, "Low difficulty share", PENALTY);
        }
        let token = self.core.await_share(id);
        self.core
            .event(MoneroPoolEvent::Share(MoneroShareSubmission {
                token,
                worker,
                job_id: s.job_id,
                nonce: s.nonce,
                blob,
                result: s.result,
                difficulty: job.difficulty(),
                target: job.target,
                algo: s.algo.or(job.algo),
                seed_hash: job.seed_hash,
                height: job.height,
            }));
    }

    /// Answers a share. Call it only once the share is durably recorded when accepting.
    pub fn share_result(&mut self, token: MoneroShareToken, verdict: ShareVerdict) {
        let Some(id) = self.core.take_share(token) else {
            return;
        };
        let answer = match &verdict {
            ShareVerdict::Accepted => Ok(monero_status(MONERO_STATUS_OK)),
            ShareVerdict::LowDifficulty => Err(MoneroError::new("Low difficulty share")),
            ShareVerdict::Stale => Err(MoneroError::new("Stale share")),
            ShareVerdict::Invalid(reason) | ShareVerdict::PoolError(reason) => {
                Err(MoneroError::new(reason.clone()))
            }
        };
        self.reply(id, answer);
        self.core.judge(&verdict);
    }
}

impl SubmittedShare for MoneroShareSubmission {
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

/// The Monero session as any dialect: a login is an authorization, and its answer waits for
/// a job.
///
/// The login result carries the miner's first job, which the caller of
/// [`authorize_result`](PoolProtocol::authorize_result) does not pass: an accepted login is
/// answered by the next [`send_job`](PoolProtocol::send_job) (a server sends the current job
/// at once), and until then the login clock keeps running. Each session opened here holds a
/// value of the allocator as its session id, in hex, so ids are unique among a server's
/// sessions; with every value taken, the session closes at once as
/// [`CloseReason::PoolFull`].
impl PoolProtocol for MoneroPoolSession {
    type Config = MoneroPoolConfig;
    type Job = MoneroJob;
    type Share = MoneroShareSubmission;
    type OpenError = Infallible;
    type Output = String;

    fn open(
        config: Arc<MoneroPoolConfig>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, Infallible> {
        Ok(match allocator.allocate(None) {
            Some(value) => {
                let mut session = MoneroPoolSession::new(config, encode_hex(value.as_bytes()), now);
                session.core.set_extranonce(value);
                session
            }
            None => {
                let mut session = MoneroPoolSession::new(config, String::new(), now);
                session.close(CloseReason::PoolFull);
                session
            }
        })
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        MoneroPoolSession::handle_line(self, line, now);
    }

    fn poll_output(&mut self) -> Option<String> {
        MoneroPoolSession::poll_output(self)
    }

    /// The session's [`MoneroPoolEvent`], in the common shape: a login's `login` and `pass`
    /// become the username and password (its agent, rig id and algorithms are left out).
    fn poll_event(&mut self) -> Option<SessionEvent<MoneroShareSubmission>> {
        MoneroPoolSession::poll_event(self).map(SessionEvent::from)
    }

    /// `Ok` accepts the login, to be answered with the next job; `Err` refuses it as
    /// [`MoneroPoolSession::login_result`] does.
    fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if let Some((id, worker)) = self.core.take_authorize(token) {
                    self.accepted_login = Some(AcceptedLogin { id, worker });
                }
            }
            Err(reason) => self.login_result(token, Err(reason)),
        }
    }

    fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict) {
        MoneroPoolSession::share_result(self, token, verdict);
    }

    /// Once the login is accepted, whether or not its answer has gone out.
    fn wants_jobs(&self) -> bool {
        !self.is_closed() && (self.worker.is_some() || self.accepted_login.is_some())
    }

    fn worker(&self) -> Option<&str> {
        self.worker
            .as_deref()
            .or(self.accepted_login.as_ref().map(|l| l.worker.as_str()))
    }

    /// Answers an accepted login with `job`, or sends `job` as a `job` notification.
    fn send_job(&mut self, job: &MoneroJob, _now: Instant) {
        if self.is_closed() {
            return;
        }
        match self.accepted_login.take() {
            Some(AcceptedLogin { id, worker }) => self.logged_in(id, worker, job.clone()),
            None => MoneroPoolSession::send_job(self, job),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        MoneroPoolSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        MoneroPoolSession::handle_timeout(self, now);
    }

    fn close(&mut self, reason: CloseReason) {
        MoneroPoolSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        MoneroPoolSession::is_closed(self)
    }
}
