//! The miner side of the Monero dialect, as a sans-IO state machine.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::message::{
    MoneroClientRequest, MoneroError, MoneroJob, MoneroLogin, MoneroLoginResult, MoneroMessage,
    MoneroResponse, MoneroServerRequest, MoneroSubmit,
};
use crate::session::{MinerProtocol, PoolLink};
use crate::v1::frame::LineBuffer;
use crate::v1::message::{ParamsError, ParseError, RequestId};
use crate::v1::miner::{our_id, MinerCloseReason, MAX_PENDING, VERSION_STRING};

/// Miner-side settings for the Monero dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroMinerConfig {
    /// The wallet address (with any worker suffix the pool understands).
    pub login: String,
    /// The password.
    pub pass: String,
    /// The user agent.
    pub agent: String,
    /// The rig id.
    pub rigid: Option<String>,
    /// The algorithms offered, in order of preference.
    pub algos: Vec<String>,
    /// Send `keepalived` after this long without sending anything (xmrig's `--keepalive`
    /// uses 60 s).
    pub keepalive: Option<Duration>,
    /// How long a request may wait for its answer.
    pub response_timeout: Duration,
    /// How long the pool may stay silent.
    pub idle_timeout: Duration,
}

impl Default for MoneroMinerConfig {
    fn default() -> Self {
        MoneroMinerConfig {
            login: String::new(),
            pass: "x".to_owned(),
            agent: VERSION_STRING.to_owned(),
            rigid: None,
            algos: vec!["rx/0".to_owned()],
            keepalive: None,
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// A share to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneroMinerShare {
    /// The job.
    pub job_id: String,
    /// The nonce written at [`MONERO_NONCE_OFFSET`](crate::MONERO_NONCE_OFFSET).
    pub nonce: u32,
    /// The hash of the blob with that nonce.
    pub result: [u8; 32],
    /// The algorithm, when the pool takes it.
    pub algo: Option<String>,
}

/// Something wrong with what a Monero pool sent; the session carries on unless it also
/// reports [`MoneroMinerEvent::Closed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneroMinerError {
    /// The line is not JSON-RPC.
    #[error("pool line is not stratum: {0}")]
    Parse(ParseError),
    /// The line is longer than any real line.
    #[error("pool line of {len} bytes exceeds the {limit}-byte limit")]
    LineTooLong {
        /// The line's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A job that cannot be mined.
    #[error("pool sent {0}")]
    BadJob(ParamsError),
    /// A login result that cannot be used.
    #[error("pool sent {0}")]
    BadLoginResult(ParamsError),
}

/// What a [`MoneroMinerSession`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoneroMinerEvent {
    /// The pool accepted the login.
    LoggedIn {
        /// The session id quoted in submits.
        session_id: String,
        /// The extensions the pool speaks.
        extensions: Vec<String>,
    },
    /// The pool refused the login; the session is closed.
    LoginFailed(MoneroError),
    /// A job to mine.
    NewJob {
        /// The job.
        job: MoneroJob,
        /// Its share difficulty, decoded from the target.
        difficulty: u64,
    },
    /// The fate of a share from [`MoneroMinerSession::submit`].
    ShareResult {
        /// The number `submit` returned.
        sequence: u64,
        /// Whether the pool accepted it.
        accepted: bool,
        /// Why not.
        error: Option<MoneroError>,
    },
    /// The pool sent something unusable.
    Error(MoneroMinerError),
    /// The session ended; close the connection.
    Closed(MinerCloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoneroPending {
    Login,
    Submit { sequence: u64 },
    Keepalive,
}

/// How many recent job ids the miner remembers for checking submits.
const MONERO_RECENT_JOBS: usize = 8;

/// One pool connection in the Monero dialect, miner side.
#[derive(Debug)]
pub struct MoneroMinerSession {
    config: MoneroMinerConfig,
    started: bool,
    next_id: u64,
    next_sequence: u64,
    pending: HashMap<u64, (MoneroPending, Option<Instant>)>,
    session_id: Option<String>,
    extensions: Vec<String>,
    jobs: VecDeque<String>,
    last_seen: Instant,
    last_sent: Instant,
    output: VecDeque<String>,
    events: VecDeque<MoneroMinerEvent>,
    closed: Option<MinerCloseReason>,
}

impl MoneroMinerSession {
    /// A new connection at `now`; call [`start`](MoneroMinerSession::start) to log in.
    pub fn new(config: MoneroMinerConfig, now: Instant) -> Self {
        MoneroMinerSession {
            config,
            started: false,
            next_id: 0,
            next_sequence: 0,
            pending: HashMap::new(),
            session_id: None,
            extensions: Vec::new(),
            jobs: VecDeque::new(),
            last_seen: now,
            last_sent: now,
            output: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// Queues `login`. Only the first call counts.
    pub fn start(&mut self) {
        if self.started || self.closed.is_some() {
            return;
        }
        self.started = true;
        let login = MoneroLogin {
            login: self.config.login.clone(),
            pass: Some(self.config.pass.clone()),
            agent: Some(self.config.agent.clone()),
            rigid: self.config.rigid.clone(),
            algo: self.config.algos.clone(),
        };
        self.request(MoneroClientRequest::Login(login), MoneroPending::Login);
    }

    /// The next line to write to the pool.
    pub fn poll_output(&mut self) -> Option<String> {
        self.output.pop_front()
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<MoneroMinerEvent> {
        self.events.pop_front()
    }

    /// The session id, once logged in.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The extensions the pool announced.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Ends the session.
    pub fn close(&mut self, reason: MinerCloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.events.push_back(MoneroMinerEvent::Closed(reason));
        }
    }

    fn request(&mut self, request: MoneroClientRequest, kind: MoneroPending) {
        self.next_id += 1;
        let id = self.next_id;
        self.output
            .push_back(request.to_line(Some(RequestId::number(id))));
        self.pending.insert(id, (kind, None));
    }

    fn stamp(&mut self, now: Instant) {
        let mut sent = false;
        for (_, at) in self.pending.values_mut() {
            if at.is_none() {
                *at = Some(now);
                sent = true;
            }
        }
        if sent {
            self.last_sent = now;
        }
    }

    /// The instant by which [`handle_timeout`](MoneroMinerSession::handle_timeout) must be
    /// called next (at once when requests were queued since the time was last passed in).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let mut deadline = self.last_seen + self.config.idle_timeout;
        for (_, at) in self.pending.values() {
            deadline =
                deadline.min(at.map_or(self.last_seen, |s| s + self.config.response_timeout));
        }
        if let (Some(every), Some(_)) = (self.config.keepalive, &self.session_id) {
            deadline = deadline.min(self.last_sent + every);
        }
        Some(deadline)
    }

    /// Checks the timeouts at `now`: unanswered shares fail, an unanswered login or a silent
    /// pool ends the session, and `keepalived` goes out when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.stamp(now);
        let mut expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| at.is_some_and(|s| now >= s + self.config.response_timeout))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        for id in expired {
            match self.pending.remove(&id).map(|(kind, _)| kind) {
                Some(MoneroPending::Submit { sequence }) => {
                    self.events.push_back(MoneroMinerEvent::ShareResult {
                        sequence,
                        accepted: false,
                        error: Some(MoneroError {
                            code: None,
                            message: "no answer from the pool".to_owned(),
                        }),
                    });
                }
                Some(MoneroPending::Login) => {
                    self.close(MinerCloseReason::Timeout);
                    return;
                }
                // p2pool never answers keepalived.
                Some(MoneroPending::Keepalive) | None => {}
            }
        }
        if now >= self.last_seen + self.config.idle_timeout {
            self.close(MinerCloseReason::Idle);
            return;
        }
        if let (Some(every), Some(sid)) = (self.config.keepalive, self.session_id.clone()) {
            if now >= self.last_sent + every {
                self.request(
                    MoneroClientRequest::Keepalived(Some(sid)),
                    MoneroPending::Keepalive,
                );
                self.stamp(now);
            }
        }
    }

    /// Queues `submit` and returns the sequence number its
    /// [`MoneroMinerEvent::ShareResult`] will carry. A share that cannot be sent (not logged
    /// in, a job this session never saw, too many unanswered requests) fails at once.
    pub fn submit(&mut self, share: MoneroMinerShare) -> u64 {
        self.next_sequence += 1;
        let sequence = self.next_sequence;
        let problem = if self.closed.is_some() {
            Some("session closed".to_owned())
        } else if self.session_id.is_none() {
            Some("not logged in".to_owned())
        } else if !self.jobs.contains(&share.job_id) {
            Some(format!("job {} is unknown", share.job_id))
        } else if self.pending.len() >= MAX_PENDING {
            Some(format!("{MAX_PENDING} requests await an answer"))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.events.push_back(MoneroMinerEvent::ShareResult {
                sequence,
                accepted: false,
                error: Some(MoneroError {
                    code: None,
                    message: format!("not sent: {problem}"),
                }),
            });
            return sequence;
        }
        let submit = MoneroSubmit {
            id: self.session_id.clone().unwrap_or_default(),
            job_id: share.job_id,
            nonce: share.nonce,
            result: share.result,
            algo: share.algo,
        };
        self.request(
            MoneroClientRequest::Submit(submit),
            MoneroPending::Submit { sequence },
        );
        sequence
    }

    /// Handles one line from the pool (without its newline).
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.stamp(now);
        self.last_seen = now;
        if line.len() > LineBuffer::DEFAULT_MAX_LINE {
            self.events
                .push_back(MoneroMinerEvent::Error(MoneroMinerError::LineTooLong {
                    len: line.len(),
                    limit: LineBuffer::DEFAULT_MAX_LINE,
                }));
            return;
        }
        match MoneroMessage::parse(line) {
            Ok(MoneroMessage::Response(r)) => self.handle_response(r),
            Ok(MoneroMessage::Request(r)) => match MoneroServerRequest::from_request(&r) {
                Ok(MoneroServerRequest::Job(job)) => {
                    if self.session_id.is_some() {
                        self.new_job(job);
                    }
                }
                Ok(_) => {}
                Err(e) => self
                    .events
                    .push_back(MoneroMinerEvent::Error(MoneroMinerError::BadJob(e))),
            },
            Err(e) => self
                .events
                .push_back(MoneroMinerEvent::Error(MoneroMinerError::Parse(e))),
        }
    }

    fn new_job(&mut self, job: MoneroJob) {
        self.jobs.retain(|id| *id != job.job_id);
        self.jobs.push_back(job.job_id.clone());
        while self.jobs.len() > MONERO_RECENT_JOBS {
            self.jobs.pop_front();
        }
        let difficulty = job.difficulty();
        self.events
            .push_back(MoneroMinerEvent::NewJob { job, difficulty });
    }

    fn handle_response(&mut self, response: MoneroResponse) {
        let Some(id) = response.id.as_ref().and_then(our_id) else {
            return;
        };
        let Some((kind, _)) = self.pending.remove(&id) else {
            return;
        };
        match kind {
            MoneroPending::Login => match response.result {
                Err(e) => {
                    self.events.push_back(MoneroMinerEvent::LoginFailed(e));
                    self.close(MinerCloseReason::Rejected);
                }
                Ok(v) => match MoneroLoginResult::from_json(&v) {
                    Ok(result) => {
                        self.session_id = Some(result.id.clone());
                        self.extensions.clone_from(&result.extensions);
                        self.events.push_back(MoneroMinerEvent::LoggedIn {
                            session_id: result.id,
                            extensions: result.extensions,
                        });
                        if let Some(job) = result.job {
                            self.new_job(job);
                        }
                    }
                    Err(e) => {
                        self.events.push_back(MoneroMinerEvent::Error(
                            MoneroMinerError::BadLoginResult(e),
                        ));
                        self.close(MinerCloseReason::Protocol);
                    }
                },
            },
            MoneroPending::Submit { sequence } => {
                // xmrig counts any answer without an error as accepted.
                let error = response.result.err();
                self.events.push_back(MoneroMinerEvent::ShareResult {
                    sequence,
                    accepted: error.is_none(),
                    error,
                });
            }
            MoneroPending::Keepalive => {}
        }
    }
}

/// The Monero dialect has no session resumption and no redirects: the [`PoolLink`] is
/// ignored, and the timeouts and keep-alive come from the [`MoneroMinerConfig`].
impl MinerProtocol for MoneroMinerSession {
    type Config = MoneroMinerConfig;
    type Event = MoneroMinerEvent;
    type Share = MoneroMinerShare;
    type Output = String;

    fn open(config: MoneroMinerConfig, _link: &PoolLink, now: Instant) -> Self {
        let mut session = MoneroMinerSession::new(config, now);
        session.start();
        session
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        MoneroMinerSession::handle_line(self, line, now);
    }

    fn poll_output(&mut self) -> Option<String> {
        MoneroMinerSession::poll_output(self)
    }

    fn poll_event(&mut self) -> Option<MoneroMinerEvent> {
        MoneroMinerSession::poll_event(self)
    }

    fn submit(&mut self, share: MoneroMinerShare) -> u64 {
        MoneroMinerSession::submit(self, share)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        MoneroMinerSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        MoneroMinerSession::handle_timeout(self, now);
    }

    fn close(&mut self, reason: MinerCloseReason) {
        MoneroMinerSession::close(self, reason);
    }

    fn is_closed(&self) -> bool {
        MoneroMinerSession::is_closed(self)
    }
}
