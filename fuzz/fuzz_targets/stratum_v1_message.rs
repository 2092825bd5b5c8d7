//! The Stratum v1 codec of `otedama_stratum`: `Message::parse` and the typed forms.
//!
//! Input: arbitrary bytes, as one line.
//!
//! Checks:
//! - `Message::parse` never panics, and accepts only JSON objects;
//! - a parsed request or response re-encodes to one newline-terminated line that parses back
//!   to the same message, with the id's JSON text unchanged;
//! - whatever `ClientRequest::from_request` or `ServerRequest::from_request` accepts
//!   re-encodes to a request that decodes to the same typed value (a missing password comes
//!   back as `""`, the one documented normalisation), and encoding is then a fixed point;
//! - whatever `SubscribeResult::from_json` accepts survives `to_json` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_stratum::{
    Authorize, ClientRequest, Message, Request, Response, ServerRequest, SubscribeResult,
};

/// Parses a line we wrote: exactly one line, ending in `\n`, that parses.
fn reparse(line: &str) -> Message {
    let body = line.strip_suffix('\n').expect("our lines end in a newline");
    assert!(!body.contains('\n'), "one line: {line:?}");
    Message::parse(body.as_bytes()).unwrap_or_else(|e| panic!("our own line fails: {e}: {line:?}"))
}

fn reparse_request(line: &str) -> Request {
    match reparse(line) {
        Message::Request(r) => r,
        other => panic!("a request came back as {other:?}"),
    }
}

fn check_client(req: &Request) {
    let Ok(typed) = ClientRequest::from_request(req) else {
        return;
    };
    assert_eq!(typed.method(), req.method);
    let line = typed.to_request(req.id.clone()).to_line();
    let again = reparse_request(&line);
    assert_eq!(again.id, req.id);
    let decoded = ClientRequest::from_request(&again)
        .unwrap_or_else(|e| panic!("re-encoded {typed:?} fails: {e}: {line:?}"));
    let expected = match typed {
        ClientRequest::Authorize(Authorize { username, password }) => {
            ClientRequest::Authorize(Authorize {
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
    let Ok(typed) = ServerRequest::from_request(req) else {
        return;
    };
    assert_eq!(typed.method(), req.method);
    let line = typed.to_request(req.id.clone()).to_line();
    let again = reparse_request(&line);
    assert_eq!(again.id, req.id);
    let decoded = ServerRequest::from_request(&again)
        .unwrap_or_else(|e| panic!("re-encoded {typed:?} fails: {e}: {line:?}"));
    assert_eq!(decoded, typed, "{line:?}");
    assert_eq!(decoded.to_request(req.id.clone()).to_line(), line);
}

fn check_response(resp: &Response) {
    let line = resp.to_line();
    let Message::Response(again) = reparse(&line) else {
        panic!("a response came back as a request: {line:?}");
    };
    assert_eq!(&again, resp);
    if let Some(sub) = SubscribeResult::from_json(&resp.result) {
        assert_eq!(SubscribeResult::from_json(&sub.to_json()), Some(sub));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let text = std::str::from_utf8(data).expect("parsed input is utf-8");
    assert!(text.trim_start().starts_with('{'), "only objects parse");
    match &message {
        Message::Request(req) => {
            let line = req.to_line();
            let again = reparse_request(&line);
            assert_eq!(&again, req);
            if let Some(id) = &req.id {
                assert!(line.starts_with(&format!("{{\"id\":{},", id.as_json())));
            }
            check_client(req);
            check_server(req);
        }
        Message::Response(resp) => check_response(resp),
    }
});
