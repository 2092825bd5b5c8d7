//! The Monero dialect against xmrig's capture: messages, the pool session and the miner
//! session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{decode_hex, encode_hex, MoneroTarget};
use serde_json::{json, Value};

use super::message::*;
use super::miner::*;
use super::pool::*;
use crate::v1::message::RequestId;
use crate::v1::miner::MinerCloseReason;
use crate::{CloseReason, ShareVerdict};
use proptest::prelude::*;

/// /work/shared/captures/xmrig-rx0.txt, verbatim (copied to `tests/data`).
const XMRIG_CAPTURE: &str = include_str!("../../tests/data/xmrig-rx0.txt");

/// (seconds, direction, raw line) for each captured line of the connection.
fn capture() -> Vec<(f64, &'static str, &'static str)> {
    XMRIG_CAPTURE
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (secs, rest) = l.split_once(' ')?;
            let (_conn, rest) = rest.split_once(' ')?;
            let (dir, raw) = rest.split_once(' ')?;
            (dir != "---").then(|| (secs.parse().ok().unwrap_or(0.0), dir, raw))
        })
        .collect()
}

fn json_of(line: &str) -> Value {
    serde_json::from_str(line.trim_end()).expect("json")
}

fn captured_job() -> MoneroJob {
    let (_, _, raw) = capture()[1];
    let Ok(MoneroMessage::Response(r)) = MoneroMessage::parse(raw.as_bytes()) else {
        panic!("login result")
    };
    let result = MoneroLoginResult::from_json(&r.result.expect("ok")).expect("result");
    result.job.expect("job")
}

#[test]
fn replays_the_xmrig_capture_byte_exact() {
    let t0 = Instant::now();
    let lines = capture();
    assert_eq!(lines.len(), 30);
    let mut pool = MoneroPoolSession::new(Arc::new(MoneroPoolConfig::default()), "sess1", t0);

    // The login.
    let (_, dir, login_line) = lines[0];
    assert_eq!(dir, "C->S");
    pool.handle_line(login_line.as_bytes(), t0);
    let Some(MoneroPoolEvent::Login { token, login }) = pool.poll_event() else {
        panic!("login event")
    };
    assert_eq!(
        login.login,
        "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC"
    );
    assert_eq!(login.pass.as_deref(), Some("x"));
    assert_eq!(
        login.agent.as_deref(),
        Some("XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0")
    );
    assert_eq!(login.rigid, None);
    assert_eq!(login.algo.len(), 31);
    assert_eq!(login.algo[20], "rx/0");
    assert_eq!(login.algo.last().map(String::as_str), Some("ghostrider"));

    // The job the logger handed out, answered the same way.
    let job = captured_job();
    assert_eq!(job.job_id, "job1");
    assert_eq!(job.blob.len(), 76);
    assert_eq!(job.target, MoneroTarget::Short(0x0041_8937));
    assert_eq!(job.difficulty(), 1000);
    assert_eq!((job.algo.as_deref(), job.height), (Some("rx/0"), Some(1)));
    assert_eq!(
        job.seed_hash.map(|s| encode_hex(&s)).as_deref(),
        Some("418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3")
    );
    pool.login_result(token, Ok(job.clone()));
    let ours = json_of(&pool.poll_output().expect("login result"));
    let mut theirs = json_of(lines[1].2);
    // The logger also echoed the session id inside the job; xmrig ignores it.
    if let Some(job) = theirs
        .pointer_mut("/result/job")
        .and_then(Value::as_object_mut)
    {
        job.remove("id");
    }
    assert_eq!(ours, theirs);

    // Every submit, with the server's exact answers.
    let mut shares = 0;
    for pair in lines[2..].chunks(2) {
        let [(t_c, "C->S", submit), (_, "S->C", answer)] = pair else {
            panic!("pairs")
        };
        let at = t0 + Duration::from_secs_f64(*t_c);
        pool.handle_line(submit.as_bytes(), at);
        let Some(MoneroPoolEvent::Share(share)) = pool.poll_event() else {
            panic!("share event for {submit}")
        };
        let params = &json_of(submit)["params"];
        let nonce_hex = params["nonce"].as_str().expect("nonce");
        assert_eq!(encode_hex(&share.blob[39..43]), nonce_hex);
        assert_eq!(share.blob[..39], job.blob[..39]);
        assert_eq!(share.blob[43..], job.blob[43..]);
        assert_eq!(
            encode_hex(&share.result),
            params["result"].as_str().expect("result")
        );
        assert_eq!(share.difficulty, 1000);
        assert!(MoneroTarget::Short(0x0041_8937).is_met_by(&share.result));
        if shares == 0 {
            assert_eq!(share.nonce, 0x0000_040d);
            assert_eq!(share.blob[39..43], [0x0d, 0x04, 0x00, 0x00]);
            assert_eq!(share.worker, login.login);
            assert_eq!(share.algo.as_deref(), Some("rx/0"));
        }
        pool.share_result(share.token, ShareVerdict::Accepted);
        assert_eq!(
            pool.poll_output().as_deref(),
            Some(format!("{answer}\n").as_str())
        );
        shares += 1;
    }
    assert_eq!(shares, 14);
    assert_eq!(pool.share_counts(), (14, 0));
    assert!(pool.poll_event().is_none());
    // Replayed again, every one is a duplicate.
    pool.handle_line(lines[2].2.as_bytes(), t0 + Duration::from_secs(50));
    assert!(pool.poll_event().is_none());
    let answer = json_of(&pool.poll_output().expect("dup"));
    assert_eq!(answer["error"]["message"], "Duplicate share");
    assert_eq!(answer["error"]["code"], -1);
}

/// A logged-in pool session on the captured job, its outputs drained.
fn logged_in(config: MoneroPoolConfig) -> MoneroPoolSession {
    let t0 = Instant::now();
    let mut pool = MoneroPoolSession::new(Arc::new(config), "sess1", t0);
    pool.handle_line(capture()[0].2.as_bytes(), t0);
    let Some(MoneroPoolEvent::Login { token, .. }) = pool.poll_event() else {
        panic!("login")
    };
    pool.login_result(token, Ok(captured_job()));
    pool.poll_output();
    pool
}

fn submit_line(job_id: &str, nonce: &str, result: &str) -> String {
    format!(
        r#"{{"id":9,"jsonrpc":"2.0","method":"submit","params":{{"id":"sess1","job_id":{job_id},"nonce":{nonce},"result":{result}}}}}"#
    )
}

const GOOD_RESULT: &str = r#""273b8652d2a8bbe7969dbc48c3fa1098548bfd6a7ad9e5531afad8b11ac02100""#;

fn error_message(pool: &mut MoneroPoolSession) -> String {
    let answer = json_of(&pool.poll_output().expect("an answer"));
    assert_eq!(answer["result"], Value::Null);
    answer["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[test]
fn malformed_submits_are_answered_not_dropped() {
    let now = Instant::now();
    let mut pool = logged_in(MoneroPoolConfig {
        ban_threshold: -1000,
        ..MoneroPoolConfig::default()
    });
    let cases = [
        (
            submit_line(r#""0""#, r#""0d040000""#, GOOD_RESULT),
            "Invalid job id",
        ),
        (
            submit_line(r#""zz""#, r#""0d040000""#, GOOD_RESULT),
            "Invalid job id",
        ),
        (
            submit_line(r#""JOB1""#, r#""0d040000""#, GOOD_RESULT),
            "Invalid job id",
        ),
        (
            submit_line("0", r#""0d040000""#, GOOD_RESULT),
            "job_id is not a string",
        ),
        (
            submit_line(r#""""#, r#""0d040000""#, GOOD_RESULT),
            "job_id of 0 bytes",
        ),
        (
            submit_line(r#""job1""#, r#""0d0400""#, GOOD_RESULT),
            "nonce is not 8 hex",
        ),
        (
            submit_line(r#""job1""#, r#""0d04000000""#, GOOD_RESULT),
            "nonce is not 8 hex",
        ),
        (
            submit_line(r#""job1""#, r#""0x040000""#, GOOD_RESULT),
            "nonce is not hex",
        ),
        (
            submit_line(r#""job1""#, "1037", GOOD_RESULT),
            "nonce is not a string",
        ),
        (
            submit_line(r#""job1""#, "null", GOOD_RESULT),
            "nonce is not a string",
        ),
        (
            submit_line(r#""job1""#, r#""0d040000""#, r#""abcd""#),
            "result is not 64 hex",
        ),
        (
            submit_line(
                r#""job1""#,
                r#""0d040000""#,
                &GOOD_RESULT.replace("27", "zz"),
            ),
            "result is not hex",
        ),
        (
            submit_line(
                r#""job1""#,
                r#""0d040000""#,
                &GOOD_RESULT.replace("00\"", "0000\""),
            ),
            "result is not 64 hex",
        ),
        (
            r#"{"id":9,"jsonrpc":"2.0","method":"submit","params":["sess1","job1"]}"#.to_owned(),
            "params is not an object",
        ),
        (
            submit_line(r#""job1""#, r#""0d040000""#, GOOD_RESULT).replace("sess1", "sess2"),
            "Unauthenticated",
        ),
        (
            submit_line(
                r#""job1""#,
                r#""0d040000""#,
                r#""ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff""#,
            ),
            "Low difficulty share",
        ),
    ];
    for (line, expected) in cases {
        pool.handle_line(line.as_bytes(), now);
        assert_eq!(pool.poll_event(), None, "{line}");
        let message = error_message(&mut pool);
        assert!(message.contains(expected), "{line}: {message}");
    }
    assert!(!pool.is_closed());
    // A case-flipped nonce is the same share.
    pool.handle_line(
        submit_line(r#""job1""#, r#""0d04000a""#, GOOD_RESULT).as_bytes(),
        now,
    );
    assert!(matches!(pool.poll_event(), Some(MoneroPoolEvent::Share(_))));
    pool.handle_line(
        submit_line(r#""job1""#, r#""0D04000A""#, GOOD_RESULT).as_bytes(),
        now,
    );
    assert_eq!(pool.poll_event(), None);
    assert_eq!(error_message(&mut pool), "Duplicate share");
}

#[test]
fn keepalived_unknown_methods_and_null_ids() {
    let now = Instant::now();
    let mut pool = logged_in(MoneroPoolConfig::default());
    pool.handle_line(
        br#"{"id":7,"jsonrpc":"2.0","method":"keepalived","params":{"id":"sess1"}}"#,
        now,
    );
    assert_eq!(
        json_of(&pool.poll_output().expect("answer")),
        json!({"id": 7, "jsonrpc": "2.0", "error": null, "result": {"status": "KEEPALIVED"}})
    );
    pool.handle_line(br#"{"id":"k","jsonrpc":"2.0","method":"keepalived"}"#, now);
    assert_eq!(json_of(&pool.poll_output().expect("answer"))["id"], "k");
    pool.handle_line(
        br#"{"id":8,"jsonrpc":"2.0","method":"getjob","params":{}}"#,
        now,
    );
    assert!(error_message(&mut pool).contains("unsupported method getjob"));
    pool.handle_line(
        br#"{"id":null,"jsonrpc":"2.0","method":"mystery","params":[]}"#,
        now,
    );
    pool.handle_line(
        br#"{"id":null,"jsonrpc":"2.0","method":"keepalived","params":{"id":"sess1"}}"#,
        now,
    );
    assert_eq!(pool.poll_output(), None);
    assert!(!pool.is_closed());
    // p2pool's way: no reply at all.
    let mut quiet = logged_in(MoneroPoolConfig {
        reply_keepalived: false,
        ..MoneroPoolConfig::default()
    });
    quiet.handle_line(
        br#"{"id":7,"jsonrpc":"2.0","method":"keepalived","params":{"id":"sess1"}}"#,
        now,
    );
    assert_eq!(quiet.poll_output(), None);
}

#[test]
fn new_heights_make_old_jobs_stale() {
    let now = Instant::now();
    let mut pool = logged_in(MoneroPoolConfig::default());
    let mut next = captured_job();
    next.job_id = "job2".into();
    next.height = Some(2);
    pool.send_job(&next);
    let line = json_of(&pool.poll_output().expect("job"));
    assert_eq!(line["method"], "job");
    assert_eq!(line["params"]["job_id"], "job2");
    assert_eq!(line.get("id"), None);
    pool.handle_line(
        submit_line(r#""job1""#, r#""0d040000""#, GOOD_RESULT).as_bytes(),
        now,
    );
    assert_eq!(error_message(&mut pool), "Stale share");
    pool.handle_line(
        submit_line(r#""job2""#, r#""0d040000""#, GOOD_RESULT).as_bytes(),
        now,
    );
    assert!(matches!(pool.poll_event(), Some(MoneroPoolEvent::Share(_))));
}

#[test]
fn refusals_timeouts_bans_and_garbage() {
    let t0 = Instant::now();
    let config = Arc::new(MoneroPoolConfig::default());
    let mut pool = MoneroPoolSession::new(Arc::clone(&config), "s", t0);
    pool.handle_line(b"\x16\x03\x01\x02\x00", t0);
    assert_eq!(
        pool.poll_event(),
        Some(MoneroPoolEvent::Closed(CloseReason::NotStratum))
    );

    let mut pool = MoneroPoolSession::new(Arc::clone(&config), "s", t0);
    pool.handle_line(capture()[0].2.as_bytes(), t0);
    let Some(MoneroPoolEvent::Login { token, .. }) = pool.poll_event() else {
        panic!("login")
    };
    pool.handle_line(capture()[0].2.as_bytes(), t0);
    assert_eq!(error_message(&mut pool), "already logged in");
    pool.login_result(token, Err("invalid payout address".into()));
    assert_eq!(error_message(&mut pool), "invalid payout address");
    assert!(!pool.is_logged_in());
    // Submits before a login are refused.
    pool.handle_line(
        submit_line(r#""job1""#, r#""0d040000""#, GOOD_RESULT).as_bytes(),
        t0,
    );
    assert_eq!(error_message(&mut pool), "Unauthenticated");
    pool.handle_timeout(t0 + Duration::from_secs(29));
    assert!(!pool.is_closed());
    pool.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(
        pool.poll_event(),
        Some(MoneroPoolEvent::Closed(CloseReason::SubscribeTimeout))
    );

    let mut pool = logged_in(MoneroPoolConfig::default());
    for i in 0..6 {
        pool.handle_line(
            submit_line(r#""nope""#, &format!(r#""0000000{i}""#), GOOD_RESULT).as_bytes(),
            t0,
        );
    }
    assert_eq!(
        pool.poll_event(),
        Some(MoneroPoolEvent::Closed(CloseReason::Banned))
    );
    assert_eq!(pool.poll_timeout(), None);
}

/// The login result of the capture, for a session whose id is `session_id`: the logger's
/// echo of the id inside the job left out (xmrig ignores it).
fn captured_login_result(session_id: &str) -> Value {
    let mut theirs = json_of(capture()[1].2);
    if let Some(job) = theirs
        .pointer_mut("/result/job")
        .and_then(Value::as_object_mut)
    {
        job.remove("id");
    }
    theirs["result"]["id"] = Value::from(session_id);
    theirs
}

#[test]
fn the_common_protocol_answers_a_login_with_the_next_job() {
    use crate::{ExtranonceAllocator, PoolProtocol, SessionEvent};

    let t0 = Instant::now();
    let config = Arc::new(MoneroPoolConfig::default());
    let allocator = ExtranonceAllocator::new(&[0x5e], 1).expect("allocator");
    let Ok(mut pool) =
        <MoneroPoolSession as PoolProtocol>::open(Arc::clone(&config), Arc::clone(&allocator), t0);
    // The session id is the allocator's value, in hex.
    let session_id = pool.session_id().to_owned();
    assert_eq!(session_id, "5e00");

    PoolProtocol::handle_line(&mut pool, capture()[0].2.as_bytes(), t0);
    let Some(SessionEvent::Authorize {
        token,
        username,
        password,
    }) = PoolProtocol::poll_event(&mut pool)
    else {
        panic!("login as an authorization")
    };
    assert_eq!(username, json_of(capture()[0].2)["params"]["login"]);
    assert_eq!(password.as_deref(), Some("x"));
    assert!(!PoolProtocol::wants_jobs(&pool));
    assert_eq!(PoolProtocol::worker(&pool), None);

    // Accepted, the login waits for a job; the login clock keeps running meanwhile.
    PoolProtocol::authorize_result(&mut pool, token, Ok(()));
    assert!(PoolProtocol::wants_jobs(&pool));
    assert_eq!(PoolProtocol::worker(&pool), Some(username.as_str()));
    assert!(!pool.is_logged_in());
    assert_eq!(pool.poll_output(), None);
    assert_eq!(
        PoolProtocol::poll_timeout(&pool),
        Some(t0 + config.login_timeout)
    );
    // A second login meanwhile is refused.
    PoolProtocol::handle_line(&mut pool, capture()[0].2.as_bytes(), t0);
    assert_eq!(error_message(&mut pool), "already logged in");

    // The first job answers the login, exactly as the capture's pool did.
    let job = captured_job();
    PoolProtocol::send_job(&mut pool, &job, t0);
    let ours = json_of(&pool.poll_output().expect("login result"));
    assert_eq!(ours, captured_login_result(&session_id));
    assert!(pool.is_logged_in());
    assert_eq!(pool.worker(), Some(username.as_str()));
    assert_eq!(
        PoolProtocol::poll_timeout(&pool),
        Some(t0 + config.idle_timeout)
    );

    // The captured submit, with this session's id, and its verdict.
    let (_, _, submit) = capture()[2];
    let submit = submit.replace("\"sess1\"", &format!("\"{session_id}\""));
    PoolProtocol::handle_line(&mut pool, submit.as_bytes(), t0);
    let Some(SessionEvent::Share(share)) = PoolProtocol::poll_event(&mut pool) else {
        panic!("share")
    };
    assert_eq!((share.nonce, share.difficulty), (0x0000_040d, 1000));
    PoolProtocol::share_result(&mut pool, share.token, ShareVerdict::Accepted);
    assert_eq!(
        PoolProtocol::poll_output(&mut pool).as_deref(),
        Some(format!("{}\n", capture()[3].2).as_str())
    );

    // Later jobs go out as notifications.
    let mut next = job.clone();
    next.job_id = "job2".into();
    PoolProtocol::send_job(&mut pool, &next, t0);
    let line = json_of(&pool.poll_output().expect("job"));
    assert_eq!(
        (line["method"].as_str(), line.get("id")),
        (Some("job"), None)
    );

    // Closing forgets nothing it must answer: a verdict afterwards writes nothing.
    PoolProtocol::handle_line(
        &mut pool,
        submit.replace("0d040000", "0e040000").as_bytes(),
        t0,
    );
    let Some(SessionEvent::Share(late)) = PoolProtocol::poll_event(&mut pool) else {
        panic!("share")
    };
    PoolProtocol::close(&mut pool, CloseReason::Requested);
    PoolProtocol::share_result(&mut pool, late.token, ShareVerdict::Accepted);
    assert_eq!(pool.poll_output(), None);
    assert_eq!(
        PoolProtocol::poll_event(&mut pool),
        Some(SessionEvent::Closed(CloseReason::Requested))
    );
    assert!(!PoolProtocol::wants_jobs(&pool));

    // A refusal answers at once.
    let Ok(mut refused) =
        <MoneroPoolSession as PoolProtocol>::open(Arc::clone(&config), Arc::clone(&allocator), t0);
    PoolProtocol::handle_line(&mut refused, capture()[0].2.as_bytes(), t0);
    let Some(SessionEvent::Authorize { token, .. }) = PoolProtocol::poll_event(&mut refused) else {
        panic!("login")
    };
    PoolProtocol::authorize_result(&mut refused, token, Err("invalid payout address".into()));
    assert_eq!(error_message(&mut refused), "invalid payout address");
    assert!(!PoolProtocol::wants_jobs(&refused));

    // With every session id taken, a session closes at once.
    let held: Vec<_> = std::iter::from_fn(|| allocator.allocate(None)).collect();
    assert_eq!(held.len(), 255);
    let Ok(mut full) =
        <MoneroPoolSession as PoolProtocol>::open(Arc::clone(&config), Arc::clone(&allocator), t0);
    assert_eq!(
        PoolProtocol::poll_event(&mut full),
        Some(SessionEvent::Closed(CloseReason::PoolFull))
    );
    assert!(PoolProtocol::is_closed(&full));
}

#[test]
fn miner_session_against_the_captured_pool() {
    let t0 = Instant::now();
    let lines = capture();
    let config = MoneroMinerConfig {
        login: "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC".into(),
        agent: "XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0".into(),
        keepalive: Some(Duration::from_secs(60)),
        ..MoneroMinerConfig::default()
    };
    let mut miner = MoneroMinerSession::new(config, t0);
    miner.start();
    let login = json_of(&miner.poll_output().expect("login"));
    assert_eq!(login["method"], "login");
    assert_eq!(login["jsonrpc"], "2.0");
    assert_eq!(
        login["params"]["login"],
        json_of(lines[0].2)["params"]["login"]
    );
    miner.handle_line(lines[1].2.as_bytes(), t0);
    assert_eq!(
        miner.poll_event(),
        Some(MoneroMinerEvent::LoggedIn {
            session_id: "sess1".into(),
            extensions: vec!["algo".into(), "keepalive".into()],
        })
    );
    let Some(MoneroMinerEvent::NewJob { job, difficulty }) = miner.poll_event() else {
        panic!("job")
    };
    assert_eq!((job.job_id.as_str(), difficulty), ("job1", 1000));

    // The miner's submit is the captured line, field for field.
    let captured = json_of(lines[2].2);
    let params = &captured["params"];
    let mut result = [0u8; 32];
    result.copy_from_slice(&decode_hex(params["result"].as_str().expect("r")).expect("hex"));
    let seq = miner.submit(MoneroMinerShare {
        job_id: "job1".into(),
        nonce: 0x0000_040d,
        result,
        algo: Some("rx/0".into()),
    });
    assert_eq!(json_of(&miner.poll_output().expect("submit")), captured);
    miner.handle_line(lines[3].2.as_bytes(), t0);
    assert_eq!(
        miner.poll_event(),
        Some(MoneroMinerEvent::ShareResult {
            sequence: seq,
            accepted: true,
            error: None
        })
    );

    // A rejection in p2pool's code-less form.
    let seq = miner.submit(MoneroMinerShare {
        job_id: "job1".into(),
        nonce: 1,
        result,
        algo: None,
    });
    miner.poll_output();
    miner.handle_line(
        br#"{"id":3,"jsonrpc":"2.0","error":{"message":"Stale share"}}"#,
        t0,
    );
    assert_eq!(
        miner.poll_event(),
        Some(MoneroMinerEvent::ShareResult {
            sequence: seq,
            accepted: false,
            error: Some(MoneroError {
                code: None,
                message: "Stale share".into()
            }),
        })
    );
    // Unknown jobs fail locally.
    miner.submit(MoneroMinerShare {
        job_id: "job9".into(),
        nonce: 1,
        result,
        algo: None,
    });
    assert!(matches!(
        miner.poll_event(),
        Some(MoneroMinerEvent::ShareResult {
            accepted: false,
            ..
        })
    ));
    assert_eq!(miner.poll_output(), None);

    // A new job notification, and a hostile one.
    let mut next = job.clone();
    next.job_id = "job2".into();
    next.target = MoneroTarget::Long(u64::MAX / 5_000_000);
    miner.handle_line(MoneroServerRequest::Job(next).to_line().as_bytes(), t0);
    assert!(matches!(
        miner.poll_event(),
        Some(MoneroMinerEvent::NewJob {
            difficulty: 5_000_000,
            ..
        })
    ));
    for bad in [
        r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"00","job_id":"j","target":"ffffffff"}}"#,
        r#"{"jsonrpc":"2.0","method":"job","params":{"job_id":"j","target":"ffffffff"}}"#,
        r#"{"jsonrpc":"2.0","method":"job","params":[1,2,3]}"#,
    ] {
        miner.handle_line(bad.as_bytes(), t0);
        assert!(
            matches!(miner.poll_event(), Some(MoneroMinerEvent::Error(_))),
            "{bad}"
        );
    }

    // Keepalive after 60 s without sending.
    let t1 = t0 + Duration::from_secs(60);
    assert!(miner.poll_timeout().is_some_and(|d| d <= t1));
    miner.handle_timeout(t1);
    let keepalive = json_of(&miner.poll_output().expect("keepalived"));
    assert_eq!(keepalive["method"], "keepalived");
    assert_eq!(keepalive["params"], json!({"id": "sess1"}));
}

#[test]
fn miner_login_refused_or_silent() {
    let t0 = Instant::now();
    let mut miner = MoneroMinerSession::new(MoneroMinerConfig::default(), t0);
    miner.start();
    miner.handle_line(
        br#"{"id":1,"jsonrpc":"2.0","error":{"code":-1,"message":"Invalid address"},"result":null}"#,
        t0,
    );
    assert_eq!(
        miner.poll_event(),
        Some(MoneroMinerEvent::LoginFailed(MoneroError::new(
            "Invalid address"
        )))
    );
    assert_eq!(
        miner.poll_event(),
        Some(MoneroMinerEvent::Closed(MinerCloseReason::Rejected))
    );
    let mut miner = MoneroMinerSession::new(MoneroMinerConfig::default(), t0);
    miner.start();
    miner.handle_timeout(t0);
    miner.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(
        miner.poll_event(),
        Some(MoneroMinerEvent::Closed(MinerCloseReason::Timeout))
    );
}

fn target() -> impl Strategy<Value = MoneroTarget> {
    prop_oneof![
        (1..=u32::MAX).prop_map(MoneroTarget::Short),
        (1..=u64::MAX).prop_map(MoneroTarget::Long),
    ]
}

fn job() -> impl Strategy<Value = MoneroJob> {
    (
        proptest::collection::vec(any::<u8>(), 43..=120),
        "[0-9a-zA-Z+/]{1,20}",
        target(),
        proptest::option::of("[a-z]{2}/[0-9]"),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(blob, job_id, target, algo, height, seed_hash)| MoneroJob {
                blob,
                job_id,
                target,
                algo,
                height,
                seed_hash,
            },
        )
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn reparse_client(line: &str) -> MoneroClientRequest {
    let Ok(MoneroMessage::Request(r)) = MoneroMessage::parse(line.trim_end().as_bytes()) else {
        panic!("request")
    };
    MoneroClientRequest::from_request(&r).expect("params")
}

proptest! {
    #[test]
    fn logins_round_trip(
        login in text(),
        pass in proptest::option::of(text()),
        agent in proptest::option::of(text()),
        rigid in proptest::option::of(text()),
        algo in proptest::collection::vec("[a-z/0-9-]{1,12}", 0..5),
    ) {
        let req = MoneroClientRequest::Login(MoneroLogin { login, pass, agent, rigid, algo });
        prop_assert_eq!(reparse_client(&req.to_line(Some(RequestId::number(1)))), req);
    }

    #[test]
    fn submits_and_keepalives_round_trip(
        id in text(),
        job_id in "[0-9a-f]{1,16}",
        nonce in any::<u32>(),
        result in any::<[u8; 32]>(),
        algo in proptest::option::of(text()),
        keep in proptest::option::of(text()),
    ) {
        let req = MoneroClientRequest::Submit(MoneroSubmit { id, job_id, nonce, result, algo });
        prop_assert_eq!(reparse_client(&req.to_line(Some(RequestId::string("s")))), req);
        let ka = MoneroClientRequest::Keepalived(keep);
        prop_assert_eq!(reparse_client(&ka.to_line(Some(RequestId::number(3)))), ka);
    }

    #[test]
    fn jobs_and_login_results_round_trip(
        j in job(),
        id in text(),
        with_job in any::<bool>(),
        extensions in proptest::collection::vec("[a-z]{1,10}", 0..4),
    ) {
        let notification = MoneroServerRequest::Job(j.clone());
        let Ok(MoneroMessage::Request(r)) = MoneroMessage::parse(notification.to_line().trim_end().as_bytes()) else {
            return Err(TestCaseError::fail("not a request"));
        };
        prop_assert!(r.id.is_none());
        prop_assert_eq!(MoneroServerRequest::from_request(&r), Ok(notification));
        let result = MoneroLoginResult {
            id,
            job: with_job.then_some(j),
            status: "OK".into(),
            extensions,
        };
        let response = MoneroResponse { id: Some(RequestId::number(1)), result: Ok(result.to_json()) };
        let Ok(MoneroMessage::Response(back)) = MoneroMessage::parse(response.to_line().trim_end().as_bytes()) else {
            return Err(TestCaseError::fail("not a response"));
        };
        prop_assert_eq!(&back, &response);
        let Ok(v) = back.result else { return Err(TestCaseError::fail("error")) };
        prop_assert_eq!(MoneroLoginResult::from_json(&v), Ok(result));
    }

    #[test]
    fn responses_round_trip(
        id in any::<u64>(),
        code in proptest::option::of(any::<i64>()),
        message in text(),
        status in "[A-Z]{1,12}",
        ok in any::<bool>(),
    ) {
        let result = if ok { Ok(monero_status(&status)) } else { Err(MoneroError { code, message }) };
        let response = MoneroResponse { id: Some(RequestId::number(id)), result };
        let Ok(MoneroMessage::Response(back)) = MoneroMessage::parse(response.to_line().trim_end().as_bytes()) else {
            return Err(TestCaseError::fail("not a response"));
        };
        prop_assert_eq!(back, response);
    }

    #[test]
    fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200), text in "[ -~]{0,200}") {
        let now = Instant::now();
        let mut pool = logged_in(MoneroPoolConfig::default());
        pool.handle_line(&line, now);
        pool.handle_line(text.as_bytes(), now);
        let mut miner = MoneroMinerSession::new(MoneroMinerConfig::default(), now);
        miner.start();
        miner.handle_line(&line, now);
        miner.handle_line(text.as_bytes(), now);
    }
}

#[test]
fn an_id_too_large_for_a_float_is_echoed_and_the_answer_reads_back() {
    let mut pool = logged_in(MoneroPoolConfig::default());
    let id = "1000000000000000000000000000000000000781652251.949999995e99999999999999999998";
    let line = submit_line(r#""job1""#, r#""9828|000""#, GOOD_RESULT).replacen("9", id, 1);
    pool.handle_line(line.as_bytes(), Instant::now());
    let answer = pool.poll_output().expect("an answer");
    assert!(answer.starts_with(&format!("{{\"id\":{id},")), "{answer}");
    let read = MoneroMessage::parse(answer.trim_end().as_bytes()).expect("the answer reads");
    let MoneroMessage::Response(response) = read else {
        panic!("a response")
    };
    let error = response.result.expect_err("a refused share");
    assert!(
        error.message.contains("nonce is not hex"),
        "{}",
        error.message
    );
}
