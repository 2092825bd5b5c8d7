//! Memory held per idle connection by the tokio server.
//!
//! The miners run in a child process (this same test binary, re-run with an environment
//! variable), so the resident set measured here is the server's alone: tasks, sessions,
//! sockets' user-space state, the allocator's bookkeeping. Each miner subscribes and
//! authorizes, then stays silent.
//!
//! `idle_connections_memory` runs 1,000 connections and bounds the cost; the 10,000-connection
//! figure comes from the ignored test:
//!
//! ```sh
//! cargo test -p otedama-stratum --all-features --release --test idle_memory -- --ignored --nocapture
//! ```
#![cfg(all(feature = "tokio", target_os = "linux"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use otedama_stratum::server::{Server, ServerConfig, ServerEvent};
use otedama_stratum::ExtranonceAllocator;
use tokio::sync::{mpsc, watch};

const CLIENT_ADDR: &str = "OTEDAMA_IDLE_CLIENT_ADDR";
const CLIENT_COUNT: &str = "OTEDAMA_IDLE_CLIENT_COUNT";

/// The resident set of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .expect("VmRSS")
        * 1024
}

/// Opens `n` connections to the server, subscribes and authorizes on each, waits for the
/// answers, and returns the server's resident growth per connection.
async fn measure(n: usize) -> f64 {
    let allocator = ExtranonceAllocator::new(&[], 4).expect("allocator");
    let (events_tx, mut events) = mpsc::channel(4096);
    let (_jobs, jobs_rx) = watch::channel(None);
    let config = ServerConfig {
        max_connections: n + 16,
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0", config, allocator, events_tx, jobs_rx)
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let stats = server.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async {
        stop_rx.await.ok();
    }));
    let authorized = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&authorized);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let ServerEvent::Authorize { conn, token, .. } = event {
                conn.authorize_result(token, Ok(()));
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    // Warm up the runtime and the allocator with a few connections first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss();

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_miners", "--nocapture", "--test-threads=1"])
        .env(CLIENT_ADDR, addr.to_string())
        .env(CLIENT_COUNT, n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("stdout");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        // libtest prints the line after "test child_miners ... ". Keep draining afterwards
        // so the child never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("miners ready") {
                if let Some(tx) = ready_tx.take() {
                    tx.send(()).ok();
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(120), ready_rx)
        .await
        .expect("the child opened its connections in time")
        .expect("the child opened its connections");
    // Every connection served and authorized.
    for _ in 0..1000 {
        if stats.live() == n && authorized.load(std::sync::atomic::Ordering::Relaxed) == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.live(), n);
    assert_eq!(authorized.load(std::sync::atomic::Ordering::Relaxed), n);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss();
    let per_connection = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "{n} idle connections: server RSS {:.1} MiB -> {:.1} MiB, {:.0} bytes per connection",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per_connection
    );

    drop(child.stdin.take());
    child.wait().expect("child exits");
    stop_tx.send(()).ok();
    run.await.expect("server stops");
    per_connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_memory() {
    let per_connection = measure(1000).await;
    assert!(
        per_connection < 16.0 * 1024.0,
        "{per_connection:.0} bytes per idle connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opens 10,000 sockets; run by hand for the figure"]
async fn ten_thousand_idle_connections() {
    let n = std::env::var("OTEDAMA_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let per_connection = measure(n).await;
    assert!(per_connection < 16.0 * 1024.0);
}

/// Not a test of its own: the miners of the tests above, run in a child process. Without
/// the environment variables it does nothing.
#[test]
fn child_miners() {
    let (Ok(addr), Ok(count)) = (std::env::var(CLIENT_ADDR), std::env::var(CLIENT_COUNT)) else {
        return;
    };
    let count: usize = count.parse().expect("count");
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        let lines = format!(
            "{{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"idle/1.0\"]}}\n{{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"addr.rig{i}\", \"x\"]}}\n"
        );
        s.write_all(lines.as_bytes()).expect("write");
        sockets.push(s);
    }
    // Read both answers on every socket so the server has nothing left to write.
    for s in &mut sockets {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while seen.iter().filter(|b| **b == b'\n').count() < 2 {
            let n = s.read(&mut buf).expect("answers");
            assert!(n > 0, "server closed");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    println!("miners ready");
    std::io::stdout().flush().expect("flush");
    // Stay connected until the parent closes our stdin.
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).ok();
}
