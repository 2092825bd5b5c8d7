//! The EthereumStratum/1.0.0 (NiceHash) and kawpowminer dialects of `otedama_stratum`:
//! `EthClientRequest`, `EthServerRequest` and `EthSubscribeResult` over `Message::parse`.
//!
//! Input: arbitrary bytes, as one line.
//!
//! Checks:
//! - nothing panics;
//! - whatever `EthClientRequest::from_request` or `EthServerRequest::from_request` accepts
//!   re-encodes to a request that decodes to the same typed value with the same id (a missing
//!   password comes back as `""`), and encoding is then a fixed point;
//! - whatever `EthSubscribeResult::from_json` accepts re-encodes to a result that decodes
//!   again, with the same extranonce and session id, and encoding is then a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_stratum::{
    Authorize, EthClientRequest, EthServerRequest, EthSubscribeResult, Message, Request,
};

fn reparse_request(line: &str) -> Request {
    let body = line.strip_suffix('\n').expect("our lines end in a newline");
    assert!(!body.contains('\n'), "one line: {line:?}");
    match Message::parse(body.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("our own line came back as {other:?}: {line:?}"),
    }
}

fn check_client(req: &Request) {
    let Ok(typed) = EthClientRequest::from_request(req) else {
        return;
    };
    assert_eq!(typed.method(), req.method);
    let line = typed.to_request(req.id.clone()).to_line();
    let again = reparse_request(&line);
    assert_eq!(again.id, req.id);
    let decoded = EthClientRequest::from_request(&again)
        .unwrap_or_else(|e| panic!("re-encoded {typed:?} fails: {e}: {line:?}"));
    let expected = match typed {
        EthClientRequest::Authorize(Authorize { username, password }) => {
            EthClientRequest::Authorize(Authorize {
                username,
                password: Some(password.unwrap_or_default()),
            })
        }
        other => other,
    };
    assert_eq!(decoded, expected, "{line:?}");
    assert_eq!(decoded.to_request(req.id.clone()).to_line(), line);
}

fn check_server(req: &Request) {
    let Ok(typed) = EthServerRequest::from_request(req) else {
        return;
    };
    assert_eq!(typed.method(), req.method);
    let line = typed.to_request(req.id.clone()).to_line();
    let again = reparse_request(&line);
    assert_eq!(again.id, req.id);
    let decoded = EthServerRequest::from_request(&again)
        .unwrap_or_else(|e| panic!("re-encoded {typed:?} fails: {e}: {line:?}"));
    assert_eq!(decoded, typed, "{line:?}");
    assert_eq!(decoded.to_request(req.id.clone()).to_line(), line);
}

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(Message::Request(req)) => {
            check_client(&req);
            check_server(&req);
        }
        Ok(Message::Response(resp)) => {
            if let Ok(sub) = EthSubscribeResult::from_json(&resp.result) {
                let json = sub.to_json();
                let again = EthSubscribeResult::from_json(&json)
                    .unwrap_or_else(|e| panic!("re-encoded {sub:?} fails: {e}"));
                assert_eq!(again.extranonce, sub.extranonce);
                assert_eq!(again.session_id, sub.session_id);
                assert_eq!(again.to_json(), json);
            }
        }
        Err(_) => {}
    }
});
