//! Criterion benchmarks of the Stratum v1 codec and pool session: messages per second.
//!
//! Run with `cargo bench -p otedama-stratum --bench codec` (add `-- --quick` for a short run).
//!
//! - `v1_codec/submit`: a captured cpuminer `mining.submit` line, `Message::parse` +
//!   `ClientRequest::from_request`, then `to_request` + `to_line` back.
//! - `v1_codec/notify`: a `mining.notify` with a 12-entry merkle branch and a 120-byte coinbase
//!   prefix, `ServerRequest` both ways.
//! - `v1_session/submit_cycle`: one share through a subscribed, authorized `PoolSession`:
//!   `handle_line` (with the duplicate, ntime and job checks), the `Share` event,
//!   `share_result(Accepted)`, and the reply line.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use otedama_stratum::{
    ClientRequest, ExtranonceAllocator, JobAnnouncement, Message, Notify, PoolConfig, PoolEvent,
    PoolSession, ServerRequest, ShareVerdict,
};

const SUBMIT: &str = r#"{"method": "mining.submit", "params": ["otedama.worker1", "job1", "00000000", "6b04e972", "1cd73400"], "id":4}"#;

fn notify() -> Notify {
    Notify {
        job_id: "6a1f3c".into(),
        prevhash: [0x5a; 32],
        coinb1: (0..120u8).collect(),
        coinb2: (0..80u8).rev().collect(),
        merkle_branch: (0..12u8).map(|i| [i; 32]).collect(),
        version: 0x2000_0000,
        nbits: 0x1703_4219,
        ntime: 0x6b04_e972,
        clean_jobs: false,
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("v1_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit", |b| {
        b.iter(|| {
            let Ok(Message::Request(r)) = Message::parse(black_box(SUBMIT.as_bytes())) else {
                unreachable!()
            };
            let typed = ClientRequest::from_request(&r).expect("submit");
            black_box(typed.to_request(r.id).to_line())
        })
    });
    let line = ServerRequest::Notify(notify()).to_request(None).to_line();
    let line = line.trim_end().to_owned();
    g.bench_function("notify", |b| {
        b.iter(|| {
            let Ok(Message::Request(r)) = Message::parse(black_box(line.as_bytes())) else {
                unreachable!()
            };
            let typed = ServerRequest::from_request(&r).expect("notify");
            black_box(typed.to_request(None).to_line())
        })
    });
    g.finish();
}

fn session(c: &mut Criterion) {
    let t0 = Instant::now();
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let config = PoolConfig {
        vardiff_enabled: false,
        ..PoolConfig::default()
    };
    let mut session = PoolSession::new(Arc::new(config), allocator, t0);
    session.handle_line(
        br#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#,
        t0,
    );
    session.handle_line(
        br#"{"id": 2, "method": "mining.authorize", "params": ["otedama.worker1", "x"]}"#,
        t0,
    );
    while let Some(event) = session.poll_event() {
        if let PoolEvent::Authorize { token, .. } = event {
            session.authorize_result(token, Ok(()));
        }
    }
    let mut job = JobAnnouncement {
        notify: Notify {
            job_id: "job1".into(),
            ..notify()
        },
        height: 1,
    };
    job.notify.clean_jobs = true;
    session.send_job(&job, t0);
    while session.poll_output().is_some() {}

    // Distinct shares, as a miner sends them; a clean job every 4096 clears the duplicate set.
    let lines: Vec<String> = (0..4096u32)
        .map(|n| {
            format!(
                r#"{{"method": "mining.submit", "params": ["otedama.worker1", "job1", "00000000", "6b04e972", "{:08x}"], "id":4}}"#,
                n.wrapping_mul(2_654_435_761)
            )
        })
        .collect();
    let mut next = 0usize;

    let mut g = c.benchmark_group("v1_session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit_cycle", |b| {
        b.iter(|| {
            if next == lines.len() {
                next = 0;
                session.send_job(&job, t0);
                while session.poll_output().is_some() {}
            }
            session.handle_line(lines[next].as_bytes(), t0);
            next += 1;
            let Some(PoolEvent::Share(share)) = session.poll_event() else {
                unreachable!("every share passes the session's checks")
            };
            session.share_result(share.token, ShareVerdict::Accepted);
            black_box(session.poll_output())
        })
    });
    g.finish();
    assert_eq!(session.share_counts().1, 0, "no share was rejected");
}

criterion_group!(benches, codec, session);
criterion_main!(benches);
