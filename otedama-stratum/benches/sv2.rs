//! Criterion benchmarks of Stratum V2: handshakes, encrypted frames, and shares through a
//! pool session, beside the v1 figures of `codec.rs`.
//!
//! Run with `cargo bench -p otedama-stratum --features noise --bench sv2` (add `-- --quick`
//! for a short run).
//!
//! - `sv2_noise/handshake`: a whole `Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256`
//!   handshake, both sides: the initiator's act one, the responder's answer with its signed
//!   certificate, and the initiator's check of it against the authority key.
//! - `sv2_noise/handshake_reference`: the same handshake with the reference
//!   implementation's `noise_sv2` on both sides, in the same run.
//! - `sv2_noise/seal_share` and `open_share`: one `SubmitSharesExtended` frame sealed
//!   (header and payload, each with its tag) and opened.
//! - `sv2_session/submit_cycle`: one share through an open `Sv2PoolSession` on an extended
//!   channel: the sealed frame in (opened, decoded, the channel's job, extranonce, ntime,
//!   version and duplicate checks), the `Share` event, `share_result(Accepted)`, and the
//!   sealed `SubmitShares.Success` out. The frame is sealed outside the measured part, as the
//!   v1 bench's line is written outside it: compare with `v1_session/submit_cycle`.
//!
//! It also prints the bytes each share takes on the wire, both ways, for v1 and SV2.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use otedama_stratum::sv2::frame::Header;
use otedama_stratum::sv2::message::{
    Message, OpenExtendedMiningChannel, Protocol, SetupConnection, SubmitSharesExtended,
};
use otedama_stratum::sv2::noise::{AuthorityKeypair, Initiator, Opener, Responder, Sealer};
use otedama_stratum::sv2::pool::{Sv2PoolConfig, Sv2PoolSession};
use otedama_stratum::{
    ExtranonceAllocator, JobAnnouncement, Notify, PoolProtocol, SessionEvent, ShareVerdict,
};

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

fn share(n: u32) -> Message {
    SubmitSharesExtended {
        channel_id: 1,
        sequence_number: n,
        job_id: 1,
        nonce: n.wrapping_mul(2_654_435_761),
        ntime: 0x6b04_e972,
        version: 0x2000_0000,
        extranonce: vec![0; 4],
    }
    .into()
}

/// A handshake between our initiator and responder: the two transports.
fn handshake(
    responder: &Responder,
    authority: &otedama_stratum::sv2::noise::AuthorityPublicKey,
    now: u32,
) -> ((Sealer, Opener), (Sealer, Opener)) {
    let mut initiator = Initiator::new(Some(*authority)).expect("initiator");
    let act1 = initiator.act1();
    let (act2, pool) = responder.respond(&act1, now).expect("act two");
    let (miner, _) = initiator.act2(&act2, now).expect("the certificate checks");
    (miner.split(1 << 20), pool.split(1 << 20))
}

fn noise(c: &mut Criterion) {
    let authority = AuthorityKeypair::generate().expect("key");
    let public = authority.public();
    let authority_secret = authority.secret_base58();
    let responder = Responder::new(authority, 3600);
    let now = unix_now();
    let mut g = c.benchmark_group("sv2_noise");
    g.throughput(Throughput::Elements(1));
    g.bench_function("handshake", |b| {
        b.iter(|| black_box(handshake(&responder, &public, now)))
    });
    // The reference implementation's `noise_sv2` (a dev-dependency), both sides, side by
    // side; its responder keeps handshake state, so a fresh one each time.
    let secret: [u8; 32] = otedama_core::bitcoin::base58::decode_check(&authority_secret)
        .expect("base58check")
        .try_into()
        .expect("32 bytes");
    let raw_public = public.0.serialize();
    g.bench_function("handshake_reference", |b| {
        b.iter(|| {
            let mut responder = noise_sv2::Responder::from_authority_kp(
                &raw_public,
                &secret,
                std::time::Duration::from_secs(3600),
            )
            .expect("their responder");
            let mut initiator = noise_sv2::Initiator::from_raw_k(raw_public).expect("initiator");
            let act1 = initiator.step_0().expect("act one");
            let (act2, pool) = responder.step_1(act1).expect("act two");
            black_box((initiator.step_2(act2).expect("checks"), pool))
        })
    });
    let ((mut sealer, _), _) = handshake(&responder, &public, now);
    let mut n = 0u32;
    g.bench_function("seal_share", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(sealer.seal_message(&share(n)).expect("sealed"))
        })
    });
    // A fresh pair: the opener must see every frame its peer sealed, in order.
    let ((mut sealer, _), (_, mut opener)) = handshake(&responder, &public, now);
    g.bench_function("open_share", |b| {
        b.iter_batched(
            || {
                n = n.wrapping_add(1);
                sealer.seal_message(&share(n)).expect("sealed")
            },
            |bytes| {
                opener.push(&bytes);
                black_box(opener.next_frame().expect("opens").expect("a frame"))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn session(c: &mut Criterion) {
    let t0 = Instant::now();
    let now = unix_now();
    let authority = AuthorityKeypair::generate().expect("key");
    let public = authority.public();
    let mut config = Sv2PoolConfig::new(authority);
    config.pool.vardiff_enabled = false;
    config.pool.initial_difficulty = 1.0;
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let mut pool = Sv2PoolSession::new(Arc::new(config), allocator, t0).expect("session");

    let mut initiator = Initiator::new(Some(public)).expect("initiator");
    PoolProtocol::handle_bytes(&mut pool, &initiator.act1(), t0);
    let act2 = PoolProtocol::poll_output(&mut pool).expect("act two");
    let (transport, _) = initiator.act2(&act2, now).expect("the certificate checks");
    let (mut sealer, mut opener) = transport.split(1 << 20);
    let drain = |pool: &mut Sv2PoolSession, opener: &mut Opener| {
        let mut messages = Vec::new();
        while let Some(bytes) = PoolProtocol::poll_output(pool) {
            opener.push(&bytes);
            while let Some(frame) = opener.next_frame().expect("opens") {
                messages.push(Message::from_frame(&frame).expect("decodes").0);
            }
        }
        messages
    };
    let setup = SetupConnection {
        protocol: Protocol::Mining,
        min_version: 2,
        max_version: 2,
        flags: 0,
        endpoint_host: "127.0.0.1".into(),
        endpoint_port: 3336,
        vendor: "bench".into(),
        hardware_version: String::new(),
        firmware: String::new(),
        device_id: String::new(),
    };
    let bytes = sealer.seal_message(&setup.into()).expect("sealed");
    PoolProtocol::handle_bytes(&mut pool, &bytes, t0);
    let open = OpenExtendedMiningChannel {
        request_id: 1,
        user_identity: "otedama.worker1".into(),
        nominal_hash_rate: 1e12,
        max_target: [0xff; 32],
        min_extranonce_size: 4,
    };
    let bytes = sealer.seal_message(&open.into()).expect("sealed");
    PoolProtocol::handle_bytes(&mut pool, &bytes, t0);
    while let Some(event) = PoolProtocol::poll_event(&mut pool) {
        if let SessionEvent::Authorize { token, .. } = event {
            PoolProtocol::authorize_result(&mut pool, token, Ok(()));
        }
    }
    let job = JobAnnouncement {
        notify: Notify {
            job_id: "job1".into(),
            prevhash: [0x5a; 32],
            coinb1: (0..120u8).collect(),
            coinb2: (0..80u8).rev().collect(),
            merkle_branch: (0..12u8).map(|i| [i; 32]).collect(),
            version: 0x2000_0000,
            nbits: 0x1703_4219,
            ntime: 0x6b04_e972,
            clean_jobs: true,
        },
        height: 1,
    };
    PoolProtocol::send_job(&mut pool, &job, t0);
    let opened = drain(&mut pool, &mut opener);
    assert!(
        opened
            .iter()
            .any(|m| matches!(m, Message::OpenExtendedMiningChannelSuccess(_))),
        "the channel opened: {opened:?}"
    );

    // Bytes on the wire for one share, both ways.
    let first = sealer.seal_message(&share(0)).expect("sealed");
    let sealed_share = first.len();
    PoolProtocol::handle_bytes(&mut pool, &first, t0);
    let mut answered = 0;
    while let Some(event) = PoolProtocol::poll_event(&mut pool) {
        if let SessionEvent::Share(s) = event {
            PoolProtocol::share_result(&mut pool, s.token, ShareVerdict::Accepted);
        }
    }
    while let Some(bytes) = PoolProtocol::poll_output(&mut pool) {
        answered += bytes.len();
        opener.push(&bytes);
        while opener.next_frame().expect("opens").is_some() {}
    }
    let v1_submit = r#"{"id":4,"method":"mining.submit","params":["otedama.worker1","6a1f3c","00000000","6b04e972","1cd73400"]}"#.len() + 1;
    let v1_answer = r#"{"id":4,"result":true,"error":null}"#.len() + 1;
    eprintln!(
        "bytes per share on the wire: v1 {v1_submit} up + {v1_answer} down = {}; \
         SV2 (Noise) {sealed_share} up + {answered} down = {} ({} of it frame headers and tags)",
        v1_submit + v1_answer,
        sealed_share + answered,
        2 * (Header::SIZE + 2 * 16),
    );

    let mut n = 1u32;
    let mut g = c.benchmark_group("sv2_session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit_cycle", |b| {
        b.iter_batched(
            || {
                n = n.wrapping_add(1);
                sealer.seal_message(&share(n)).expect("sealed")
            },
            |bytes| {
                PoolProtocol::handle_bytes(&mut pool, &bytes, t0);
                let Some(SessionEvent::Share(s)) = PoolProtocol::poll_event(&mut pool) else {
                    unreachable!("every share passes the session's checks")
                };
                PoolProtocol::share_result(&mut pool, s.token, ShareVerdict::Accepted);
                black_box(PoolProtocol::poll_output(&mut pool))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, noise, session);
criterion_main!(benches);
