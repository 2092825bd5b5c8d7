//! Helpers shared by the integration tests: capture files and a small pool-session driver.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_stratum::{
    AuthorizeToken, ExtranonceAllocator, JobAnnouncement, Message, Notify, PoolConfig, PoolEvent,
    PoolSession, Response, ServerRequest, ShareSubmission,
};

/// Who wrote a capture line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The miner.
    ClientToServer,
    /// The scripted pool.
    ServerToClient,
    /// A note from the logger (`---`).
    Note,
}

/// One line of a capture: `<seconds> conn<N> C->S|S->C|--- <raw line>`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at: Duration,
    pub conn: String,
    pub dir: Dir,
    pub line: String,
}

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

/// Reads a capture file from `tests/data`.
pub fn load_capture(name: &str) -> Vec<Entry> {
    let text = std::fs::read_to_string(data_path(name)).expect("capture file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.trim_start().splitn(4, ' ');
            let at: f64 = parts.next().expect("time").parse().expect("seconds");
            let conn = parts.next().expect("conn").to_owned();
            let dir = match parts.next().expect("direction") {
                "C->S" => Dir::ClientToServer,
                "S->C" => Dir::ServerToClient,
                "---" => Dir::Note,
                other => panic!("unknown direction {other:?} in {name}"),
            };
            let line = parts.next().unwrap_or_default().to_owned();
            Entry {
                at: Duration::from_secs_f64(at),
                conn,
                dir,
                line,
            }
        })
        .collect()
}

/// A session on a fresh allocator, with the given config.
pub fn session_with(config: PoolConfig, now: Instant) -> (PoolSession, Arc<ExtranonceAllocator>) {
    let allocator = ExtranonceAllocator::new(&[0xee], 3).expect("allocator");
    let session = PoolSession::new(Arc::new(config), Arc::clone(&allocator), now);
    (session, allocator)
}

/// Every line the session wants written, in order.
pub fn drain_output(session: &mut PoolSession) -> Vec<String> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

/// Every event the session raised, in order.
pub fn drain_events(session: &mut PoolSession) -> Vec<PoolEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// Parses a line the session wrote as a response.
pub fn response(line: &str) -> Response {
    assert!(
        line.ends_with('\n'),
        "every output line ends with a newline: {line:?}"
    );
    match Message::parse(line.trim_end().as_bytes()) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected a response, got {other:?} from {line:?}"),
    }
}

/// Parses a line the session wrote as a server request.
pub fn server_request(line: &str) -> ServerRequest {
    match Message::parse(line.trim_end().as_bytes()) {
        Ok(Message::Request(r)) => ServerRequest::from_request(&r).expect("typed"),
        other => panic!("expected a request, got {other:?} from {line:?}"),
    }
}

/// A job with an arbitrary but well-formed notify.
pub fn job(job_id: &str, ntime: u32, clean: bool, height: u64) -> JobAnnouncement {
    JobAnnouncement {
        notify: Notify {
            job_id: job_id.to_owned(),
            prevhash: [0x11; 32],
            coinb1: vec![1, 0, 0, 0],
            coinb2: vec![0xff, 0xff, 0xff, 0xff],
            merkle_branch: vec![[0x22; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime,
            clean_jobs: clean,
        },
        height,
    }
}

/// Feeds one line and returns what came out.
pub fn feed(session: &mut PoolSession, line: &str, now: Instant) -> Vec<String> {
    session.handle_line(line.as_bytes(), now);
    drain_output(session)
}

/// Subscribes and authorizes `worker`, answering the authorization with `Ok`, and drops the
/// output. Returns the extranonce1.
pub fn ready(session: &mut PoolSession, worker: &str, now: Instant) -> Vec<u8> {
    let out = feed(
        session,
        r#"{"id":1,"method":"mining.subscribe","params":["test/1.0"]}"#,
        now,
    );
    assert_eq!(out.len(), 1, "one subscribe result: {out:?}");
    let line = format!(r#"{{"id":2,"method":"mining.authorize","params":["{worker}","x"]}}"#);
    session.handle_line(line.as_bytes(), now);
    for event in drain_events(session) {
        match event {
            PoolEvent::Authorize { token, .. } => session.authorize_result(token, Ok(())),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let out = drain_output(session);
    assert_eq!(out.len(), 1, "one authorize result: {out:?}");
    session.extranonce1().expect("subscribed").to_vec()
}

/// The only share event, if exactly one was raised.
pub fn only_share(session: &mut PoolSession) -> Option<ShareSubmission> {
    let events = drain_events(session);
    match events.as_slice() {
        [] => None,
        [PoolEvent::Share(s)] => Some(s.clone()),
        other => panic!("expected one share event, got {other:?}"),
    }
}

/// The token of the only event, which must be an authorization.
pub fn only_authorize(session: &mut PoolSession) -> AuthorizeToken {
    let events = drain_events(session);
    match events.as_slice() {
        [PoolEvent::Authorize { token, .. }] => *token,
        other => panic!("expected one authorize event, got {other:?}"),
    }
}

/// A `mining.submit` line.
pub fn submit_line(
    id: u64,
    worker: &str,
    job: &str,
    en2: &str,
    ntime: &str,
    nonce: &str,
) -> String {
    format!(
        r#"{{"id":{id},"method":"mining.submit","params":["{worker}","{job}","{en2}","{ntime}","{nonce}"]}}"#
    )
}

/// The error code of a response, if it carries one.
pub fn error_code(r: &Response) -> Option<i64> {
    r.error.as_ref().map(|e| e.code.as_i64())
}
