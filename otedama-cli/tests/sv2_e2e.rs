//! `otedama-cli pool` with a Stratum V2 port, mined by an SV2 miner built on the reference
//! implementation's published crates (pinned): their Noise initiator checks our certificate
//! against the authority key the pool printed, their encoder writes the messages and their
//! parser reads ours. The miner opens an extended channel, hashes real headers, and its
//! shares are answered, recorded in the share log, and find devnet blocks; a duplicate share
//! and an unknown job are refused.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use binary_sv2::{Str0255, B032, U256};
use common_messages_sv2::{Protocol, SetupConnection};
use mining_sv2::{OpenExtendedMiningChannel, SubmitSharesExtended};
use parsers_sv2::{AnyMessage, CommonMessages, Mining};
use support::pool::temp_db;

/// The reference implementation's codec over a socket, as a miner.
struct Sv2Miner {
    stream: TcpStream,
    engine: noise_sv2::NoiseEngine,
}

fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Vec::leak(bytes)
}

impl Sv2Miner {
    fn connect(port: u16, authority: [u8; 32]) -> Sv2Miner {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut initiator = noise_sv2::Initiator::from_raw_k(authority).expect("their initiator");
        stream
            .write_all(&initiator.step_0().expect("act 1"))
            .expect("send act 1");
        let mut act2 = [0u8; 234];
        stream.read_exact(&mut act2).expect("act 2");
        let engine = initiator
            .step_2(act2)
            .expect("their initiator accepts the pool's certificate");
        Sv2Miner { stream, engine }
    }

    fn send(&mut self, message: AnyMessage<'static>) {
        use parsers_sv2::IsSv2Message;
        let (msg_type, channel) = (message.message_type(), message.channel_bit());
        let payload = binary_sv2::to_bytes(message).expect("their encoder");
        let ext: u16 = if channel { 0x8000 } else { 0 };
        let len = (payload.len() as u32).to_le_bytes();
        let mut header = vec![
            ext.to_le_bytes()[0],
            ext.to_le_bytes()[1],
            msg_type,
            len[0],
            len[1],
            len[2],
        ];
        self.engine.encrypt(&mut header).expect("seal header");
        let mut body = payload;
        self.engine.encrypt(&mut body).expect("seal payload");
        self.stream.write_all(&header).expect("send");
        self.stream.write_all(&body).expect("send");
    }

    fn receive(&mut self) -> AnyMessage<'static> {
        let mut header = vec![0u8; 22];
        self.stream.read_exact(&mut header).expect("a frame header");
        self.engine
            .decrypt(&mut header)
            .expect("their engine opens it");
        let header = framing_sv2::header::Header::from_bytes(&header).expect("their header");
        let mut payload = vec![0u8; header.payload_length() + 16];
        self.stream.read_exact(&mut payload).expect("a payload");
        self.engine
            .decrypt(&mut payload)
            .expect("their engine opens it");
        let payload: &'static mut [u8] = Vec::leak(payload);
        AnyMessage::try_from((header, payload)).expect("their parser reads it")
    }
}

/// sha256d.
fn sha256d(data: &[u8]) -> [u8; 32] {
    otedama_core::sha256d(data)
}

/// What the miner mines on.
struct Work {
    job_id: u32,
    version: u32,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    path: Vec<[u8; 32]>,
    prev_hash: [u8; 32],
    ntime: u32,
    nbits: u32,
}

/// Whether `hash`, read as a little-endian number, is at most `target` (little-endian).
fn meets(hash: &[u8; 32], target: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if hash[i] != target[i] {
            return hash[i] < target[i];
        }
    }
    true
}

/// Hashes until a share meets `target`: its extranonce and nonce.
fn mine(work: &Work, extranonce_prefix: &[u8], counter: u32, target: &[u8; 32]) -> (Vec<u8>, u32) {
    let extranonce = counter.to_le_bytes().to_vec();
    let mut coinbase = work.prefix.clone();
    coinbase.extend_from_slice(extranonce_prefix);
    coinbase.extend_from_slice(&extranonce);
    coinbase.extend_from_slice(&work.suffix);
    let mut root = sha256d(&coinbase);
    for step in &work.path {
        let mut both = root.to_vec();
        both.extend_from_slice(step);
        root = sha256d(&both);
    }
    let mut header = Vec::with_capacity(80);
    header.extend_from_slice(&work.version.to_le_bytes());
    header.extend_from_slice(&work.prev_hash);
    header.extend_from_slice(&root);
    header.extend_from_slice(&work.ntime.to_le_bytes());
    header.extend_from_slice(&work.nbits.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    for nonce in 0..u32::MAX {
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        if meets(&sha256d(&header), target) {
            return (extranonce, nonce);
        }
    }
    panic!("no share in 2^32 nonces");
}

#[test]
fn an_sv2_miner_built_on_the_reference_crates_mines_on_the_pool() {
    let db = temp_db("sv2");
    let dir = db.parent().expect("dir").to_owned();
    let (pool, url) = support::pool::start_sv2(&db, 0.0000001, 0.000001);
    let url = url.trim_start_matches("stratum2+tcp://");
    let (address, key) = url.split_once('/').expect("host:port/key");
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let key = otedama_core::bitcoin::base58::decode_check(key).expect("base58check key");
    assert_eq!(&key[..2], &[1, 0], "the authority key's version bytes");
    let authority: [u8; 32] = key[2..].try_into().expect("32 bytes");
    assert!(
        dir.join("sv2-authority.key").exists(),
        "the authority key is kept beside the database"
    );

    // A wrong authority key: their initiator refuses the pool.
    {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut other = authority;
        other[31] ^= 1;
        if let Ok(mut initiator) = noise_sv2::Initiator::from_raw_k(other) {
            stream
                .write_all(&initiator.step_0().expect("act 1"))
                .expect("send");
            let mut act2 = [0u8; 234];
            stream.read_exact(&mut act2).expect("act 2");
            assert!(
                initiator.step_2(act2).is_err(),
                "a certificate from another authority"
            );
        }
    }

    let mut miner = Sv2Miner::connect(port, authority);
    miner.send(AnyMessage::Common(CommonMessages::SetupConnection(
        SetupConnection {
            protocol: Protocol::MiningProtocol,
            min_version: 2,
            max_version: 2,
            flags: 0b100,
            endpoint_host: Str0255::try_from(leak(b"127.0.0.1".to_vec())).expect("fits"),
            endpoint_port: port,
            vendor: Str0255::try_from(leak(b"otedama-test".to_vec())).expect("fits"),
            hardware_version: Str0255::try_from(leak(Vec::new())).expect("fits"),
            firmware: Str0255::try_from(leak(Vec::new())).expect("fits"),
            device_id: Str0255::try_from(leak(Vec::new())).expect("fits"),
        },
    )));
    match miner.receive() {
        AnyMessage::Common(CommonMessages::SetupConnectionSuccess(s)) => {
            assert_eq!(s.used_version, 2)
        }
        other => panic!("not a SetupConnection.Success: {other:?}"),
    }
    let worker = "bcrt1qqurswpc8qurswpc8qurswpc8qurswpc8dxm0gk.sv2rig";
    miner.send(AnyMessage::Mining(Mining::OpenExtendedMiningChannel(
        OpenExtendedMiningChannel {
            request_id: 7,
            user_identity: Str0255::try_from(leak(worker.as_bytes().to_vec())).expect("fits"),
            nominal_hash_rate: 1000.0,
            max_target: U256::from(&*Box::leak(Box::new([0xffu8; 32]))),
            min_extranonce_size: 4,
        },
    )));
    let (channel_id, mut target, prefix, size) = match miner.receive() {
        AnyMessage::Mining(Mining::OpenExtendedMiningChannelSuccess(s)) => {
            assert_eq!(s.request_id, 7);
            let target: [u8; 32] = s.target.as_bytes().try_into().expect("32");
            (
                s.channel_id,
                target,
                s.extranonce_prefix.as_bytes().to_vec(),
                s.extranonce_size,
            )
        }
        other => panic!("not an OpenExtendedMiningChannel.Success: {other:?}"),
    };
    assert_eq!(size, 4);
    assert_eq!(prefix.len(), 4);

    let mut future: Option<Work> = None;
    let mut work: Option<Work> = None;
    let mut accepted = 0;
    let mut sequence = 0;
    let mut last_share = None;
    let mut tips = 0;
    let mut duplicate_refused = false;
    // Whether the last share sent was accepted and may be sent again as a duplicate.
    let mut fresh = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    // Until shares were accepted, a block found (a second tip), and a share sent twice refused.
    while accepted < 6 || tips < 2 || !duplicate_refused {
        assert!(
            Instant::now() < deadline,
            "in two minutes: {accepted} shares accepted, {tips} tips, duplicate refused {duplicate_refused}"
        );
        let resend = accepted >= 6 && tips >= 2 && fresh;
        if resend {
            // The share just accepted, again.
            let (job_id, extranonce, nonce, ntime, version): (u32, Vec<u8>, u32, u32, u32) =
                last_share.clone().expect("a share");
            miner.send(AnyMessage::Mining(Mining::SubmitSharesExtended(
                SubmitSharesExtended {
                    channel_id,
                    sequence_number: sequence,
                    job_id,
                    nonce,
                    ntime,
                    version,
                    extranonce: B032::try_from(leak(extranonce)).expect("fits"),
                },
            )));
        } else if let Some(w) = &work {
            sequence += 1;
            let (extranonce, nonce) = mine(w, &prefix, sequence, &target);
            last_share = Some((w.job_id, extranonce.clone(), nonce, w.ntime, w.version));
            miner.send(AnyMessage::Mining(Mining::SubmitSharesExtended(
                SubmitSharesExtended {
                    channel_id,
                    sequence_number: sequence,
                    job_id: w.job_id,
                    nonce,
                    ntime: w.ntime,
                    version: w.version,
                    extranonce: B032::try_from(leak(extranonce)).expect("fits"),
                },
            )));
        }
        fresh = false;
        let waiting_for_answer = resend || work.is_some();
        // Read until the answer to what was sent (or, before any, the first job).
        loop {
            match miner.receive() {
                AnyMessage::Mining(Mining::NewExtendedMiningJob(j)) => {
                    let min_ntime = j.min_ntime.clone().into_inner();
                    let job = Work {
                        job_id: j.job_id,
                        version: j.version,
                        prefix: j.coinbase_tx_prefix.as_bytes().to_vec(),
                        suffix: j.coinbase_tx_suffix.as_bytes().to_vec(),
                        path: j
                            .merkle_path
                            .iter_bytes()
                            .map(|h| h.try_into().expect("32"))
                            .collect(),
                        prev_hash: work.as_ref().map_or([0; 32], |w| w.prev_hash),
                        ntime: min_ntime.unwrap_or(0),
                        nbits: work.as_ref().map_or(0, |w| w.nbits),
                    };
                    if min_ntime.is_some() {
                        work = Some(job);
                    } else {
                        future = Some(job);
                    }
                }
                AnyMessage::Mining(Mining::SetNewPrevHash(p)) => {
                    tips += 1;
                    let mut job = future.take().expect("a future job first");
                    assert_eq!(job.job_id, p.job_id);
                    job.prev_hash = p.prev_hash.as_bytes().try_into().expect("32");
                    job.ntime = p.min_ntime;
                    job.nbits = p.nbits;
                    work = Some(job);
                    if !waiting_for_answer {
                        break;
                    }
                }
                AnyMessage::Mining(Mining::SetTarget(t)) => {
                    target = t.maximum_target.as_bytes().try_into().expect("32");
                }
                AnyMessage::Mining(Mining::SubmitSharesSuccess(s)) => {
                    assert!(!resend, "a share accepted twice");
                    assert_eq!(s.last_sequence_number, sequence);
                    accepted += 1;
                    fresh = true;
                    break;
                }
                AnyMessage::Mining(Mining::SubmitSharesError(e)) => {
                    let code = String::from_utf8_lossy(e.error_code.as_bytes()).to_string();
                    if resend && code.contains("duplicate-share") {
                        duplicate_refused = true;
                    } else {
                        // A share on a job a block made stale (the resent one included,
                        // when it was the block).
                        assert!(code.contains("stale"), "share refused: {code}");
                    }
                    break;
                }
                other => panic!("unexpected: {other:?}"),
            }
        }
    }

    // A job the pool never sent.
    let (_, extranonce, nonce, ntime, version) = last_share.expect("a share");
    for (job, expect) in [(9_999, "invalid-job-id")] {
        miner.send(AnyMessage::Mining(Mining::SubmitSharesExtended(
            SubmitSharesExtended {
                channel_id,
                sequence_number: 1000,
                job_id: job,
                nonce,
                ntime,
                version,
                extranonce: B032::try_from(leak(extranonce.clone())).expect("fits"),
            },
        )));
        loop {
            match miner.receive() {
                AnyMessage::Mining(Mining::SubmitSharesError(e)) => {
                    let code = String::from_utf8_lossy(e.error_code.as_bytes()).to_string();
                    assert!(code.contains(expect), "{code}");
                    break;
                }
                AnyMessage::Mining(Mining::SubmitSharesSuccess(_)) => panic!("accepted twice"),
                _ => {}
            }
        }
    }
    drop(miner);

    // Our own miner on the same URL, authority key included.
    let ours = std::process::Command::new(support::pool::bin())
        .args([
            "mine",
            "-o",
            &format!("stratum2+tcp://{url}"),
            "-u",
            "bcrt1qqurswpc8qurswpc8qurswpc8qurswpc8dxm0gk.ours",
            "--algo",
            "sha256d",
            "--threads",
            "1",
            "--max-shares",
            "3",
            "--seconds",
            "90",
        ])
        .output()
        .expect("the miner runs");
    let log =
        String::from_utf8_lossy(&ours.stderr).to_string() + &String::from_utf8_lossy(&ours.stdout);
    assert!(ours.status.success(), "{log}");
    assert!(log.contains("done: 3 accepted"), "{log}");
    // And with another pool's key it refuses to mine there.
    let (host_port, _) = url.split_once('/').expect("host:port/key");
    let other = otedama_core::bitcoin::base58::encode_check(&{
        let mut k = vec![1u8, 0];
        k.extend_from_slice(&{
            let mut a = authority;
            a[0] ^= 0x55;
            a
        });
        k
    });
    let refused = std::process::Command::new(support::pool::bin())
        .args([
            "mine",
            "-o",
            &format!("stratum2+tcp://{host_port}/{other}"),
            "-u",
            "bcrt1qqurswpc8qurswpc8qurswpc8qurswpc8dxm0gk.ours",
            "--algo",
            "sha256d",
            "--threads",
            "1",
            "--seconds",
            "5",
        ])
        .output()
        .expect("the miner runs");
    let log = String::from_utf8_lossy(&refused.stderr).to_string()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(log.contains("done: 0 accepted"), "{log}");

    let lines = pool.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BLOCK height") && l.contains("accepted")),
        "the SV2 shares found devnet blocks: {lines:#?}"
    );
    let mut store = otedama_pool::store::open(db.to_str().expect("utf-8")).expect("the share log");
    let shares = store.shares(1000).expect("shares");
    let (address, rig) = worker.split_once('.').expect("address.worker");
    let ours = shares
        .iter()
        .filter(|s| s.address == address && s.worker == rig)
        .count();
    assert_eq!(ours, accepted, "every share acknowledged is in the log");
    assert!(shares.iter().filter(|s| s.worker == "ours").count() >= 3);
    assert!(
        shares.iter().any(|s| s.is_block),
        "a share that was a block"
    );
}
