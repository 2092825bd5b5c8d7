//! The generic tokio client in the Monero dialect (`MoneroClient`) against otedama's own
//! `MoneroServer`, over real loopback sockets: login, jobs, shares and their verdicts, a new
//! height making old shares stale, a refused login, and the pool hanging up.
#![cfg(feature = "tokio")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use otedama_stratum::client::{ClientConfig, ClientError, MoneroClient, ProtocolClient};
use otedama_stratum::server::{MoneroServer, MoneroServerConfig, MoneroServerEvent};
use otedama_stratum::{
    ExtranonceAllocator, MinerCloseReason, MinerProtocol, MoneroJob, MoneroMinerConfig,
    MoneroMinerEvent, MoneroMinerShare, MoneroShareSubmission, ShareVerdict, MONERO_NONCE_OFFSET,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

const WALLET: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

/// The pool refuses this login as it would a mistyped address.
const BAD_WALLET: &str = "not-a-wallet";

/// Nonces the pool plays verdicts on: below `LOW` accepted, `LOW` too easy, `FORGED` invalid.
const LOW: u32 = 1000;
const FORGED: u32 = 1001;
const FORGED_REASON: &str = "result is not the hash of the blob";

/// The next event of any dialect's client, in time.
async fn event<P: MinerProtocol>(client: &mut ProtocolClient<P>) -> P::Event {
    timeout(WAIT, client.next_event())
        .await
        .expect("an event in time")
        .expect("connection alive")
}

fn job(job_id: &str, height: u64) -> MoneroJob {
    MoneroJob::from_json(&json!({
        "blob": format!("1010{}", "ab".repeat(74)),
        "job_id": job_id,
        // xmrig's 4-byte form: difficulty 10 000.
        "target": "b88d0600",
        "algo": "rx/0",
        "height": height,
        "seed_hash": "11".repeat(32),
    }))
    .expect("job")
}

fn config(login: &str) -> ClientConfig<MoneroMinerConfig> {
    ClientConfig::new(MoneroMinerConfig {
        login: login.to_owned(),
        pass: "x".to_owned(),
        agent: "otedama-test/1".to_owned(),
        ..MoneroMinerConfig::default()
    })
}

/// A running `MoneroServer` whose pool side is a task that accepts `WALLET`, refuses any
/// other login, plays its verdicts on shares by nonce, and reports every share it judged.
struct Pool {
    addr: SocketAddr,
    jobs: watch::Sender<Option<Arc<MoneroJob>>>,
    shares: mpsc::UnboundedReceiver<MoneroShareSubmission>,
    hang_up: mpsc::UnboundedSender<()>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    judge: JoinHandle<()>,
}

impl Pool {
    async fn start() -> Pool {
        let allocator = ExtranonceAllocator::new(&[0x7a], 2).expect("allocator");
        let (events_tx, mut events) = mpsc::channel(64);
        let (jobs, jobs_rx) = watch::channel(None);
        let config = MoneroServerConfig {
            max_connections: 8,
            ..MoneroServerConfig::default()
        };
        let server = MoneroServer::bind("127.0.0.1:0", config, allocator, events_tx, jobs_rx)
            .await
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server.run(async {
            stopped.await.ok();
        }));
        let (shares_tx, shares) = mpsc::unbounded_channel();
        let (hang_up, mut hang_ups) = mpsc::unbounded_channel::<()>();
        let judge = tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(MoneroServerEvent::Connected { conn }) => conns.push(conn),
                        Some(MoneroServerEvent::Authorize { conn, token, username, .. }) => {
                            let result = if username == WALLET {
                                Ok(())
                            } else {
                                Err("invalid payout address".to_owned())
                            };
                            conn.authorize_result(token, result);
                        }
                        Some(MoneroServerEvent::Share { conn, share }) => {
                            let verdict = match share.nonce {
                                LOW => ShareVerdict::LowDifficulty,
                                FORGED => ShareVerdict::Invalid(FORGED_REASON.to_owned()),
                                _ => ShareVerdict::Accepted,
                            };
                            let token = share.token;
                            // Reported before the verdict goes out, so that the test sees
                            // it by the time the client has the result.
                            shares_tx.send(share).ok();
                            conn.share_result(token, verdict);
                        }
                        Some(_) => {}
                        None => break,
                    },
                    Some(()) = hang_ups.recv() => {
                        for conn in conns.drain(..) {
                            conn.close();
                        }
                    }
                }
            }
        });
        Pool {
            addr,
            jobs,
            shares,
            hang_up,
            stop,
            server,
            judge,
        }
    }

    fn publish(&self, job: MoneroJob) {
        self.jobs.send_replace(Some(Arc::new(job)));
    }

    async fn shutdown(self) {
        self.stop.send(()).ok();
        timeout(WAIT, self.server)
            .await
            .expect("server stops")
            .expect("server task");
        timeout(WAIT, self.judge)
            .await
            .expect("judge stops")
            .expect("judge task");
    }
}

fn share(job: &MoneroJob, nonce: u32) -> MoneroMinerShare {
    MoneroMinerShare {
        job_id: job.job_id.clone(),
        nonce,
        // All zeroes meets every target; the pool's judge decides by nonce.
        result: [0; 32],
        algo: job.algo.clone(),
    }
}

/// Submits `share` and returns its result: accepted, and the pool's reason if not.
async fn submit(client: &mut MoneroClient, share: MoneroMinerShare) -> (bool, Option<String>) {
    let sequence = client.submit(share);
    let MoneroMinerEvent::ShareResult {
        sequence: answered,
        accepted,
        error,
    } = event(client).await
    else {
        panic!("a share result")
    };
    assert_eq!(answered, sequence, "the result of the share just submitted");
    (accepted, error.map(|e| e.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monero_client_mines_against_our_monero_server() {
    let mut pool = Pool::start().await;
    let first = job("j1", 100);
    pool.publish(first.clone());

    let mut client = MoneroClient::connect(&format!("stratum+tcp://{}", pool.addr), config(WALLET))
        .await
        .expect("connect");
    assert_eq!(client.url().port, pool.addr.port());

    // The login result carries the session id (the allocator's value, in hex) and the job.
    let MoneroMinerEvent::LoggedIn {
        session_id,
        extensions,
    } = event(&mut client).await
    else {
        panic!("logged in first")
    };
    assert_eq!(session_id.len(), 6);
    assert!(session_id.starts_with("7a"), "{session_id}");
    assert!(
        extensions.iter().any(|e| e == "keepalive"),
        "{extensions:?}"
    );
    assert_eq!(client.session().session_id(), Some(session_id.as_str()));
    let MoneroMinerEvent::NewJob {
        job: got,
        difficulty,
    } = event(&mut client).await
    else {
        panic!("then the job")
    };
    assert_eq!(got, first);
    assert_eq!(difficulty, first.difficulty());
    assert!((9_990..=10_010).contains(&difficulty), "{difficulty}");

    // Accepted: the share reached the pool whole, under the wallet it logged in with.
    assert_eq!(submit(&mut client, share(&got, 7)).await, (true, None));
    let seen = timeout(WAIT, pool.shares.recv())
        .await
        .expect("in time")
        .expect("a share");
    assert_eq!(seen.worker, WALLET);
    assert_eq!(seen.job_id, "j1");
    assert_eq!(seen.nonce, 7);
    assert_eq!(seen.result, [0; 32]);
    assert_eq!(seen.algo.as_deref(), Some("rx/0"));
    assert_eq!(
        seen.blob[MONERO_NONCE_OFFSET..MONERO_NONCE_OFFSET + 4],
        7u32.to_le_bytes()
    );

    // The pool's rejections come back with their reasons.
    assert_eq!(
        submit(&mut client, share(&got, LOW)).await,
        (false, Some("Low difficulty share".to_owned()))
    );
    assert_eq!(
        submit(&mut client, share(&got, FORGED)).await,
        (false, Some(FORGED_REASON.to_owned()))
    );
    // The server's session refuses a repeat without asking the pool.
    assert_eq!(
        submit(&mut client, share(&got, 7)).await,
        (false, Some("Duplicate share".to_owned()))
    );
    // A share on a job the pool never sent fails in the client, without going out.
    let mut unknown = share(&got, 8);
    unknown.job_id = "nope".into();
    let (accepted, reason) = submit(&mut client, unknown).await;
    assert!(!accepted);
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("unknown")),
        "{reason:?}"
    );
    let judged: Vec<u32> = std::iter::from_fn(|| pool.shares.try_recv().ok())
        .map(|s| s.nonce)
        .collect();
    assert_eq!(
        judged,
        [LOW, FORGED],
        "only the pool's own verdicts reached it"
    );

    // A new height goes out as a job notification and makes the old job stale.
    let second = job("j2", 101);
    pool.publish(second.clone());
    let MoneroMinerEvent::NewJob { job: got2, .. } = event(&mut client).await else {
        panic!("the new job")
    };
    assert_eq!(got2, second);
    assert_eq!(
        submit(&mut client, share(&got, 9)).await,
        (false, Some("Stale share".to_owned()))
    );
    assert_eq!(submit(&mut client, share(&got2, 9)).await, (true, None));

    // The pool hangs up: the connection error, then the client stays closed.
    pool.hang_up.send(()).expect("judge running");
    let err = timeout(WAIT, client.next_event()).await.expect("in time");
    assert!(matches!(err, Err(ClientError::Disconnected)), "{err:?}");
    assert!(matches!(
        client.next_event().await,
        Err(ClientError::Closed)
    ));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_ends_the_monero_client() {
    let pool = Pool::start().await;
    pool.publish(job("j1", 100));
    let mut client = MoneroClient::connect(&pool.addr.to_string(), config(BAD_WALLET))
        .await
        .expect("connect");
    let MoneroMinerEvent::LoginFailed(error) = event(&mut client).await else {
        panic!("the login is refused")
    };
    assert_eq!(error.message, "invalid payout address");
    assert_eq!(
        event(&mut client).await,
        MoneroMinerEvent::Closed(MinerCloseReason::Rejected)
    );
    // The session has ended: the client says so without waiting on the socket.
    let closed = timeout(Duration::from_secs(1), client.next_event())
        .await
        .expect("at once");
    assert!(matches!(closed, Err(ClientError::Closed)), "{closed:?}");
    // A share submitted after the end still gets its one (failed) result.
    let sequence = client.submit(share(&job("j1", 100), 1));
    let MoneroMinerEvent::ShareResult {
        sequence: answered,
        accepted: false,
        error: Some(error),
    } = event(&mut client).await
    else {
        panic!("a failed share result")
    };
    assert_eq!(answered, sequence);
    assert!(error.message.contains("closed"), "{}", error.message);
    client.close().await;
    pool.shutdown().await;
}
