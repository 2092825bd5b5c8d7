//! A Monero-dialect (xmrig) miner session (`otedama_stratum::MoneroMinerSession`) fed an
//! arbitrary pool byte stream after `start()`, submitting shares on the jobs it announces,
//! checked against a written-out model of what it must do.
//!
//! Input: the first byte picks the configuration (keep-alives or not, a rig id or not, opened
//! through `MinerProtocol::open` or `new` + `start`); the second seeds the shares the "miner"
//! submits (on the newest job, an older one or an unknown one, with or without an algorithm);
//! the rest is the pool's byte stream, cut into reads of 1 to 64 bytes and framed by a
//! `LineBuffer`.
//!
//! Checks:
//! - nothing panics;
//! - every line written is one well-formed request ending in `\n`, with the next numeric id:
//!   the login (with exactly the configured fields), submits, keep-alives; nothing else, and
//!   never a response;
//! - every event is the one the model expects from the line: the login accepted (with the
//!   result's session id and extensions, and its job) or refused (and the close), jobs only
//!   once logged in and each with the difficulty of its target, errors for lines that are not
//!   the dialect or jobs that cannot be mined, the close on a malformed login result;
//! - `submit` numbers shares 1, 2, 3, ..; a share that cannot go out (closed, not logged in, a
//!   job not among the recent ones, too many pending) fails at once; any other goes out at once
//!   as one `submit` with the session id and exactly its fields; every `ShareResult` carries the
//!   number of a share submitted and not yet answered, is raised by the pool's response to that
//!   submit's id (accepted exactly when it carries no error) or by its response timeout, and
//!   once the clocks run out every share sent has had exactly one result, unless the session
//!   closed;
//! - an unanswered login ends the session as `Timeout`, a silent pool as `Idle`, and a
//!   `keepalived` with the session id goes out exactly when the configured interval has passed
//!   without sending;
//! - once closed it writes and raises nothing more, except the failed result of a share
//!   submitted after the end.
#![no_main]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use otedama_stratum::{
    LineBuffer, MinerCloseReason, MinerProtocol, MoneroClientRequest, MoneroJob, MoneroLogin,
    MoneroLoginResult, MoneroMessage, MoneroMinerConfig, MoneroMinerError, MoneroMinerEvent,
    MoneroMinerSession, MoneroMinerShare, MoneroServerRequest, MoneroSubmit, PoolLink, Request,
    RequestId,
};

const LOGIN: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";
const AGENT: &str = "XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0";
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const KEEPALIVE: Duration = Duration::from_secs(20);
/// The session remembers this many recent jobs for checking submits.
const RECENT_JOBS: usize = 8;
/// And lets this many requests await an answer.
const MAX_PENDING: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Login,
    Submit(u64),
    Keepalive,
}

struct Pending {
    kind: Kind,
    sent: Option<Instant>,
}

/// What the session must be doing, written out independently of it.
struct Model {
    config: MoneroMinerConfig,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    session_id: Option<String>,
    extensions: Vec<String>,
    jobs: VecDeque<String>,
    last_seen: Instant,
    last_sent: Instant,
    closed: Option<MinerCloseReason>,
    next_sequence: u64,
    outstanding: HashSet<u64>,
}

/// The id of one of our requests: a JSON number spelled exactly as we send it.
fn our_id(id: &RequestId) -> Option<u64> {
    let n: u64 = id.as_json().parse().ok()?;
    (n.to_string() == id.as_json()).then_some(n)
}

struct Harness {
    session: MoneroMinerSession,
    model: Model,
    seed: u8,
    jobs: Vec<MoneroJob>,
    counter: u32,
}

impl Harness {
    fn next_seed(&mut self) -> u8 {
        self.seed = self.seed.wrapping_mul(37).wrapping_add(11);
        self.seed
    }

    fn drain(&mut self) -> (VecDeque<Request>, VecDeque<MoneroMinerEvent>) {
        let out = std::iter::from_fn(|| self.session.poll_output())
            .map(|line| {
                let body = line.strip_suffix('\n').expect("newline-terminated");
                assert!(!body.contains('\n'), "one line: {line:?}");
                assert!(body.contains(r#""jsonrpc":"2.0""#), "{line:?}");
                match MoneroMessage::parse(body.as_bytes()) {
                    Ok(MoneroMessage::Request(r)) => r,
                    other => panic!("the session wrote {other:?}: {line:?}"),
                }
            })
            .collect();
        let events = std::iter::from_fn(|| self.session.poll_event()).collect();
        (out, events)
    }

    /// Takes the request the model expects next, with the next id.
    fn our_request(&mut self, out: &mut VecDeque<Request>, kind: Kind) -> MoneroClientRequest {
        let r = out.pop_front().expect("a request");
        self.model.next_id += 1;
        assert_eq!(
            r.id.as_ref().map(RequestId::as_json),
            Some(self.model.next_id.to_string().as_str()),
            "ids count up from 1"
        );
        let request = MoneroClientRequest::from_request(&r).expect("a request we can read");
        match (kind, &request) {
            (Kind::Login, MoneroClientRequest::Login(l)) => {
                let c = &self.model.config;
                assert_eq!(
                    *l,
                    MoneroLogin {
                        login: c.login.clone(),
                        pass: Some(c.pass.clone()),
                        agent: Some(c.agent.clone()),
                        rigid: c.rigid.clone(),
                        algo: c.algos.clone(),
                    }
                );
            }
            (Kind::Keepalive, MoneroClientRequest::Keepalived(id)) => {
                assert_eq!(
                    id, &self.model.session_id,
                    "keepalived quotes the session id"
                );
            }
            (Kind::Submit(_), MoneroClientRequest::Submit(_)) => {}
            (kind, request) => panic!("{kind:?} went out as {request:?}"),
        }
        self.model
            .pending
            .insert(self.model.next_id, Pending { kind, sent: None });
        request
    }

    fn stamp(&mut self, now: Instant) {
        let mut sent = false;
        for p in self.model.pending.values_mut() {
            if p.sent.is_none() {
                p.sent = Some(now);
                sent = true;
            }
        }
        if sent {
            self.model.last_sent = now;
        }
    }

    fn close(&mut self, events: &mut VecDeque<MoneroMinerEvent>, reason: MinerCloseReason) {
        assert_eq!(
            events.pop_front(),
            Some(MoneroMinerEvent::Closed(reason.clone()))
        );
        self.model.closed = Some(reason);
    }

    fn check_state(&self) {
        let s = &self.session;
        let m = &self.model;
        assert_eq!(s.is_closed(), m.closed.is_some());
        assert_eq!(s.poll_timeout().is_none(), m.closed.is_some());
        assert_eq!(s.session_id(), m.session_id.as_deref());
        assert_eq!(s.extensions(), m.extensions.as_slice());
    }

    fn new_job(&mut self, events: &mut VecDeque<MoneroMinerEvent>, job: MoneroJob) {
        let difficulty = job.target.difficulty();
        assert_eq!(
            events.pop_front(),
            Some(MoneroMinerEvent::NewJob {
                job: job.clone(),
                difficulty
            })
        );
        let jobs = &mut self.model.jobs;
        jobs.retain(|id| *id != job.job_id);
        jobs.push_back(job.job_id.clone());
        while jobs.len() > RECENT_JOBS {
            jobs.pop_front();
        }
        self.jobs.push(job);
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        let was_closed = self.model.closed.is_some();
        if self.next_seed() % 2 == 0 {
            self.session.handle_line(line, now);
        } else {
            MinerProtocol::handle_line(&mut self.session, line, now);
        }
        let (out, mut events) = self.drain();
        assert!(out.is_empty(), "a pool line made the miner write {out:?}");
        if was_closed {
            assert!(events.is_empty(), "busy after the close");
            return;
        }
        self.stamp(now);
        self.model.last_seen = now;
        match MoneroMessage::parse(line) {
            Err(_) => assert!(matches!(
                events.pop_front(),
                Some(MoneroMinerEvent::Error(MoneroMinerError::Parse(_)))
            )),
            Ok(MoneroMessage::Request(r)) => match MoneroServerRequest::from_request(&r) {
                Ok(MoneroServerRequest::Job(job)) => {
                    if self.model.session_id.is_some() {
                        self.new_job(&mut events, job);
                    }
                }
                Ok(_) => {}
                Err(_) => assert!(matches!(
                    events.pop_front(),
                    Some(MoneroMinerEvent::Error(MoneroMinerError::BadJob(_)))
                )),
            },
            Ok(MoneroMessage::Response(r)) => {
                let pending =
                    r.id.as_ref()
                        .and_then(our_id)
                        .and_then(|id| self.model.pending.remove(&id));
                match pending.map(|p| p.kind) {
                    None | Some(Kind::Keepalive) => {}
                    Some(Kind::Submit(sequence)) => {
                        let error = r.result.err();
                        assert_eq!(
                            events.pop_front(),
                            Some(MoneroMinerEvent::ShareResult {
                                sequence,
                                accepted: error.is_none(),
                                error,
                            })
                        );
                        assert!(self.model.outstanding.remove(&sequence), "answered once");
                    }
                    Some(Kind::Login) => match r.result {
                        Err(e) => {
                            assert_eq!(events.pop_front(), Some(MoneroMinerEvent::LoginFailed(e)));
                            self.close(&mut events, MinerCloseReason::Rejected);
                        }
                        Ok(v) => match MoneroLoginResult::from_json(&v) {
                            Ok(result) => {
                                assert_eq!(
                                    events.pop_front(),
                                    Some(MoneroMinerEvent::LoggedIn {
                                        session_id: result.id.clone(),
                                        extensions: result.extensions.clone(),
                                    })
                                );
                                self.model.session_id = Some(result.id);
                                self.model.extensions = result.extensions;
                                if let Some(job) = result.job {
                                    self.new_job(&mut events, job);
                                }
                            }
                            Err(_) => {
                                assert!(matches!(
                                    events.pop_front(),
                                    Some(MoneroMinerEvent::Error(
                                        MoneroMinerError::BadLoginResult(_)
                                    ))
                                ));
                                self.close(&mut events, MinerCloseReason::Protocol);
                            }
                        },
                    },
                }
            }
        }
        assert!(events.is_empty(), "unexpected events {events:?}");
        self.check_state();
    }

    /// Submits a share picked by the seed, checking it goes out or fails as the model says.
    fn submit(&mut self) {
        let pick = self.next_seed();
        let job_id = match self.jobs.len() {
            0 => "job1".to_owned(),
            n => {
                let i = if pick % 4 == 0 {
                    usize::from(pick) % n
                } else {
                    n - 1
                };
                self.jobs[i].job_id.clone()
            }
        };
        self.counter += 1;
        let mut result = [0u8; 32];
        result[..4].copy_from_slice(&self.counter.to_le_bytes());
        let share = MoneroMinerShare {
            job_id: if pick % 9 == 0 { "nope".into() } else { job_id },
            nonce: self.counter,
            result,
            algo: (pick % 3 == 0).then(|| "rx/0".to_owned()),
        };
        self.submit_share(share);
    }

    fn submit_share(&mut self, share: MoneroMinerShare) {
        let sequence = if self.next_seed() % 2 == 0 {
            self.session.submit(share.clone())
        } else {
            MinerProtocol::submit(&mut self.session, share.clone())
        };
        let m = &mut self.model;
        m.next_sequence += 1;
        assert_eq!(sequence, m.next_sequence, "shares are numbered 1, 2, 3, ..");
        let goes_out = m.closed.is_none()
            && m.session_id.is_some()
            && m.jobs.contains(&share.job_id)
            && m.pending.len() < MAX_PENDING;
        let (mut out, mut events) = self.drain();
        if goes_out {
            let request = self.our_request(&mut out, Kind::Submit(sequence));
            assert_eq!(
                request,
                MoneroClientRequest::Submit(MoneroSubmit {
                    id: self.model.session_id.clone().expect("logged in"),
                    job_id: share.job_id,
                    nonce: share.nonce,
                    result: share.result,
                    algo: share.algo,
                })
            );
            self.model.outstanding.insert(sequence);
        } else {
            let Some(MoneroMinerEvent::ShareResult {
                sequence: s,
                accepted: false,
                error: Some(e),
            }) = events.pop_front()
            else {
                panic!("a share refused at once")
            };
            assert_eq!(s, sequence);
            assert!(e.message.starts_with("not sent: "), "{e:?}");
        }
        assert!(out.is_empty() && events.is_empty(), "{out:?} {events:?}");
        self.check_state();
    }

    fn handle_timeout(&mut self, now: Instant) {
        let was_closed = self.model.closed.is_some();
        if self.next_seed() % 2 == 0 {
            self.session.handle_timeout(now);
        } else {
            MinerProtocol::handle_timeout(&mut self.session, now);
        }
        let (mut out, mut events) = self.drain();
        if !was_closed {
            self.timeout_model(now, &mut out, &mut events);
        }
        assert!(out.is_empty(), "unexpected lines {out:?}");
        assert!(events.is_empty(), "unexpected events {events:?}");
        self.check_state();
    }

    fn timeout_model(
        &mut self,
        now: Instant,
        out: &mut VecDeque<Request>,
        events: &mut VecDeque<MoneroMinerEvent>,
    ) {
        self.stamp(now);
        let expired: Vec<u64> = self
            .model
            .pending
            .iter()
            .filter(|(_, p)| p.sent.is_some_and(|s| now >= s + RESPONSE_TIMEOUT))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            match self.model.pending.remove(&id).map(|p| p.kind) {
                Some(Kind::Submit(sequence)) => {
                    let Some(MoneroMinerEvent::ShareResult {
                        sequence: s,
                        accepted: false,
                        error: Some(e),
                    }) = events.pop_front()
                    else {
                        panic!("an unanswered share fails")
                    };
                    assert_eq!(s, sequence);
                    assert_eq!(e.message, "no answer from the pool");
                    assert!(self.model.outstanding.remove(&sequence));
                }
                Some(Kind::Login) => return self.close(events, MinerCloseReason::Timeout),
                Some(Kind::Keepalive) | None => {}
            }
        }
        if now >= self.model.last_seen + IDLE_TIMEOUT {
            return self.close(events, MinerCloseReason::Idle);
        }
        if let (Some(every), Some(_)) = (self.model.config.keepalive, &self.model.session_id) {
            if now >= self.model.last_sent + every {
                self.our_request(out, Kind::Keepalive);
                self.stamp(now);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (setup, rest) = data.split_first().unwrap_or((&0, &[]));
    let (seed, stream) = rest.split_first().unwrap_or((&0, &[]));
    let t0 = Instant::now();
    let config = MoneroMinerConfig {
        login: LOGIN.to_owned(),
        pass: "x".to_owned(),
        agent: AGENT.to_owned(),
        rigid: (setup & 2 != 0).then(|| "rig1".to_owned()),
        algos: vec!["rx/0".to_owned(), "rx/wow".to_owned()],
        keepalive: (setup & 1 != 0).then_some(KEEPALIVE),
        response_timeout: RESPONSE_TIMEOUT,
        idle_timeout: IDLE_TIMEOUT,
    };
    let session = if setup & 4 != 0 {
        MoneroMinerSession::open(config.clone(), &PoolLink::new("pool.example"), t0)
    } else {
        let mut s = MoneroMinerSession::new(config.clone(), t0);
        s.start();
        s.start();
        s
    };
    let mut h = Harness {
        session,
        model: Model {
            config,
            next_id: 0,
            pending: BTreeMap::new(),
            session_id: None,
            extensions: Vec::new(),
            jobs: VecDeque::new(),
            last_seen: t0,
            last_sent: t0,
            closed: None,
            next_sequence: 0,
            outstanding: HashSet::new(),
        },
        seed: *seed,
        jobs: Vec::new(),
        counter: 0,
    };
    let (mut out, events) = h.drain();
    assert!(events.is_empty());
    h.our_request(&mut out, Kind::Login);
    assert!(out.is_empty(), "only the login opens");
    h.check_state();

    let mut lines = LineBuffer::new(2048);
    let mut rest = stream;
    let mut step = 0u64;
    let mut now = t0;
    while !rest.is_empty() {
        let size = (usize::from(rest[0]) % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        step += 1;
        now = t0 + Duration::from_millis(250 * step);
        if lines.feed(chunk).is_err() {
            break;
        }
        while let Some(line) = lines.next_line() {
            let jobs_before = h.jobs.len();
            h.handle_line(line, now);
            for _ in jobs_before..h.jobs.len() {
                for _ in 0..h.next_seed() % 3 {
                    h.submit();
                }
            }
            if h.next_seed() % 13 == 0 {
                h.submit();
            }
        }
        h.handle_timeout(now);
    }

    // Let every clock run out: each share sent gets its one result, unless the session ends.
    for _ in 0..2 {
        now += RESPONSE_TIMEOUT;
        h.handle_timeout(now);
    }
    if h.model.closed.is_none() {
        assert!(
            h.model.outstanding.is_empty(),
            "shares never answered: {:?}",
            h.model.outstanding
        );
        MinerProtocol::close(&mut h.session, MinerCloseReason::Requested);
        let (out, mut events) = h.drain();
        assert!(out.is_empty());
        h.close(&mut events, MinerCloseReason::Requested);
        assert!(events.is_empty());
    }
    // Closed: only a share submitted now still gets its (failed) result.
    h.session.close(MinerCloseReason::Idle);
    h.handle_line(
        br#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        now,
    );
    h.handle_timeout(now + IDLE_TIMEOUT);
    h.session.start();
    let share = MoneroMinerShare {
        job_id: h.jobs.last().map_or("job1".into(), |j| j.job_id.clone()),
        nonce: 0,
        result: [0; 32],
        algo: None,
    };
    h.submit_share(share);
    let (out, events) = h.drain();
    assert!(out.is_empty() && events.is_empty());
});
