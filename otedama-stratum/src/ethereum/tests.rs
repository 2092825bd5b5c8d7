//! EthereumStratum: the NiceHash specification's examples, kawpowminer's forms, and the
//! pool session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otedama_core::{encode_hex, Target};
use serde_json::{json, Value};

use super::message::*;
use super::pool::*;
use crate::v1::message::{Authorize, Message, ParamsError, Request, RequestId};
use crate::{CloseReason, ExtranonceAllocator, ShareVerdict};
use otedama_core::BITCOIN_DIFF1_TARGET;
use proptest::prelude::*;

fn parse_request(line: &str) -> Request {
    match Message::parse(line.trim_end().as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn json_of(line: &str) -> Value {
    serde_json::from_str(line.trim_end()).expect("json")
}

const SEED: &str = "a9b4d4f2e7f5c7ac1a5d5b3e8d1ef0c0ce6e0b3e8d1a4c5f3b2e1d0c9b8a7f60";
const HEADER: &str = "0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcd";

#[test]
fn nicehash_specification_examples() {
    // Subscribe and its result.
    let req = parse_request(
        r#"{"id": 1, "method": "mining.subscribe", "params": ["MinerName/1.0.0", "EthereumStratum/1.0.0"]}"#,
    );
    assert_eq!(
        EthClientRequest::from_request(&req),
        Ok(EthClientRequest::Subscribe(EthSubscribe {
            agent: Some("MinerName/1.0.0".into()),
            protocol: Some(ETH_STRATUM_PROTOCOL.into()),
        }))
    );
    let result = EthSubscribeResult::from_json(&json!([
        [
            "mining.notify",
            "ae6812eb4cd7735a302a8a9dd95cf71f",
            "EthereumStratum/1.0.0"
        ],
        "080c"
    ]))
    .expect("result");
    assert_eq!(result.extranonce, vec![0x08, 0x0c]);
    assert_eq!(
        result.session_id.as_deref(),
        Some("ae6812eb4cd7735a302a8a9dd95cf71f")
    );
    // kawpowminer's form.
    let kaw = EthSubscribeResult::from_json(&json!([null, "a1"])).expect("kawpow");
    assert_eq!((kaw.session_id, kaw.extranonce), (None, vec![0xa1]));
    assert!(EthSubscribeResult::from_json(&json!([null, "0102030405060708"])).is_err());

    // Notify, difficulty, extranonce.
    let notify = parse_request(&format!(
        r#"{{"id": null, "method": "mining.notify", "params": ["bf0488aa", "{SEED}", "{HEADER}", true]}}"#
    ));
    let Ok(EthServerRequest::Notify(n)) = EthServerRequest::from_request(&notify) else {
        panic!("notify")
    };
    assert_eq!((n.job_id.as_str(), n.clean), ("bf0488aa", true));
    assert_eq!(encode_hex(&n.seed_hash), SEED);
    let d = parse_request(r#"{"id": null, "method": "mining.set_difficulty", "params": [0.5]}"#);
    assert_eq!(
        EthServerRequest::from_request(&d),
        Ok(EthServerRequest::SetDifficulty(0.5))
    );
    // diff 1 is Bitcoin's diff-1 boundary; diff 0.5 doubles it.
    assert_eq!(eth_share_target(1.0), BITCOIN_DIFF1_TARGET);
    assert_eq!(
        eth_share_target(0.5).to_string(),
        "00000001fffe0000000000000000000000000000000000000000000000000000"
    );
    let x = parse_request(r#"{"id": null, "method": "mining.set_extranonce", "params": ["af4c"]}"#);
    assert_eq!(
        EthServerRequest::from_request(&x),
        Ok(EthServerRequest::SetExtranonce(vec![0xaf, 0x4c]))
    );

    // Submit: extranonce af4c + miner nonce 6 bytes.
    let s = parse_request(
        r#"{"id": 244, "method": "mining.submit", "params": ["username", "bf0488aa", "6a909d9bbc0f"]}"#,
    );
    let Ok(EthClientRequest::Submit(submit)) = EthClientRequest::from_request(&s) else {
        panic!("submit")
    };
    assert_eq!(
        submit.full_nonce(&[0xaf, 0x4c]),
        Some(0xaf4c_6a90_9d9b_bc0f)
    );
    assert_eq!(submit.full_nonce(&[0xaf]), None);
}

#[test]
fn kawpowminer_messages() {
    let notify = parse_request(&format!(
        r#"{{"id":null,"method":"mining.notify","params":["1a","0x{HEADER}","{SEED}","00000000ffff",false,1234567,"1b00f2e3"]}}"#
    ));
    let Ok(EthServerRequest::KawpowNotify(n)) = EthServerRequest::from_request(&notify) else {
        panic!("kawpow notify")
    };
    assert_eq!(encode_hex(&n.header_hash), HEADER);
    assert_eq!(n.height, 1_234_567);
    assert_eq!(n.nbits, Some(0x1b00_f2e3));
    // "00000000ffff" is a number: left-padded, not right-padded.
    assert_eq!(
        n.share_target,
        Target::from_be_bytes({
            let mut b = [0u8; 32];
            b[30] = 0xff;
            b[31] = 0xff;
            b
        })
    );
    let t = parse_request(&format!(
        r#"{{"id":null,"method":"mining.set_target","params":["{}"]}}"#,
        "00000000ffff0000000000000000000000000000000000000000000000000000"
    ));
    assert_eq!(
        EthServerRequest::from_request(&t),
        Ok(EthServerRequest::SetTarget(BITCOIN_DIFF1_TARGET))
    );
    let s = parse_request(&format!(
        r#"{{"id":40,"jsonrpc":"2.0","method":"mining.submit","params":["w","1a","0xa1b2c3d4e5f60718","0x{HEADER}","0x{SEED}"]}}"#
    ));
    let Ok(EthClientRequest::Submit(submit)) = EthClientRequest::from_request(&s) else {
        panic!("submit")
    };
    assert_eq!(submit.full_nonce(&[0xa1]), Some(0xa1b2_c3d4_e5f6_0718));
    assert_eq!(submit.full_nonce(&[0xa2]), None, "prefix mismatch");
    assert_eq!(submit.full_nonce(&[]), Some(0xa1b2_c3d4_e5f6_0718));
    assert!(submit.mix_hash.is_some());
}

#[test]
fn wrong_types_are_errors_not_panics() {
    let cases = [
        r#"{"id":1,"method":"mining.notify","params":[1,2,3,4]}"#,
        r#"{"id":1,"method":"mining.notify","params":"x"}"#,
        r#"{"id":1,"method":"mining.notify","params":["j","00","11",true]}"#,
        r#"{"id":1,"method":"mining.notify","params":["j",null,null,null,null,null,null]}"#,
        r#"{"id":1,"method":"mining.set_difficulty","params":[-2]}"#,
        r#"{"id":1,"method":"mining.set_difficulty","params":[]}"#,
        r#"{"id":1,"method":"mining.set_target","params":[""]}"#,
        r#"{"id":1,"method":"mining.set_target","params":["zz"]}"#,
        r#"{"id":1,"method":"mining.set_extranonce","params":["0102030405060708"]}"#,
        r#"{"id":1,"method":"mining.set_extranonce","params":[7]}"#,
    ];
    for line in cases {
        assert!(
            EthServerRequest::from_request(&parse_request(line)).is_err(),
            "{line}"
        );
    }
    let client = [
        r#"{"id":1,"method":"mining.submit","params":["w","j",""]}"#,
        r#"{"id":1,"method":"mining.submit","params":["w","j","010203040506070809"]}"#,
        r#"{"id":1,"method":"mining.submit","params":["w","j",12]}"#,
        r#"{"id":1,"method":"mining.submit","params":["w","j","0x12","0x00"]}"#,
        r#"{"id":1,"method":"mining.submit","params":{"w":1}}"#,
        r#"{"id":1,"method":"mining.authorize","params":[null]}"#,
    ];
    for line in client {
        assert!(
            EthClientRequest::from_request(&parse_request(line)).is_err(),
            "{line}"
        );
    }
}

fn pool() -> EthPoolSession {
    let allocator = ExtranonceAllocator::new(&[0xaf], 1).expect("allocator");
    let now = Instant::now();
    let mut s =
        EthPoolSession::new(Arc::new(EthPoolConfig::default()), allocator, now).expect("session");
    s.handle_line(
        br#"{"id": 1, "method": "mining.subscribe", "params": ["Miner/1.0", "EthereumStratum/1.0.0"]}"#,
        now,
    );
    s.handle_line(
        br#"{"id": 2, "method": "mining.authorize", "params": ["wallet.rig", "x"]}"#,
        now,
    );
    let Some(EthPoolEvent::Authorize { token, .. }) = s.poll_event() else {
        panic!("authorize")
    };
    s.authorize_result(token, Ok(()));
    s
}

fn job(id: &str, clean: bool) -> EthNotify {
    EthNotify {
        job_id: id.into(),
        seed_hash: [1; 32],
        header_hash: [2; 32],
        clean,
    }
}

#[test]
fn pool_session_flow() {
    let now = Instant::now();
    let mut s = pool();
    let sub = json_of(&s.poll_output().expect("subscribe"));
    assert_eq!(
        sub["result"],
        json!([["mining.notify", "af00", "EthereumStratum/1.0.0"], "af00"])
    );
    assert_eq!(json_of(&s.poll_output().expect("auth"))["result"], true);
    s.set_difficulty(0.5);
    s.send_job(&job("j1", true));
    let d = json_of(&s.poll_output().expect("difficulty"));
    assert_eq!(d["method"], "mining.set_difficulty");
    assert_eq!(d["params"], json!([0.5]));
    let n = json_of(&s.poll_output().expect("notify"));
    assert_eq!(n["params"][0], "j1");
    assert_eq!(n["params"][3], true);

    let submit = |nonce: &str| {
        format!(
            r#"{{"id": 5, "method": "mining.submit", "params": ["wallet.rig", "j1", "{nonce}"]}}"#
        )
    };
    s.handle_line(submit("0102030405aa").as_bytes(), now);
    let Some(EthPoolEvent::Share(share)) = s.poll_event() else {
        panic!("share")
    };
    assert_eq!(share.nonce, 0xaf00_0102_0304_05aa);
    assert_eq!(share.difficulty, 0.5);
    assert_eq!(share.target, eth_share_target(0.5));
    s.share_result(share.token, ShareVerdict::Accepted);
    assert_eq!(
        json_of(&s.poll_output().expect("ok")),
        json!({"id": 5, "result": true, "error": null})
    );
    // Case-flipped hex is the same nonce.
    s.handle_line(submit("0102030405AA").as_bytes(), now);
    let dup = json_of(&s.poll_output().expect("dup"));
    assert_eq!(dup["result"], false);
    assert_eq!(dup["error"][0], 22);
    // Wrong nonce size, unknown job, unknown worker, unknown method, null id.
    s.handle_line(submit("01020304").as_bytes(), now);
    assert_eq!(json_of(&s.poll_output().expect("size"))["error"][0], 20);
    s.handle_line(
        br#"{"id": 6, "method": "mining.submit", "params": ["wallet.rig", "nope", "0102030405aa"]}"#,
        now,
    );
    assert_eq!(json_of(&s.poll_output().expect("job"))["error"][0], 21);
    s.handle_line(
        br#"{"id": 7, "method": "mining.submit", "params": ["other", "j1", "0102030405ab"]}"#,
        now,
    );
    assert_eq!(json_of(&s.poll_output().expect("worker"))["error"][0], 24);
    s.handle_line(
        br#"{"id": 8, "method": "eth_submitHashrate", "params": ["0x1", "0x2"]}"#,
        now,
    );
    assert_eq!(json_of(&s.poll_output().expect("unknown"))["error"][0], 20);
    s.handle_line(
        br#"{"id": null, "method": "mining.extranonce.subscribe", "params": []}"#,
        now,
    );
    assert_eq!(s.poll_output(), None);
    assert!(s.extranonce_subscribed());
    assert!(!s.is_closed());
    // A clean job voids j1.
    s.send_job(&job("j2", true));
    assert_eq!(
        json_of(&s.poll_output().expect("notify"))["params"][0],
        "j2"
    );
    s.handle_line(submit("0102030405ac").as_bytes(), now);
    assert_eq!(json_of(&s.poll_output().expect("stale"))["error"][0], 21);
    assert_eq!(s.share_counts(), (1, 5));
}

#[test]
fn pool_session_limits() {
    let allocator = ExtranonceAllocator::new(&[1, 2], 2).expect("allocator");
    assert_eq!(
        EthPoolSession::new(
            Arc::new(EthPoolConfig::default()),
            allocator,
            Instant::now()
        )
        .err(),
        Some(EthConfigError::ExtranonceTooLong { len: 4 })
    );
    let t0 = Instant::now();
    let allocator = ExtranonceAllocator::new(&[], 1).expect("allocator");
    let mut s =
        EthPoolSession::new(Arc::new(EthPoolConfig::default()), allocator, t0).expect("session");
    s.handle_line(b"GET / HTTP/1.1", t0);
    assert_eq!(
        s.poll_event(),
        Some(EthPoolEvent::Closed(CloseReason::NotStratum))
    );
    let mut s = pool();
    s.handle_timeout(Instant::now() + Duration::from_secs(601));
    assert_eq!(
        s.poll_event(),
        Some(EthPoolEvent::Closed(CloseReason::Idle))
    );
}

fn hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn reparse_server(req: &EthServerRequest) -> Result<EthServerRequest, ParamsError> {
    EthServerRequest::from_request(&parse_request(&req.to_request(None).to_line()))
}

fn reparse_client(req: &EthClientRequest) -> Result<EthClientRequest, ParamsError> {
    EthClientRequest::from_request(&parse_request(
        &req.to_request(Some(RequestId::number(1))).to_line(),
    ))
}

proptest! {
    #[test]
    fn server_messages_round_trip(
        job_id in "[0-9a-f]{1,16}",
        seed in hash(),
        header in hash(),
        target in hash(),
        clean in any::<bool>(),
        height in any::<u64>(),
        nbits in proptest::option::of(any::<u32>()),
        d in 1e-9f64..1e12,
        extranonce in proptest::collection::vec(any::<u8>(), 0..=7),
    ) {
        let messages = [
            EthServerRequest::Notify(EthNotify { job_id: job_id.clone(), seed_hash: seed, header_hash: header, clean }),
            EthServerRequest::KawpowNotify(KawpowNotify {
                job_id, header_hash: header, seed_hash: seed,
                share_target: Target::from_be_bytes(target), clean, height, nbits,
            }),
            EthServerRequest::SetDifficulty(d),
            EthServerRequest::SetTarget(Target::from_be_bytes(target)),
            EthServerRequest::SetExtranonce(extranonce),
        ];
        for m in messages {
            prop_assert_eq!(reparse_server(&m), Ok(m));
        }
    }

    #[test]
    fn client_messages_round_trip(
        agent in proptest::option::of("[ -~]{0,20}"),
        protocol in proptest::option::of("[ -~]{0,20}"),
        worker in "[ -~]{0,20}",
        password in proptest::option::of("[ -~]{0,20}"),
        job_id in "[0-9a-z]{1,16}",
        nonce in proptest::collection::vec(any::<u8>(), 1..=8),
        header in proptest::option::of(hash()),
        mix in proptest::option::of(hash()),
    ) {
        let messages = [
            EthClientRequest::Subscribe(EthSubscribe { agent, protocol }),
            EthClientRequest::Authorize(Authorize { username: worker.clone(), password: Some(password.unwrap_or_default()) }),
            EthClientRequest::ExtranonceSubscribe,
            EthClientRequest::Submit(EthSubmit { worker, job_id, nonce, header_hash: header, mix_hash: mix }),
        ];
        for m in messages {
            prop_assert_eq!(reparse_client(&m), Ok(m));
        }
    }

    #[test]
    fn subscribe_results_round_trip(
        sid in proptest::option::of("[0-9a-f]{1,32}"),
        protocol in proptest::option::of("[ -~]{1,24}"),
        extranonce in proptest::collection::vec(any::<u8>(), 0..=7),
    ) {
        let protocol = sid.as_ref().and(protocol);
        let r = EthSubscribeResult { session_id: sid, protocol, extranonce };
        prop_assert_eq!(EthSubscribeResult::from_json(&r.to_json()), Ok(r));
    }

    #[test]
    fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200), text in "[ -~]{0,200}") {
        let now = Instant::now();
        let mut s = pool();
        s.send_job(&job("j1", true));
        s.handle_line(&line, now);
        s.handle_line(text.as_bytes(), now);
        if let Ok(Message::Request(r)) = Message::parse(text.as_bytes()) {
            let _ = EthServerRequest::from_request(&r);
            let _ = EthClientRequest::from_request(&r);
        }
    }
}
