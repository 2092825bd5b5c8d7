//! The Monero (xmrig) stratum dialect of `otedama_stratum`: `MoneroMessage::parse` and the
//! typed `login`, `submit`, `keepalived`, `job` and login-result forms.
//!
//! Input: arbitrary bytes, as one line.
//!
//! Checks:
//! - nothing panics;
//! - whatever `MoneroClientRequest::from_request` or `MoneroServerRequest::from_request`
//!   accepts re-encodes to one newline-terminated line that parses back to the same typed
//!   value with the same id, and encoding is then a fixed point;
//! - a response re-encodes to a line that parses back to the same response;
//! - whatever `MoneroLoginResult::from_json` accepts survives `to_json` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_stratum::{
    MoneroClientRequest, MoneroLoginResult, MoneroMessage, MoneroServerRequest, Request,
};

fn reparse(line: &str) -> MoneroMessage {
    let body = line.strip_suffix('\n').expect("our lines end in a newline");
    assert!(!body.contains('\n'), "one line: {line:?}");
    MoneroMessage::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("our own line fails: {e}: {line:?}"))
}

fn reparse_request(line: &str) -> Request {
    match reparse(line) {
        MoneroMessage::Request(r) => r,
        other => panic!("a request came back as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = MoneroMessage::parse(data) else {
        return;
    };
    match message {
        MoneroMessage::Request(req) => {
            if let Ok(typed) = MoneroClientRequest::from_request(&req) {
                assert_eq!(typed.method(), req.method);
                let line = typed.to_line(req.id.clone());
                let again = reparse_request(&line);
                assert_eq!(again.id, req.id);
                let decoded = MoneroClientRequest::from_request(&again)
                    .unwrap_or_else(|e| panic!("re-encoded {typed:?} fails: {e}: {line:?}"));
                assert_eq!(decoded, typed, "{line:?}");
                assert_eq!(decoded.to_line(req.id.clone()), line);
            }
            if let Ok(typed) = MoneroServerRequest::from_request(&req) {
                let line = typed.to_line();
                let again = reparse_request(&line);
                assert_eq!(again.id, None);
                let decoded = MoneroServerRequest::from_request(&again)
                    .unwrap_or_else(|e| panic!("re-encoded {typed:?} fails: {e}: {line:?}"));
                assert_eq!(decoded, typed, "{line:?}");
                assert_eq!(decoded.to_line(), line);
            }
        }
        MoneroMessage::Response(resp) => {
            let line = resp.to_line();
            let MoneroMessage::Response(again) = reparse(&line) else {
                panic!("a response came back as a request: {line:?}");
            };
            assert_eq!(again, resp, "{line:?}");
            if let Ok(result) = &resp.result {
                if let Ok(login) = MoneroLoginResult::from_json(result) {
                    assert_eq!(MoneroLoginResult::from_json(&login.to_json()), Ok(login));
                }
            }
        }
    }
});
