//! The tokio server generic over `PoolProtocol`, driving the Monero and EthereumStratum pool
//! sessions over loopback sockets: a raw TCP client sends xmrig's captured lines
//! (`tests/data/xmrig-rx0.txt`), the test plays the pool through the channel interface.
#![cfg(feature = "tokio")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{load_capture, Dir};
use otedama_core::encode_hex;
use otedama_stratum::server::{
    Connection, DisconnectReason, EthServer, EthServerConfig, EthServerEvent, JobTailor,
    MoneroServerConfig, MoneroServerEvent, ProtocolServer, ProtocolServerEvent,
};
use otedama_stratum::{
    EthNotify, ExtranonceAllocator, Message, MoneroJob, MoneroLoginResult, MoneroMessage,
    MoneroPoolConfig, MoneroPoolSession, MoneroServerRequest, PoolProtocol, ShareVerdict,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// xmrig's wallet in the capture.
const WALLET: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

/// A running server of the dialect of `P`, its event receiver and its job sender.
struct Running<P: PoolProtocol> {
    addr: SocketAddr,
    events: mpsc::Receiver<ProtocolServerEvent<P>>,
    jobs: watch::Sender<Option<Arc<P::Job>>>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl<P: PoolProtocol> Running<P> {
    async fn start(
        config: otedama_stratum::server::ProtocolServerConfig<P>,
        allocator: Arc<ExtranonceAllocator>,
    ) -> Self {
        let (events_tx, events) = mpsc::channel(64);
        let (jobs, jobs_rx) = watch::channel(None);
        let server =
            ProtocolServer::<P>::bind("127.0.0.1:0", config, allocator, events_tx, jobs_rx)
                .await
                .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server.run(async {
            stopped.await.ok();
        }));
        Running {
            addr,
            events,
            jobs,
            stop,
            server,
        }
    }

    async fn event(&mut self) -> ProtocolServerEvent<P> {
        timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the server is running")
    }

    fn publish(&self, job: P::Job) {
        self.jobs.send_replace(Some(Arc::new(job)));
    }

    async fn shutdown(self) {
        self.stop.send(()).ok();
        timeout(WAIT, self.server)
            .await
            .expect("stops in time")
            .expect("server task");
    }
}

/// A miner: raw lines out, lines in.
struct Miner {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Miner {
    async fn connect(addr: SocketAddr) -> Miner {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (reader, writer) = stream.into_split();
        Miner {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }

    /// The next line, with its newline.
    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .expect("read");
        assert!(n > 0, "the server closed the connection");
        line
    }

    /// Whether a line comes within `wait`.
    async fn quiet_for(&mut self, wait: Duration) -> bool {
        let mut line = String::new();
        timeout(wait, self.reader.read_line(&mut line))
            .await
            .is_err()
    }
}

fn json_of(line: &str) -> Value {
    serde_json::from_str(line.trim_end()).expect("json")
}

/// The captured lines of the miner and of the scripted pool, in order.
fn xmrig_capture() -> (Vec<String>, Vec<String>) {
    let entries = load_capture("xmrig-rx0.txt");
    let pick = |dir| {
        entries
            .iter()
            .filter(|e| e.dir == dir)
            .map(|e| e.line.clone())
            .collect::<Vec<_>>()
    };
    (pick(Dir::ClientToServer), pick(Dir::ServerToClient))
}

/// The job in the captured login result.
fn captured_job(login_result: &str) -> MoneroJob {
    let Ok(MoneroMessage::Response(r)) = MoneroMessage::parse(login_result.as_bytes()) else {
        panic!("login result")
    };
    let result = MoneroLoginResult::from_json(&r.result.expect("ok")).expect("result");
    result.job.expect("job")
}

/// `line` as the miner of the session `session_id` sends it (the capture's pool named its
/// session `sess1`; xmrig quotes whatever id the pool gave).
fn for_session(line: &str, session_id: &str) -> String {
    line.replace(r#""id":"sess1""#, &format!(r#""id":"{session_id}""#))
}

#[tokio::test]
async fn the_generic_server_drives_an_xmrig_session_end_to_end() {
    let (from_miner, from_pool) = xmrig_capture();
    assert_eq!((from_miner.len(), from_pool.len()), (15, 15));
    let job = captured_job(&from_pool[0]);
    let allocator = ExtranonceAllocator::new(&[0x7a], 2).expect("allocator");
    let config = MoneroServerConfig {
        pool: Arc::new(MoneroPoolConfig::default()),
        max_connections: 8,
        ..MoneroServerConfig::default()
    };
    let mut pool = Running::<MoneroPoolSession>::start(config, allocator).await;
    let mut miner = Miner::connect(pool.addr).await;
    let MoneroServerEvent::Connected { conn } = pool.event().await else {
        panic!("connected")
    };

    // The login reaches the pool as an authorization of the wallet.
    miner.send(&from_miner[0]).await;
    let MoneroServerEvent::Authorize {
        conn: from,
        token,
        username,
        password,
    } = pool.event().await
    else {
        panic!("login")
    };
    assert_eq!(from, conn);
    assert_eq!(username, WALLET);
    assert_eq!(password.as_deref(), Some("x"));
    conn.authorize_result(token, Ok(()));
    // No job has been published: the accepted login waits for one.
    assert!(miner.quiet_for(Duration::from_millis(200)).await);
    pool.publish(job.clone());

    // The login result carries the job, as the captured pool's did; the session id is the
    // server's own (its allocator's value, in hex).
    let ours = json_of(&miner.line().await);
    let session_id = ours["result"]["id"]
        .as_str()
        .expect("session id")
        .to_owned();
    assert_eq!(session_id.len(), 6);
    assert!(session_id.starts_with("7a"), "{session_id}");
    let mut theirs = json_of(&from_pool[0]);
    theirs["result"]["id"] = Value::from(session_id.as_str());
    if let Some(job) = theirs
        .pointer_mut("/result/job")
        .and_then(Value::as_object_mut)
    {
        // The logger echoed the session id inside the job too; xmrig ignores it.
        job.remove("id");
    }
    assert_eq!(ours, theirs);

    // Every captured submit reaches the pool as a share; its verdict goes back byte for byte
    // as the captured pool answered.
    for (submit, answer) in from_miner[1..].iter().zip(&from_pool[1..]) {
        miner.send(&for_session(submit, &session_id)).await;
        let MoneroServerEvent::Share { conn: from, share } = pool.event().await else {
            panic!("share for {submit}")
        };
        assert_eq!(from, conn);
        let params = &json_of(submit)["params"];
        assert_eq!(share.worker, WALLET);
        assert_eq!(share.job_id, "job1");
        assert_eq!(
            encode_hex(&share.nonce.to_le_bytes()),
            params["nonce"].as_str().expect("nonce")
        );
        assert_eq!(encode_hex(&share.blob[39..43]), params["nonce"]);
        assert_eq!(encode_hex(&share.result), params["result"]);
        assert_eq!(share.difficulty, 1000);
        assert_eq!(share.algo.as_deref(), Some("rx/0"));
        assert_eq!(share.seed_hash, job.seed_hash);
        conn.share_result(share.token, ShareVerdict::Accepted);
        assert_eq!(miner.line().await, format!("{answer}\n"));
    }

    // A job of a new height goes out as a `job` notification and retires job1.
    let mut next = job.clone();
    next.job_id = "job2".into();
    next.height = Some(2);
    pool.publish(next.clone());
    let line = miner.line().await;
    let Ok(MoneroMessage::Request(request)) = MoneroMessage::parse(line.trim_end().as_bytes())
    else {
        panic!("job notification: {line}")
    };
    assert_eq!(request.id, None);
    assert_eq!(
        MoneroServerRequest::from_request(&request),
        Ok(MoneroServerRequest::Job(next))
    );

    // A share on job1 is now stale: the session answers it without asking the pool.
    let stale = for_session(&from_miner[1], &session_id).replace(r#""id":2,"#, r#""id":20,"#);
    miner.send(&stale).await;
    assert_eq!(
        json_of(&miner.line().await),
        json!({"id": 20, "jsonrpc": "2.0", "error": {"code": -1, "message": "Stale share"}, "result": null})
    );

    // A share on job2 the pool refuses.
    let low = for_session(&from_miner[1], &session_id)
        .replace(r#""id":2,"#, r#""id":21,"#)
        .replace("job1", "job2");
    miner.send(&low).await;
    let MoneroServerEvent::Share { share, .. } = pool.event().await else {
        panic!("share on job2")
    };
    assert_eq!((share.job_id.as_str(), share.height), ("job2", Some(2)));
    conn.share_result(share.token, ShareVerdict::LowDifficulty);
    assert_eq!(
        miner.line().await,
        "{\"id\":21,\"jsonrpc\":\"2.0\",\"error\":{\"code\":-1,\"message\":\"Low difficulty share\"},\"result\":null}\n"
    );

    // The miner leaves.
    drop(miner);
    let MoneroServerEvent::Closed { conn: from, reason } = pool.event().await else {
        panic!("closed")
    };
    assert_eq!(from, conn);
    assert_eq!(reason, DisconnectReason::PeerClosed);
    pool.shutdown().await;
}

/// Gives every connection a blob of its own: the connection id in the bytes after the nonce.
#[derive(Debug)]
struct BlobPerConnection;

impl JobTailor<MoneroJob> for BlobPerConnection {
    fn tailor(&self, _job: &Arc<MoneroJob>, _worker: &str) -> Option<Arc<MoneroJob>> {
        None
    }

    fn tailor_for(
        &self,
        job: &Arc<MoneroJob>,
        worker: &str,
        conn: &Connection,
    ) -> Option<Arc<MoneroJob>> {
        assert_eq!(worker, WALLET);
        let mut own = MoneroJob::clone(job);
        own.blob[43..51].copy_from_slice(&conn.id().to_le_bytes());
        own.job_id = format!("{}-{}", job.job_id, conn.id());
        Some(Arc::new(own))
    }
}

#[tokio::test]
async fn a_tailor_gives_each_xmrig_connection_its_own_blob() {
    let (from_miner, from_pool) = xmrig_capture();
    let allocator = ExtranonceAllocator::new(&[], 2).expect("allocator");
    let config = MoneroServerConfig {
        tailor: Some(Arc::new(BlobPerConnection)),
        ..MoneroServerConfig::default()
    };
    let mut pool = Running::<MoneroPoolSession>::start(config, allocator).await;
    pool.publish(captured_job(&from_pool[0]));
    let (mut jobs, mut miners) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let mut miner = Miner::connect(pool.addr).await;
        let MoneroServerEvent::Connected { conn } = pool.event().await else {
            panic!("connected")
        };
        // Both log in with the same wallet.
        miner.send(&from_miner[0]).await;
        let MoneroServerEvent::Authorize { token, .. } = pool.event().await else {
            panic!("login")
        };
        conn.authorize_result(token, Ok(()));
        let result = json_of(&miner.line().await)["result"].clone();
        let job = MoneroLoginResult::from_json(&result)
            .expect("login result")
            .job
            .expect("job");
        assert_eq!(job.job_id, format!("job1-{}", conn.id()));
        assert_eq!(job.blob[43..51], conn.id().to_le_bytes());
        jobs.push(job);
        miners.push(miner);
    }
    assert_ne!(jobs[0].blob, jobs[1].blob);
    pool.shutdown().await;
}

#[tokio::test]
async fn the_generic_server_drives_an_ethereumstratum_session() {
    // EthereumStratum hands out extranonces of at most 3 bytes: binding checks it.
    let (events_tx, _events) = mpsc::channel(1);
    let (_jobs, jobs_rx) = watch::channel(None);
    let too_long = ExtranonceAllocator::new(&[1, 2], 2).expect("allocator");
    let refused = EthServer::bind(
        "127.0.0.1:0",
        EthServerConfig::default(),
        too_long,
        events_tx,
        jobs_rx,
    )
    .await
    .expect_err("a 4-byte extranonce");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);

    let allocator = ExtranonceAllocator::new(&[0xaf], 1).expect("allocator");
    let mut pool =
        Running::<otedama_stratum::EthPoolSession>::start(EthServerConfig::default(), allocator)
            .await;
    pool.publish(EthNotify {
        job_id: "bf0488aa".into(),
        seed_hash: [1; 32],
        header_hash: [2; 32],
        clean: true,
    });
    let mut miner = Miner::connect(pool.addr).await;
    let EthServerEvent::Connected { conn } = pool.event().await else {
        panic!("connected")
    };
    miner
        .send(r#"{"id": 1, "method": "mining.subscribe", "params": ["MinerName/1.0.0", "EthereumStratum/1.0.0"]}"#)
        .await;
    assert_eq!(
        json_of(&miner.line().await)["result"],
        json!([["mining.notify", "af00", "EthereumStratum/1.0.0"], "af00"])
    );
    miner
        .send(r#"{"id": 2, "method": "mining.authorize", "params": ["wallet.rig", "x"]}"#)
        .await;
    let EthServerEvent::Authorize {
        token, username, ..
    } = pool.event().await
    else {
        panic!("authorize")
    };
    assert_eq!(username, "wallet.rig");
    conn.authorize_result(token, Ok(()));
    assert_eq!(json_of(&miner.line().await)["result"], true);
    // Authorized: the current job follows, difficulty first.
    let difficulty = json_of(&miner.line().await);
    assert_eq!(difficulty["method"], "mining.set_difficulty");
    let notify = json_of(&miner.line().await);
    assert_eq!(notify["method"], "mining.notify");
    assert_eq!(notify["params"][0], "bf0488aa");
    miner
        .send(r#"{"id": 244, "method": "mining.submit", "params": ["wallet.rig", "bf0488aa", "6a909d9bbc0f"]}"#)
        .await;
    let EthServerEvent::Share { share, .. } = pool.event().await else {
        panic!("share")
    };
    assert_eq!(share.nonce, 0xaf00_6a90_9d9b_bc0f);
    conn.share_result(share.token, ShareVerdict::Accepted);
    let Ok(Message::Response(answer)) = Message::parse(miner.line().await.trim_end().as_bytes())
    else {
        panic!("answer")
    };
    assert_eq!((answer.result, answer.error), (Value::Bool(true), None));
    drop(miner);
    let EthServerEvent::Closed { reason, .. } = pool.event().await else {
        panic!("closed")
    };
    assert_eq!(reason, DisconnectReason::PeerClosed);
    pool.shutdown().await;
}
