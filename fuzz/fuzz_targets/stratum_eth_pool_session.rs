//! An EthereumStratum/1.0.0 pool session (`otedama_stratum::EthPoolSession`) fed an arbitrary
//! byte stream, checked against a written-out model of what it must do.
//!
//! Input: the first byte picks the set-up (subscribed and authorized first or not, a job
//! announced or not, how many jobs stay valid), the second seeds the verdicts the "pool" gives
//! (authorizations accepted or refused, shares accepted, low, stale, invalid, pool errors, some
//! verdicts held back and given later, out of order) and the difficulty changes, some of them
//! invalid; the rest is the miner's byte stream, cut into reads of 1 to 64 bytes and framed by
//! a `LineBuffer`.
//!
//! Checks:
//! - nothing panics;
//! - every line written is one well-formed message ending in `\n`;
//! - a line from the miner gets at most one line back, straight away, and it is a response
//!   carrying that request's id byte for byte (a notification gets none); an authorization or
//!   share answered later is answered with the id of the request that raised it; refusals
//!   carry the right error code and `false` as result;
//! - a subscribe result carries the session's extranonce (3 bytes from the allocator), its hex
//!   as session id and the protocol name, the same on every later subscribe;
//! - a job goes out as `mining.notify` equal to the job, preceded by `mining.set_difficulty`
//!   exactly when the difficulty changed since the last one announced (invalid difficulties
//!   are ignored);
//! - a submit raises a share exactly when the model says so (subscribed, an authorized worker,
//!   a live job, a nonce completing the extranonce, not seen since the last clean job), and the
//!   share carries the full nonce (extranonce ‖ nonce, big-endian), the job's hashes, the
//!   difficulty it was announced with and that difficulty's boundary;
//! - the share counters and the ban score follow the verdicts exactly: the session closes as
//!   `Banned` exactly when the score reaches the threshold, as `NotStratum` exactly for a
//!   non-JSON-RPC line before subscribing, and on the subscribe and idle clocks exactly when
//!   they run out;
//! - once closed it writes and raises nothing more, verdicts and jobs are ignored, and its
//!   extranonce is back in the allocator; a second session subscribing while the first is live
//!   gets a different extranonce.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use otedama_core::encode_hex;
use otedama_stratum::{
    eth_share_target, AuthorizeToken, CloseReason, ErrorCode, EthClientRequest, EthConfigError,
    EthNotify, EthPoolConfig, EthPoolEvent, EthPoolSession, EthServerRequest, EthSubscribeResult,
    ExtranonceAllocator, LineBuffer, Message, PoolProtocol, Request, RequestId, Response,
    SessionEvent, ShareToken, ShareVerdict, ETH_STRATUM_PROTOCOL,
};

/// The ban threshold configured, and the penalty the session charges for a bad line or share.
const BAN_THRESHOLD: i32 = -30;
const PENALTY: i32 = 5;
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The allocator's prefix: extranonces are `e0 xx xx`.
const PREFIX: u8 = 0xe0;

/// The seed hash of the NiceHash specification's example.
const SEED: [u8; 32] = [
    0xa9, 0xb4, 0xd4, 0xf2, 0xe7, 0xf5, 0xc7, 0xac, 0x1a, 0x5d, 0x5b, 0x3e, 0x8d, 0x1e, 0xf0, 0xc0,
    0xce, 0x6e, 0x0b, 0x3e, 0x8d, 0x1a, 0x4c, 0x5f, 0x3b, 0x2e, 0x1d, 0x0c, 0x9b, 0x8a, 0x7f, 0x60,
];

fn job(id: &str, n: u64, clean: bool) -> EthNotify {
    let mut header_hash = [0x0d; 32];
    header_hash[..8].copy_from_slice(&n.to_be_bytes());
    EthNotify {
        job_id: id.to_owned(),
        seed_hash: SEED,
        header_hash,
        clean,
    }
}

/// Drains the output, checking each line.
fn output(session: &mut EthPoolSession) -> Vec<Message> {
    std::iter::from_fn(|| session.poll_output())
        .map(|line| {
            let body = line.strip_suffix('\n').expect("newline-terminated");
            assert!(!body.contains('\n'), "one line: {line:?}");
            Message::parse(body.as_bytes())
                .unwrap_or_else(|e| panic!("session wrote a bad line: {e}: {line:?}"))
        })
        .collect()
}

/// Checks that `out` is exactly the answer to a request with `id`: nothing when the id is
/// absent, one response carrying it otherwise.
fn answer_to(out: Vec<Message>, id: &Option<RequestId>) -> Option<Response> {
    match id {
        None => {
            assert!(out.is_empty(), "a notification was answered: {out:?}");
            None
        }
        Some(id) => {
            assert_eq!(out.len(), 1, "one answer to {id}: {out:?}");
            let Some(Message::Response(r)) = out.into_iter().next() else {
                panic!("not a response")
            };
            assert_eq!(r.id.as_ref(), Some(id), "answer carries the request's id");
            Some(r)
        }
    }
}

/// An error response with `code`: NiceHash answers `false` with the error.
fn check_error(r: &Response, code: ErrorCode) {
    let e = r
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("an error: {r:?}"));
    assert_eq!(e.code, code, "{r:?}");
    assert_eq!(r.result.as_bool(), Some(false), "{r:?}");
}

fn check_true(r: &Response) {
    assert!(r.error.is_none(), "{r:?}");
    assert_eq!(r.result.as_bool(), Some(true), "{r:?}");
}

/// The full nonce the NiceHash specification defines: extranonce ‖ miner nonce, or the nonce
/// alone when it is all eight bytes and starts with the extranonce; big-endian.
fn full_nonce(extranonce: &[u8], nonce: &[u8]) -> Option<u64> {
    let full: Vec<u8> = if nonce.len() == 8 {
        if !nonce.starts_with(extranonce) {
            return None;
        }
        nonce.to_vec()
    } else {
        extranonce.iter().chain(nonce).copied().collect()
    };
    Some(u64::from_be_bytes(full.try_into().ok()?))
}

struct LiveJob {
    notify: EthNotify,
    difficulty: f64,
}

/// What the session must be doing, written out independently of it.
struct Model {
    max_jobs: usize,
    extranonce: Option<Vec<u8>>,
    authorized: HashSet<String>,
    authorizations: HashMap<AuthorizeToken, (Option<RequestId>, String)>,
    shares: HashMap<ShareToken, Option<RequestId>>,
    difficulty: f64,
    announced: Option<f64>,
    /// Jobs announced since the last clean one (included), oldest first.
    jobs: Vec<LiveJob>,
    seen: HashSet<(String, u64)>,
    accepted: u64,
    rejected: u64,
    score: i32,
    closed: Option<CloseReason>,
    created: Instant,
    last_seen: Instant,
}

impl Model {
    fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.authorizations.clear();
            self.shares.clear();
        }
    }

    fn penalize(&mut self, points: i32) {
        self.score -= points;
        if self.score <= BAN_THRESHOLD {
            self.close(CloseReason::Banned);
        }
    }

    /// The newest `max_jobs` distinct job ids announced since the last clean job.
    fn live_job(&self, id: &str) -> Option<&LiveJob> {
        let mut ids: Vec<&str> = Vec::new();
        for j in self.jobs.iter().rev() {
            if !ids.contains(&j.notify.job_id.as_str()) {
                ids.push(&j.notify.job_id);
            }
        }
        ids.truncate(self.max_jobs.max(1));
        if !ids.contains(&id) {
            return None;
        }
        self.jobs.iter().rev().find(|j| j.notify.job_id == id)
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

enum Expected {
    Authorize(Option<RequestId>, String, Option<String>),
    Share(Option<RequestId>, otedama_stratum::EthSubmit, u64),
}

struct Harness {
    session: EthPoolSession,
    allocator: Arc<ExtranonceAllocator>,
    model: Model,
    seed: u8,
    held_authorizations: Vec<AuthorizeToken>,
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
        if m.closed.is_some() {
            assert_eq!(s.extranonce(), None, "the extranonce is released on close");
            assert_eq!(s.poll_timeout(), None);
        } else {
            assert_eq!(s.extranonce(), m.extranonce.as_deref());
            assert_eq!(s.is_subscribed(), m.extranonce.is_some());
            assert_eq!(
                PoolProtocol::wants_jobs(s),
                m.extranonce.is_some() && !m.authorized.is_empty()
            );
        }
        assert_eq!(s.difficulty(), m.difficulty);
        assert_eq!(self.allocator.live(), usize::from(s.extranonce().is_some()));
    }

    /// Takes the events the session raised, checking the close the model expects.
    fn events(&mut self, was_closed: bool) -> Vec<EthPoolEvent> {
        let mut events: Vec<EthPoolEvent> =
            std::iter::from_fn(|| self.session.poll_event()).collect();
        if !was_closed && self.model.closed.is_some() {
            assert_eq!(
                events.pop(),
                self.model.closed.clone().map(SessionEvent::Closed),
                "the close the model expects"
            );
        }
        assert!(
            !events.iter().any(|e| matches!(e, SessionEvent::Closed(_))),
            "unexpected close: {events:?}, model {:?}",
            self.model.closed
        );
        events
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        let was_closed = self.model.closed.is_some();
        if self.next_seed() % 2 == 0 {
            self.session.handle_line(line, now);
        } else {
            PoolProtocol::handle_line(&mut self.session, line, now);
        }
        let out = output(&mut self.session);
        if was_closed {
            assert!(out.is_empty() && self.session.poll_event().is_none());
            return;
        }
        self.model.last_seen = now;
        let mut expected = None;
        match Message::parse(line) {
            Err(_) => {
                if self.model.extranonce.is_some() {
                    self.model.penalize(PENALTY);
                } else {
                    self.model.close(CloseReason::NotStratum);
                }
                assert!(out.is_empty(), "answered a non-request: {out:?}");
            }
            Ok(Message::Response(_)) => assert!(out.is_empty(), "answered a response"),
            Ok(Message::Request(request)) => {
                expected = self.request(&request, out);
            }
        }
        let events = self.events(was_closed);
        match (expected, events.as_slice()) {
            (None, []) => {}
            (
                Some(Expected::Authorize(id, user, pass)),
                [SessionEvent::Authorize {
                    token,
                    username,
                    password,
                }],
            ) => {
                assert_eq!((username, password), (&user, &pass));
                self.model.authorizations.insert(*token, (id, user));
            }
            (Some(Expected::Share(id, s, nonce)), [SessionEvent::Share(share)]) => {
                let live = self.model.live_job(&s.job_id).expect("a live job");
                assert_eq!(share.worker, s.worker);
                assert_eq!(share.job_id, s.job_id);
                assert_eq!(share.nonce, nonce);
                let extranonce = self.model.extranonce.as_deref().expect("subscribed");
                assert!(share.nonce.to_be_bytes().starts_with(extranonce));
                assert_eq!(share.seed_hash, live.notify.seed_hash);
                assert_eq!(share.header_hash, live.notify.header_hash);
                assert_eq!(share.mix_hash, s.mix_hash);
                assert_eq!(share.difficulty, live.difficulty);
                assert_eq!(share.target, eth_share_target(live.difficulty));
                self.model.shares.insert(share.token, id);
            }
            (_, got) => panic!("unexpected events {got:?}"),
        }
        self.check_state();
    }

    /// Checks the answer to `request` against the model; returns the event expected.
    fn request(&mut self, request: &Request, out: Vec<Message>) -> Option<Expected> {
        let id = &request.id;
        let m = &mut self.model;
        let reject = |m: &mut Model, out: Vec<Message>, code: ErrorCode, points: i32| {
            m.rejected += 1;
            m.penalize(points);
            if let Some(r) = answer_to(out, id) {
                check_error(&r, code);
            }
            None
        };
        match EthClientRequest::from_request(request) {
            Err(_) => {
                m.penalize(PENALTY);
                if let Some(r) = answer_to(out, id) {
                    check_error(&r, ErrorCode::Other);
                }
                None
            }
            Ok(EthClientRequest::Subscribe(_)) => {
                let r = answer_to(out, id);
                let known = m.extranonce.clone();
                let extranonce = match known {
                    Some(e) => e,
                    None => {
                        let e = self.session.extranonce().expect("allocated").to_vec();
                        assert_eq!(e.len(), 3);
                        assert_eq!(e[0], PREFIX);
                        self.model.extranonce = Some(e.clone());
                        e
                    }
                };
                if let Some(r) = r {
                    assert!(r.error.is_none());
                    let result = EthSubscribeResult::from_json(&r.result).expect("a result");
                    assert_eq!(result.extranonce, extranonce);
                    assert_eq!(result.session_id, Some(encode_hex(&extranonce)));
                    assert_eq!(result.protocol.as_deref(), Some(ETH_STRATUM_PROTOCOL));
                }
                None
            }
            Ok(EthClientRequest::Authorize(a)) => {
                assert!(out.is_empty(), "answered before the verdict");
                Some(Expected::Authorize(id.clone(), a.username, a.password))
            }
            Ok(EthClientRequest::ExtranonceSubscribe) => {
                if let Some(r) = answer_to(out, id) {
                    check_true(&r);
                }
                None
            }
            Ok(EthClientRequest::Submit(s)) => {
                let Some(extranonce) = m.extranonce.clone() else {
                    return reject(m, out, ErrorCode::NotSubscribed, PENALTY);
                };
                if !m.authorized.contains(&s.worker) {
                    return reject(m, out, ErrorCode::Unauthorized, PENALTY);
                }
                if m.live_job(&s.job_id).is_none() {
                    return reject(m, out, ErrorCode::JobNotFound, 1);
                }
                let Some(nonce) = full_nonce(&extranonce, &s.nonce) else {
                    return reject(m, out, ErrorCode::Other, PENALTY);
                };
                if !m.seen.insert((s.job_id.clone(), nonce)) {
                    return reject(m, out, ErrorCode::Duplicate, PENALTY);
                }
                assert!(out.is_empty(), "answered before the verdict");
                Some(Expected::Share(id.clone(), s, nonce))
            }
            Ok(_) => {
                if let Some(r) = answer_to(out, id) {
                    check_error(&r, ErrorCode::Other);
                }
                None
            }
        }
    }

    /// Gives the verdicts on what the session raised, some held back for later.
    fn decide(&mut self) {
        let tokens: Vec<AuthorizeToken> = self.model.authorizations.keys().copied().collect();
        for token in tokens {
            if !self.held_authorizations.contains(&token) {
                if self.next_seed() % 7 == 0 {
                    self.held_authorizations.push(token);
                } else {
                    self.authorize_verdict(token);
                }
            }
        }
        let tokens: Vec<ShareToken> = self.model.shares.keys().copied().collect();
        for token in tokens {
            if !self.held_shares.contains(&token) {
                if self.next_seed() % 7 == 0 {
                    self.held_shares.push(token);
                } else {
                    self.share_verdict(token);
                }
            }
        }
    }

    fn release(&mut self) {
        while let Some(token) = self.held_shares.pop() {
            self.share_verdict(token);
        }
        while let Some(token) = self.held_authorizations.pop() {
            self.authorize_verdict(token);
        }
    }

    fn authorize_verdict(&mut self, token: AuthorizeToken) {
        let was_closed = self.model.closed.is_some();
        let pending = self.model.authorizations.remove(&token);
        let ok = self.next_seed() % 5 != 0;
        let result = if ok { Ok(()) } else { Err("no".to_owned()) };
        if self.seed % 2 == 0 {
            self.session.authorize_result(token, result);
        } else {
            PoolProtocol::authorize_result(&mut self.session, token, result);
        }
        let out = output(&mut self.session);
        match pending {
            None => assert!(out.is_empty(), "a stale token was answered"),
            Some((id, user)) => {
                let r = answer_to(out, &id);
                if ok {
                    self.model.authorized.insert(user);
                    if let Some(r) = r {
                        check_true(&r);
                    }
                } else {
                    self.model.penalize(PENALTY);
                    if let Some(r) = r {
                        check_error(&r, ErrorCode::Unauthorized);
                        assert_eq!(r.error.as_ref().map(|e| e.message.as_str()), Some("no"));
                    }
                }
            }
        }
        self.events(was_closed);
        self.check_state();
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
                if let Some(r) = answer_to(out, &id) {
                    match &verdict {
                        ShareVerdict::Accepted => check_true(&r),
                        ShareVerdict::LowDifficulty => check_error(&r, ErrorCode::LowDifficulty),
                        ShareVerdict::Stale => check_error(&r, ErrorCode::JobNotFound),
                        _ => check_error(&r, ErrorCode::Other),
                    }
                }
                self.model.judge(&verdict);
            }
        }
        self.events(was_closed);
        self.check_state();
    }

    /// Sometimes changes the difficulty (sometimes to a value that must be ignored), then
    /// announces a job.
    fn send_job(&mut self, now: Instant) {
        let was_closed = self.model.closed.is_some();
        let d = match self.next_seed() % 8 {
            0 => Some(0.5),
            1 => Some(2.0),
            2 => Some(1e-3),
            3 => Some(f64::NAN),
            4 => Some(-1.0),
            5 => Some(f64::INFINITY),
            6 => Some(0.0),
            _ => None,
        };
        if let Some(d) = d {
            self.session.set_difficulty(d);
            if d.is_finite() && d > 0.0 {
                self.model.difficulty = d;
            }
        }
        self.jobs_sent += 1;
        let n = self.jobs_sent;
        let notify = job(&format!("j{}", n % 12), n, n % 5 == 0);
        PoolProtocol::send_job(&mut self.session, &notify, now);
        let mut out = output(&mut self.session).into_iter();
        let m = &mut self.model;
        if m.closed.is_some() || m.extranonce.is_none() {
            assert!(
                out.next().is_none(),
                "a job before subscribing or after the close"
            );
        } else {
            if m.announced != Some(m.difficulty) {
                let Some(Message::Request(r)) = out.next() else {
                    panic!("set_difficulty first")
                };
                assert!(r.id.is_none());
                assert_eq!(
                    EthServerRequest::from_request(&r),
                    Ok(EthServerRequest::SetDifficulty(m.difficulty))
                );
                m.announced = Some(m.difficulty);
            }
            let Some(Message::Request(r)) = out.next() else {
                panic!("a notify")
            };
            assert!(r.id.is_none());
            assert_eq!(
                EthServerRequest::from_request(&r),
                Ok(EthServerRequest::Notify(notify.clone()))
            );
            assert!(out.next().is_none());
            if notify.clean {
                m.jobs.clear();
                m.seen.clear();
            }
            m.jobs.push(LiveJob {
                notify,
                difficulty: m.difficulty,
            });
        }
        self.events(was_closed);
        self.check_state();
    }

    fn handle_timeout(&mut self, now: Instant) {
        let was_closed = self.model.closed.is_some();
        self.session.handle_timeout(now);
        let m = &mut self.model;
        if m.closed.is_none() {
            if m.extranonce.is_none() && now >= m.created + SUBSCRIBE_TIMEOUT {
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

fuzz_target!(|data: &[u8]| {
    let (setup, rest) = data.split_first().unwrap_or((&0, &[]));
    let (seed, stream) = rest.split_first().unwrap_or((&0, &[]));
    let t0 = Instant::now();
    let max_jobs = usize::from(setup >> 4 & 3) + 1;
    let config = Arc::new(EthPoolConfig {
        subscribe_timeout: SUBSCRIBE_TIMEOUT,
        idle_timeout: IDLE_TIMEOUT,
        max_jobs,
        ban_threshold: BAN_THRESHOLD,
        ..EthPoolConfig::default()
    });
    // EthereumStratum allows at most 3 bytes of extranonce.
    let long = ExtranonceAllocator::new(&[PREFIX, 0], 2).expect("allocator");
    assert!(matches!(
        EthPoolSession::new(Arc::clone(&config), long, t0),
        Err(EthConfigError::ExtranonceTooLong { len: 4 })
    ));
    let allocator = ExtranonceAllocator::new(&[PREFIX], 2).expect("allocator");
    let session = EthPoolSession::new(Arc::clone(&config), Arc::clone(&allocator), t0)
        .expect("a 3-byte extranonce");
    let mut h = Harness {
        session,
        allocator: Arc::clone(&allocator),
        model: Model {
            max_jobs,
            extranonce: None,
            authorized: HashSet::new(),
            authorizations: HashMap::new(),
            shares: HashMap::new(),
            difficulty: 1.0,
            announced: None,
            jobs: Vec::new(),
            seen: HashSet::new(),
            accepted: 0,
            rejected: 0,
            score: 0,
            closed: None,
            created: t0,
            last_seen: t0,
        },
        seed: *seed,
        held_authorizations: Vec::new(),
        held_shares: Vec::new(),
        jobs_sent: 0,
    };
    h.check_state();

    if setup & 1 != 0 {
        // The NiceHash specification's opening, authorized.
        h.handle_line(
            br#"{"id": 1, "method": "mining.subscribe", "params": ["MinerName/1.0.0", "EthereumStratum/1.0.0"]}"#,
            t0,
        );
        h.handle_line(
            br#"{"id": 2, "method": "mining.authorize", "params": ["username", "password"]}"#,
            t0,
        );
        let tokens: Vec<AuthorizeToken> = h.model.authorizations.keys().copied().collect();
        for token in tokens {
            let (id, user) = h.model.authorizations.remove(&token).expect("pending");
            h.session.authorize_result(token, Ok(()));
            check_true(&answer_to(output(&mut h.session), &id).expect("answered"));
            h.model.authorized.insert(user);
        }
        h.check_state();
    }
    if setup & 2 != 0 {
        // The specification's job id, so that its submit example applies.
        let notify = job("bf0488aa", 0, true);
        h.session.send_job(&notify);
        if h.model.extranonce.is_some() {
            let out = output(&mut h.session);
            assert_eq!(out.len(), 2, "set_difficulty and notify");
            h.model.announced = Some(h.model.difficulty);
            h.model.jobs.push(LiveJob {
                notify,
                difficulty: h.model.difficulty,
            });
        }
        h.check_state();
    }

    let mut lines = LineBuffer::new(2048);
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
            h.decide();
            if h.model.closed.is_some() {
                break;
            }
        }
        if step % 8 == 0 && h.model.closed.is_none() {
            h.send_job(now);
        }
        if step % 5 == 0 {
            h.release();
        }
        h.handle_timeout(now);
    }

    let end = t0 + Duration::from_millis(250 * (step + 1));
    if h.model.closed.is_none() {
        if let Some(ours) = h.model.extranonce.clone() {
            // A second session while this one is live gets another extranonce.
            let mut other =
                EthPoolSession::new(Arc::clone(&config), Arc::clone(&allocator), end).expect("ok");
            other.handle_line(br#"{"id":1,"method":"mining.subscribe","params":[]}"#, end);
            assert_ne!(other.extranonce(), Some(ours.as_slice()));
            assert_eq!(allocator.live(), 2);
        }
        h.session.close(CloseReason::Requested);
        h.model.close(CloseReason::Requested);
        h.events(false);
        h.check_state();
    }
    assert_eq!(allocator.live(), 0, "the extranonce is released");
    h.release();
    h.session.handle_line(
        br#"{"id": 244, "method": "mining.submit", "params": ["username", "bf0488aa", "6a909d9bbc0f"]}"#,
        end,
    );
    h.session.send_job(&job("j", 0, true));
    h.session.handle_timeout(end + IDLE_TIMEOUT);
    h.session.close(CloseReason::Idle);
    assert!(h.session.poll_output().is_none(), "wrote after the close");
    assert!(h.events(true).is_empty(), "raised after the close");
    h.check_state();
});
