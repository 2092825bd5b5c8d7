//! Replays what real miners sent (pooler cpuminer 2.5.1 and cpuminer-opt 26.1, captured on
//! loopback; see `tests/data`) through the parser and a [`PoolSession`], and checks the
//! session's answers against what the scripted pool answered in the capture.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{load_capture, Dir, Entry};
use otedama_stratum::{
    ClientRequest, ExtranonceAllocator, JobAnnouncement, Message, Notify, PoolConfig, PoolEvent,
    PoolSession, Request, Response, ServerRequest, ShareVerdict, SubscribeResult,
};

const CAPTURES: [&str; 5] = [
    "minerd-sha256d.txt",
    "cpuminer-opt-sha256d.txt",
    "minerd-scrypt.txt",
    "cpuminer-opt-scrypt.txt",
    "minerd-passive.txt",
];

fn parse_request(line: &str) -> Request {
    match Message::parse(line.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?} from {line:?}"),
    }
}

fn parse_response(line: &str) -> Response {
    match Message::parse(line.as_bytes()) {
        Ok(Message::Response(r)) => r,
        other => panic!("not a response: {other:?} from {line:?}"),
    }
}

/// The capture's scripted pool: its subscribe result, difficulty and job.
struct Script {
    subscribe: SubscribeResult,
    difficulty: f64,
    notify: Notify,
}

fn script(entries: &[Entry]) -> Option<Script> {
    let mut subscribe = None;
    let mut difficulty = None;
    let mut notify = None;
    for e in entries.iter().filter(|e| e.dir == Dir::ServerToClient) {
        match Message::parse(e.line.as_bytes()).expect("capture S->C line parses") {
            Message::Response(r) if r.result.is_array() => {
                subscribe = SubscribeResult::from_json(&r.result);
            }
            Message::Response(_) => {}
            Message::Request(r) => match ServerRequest::from_request(&r).expect("typed") {
                ServerRequest::SetDifficulty(d) => difficulty = Some(d),
                ServerRequest::Notify(n) => notify = Some(n),
                other => panic!("unexpected server request {other:?}"),
            },
        }
    }
    Some(Script {
        subscribe: subscribe?,
        difficulty: difficulty?,
        notify: notify?,
    })
}

/// Every C->S line parses, typed, with its hex fields decoded to the right bytes, and
/// re-encodes to the same typed request with the same id.
#[test]
fn every_client_line_parses_and_round_trips() {
    let mut submits = 0;
    for name in CAPTURES {
        for e in load_capture(name)
            .iter()
            .filter(|e| e.dir == Dir::ClientToServer)
        {
            let request = parse_request(&e.line);
            let typed = ClientRequest::from_request(&request)
                .unwrap_or_else(|err| panic!("{name}: {err} in {:?}", e.line));
            assert_eq!(typed.method(), request.method);

            let again = parse_request(typed.to_request(request.id.clone()).to_line().trim_end());
            assert_eq!(again.id, request.id, "{name}: id survives re-encoding");
            assert_eq!(ClientRequest::from_request(&again).as_ref(), Ok(&typed));

            if let ClientRequest::Submit(s) = &typed {
                submits += 1;
                // Decode the capture's text independently of the crate.
                let text: Vec<&str> = request.params.as_array().expect("array")[2..5]
                    .iter()
                    .map(|v| v.as_str().expect("hex string"))
                    .collect();
                assert_eq!(s.extranonce2, hex::decode(text[0]).expect("hex"));
                let be = |t: &str| {
                    u32::from_be_bytes(hex::decode(t).expect("hex").try_into().expect("4 bytes"))
                };
                assert_eq!(s.ntime, be(text[1]));
                assert_eq!(s.nonce, be(text[2]));
                assert_eq!(s.worker, "otedama.worker1");
                assert_eq!(s.job_id, "job1");
                assert_eq!(s.version_bits, None);
            }
        }
    }
    assert_eq!(submits, 45 + 81 + 6 + 1, "all captured shares seen");
}

/// Every S->C line of the captures parses as a typed server request or subscribe result and
/// re-encodes to an equivalent message.
#[test]
fn every_server_line_parses_and_round_trips() {
    for name in CAPTURES {
        for e in load_capture(name)
            .iter()
            .filter(|e| e.dir == Dir::ServerToClient)
        {
            match Message::parse(e.line.as_bytes()).expect("parses") {
                Message::Request(r) => {
                    assert_eq!(r.id, None, "{name}: notifications carry a null id");
                    let typed = ServerRequest::from_request(&r).expect("typed");
                    let again = parse_request(typed.to_request(None).to_line().trim_end());
                    assert_eq!(again.method, r.method);
                    assert_eq!(ServerRequest::from_request(&again).expect("typed"), typed);
                    if let ServerRequest::Notify(n) = &typed {
                        // The notify's hex fields come back byte for byte.
                        assert_eq!(again.params, r.params, "{name}: notify is canonical");
                        let ntime = r.params[7].as_str().expect("ntime text");
                        assert_eq!(n.ntime, u32::from_str_radix(ntime, 16).expect("hex"));
                        assert_eq!(n.version, 0x2000_0000);
                        assert_eq!(n.nbits, 0x1d00_ffff);
                        assert!(n.clean_jobs);
                        assert!(n.merkle_branch.is_empty());
                        // Stratum's word-swapped prevhash, back in header order.
                        assert_eq!(&n.prevhash[..4], &[0, 0, 0, 0]);
                        assert_eq!(&n.prevhash[4..], &[0x11; 28]);
                    }
                }
                Message::Response(r) => {
                    assert_eq!(r.error, None);
                    let again = parse_response(
                        Response::ok(r.id.clone(), r.result.clone())
                            .to_line()
                            .trim_end(),
                    );
                    assert_eq!(again, r, "{name}: response round trip");
                    if r.result.is_array() {
                        let sub = SubscribeResult::from_json(&r.result).expect("subscribe result");
                        assert_eq!(sub.extranonce1, vec![0x08, 0x00, 0x00, 0x02]);
                        assert_eq!(sub.extranonce2_size, 4);
                        assert_eq!(sub.session_id(), Some("n1"));
                        assert_eq!(SubscribeResult::from_json(&sub.to_json()), Some(sub));
                    } else {
                        assert_eq!(r.result, serde_json::Value::Bool(true));
                    }
                }
            }
        }
    }
}

/// An allocator whose next value is `wanted`, with the values before it held by `_held`.
fn allocator_yielding(
    wanted: &[u8],
) -> (Arc<ExtranonceAllocator>, Vec<otedama_stratum::Extranonce1>) {
    let (prefix, last) = wanted.split_at(wanted.len() - 1);
    let allocator = ExtranonceAllocator::new(prefix, 1).expect("allocator");
    let held = (0..last[0])
        .map(|_| allocator.allocate(None).expect("free"))
        .collect();
    (allocator, held)
}

/// Drives a pool session with the capture's C->S lines at the capture's times, answering as
/// the scripted pool did, and compares each of its lines with the capture's S->C line.
fn replay(name: &str) {
    let entries = load_capture(name);
    let t0 = Instant::now();
    let script = script(&entries);
    let en1 = script.as_ref().map_or(vec![0x08, 0x00, 0x00, 0x02], |s| {
        s.subscribe.extranonce1.clone()
    });
    let (allocator, _held) = allocator_yielding(&en1);
    let config = PoolConfig {
        extranonce2_size: 4,
        initial_difficulty: script.as_ref().map_or(1.0, |s| s.difficulty),
        vardiff_enabled: false,
        ..PoolConfig::default()
    };
    let mut session = PoolSession::new(Arc::new(config), allocator, t0);

    let mut ours: Vec<String> = Vec::new();
    let mut requests: Vec<Request> = Vec::new();
    let mut shares = 0;
    let mut compared = 0;
    for e in &entries {
        let now = t0 + e.at;
        match e.dir {
            Dir::Note => {}
            Dir::ClientToServer => {
                let request = parse_request(&e.line);
                let typed = ClientRequest::from_request(&request).expect("typed");
                // Byte for byte what the miner sent.
                session.handle_line(e.line.as_bytes(), now);
                while let Some(event) = session.poll_event() {
                    match event {
                        PoolEvent::Authorize {
                            token,
                            username,
                            password,
                        } => {
                            assert_eq!(username, "otedama.worker1");
                            assert_eq!(password.as_deref(), Some("x"));
                            session.authorize_result(token, Ok(()));
                            let s = script
                                .as_ref()
                                .expect("a capture that authorizes has a job");
                            session.send_job(
                                &JobAnnouncement {
                                    notify: s.notify.clone(),
                                    height: 0,
                                },
                                now,
                            );
                        }
                        PoolEvent::Share(share) => {
                            let ClientRequest::Submit(submit) = &typed else {
                                panic!("share event from {typed:?}");
                            };
                            assert_eq!(share.extranonce1, en1);
                            assert_eq!(share.extranonce2, submit.extranonce2);
                            assert_eq!(share.extranonce2, [0, 0, 0, 0]);
                            assert_eq!(share.ntime, submit.ntime);
                            assert_eq!(share.nonce, submit.nonce);
                            assert_eq!(share.job_id, "job1");
                            assert_eq!(share.worker, "otedama.worker1");
                            let s = script.as_ref().expect("job");
                            assert_eq!(
                                share.ntime, s.notify.ntime,
                                "the miners keep the job's ntime"
                            );
                            assert_eq!(share.difficulty, s.difficulty);
                            assert_eq!(share.version_mask, 0);
                            shares += 1;
                            session.share_result(share.token, ShareVerdict::Accepted);
                        }
                        PoolEvent::Closed(reason) => panic!("{name}: closed: {reason:?}"),
                        other => panic!("{name}: unexpected event {other:?}"),
                    }
                }
                ours.extend(std::iter::from_fn(|| session.poll_output()));
                requests.push(request);
            }
            Dir::ServerToClient => {
                assert!(
                    compared < ours.len(),
                    "{name}: the capture answered {:?} but the session did not",
                    e.line
                );
                let mine = &ours[compared];
                compared += 1;
                assert!(mine.ends_with('\n') && !mine.trim_end().contains('\n'));
                compare(name, &e.line, mine);
            }
        }
        session.handle_timeout(now);
        assert!(!session.is_closed(), "{name}: session closed at {:?}", e.at);
    }

    let submits = requests
        .iter()
        .filter(|r| r.method == "mining.submit")
        .count();
    assert_eq!(shares, submits, "{name}: every submit became a share event");
    assert_eq!(session.share_counts(), (submits as u64, 0));
    if name == "minerd-passive.txt" {
        // The logger never answered; the session did, with the subscribe result.
        assert_eq!(compared, 0);
        assert_eq!(ours.len(), 1);
        let r = parse_response(ours[0].trim_end());
        assert_eq!(r.id.as_ref().map(|id| id.as_json()), Some("1"));
        let sub = SubscribeResult::from_json(&r.result).expect("subscribe result");
        assert_eq!(sub.extranonce1, en1);
    } else {
        assert_eq!(
            compared,
            ours.len(),
            "{name}: no extra lines: {:?}",
            &ours[compared..]
        );
        assert!(submits > 0);
    }
}

/// Our line must be equivalent to the capture's: same id text, same typed content.
fn compare(name: &str, theirs: &str, mine: &str) {
    match (
        Message::parse(theirs.as_bytes()).expect("capture parses"),
        Message::parse(mine.trim_end().as_bytes()).expect("ours parses"),
    ) {
        (Message::Response(t), Message::Response(m)) => {
            assert_eq!(
                m.id.as_ref().map(|id| id.as_json()),
                t.id.as_ref().map(|id| id.as_json()),
                "{name}: id echoed exactly ({mine:?} vs {theirs:?})"
            );
            assert_eq!(m.error, t.error, "{name}");
            match SubscribeResult::from_json(&t.result) {
                Some(sub) => {
                    let ours = SubscribeResult::from_json(&m.result).expect("our subscribe result");
                    assert_eq!(ours.extranonce1, sub.extranonce1, "{name}");
                    assert_eq!(ours.extranonce2_size, sub.extranonce2_size, "{name}");
                    assert!(ours.session_id().is_some());
                }
                None => assert_eq!(m.result, t.result, "{name}: {mine:?} vs {theirs:?}"),
            }
        }
        (Message::Request(t), Message::Request(m)) => {
            assert_eq!(m.id, None);
            assert_eq!(
                ServerRequest::from_request(&m).expect("ours typed"),
                ServerRequest::from_request(&t).expect("theirs typed"),
                "{name}: {mine:?} vs {theirs:?}"
            );
        }
        (t, m) => panic!("{name}: capture has {t:?}, session wrote {m:?}"),
    }
}

#[test]
fn replay_minerd_sha256d() {
    replay("minerd-sha256d.txt");
}

#[test]
fn replay_cpuminer_opt_sha256d() {
    replay("cpuminer-opt-sha256d.txt");
}

#[test]
fn replay_minerd_scrypt() {
    replay("minerd-scrypt.txt");
}

#[test]
fn replay_cpuminer_opt_scrypt() {
    replay("cpuminer-opt-scrypt.txt");
}

#[test]
fn replay_minerd_passive() {
    replay("minerd-passive.txt");
}

/// The passive capture's miner waited 22 s for a subscribe result; a session that had not
/// received its subscribe in that time would have closed it, one that has stays open.
#[test]
fn passive_miner_is_not_timed_out_once_subscribed() {
    let entries = load_capture("minerd-passive.txt");
    let t0 = Instant::now();
    let (mut session, _alloc) = common::session_with(PoolConfig::default(), t0);
    let subscribe = entries
        .iter()
        .find(|e| e.dir == Dir::ClientToServer)
        .expect("subscribe");
    session.handle_line(subscribe.line.as_bytes(), t0 + subscribe.at);
    let closed_at = entries.last().expect("entries").at;
    session.handle_timeout(t0 + closed_at);
    assert!(!session.is_closed());
    assert_eq!(session.user_agent(), Some("cpuminer/2.5.1"));
}
