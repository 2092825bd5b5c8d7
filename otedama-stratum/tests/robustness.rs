//! The pool-session cases of the robustness checklist (docs: shared/reference/stratum.md §5,
//! items 1-12 and 15), each against a real `PoolSession` with synthetic instants.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    drain_events, drain_output, error_code, feed, job, only_authorize, only_share, ready, response,
    server_request, session_with, submit_line,
};
use otedama_stratum::{
    CloseReason, ExtranonceAllocator, FrameError, LineBuffer, Message, PoolConfig, PoolEvent,
    PoolSession, ServerRequest, ShareVerdict, SubscribeResult, VardiffConfig,
};
use proptest::prelude::*;

const WORKER: &str = "addr.rig1";

fn no_vardiff() -> PoolConfig {
    PoolConfig {
        vardiff_enabled: false,
        ..PoolConfig::default()
    }
}

/// A subscribed, authorized session with job "j1" (ntime 0x6b04e972) announced.
fn mining(now: Instant) -> (PoolSession, Arc<ExtranonceAllocator>) {
    let (mut s, alloc) = session_with(no_vardiff(), now);
    ready(&mut s, WORKER, now);
    s.send_job(&job("j1", 0x6b04_e972, true, 1), now);
    let out = drain_output(&mut s);
    assert_eq!(out.len(), 2, "set_difficulty then notify: {out:?}");
    (s, alloc)
}

fn submit(
    s: &mut PoolSession,
    id: u64,
    en2: &str,
    ntime: &str,
    nonce: &str,
    now: Instant,
) -> Vec<String> {
    feed(s, &submit_line(id, WORKER, "j1", en2, ntime, nonce), now)
}

/// Expects exactly one error reply with `code` and the given id text.
fn expect_error(out: &[String], id: &str, code: i64) {
    assert_eq!(out.len(), 1, "one reply: {out:?}");
    let r = response(&out[0]);
    assert_eq!(r.id.as_ref().map(|i| i.as_json()), Some(id), "{out:?}");
    assert_eq!(error_code(&r), Some(code), "{out:?}");
}

// 1. Line limits.

#[test]
fn giant_lines_are_refused_without_holding_them() {
    let mut b = LineBuffer::default();
    let chunk = vec![b'a'; 4096];
    let mut fed = 0;
    let err = loop {
        match b.feed(&chunk) {
            Ok(()) => {
                fed += chunk.len();
                assert!(b.pending() <= LineBuffer::DEFAULT_MAX_LINE);
                assert_eq!(b.next_line(), None);
            }
            Err(e) => break e,
        }
        assert!(fed < 1 << 20, "an endless line must be refused");
    };
    assert_eq!(
        err,
        FrameError::LineTooLong {
            limit: LineBuffer::DEFAULT_MAX_LINE
        }
    );
    assert_eq!(
        fed,
        LineBuffer::DEFAULT_MAX_LINE,
        "refused as soon as it passes 16 KiB"
    );

    // A line of exactly the limit is fine, and so are many short lines in one read.
    let mut b = LineBuffer::default();
    let mut line = vec![b' '; LineBuffer::DEFAULT_MAX_LINE - 1];
    line[0] = b'{';
    line.extend_from_slice(b"}\n");
    assert_eq!(line.len(), LineBuffer::DEFAULT_MAX_LINE + 1);
    b.feed(&line).expect("exactly the limit");
    assert_eq!(
        b.next_line().map(<[u8]>::len),
        Some(LineBuffer::DEFAULT_MAX_LINE)
    );
    let many = "{}\n".repeat(50_000);
    b.feed(many.as_bytes()).expect("short lines");
    assert_eq!(
        std::iter::from_fn(|| b.next_line().map(<[u8]>::to_vec)).count(),
        50_000
    );
}

// 3. Not Stratum at all.

#[test]
fn tls_http_proxy_and_binary_before_subscribe_close_as_not_stratum() {
    let client_hello: Vec<u8> = [
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ][..],
        &[0xab; 32][..],
        &[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00][..],
    ]
    .concat();
    let cases: Vec<Vec<u8>> = vec![
        client_hello,
        b"GET / HTTP/1.1".to_vec(),
        b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 3333".to_vec(),
        vec![0x00, 0xff, 0xfe, 0x80, 0x7f],
        b"[1, \"mining.subscribe\", []]".to_vec(),
        b"\"mining.subscribe\"".to_vec(),
        b"{\"id\": 1, \"method\": \"mining.subscribe\"".to_vec(),
    ];
    for bytes in cases {
        let t0 = Instant::now();
        let (mut s, alloc) = session_with(PoolConfig::default(), t0);
        s.handle_line(&bytes, t0);
        assert!(
            drain_output(&mut s).is_empty(),
            "nothing written for {bytes:?}"
        );
        assert_eq!(
            drain_events(&mut s),
            vec![PoolEvent::Closed(CloseReason::NotStratum)],
            "{bytes:?}"
        );
        assert!(s.is_closed());
        assert_eq!(s.poll_timeout(), None);
        // Anything after is ignored.
        s.handle_line(br#"{"id":1,"method":"mining.subscribe","params":[]}"#, t0);
        assert!(drain_output(&mut s).is_empty());
        assert_eq!(alloc.live(), 0);
    }
}

#[test]
fn garbage_after_subscribe_is_penalised_until_banned() {
    let t0 = Instant::now();
    let (mut s, alloc) = session_with(PoolConfig::default(), t0);
    ready(&mut s, WORKER, t0);
    for i in 0..5 {
        s.handle_line(b"\x16\x03\x01 not json", t0);
        assert!(!s.is_closed(), "still open after {} bad lines", i + 1);
    }
    s.handle_line(b"GET / HTTP/1.1", t0);
    assert_eq!(
        drain_events(&mut s),
        vec![PoolEvent::Closed(CloseReason::Banned)]
    );
    assert_eq!(
        alloc.live(),
        0,
        "a banned session's extranonce1 is released"
    );
}

// 4. Wrong types everywhere.

#[test]
fn wrong_types_in_every_submit_position_get_an_error_with_the_same_id() {
    let valid = [
        "addr.rig1",
        "j1",
        "00000000",
        "6b04e972",
        "1cd73400",
        "00000000",
    ];
    let wrong: [&str; 7] = ["null", "123", "true", "[]", "{}", "1.5", "-1"];
    let not_hex = ["\"zz\"", "\"\"", "\"0x00\"", "\"123456789\""];
    for position in 0..6 {
        let mut bad_values: Vec<&str> = wrong.to_vec();
        if position >= 2 {
            bad_values.extend(not_hex);
        }
        if position == 5 {
            // A null version-bits field means "not sent".
            bad_values.retain(|v| *v != "null");
        }
        for bad in bad_values {
            let t0 = Instant::now();
            let (mut s, _alloc) = mining(t0);
            let params: Vec<String> = valid
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if i == position {
                        bad.to_owned()
                    } else {
                        format!("{v:?}")
                    }
                })
                .collect();
            let line = format!(
                r#"{{"id":"sub-{position}","method":"mining.submit","params":[{}]}}"#,
                params.join(",")
            );
            let out = feed(&mut s, &line, t0);
            expect_error(&out, &format!("\"sub-{position}\""), 20);
            assert_eq!(drain_events(&mut s), vec![], "no share from {line}");
            assert!(!s.is_closed());
        }
    }
}

#[test]
fn params_of_the_wrong_shape_get_an_error_with_the_same_id() {
    let methods = [
        "mining.submit",
        "mining.authorize",
        "mining.subscribe",
        "mining.configure",
        "mining.suggest_difficulty",
        "mining.suggest_target",
    ];
    for method in methods {
        for params in ["{}", "\"text\"", "42", "true"] {
            let t0 = Instant::now();
            let (mut s, _alloc) = mining(t0);
            let line = format!(r#"{{"id":7,"method":"{method}","params":{params}}}"#);
            let out = feed(&mut s, &line, t0);
            expect_error(&out, "7", 20);
            assert!(drain_events(&mut s).is_empty());
        }
    }
    // Missing params entirely, or empty: required fields are reported missing.
    for line in [
        r#"{"id":8,"method":"mining.submit"}"#,
        r#"{"id":8,"method":"mining.submit","params":[]}"#,
        r#"{"id":8,"method":"mining.authorize","params":[]}"#,
        r#"{"id":8,"method":"mining.authorize","params":[123, "x"]}"#,
        r#"{"id":8,"method":"mining.authorize","params":[null]}"#,
        r#"{"id":8,"method":"mining.suggest_difficulty","params":[]}"#,
        r#"{"id":8,"method":"mining.suggest_difficulty","params":[-1]}"#,
        r#"{"id":8,"method":"mining.suggest_difficulty","params":["NaN"]}"#,
        r#"{"id":8,"method":"mining.suggest_target","params":["zz"]}"#,
        r#"{"id":8,"method":"mining.suggest_target","params":[7]}"#,
        r#"{"id":8,"method":"mining.configure","params":[]}"#,
        r#"{"id":8,"method":"mining.configure","params":[["version-rolling"], {"version-rolling.mask": 5}]}"#,
        r#"{"id":8,"method":"mining.configure","params":[["version-rolling"], {"version-rolling.mask": "xyz"}]}"#,
        r#"{"id":8,"method":"mining.configure","params":[["version-rolling"], []]}"#,
    ] {
        let t0 = Instant::now();
        let (mut s, _alloc) = mining(t0);
        let out = feed(&mut s, line, t0);
        expect_error(&out, "8", 20);
        assert!(drain_events(&mut s).is_empty(), "{line}");
    }
}

#[test]
fn subscribe_tolerates_odd_params() {
    // Every subscribe element is optional and NiceHash puts other things in them.
    for params in [
        "[]",
        "null",
        "[123, {}, [], \"notaport\"]",
        "[null, null, \"host\", 3333]",
        "[\"agent\", 1700000000, \"deadbeef\"]",
        "[\"agent\", null, \"stratum.example\", \"3333\"]",
    ] {
        let t0 = Instant::now();
        let (mut s, _alloc) = session_with(PoolConfig::default(), t0);
        let out = feed(
            &mut s,
            &format!(r#"{{"id":1,"method":"mining.subscribe","params":{params}}}"#),
            t0,
        );
        assert_eq!(out.len(), 1);
        let r = response(&out[0]);
        assert_eq!(r.error, None, "{params}");
        let sub = SubscribeResult::from_json(&r.result).expect("result");
        assert_eq!(sub.extranonce1.len(), 4);
        assert_eq!(sub.extranonce2_size, 4);
    }
}

#[test]
fn missing_password_is_an_ordinary_authorize() {
    let t0 = Instant::now();
    let (mut s, _alloc) = session_with(PoolConfig::default(), t0);
    feed(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        t0,
    );
    for (line, want) in [
        (
            r#"{"id":2,"method":"mining.authorize","params":["addr.a"]}"#,
            None,
        ),
        (
            r#"{"id":3,"method":"mining.authorize","params":["addr.b", null]}"#,
            None,
        ),
        (
            r#"{"id":4,"method":"mining.authorize","params":["addr.c", 5]}"#,
            None,
        ),
        (
            r#"{"id":5,"method":"mining.authorize","params":["addr.d", "x", "extra"]}"#,
            Some("x"),
        ),
    ] {
        s.handle_line(line.as_bytes(), t0);
        let events = drain_events(&mut s);
        let [PoolEvent::Authorize {
            token, password, ..
        }] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert_eq!(password.as_deref(), want);
        s.authorize_result(*token, Ok(()));
        let out = drain_output(&mut s);
        assert_eq!(response(&out[0]).result, serde_json::Value::Bool(true));
    }
    let mut workers: Vec<&str> = s.workers().collect();
    workers.sort_unstable();
    assert_eq!(workers, ["addr.a", "addr.b", "addr.c", "addr.d"]);
}

// 5. Duplicates, decoded.

#[test]
fn case_flipped_hex_is_a_duplicate() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    let first = submit(&mut s, 10, "0a0b0c0d", "6b04e972", "deadbeef", t0);
    assert!(first.is_empty(), "waits for the verdict");
    let share = only_share(&mut s).expect("share");
    assert_eq!(share.extranonce2, [0x0a, 0x0b, 0x0c, 0x0d]);
    assert_eq!(share.nonce, 0xdead_beef);
    s.share_result(share.token, ShareVerdict::Accepted);
    assert_eq!(
        response(&drain_output(&mut s)[0]).result,
        serde_json::Value::Bool(true)
    );

    for (en2, ntime, nonce) in [
        ("0A0B0C0D", "6b04e972", "deadbeef"),
        ("0a0b0c0d", "6B04E972", "DEADBEEF"),
        ("0A0b0C0d", "6b04E972", "DeAdBeEf"),
    ] {
        let out = submit(&mut s, 11, en2, ntime, nonce, t0);
        expect_error(&out, "11", 22);
        assert_eq!(only_share(&mut s), None);
    }
    // A different nonce is a different share.
    submit(&mut s, 12, "0a0b0c0d", "6b04e972", "deadbef0", t0);
    assert!(only_share(&mut s).is_some());
}

#[test]
fn different_version_bits_are_different_shares() {
    let t0 = Instant::now();
    let (mut s, _alloc) = session_with(no_vardiff(), t0);
    let out = feed(
        &mut s,
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]}"#,
        t0,
    );
    let r = response(&out[0]);
    assert_eq!(r.result["version-rolling"], true);
    assert_eq!(r.result["version-rolling.mask"], "1fffe000");
    ready(&mut s, WORKER, t0);
    s.send_job(&job("j1", 100, true, 1), t0);
    drain_output(&mut s);
    let line = |id: u64, nonce: &str, bits: &str| {
        format!(
            r#"{{"id":{id},"method":"mining.submit","params":["{WORKER}","j1","00000000","00000064","{nonce}","{bits}"]}}"#
        )
    };
    for (id, bits) in [(1, "0000a000"), (2, "00004000"), (3, "00000000")] {
        s.handle_line(line(id, "0000000a", bits).as_bytes(), t0);
        let share = only_share(&mut s).expect("distinct share");
        assert_eq!(share.version_mask, 0x1fff_e000);
    }
    // Resent with the case flipped: duplicate; an absent field equals zero bits.
    s.handle_line(line(4, "0000000A", "0000A000").as_bytes(), t0);
    expect_error(&drain_output(&mut s), "4", 22);
    let out = feed(
        &mut s,
        &submit_line(5, WORKER, "j1", "00000000", "00000064", "0000000a"),
        t0,
    );
    expect_error(&out, "5", 22);
}

// Item 5 continued: non-hex and wrongly sized extranonce2.

#[test]
fn non_hex_extranonce2_is_refused() {
    for en2 in [
        "zzzzzzzz",
        "0x000000",
        "000",
        "00 00 00",
        "0000000g",
        "\\u0030000000",
    ] {
        let t0 = Instant::now();
        let (mut s, _alloc) = mining(t0);
        let out = submit(&mut s, 3, en2, "6b04e972", "00000000", t0);
        expect_error(&out, "3", 20);
        assert_eq!(only_share(&mut s), None, "{en2}");
    }
}

#[test]
fn wrong_extranonce2_length_is_refused() {
    for en2 in [
        "",
        "00",
        "000000",
        "0000000000",
        "00000000000000000000000000000000",
    ] {
        let t0 = Instant::now();
        let (mut s, _alloc) = mining(t0);
        let out = submit(&mut s, 3, en2, "6b04e972", "00000000", t0);
        expect_error(&out, "3", 20);
        assert!(response(&out[0])
            .error
            .expect("error")
            .message
            .contains("extranonce2"));
        assert_eq!(only_share(&mut s), None, "{en2:?}");
    }
}

// 7. Version bits.

#[test]
fn version_bits_without_configure_or_outside_the_mask_are_refused() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    let with_bits = |id: u64, bits: &str| {
        format!(
            r#"{{"id":{id},"method":"mining.submit","params":["{WORKER}","j1","00000000","6b04e972","00000001","{bits}"]}}"#
        )
    };
    // No configure: only all-zero bits pass.
    let out = feed(&mut s, &with_bits(1, "00002000"), t0);
    expect_error(&out, "1", 20);
    feed(&mut s, &with_bits(2, "00000000"), t0);
    assert!(only_share(&mut s).is_some());

    // Configure a narrower mask than the pool's: the intersection is what is allowed.
    let (mut s, _alloc) = session_with(no_vardiff(), t0);
    let out = feed(
        &mut s,
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"00ffe000"}]}"#,
        t0,
    );
    assert_eq!(response(&out[0]).result["version-rolling.mask"], "00ffe000");
    assert_eq!(s.version_mask(), Some(0x00ff_e000));
    ready(&mut s, WORKER, t0);
    s.send_job(&job("j1", 0x6b04_e972, true, 1), t0);
    drain_output(&mut s);
    for (id, bits, ok) in [
        (3, "00ffe000", true),
        (4, "00002000", true),
        (5, "01000000", false),
        (6, "00001000", false),
        (7, "ffffffff", false),
        (8, "20000000", false),
    ] {
        let out = feed(&mut s, &with_bits(id, bits), t0);
        if ok {
            assert!(out.is_empty());
            assert_eq!(
                only_share(&mut s).expect("share").version_bits,
                Some(u32::from_str_radix(bits, 16).expect("hex"))
            );
        } else {
            expect_error(&out, &id.to_string(), 20);
            assert_eq!(only_share(&mut s), None);
        }
        if s.is_closed() {
            break;
        }
    }
}

#[test]
fn configure_quirks_do_not_panic() {
    for params in [
        r#"[["version-rolling"],{"version-rolling.min-bit-count":-5}]"#,
        r#"[["version-rolling"],{"version-rolling.min-bit-count":"16"}]"#,
        r#"[["version-rolling"],{"version-rolling.min-bit-count":1e300}]"#,
        r#"[["version-rolling"],{"version-rolling.mask":"0x1fffe000"}]"#,
        r#"[["version-rolling"],{"version-rolling.mask":"00000000"}]"#,
        r#"[["version-rolling","minimum-difficulty","subscribe-extranonce","info","bogus"],{"minimum-difficulty.value":-3,"info.hw-id":"x"}]"#,
        r#"[["version-rolling"],{"version-rolling.min-bit-count":33}]"#,
        r#"[[1, null, "version-rolling"]]"#,
    ] {
        let t0 = Instant::now();
        let (mut s, _alloc) = session_with(PoolConfig::default(), t0);
        let out = feed(
            &mut s,
            &format!(r#"{{"id":1,"method":"mining.configure","params":{params}}}"#),
            t0,
        );
        let r = response(&out[0]);
        assert_eq!(r.error, None, "{params}");
        assert!(r.result.is_object());
    }
    // An all-zero intersection or an unmeetable bit count is refused, not granted.
    let t0 = Instant::now();
    let (mut s, _alloc) = session_with(PoolConfig::default(), t0);
    let out = feed(
        &mut s,
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"e0001fff"}]}"#,
        t0,
    );
    assert_eq!(response(&out[0]).result["version-rolling"], false);
    assert_eq!(s.version_mask(), None);
    let out = feed(
        &mut s,
        r#"{"id":2,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.min-bit-count":17}]}"#,
        t0,
    );
    assert_eq!(response(&out[0]).result["version-rolling"], false);
    let out = feed(
        &mut s,
        r#"{"id":3,"method":"mining.configure","params":[["bogus"],{}]}"#,
        t0,
    );
    assert_eq!(response(&out[0]).result["bogus"], false);
}

// 6. ntime window.

#[test]
fn ntime_outside_the_window_is_refused() {
    let base = 0x6b04_e972u32;
    for (delta, ok) in [
        (-1i64, false),
        (-3600, false),
        (0, true),
        (1, true),
        (7000, true),
        (7001, false),
        (1 << 31, false),
    ] {
        let t0 = Instant::now();
        let (mut s, _alloc) = mining(t0);
        let ntime = format!("{:08x}", (i64::from(base) + delta) as u32);
        let out = submit(&mut s, 9, "00000000", &ntime, "00000000", t0);
        if ok {
            assert!(out.is_empty(), "{delta}");
            assert_eq!(
                only_share(&mut s).expect("share").ntime,
                (i64::from(base) + delta) as u32
            );
        } else {
            expect_error(&out, "9", 20);
            assert!(response(&out[0])
                .error
                .expect("error")
                .message
                .contains("ntime"));
            assert_eq!(only_share(&mut s), None);
        }
    }
}

// 8. Stale shares.

#[test]
fn clean_jobs_make_earlier_jobs_stale() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    // A non-clean job keeps j1 valid.
    s.send_job(&job("j2", 0x6b04_e972, false, 1), t0);
    drain_output(&mut s);
    submit(&mut s, 1, "00000000", "6b04e972", "00000001", t0);
    assert_eq!(only_share(&mut s).expect("j1 still valid").job_id, "j1");

    s.send_job(&job("j3", 0x6b04_e972, true, 1), t0);
    let out = drain_output(&mut s);
    assert_eq!(out.len(), 1, "same difficulty: only the notify");
    let out = submit(&mut s, 2, "00000000", "6b04e972", "00000002", t0);
    expect_error(&out, "2", 21);
    let out = feed(
        &mut s,
        &submit_line(3, WORKER, "j2", "00000000", "6b04e972", "00000002"),
        t0,
    );
    expect_error(&out, "3", 21);
    feed(
        &mut s,
        &submit_line(4, WORKER, "j3", "00000000", "6b04e972", "00000002"),
        t0,
    );
    assert!(only_share(&mut s).is_some());
    // An unknown job is the same error.
    let out = feed(
        &mut s,
        &submit_line(5, WORKER, "nope", "00000000", "6b04e972", "00000002"),
        t0,
    );
    expect_error(&out, "5", 21);
}

#[test]
fn a_new_chain_tip_is_clean_even_when_not_flagged() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0); // j1 at height 1
    s.send_job(&job("j2", 0x6b04_e972, false, 2), t0);
    let out = drain_output(&mut s);
    let ServerRequest::Notify(n) = server_request(&out[0]) else {
        panic!("{out:?}")
    };
    assert!(n.clean_jobs, "a higher height goes out as clean");
    let out = submit(&mut s, 1, "00000000", "6b04e972", "00000001", t0);
    expect_error(&out, "1", 21);
    // Same height, not flagged: j2 stays valid.
    s.send_job(&job("j3", 0x6b04_e972, false, 2), t0);
    let ServerRequest::Notify(n) = server_request(&drain_output(&mut s)[0]) else {
        panic!()
    };
    assert!(!n.clean_jobs);
    feed(
        &mut s,
        &submit_line(2, WORKER, "j2", "00000000", "6b04e972", "00000001"),
        t0,
    );
    assert!(only_share(&mut s).is_some());
}

#[test]
fn old_jobs_fall_out_after_max_jobs() {
    let t0 = Instant::now();
    let config = PoolConfig {
        max_jobs: 3,
        ..no_vardiff()
    };
    let (mut s, _alloc) = session_with(config, t0);
    ready(&mut s, WORKER, t0);
    for i in 0..5 {
        s.send_job(&job(&format!("j{i}"), 100, i == 0, 1), t0);
    }
    drain_output(&mut s);
    for (i, ok) in [(0, false), (1, false), (2, true), (3, true), (4, true)] {
        let out = feed(
            &mut s,
            &submit_line(
                i,
                WORKER,
                &format!("j{i}"),
                "00000000",
                "00000064",
                "00000000",
            ),
            t0,
        );
        if ok {
            assert!(only_share(&mut s).is_some());
        } else {
            expect_error(&out, &i.to_string(), 21);
        }
    }
}

// 9. Flooding and bans.

#[test]
fn a_flood_of_bad_shares_is_banned() {
    let t0 = Instant::now();
    let (mut s, alloc) = mining(t0);
    let mut replies = 0;
    for i in 0..100 {
        let out = submit(&mut s, i, "00", "6b04e972", "00000000", t0);
        replies += out.len();
        if s.is_closed() {
            break;
        }
    }
    assert_eq!(
        replies, 6,
        "six rejects at 5 points each reach the -30 threshold"
    );
    assert_eq!(
        drain_events(&mut s),
        vec![PoolEvent::Closed(CloseReason::Banned)]
    );
    assert_eq!(alloc.live(), 0);
    assert!(feed(
        &mut s,
        &submit_line(1000, WORKER, "j1", "00000000", "6b04e972", "00000000"),
        t0
    )
    .is_empty());
}

#[test]
fn shares_the_caller_rejects_count_towards_a_ban() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    let mut verdicts = 0;
    for nonce in 0u32.. {
        submit(
            &mut s,
            u64::from(nonce),
            "00000000",
            "6b04e972",
            &format!("{nonce:08x}"),
            t0,
        );
        let Some(share) = only_share(&mut s) else {
            break;
        };
        s.share_result(share.token, ShareVerdict::LowDifficulty);
        verdicts += 1;
        let out = drain_output(&mut s);
        expect_error(&out, &nonce.to_string(), 23);
        // Answering the same token twice does nothing.
        s.share_result(share.token, ShareVerdict::Accepted);
        assert!(drain_output(&mut s).is_empty());
        if s.is_closed() {
            break;
        }
    }
    assert_eq!(verdicts, 6);
    assert!(drain_events(&mut s).contains(&PoolEvent::Closed(CloseReason::Banned)));
    assert_eq!(s.share_counts(), (0, 6));
}

#[test]
fn accepted_shares_earn_back_a_bounded_credit() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    for nonce in 0..50u32 {
        submit(
            &mut s,
            1,
            "00000000",
            "6b04e972",
            &format!("{nonce:08x}"),
            t0,
        );
        let share = only_share(&mut s).expect("share");
        s.share_result(share.token, ShareVerdict::Accepted);
    }
    // +10 at most, so eight bad shares (40 points) still ban.
    let mut bad = 0;
    while !s.is_closed() {
        submit(&mut s, 2, "00", "6b04e972", "00000000", t0);
        bad += 1;
    }
    assert_eq!(bad, 8);
    assert_eq!(s.share_counts(), (50, 8));
    // Stale and invalid verdicts are answered with their codes.
    let (mut s, _alloc) = mining(t0);
    for (nonce, verdict, code) in [
        (1u32, ShareVerdict::Stale, 21),
        (2, ShareVerdict::Invalid("bad coinbase".into()), 20),
    ] {
        submit(
            &mut s,
            3,
            "00000000",
            "6b04e972",
            &format!("{nonce:08x}"),
            t0,
        );
        let share = only_share(&mut s).expect("share");
        s.share_result(share.token, verdict);
        expect_error(&drain_output(&mut s), "3", code);
    }
}

#[test]
fn refused_authorization_is_answered_and_shares_from_it_are_refused() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    s.handle_line(
        br#"{"id":"a","method":"mining.authorize","params":["bad.worker","x"]}"#,
        t0,
    );
    let token = only_authorize(&mut s);
    s.authorize_result(token, Err("invalid payout address".into()));
    let out = drain_output(&mut s);
    expect_error(&out, "\"a\"", 24);
    assert_eq!(
        response(&out[0]).error.expect("error").message,
        "invalid payout address"
    );
    let out = feed(
        &mut s,
        &submit_line(1, "bad.worker", "j1", "00000000", "6b04e972", "00000000"),
        t0,
    );
    expect_error(&out, "1", 24);
    // Submitting before subscribing: 25.
    let (mut s, _alloc) = session_with(PoolConfig::default(), t0);
    let out = feed(
        &mut s,
        &submit_line(1, WORKER, "j1", "00000000", "6b04e972", "00000000"),
        t0,
    );
    expect_error(&out, "1", 25);
}

// 10. Extranonce uniqueness.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Sessions subscribe (some trying to resume a live, a dead or a garbage id), close and
    /// drop in any order; no two live sessions ever share an extranonce1, and a resume only
    /// ever returns a value no live session holds.
    #[test]
    fn live_sessions_never_share_an_extranonce1(
        ops in proptest::collection::vec((0u8..4, any::<u16>(), any::<u8>()), 1..300)
    ) {
        let t0 = Instant::now();
        // A one-byte counter, so values are reused often.
        let alloc = ExtranonceAllocator::new(&[0x5a], 1).expect("allocator");
        let config = Arc::new(PoolConfig::default());
        let mut live: Vec<PoolSession> = Vec::new();
        let mut dead_ids: Vec<String> = Vec::new();
        for (op, pick, garbage) in ops {
            match op {
                0 | 1 => {
                    let resume = match (op, pick % 3) {
                        (0, _) => None,
                        (_, 0) if !live.is_empty() => live[pick as usize % live.len()]
                            .extranonce1()
                            .map(otedama_core::encode_hex),
                        (_, 1) if !dead_ids.is_empty() => Some(dead_ids[pick as usize % dead_ids.len()].clone()),
                        _ => Some(format!("{garbage:02x}zz{pick}")),
                    };
                    let params = match &resume {
                        Some(id) => format!(r#"["m/1", "{id}"]"#),
                        None => "[]".to_owned(),
                    };
                    let mut s = PoolSession::new(Arc::clone(&config), Arc::clone(&alloc), t0);
                    let out = feed(&mut s, &format!(r#"{{"id":1,"method":"mining.subscribe","params":{params}}}"#), t0);
                    if s.is_subscribed() {
                        let sub = SubscribeResult::from_json(&response(&out[0]).result).expect("result");
                        prop_assert_eq!(Some(sub.extranonce1.as_slice()), s.extranonce1());
                        prop_assert_eq!(sub.session_id().map(str::to_owned), Some(otedama_core::encode_hex(&sub.extranonce1)));
                        live.push(s);
                    } else {
                        prop_assert_eq!(drain_events(&mut s), vec![PoolEvent::Closed(CloseReason::PoolFull)]);
                        prop_assert_eq!(error_code(&response(&out[0])), Some(20));
                    }
                }
                2 if !live.is_empty() => {
                    let mut s = live.swap_remove(pick as usize % live.len());
                    if let Some(en1) = s.extranonce1() {
                        dead_ids.push(otedama_core::encode_hex(en1));
                    }
                    if garbage % 2 == 0 {
                        s.close(CloseReason::Requested);
                        prop_assert!(s.extranonce1().is_none());
                    }
                }
                _ => {}
            }
            let mut seen = std::collections::HashSet::new();
            for s in &live {
                prop_assert!(seen.insert(s.extranonce1().expect("live").to_vec()));
            }
            prop_assert_eq!(alloc.live(), live.len());
        }
    }
}

// 11. Resume.

#[test]
fn resume_never_takes_over_a_live_session() {
    let t0 = Instant::now();
    let alloc = ExtranonceAllocator::new(&[0x01, 0x02], 2).expect("allocator");
    let config = Arc::new(PoolConfig::default());
    let subscribe = |params: &str| {
        let mut s = PoolSession::new(Arc::clone(&config), Arc::clone(&alloc), t0);
        let out = feed(
            &mut s,
            &format!(r#"{{"id":1,"method":"mining.subscribe","params":{params}}}"#),
            t0,
        );
        let sub = SubscribeResult::from_json(&response(&out[0]).result).expect("result");
        assert_eq!(Some(sub.extranonce1.as_slice()), s.extranonce1());
        (s, sub)
    };
    let (a, sub_a) = subscribe("[]");
    let sid = sub_a.session_id().expect("sid").to_owned();
    assert_eq!(sid, otedama_core::encode_hex(&sub_a.extranonce1));

    // Someone else presenting A's id while A is live gets a fresh value.
    let (_b, sub_b) = subscribe(&format!(r#"["thief/1", "{sid}"]"#));
    assert_ne!(sub_b.extranonce1, sub_a.extranonce1);
    let upper = sid.to_uppercase();
    let (_b2, sub_b2) = subscribe(&format!(r#"["thief/1", "{upper}"]"#));
    assert_ne!(sub_b2.extranonce1, sub_a.extranonce1);

    // Garbage, foreign prefixes, NiceHash's [agent, timestamp, hmac]: fresh values, no panic.
    let mut held = Vec::new();
    for params in [
        r#"["m", "zz"]"#,
        r#"["m", ""]"#,
        r#"["m", 12345]"#,
        r#"["m", "ffff0000"]"#,
        r#"["m", "0102"]"#,
        r#"["m", "010200000000"]"#,
        r#"["NiceHash/1.0.0", "1700000000", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]"#,
        r#"["m", "1700000000"]"#,
    ] {
        let (s, sub) = subscribe(params);
        assert_ne!(sub.extranonce1, sub_a.extranonce1, "{params}");
        held.push(s);
    }

    // Once A is gone, its miner (or anyone with its id) resumes A's value.
    drop(a);
    let (c, sub_c) = subscribe(&format!(r#"["cpuminer/2.5.1", "{sid}"]"#));
    assert_eq!(sub_c.extranonce1, sub_a.extranonce1);
    assert_eq!(sub_c.session_id(), Some(sid.as_str()));
    // And while C holds it, it is not handed out again.
    let (_d, sub_d) = subscribe(&format!(r#"["m", "{sid}"]"#));
    assert_ne!(sub_d.extranonce1, sub_a.extranonce1);
    drop(c);
}

// 12. Unknown methods, repeats, null ids, every id type.

#[test]
fn unknown_methods_are_answered_and_never_drop_the_connection() {
    let t0 = Instant::now();
    let (mut s, _alloc) = mining(t0);
    for (i, method) in [
        "mining.multi_version",
        "mining.capabilities",
        "mining.get_transactions",
        "mining.term",
        "mining.ping",
        "",
        "\u{1f4a9}",
    ]
    .iter()
    .enumerate()
    {
        let line = format!(
            r#"{{"id":{i},"method":{},"params":[1]}}"#,
            serde_json::Value::from(*method)
        );
        let out = feed(&mut s, &line, t0);
        expect_error(&out, &i.to_string(), 20);
    }
    // As notifications they are ignored silently.
    assert!(feed(
        &mut s,
        r#"{"id":null,"method":"mining.multi_version","params":[1]}"#,
        t0
    )
    .is_empty());
    assert!(feed(
        &mut s,
        r#"{"method":"mining.capabilities","params":{}}"#,
        t0
    )
    .is_empty());
    // Responses from the miner (to client.get_version) are not requests.
    assert!(feed(
        &mut s,
        r#"{"id":5,"result":"cgminer/4.11","error":null}"#,
        t0
    )
    .is_empty());
    assert!(!s.is_closed());
    assert!(drain_events(&mut s).is_empty());
    submit(&mut s, 1, "00000000", "6b04e972", "00000000", t0);
    assert!(only_share(&mut s).is_some(), "still mining");
}

#[test]
fn repeated_subscribe_and_authorize_are_answered_consistently() {
    let t0 = Instant::now();
    let (mut s, _alloc) = session_with(PoolConfig::default(), t0);
    let first = response(
        &feed(
            &mut s,
            r#"{"id":1,"method":"mining.subscribe","params":["a"]}"#,
            t0,
        )[0],
    );
    let second = response(
        &feed(
            &mut s,
            r#"{"id":2,"method":"mining.subscribe","params":["b", "0000"]}"#,
            t0,
        )[0],
    );
    assert_eq!(second.id.as_ref().map(|i| i.as_json()), Some("2"));
    assert_eq!(
        first.result, second.result,
        "the same extranonce1 and session id"
    );
    assert_eq!(s.user_agent(), Some("b"));

    for id in [3, 4] {
        s.handle_line(
            format!(r#"{{"id":{id},"method":"mining.authorize","params":["{WORKER}","x"]}}"#)
                .as_bytes(),
            t0,
        );
    }
    let events = drain_events(&mut s);
    assert_eq!(events.len(), 2);
    // Answer in the opposite order: each reply still carries its own id.
    for event in events.into_iter().rev() {
        let PoolEvent::Authorize { token, .. } = event else {
            panic!()
        };
        s.authorize_result(token, Ok(()));
    }
    let out = drain_output(&mut s);
    let ids: Vec<String> = out
        .iter()
        .map(|l| response(l).id.expect("id").as_json().to_owned())
        .collect();
    assert_eq!(ids, ["4", "3"]);
    assert_eq!(s.workers().count(), 1);
}

#[test]
fn suggest_target_before_subscribe_with_a_null_id_is_kept() {
    let t0 = Instant::now();
    let (mut s, _alloc) = session_with(no_vardiff(), t0);
    // bfgminer: difficulty 2 as a target, before subscribe, as a notification.
    let target = otedama_core::DifficultyConvention::Bitcoin
        .target_for(otedama_core::Difficulty::new(2.0).expect("difficulty"));
    let line = format!(r#"{{"id":null,"method":"mining.suggest_target","params":["{target}"]}}"#);
    assert!(
        feed(&mut s, &line, t0).is_empty(),
        "no reply to a notification"
    );
    assert!(!s.is_closed());
    assert!(drain_events(&mut s).is_empty());
    assert!((s.difficulty() - 2.0).abs() < 1e-9, "{}", s.difficulty());
    // The first response the miner reads is its subscribe result.
    ready(&mut s, WORKER, t0);
    s.send_job(&job("j1", 100, true, 1), t0);
    let out = drain_output(&mut s);
    assert_eq!(
        server_request(&out[0]),
        ServerRequest::SetDifficulty(s.difficulty())
    );
    // suggest_difficulty with an id is acknowledged, and applies from the next job.
    let out = feed(
        &mut s,
        r#"{"id":"sd","method":"mining.suggest_difficulty","params":[64]}"#,
        t0,
    );
    assert_eq!(response(&out[0]).result, serde_json::Value::Bool(true));
    s.send_job(&job("j2", 100, false, 1), t0);
    let out = drain_output(&mut s);
    assert_eq!(server_request(&out[0]), ServerRequest::SetDifficulty(64.0));
}

#[test]
fn ids_of_every_json_type_are_echoed_exactly() {
    let ids = [
        "1",
        "0",
        "-7",
        "18446744073709551616",
        "1.5",
        "1.50",
        "1e2",
        "-0.0",
        r#""auth""#,
        r#""mining.subscribe""#,
        r#""\u00e9\n""#,
        r#""""#,
        r#"{"a": [1, 2], "b": null}"#,
        r#"{"z":1,"a":2}"#,
        "[1, \"two\"]",
        "true",
        "false",
    ];
    for id in ids {
        for method in [
            "subscribe",
            "authorize",
            "submit",
            "extranonce.subscribe",
            "configure",
            "unknown",
        ] {
            let t0 = Instant::now();
            let (mut s, _alloc) = mining(t0);
            let params = match method {
                "authorize" => format!(r#"["{WORKER}", "x"]"#),
                "submit" => format!(r#"["{WORKER}", "j1", "00000000", "6b04e972", "00000000"]"#),
                "configure" => r#"[["version-rolling"], {}]"#.to_owned(),
                _ => "[]".to_owned(),
            };
            let line =
                format!(r#"{{"id": {id}, "method": "mining.{method}", "params": {params}}}"#);
            s.handle_line(line.as_bytes(), t0);
            for event in drain_events(&mut s) {
                match event {
                    PoolEvent::Authorize { token, .. } => s.authorize_result(token, Ok(())),
                    PoolEvent::Share(share) => s.share_result(share.token, ShareVerdict::Accepted),
                    other => panic!("{other:?}"),
                }
            }
            let out = drain_output(&mut s);
            assert_eq!(out.len(), 1, "{line}: {out:?}");
            assert!(
                out[0].contains(&format!(r#","id":{id},"#)),
                "{id} echoed verbatim in {:?}",
                out[0]
            );
            assert_eq!(response(&out[0]).id.as_ref().map(|i| i.as_json()), Some(id));
        }
    }
}

#[test]
fn null_ids_get_answers_only_where_the_miner_needs_one() {
    let t0 = Instant::now();
    let (mut s, _alloc) = session_with(no_vardiff(), t0);
    // A subscribe with a null id still gets its result (with id null), or the miner hangs.
    let out = feed(
        &mut s,
        r#"{"id":null,"method":"mining.subscribe","params":[]}"#,
        t0,
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].contains(r#""id":null"#));
    assert!(SubscribeResult::from_json(&response(&out[0]).result).is_some());
    s.handle_line(
        format!(r#"{{"method":"mining.authorize","params":["{WORKER}"]}}"#).as_bytes(),
        t0,
    );
    let token = only_authorize(&mut s);
    s.authorize_result(token, Ok(()));
    assert_eq!(response(&drain_output(&mut s)[0]).id, None);
    s.send_job(&job("j1", 100, true, 1), t0);
    drain_output(&mut s);
    let out = feed(
        &mut s,
        &format!(
            r#"{{"id":null,"method":"mining.submit","params":["{WORKER}","j1","00","00000064","00000000"]}}"#
        ),
        t0,
    );
    assert_eq!(error_code(&response(&out[0])), Some(20));
    // Notifications that need no answer get none.
    assert!(feed(
        &mut s,
        r#"{"id":null,"method":"mining.extranonce.subscribe","params":[]}"#,
        t0
    )
    .is_empty());
    assert!(feed(
        &mut s,
        r#"{"id":null,"method":"mining.suggest_difficulty","params":[4]}"#,
        t0
    )
    .is_empty());
    assert!(feed(
        &mut s,
        r#"{"id":null,"method":"mining.suggest_difficulty","params":["x"]}"#,
        t0
    )
    .is_empty());
}

// 2. Timeouts.

#[test]
fn subscribe_timeout_closes_a_silent_connection() {
    let t0 = Instant::now();
    let config = PoolConfig {
        subscribe_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        ..PoolConfig::default()
    };
    let (mut s, _alloc) = session_with(config.clone(), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    s.handle_timeout(t0 + Duration::from_secs(29));
    assert!(!s.is_closed());
    // Chatter that is not a subscribe does not extend the deadline.
    feed(
        &mut s,
        r#"{"id":1,"method":"mining.authorize","params":["a","x"]}"#,
        t0 + Duration::from_secs(20),
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    s.handle_timeout(t0 + Duration::from_secs(30));
    assert!(drain_events(&mut s).contains(&PoolEvent::Closed(CloseReason::SubscribeTimeout)));
    assert_eq!(s.poll_timeout(), None);

    // A subscribed session is held to the idle timeout instead, counted from its last line.
    let (mut s, _alloc) = session_with(config, t0);
    feed(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        t0 + Duration::from_secs(5),
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(605)));
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert!(!s.is_closed());
    feed(
        &mut s,
        r#"{"id":2,"method":"mining.extranonce.subscribe","params":[]}"#,
        t0 + Duration::from_secs(100),
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(700)));
    s.handle_timeout(t0 + Duration::from_secs(699));
    assert!(!s.is_closed());
    s.handle_timeout(t0 + Duration::from_secs(700));
    assert_eq!(
        drain_events(&mut s),
        vec![PoolEvent::Closed(CloseReason::Idle)]
    );
}

// 9 (vardiff): difficulty changes go out before the next notify, and shares are judged at
// the difficulty of their job.

#[test]
fn vardiff_changes_precede_the_next_notify_and_shares_keep_their_jobs_difficulty() {
    let t0 = Instant::now();
    let config = PoolConfig {
        initial_difficulty: 8.0,
        vardiff_enabled: true,
        vardiff: VardiffConfig {
            target_interval: Duration::from_secs(10),
            retarget_interval: Duration::from_secs(60),
            min_difficulty: 1.0,
            max_difficulty: 1e6,
            ..VardiffConfig::default()
        },
        ..PoolConfig::default()
    };
    let (mut s, _alloc) = session_with(config, t0);
    ready(&mut s, WORKER, t0);
    s.send_job(&job("j1", 100, true, 1), t0);
    let out = drain_output(&mut s);
    assert_eq!(server_request(&out[0]), ServerRequest::SetDifficulty(8.0));
    assert!(matches!(server_request(&out[1]), ServerRequest::Notify(_)));

    // 24 accepted shares in 5 s: a burst, four times too fast at the least.
    for nonce in 0..24u32 {
        let t = t0 + Duration::from_millis(200 * u64::from(nonce));
        s.handle_line(
            submit_line(
                1,
                WORKER,
                "j1",
                "00000000",
                "00000064",
                &format!("{nonce:08x}"),
            )
            .as_bytes(),
            t,
        );
        let share = only_share(&mut s).expect("share");
        assert_eq!(share.difficulty, 8.0);
        s.share_result(share.token, ShareVerdict::Accepted);
    }
    drain_output(&mut s);
    assert_eq!(s.difficulty(), 8.0, "nothing changes until the next job");

    let t5 = t0 + Duration::from_secs(5);
    s.send_job(&job("j2", 100, false, 1), t5);
    let out = drain_output(&mut s);
    assert_eq!(out.len(), 2, "{out:?}");
    let ServerRequest::SetDifficulty(d) = server_request(&out[0]) else {
        panic!("{out:?}")
    };
    assert_eq!(d, 32.0, "raised by the full step");
    assert!(matches!(server_request(&out[1]), ServerRequest::Notify(n) if n.job_id == "j2"));

    // A late share for j1 is judged at 8, one for j2 at 32.
    s.handle_line(
        submit_line(2, WORKER, "j1", "00000000", "00000064", "ffff0000").as_bytes(),
        t5,
    );
    assert_eq!(only_share(&mut s).expect("j1 share").difficulty, 8.0);
    s.handle_line(
        submit_line(3, WORKER, "j2", "00000000", "00000064", "ffff0000").as_bytes(),
        t5,
    );
    assert_eq!(only_share(&mut s).expect("j2 share").difficulty, 32.0);

    // Silence for a whole window: lowered by the full step, again before the notify.
    let t70 = t5 + Duration::from_secs(65);
    s.send_job(&job("j3", 100, false, 1), t70);
    let out = drain_output(&mut s);
    assert_eq!(server_request(&out[0]), ServerRequest::SetDifficulty(8.0));
    assert!(matches!(server_request(&out[1]), ServerRequest::Notify(_)));
    // No change: no set_difficulty.
    s.send_job(&job("j4", 100, false, 1), t70 + Duration::from_secs(1));
    assert_eq!(drain_output(&mut s).len(), 1);
}

// 15. Nothing panics on peer input (regressions from SRI's sv1 fuzzing and friends).

#[test]
fn sri_sv1_regressions_do_not_panic() {
    let lines: [&[u8]; 16] = [
        br#"{"id":1,"method":"mining.submit","params":["w","j","","",""]}"#,
        br#"{"id":1,"method":"mining.submit","params":["w","j","0","0","0","0"]}"#,
        br#"{"id":1,"method":"mining.submit","params":[[],[],[],[],[],[]]}"#,
        br#"{"id":1,"method":"mining.subscribe","params":["a","b","c",99999999999999999999]}"#,
        br#"{"id":1,"method":"mining.subscribe","params":["a","b","c",-1]}"#,
        br#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.min-bit-count":-1}]}"#,
        br#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"fffffffff"}]}"#,
        br#"{"id":1,"method":"mining.suggest_target","params":["000000000000000000000000000000000000000000000000000000000000000000"]}"#,
        br#"{"id":1,"method":"mining.suggest_target","params":["00"]}"#,
        br#"{"id":1,"method":"mining.suggest_difficulty","params":[1e309]}"#,
        br#"{"id":1,"method":"mining.suggest_difficulty","params":[5e-324]}"#,
        br#"{"id":1e999,"method":"mining.subscribe","params":[]}"#,
        br#"{"id":{"id":{"id":[[[[[[[[[[]]]]]]]]]]}},"method":"mining.subscribe","params":[]}"#,
        br#"{"id":1,"method":"mining.authorize","params":["\ud800","x"]}"#,
        br#"{"id":1,"method":"mining.submit","params":["w","j","00000000","6b04e972","00000000","0x0000000"]}"#,
        br#"{"id":1,"id":2,"method":"mining.subscribe","params":[]}"#,
    ];
    let t0 = Instant::now();
    for line in lines {
        let (mut s, _alloc) = mining(t0);
        s.handle_line(line, t0);
        for event in drain_events(&mut s) {
            match event {
                PoolEvent::Authorize { token, .. } => s.authorize_result(token, Err("no".into())),
                PoolEvent::Share(share) => {
                    s.share_result(share.token, ShareVerdict::Invalid("x".into()))
                }
                PoolEvent::Closed(_) => {}
                other => panic!("{other:?}"),
            }
        }
        for out in drain_output(&mut s) {
            assert!(Message::parse(out.trim_end().as_bytes()).is_ok(), "{out:?}");
        }
    }
}

#[test]
fn unanswered_and_foreign_tokens_are_harmless() {
    let t0 = Instant::now();
    let (mut a, _alloc_a) = mining(t0);
    let (mut b, _alloc_b) = mining(t0);
    submit(&mut a, 1, "00000000", "6b04e972", "00000001", t0);
    let share = only_share(&mut a).expect("share");
    // B never issued that token: nothing happens.
    b.share_result(share.token, ShareVerdict::Accepted);
    assert!(drain_output(&mut b).is_empty());
    // Closing with a share or an authorization outstanding, then answering, writes nothing.
    a.handle_line(
        br#"{"id":9,"method":"mining.authorize","params":["late.worker","x"]}"#,
        t0,
    );
    let token = only_authorize(&mut a);
    a.close(CloseReason::Requested);
    a.share_result(share.token, ShareVerdict::Accepted);
    a.authorize_result(token, Ok(()));
    assert!(drain_output(&mut a).is_empty());
    assert_eq!(a.share_counts(), (0, 0));
}
