//! A Stratum v1 pool session (`otedama_stratum::PoolSession`) fed an arbitrary byte stream.
//!
//! Input: the first byte picks the set-up (subscribed and authorized first or not, a job
//! announced or not), the second seeds the verdicts the "pool" gives; the rest is the miner's
//! byte stream, cut into reads of varying sizes and framed by a `LineBuffer`.
//!
//! Checks:
//! - nothing panics, whatever the bytes and whatever the verdicts;
//! - every line the session writes is one well-formed message ending in `\n`;
//! - a response written straight after a request carries that request's id, byte for byte;
//! - once closed, the session writes nothing and raises nothing more, and its extranonce1 is
//!   released;
//! - a second session resuming the first one's extranonce1 while the first is live gets a
//!   different one.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use otedama_stratum::{
    ExtranonceAllocator, JobAnnouncement, LineBuffer, Message, Notify, PoolConfig, PoolEvent,
    PoolSession, ShareVerdict, SubscribeResult,
};

fn job(id: &str, clean: bool, height: u64) -> JobAnnouncement {
    JobAnnouncement {
        notify: Notify {
            job_id: id.to_owned(),
            prevhash: [0x11; 32],
            coinb1: vec![1, 0, 0, 0],
            coinb2: vec![0xff; 4],
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 0x6b04_e972,
            clean_jobs: clean,
        },
        height,
    }
}

/// Drains the output, checking each line; returns the parsed messages.
fn output(session: &mut PoolSession) -> Vec<Message> {
    std::iter::from_fn(|| session.poll_output())
        .map(|line| {
            let body = line.strip_suffix('\n').expect("newline-terminated");
            assert!(!body.contains('\n'), "one line: {line:?}");
            Message::parse(body.as_bytes())
                .unwrap_or_else(|e| panic!("session wrote a bad line: {e}: {line:?}"))
        })
        .collect()
}

fn answer(session: &mut PoolSession, seed: &mut u8) -> bool {
    let mut closed = false;
    while let Some(event) = session.poll_event() {
        *seed = seed.wrapping_mul(37).wrapping_add(11);
        match event {
            PoolEvent::Authorize { token, .. } => {
                let result = if *seed % 5 == 0 {
                    Err("no".to_owned())
                } else {
                    Ok(())
                };
                session.authorize_result(token, result);
            }
            PoolEvent::Share(share) => {
                let verdict = match *seed % 6 {
                    0 => ShareVerdict::LowDifficulty,
                    1 => ShareVerdict::Stale,
                    2 => ShareVerdict::Invalid("bad".into()),
                    _ => ShareVerdict::Accepted,
                };
                assert!(share.difficulty > 0.0);
                assert_eq!(share.extranonce2.len(), 4);
                session.share_result(share.token, verdict);
            }
            PoolEvent::Closed(_) => closed = true,
            other => panic!("unexpected event {other:?}"),
        }
    }
    closed
}

fuzz_target!(|data: &[u8]| {
    let (setup, rest) = data.split_first().unwrap_or((&0, &[]));
    let (seed, stream) = rest.split_first().unwrap_or((&0, &[]));
    let mut seed = *seed;
    let t0 = Instant::now();
    let allocator = ExtranonceAllocator::new(&[0xab], 2).expect("allocator");
    let config = Arc::new(PoolConfig {
        vardiff: otedama_stratum::VardiffConfig {
            retarget_interval: Duration::from_secs(2),
            target_interval: Duration::from_secs(1),
            ..Default::default()
        },
        ..PoolConfig::default()
    });
    let mut session = PoolSession::new(Arc::clone(&config), Arc::clone(&allocator), t0);
    if setup & 1 != 0 {
        session.handle_line(
            br#"{"id":1,"method":"mining.subscribe","params":["f"]}"#,
            t0,
        );
        session.handle_line(
            br#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
            t0,
        );
        answer(&mut session, &mut seed);
        output(&mut session);
    }
    if setup & 2 != 0 {
        session.send_job(&job("j1", true, 1), t0);
        output(&mut session);
    }

    let mut lines = LineBuffer::new(2048);
    let mut closed = session.is_closed();
    let mut rest = stream;
    let mut step = 0u64;
    while !rest.is_empty() && !closed {
        // Reads of 1 to 64 bytes, sized by the stream itself.
        let size = (usize::from(rest[0]) % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        step += 1;
        let now = t0 + Duration::from_millis(250 * step);
        if lines.feed(chunk).is_err() {
            break;
        }
        while let Some(line) = lines.next_line() {
            let sent = match Message::parse(line) {
                Ok(Message::Request(r)) => Some(r.id),
                _ => None,
            };
            session.handle_line(line, now);
            for message in output(&mut session) {
                if let (Message::Response(r), Some(id)) = (&message, &sent) {
                    assert_eq!(&r.id, id, "reply to {:?}", String::from_utf8_lossy(line));
                }
            }
            closed |= answer(&mut session, &mut seed);
            output(&mut session);
            if closed {
                break;
            }
        }
        if step % 8 == 0 && !closed {
            session.send_job(&job(&format!("j{step}"), step % 16 == 0, step / 32), now);
            output(&mut session);
        }
        session.handle_timeout(now);
        closed |= answer(&mut session, &mut seed);
    }

    if session.is_closed() {
        assert!(session.extranonce1().is_none());
        assert_eq!(allocator.live(), 0);
        session.handle_line(br#"{"id":9,"method":"mining.subscribe","params":[]}"#, t0);
        assert!(session.poll_output().is_none());
        assert!(session.poll_event().is_none());
    } else if let Some(en1) = session.extranonce1().map(<[u8]>::to_vec) {
        let mut other = PoolSession::new(config, Arc::clone(&allocator), t0);
        let line = format!(
            r#"{{"id":1,"method":"mining.subscribe","params":["f","{}"]}}"#,
            otedama_core::encode_hex(&en1)
        );
        other.handle_line(line.as_bytes(), t0);
        if let Some(Message::Response(r)) = output(&mut other).into_iter().next() {
            if let Some(sub) = SubscribeResult::from_json(&r.result) {
                assert_ne!(
                    sub.extranonce1, en1,
                    "a live extranonce1 was handed out twice"
                );
            }
        }
    }
});
