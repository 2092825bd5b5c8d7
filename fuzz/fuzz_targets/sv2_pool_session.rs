//! The Stratum V2 pool session (`otedama_stratum::sv2::pool`) driven by a miner whose frames
//! come from the input, sealed after a real Noise handshake, so the fuzzer reaches the
//! session behind the encryption.
//!
//! Input: a sequence of steps, each `[op][len lo][len hi][bytes]`. An op below 0xf0 is a
//! message type: the bytes (at most the length) are its payload, framed, sealed and fed in
//! two cuts. 0xf0 answers the pending authorizations (yes or no by the first byte), 0xf1
//! judges the pending shares (the verdict from each byte), 0xf2 announces a job (new block or
//! not by the first byte), 0xf3 feeds raw bytes past the sealer, 0xf4 lets the clock run out.
//!
//! Checks: nothing panics; everything the session writes opens with the miner's keys and reads
//! as a message; once closed, the session writes nothing more and raises no event but its
//! closing.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use otedama_stratum::sv2::frame::{Frame, Header};
use otedama_stratum::sv2::message::Message;
use otedama_stratum::sv2::noise::{AuthorityKeypair, Initiator};
use otedama_stratum::sv2::pool::{Sv2PoolConfig, Sv2PoolSession};
use otedama_stratum::{
    ExtranonceAllocator, JobAnnouncement, Notify, PoolProtocol, SessionEvent, ShareVerdict,
};

fn authority() -> &'static AuthorityKeypair {
    static KEY: OnceLock<AuthorityKeypair> = OnceLock::new();
    KEY.get_or_init(|| AuthorityKeypair::generate().expect("key"))
}

fn job(id: u32, block: u8) -> JobAnnouncement {
    JobAnnouncement {
        notify: Notify {
            job_id: format!("{id:x}"),
            prevhash: [block; 32],
            coinb1: vec![1, 2, 3],
            coinb2: vec![4, 5],
            merkle_branch: vec![[6; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 1_700_000_000,
            clean_jobs: true,
        },
        height: u64::from(block),
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut config = Sv2PoolConfig::new(authority().clone());
    config.pool.initial_difficulty = 0.001;
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let mut pool = Sv2PoolSession::new(Arc::new(config), allocator, start).expect("session");
    let mut initiator = Initiator::new(Some(authority().public())).expect("initiator");
    pool.handle_bytes(&initiator.act1(), start);
    let act2 = pool.poll_output().expect("act 2");
    let (transport, _) = initiator.act2(&act2, unix_now()).expect("handshake");
    let (mut sealer, mut opener) = transport.split(1 << 20);

    let mut authorizations = Vec::new();
    // Shares handed to the caller, in order, and whether each was judged.
    let mut shares = Vec::new();
    let mut jobs = 0u32;
    let mut block = 1u8;
    let mut now = start;
    let mut rest = data;
    while rest.len() >= 3 {
        let (op, len) = (rest[0], usize::from(u16::from_le_bytes([rest[1], rest[2]])));
        let body = &rest[3..3 + len.min(rest.len() - 3)];
        rest = &rest[3 + body.len()..];
        let was_closed = pool.is_closed();
        match op {
            0xf0 => {
                for (i, token) in authorizations.drain(..).enumerate() {
                    let yes = body.get(i).is_none_or(|b| b & 1 == 0);
                    pool.authorize_result(token, if yes { Ok(()) } else { Err("no".into()) });
                }
            }
            0xf1 => {
                for (i, (token, judged)) in shares.iter_mut().enumerate() {
                    if *judged {
                        continue;
                    }
                    let verdict = match body.get(i).copied().unwrap_or(0) % 5 {
                        0 => ShareVerdict::Accepted,
                        1 => ShareVerdict::LowDifficulty,
                        2 => ShareVerdict::Stale,
                        3 => ShareVerdict::Invalid("bad".into()),
                        _ => continue,
                    };
                    pool.share_result(*token, verdict);
                    *judged = true;
                }
            }
            0xf2 => {
                jobs += 1;
                if body.first().is_none_or(|b| b & 1 == 1) {
                    block = block.wrapping_add(1);
                }
                pool.send_job(&job(jobs, block), now);
            }
            0xf3 => {
                pool.handle_bytes(body, now);
            }
            0xf4 => {
                now += Duration::from_secs(u64::from(body.first().copied().unwrap_or(0)) * 10);
                pool.handle_timeout(now);
            }
            msg_type => {
                let channel = body.first().is_some_and(|b| b & 0x80 != 0);
                let frame = Frame {
                    header: Header::for_payload(0, channel, msg_type, body.len()).expect("fits"),
                    payload: body.to_vec(),
                };
                let sealed = sealer.seal(&frame).expect("seal");
                let cut = usize::from(body.first().copied().unwrap_or(0)) % (sealed.len() + 1);
                pool.handle_bytes(&sealed[..cut], now);
                pool.handle_bytes(&sealed[cut..], now);
            }
        }
        if was_closed {
            assert!(pool.poll_output().is_none(), "output after the close");
        }
        while let Some(bytes) = pool.poll_output() {
            opener.push(&bytes);
        }
        while let Some(frame) = opener.next_frame().expect("what the pool writes opens") {
            Message::from_frame(&frame).expect("what the pool writes reads");
        }
        while let Some(event) = pool.poll_event() {
            assert!(!was_closed || matches!(event, SessionEvent::Closed(_)));
            match event {
                SessionEvent::Authorize { token, .. } => authorizations.push(token),
                SessionEvent::Share(share) => shares.push((share.token, false)),
                _ => {}
            }
        }
    }
});

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}
