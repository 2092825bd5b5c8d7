//! The tokio client over real loopback sockets: against a pool that replays the captured
//! pool lines byte for byte, and against otedama's own server.
#![cfg(feature = "tokio")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{load_capture, Dir};
use otedama_stratum::client::{Client, ClientConfig, ClientError, PoolUrl};
use otedama_stratum::server::{Server, ServerConfig, ServerEvent};
use otedama_stratum::{
    ClientRequest, ExtranonceAllocator, Message, MinerConfig, MinerEvent, MinerJob, PoolConfig,
    ServerRequest, ShareVerdict,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

async fn event(client: &mut Client) -> MinerEvent {
    timeout(WAIT, client.next_event())
        .await
        .expect("an event in time")
        .expect("connection alive")
}

fn miner(user: &str, agent: &str, extranonce_subscribe: bool) -> ClientConfig {
    ClientConfig::new(MinerConfig {
        user: user.to_owned(),
        password: "x".to_owned(),
        user_agent: agent.to_owned(),
        extranonce_subscribe,
        ..MinerConfig::default()
    })
}

#[test]
fn pool_urls() {
    let ok = |url: &str, host: &str, port: u16| {
        assert_eq!(
            PoolUrl::parse(url).expect(url),
            PoolUrl {
                host: host.into(),
                port,
                tls: false,
                authority: None,
            }
        );
    };
    ok("stratum+tcp://pool.example:3333", "pool.example", 3333);
    ok("STRATUM+TCP://pool.example:3333/", "pool.example", 3333);
    ok("pool.example:1", "pool.example", 1);
    ok("stratum+tcp://127.0.0.1:3333", "127.0.0.1", 3333);
    ok("stratum+tcp://[::1]:3333", "::1", 3333);
    // Stratum over TLS, where the crate is built with it.
    let tls = PoolUrl::parse("stratum+ssl://pool.example:3443");
    if cfg!(feature = "tls") {
        let url = tls.expect("tls url");
        assert!(url.tls && url.port == 3443);
        assert_eq!(url.to_string(), "stratum+ssl://pool.example:3443");
        assert!(
            PoolUrl::parse("STRATUM+TLS://pool.example:3443")
                .expect("tls")
                .tls
        );
    } else {
        assert!(matches!(tls, Err(ClientError::Url { .. })));
    }
    let sv2 = PoolUrl::parse(
        "stratum2+tcp://pool.example:3333/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh",
    );
    if cfg!(feature = "noise") {
        let url = sv2.expect("sv2 url");
        assert_eq!(
            url.authority.as_deref(),
            Some("9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
        );
        assert_eq!(
            url.to_string(),
            "stratum2+tcp://pool.example:3333/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
        );
    } else {
        assert!(matches!(sv2, Err(ClientError::Url { .. })));
    }
    for bad in [
        "stratum2+tcp://pool.example:3333",
        "stratum2+tcp://pool.example:3333/",
        "http://pool.example:3333",
        "stratum+tcp://pool.example",
        "stratum+tcp://:3333",
        "stratum+tcp://pool.example:0",
        "stratum+tcp://pool.example:65536",
        "stratum+tcp://pool.example:port",
        "stratum+tcp://user@pool.example:3333",
        "stratum+tcp://::1:3333",
        "stratum+tcp://[::1:3333",
        "",
    ] {
        assert!(
            matches!(PoolUrl::parse(bad), Err(ClientError::Url { .. })),
            "{bad}"
        );
    }
    let url = PoolUrl::parse("[::1]:4444").expect("v6");
    assert_eq!(url.to_string(), "stratum+tcp://[::1]:4444");
}

/// A pool that answers with the capture's own S->C lines, byte for byte, and records what the
/// client sent.
#[tokio::test]
async fn client_against_the_captured_pool_lines() {
    let entries = load_capture("cpuminer-opt-sha256d.txt");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let script = entries.clone();
    let pool = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut received = Vec::new();
        // The capture's C->S lines in order, each followed by the S->C lines after it.
        let script: Vec<common::Entry> =
            script.into_iter().filter(|e| e.dir != Dir::Note).collect();
        let mut at = 0;
        while let Some(line) = lines.next_line().await.expect("read") {
            let Ok(Message::Request(request)) = Message::parse(line.as_bytes()) else {
                panic!("client sent {line:?}")
            };
            let typed = ClientRequest::from_request(&request).expect("typed");
            let submit = matches!(typed, ClientRequest::Submit(_));
            received.push((request.id.clone(), typed));
            if submit {
                // The capture always used id 4; answer this one with the client's id.
                let id = request.id.expect("id");
                w.write_all(format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n").as_bytes())
                    .await
                    .expect("write");
                break;
            }
            assert_eq!(script[at].dir, Dir::ClientToServer, "the capture goes on");
            at += 1;
            while let Some(e) = script.get(at).filter(|e| e.dir == Dir::ServerToClient) {
                w.write_all(e.line.as_bytes()).await.expect("write");
                w.write_all(b"\n").await.expect("write");
                at += 1;
            }
        }
        received
    });

    let url = format!("stratum+tcp://{addr}");
    let mut client = Client::connect(
        &url,
        miner("otedama.worker1", "cpuminer-opt-26.1-x64L", true),
    )
    .await
    .expect("connect");
    assert_eq!(client.url().port, addr.port());
    let MinerEvent::Subscribed {
        extranonce1,
        extranonce2_size,
        session_id,
    } = event(&mut client).await
    else {
        panic!("subscribed first")
    };
    assert_eq!(extranonce1, [0x08, 0x00, 0x00, 0x02]);
    assert_eq!(extranonce2_size, 4);
    assert_eq!(session_id.as_deref(), Some("n1"));
    assert_eq!(event(&mut client).await, MinerEvent::Authorized(true, None));
    let MinerEvent::NewJob(job) = event(&mut client).await else {
        panic!("then the job")
    };
    assert_eq!(
        job.difficulty, 0.001,
        "set_difficulty applies to the notify after it"
    );
    assert_eq!(job.notify.job_id, "job1");
    assert_eq!(job.notify.ntime, 0x6b04_e9a1);
    assert_eq!(job.extranonce1, extranonce1);
    assert!(job.clean);

    // The first share cpuminer-opt found, submitted through the client.
    let sequence = client.submit(job.share(&[0, 0, 0, 0], 0x6b04_e9a1, 0x4b6f_4b00, None));
    assert_eq!(
        event(&mut client).await,
        MinerEvent::ShareResult {
            sequence,
            accepted: true,
            error: None
        }
    );

    // What the client sent matches what cpuminer-opt sent, request for request.
    let received = pool.await.expect("pool");
    let captured: Vec<ClientRequest> = entries
        .iter()
        .filter(|e| e.dir == Dir::ClientToServer)
        .take(4)
        .map(|e| {
            let Ok(Message::Request(r)) = Message::parse(e.line.as_bytes()) else {
                panic!()
            };
            ClientRequest::from_request(&r).expect("typed")
        })
        .collect();
    let ours: Vec<ClientRequest> = received.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(ours, captured);
    let ids: Vec<String> = received
        .iter()
        .map(|(id, _)| id.as_ref().expect("id").as_json().to_owned())
        .collect();
    assert_eq!(ids[..3], ["1", "2", "3"]);

    // The pool hung up.
    let err = timeout(WAIT, client.next_event()).await.expect("in time");
    assert!(matches!(err, Err(ClientError::Disconnected)), "{err:?}");
    assert!(matches!(
        client.next_event().await,
        Err(ClientError::Closed)
    ));
}

/// Client and server together: jobs flow down, shares flow up, verdicts come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_against_our_server() {
    let allocator = ExtranonceAllocator::new(&[0x77], 3).expect("allocator");
    let (events_tx, mut events) = mpsc::channel(64);
    let (jobs, jobs_rx) = watch::channel(None);
    let config = ServerConfig {
        pool: Arc::new(PoolConfig {
            initial_difficulty: 16.0,
            vardiff_enabled: false,
            ..PoolConfig::default()
        }),
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0", config, allocator, events_tx, jobs_rx)
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async {
        stopped.await.ok();
    }));
    // The pool: accepts even nonces, refuses odd ones.
    let pool = tokio::spawn(async move {
        let mut shares = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                ServerEvent::Authorize { conn, token, .. } => conn.authorize_result(token, Ok(())),
                ServerEvent::Share { conn, share } => {
                    let verdict = if share.nonce % 2 == 0 {
                        ShareVerdict::Accepted
                    } else {
                        ShareVerdict::LowDifficulty
                    };
                    shares.push(share.clone());
                    conn.share_result(share.token, verdict);
                }
                ServerEvent::Closed { .. } => break,
                _ => {}
            }
        }
        shares
    });
    let mut job = common::job("j1", 1_700_000_000, true, 100);
    jobs.send_replace(Some(Arc::new(job.clone())));

    let mut client = Client::connect(
        &addr.to_string(),
        miner("addr.rig1", "otedama-test/1", false),
    )
    .await
    .expect("connect");
    let MinerEvent::Subscribed { extranonce1, .. } = event(&mut client).await else {
        panic!()
    };
    assert_eq!(extranonce1.len(), 4);
    assert_eq!(extranonce1[0], 0x77);
    assert_eq!(event(&mut client).await, MinerEvent::Authorized(true, None));
    let MinerEvent::NewJob(first) = event(&mut client).await else {
        panic!()
    };
    assert_eq!(first.difficulty, 16.0);
    assert_eq!(first.notify, job.notify);
    assert_eq!(first.extranonce1, extranonce1);

    let mut sequences = Vec::new();
    for nonce in 0..6u32 {
        sequences.push((
            client.submit(first.share(&[0, 0, 0, 1], first.notify.ntime, nonce, None)),
            nonce,
        ));
    }
    for _ in 0..6 {
        let MinerEvent::ShareResult {
            sequence,
            accepted,
            error,
        } = event(&mut client).await
        else {
            panic!()
        };
        let nonce = sequences
            .iter()
            .find(|(s, _)| *s == sequence)
            .expect("ours")
            .1;
        assert_eq!(accepted, nonce % 2 == 0);
        assert_eq!(
            error.map(|e| e.code.as_i64()),
            (nonce % 2 == 1).then_some(23)
        );
    }

    // A new tip reaches the client as a clean job.
    job.notify.job_id = "j2".into();
    job.notify.prevhash = [0x33; 32];
    job.height = 101;
    job.notify.clean_jobs = false;
    jobs.send_replace(Some(Arc::new(job.clone())));
    let MinerEvent::NewJob(second) = event(&mut client).await else {
        panic!()
    };
    assert_eq!(second.notify.job_id, "j2");
    assert!(second.clean);
    // A share for the old job is now refused as stale.
    let sequence = client.submit(first.share(&[0, 0, 0, 2], first.notify.ntime, 8, None));
    let MinerEvent::ShareResult {
        sequence: s,
        accepted,
        error,
    } = event(&mut client).await
    else {
        panic!()
    };
    assert_eq!(s, sequence);
    assert!(!accepted);
    assert_eq!(error.map(|e| e.code.as_i64()), Some(21));

    client.close().await;
    let shares = timeout(WAIT, pool).await.expect("pool ends").expect("pool");
    assert_eq!(shares.len(), 6);
    assert!(shares
        .iter()
        .all(|s| s.extranonce1 == extranonce1 && s.extranonce2 == [0, 0, 0, 1]));
    stop.send(()).ok();
    timeout(WAIT, run)
        .await
        .expect("server stops")
        .expect("server");
}

/// `next_event` can lose any number of races without losing bytes or events.
#[tokio::test]
async fn next_event_is_cancel_safe() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let n_jobs = 200;
    let pool = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut seen = 0;
        while let Some(line) = lines.next_line().await.expect("read") {
            let Ok(Message::Request(req)) = Message::parse(line.as_bytes()) else {
                panic!()
            };
            let id = req.id.expect("id");
            seen += 1;
            let result = if req.method == "mining.subscribe" {
                r#"[[["mining.notify","ab"]],"0000abcd",4]"#
            } else {
                "true"
            };
            w.write_all(format!("{{\"id\":{id},\"result\":{result},\"error\":null}}\n").as_bytes())
                .await
                .expect("write");
            if req.method == "mining.authorize" {
                // Many jobs in small pieces, so reads straddle lines.
                let mut all = String::new();
                for i in 0..n_jobs {
                    let notify =
                        ServerRequest::Notify(common::job(&format!("j{i}"), 100, false, 1).notify);
                    all.push_str(&notify.to_request(None).to_line());
                }
                for piece in all.as_bytes().chunks(700) {
                    w.write_all(piece).await.expect("write");
                    tokio::task::yield_now().await;
                }
            }
        }
        seen
    });
    let mut client = Client::connect(&addr.to_string(), miner("w", "t/1", false))
        .await
        .expect("connect");
    let mut jobs: Vec<MinerJob> = Vec::new();
    let mut interrupted = 0;
    while jobs.len() < n_jobs {
        tokio::select! {
            biased;
            () = tokio::task::yield_now() => interrupted += 1,
            event = client.next_event() => match event.expect("alive") {
                MinerEvent::NewJob(job) => jobs.push(job),
                MinerEvent::Subscribed { .. } | MinerEvent::Authorized(true, None) => {}
                other => panic!("{other:?}"),
            },
        }
    }
    assert!(interrupted > 0);
    let ids: Vec<String> = jobs.iter().map(|j| j.notify.job_id.clone()).collect();
    let expected: Vec<String> = (0..n_jobs).map(|i| format!("j{i}")).collect();
    assert_eq!(ids, expected, "every job, in order");
    client.close().await;
    assert_eq!(pool.await.expect("pool"), 2);
}

#[tokio::test]
async fn connect_failures_are_reported() {
    // Nothing listens on a port we just released.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = Client::connect(&format!("stratum+tcp://{addr}"), miner("w", "t", false))
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    let err = Client::connect("stratum2+tcp://127.0.0.1:1", miner("w", "t", false))
        .await
        .expect_err("scheme");
    assert!(matches!(err, ClientError::Url { .. }), "{err}");
}
