//! A Monero-dialect (xmrig) pool session (`otedama_stratum::MoneroPoolSession`) fed an
//! arbitrary byte stream, checked against a written-out model of what it must do.
//!
//! Input: the first byte picks the set-up (log in first or not, answer `keepalived` or not, how
//! many jobs stay valid), the second seeds the verdicts the "pool" gives (logins accepted
//! through the inherent `login_result` or through `PoolProtocol::authorize_result` plus a later
//! `send_job`, or refused; shares accepted, low, stale, invalid, pool errors; some verdicts
//! held back and given later, out of order); the rest is the miner's byte stream, cut into
//! reads of 1 to 64 bytes and framed by a `LineBuffer`.
//!
//! Checks:
//! - nothing panics;
//! - every line written is one well-formed Monero message (`"jsonrpc":"2.0"`) ending in `\n`;
//! - a line from the miner gets at most one line back, straight away, and it is a response
//!   carrying that request's id byte for byte (a notification gets none); a login or share
//!   answered later is answered with the id of the request that raised it;
//! - a login result carries the session id (the allocator's value in hex) and the job it was
//!   accepted with; a `job` line is the job announced;
//! - a submit raises a share exactly when the model says so (logged in, the session's id, a
//!   live job, a nonce not seen on that job, a result under the job's target), and the share
//!   carries the job's blob with the nonce at offset 39, the job's target, difficulty, seed
//!   hash, height and algorithm; every refusal is an error response;
//! - the share counters and the ban score follow the verdicts exactly: the session closes as
//!   `Banned` exactly when the score reaches the threshold, as `NotStratum` exactly for a
//!   non-JSON-RPC line before any login, and on the login and idle clocks exactly when they run
//!   out;
//! - once closed it writes and raises nothing more, verdicts and jobs are ignored, and its
//!   session id is released to the allocator; a second session opened while the first is live
//!   gets a different id.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use otedama_core::{decode_hex, MoneroTarget};
use otedama_stratum::{
    AuthorizeToken, CloseReason, ExtranonceAllocator, Message, MoneroClientRequest, MoneroJob,
    MoneroLoginResult, MoneroMessage, MoneroPoolConfig, MoneroPoolEvent, MoneroPoolSession,
    MoneroServerRequest, PoolProtocol, RequestId, ShareToken, ShareVerdict, MONERO_NONCE_OFFSET,
    MONERO_STATUS_KEEPALIVED, MONERO_STATUS_OK,
};

/// The blob and seed hash of the job in the xmrig capture (`xmrig-rx0.txt`).
const BLOB: &str = "1010e2bd93d806418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3000000002283a67870bd298fffd52723bcfb2da2008d6f0fbc679238021b2114d8b9f25f01";
const SEED_HASH: &str = "418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3";

/// The ban threshold configured, and the penalty the session charges for a bad line or share.
const BAN_THRESHOLD: i32 = -30;
const PENALTY: i32 = 5;
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Fewer jobs than the 64 retired ids the session remembers (one more may answer a login), so
/// that a submit on any job it was given and no longer holds is "stale", never "invalid".
const MAX_JOBS_SENT: u64 = 60;

fn job(id: &str, target: MoneroTarget, height: u64, tweak: u8) -> MoneroJob {
    let mut blob = decode_hex(BLOB).expect("blob");
    blob[MONERO_NONCE_OFFSET + 4] ^= tweak;
    let seed: [u8; 32] = decode_hex(SEED_HASH).expect("seed").try_into().expect("32");
    MoneroJob {
        blob,
        job_id: id.to_owned(),
        target,
        algo: Some("rx/0".to_owned()),
        height: Some(height),
        seed_hash: Some(seed),
    }
}

/// The capture's job: `job1`, target `37894100` (difficulty 1000), height 1.
fn first_job() -> MoneroJob {
    job("job1", MoneroTarget::Short(0x0041_8937), 1, 0)
}

/// Drains the output, checking each line.
fn output(session: &mut MoneroPoolSession) -> Vec<MoneroMessage> {
    std::iter::from_fn(|| session.poll_output())
        .map(|line| {
            let body = line.strip_suffix('\n').expect("newline-terminated");
            assert!(!body.contains('\n'), "one line: {line:?}");
            assert!(body.contains(r#""jsonrpc":"2.0""#), "{line:?}");
            // Both parsers read it: the dialect's, and plain Stratum framing.
            Message::parse(body.as_bytes())
                .unwrap_or_else(|e| panic!("session wrote a bad line: {e}: {line:?}"));
            MoneroMessage::parse(body.as_bytes())
                .unwrap_or_else(|e| panic!("session wrote a bad line: {e}: {line:?}"))
        })
        .collect()
}

/// The error message of a response, or `None` for a result.
fn error_of(message: &MoneroMessage) -> Option<&str> {
    match message {
        MoneroMessage::Response(r) => r.result.as_ref().err().map(|e| e.message.as_str()),
        MoneroMessage::Request(r) => panic!("a request where a response was due: {r:?}"),
    }
}

/// Checks that `out` is exactly the answer to a request with `id`: nothing when the id is
/// absent, one response carrying it otherwise. Returns that response.
fn answer_to(out: Vec<MoneroMessage>, id: &Option<RequestId>) -> Option<MoneroMessage> {
    match id {
        None => {
            assert!(out.is_empty(), "a notification was answered: {out:?}");
            None
        }
        Some(id) => {
            assert_eq!(out.len(), 1, "one answer to {id}: {out:?}");
            let message = out.into_iter().next().expect("one");
            let MoneroMessage::Response(r) = &message else {
                panic!("not a response: {message:?}")
            };
            assert_eq!(r.id.as_ref(), Some(id), "answer carries the request's id");
            Some(message)
        }
    }
}

/// What the session must be doing, written out independently of it.
struct Model {
    session_id: String,
    max_jobs: usize,
    reply_keepalived: bool,
    /// Logins raised and not yet answered.
    logins: HashMap<AuthorizeToken, (Option<RequestId>, String)>,
    /// A login accepted through the trait, waiting for the job that answers it.
    accepted_login: Option<(Option<RequestId>, String)>,
    worker: Option<String>,
    /// Shares raised and not yet answered, with their submit's id.
    shares: HashMap<ShareToken, Option<RequestId>>,
    /// Every job registered, oldest first (re-sending an id registers it again).
    registered: Vec<MoneroJob>,
    seen: HashSet<(String, u32)>,
    accepted: u64,
    rejected: u64,
    score: i32,
    closed: Option<CloseReason>,
    last_seen: Instant,
    created: Instant,
}

impl Model {
    fn logging_in(&self) -> bool {
        self.worker.is_some() || self.accepted_login.is_some() || !self.logins.is_empty()
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.logins.clear();
            self.shares.clear();
            self.accepted_login = None;
        }
    }

    fn penalize(&mut self, points: i32) {
        self.score -= points;
        if self.score <= BAN_THRESHOLD {
            self.close(CloseReason::Banned);
        }
    }

    /// The jobs shares may be submitted on: of the jobs no later job outheights (the session
    /// retires lower heights at once), the latest registration of each id, the newest
    /// `max_jobs` of them. Heights only grow in this harness, which makes this declarative
    /// form equal to the session's incremental one.
    fn live_jobs(&self) -> Vec<&MoneroJob> {
        let mut survivors: Vec<&MoneroJob> = Vec::new();
        for (i, j) in self.registered.iter().enumerate() {
            let later = &self.registered[i + 1..];
            let outheighted = later.iter().any(|l| l.height > j.height);
            let reregistered = later.iter().any(|l| l.job_id == j.job_id);
            if !outheighted && !reregistered {
                survivors.push(j);
            }
        }
        let skip = survivors.len().saturating_sub(self.max_jobs.max(1));
        survivors.split_off(skip)
    }

    fn ever_registered(&self, id: &str) -> bool {
        self.registered.iter().any(|j| j.job_id == id)
    }

    /// The session answered the login with `job`.
    fn logged_in(&mut self, worker: String, job: MoneroJob) {
        self.worker = Some(worker);
        self.registered.push(job);
    }

    fn judge(&mut self, verdict: &ShareVerdict) {
        if *verdict == ShareVerdict::Accepted {
            self.accepted += 1;
            self.score = (self.score + 1).min(10);
        } else {
            self.rejected += 1;
            self.penalize(match verdict {
                ShareVerdict::Accepted | ShareVerdict::PoolError(_) => 0,
                ShareVerdict::Stale => 1,
                _ => PENALTY,
            });
        }
    }
}

struct Harness {
    session: MoneroPoolSession,
    model: Model,
    seed: u8,
    /// Verdicts held back, to be given later.
    held_logins: Vec<AuthorizeToken>,
    held_shares: Vec<ShareToken>,
    jobs_sent: u64,
}

impl Harness {
    fn next_seed(&mut self) -> u8 {
        self.seed = self.seed.wrapping_mul(37).wrapping_add(11);
        self.seed
    }

    fn check_state(&self) {
        let s = &self.session;
        let m = &self.model;
        assert_eq!(s.is_closed(), m.closed.is_some(), "closed: {:?}", m.closed);
        assert_eq!(s.share_counts(), (m.accepted, m.rejected), "share counts");
        assert_eq!(s.is_logged_in(), m.worker.is_some());
        assert_eq!(s.worker(), m.worker.as_deref());
        assert_eq!(s.session_id(), m.session_id);
        assert_eq!(
            PoolProtocol::wants_jobs(s),
            m.closed.is_none() && (m.worker.is_some() || m.accepted_login.is_some())
        );
        if m.closed.is_some() {
            assert_eq!(s.poll_timeout(), None);
        }
    }

    /// Takes the events the session raised: at most `expected` (a login or share), then the
    /// close the model expects, if it closed now.
    fn events(&mut self, was_closed: bool) -> Vec<MoneroPoolEvent> {
        let mut events: Vec<MoneroPoolEvent> =
            std::iter::from_fn(|| self.session.poll_event()).collect();
        let closed_now = !was_closed && self.model.closed.is_some();
        if closed_now {
            let last = events.pop();
            assert_eq!(
                last,
                self.model.closed.clone().map(MoneroPoolEvent::Closed),
                "the close the model expects"
            );
        }
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, MoneroPoolEvent::Closed(_))),
            "unexpected close: {events:?}, model {:?}",
            self.model.closed
        );
        events
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        let was_closed = self.model.closed.is_some();
        self.session.handle_line(line, now);
        let out = output(&mut self.session);
        if was_closed {
            assert!(out.is_empty() && self.session.poll_event().is_none());
            return;
        }
        self.model.last_seen = now;
        let mut expected_event = None;
        match Message::parse(line) {
            Err(_) => {
                if self.model.logging_in() {
                    self.model.penalize(PENALTY);
                } else {
                    self.model.close(CloseReason::NotStratum);
                }
                assert!(out.is_empty(), "answered a non-request: {out:?}");
            }
            Ok(Message::Response(_)) => assert!(out.is_empty(), "answered a response"),
            Ok(Message::Request(request)) => {
                let id = request.id.clone();
                let answer = answer_to_request(self, &request, &mut expected_event);
                match answer {
                    Some(expect) => {
                        let message = answer_to(out, &id);
                        if let Some(message) = message {
                            match expect {
                                Expect::Error(allowed) => {
                                    let e = error_of(&message).expect("an error response");
                                    assert!(
                                        allowed.is_empty() || allowed.contains(&e),
                                        "error {e:?}, expected one of {allowed:?}"
                                    );
                                }
                                Expect::Status(status) => {
                                    let MoneroMessage::Response(r) = &message else {
                                        unreachable!()
                                    };
                                    let result = r.result.as_ref().expect("a result");
                                    assert_eq!(
                                        result.get("status").and_then(|v| v.as_str()),
                                        Some(status)
                                    );
                                }
                            }
                        }
                    }
                    None => assert!(out.is_empty(), "unexpected answer: {out:?}"),
                }
            }
        }
        let events = self.events(was_closed);
        match (expected_event, events.as_slice()) {
            (None, []) => {}
            (Some(Expected::Login(login)), [MoneroPoolEvent::Login { token, login: got }]) => {
                assert_eq!(got.login, login.1);
                self.model.logins.insert(*token, login);
            }
            (Some(Expected::Share(id, s, job)), [MoneroPoolEvent::Share(share)]) => {
                assert_eq!(Some(&share.worker), self.model.worker.as_ref());
                assert_eq!(share.job_id, s.job_id);
                assert_eq!(share.nonce, s.nonce);
                assert_eq!(share.result, s.result);
                assert_eq!(share.blob.len(), job.blob.len());
                assert_eq!(
                    share.blob[MONERO_NONCE_OFFSET..MONERO_NONCE_OFFSET + 4],
                    s.nonce.to_le_bytes(),
                    "the nonce is written little-endian at offset 39"
                );
                assert_eq!(
                    share.blob[..MONERO_NONCE_OFFSET],
                    job.blob[..MONERO_NONCE_OFFSET]
                );
                assert_eq!(
                    share.blob[MONERO_NONCE_OFFSET + 4..],
                    job.blob[MONERO_NONCE_OFFSET + 4..]
                );
                assert_eq!(share.target, job.target);
                assert_eq!(share.difficulty, job.target.difficulty());
                assert!(share.target.is_met_by(&share.result));
                assert_eq!(share.algo, s.algo.clone().or(job.algo.clone()));
                assert_eq!(share.seed_hash, job.seed_hash);
                assert_eq!(share.height, job.height);
                self.model.shares.insert(share.token, id);
            }
            (expected, got) => panic!(
                "events {got:?}, expected {}",
                match expected {
                    None => "none".to_owned(),
                    Some(Expected::Login(l)) => format!("a login of {:?}", l.1),
                    Some(Expected::Share(_, s, _)) => format!("a share {s:?}"),
                }
            ),
        }
        self.check_state();
    }

    /// Gives the verdicts on what the session raised, some held back for later.
    fn decide(&mut self, now: Instant) {
        let logins: Vec<AuthorizeToken> = self.model.logins.keys().copied().collect();
        for token in logins {
            if self.held_logins.contains(&token) {
                continue;
            }
            if self.next_seed() % 7 == 0 {
                self.held_logins.push(token);
                continue;
            }
            self.login_verdict(token, now);
        }
        let shares: Vec<ShareToken> = self.model.shares.keys().copied().collect();
        for token in shares {
            if self.held_shares.contains(&token) {
                continue;
            }
            if self.next_seed() % 7 == 0 {
                self.held_shares.push(token);
                continue;
            }
            self.share_verdict(token);
        }
    }

    /// Gives the verdicts held back, newest first.
    fn release(&mut self, now: Instant) {
        while let Some(token) = self.held_shares.pop() {
            self.share_verdict(token);
        }
        while let Some(token) = self.held_logins.pop() {
            self.login_verdict(token, now);
        }
    }

    fn login_verdict(&mut self, token: AuthorizeToken, now: Instant) {
        let was_closed = self.model.closed.is_some();
        let pending = self.model.logins.remove(&token);
        let was_pending = pending.is_some();
        let choice = self.next_seed() % 5;
        match choice {
            0 => {
                self.session
                    .login_result(token, Err("invalid payout address".into()));
                if let Some((id, _)) = &pending {
                    let out = output(&mut self.session);
                    if let Some(m) = answer_to(out, id) {
                        assert_eq!(error_of(&m), Some("invalid payout address"));
                    }
                    self.model.penalize(PENALTY);
                }
            }
            1 => {
                PoolProtocol::authorize_result(&mut self.session, token, Err("no".into()));
                if let Some((id, _)) = &pending {
                    let out = output(&mut self.session);
                    if let Some(m) = answer_to(out, id) {
                        assert_eq!(error_of(&m), Some("no"));
                    }
                    self.model.penalize(PENALTY);
                }
            }
            2 | 3 => {
                // Accepted through the trait: answered by the next job.
                PoolProtocol::authorize_result(&mut self.session, token, Ok(()));
                assert!(
                    output(&mut self.session).is_empty(),
                    "answered before a job"
                );
                if let Some(login) = pending {
                    self.model.accepted_login = Some(login);
                }
                if choice == 3 {
                    self.send_job(now);
                }
            }
            _ => {
                let job = first_job();
                self.session.login_result(token, Ok(job.clone()));
                if let Some((id, worker)) = pending {
                    let out = output(&mut self.session);
                    if let Some(m) = answer_to(out, &id) {
                        self.check_login_result(&m, &job);
                    }
                    self.model.logged_in(worker, job);
                }
            }
        }
        if !was_pending {
            assert!(
                output(&mut self.session).is_empty(),
                "a stale token was answered"
            );
        }
        self.events(was_closed);
        self.check_state();
    }

    fn check_login_result(&self, message: &MoneroMessage, job: &MoneroJob) {
        let MoneroMessage::Response(r) = message else {
            panic!("{message:?}")
        };
        let result = MoneroLoginResult::from_json(r.result.as_ref().expect("a login result"))
            .expect("a well-formed login result");
        assert_eq!(result.id, self.model.session_id);
        assert_eq!(result.status, MONERO_STATUS_OK);
        assert_eq!(result.job.as_ref(), Some(job));
    }

    fn share_verdict(&mut self, token: ShareToken) {
        let was_closed = self.model.closed.is_some();
        let pending = self.model.shares.remove(&token);
        let verdict = match self.next_seed() % 7 {
            0 => ShareVerdict::LowDifficulty,
            1 => ShareVerdict::Stale,
            2 => ShareVerdict::Invalid("bad".into()),
            3 => ShareVerdict::PoolError("not recorded".into()),
            _ => ShareVerdict::Accepted,
        };
        self.session.share_result(token, verdict.clone());
        let out = output(&mut self.session);
        match pending {
            None => assert!(out.is_empty(), "a stale token was answered"),
            Some(id) => {
                if let Some(m) = answer_to(out, &id) {
                    match &verdict {
                        ShareVerdict::Accepted => {
                            let MoneroMessage::Response(r) = &m else {
                                unreachable!()
                            };
                            let status = r.result.as_ref().expect("ok").get("status");
                            assert_eq!(status.and_then(|v| v.as_str()), Some(MONERO_STATUS_OK));
                        }
                        _ => assert!(error_of(&m).is_some()),
                    }
                }
                self.model.judge(&verdict);
            }
        }
        self.events(was_closed);
        self.check_state();
    }

    /// Announces a new job through the trait (which answers a login accepted through it).
    fn send_job(&mut self, now: Instant) {
        if self.jobs_sent >= MAX_JOBS_SENT && self.model.accepted_login.is_none() {
            return;
        }
        let was_closed = self.model.closed.is_some();
        self.jobs_sent += 1;
        let n = self.jobs_sent;
        let target = match n % 3 {
            0 => MoneroTarget::Short(u32::MAX),
            1 => MoneroTarget::Short(0x0041_8937),
            _ => MoneroTarget::from_difficulty(1 << 40).expect("target"),
        };
        // Heights grow every fourth job; the first job's height is 1.
        let job = job(&format!("j{n}"), target, 1 + n / 4, n as u8);
        PoolProtocol::send_job(&mut self.session, &job, now);
        let out = output(&mut self.session);
        if self.model.closed.is_some() {
            assert!(out.is_empty(), "a closed session sent a job");
        } else if let Some((id, worker)) = self.model.accepted_login.take() {
            if let Some(m) = answer_to(out, &id) {
                self.check_login_result(&m, &job);
            }
            self.model.logged_in(worker, job);
        } else if self.model.worker.is_some() {
            assert_eq!(out.len(), 1, "one job line: {out:?}");
            let MoneroMessage::Request(r) = &out[0] else {
                panic!("not a job: {out:?}")
            };
            assert!(r.id.is_none(), "a job is a notification");
            assert_eq!(
                MoneroServerRequest::from_request(r),
                Ok(MoneroServerRequest::Job(job.clone()))
            );
            self.model.registered.push(job);
        } else {
            assert!(out.is_empty(), "a job before the login");
        }
        self.events(was_closed);
        self.check_state();
    }

    fn handle_timeout(&mut self, now: Instant) {
        let was_closed = self.model.closed.is_some();
        self.session.handle_timeout(now);
        if self.model.closed.is_none() {
            let m = &mut self.model;
            if m.worker.is_none() && now >= m.created + LOGIN_TIMEOUT {
                m.close(CloseReason::SubscribeTimeout);
            } else if now >= m.last_seen + IDLE_TIMEOUT {
                m.close(CloseReason::Idle);
            }
        }
        assert!(output(&mut self.session).is_empty());
        self.events(was_closed);
        self.check_state();
    }
}

enum Expect {
    /// An error response with one of these messages (any when empty).
    Error(&'static [&'static str]),
    /// A result `{"status": ..}`.
    Status(&'static str),
}

enum Expected {
    Login((Option<RequestId>, String)),
    Share(Option<RequestId>, otedama_stratum::MoneroSubmit, MoneroJob),
}

/// What the model expects for a request: the answer written at once (`None`: nothing) and,
/// through `event`, the event raised. Updates the model.
fn answer_to_request(
    h: &mut Harness,
    request: &otedama_stratum::Request,
    event: &mut Option<Expected>,
) -> Option<Expect> {
    let m = &mut h.model;
    match MoneroClientRequest::from_request(request) {
        Err(_) => {
            if request.method == "submit" {
                m.rejected += 1;
            }
            m.penalize(PENALTY);
            Some(Expect::Error(&[]))
        }
        Ok(MoneroClientRequest::Login(login)) => {
            if m.logging_in() {
                Some(Expect::Error(&["already logged in"]))
            } else {
                *event = Some(Expected::Login((request.id.clone(), login.login)));
                None
            }
        }
        Ok(MoneroClientRequest::Keepalived(_)) => m
            .reply_keepalived
            .then_some(Expect::Status(MONERO_STATUS_KEEPALIVED)),
        Ok(MoneroClientRequest::Submit(s)) => {
            let reject = |m: &mut Model, messages: &'static [&'static str], points| {
                m.rejected += 1;
                m.penalize(points);
                Some(Expect::Error(messages))
            };
            if m.worker.is_none() || s.id != m.session_id {
                return reject(m, &["Unauthenticated"], PENALTY);
            }
            let live = m.live_jobs();
            let Some(job) = live
                .iter()
                .find(|j| j.job_id == s.job_id)
                .map(|j| (*j).clone())
            else {
                // Stale (a light penalty) for a job this session was given and retired (the
                // session remembers the last 64 retired ids; the harness sends fewer jobs).
                if m.ever_registered(&s.job_id) {
                    return reject(m, &["Stale share"], 1);
                }
                return reject(m, &["Invalid job id"], PENALTY);
            };
            if !m.seen.insert((s.job_id.clone(), s.nonce)) {
                return reject(m, &["Duplicate share"], PENALTY);
            }
            if !job.target.is_met_by(&s.result) {
                return reject(m, &["Low difficulty share"], PENALTY);
            }
            *event = Some(Expected::Share(request.id.clone(), s, job));
            None
        }
        Ok(_) => Some(Expect::Error(&[])),
    }
}

fuzz_target!(|data: &[u8]| {
    let (setup, rest) = data.split_first().unwrap_or((&0, &[]));
    let (seed, stream) = rest.split_first().unwrap_or((&0, &[]));
    let t0 = Instant::now();
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let max_jobs = usize::from(setup >> 4 & 3) + 1;
    let reply_keepalived = setup & 4 == 0;
    let config = Arc::new(MoneroPoolConfig {
        login_timeout: LOGIN_TIMEOUT,
        idle_timeout: IDLE_TIMEOUT,
        max_jobs,
        reply_keepalived,
        ban_threshold: BAN_THRESHOLD,
        ..MoneroPoolConfig::default()
    });
    let Ok(session) = MoneroPoolSession::open(Arc::clone(&config), Arc::clone(&allocator), t0);
    assert_eq!(allocator.live(), 1);
    let session_id = session.session_id().to_owned();
    assert_eq!(
        session_id, "00000000",
        "the allocator's first value, in hex"
    );
    let mut h = Harness {
        session,
        model: Model {
            session_id,
            max_jobs,
            reply_keepalived,
            logins: HashMap::new(),
            accepted_login: None,
            worker: None,
            shares: HashMap::new(),
            registered: Vec::new(),
            seen: HashSet::new(),
            accepted: 0,
            rejected: 0,
            score: 0,
            closed: None,
            last_seen: t0,
            created: t0,
        },
        seed: *seed,
        held_logins: Vec::new(),
        held_shares: Vec::new(),
        jobs_sent: 0,
    };
    h.check_state();

    if setup & 1 != 0 {
        // The xmrig capture's login, accepted with the capture's job.
        h.handle_line(
            br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC","pass":"x","agent":"XMRig/6.26.0","algo":["rx/0"]}}"#,
            t0,
        );
        let tokens: Vec<AuthorizeToken> = h.model.logins.keys().copied().collect();
        for token in tokens {
            let (id, worker) = h.model.logins.remove(&token).expect("pending");
            let job = first_job();
            h.session.login_result(token, Ok(job.clone()));
            let out = output(&mut h.session);
            let m = answer_to(out, &id).expect("answered");
            h.check_login_result(&m, &job);
            h.model.logged_in(worker, job);
        }
        h.check_state();
    }

    let mut lines = otedama_stratum::LineBuffer::new(2048);
    let mut rest = stream;
    let mut step = 0u64;
    while !rest.is_empty() && h.model.closed.is_none() {
        let size = (usize::from(rest[0]) % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        step += 1;
        let now = t0 + Duration::from_millis(250 * step);
        if lines.feed(chunk).is_err() {
            break;
        }
        while let Some(line) = lines.next_line() {
            h.handle_line(line, now);
            h.decide(now);
            if h.model.closed.is_some() {
                break;
            }
        }
        if step % 8 == 0 && h.model.closed.is_none() {
            h.send_job(now);
        }
        if step % 5 == 0 {
            h.release(now);
        }
        h.handle_timeout(now);
    }

    let end = t0 + Duration::from_millis(250 * (step + 1));
    if h.model.closed.is_none() {
        // A second session while this one is live gets another id.
        let Ok(other) = MoneroPoolSession::open(Arc::clone(&config), Arc::clone(&allocator), t0);
        assert_ne!(other.session_id(), h.model.session_id);
        assert_eq!(allocator.live(), 2);
        drop(other);
        h.session.close(CloseReason::Requested);
        h.model.close(CloseReason::Requested);
        h.events(false);
        h.check_state();
    }
    // Closed: nothing more, whatever comes.
    assert_eq!(allocator.live(), 0, "the session id is released");
    h.release(end);
    let was_closed = true;
    h.session.handle_line(
        br#"{"id":9,"jsonrpc":"2.0","method":"keepalived","params":{"id":"00000000"}}"#,
        end,
    );
    PoolProtocol::send_job(&mut h.session, &first_job(), end);
    h.session.send_job(&first_job());
    h.session.handle_timeout(end + IDLE_TIMEOUT);
    h.session.close(CloseReason::Idle);
    assert!(h.session.poll_output().is_none(), "wrote after the close");
    assert!(h.events(was_closed).is_empty(), "raised after the close");
    h.check_state();
});
