//! The tokio server over real loopback sockets: raw TCP clients replay the captured miners'
//! lines byte for byte, a test pool answers through the channel interface.
#![cfg(feature = "tokio")]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{load_capture, Dir};
use otedama_stratum::edge::{EdgeConfig, Rate};
use otedama_stratum::server::{
    Backlog, Connection, DisconnectReason, EdgeHandle, Server, ServerConfig, ServerEvent,
    ServerStats,
};
use otedama_stratum::{
    CloseReason, ExtranonceAllocator, JobAnnouncement, Message, PoolConfig, Response,
    ServerRequest, ShareSubmission, ShareVerdict, SubscribeResult,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

type Validator = Box<dyn Fn(&ShareSubmission) -> ShareVerdict + Send>;

/// What the test pool saw, per connection id.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Connected(u64),
    Authorize(u64, String),
    Share(u64, Vec<u8>, u32, u32),
    Banned(u64, SocketAddr),
    Closed(u64, DisconnectReason),
}

struct Pool {
    addr: SocketAddr,
    jobs: watch::Sender<Option<Arc<JobAnnouncement>>>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    stats: Arc<ServerStats>,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<Mutex<Vec<Connection>>>,
    allocator: Arc<ExtranonceAllocator>,
    edge: EdgeHandle,
}

impl Pool {
    async fn start(config: ServerConfig, validate: Validator) -> Pool {
        let allocator = ExtranonceAllocator::new(&[0x08, 0x00], 2).expect("allocator");
        let (events_tx, mut events) = mpsc::channel(256);
        let (jobs, jobs_rx) = watch::channel(None);
        let server = Server::bind(
            "127.0.0.1:0",
            config,
            Arc::clone(&allocator),
            events_tx,
            jobs_rx,
        )
        .await
        .expect("bind");
        let addr = server.local_addr().expect("addr");
        let stats = server.stats();
        let edge = server.edge();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let conns = Arc::new(Mutex::new(Vec::new()));
        let handles = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let id = event.conn().id();
                let entry = match event {
                    ServerEvent::Connected { conn } => {
                        handles.lock().expect("conns").push(conn);
                        Seen::Connected(id)
                    }
                    ServerEvent::Banned { conn, .. } => Seen::Banned(id, conn.peer_addr()),
                    ServerEvent::Authorize {
                        conn,
                        token,
                        username,
                        ..
                    } => {
                        if username.starts_with("bad") {
                            conn.authorize_result(token, Err("unknown user".into()));
                        } else {
                            conn.authorize_result(token, Ok(()));
                        }
                        Seen::Authorize(id, username)
                    }
                    ServerEvent::Share { conn, share } => {
                        conn.share_result(share.token, validate(&share));
                        Seen::Share(id, share.extranonce1.clone(), share.ntime, share.nonce)
                    }
                    ServerEvent::Closed { conn, reason } => {
                        assert!(conn.is_closed());
                        Seen::Closed(id, reason)
                    }
                    other => panic!("unexpected {other:?}"),
                };
                log.lock().expect("log").push(entry);
            }
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(server.run(async {
            stop_rx.await.ok();
        }));
        Pool {
            addr,
            jobs,
            stop: Some(stop_tx),
            server,
            stats,
            seen,
            conns,
            allocator,
            edge,
        }
    }

    fn publish(&self, job: JobAnnouncement) {
        self.jobs.send_replace(Some(Arc::new(job)));
    }

    fn conns(&self) -> Vec<Connection> {
        self.conns.lock().expect("conns").clone()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }

    async fn wait_for(&self, what: impl Fn(&[Seen]) -> bool) {
        timeout(WAIT, async {
            while !what(&self.seen()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out; seen: {:?}", self.seen()));
    }

    async fn shutdown(mut self) -> Vec<Seen> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        timeout(WAIT, &mut self.server)
            .await
            .expect("server stops")
            .expect("server task");
        // Let the event loop record the last Closed events.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.seen()
    }
}

/// A miner that is just a socket.
struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    notifications: Vec<ServerRequest>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        RawClient {
            reader: BufReader::new(r),
            writer: w,
            notifications: Vec::new(),
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// The next line, or `None` at EOF.
    async fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .ok()?;
        (n > 0).then_some(line)
    }

    /// Reads until the response with this id text, keeping notifications.
    async fn response(&mut self, id: &str) -> Response {
        loop {
            let line = self.recv().await.expect("connection open");
            assert!(line.ends_with('\n'));
            match Message::parse(line.trim_end().as_bytes()).expect("server line parses") {
                Message::Response(r) if r.id.as_ref().map(|i| i.as_json()) == Some(id) => {
                    return r;
                }
                Message::Response(r) => panic!("unexpected response {r:?}"),
                Message::Request(r) => self
                    .notifications
                    .push(ServerRequest::from_request(&r).expect("typed")),
            }
        }
    }

    /// Waits for the server to close the connection, skipping whatever it sends first.
    async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        timeout(WAIT, self.reader.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .ok();
    }
}

/// The job of the minerd-sha256d capture; its ntime is the earliest of all the captures.
fn capture_job() -> JobAnnouncement {
    let entries = load_capture("minerd-sha256d.txt");
    let notify = entries
        .iter()
        .filter(|e| e.dir == Dir::ServerToClient)
        .find_map(|e| match Message::parse(e.line.as_bytes()) {
            Ok(Message::Request(r)) => match ServerRequest::from_request(&r) {
                Ok(ServerRequest::Notify(n)) => Some(n),
                _ => None,
            },
            _ => None,
        })
        .expect("notify");
    JobAnnouncement { notify, height: 0 }
}

/// Every (ntime, nonce) a captured miner submitted.
fn captured_shares() -> HashSet<(u32, u32)> {
    let mut set = HashSet::new();
    for name in [
        "minerd-sha256d.txt",
        "cpuminer-opt-sha256d.txt",
        "minerd-scrypt.txt",
        "cpuminer-opt-scrypt.txt",
    ] {
        for e in load_capture(name) {
            if e.dir != Dir::ClientToServer || !e.line.contains("mining.submit") {
                continue;
            }
            let Ok(Message::Request(r)) = Message::parse(e.line.as_bytes()) else {
                panic!("submit parses")
            };
            let text = |i: usize| r.params[i].as_str().expect("hex").to_owned();
            set.insert((
                u32::from_str_radix(&text(3), 16).expect("ntime"),
                u32::from_str_radix(&text(4), 16).expect("nonce"),
            ));
        }
    }
    set
}

fn base_config(difficulty: f64) -> ServerConfig {
    ServerConfig {
        pool: Arc::new(PoolConfig {
            initial_difficulty: difficulty,
            vardiff_enabled: false,
            ..PoolConfig::default()
        }),
        ..ServerConfig::default()
    }
}

/// Replays one capture's C->S lines byte for byte and checks every answer against the
/// capture's. Returns the extranonce1 the server gave, how many shares were accepted, and the
/// still open connection.
async fn replay(
    addr: SocketAddr,
    name: &str,
    job: &JobAnnouncement,
) -> (Vec<u8>, usize, RawClient) {
    let entries = load_capture(name);
    let mut client = RawClient::connect(addr).await;
    let mut extranonce1 = Vec::new();
    let mut accepted = 0;
    let mut last: Option<Response> = None;
    for e in &entries {
        match e.dir {
            Dir::Note => {}
            Dir::ClientToServer => {
                let mut bytes = e.line.clone().into_bytes();
                bytes.push(b'\n');
                client.send_raw(&bytes).await;
                let Ok(Message::Request(r)) = Message::parse(e.line.as_bytes()) else {
                    panic!()
                };
                let id = r.id.expect("every captured request has an id");
                let response = client.response(id.as_json()).await;
                if r.method == "mining.subscribe" {
                    let sub = SubscribeResult::from_json(&response.result).expect("result");
                    extranonce1 = sub.extranonce1;
                }
                if r.method == "mining.submit" && response.result == serde_json::Value::Bool(true) {
                    accepted += 1;
                }
                last = Some(response);
            }
            Dir::ServerToClient => match Message::parse(e.line.as_bytes()).expect("capture") {
                Message::Response(theirs) => {
                    let ours = last.take().expect("we answered what they answered");
                    assert_eq!(
                        ours.id.as_ref().map(|i| i.as_json()),
                        theirs.id.as_ref().map(|i| i.as_json()),
                        "{name}"
                    );
                    assert_eq!(ours.error, theirs.error, "{name}");
                    match SubscribeResult::from_json(&theirs.result) {
                        Some(sub) => {
                            let mine = SubscribeResult::from_json(&ours.result).expect("ours");
                            assert_eq!(mine.extranonce1.len(), sub.extranonce1.len());
                            assert_eq!(mine.extranonce2_size, sub.extranonce2_size);
                        }
                        None => assert_eq!(ours.result, theirs.result, "{name}"),
                    }
                }
                Message::Request(_) => {}
            },
        }
    }
    if name == "minerd-passive.txt" {
        assert!(client.notifications.is_empty(), "no job before authorize");
    } else {
        assert_eq!(
            client.notifications,
            [
                ServerRequest::SetDifficulty(0.001),
                ServerRequest::Notify(job.notify.clone())
            ],
            "{name}"
        );
    }
    (extranonce1, accepted, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_miners_over_loopback() {
    let valid = captured_shares();
    assert_eq!(valid.len(), 133);
    let validator: Validator = Box::new(move |share: &ShareSubmission| {
        if share.job_id == "job1"
            && share.extranonce2 == [0, 0, 0, 0]
            && share.difficulty == 0.001
            && share.extranonce1.len() == 4
            && valid.contains(&(share.ntime, share.nonce))
        {
            ShareVerdict::Accepted
        } else {
            ShareVerdict::Invalid("hash does not meet the target".into())
        }
    });
    let pool = Pool::start(base_config(0.001), validator).await;
    let job = capture_job();
    pool.publish(job.clone());

    let names = [
        "minerd-sha256d.txt",
        "cpuminer-opt-sha256d.txt",
        "minerd-scrypt.txt",
        "cpuminer-opt-scrypt.txt",
        "minerd-passive.txt",
    ];
    let mut tasks = Vec::new();
    for name in names {
        let job = job.clone();
        let addr = pool.addr;
        tasks.push(tokio::spawn(async move {
            (name, replay(addr, name, &job).await)
        }));
    }
    let mut extranonces = HashSet::new();
    let mut total = 0;
    let mut open = Vec::new();
    for task in tasks {
        let (name, (en1, accepted, client)) = task.await.expect("client task");
        open.push(client);
        assert!(extranonces.insert(en1), "{name}: unique extranonce1");
        let expected = match name {
            "minerd-sha256d.txt" => 45,
            "cpuminer-opt-sha256d.txt" => 81,
            "minerd-scrypt.txt" => 6,
            "cpuminer-opt-scrypt.txt" => 1,
            _ => 0,
        };
        assert_eq!(accepted, expected, "{name}");
        total += accepted;
    }
    assert_eq!(total, 133);

    // A share the validator refuses is answered with its reason.
    let mut bad = RawClient::connect(pool.addr).await;
    bad.send_raw(b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": []}\n{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"w\", \"x\"]}\n").await;
    bad.response("1").await;
    bad.response("2").await;
    bad.send_raw(b"{\"method\": \"mining.submit\", \"params\": [\"w\", \"job1\", \"00000000\", \"6b04e972\", \"00000000\"], \"id\":4}\n").await;
    let r = bad.response("4").await;
    let error = r.error.expect("refused");
    assert_eq!(error.code.as_i64(), 20);
    assert_eq!(error.message, "hash does not meet the target");
    // A refused worker gets 24.
    bad.send_raw(br#"{"id":"a","method":"mining.authorize","params":["bad.user","x"]}"#)
        .await;
    bad.send_raw(b"\n").await;
    let r = bad.response("\"a\"").await;
    assert_eq!(r.error.map(|e| e.code.as_i64()), Some(24));

    assert_eq!(pool.stats.live(), 6, "five replayed miners and one more");
    assert_eq!(pool.stats.accepted(), 6);
    assert_eq!(pool.allocator.live(), 6);
    // Two miners hang up; the rest are closed by the shutdown.
    open.truncate(3);
    pool.wait_for(|seen| {
        seen.iter()
            .filter(|s| matches!(s, Seen::Closed(_, DisconnectReason::PeerClosed)))
            .count()
            == 2
    })
    .await;
    let seen = pool.shutdown().await;
    let shares = seen.iter().filter(|s| matches!(s, Seen::Share(..))).count();
    assert_eq!(shares, 134);
    let closed: Vec<&DisconnectReason> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Closed(_, r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 6);
    let by_shutdown = closed
        .iter()
        .filter(|r| matches!(r, DisconnectReason::Shutdown))
        .count();
    assert_eq!(by_shutdown, 4);
    for mut client in open {
        client.expect_eof().await;
    }
}

#[tokio::test]
async fn non_stratum_openings_are_closed_at_once() {
    let pool = Pool::start(
        base_config(1.0),
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let openings: [&[u8]; 4] = [
        // A TLS ClientHello never contains a newline: judged by its first byte.
        &[
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
        ],
        b"GET / HTTP/1.1\r\nHost: pool\r\n\r\n",
        b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 3333\r\n",
        b"\x00\x01\x02\x03",
    ];
    for bytes in openings {
        let mut client = RawClient::connect(pool.addr).await;
        client.send_raw(bytes).await;
        let mut rest = Vec::new();
        timeout(Duration::from_secs(2), client.reader.read_to_end(&mut rest))
            .await
            .expect("closed promptly, not after the subscribe timeout")
            .ok();
        assert!(rest.is_empty(), "nothing written to {bytes:?}");
    }
    pool.wait_for(|seen| {
        seen.iter()
            .filter(|s| {
                matches!(
                    s,
                    Seen::Closed(_, DisconnectReason::Session(CloseReason::NotStratum))
                )
            })
            .count()
            == 4
    })
    .await;
    pool.shutdown().await;
}

#[tokio::test]
async fn an_endless_line_closes_the_connection() {
    let config = ServerConfig {
        max_line: 1024,
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut client = RawClient::connect(pool.addr).await;
    client.send_raw(b"{\"id\": 1, \"params\": [\"").await;
    // The server may close while we are still writing.
    let chunk = vec![b'a'; 4096];
    for _ in 0..16 {
        if client.writer.write_all(&chunk).await.is_err() {
            break;
        }
    }
    client.expect_eof().await;
    pool.wait_for(|seen| {
        seen.iter()
            .any(|s| matches!(s, Seen::Closed(_, DisconnectReason::LineTooLong)))
    })
    .await;
    assert_eq!(pool.allocator.live(), 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn connection_limits_refuse_extra_connections() {
    let config = ServerConfig {
        max_connections: 2,
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut a = RawClient::connect(pool.addr).await;
    let mut b = RawClient::connect(pool.addr).await;
    pool.wait_for(|seen| {
        seen.iter()
            .filter(|s| matches!(s, Seen::Connected(_)))
            .count()
            == 2
    })
    .await;
    let mut c = RawClient::connect(pool.addr).await;
    c.expect_eof().await;
    assert_eq!(pool.stats.refused(), 1);
    // The two admitted ones work.
    for client in [&mut a, &mut b] {
        client
            .send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
            .await;
        client.response("1").await;
    }
    // A place frees up when one leaves.
    drop(a);
    pool.wait_for(|seen| {
        seen.iter()
            .any(|s| matches!(s, Seen::Closed(_, DisconnectReason::PeerClosed)))
    })
    .await;
    let mut d = RawClient::connect(pool.addr).await;
    d.send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await;
    d.response("1").await;
    pool.shutdown().await;

    // Per address.
    let config = ServerConfig {
        max_connections_per_ip: Some(1),
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let _a = RawClient::connect(pool.addr).await;
    pool.wait_for(|seen| seen.iter().any(|s| matches!(s, Seen::Connected(_))))
        .await;
    let mut b = RawClient::connect(pool.addr).await;
    b.expect_eof().await;
    assert_eq!(pool.stats.refused(), 1);
    assert_eq!(pool.stats.live(), 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn subscribe_timeout_closes_a_silent_socket() {
    let config = ServerConfig {
        pool: Arc::new(PoolConfig {
            subscribe_timeout: Duration::from_millis(200),
            ..PoolConfig::default()
        }),
        ..ServerConfig::default()
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let started = std::time::Instant::now();
    let mut client = RawClient::connect(pool.addr).await;
    client.expect_eof().await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(190), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    pool.wait_for(|seen| {
        seen.iter().any(|s| {
            matches!(
                s,
                Seen::Closed(_, DisconnectReason::Session(CloseReason::SubscribeTimeout))
            )
        })
    })
    .await;
    pool.shutdown().await;
}

#[tokio::test]
async fn new_jobs_reach_working_miners_and_a_new_tip_is_clean() {
    let pool = Pool::start(
        base_config(2.0),
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut client = RawClient::connect(pool.addr).await;
    client
        .send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n")
        .await;
    client.response("1").await;
    client.response("2").await;
    // No job yet: nothing but the answers.
    let mut job = capture_job();
    job.height = 10;
    job.notify.clean_jobs = false;
    pool.publish(job.clone());
    assert_eq!(
        next_request(&mut client).await,
        ServerRequest::SetDifficulty(2.0)
    );
    assert_eq!(
        next_request(&mut client).await,
        ServerRequest::Notify(job.notify.clone())
    );
    job.notify.job_id = "job2".into();
    job.height = 11;
    pool.publish(job.clone());
    let ServerRequest::Notify(n) = next_request(&mut client).await else {
        panic!()
    };
    assert_eq!(n.job_id, "job2");
    assert!(n.clean_jobs, "a new height is announced clean");
    // A share for the first job is now stale.
    client
        .send_raw(b"{\"id\":9,\"method\":\"mining.submit\",\"params\":[\"w\",\"job1\",\"00000000\",\"6b04e972\",\"00000000\"]}\n")
        .await;
    let r = client.response("9").await;
    assert_eq!(r.error.map(|e| e.code.as_i64()), Some(21));
    pool.shutdown().await;
    client.expect_eof().await;
}

#[tokio::test]
async fn graceful_shutdown_flushes_and_closes_everyone() {
    let pool = Pool::start(
        base_config(1.0),
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut c = RawClient::connect(pool.addr).await;
        c.send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
            .await;
        clients.push(c);
    }
    for c in &mut clients {
        c.response("1").await;
    }
    assert_eq!(pool.stats.live(), 20);
    let allocator = Arc::clone(&pool.allocator);
    let stats = Arc::clone(&pool.stats);
    let addr = pool.addr;
    let seen = pool.shutdown().await;
    for c in &mut clients {
        c.expect_eof().await;
    }
    assert_eq!(stats.live(), 0);
    assert_eq!(allocator.live(), 0, "every extranonce1 released");
    assert_eq!(
        seen.iter()
            .filter(|s| matches!(s, Seen::Closed(_, DisconnectReason::Shutdown)))
            .count(),
        20
    );
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}

async fn next_request(client: &mut RawClient) -> ServerRequest {
    let line = client.recv().await.expect("line");
    let Ok(Message::Request(r)) = Message::parse(line.trim_end().as_bytes()) else {
        panic!("{line}")
    };
    ServerRequest::from_request(&r).expect("typed")
}

#[tokio::test]
async fn a_pool_closing_a_connection_and_a_ban_end_it() {
    let pool = Pool::start(
        base_config(1.0),
        Box::new(|_: &ShareSubmission| ShareVerdict::LowDifficulty),
    )
    .await;
    let mut client = RawClient::connect(pool.addr).await;
    pool.publish(capture_job());
    client
        .send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n")
        .await;
    client.response("1").await;
    client.response("2").await;
    for nonce in 0..6 {
        let line = format!("{{\"id\":{nonce},\"method\":\"mining.submit\",\"params\":[\"w\",\"job1\",\"00000000\",\"6b04e972\",\"{nonce:08x}\"]}}\n");
        client.send_raw(line.as_bytes()).await;
        let r = client.response(&nonce.to_string()).await;
        assert_eq!(r.error.map(|e| e.code.as_i64()), Some(23));
    }
    client.expect_eof().await;
    pool.wait_for(|seen| {
        seen.iter().any(|s| {
            matches!(
                s,
                Seen::Closed(_, DisconnectReason::Session(CloseReason::Banned))
            )
        })
    })
    .await;

    // The pool hangs up on a connection through its handle.
    let mut other = RawClient::connect(pool.addr).await;
    other
        .send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await;
    other.response("1").await;
    let conn = pool.conns().pop().expect("handle");
    assert!(!conn.is_closed());
    conn.close();
    other.expect_eof().await;
    pool.wait_for(|seen| {
        seen.iter().any(|s| {
            *s == Seen::Closed(conn.id(), DisconnectReason::Session(CloseReason::Requested))
        })
    })
    .await;
    assert!(conn.is_closed());
    // Answers to a closed connection go nowhere.
    conn.close();
    pool.shutdown().await;
}

/// A pool that stops reading events, or a miner that stops reading lines, cannot hold up a
/// shutdown.
#[tokio::test]
async fn shutdown_does_not_wait_for_a_stuck_pool_or_miner() {
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    // Room for one event, and nobody reading it.
    let (events_tx, _events) = mpsc::channel(1);
    let (_jobs, jobs_rx) = watch::channel(None);
    let server = Server::bind(
        "127.0.0.1:0",
        base_config(1.0),
        allocator,
        events_tx,
        jobs_rx,
    )
    .await
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async {
        stopped.await.ok();
    }));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = RawClient::connect(addr).await;
        c.send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n")
            .await;
        clients.push(c);
    }
    // A miner that never reads, flooding requests that each get an answer.
    let mut flood = TcpStream::connect(addr).await.expect("connect");
    let line = b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n".repeat(64);
    for _ in 0..64 {
        if timeout(Duration::from_millis(100), flood.write_all(&line))
            .await
            .is_err()
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.live(), 4);
    stop.send(()).ok();
    timeout(Duration::from_secs(5), run)
        .await
        .expect("shutdown is not held up")
        .expect("server task");
    assert_eq!(stats.live(), 0);
    for c in &mut clients {
        c.expect_eof().await;
    }
}

/// Gives each worker its own job id and coinbase start, as a solo pool does.
#[derive(Debug)]
struct PerWorker;

impl otedama_stratum::server::JobTailor for PerWorker {
    fn tailor(&self, job: &Arc<JobAnnouncement>, worker: &str) -> Option<Arc<JobAnnouncement>> {
        let mut own = JobAnnouncement::clone(job);
        own.notify.job_id = format!("{}-{worker}", job.notify.job_id);
        own.notify.coinb1 = worker.as_bytes().to_vec();
        Some(Arc::new(own))
    }
}

#[tokio::test]
async fn a_job_tailor_gives_each_connection_its_own_job() {
    let config = ServerConfig {
        tailor: Some(Arc::new(PerWorker)),
        ..base_config(2.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut job = capture_job();
    job.notify.job_id = "j".into();
    pool.publish(job.clone());
    let mut notified = Vec::new();
    for worker in ["alice.rig", "bob"] {
        let mut client = RawClient::connect(pool.addr).await;
        client
            .send_raw(format!("{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}}\n{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{worker}\",\"x\"]}}\n").as_bytes())
            .await;
        client.response("1").await;
        client.response("2").await;
        assert_eq!(
            next_request(&mut client).await,
            ServerRequest::SetDifficulty(2.0)
        );
        let ServerRequest::Notify(n) = next_request(&mut client).await else {
            panic!("a job")
        };
        assert_eq!(n.job_id, format!("j-{worker}"));
        assert_eq!(n.coinb1, worker.as_bytes());
        notified.push((client, n));
    }
    // Shares name the tailored job, which the session knows; the pool sees that id.
    let (client, n) = &mut notified[0];
    client
        .send_raw(format!("{{\"id\":9,\"method\":\"mining.submit\",\"params\":[\"alice.rig\",\"{}\",\"00000000\",\"6b04e972\",\"00000000\"]}}\n", n.job_id).as_bytes())
        .await;
    let r = client.response("9").await;
    assert!(r.error.is_none(), "{r:?}");
    // The untailored id was never sent to this connection: stale.
    client
        .send_raw(b"{\"id\":10,\"method\":\"mining.submit\",\"params\":[\"alice.rig\",\"j\",\"00000000\",\"6b04e972\",\"00000001\"]}\n")
        .await;
    let r = client.response("10").await;
    assert_eq!(r.error.map(|e| e.code.as_i64()), Some(21));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_up_to_max_connections_waits_in_the_backlog_until_accepted() {
    // Both ends of every connection are in this process.
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    const MAX: usize = 3000;
    // The system may cap the backlog below what the server asks (net.core.somaxconn): the
    // burst is what the server's backlog holds here.
    let burst = (Backlog::for_connections(MAX).effective() as usize).min(MAX);
    let allocator = ExtranonceAllocator::new(&[0x08, 0x00], 2).expect("allocator");
    let (events_tx, mut events) = mpsc::channel(256);
    let (_jobs, jobs_rx) = watch::channel(None);
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig {
            max_connections: MAX,
            ..base_config(1.0)
        },
        allocator,
        events_tx,
        jobs_rx,
    )
    .await
    .expect("bind");
    let backlog = server.backlog().expect("bound by the server");
    assert_eq!(backlog.requested, MAX as u32, "sized from max_connections");
    let addr = server.local_addr().expect("addr");
    // Nobody accepts yet: every connection of the burst completes into the backlog (one the
    // system found no room for would wait out SYN retransmissions, and fail here).
    let connects: Vec<_> = (0..burst)
        .map(|_| tokio::spawn(timeout(Duration::from_secs(3), TcpStream::connect(addr))))
        .collect();
    let mut streams = Vec::with_capacity(burst);
    for connect in connects {
        let stream = connect
            .await
            .expect("task")
            .expect("connected within the backlog, before any accept")
            .expect("connect");
        streams.push(stream);
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    // Then the server takes them all, and every one is served.
    let answered: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                wr.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
                    .await?;
                let mut line = String::new();
                BufReader::new(rd).read_line(&mut line).await?;
                std::io::Result::Ok(line)
            })
        })
        .collect();
    for answer in answered {
        let line = timeout(WAIT, answer)
            .await
            .expect("answered in time")
            .expect("task")
            .expect("no reset");
        assert!(
            line.contains("\"id\":1") && line.contains("mining.notify"),
            "{line}"
        );
    }
    let _ = stop.send(());
    run.await.expect("server");
}

const SUBSCRIBE: &[u8] = b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n";

#[tokio::test]
async fn behind_a_balancer_the_proxy_header_names_the_miner() {
    let config = ServerConfig {
        max_connections_per_ip: Some(1),
        edge: EdgeConfig {
            proxy_protocol: true,
            proxy_timeout: Duration::from_millis(300),
            ..EdgeConfig::default()
        },
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    // Version 1, with the subscribe in the same packet.
    let mut a = RawClient::connect(pool.addr).await;
    let mut first = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 3333\r\n".to_vec();
    first.extend_from_slice(SUBSCRIBE);
    a.send_raw(&first).await;
    a.response("1").await;
    // Version 2, from another address behind the same balancer.
    let mut b = RawClient::connect(pool.addr).await;
    let mut second = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    second.extend_from_slice(&[203, 0, 113, 9, 198, 51, 100, 1]);
    second.extend_from_slice(&40000u16.to_be_bytes());
    second.extend_from_slice(&3333u16.to_be_bytes());
    b.send_raw(&second).await;
    b.send_raw(SUBSCRIBE).await;
    b.response("1").await;
    let peers: Vec<SocketAddr> = pool.conns().iter().map(Connection::peer_addr).collect();
    assert_eq!(
        peers,
        vec![
            "192.0.2.7:56324".parse().expect("addr"),
            "203.0.113.9:40000".parse().expect("addr")
        ]
    );
    // The per-address limit counts the miner's address, not the balancer's.
    let mut again = RawClient::connect(pool.addr).await;
    again
        .send_raw(b"PROXY TCP4 192.0.2.7 198.51.100.1 56325 3333\r\n")
        .await;
    again.expect_eof().await;
    // No header, a bad one, or none in time: closed before any session.
    let mut plain = RawClient::connect(pool.addr).await;
    plain.send_raw(SUBSCRIBE).await;
    plain.expect_eof().await;
    let mut silent = RawClient::connect(pool.addr).await;
    silent.expect_eof().await;
    assert_eq!(pool.stats.proxy_failed(), 2);
    assert_eq!(pool.stats.refused(), 3);
    assert_eq!(pool.conns().len(), 2, "no session for the refused ones");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_miner_flooding_lines_is_cut_off() {
    let config = ServerConfig {
        edge: EdgeConfig {
            messages_per_connection: Some(Rate {
                per_second: 1.0,
                burst: 5.0,
            }),
            exempt_loopback: false,
            ..EdgeConfig::default()
        },
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut calm = RawClient::connect(pool.addr).await;
    calm.send_raw(SUBSCRIBE).await;
    calm.response("1").await;
    let mut flood = RawClient::connect(pool.addr).await;
    let burst: Vec<u8> = (0..50)
        .flat_map(|i| {
            format!("{{\"id\":{i},\"method\":\"mining.extranonce.subscribe\",\"params\":[]}}\n")
                .into_bytes()
        })
        .collect();
    flood.send_raw(&burst).await;
    flood.expect_eof().await;
    pool.wait_for(|seen| {
        seen.iter()
            .any(|s| matches!(s, Seen::Closed(_, DisconnectReason::RateLimited)))
    })
    .await;
    assert_eq!(pool.stats.rate_limited(), 1);
    // The calm one is untouched.
    calm.send_raw(b"{\"id\":2,\"method\":\"mining.extranonce.subscribe\",\"params\":[]}\n")
        .await;
    calm.response("2").await;
    pool.shutdown().await;
}

#[tokio::test]
async fn a_banned_address_is_refused_until_the_ban_ends_or_is_lifted() {
    let config = ServerConfig {
        edge: EdgeConfig {
            ban_for: Some(Duration::from_secs(3600)),
            exempt_loopback: false,
            ..EdgeConfig::default()
        },
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::LowDifficulty),
    )
    .await;
    let mut client = RawClient::connect(pool.addr).await;
    pool.publish(capture_job());
    client
        .send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"w\",\"x\"]}\n")
        .await;
    client.response("1").await;
    client.response("2").await;
    for nonce in 0..6 {
        let line = format!("{{\"id\":{nonce},\"method\":\"mining.submit\",\"params\":[\"w\",\"job1\",\"00000000\",\"6b04e972\",\"{nonce:08x}\"]}}\n");
        client.send_raw(line.as_bytes()).await;
    }
    client.expect_eof().await;
    pool.wait_for(|seen| seen.iter().any(|s| matches!(s, Seen::Banned(..))))
        .await;
    let bans = pool.edge.bans();
    assert_eq!(bans.len(), 1);
    let (ip, until) = bans[0];
    assert!(ip.is_loopback());
    assert!(until > std::time::SystemTime::now() + Duration::from_secs(3500));
    assert_eq!(pool.stats.bans(), 1);

    // The address is refused while banned.
    let mut again = RawClient::connect(pool.addr).await;
    again.send_raw(SUBSCRIBE).await;
    again.expect_eof().await;
    assert_eq!(pool.stats.refused_banned(), 1);

    // Lifted by hand, it is served again; put back (as after a restart), refused again.
    assert!(pool.edge.unban(ip));
    let mut back = RawClient::connect(pool.addr).await;
    back.send_raw(SUBSCRIBE).await;
    back.response("1").await;
    pool.edge.restore(ip, until);
    let mut refused = RawClient::connect(pool.addr).await;
    refused.expect_eof().await;
    assert_eq!(pool.stats.refused_banned(), 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn ports_sharing_an_edge_refuse_an_address_banned_on_either() {
    let config = ServerConfig {
        edge: EdgeConfig {
            ban_for: Some(Duration::from_secs(3600)),
            exempt_loopback: false,
            ..EdgeConfig::default()
        },
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config.clone(),
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let allocator = ExtranonceAllocator::new(&[0x09, 0x00], 2).expect("allocator");
    let (events_tx, mut events) = mpsc::channel(256);
    let (_jobs, jobs_rx) = watch::channel(None);
    let mut second = Server::bind("127.0.0.1:0", config, allocator, events_tx, jobs_rx)
        .await
        .expect("bind");
    assert!(second.share_edge(&pool.edge));
    let addr = second.local_addr().expect("addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let served = tokio::spawn(second.run(async {
        stop_rx.await.ok();
    }));
    tokio::spawn(async move { while events.recv().await.is_some() {} });

    let mut before = RawClient::connect(addr).await;
    before.send_raw(SUBSCRIBE).await;
    before.response("1").await;
    // A ban put on the first port's edge (as a restart restores it) closes the second too.
    let until = std::time::SystemTime::now() + Duration::from_secs(600);
    pool.edge.restore("127.0.0.1".parse().expect("ip"), until);
    let mut refused = RawClient::connect(addr).await;
    refused.expect_eof().await;
    assert!(pool.edge.unban("127.0.0.1".parse().expect("ip")));
    let mut back = RawClient::connect(addr).await;
    back.send_raw(SUBSCRIBE).await;
    back.response("1").await;
    let _ = stop_tx.send(());
    let _ = served.await;
    pool.shutdown().await;
}

#[tokio::test]
async fn an_address_opening_connections_too_fast_is_refused() {
    let config = ServerConfig {
        edge: EdgeConfig {
            connections_per_ip: Some(Rate {
                per_second: 0.5,
                burst: 3.0,
            }),
            exempt_loopback: false,
            ..EdgeConfig::default()
        },
        ..base_config(1.0)
    };
    let pool = Pool::start(
        config,
        Box::new(|_: &ShareSubmission| ShareVerdict::Accepted),
    )
    .await;
    let mut served = Vec::new();
    for _ in 0..3 {
        let mut client = RawClient::connect(pool.addr).await;
        client.send_raw(SUBSCRIBE).await;
        client.response("1").await;
        served.push(client);
    }
    let mut fourth = RawClient::connect(pool.addr).await;
    fourth.expect_eof().await;
    assert_eq!(pool.stats.refused_too_fast(), 1);
    pool.shutdown().await;
}
