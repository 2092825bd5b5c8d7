//! The SV2 pool and miner sessions against each other, sans-IO: bytes pumped from one to the
//! other, jobs from v1 announcements, shares back as v1 submissions, and a standard channel
//! driven by hand (the miner session opens extended channels only).
#![cfg(feature = "noise")]

use std::sync::Arc;
use std::time::Instant;

use otedama_core::{coinbase_txid_from_parts, MerkleBranch};
use otedama_stratum::sv2::message::{self as m, Message, Protocol};
use otedama_stratum::sv2::miner::{Sv2MinerConfig, Sv2MinerSession};
use otedama_stratum::sv2::noise::{AuthorityKeypair, Initiator, Opener, Sealer, ACT2_LEN};
use otedama_stratum::sv2::pool::{Sv2PoolConfig, Sv2PoolSession};
use otedama_stratum::{
    ExtranonceAllocator, JobAnnouncement, MinerConfig, MinerEvent, MinerProtocol, Notify, PoolLink,
    PoolProtocol, SessionEvent, ShareVerdict,
};

fn job(id: &str, prevhash: u8, height: u64) -> JobAnnouncement {
    JobAnnouncement {
        notify: Notify {
            job_id: id.into(),
            prevhash: [prevhash; 32],
            coinb1: vec![1, 2, 3, 4, 5],
            coinb2: vec![6, 7, 8],
            merkle_branch: vec![[9; 32], [10; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 1_700_000_000,
            clean_jobs: true,
        },
        height,
    }
}

fn pool_config(authority: AuthorityKeypair) -> Arc<Sv2PoolConfig> {
    let mut config = Sv2PoolConfig::new(authority);
    config.pool.initial_difficulty = 0.001;
    config.pool.vardiff_enabled = false;
    Arc::new(config)
}

/// Moves bytes both ways until neither side has more.
fn pump(pool: &mut Sv2PoolSession, miner: &mut Sv2MinerSession, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(bytes) = MinerProtocol::poll_output(miner) {
            PoolProtocol::handle_bytes(pool, &bytes, now);
            moved = true;
        }
        while let Some(bytes) = PoolProtocol::poll_output(pool) {
            MinerProtocol::handle_bytes(miner, &bytes, now);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

/// A pool session and an SV2 miner session for `addr.rig` (rolling `version_rolling`), past
/// the handshake and the setup, the channel's authorization pending.
fn connected(version_rolling: Option<u32>, now: Instant) -> (Sv2PoolSession, Sv2MinerSession) {
    let authority = AuthorityKeypair::generate().expect("key");
    let public = authority.public();
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let mut pool = Sv2PoolSession::new(pool_config(authority), allocator, now).expect("session");
    let link = PoolLink::new("127.0.0.1").with_authority(public.to_base58());
    let config = Sv2MinerConfig {
        miner: MinerConfig {
            user: "addr.rig".into(),
            version_rolling,
            ..MinerConfig::default()
        },
        ..Sv2MinerConfig::default()
    };
    let mut miner = Sv2MinerSession::new(config, &link, now);
    pump(&mut pool, &mut miner, now);
    (pool, miner)
}

#[test]
fn a_miner_session_mines_on_a_pool_session() {
    let now = Instant::now();
    let (mut pool, mut miner) = connected(Some(0x1fff_e000), now);
    let Some(SessionEvent::Authorize {
        token, username, ..
    }) = pool.poll_event()
    else {
        panic!("the channel asks for authorization")
    };
    assert_eq!(username, "addr.rig");
    pool.authorize_result(token, Ok(()));
    assert!(pool.wants_jobs());
    pool.send_job(&job("a1", 1, 100), now);
    pump(&mut pool, &mut miner, now);
    let mut subscribed = None;
    let mut new_job = None;
    while let Some(event) = miner.poll_event() {
        match event {
            MinerEvent::Subscribed {
                extranonce1,
                extranonce2_size,
                ..
            } => subscribed = Some((extranonce1, extranonce2_size)),
            MinerEvent::NewJob(j) => new_job = Some(j),
            MinerEvent::Authorized(ok, _) => assert!(ok),
            other => panic!("unexpected {other:?}"),
        }
    }
    let (extranonce1, size) = subscribed.expect("subscribed");
    assert_eq!(size, 4);
    let first = new_job.expect("a job");
    assert!(first.clean, "the first job is a new block");
    assert_eq!(first.notify.prevhash, [1; 32]);
    assert_eq!(first.notify.coinb1, vec![1, 2, 3, 4, 5]);
    assert_eq!(first.extranonce1, extranonce1);
    assert_eq!(first.version_mask, 0x1fff_e000);
    assert!(
        (first.difficulty - 0.001).abs() < 1e-9,
        "{}",
        first.difficulty
    );

    // A share with rolled version bits comes out as the v1 share it is.
    let share = first.share(&[7, 7, 7, 7], first.notify.ntime + 5, 42, Some(0x0000_e000));
    let number = miner.submit(share);
    pump(&mut pool, &mut miner, now);
    let Some(SessionEvent::Share(s)) = pool.poll_event() else {
        panic!("a share for the caller")
    };
    assert_eq!(s.job_id, "a1");
    assert_eq!(s.extranonce1, extranonce1);
    assert_eq!(s.extranonce2, vec![7, 7, 7, 7]);
    assert_eq!((s.nonce, s.ntime), (42, 1_700_000_005));
    assert_eq!(s.version_bits, Some(0x0000_e000));
    assert_eq!(s.worker, "addr.rig");
    pool.share_result(s.token, ShareVerdict::Accepted);
    pump(&mut pool, &mut miner, now);
    assert!(matches!(
        miner.poll_event(),
        Some(MinerEvent::ShareResult { sequence, accepted: true, .. }) if sequence == number
    ));

    // The same share again is refused by the pool session itself.
    let again = first.share(&[7, 7, 7, 7], first.notify.ntime + 5, 42, Some(0x0000_e000));
    miner.submit(again);
    pump(&mut pool, &mut miner, now);
    assert!(pool.poll_event().is_none(), "not handed to the caller");
    assert!(matches!(
        miner.poll_event(),
        Some(MinerEvent::ShareResult { accepted: false, error: Some(e), .. }) if e.to_string().contains("duplicate")
    ));

    // A job on the same block is active at once; a new block voids the old jobs.
    pool.send_job(
        &JobAnnouncement {
            notify: Notify {
                clean_jobs: false,
                ..job_notify("a2", 1)
            },
            height: 100,
        },
        now,
    );
    pump(&mut pool, &mut miner, now);
    let Some(MinerEvent::NewJob(j2)) = miner.poll_event() else {
        panic!("the second job")
    };
    assert!(!j2.clean);
    pool.send_job(&job("b1", 2, 101), now);
    pump(&mut pool, &mut miner, now);
    let Some(MinerEvent::NewJob(j3)) = miner.poll_event() else {
        panic!("the third job")
    };
    assert!(j3.clean);
    assert_eq!(j3.notify.prevhash, [2; 32]);
    // A share on the voided job is stale, refused by the miner session before it goes out.
    miner.submit(j2.share(&[1, 1, 1, 1], j2.notify.ntime, 1, None));
    assert!(matches!(
        miner.poll_event(),
        Some(MinerEvent::ShareResult {
            accepted: false,
            ..
        })
    ));
}

fn job_notify(id: &str, prevhash: u8) -> Notify {
    job(id, prevhash, 0).notify
}

/// A hand-driven client: our initiator and codec.
struct Client {
    sealer: Sealer,
    opener: Opener,
}

impl Client {
    fn connect(pool: &mut Sv2PoolSession, authority: &AuthorityKeypair, now: Instant) -> Client {
        let mut initiator = Initiator::new(Some(authority.public())).expect("initiator");
        pool.handle_bytes(&initiator.act1(), now);
        let act2 = pool.poll_output().expect("act 2");
        assert_eq!(act2.len(), ACT2_LEN);
        let (transport, _) = initiator.act2(&act2, unix_now()).expect("handshake");
        let (sealer, opener) = transport.split(1 << 20);
        Client { sealer, opener }
    }

    fn send(&mut self, pool: &mut Sv2PoolSession, message: Message, now: Instant) {
        let bytes = self
            .sealer
            .seal(&message.to_frame().expect("fits"))
            .expect("seal");
        pool.handle_bytes(&bytes, now);
    }

    fn receive(&mut self, pool: &mut Sv2PoolSession) -> Vec<Message> {
        while let Some(bytes) = pool.poll_output() {
            self.opener.push(&bytes);
        }
        let mut out = Vec::new();
        while let Some(frame) = self.opener.next_frame().expect("opens") {
            out.push(Message::from_frame(&frame).expect("reads").0);
        }
        out
    }
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as u32
}

fn setup(protocol: Protocol, flags: u32) -> Message {
    m::SetupConnection {
        protocol,
        min_version: 2,
        max_version: 2,
        flags,
        endpoint_host: "127.0.0.1".into(),
        endpoint_port: 3336,
        vendor: "test".into(),
        hardware_version: String::new(),
        firmware: String::new(),
        device_id: String::new(),
    }
    .into()
}

#[test]
fn a_standard_channel_gets_merkle_roots_and_its_shares_are_v1_shares() {
    let now = Instant::now();
    let authority = AuthorityKeypair::generate().expect("key");
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let mut pool =
        Sv2PoolSession::new(pool_config(authority.clone()), allocator, now).expect("session");
    let mut client = Client::connect(&mut pool, &authority, now);
    client.send(&mut pool, setup(Protocol::Mining, 0), now);
    assert!(matches!(
        client.receive(&mut pool).as_slice(),
        [Message::SetupConnectionSuccess(_)]
    ));
    client.send(
        &mut pool,
        m::OpenStandardMiningChannel {
            request_id: 3,
            user_identity: "addr.asic".into(),
            nominal_hash_rate: 1e12,
            max_target: [0xff; 32],
        }
        .into(),
        now,
    );
    let Some(SessionEvent::Authorize { token, .. }) = pool.poll_event() else {
        panic!("authorize")
    };
    pool.authorize_result(token, Ok(()));
    pool.send_job(&job("s1", 5, 7), now);
    let messages = client.receive(&mut pool);
    let [Message::OpenStandardMiningChannelSuccess(open), Message::NewMiningJob(new_job), Message::SetNewPrevHash(prev)] =
        messages.as_slice()
    else {
        panic!("{messages:?}")
    };
    assert_eq!(open.request_id, 3);
    assert_eq!(open.extranonce_prefix.len(), 8, "the whole extranonce");
    assert_eq!(new_job.min_ntime, None, "a future job, then its block");
    assert_eq!((prev.job_id, prev.prev_hash), (new_job.job_id, [5; 32]));
    let n = job("s1", 5, 7).notify;
    let txid = coinbase_txid_from_parts(
        &n.coinb1,
        &open.extranonce_prefix[..4],
        &open.extranonce_prefix[4..],
        &n.coinb2,
    );
    assert_eq!(
        new_job.merkle_root,
        MerkleBranch::from_hashes(n.merkle_branch.clone()).root(&txid)
    );
    client.send(
        &mut pool,
        m::SubmitSharesStandard {
            channel_id: open.channel_id,
            sequence_number: 1,
            job_id: new_job.job_id,
            nonce: 99,
            ntime: prev.min_ntime,
            version: new_job.version,
        }
        .into(),
        now,
    );
    let Some(SessionEvent::Share(s)) = pool.poll_event() else {
        panic!("a share")
    };
    assert_eq!(s.extranonce1, open.extranonce_prefix[..4].to_vec());
    assert_eq!(s.extranonce2, open.extranonce_prefix[4..].to_vec());
    assert_eq!(s.job_id, "s1");
    pool.share_result(s.token, ShareVerdict::LowDifficulty);
    assert!(matches!(
        client.receive(&mut pool).as_slice(),
        [Message::SubmitSharesError(e)] if e.error_code == "difficulty-too-low" && e.sequence_number == 1
    ));
    // Judged out of order, answered in order: the later share's verdict waits for the
    // earlier one's, and accepted shares in a row share one answer.
    let mut tokens = Vec::new();
    for (sequence_number, nonce) in [(3, 200), (4, 201), (5, 202)] {
        client.send(
            &mut pool,
            m::SubmitSharesStandard {
                channel_id: open.channel_id,
                sequence_number,
                job_id: new_job.job_id,
                nonce,
                ntime: prev.min_ntime,
                version: new_job.version,
            }
            .into(),
            now,
        );
        let Some(SessionEvent::Share(s)) = pool.poll_event() else {
            panic!("a share")
        };
        tokens.push(s.token);
    }
    pool.share_result(tokens[2], ShareVerdict::Accepted);
    pool.share_result(tokens[1], ShareVerdict::Accepted);
    assert!(
        client.receive(&mut pool).is_empty(),
        "share 3 is not judged yet"
    );
    pool.share_result(tokens[0], ShareVerdict::Stale);
    assert!(matches!(
        client.receive(&mut pool).as_slice(),
        [Message::SubmitSharesError(e), Message::SubmitSharesSuccess(ok)]
            if e.sequence_number == 3 && e.error_code == "stale-share"
                && ok.last_sequence_number == 5 && ok.new_submits_accepted_count == 2
    ));

    // Out of the ntime window, and an unknown channel: refused by the session.
    for (channel_id, ntime, code) in [
        (open.channel_id, prev.min_ntime - 1, "invalid-timestamp"),
        (77, prev.min_ntime, "invalid-channel-id"),
    ] {
        client.send(
            &mut pool,
            m::SubmitSharesStandard {
                channel_id,
                sequence_number: 2,
                job_id: new_job.job_id,
                nonce: 100,
                ntime,
                version: new_job.version,
            }
            .into(),
            now,
        );
        assert!(pool.poll_event().is_none());
        assert!(matches!(
            client.receive(&mut pool).as_slice(),
            [Message::SubmitSharesError(e)] if e.error_code == code
        ));
    }
}

#[test]
fn the_setup_is_checked_and_garbage_ends_the_session() {
    let now = Instant::now();
    let authority = AuthorityKeypair::generate().expect("key");
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let mut pool = Sv2PoolSession::new(pool_config(authority.clone()), Arc::clone(&allocator), now)
        .expect("session");
    let mut client = Client::connect(&mut pool, &authority, now);
    client.send(&mut pool, setup(Protocol::Mining, 0b10), now);
    assert!(matches!(
        client.receive(&mut pool).as_slice(),
        [Message::SetupConnectionError(e)] if e.flags == 0b10 && e.error_code == "unsupported-feature-flags"
    ));
    assert!(pool.is_closed());

    let mut pool = Sv2PoolSession::new(pool_config(authority.clone()), Arc::clone(&allocator), now)
        .expect("session");
    let mut client = Client::connect(&mut pool, &authority, now);
    client.send(&mut pool, setup(Protocol::TemplateDistribution, 0), now);
    assert!(matches!(
        client.receive(&mut pool).as_slice(),
        [Message::SetupConnectionError(e)] if e.error_code == "unsupported-protocol"
    ));

    // Bytes that are no sealed frame once the handshake is done.
    let mut pool =
        Sv2PoolSession::new(pool_config(authority.clone()), allocator, now).expect("session");
    let _client = Client::connect(&mut pool, &authority, now);
    pool.handle_bytes(&[0u8; 64], now);
    assert!(pool.is_closed());
}

#[test]
fn a_connection_mines_for_one_payout_address() {
    let now = Instant::now();
    let authority = AuthorityKeypair::generate().expect("key");
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let mut pool =
        Sv2PoolSession::new(pool_config(authority.clone()), allocator, now).expect("session");
    let mut client = Client::connect(&mut pool, &authority, now);
    client.send(&mut pool, setup(Protocol::Mining, 0), now);
    client.receive(&mut pool);
    let open = |request_id: u32, user: &str| -> Message {
        m::OpenExtendedMiningChannel {
            request_id,
            user_identity: user.into(),
            nominal_hash_rate: 1e12,
            max_target: [0xff; 32],
            min_extranonce_size: 4,
        }
        .into()
    };
    client.send(&mut pool, open(1, "addr.rig1"), now);
    let Some(SessionEvent::Authorize { token, .. }) = pool.poll_event() else {
        panic!("authorize")
    };
    pool.authorize_result(token, Ok(()));
    client.receive(&mut pool);
    // Jobs are tailored for the first worker: another address would mine for it.
    client.send(&mut pool, open(2, "other.rig2"), now);
    assert!(pool.poll_event().is_none());
    assert!(matches!(
        client.receive(&mut pool).as_slice(),
        [Message::OpenMiningChannelError(e)] if e.request_id == 2 && e.error_code == "one-payout-address-per-connection"
    ));
    // Another worker of the same address is fine.
    client.send(&mut pool, open(3, "addr.rig2"), now);
    assert!(matches!(
        pool.poll_event(),
        Some(SessionEvent::Authorize { .. })
    ));
}

#[test]
fn a_new_extranonce_prefix_applies_from_the_next_job_and_a_reconnect_reaches_the_miner() {
    let now = Instant::now();
    let (mut pool, mut miner) = connected(None, now);
    let Some(SessionEvent::Authorize { token, .. }) = pool.poll_event() else {
        panic!("the channel asks for authorization")
    };
    pool.authorize_result(token, Ok(()));
    pool.send_job(&job("a1", 1, 100), now);
    pump(&mut pool, &mut miner, now);
    let mut old = None;
    while let Some(event) = miner.poll_event() {
        if let MinerEvent::NewJob(j) = event {
            old = Some(j);
        }
    }
    let old = old.expect("a job");

    assert!(!pool.renew_extranonce(99, now), "no such channel");
    assert!(pool.renew_extranonce(1, now));
    pump(&mut pool, &mut miner, now);
    let mut changed = None;
    let mut fresh = None;
    while let Some(event) = miner.poll_event() {
        match event {
            MinerEvent::ExtranonceChanged { extranonce1, .. } => changed = Some(extranonce1),
            MinerEvent::NewJob(j) => fresh = Some(j),
            other => panic!("unexpected {other:?}"),
        }
    }
    let changed = changed.expect("SetExtranoncePrefix reached the miner");
    assert_ne!(changed, old.extranonce1);
    let fresh = fresh.expect("the job again, with the new prefix");
    assert_eq!(fresh.extranonce1, changed);
    assert!(!fresh.clean, "the same block");

    // A share on the old job keeps its prefix; one on the new job has the new one.
    for (j, nonce) in [(&old, 1), (&fresh, 2)] {
        miner.submit(j.share(&[1, 2, 3, 4], j.notify.ntime, nonce, None));
        pump(&mut pool, &mut miner, now);
        let Some(SessionEvent::Share(s)) = pool.poll_event() else {
            panic!("a share for the caller")
        };
        assert_eq!(s.extranonce1, j.extranonce1, "job {}", j.notify.job_id);
        pool.share_result(s.token, ShareVerdict::Accepted);
        pump(&mut pool, &mut miner, now);
    }

    pool.reconnect(otedama_stratum::Reconnect {
        host: Some("pool2.example".into()),
        port: Some(3336),
        wait_secs: None,
    });
    pump(&mut pool, &mut miner, now);
    let reconnect = std::iter::from_fn(|| miner.poll_event())
        .find_map(|e| match e {
            MinerEvent::Reconnect(r) => Some(r),
            _ => None,
        })
        .expect("the miner is told to reconnect");
    assert_eq!(reconnect.host.as_deref(), Some("pool2.example"));
    assert_eq!(reconnect.port, Some(3336));
}
