//! A Stratum v1 miner session (`otedama_stratum::MinerSession`) fed an arbitrary pool byte
//! stream after `start()`, submitting shares on the jobs it announces, checked against a
//! written-out model of what it must do.
//!
//! Input: the first byte picks the configuration (version rolling, `mining.extranonce.subscribe`,
//! a suggested difficulty, a session id to resume, redirects allowed, opened through
//! `MinerProtocol::open` or `new` + `start`); the second seeds the shares the "miner" submits
//! (on the newest job, an older one or an unknown one, with a right or wrong extranonce2 size,
//! version bits inside or outside the mask); the rest is the pool's byte stream, cut into reads
//! of 1 to 64 bytes and framed by a `LineBuffer`.
//!
//! Checks:
//! - nothing panics;
//! - every line written is one well-formed message ending in `\n`: a request with the next
//!   numeric id (configure, subscribe, authorize, then extranonce.subscribe and
//!   suggest_difficulty after the authorization, submits), or, straight after the pool's
//!   `client.get_version`, `mining.ping` or `client.show_message`, a response carrying that
//!   request's id;
//! - every event is the one the model expects from the line: subscription (with the result's
//!   extranonce1, size and session id), authorization, each job exactly as the notify with the
//!   difficulty, extranonce and version mask in force for it and `clean` set by the flag or a
//!   new prevhash, extranonce changes, version masks, reconnects allowed only to the same host
//!   unless redirects are, messages, errors, and the close (refused or malformed subscribe
//!   results, timeouts, idle);
//! - `submit` numbers shares 1, 2, 3, ..; a share that cannot go out (closed, not subscribed or
//!   authorized, an unknown job, a wrong extranonce2 size, version bits outside the mask, too
//!   many pending) fails at once with the right code; any other goes out at once as one
//!   `mining.submit` with exactly its fields; every `ShareResult` carries the number of a share
//!   submitted and not yet answered, is raised by the pool's response to that submit's id
//!   (accepted exactly when `result` is `true` without error) or by its response timeout, and
//!   once the clocks run out every share sent has had exactly one result, unless the session
//!   closed;
//! - the accessors (subscribed, authorized, session id, extranonce, difficulty, version mask,
//!   resumed) agree with what the events said;
//! - once closed it writes and raises nothing more, except the failed result of a share
//!   submitted after the end.
#![no_main]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use otedama_stratum::{
    ClientRequest, ErrorCode, Extranonce2Iter, LineBuffer, Message, MinerCloseReason, MinerConfig,
    MinerError, MinerEvent, MinerJob, MinerProtocol, MinerSession, MinerShare, PoolLink, Request,
    RequestId, ServerRequest, Submit, SubscribeResult,
};

const USER: &str = "otedama.worker1";
const AGENT: &str = "cpuminer/2.5.1";
const HOST: &str = "pool.example";
const RESUME: &str = "n1";
const MASK: u32 = 0x1fff_e000;
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The session remembers this many recent jobs for checking submits.
const RECENT_JOBS: usize = 16;
/// And lets this many requests await an answer.
const MAX_PENDING: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Configure,
    Subscribe { resume: Option<String> },
    Authorize,
    ExtranonceSubscribe,
    SuggestDifficulty,
    Submit(u64),
}

impl Kind {
    fn method(&self) -> &'static str {
        match self {
            Kind::Configure => "mining.configure",
            Kind::Subscribe { .. } => "mining.subscribe",
            Kind::Authorize => "mining.authorize",
            Kind::ExtranonceSubscribe => "mining.extranonce.subscribe",
            Kind::SuggestDifficulty => "mining.suggest_difficulty",
            Kind::Submit(_) => "mining.submit",
        }
    }
}

struct Pending {
    kind: Kind,
    sent: Option<Instant>,
}

/// What the session must be doing, written out independently of it.
struct Model {
    config: MinerConfig,
    allow_redirects: bool,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    subscribed: bool,
    session_id: Option<String>,
    resumed: bool,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    authorized: bool,
    reauthorize: bool,
    mask: u32,
    difficulty: f64,
    last_prevhash: Option<[u8; 32]>,
    jobs: VecDeque<(String, usize)>,
    last_seen: Instant,
    closed: Option<MinerCloseReason>,
    next_sequence: u64,
    /// Shares sent and not yet answered.
    outstanding: HashSet<u64>,
}

/// The id of one of our requests: a JSON number spelled exactly as we send it.
fn our_id(id: &RequestId) -> Option<u64> {
    let n: u64 = id.as_json().parse().ok()?;
    (n.to_string() == id.as_json()).then_some(n)
}

fn same_host(ours: &str, theirs: &str) -> bool {
    let a = ours.trim().trim_end_matches('.');
    let b = theirs.trim().trim_end_matches('.');
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

struct Harness {
    session: MinerSession,
    model: Model,
    seed: u8,
    /// Jobs announced, newest last.
    jobs: Vec<MinerJob>,
    counter: u64,
}

/// Takes the next line, which must be a request.
fn request(out: &mut VecDeque<Message>) -> Request {
    match out.pop_front() {
        Some(Message::Request(r)) => r,
        other => panic!("a request expected, got {other:?}"),
    }
}

impl Harness {
    fn next_seed(&mut self) -> u8 {
        self.seed = self.seed.wrapping_mul(37).wrapping_add(11);
        self.seed
    }

    fn drain(&mut self) -> (VecDeque<Message>, VecDeque<MinerEvent>) {
        let out = std::iter::from_fn(|| self.session.poll_output())
            .map(|line| {
                let body = line.strip_suffix('\n').expect("newline-terminated");
                assert!(!body.contains('\n'), "one line: {line:?}");
                Message::parse(body.as_bytes())
                    .unwrap_or_else(|e| panic!("session wrote a bad line: {e}: {line:?}"))
            })
            .collect();
        let events = std::iter::from_fn(|| self.session.poll_event()).collect();
        (out, events)
    }

    /// Takes the request the model expects next: the next id, the method of `kind`.
    fn our_request(&mut self, out: &mut VecDeque<Message>, kind: Kind) -> Request {
        let r = request(out);
        self.model.next_id += 1;
        assert_eq!(
            r.id.as_ref().map(RequestId::as_json),
            Some(self.model.next_id.to_string().as_str()),
            "ids count up from 1"
        );
        assert_eq!(r.method, kind.method());
        let m = &self.model;
        match (&kind, ClientRequest::from_request(&r)) {
            (Kind::Subscribe { resume }, Ok(ClientRequest::Subscribe(s))) => {
                assert_eq!(s.user_agent.as_deref(), Some(AGENT));
                assert_eq!(&s.session_id, resume);
            }
            (Kind::Authorize, Ok(ClientRequest::Authorize(a))) => {
                assert_eq!(a.username, USER);
                assert_eq!(a.password.as_deref(), Some("x"));
            }
            (Kind::Configure, Ok(ClientRequest::Configure(c))) => {
                let vr = c.version_rolling.expect("version rolling asked for");
                assert_eq!(Some(vr.mask), m.config.version_rolling);
            }
            (Kind::SuggestDifficulty, Ok(ClientRequest::SuggestDifficulty(d))) => {
                assert_eq!(Some(d), m.config.suggest_difficulty);
            }
            (Kind::ExtranonceSubscribe, Ok(ClientRequest::ExtranonceSubscribe)) => {}
            (Kind::Submit(_), Ok(ClientRequest::Submit(_))) => {}
            (kind, other) => panic!("{kind:?} went out as {other:?}"),
        }
        self.model
            .pending
            .insert(self.model.next_id, Pending { kind, sent: None });
        r
    }

    fn stamp(&mut self, now: Instant) {
        for p in self.model.pending.values_mut() {
            p.sent.get_or_insert(now);
        }
    }

    fn close(&mut self, events: &mut VecDeque<MinerEvent>, reason: MinerCloseReason) {
        assert_eq!(events.pop_front(), Some(MinerEvent::Closed(reason.clone())));
        self.model.closed = Some(reason);
    }

    fn check_state(&self) {
        let s = &self.session;
        let m = &self.model;
        assert_eq!(s.is_closed(), m.closed.is_some());
        assert_eq!(s.poll_timeout().is_none(), m.closed.is_some());
        assert_eq!(s.is_subscribed(), m.subscribed);
        assert_eq!(s.is_authorized(), m.authorized);
        assert_eq!(s.session_id(), m.session_id.as_deref());
        assert_eq!(s.resumed(), m.resumed);
        assert_eq!(s.extranonce1(), m.extranonce1.as_slice());
        assert_eq!(s.extranonce2_size(), m.extranonce2_size);
        assert_eq!(s.difficulty(), m.difficulty);
        assert_eq!(
            s.version_mask(),
            m.mask,
            "the version mask the events reported"
        );
    }

    fn handle_line(&mut self, line: &[u8], now: Instant) {
        let was_closed = self.model.closed.is_some();
        if self.next_seed() % 2 == 0 {
            self.session.handle_line(line, now);
        } else {
            MinerProtocol::handle_line(&mut self.session, line, now);
        }
        let (mut out, mut events) = self.drain();
        if was_closed {
            assert!(out.is_empty() && events.is_empty(), "busy after the close");
            return;
        }
        self.stamp(now);
        self.model.last_seen = now;
        match Message::parse(line) {
            Err(_) => assert!(matches!(
                events.pop_front(),
                Some(MinerEvent::Error(MinerError::Parse(_)))
            )),
            Ok(Message::Response(r)) => self.response(r, &mut out, &mut events),
            Ok(Message::Request(r)) => self.pool_request(&r, &mut out, &mut events),
        }
        assert!(out.is_empty(), "unexpected lines {out:?}");
        assert!(events.is_empty(), "unexpected events {events:?}");
        self.check_state();
    }

    fn response(
        &mut self,
        r: otedama_stratum::Response,
        out: &mut VecDeque<Message>,
        events: &mut VecDeque<MinerEvent>,
    ) {
        let Some(id) = r.id.as_ref().and_then(our_id) else {
            return;
        };
        let Some(pending) = self.model.pending.remove(&id) else {
            return;
        };
        let ok = r.error.is_none();
        match pending.kind {
            Kind::Submit(sequence) => {
                let accepted = ok && r.result.as_bool() == Some(true);
                let Some(MinerEvent::ShareResult {
                    sequence: s,
                    accepted: a,
                    error,
                }) = events.pop_front()
                else {
                    panic!("the share's result")
                };
                assert_eq!((s, a), (sequence, accepted));
                assert_eq!(error.is_none(), accepted);
                if let (Some(sent), Some(got)) = (&r.error, &error) {
                    assert_eq!(sent, got, "the pool's error as sent");
                }
                assert!(self.model.outstanding.remove(&sequence), "answered once");
            }
            Kind::Configure => {
                let Some(MinerEvent::VersionMask(mask)) = events.pop_front() else {
                    panic!("the configure result")
                };
                let ours = self.model.config.version_rolling.unwrap_or(0);
                assert_eq!(mask & !ours, 0, "only bits we asked for");
                if !ok {
                    assert_eq!(mask, 0);
                }
                self.model.mask = mask;
            }
            Kind::Authorize => {
                if ok && r.result.as_bool() == Some(true) {
                    assert_eq!(events.pop_front(), Some(MinerEvent::Authorized(true, None)));
                    self.model.authorized = true;
                    if self.model.config.extranonce_subscribe {
                        self.our_request(out, Kind::ExtranonceSubscribe);
                    }
                    if self.model.config.suggest_difficulty.is_some() {
                        self.our_request(out, Kind::SuggestDifficulty);
                    }
                } else if !self.model.subscribed
                    && r.error
                        .as_ref()
                        .is_some_and(|e| e.code == ErrorCode::NotSubscribed)
                {
                    // Sent again once subscribed.
                    self.model.reauthorize = true;
                } else {
                    let reason = r.error.map_or_else(|| "refused".to_owned(), |e| e.message);
                    assert_eq!(
                        events.pop_front(),
                        Some(MinerEvent::Authorized(false, Some(reason)))
                    );
                }
            }
            Kind::Subscribe { resume } => self.subscribe_result(&r, resume, out, events),
            Kind::ExtranonceSubscribe | Kind::SuggestDifficulty => {}
        }
    }

    fn subscribe_result(
        &mut self,
        r: &otedama_stratum::Response,
        resume: Option<String>,
        out: &mut VecDeque<Message>,
        events: &mut VecDeque<MinerEvent>,
    ) {
        if self.model.subscribed {
            return;
        }
        if r.error.is_some() {
            if resume.is_some() {
                // Refused resumption: subscribe afresh.
                self.our_request(out, Kind::Subscribe { resume: None });
            } else {
                assert!(matches!(
                    events.pop_front(),
                    Some(MinerEvent::Error(MinerError::SubscribeRejected(_)))
                ));
                self.close(events, MinerCloseReason::Rejected);
            }
            return;
        }
        // Usable: an array whose size is 1 to 16 and whose extranonce1 is hex of at most 32
        // bytes, in a form `SubscribeResult` reads.
        let items = r.result.as_array();
        let size_ok = items
            .and_then(|i| i.get(2))
            .and_then(|s| s.as_u64())
            .is_some_and(|n| (1..=16).contains(&n));
        let en1_ok = items
            .and_then(|i| i.get(1))
            .and_then(|e| e.as_str())
            .and_then(|e| otedama_core::decode_hex(e).ok())
            .is_some_and(|e| e.len() <= 32);
        let parsed = SubscribeResult::from_json(&r.result);
        match parsed.filter(|_| size_ok && en1_ok) {
            Some(result) => {
                let session_id = result.session_id().map(str::to_owned);
                assert_eq!(
                    events.pop_front(),
                    Some(MinerEvent::Subscribed {
                        extranonce1: result.extranonce1.clone(),
                        extranonce2_size: result.extranonce2_size,
                        session_id: session_id.clone(),
                    })
                );
                let m = &mut self.model;
                m.resumed = resume.is_some() && session_id == resume;
                m.subscribed = true;
                m.session_id = session_id;
                m.extranonce1 = result.extranonce1;
                m.extranonce2_size = result.extranonce2_size;
                if std::mem::take(&mut m.reauthorize) {
                    self.our_request(out, Kind::Authorize);
                }
            }
            None => {
                // Unusable: subscribe afresh when resuming and the shape was wrong, else an
                // error and the close.
                if matches!(out.front(), Some(Message::Request(_))) {
                    assert!(resume.is_some(), "retried without a session id to drop");
                    self.our_request(out, Kind::Subscribe { resume: None });
                } else {
                    assert!(matches!(events.pop_front(), Some(MinerEvent::Error(_))));
                    self.close(events, MinerCloseReason::Protocol);
                }
            }
        }
    }

    fn pool_request(
        &mut self,
        r: &Request,
        out: &mut VecDeque<Message>,
        events: &mut VecDeque<MinerEvent>,
    ) {
        let reply = |out: &mut VecDeque<Message>| -> Option<otedama_stratum::Response> {
            r.id.as_ref()?;
            match out.pop_front() {
                Some(Message::Response(resp)) => {
                    assert_eq!(resp.id, r.id, "the reply carries the pool's id");
                    assert!(resp.error.is_none());
                    Some(resp)
                }
                other => panic!("a reply expected, got {other:?}"),
            }
        };
        let m = &mut self.model;
        let msg = match ServerRequest::from_request(r) {
            Ok(msg) => msg,
            Err(_) => {
                assert!(matches!(
                    events.pop_front(),
                    Some(MinerEvent::Error(MinerError::Params(_)))
                ));
                return;
            }
        };
        match msg {
            ServerRequest::Notify(n) => {
                if !m.subscribed {
                    return;
                }
                if n.job_id.is_empty() || n.job_id.len() > 128 {
                    assert!(matches!(
                        events.pop_front(),
                        Some(MinerEvent::Error(MinerError::BadJobId { .. }))
                    ));
                    return;
                }
                if n.merkle_branch.len() > otedama_stratum::MAX_MERKLE_BRANCH {
                    assert!(matches!(
                        events.pop_front(),
                        Some(MinerEvent::Error(MinerError::MerkleBranchTooLong { .. }))
                    ));
                    return;
                }
                let new_tip = m.last_prevhash.is_some_and(|p| p != n.prevhash);
                m.last_prevhash = Some(n.prevhash);
                m.jobs.retain(|(id, _)| *id != n.job_id);
                m.jobs.push_back((n.job_id.clone(), m.extranonce2_size));
                while m.jobs.len() > RECENT_JOBS {
                    m.jobs.pop_front();
                }
                let clean = n.clean_jobs || new_tip;
                let job = MinerJob {
                    notify: n,
                    difficulty: m.difficulty,
                    extranonce1: m.extranonce1.clone(),
                    extranonce2_size: m.extranonce2_size,
                    version_mask: m.mask,
                    clean,
                };
                assert_eq!(events.pop_front(), Some(MinerEvent::NewJob(job.clone())));
                assert!(job.difficulty > 0.0);
                self.jobs.push(job);
            }
            ServerRequest::SetDifficulty(d) => {
                assert!(d > 0.0);
                m.difficulty = d;
            }
            ServerRequest::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                if !(1..=16).contains(&extranonce2_size) {
                    assert!(matches!(
                        events.pop_front(),
                        Some(MinerEvent::Error(MinerError::Extranonce2Size { .. }))
                    ));
                } else if extranonce1.len() > 32 {
                    assert!(matches!(
                        events.pop_front(),
                        Some(MinerEvent::Error(MinerError::Extranonce1TooLong { .. }))
                    ));
                } else {
                    assert_eq!(
                        events.pop_front(),
                        Some(MinerEvent::ExtranonceChanged {
                            extranonce1: extranonce1.clone(),
                            extranonce2_size,
                        })
                    );
                    m.extranonce1 = extranonce1;
                    m.extranonce2_size = extranonce2_size;
                }
            }
            ServerRequest::SetVersionMask(mask) => {
                if let Some(ours) = m.config.version_rolling {
                    assert_eq!(
                        events.pop_front(),
                        Some(MinerEvent::VersionMask(mask & ours))
                    );
                    m.mask = mask & ours;
                }
            }
            ServerRequest::Reconnect(rc) => {
                let allowed = match rc.host.as_deref() {
                    None => true,
                    Some(host) => m.allow_redirects || same_host(HOST, host),
                };
                let event = if allowed {
                    MinerEvent::Reconnect(rc)
                } else {
                    MinerEvent::ReconnectRefused(rc)
                };
                assert_eq!(events.pop_front(), Some(event));
            }
            ServerRequest::GetVersion => {
                if let Some(resp) = reply(out) {
                    let version = resp.result.as_str().expect("a string").to_owned();
                    assert!(version.starts_with("otedama/"), "{version}");
                }
            }
            ServerRequest::Ping => {
                if let Some(resp) = reply(out) {
                    assert_eq!(resp.result.as_str(), Some("pong"));
                }
            }
            ServerRequest::ShowMessage(text) => {
                assert_eq!(events.pop_front(), Some(MinerEvent::ShowMessage(text)));
                if let Some(resp) = reply(out) {
                    assert_eq!(resp.result.as_bool(), Some(true));
                }
            }
            _ => {}
        }
    }

    /// Submits a share picked by the seed, checking it goes out or fails as the model says.
    fn submit(&mut self) {
        let pick = self.next_seed();
        let (job_id, size, ntime, mask) = match self.jobs.len() {
            0 => ("j1".to_owned(), 4, 0, 0),
            n => {
                let job = &self.jobs[if pick % 4 == 0 {
                    usize::from(pick) % n
                } else {
                    n - 1
                }];
                (
                    job.notify.job_id.clone(),
                    job.extranonce2_size,
                    job.notify.ntime,
                    job.version_mask,
                )
            }
        };
        let job_id = if pick % 9 == 0 {
            "nope".to_owned()
        } else {
            job_id
        };
        let size = if pick % 11 == 0 { size + 1 } else { size };
        self.counter += 1;
        let version_bits = match pick % 5 {
            0 => Some(mask & 0x0000_e000),
            1 => Some(1),
            2 => Some(0),
            _ => None,
        };
        let share = MinerShare {
            job_id,
            extranonce2: Extranonce2Iter::encode(size, self.counter),
            ntime,
            nonce: self.counter as u32,
            version_bits,
        };
        self.submit_share(share);
    }

    fn submit_share(&mut self, share: MinerShare) {
        let sequence = if self.next_seed() % 2 == 0 {
            self.session.submit(share.clone())
        } else {
            MinerProtocol::submit(&mut self.session, share.clone())
        };
        let m = &mut self.model;
        m.next_sequence += 1;
        assert_eq!(sequence, m.next_sequence, "shares are numbered 1, 2, 3, ..");
        let refusal = if m.closed.is_some() {
            Some(ErrorCode::Other)
        } else if !m.subscribed {
            Some(ErrorCode::NotSubscribed)
        } else if !m.authorized {
            Some(ErrorCode::Unauthorized)
        } else {
            match m.jobs.iter().find(|(id, _)| *id == share.job_id) {
                None => Some(ErrorCode::JobNotFound),
                Some((_, size)) if *size != share.extranonce2.len() => Some(ErrorCode::Other),
                Some(_) if share.version_bits.is_some_and(|b| b & !m.mask != 0) => {
                    Some(ErrorCode::Other)
                }
                Some(_) if m.pending.len() >= MAX_PENDING => Some(ErrorCode::Other),
                Some(_) => None,
            }
        };
        let (mut out, mut events) = self.drain();
        match refusal {
            Some(code) => {
                let Some(MinerEvent::ShareResult {
                    sequence: s,
                    accepted: false,
                    error: Some(e),
                }) = events.pop_front()
                else {
                    panic!("a share refused at once")
                };
                assert_eq!(s, sequence);
                assert_eq!(e.code, code, "{e:?}");
                assert!(e.message.starts_with("not sent: "), "{e:?}");
            }
            None => {
                let r = self.our_request(&mut out, Kind::Submit(sequence));
                let Ok(ClientRequest::Submit(s)) = ClientRequest::from_request(&r) else {
                    panic!("a submit")
                };
                let mask = self.model.mask;
                assert_eq!(
                    s,
                    Submit {
                        worker: USER.to_owned(),
                        job_id: share.job_id,
                        extranonce2: share.extranonce2,
                        ntime: share.ntime,
                        nonce: share.nonce,
                        version_bits: share.version_bits.filter(|_| mask != 0),
                    }
                );
                self.model.outstanding.insert(sequence);
            }
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
        let (out, mut events) = self.drain();
        assert!(out.is_empty(), "a timeout wrote {out:?}");
        if !was_closed {
            self.stamp(now);
            let expired: Vec<u64> = self
                .model
                .pending
                .iter()
                .filter(|(_, p)| p.sent.is_some_and(|s| now >= s + RESPONSE_TIMEOUT))
                .map(|(id, _)| *id)
                .collect();
            let mut closed = false;
            for id in expired {
                let p = self.model.pending.remove(&id).expect("pending");
                match p.kind {
                    Kind::Submit(sequence) => {
                        let Some(MinerEvent::ShareResult {
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
                    Kind::Subscribe { .. } | Kind::Authorize => {
                        self.close(&mut events, MinerCloseReason::Timeout);
                        closed = true;
                        break;
                    }
                    // Nothing was negotiated, but a mask the pool set meanwhile stands.
                    Kind::Configure => {
                        assert_eq!(
                            events.pop_front(),
                            Some(MinerEvent::VersionMask(self.model.mask))
                        );
                    }
                    Kind::ExtranonceSubscribe | Kind::SuggestDifficulty => {}
                }
            }
            if !closed && now >= self.model.last_seen + IDLE_TIMEOUT {
                self.close(&mut events, MinerCloseReason::Idle);
            }
        }
        assert!(events.is_empty(), "unexpected events {events:?}");
        self.check_state();
    }
}

fuzz_target!(|data: &[u8]| {
    let (setup, rest) = data.split_first().unwrap_or((&0, &[]));
    let (seed, stream) = rest.split_first().unwrap_or((&0, &[]));
    let t0 = Instant::now();
    let config = MinerConfig {
        user: USER.to_owned(),
        password: "x".to_owned(),
        user_agent: AGENT.to_owned(),
        version_rolling: (setup & 1 != 0).then_some(MASK),
        extranonce_subscribe: setup & 2 != 0,
        suggest_difficulty: (setup & 4 != 0).then_some(64.0),
    };
    let resume = (setup & 8 != 0).then(|| RESUME.to_owned());
    let allow_redirects = setup & 16 != 0;
    let session = if setup & 32 != 0 {
        let mut link = PoolLink::new(HOST).allow_redirects(allow_redirects);
        if let Some(r) = &resume {
            link = link.with_resume(r.clone());
        }
        MinerSession::open(config.clone(), &link, t0).with_timeouts(RESPONSE_TIMEOUT, IDLE_TIMEOUT)
    } else {
        let mut s = MinerSession::new(config.clone(), t0)
            .with_pool_host(HOST)
            .allow_redirects(allow_redirects)
            .with_timeouts(RESPONSE_TIMEOUT, IDLE_TIMEOUT);
        if let Some(r) = &resume {
            s = s.with_resume(r.clone());
        }
        s.start();
        s.start();
        s
    };
    let mut h = Harness {
        session,
        model: Model {
            config: config.clone(),
            allow_redirects,
            next_id: 0,
            pending: BTreeMap::new(),
            subscribed: false,
            session_id: None,
            resumed: false,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            authorized: false,
            reauthorize: false,
            mask: 0,
            difficulty: 1.0,
            last_prevhash: None,
            jobs: VecDeque::new(),
            last_seen: t0,
            closed: None,
            next_sequence: 0,
            outstanding: HashSet::new(),
        },
        seed: *seed,
        jobs: Vec::new(),
        counter: 0,
    };
    // The opening: configure (when rolling versions), subscribe, authorize.
    let (mut out, events) = h.drain();
    assert!(events.is_empty());
    if config.version_rolling.is_some() {
        h.our_request(&mut out, Kind::Configure);
    }
    h.our_request(&mut out, Kind::Subscribe { resume });
    h.our_request(&mut out, Kind::Authorize);
    assert!(out.is_empty());
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
            // Shares on each new job, and now and then on anything.
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
    h.handle_line(br#"{"id":null,"method":"mining.ping","params":[]}"#, now);
    h.handle_timeout(now + IDLE_TIMEOUT);
    h.session.start();
    let share = MinerShare {
        job_id: h
            .jobs
            .last()
            .map_or("j1".into(), |j| j.notify.job_id.clone()),
        extranonce2: vec![0; h.model.extranonce2_size],
        ntime: 0,
        nonce: 0,
        version_bits: None,
    };
    h.submit_share(share);
    let (out, events) = h.drain();
    assert!(out.is_empty() && events.is_empty());
});
