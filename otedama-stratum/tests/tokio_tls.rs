//! Stratum over TLS on real loopback sockets: the tokio server with a self-signed
//! certificate, the library's own client, certificate pinning, and plain text refused.
#![cfg(feature = "tls")]

use std::sync::Arc;
use std::time::Duration;

use otedama_stratum::client::{Client, ClientConfig, ClientError};
use otedama_stratum::server::{DisconnectReason, Server, ServerConfig, ServerEvent};
use otedama_stratum::tls::{pem_fingerprint, server_config, FingerprintMismatch};
use otedama_stratum::{
    ExtranonceAllocator, JobAnnouncement, MinerConfig, MinerEvent, Notify, PoolConfig, ShareVerdict,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn job() -> JobAnnouncement {
    JobAnnouncement {
        notify: Notify {
            job_id: "j1".into(),
            prevhash: [0x11; 32],
            coinb1: vec![1, 0, 0, 0],
            coinb2: vec![0xff; 4],
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 0x6b04_e972,
            clean_jobs: true,
        },
        height: 1,
    }
}

struct TlsPool {
    port: u16,
    fingerprint: [u8; 32],
    closed: mpsc::UnboundedReceiver<DisconnectReason>,
    _stop: oneshot::Sender<()>,
    _jobs: watch::Sender<Option<Arc<JobAnnouncement>>>,
}

async fn tls_pool() -> TlsPool {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert_pem = cert.cert.pem();
    let key_pem = cert.key_pair.serialize_pem();
    let tls = server_config(cert_pem.as_bytes(), key_pem.as_bytes()).expect("tls config");
    let allocator = ExtranonceAllocator::new(&[0x08, 0x00], 2).expect("allocator");
    let (events_tx, mut events) = mpsc::channel(64);
    let (jobs, jobs_rx) = watch::channel(Some(Arc::new(job())));
    let config = ServerConfig {
        pool: Arc::new(PoolConfig {
            initial_difficulty: 1.0,
            vardiff_enabled: false,
            ..PoolConfig::default()
        }),
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0", config, allocator, events_tx, jobs_rx)
        .await
        .expect("bind");
    let port = server.local_addr().expect("addr").port();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ServerEvent::Authorize { conn, token, .. } => conn.authorize_result(token, Ok(())),
                ServerEvent::Share { conn, share } => {
                    conn.share_result(share.token, ShareVerdict::Accepted)
                }
                ServerEvent::Closed { reason, .. } => {
                    let _ = closed_tx.send(reason);
                }
                _ => {}
            }
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    TlsPool {
        port,
        fingerprint: pem_fingerprint(cert_pem.as_bytes()).expect("fingerprint"),
        closed,
        _stop: stop,
        _jobs: jobs,
    }
}

fn miner() -> ClientConfig {
    ClientConfig::new(MinerConfig {
        user: "w.1".into(),
        ..MinerConfig::default()
    })
}

#[tokio::test]
async fn a_miner_mines_over_tls_and_sees_the_pools_certificate() {
    let pool = tls_pool().await;
    let url = format!("stratum+ssl://127.0.0.1:{}", pool.port);
    let mut config = miner();
    // Pinned to the pool's own certificate.
    config.tls_fingerprint = Some(pool.fingerprint);
    let mut client = Client::connect(&url, config).await.expect("connect");
    assert!(client.url().tls);
    assert_eq!(client.url().to_string(), url);
    let job = loop {
        match timeout(WAIT, client.next_event()).await.expect("in time") {
            Ok(MinerEvent::NewJob(job)) => break job,
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(client.peer_fingerprint(), Some(pool.fingerprint));
    let en2 = vec![0u8; job.extranonce2_size];
    let sequence = client.submit(job.share(&en2, job.notify.ntime, 7, None));
    loop {
        match timeout(WAIT, client.next_event()).await.expect("in time") {
            Ok(MinerEvent::ShareResult {
                sequence: s,
                accepted,
                ..
            }) if s == sequence => {
                assert!(accepted, "the share went both ways through TLS");
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    client.close().await;
}

#[tokio::test]
async fn a_certificate_other_than_the_pinned_one_is_refused() {
    let pool = tls_pool().await;
    let mut config = miner();
    config.tls_fingerprint = Some([0xab; 32]);
    let url = format!("stratum+ssl://127.0.0.1:{}", pool.port);
    let mut client = Client::connect(&url, config).await.expect("connect");
    let err = timeout(WAIT, client.next_event())
        .await
        .expect("in time")
        .expect_err("refused");
    let ClientError::Tls(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
        &err
    else {
        panic!("{err:?}");
    };
    let mismatch = other
        .0
        .downcast_ref::<FingerprintMismatch>()
        .expect("the mismatch, typed");
    assert_eq!(mismatch.expected, "ab".repeat(32));
    assert!(matches!(
        client.next_event().await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn plain_stratum_on_the_tls_port_is_closed() {
    let mut pool = tls_pool().await;
    let stream = TcpStream::connect(("127.0.0.1", pool.port))
        .await
        .expect("connect");
    let (rd, mut wr) = stream.into_split();
    wr.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await
        .expect("write");
    let mut line = String::new();
    let mut reader = BufReader::new(rd);
    // No Stratum answer: at most a TLS alert, then the end.
    let _ = timeout(WAIT, reader.read_line(&mut line))
        .await
        .expect("closed in time");
    assert!(!line.contains("result"), "{line:?}");
    let reason = timeout(WAIT, pool.closed.recv())
        .await
        .expect("in time")
        .expect("closed");
    assert!(matches!(reason, DisconnectReason::Tls(_)), "{reason:?}");
}
