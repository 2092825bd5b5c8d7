//! A Stratum v1 server from `otedama-stratum` alone: the crate speaks the protocol, the
//! embedder decides who may mine and what a share is worth.
//!
//! The server listens on a loopback port, a plain TCP client subscribes and authorizes as a
//! miner would, the server announces a job, and the program stops. Swap the authorization and
//! share decisions for your own pool's (or for `otedama-pool`'s engine).
//!
//! ```sh
//! cargo run -p otedama-examples --example stratum_server
//! ```

use std::sync::Arc;
use std::time::Duration;

use otedama_stratum::server::{Server, ServerConfig, ServerEvent};
use otedama_stratum::{ExtranonceAllocator, JobAnnouncement, Notify, ShareVerdict};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (events_tx, mut events) = mpsc::channel(64);
    let job = JobAnnouncement {
        notify: Notify {
            job_id: "1".into(),
            prevhash: [0; 32],
            coinb1: vec![1, 0, 0, 0],
            coinb2: vec![0xff, 0xff, 0xff, 0xff],
            merkle_branch: Vec::new(),
            version: 0x2000_0000,
            nbits: 0x207f_ffff,
            ntime: 1_700_000_000,
            clean_jobs: true,
        },
        height: 1,
    };
    let (_jobs_tx, jobs_rx) = watch::channel(Some(Arc::new(job)));
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::default(),
        ExtranonceAllocator::new(&[], 4)?,
        events_tx,
        jobs_rx,
    )
    .await?;
    let address = server.local_addr()?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let serving = tokio::spawn(server.run(async move {
        let _ = stop_rx.changed().await;
    }));
    println!("stratum server on {address}");

    // The embedder's decisions: every worker named "demo..." may mine; every share is
    // accepted (a real pool validates it, e.g. with otedama-pool's engine).
    let decisions = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ServerEvent::Authorize {
                    conn,
                    token,
                    username,
                    ..
                } => {
                    let verdict = if username.starts_with("demo") {
                        Ok(())
                    } else {
                        Err(format!("unknown worker {username}"))
                    };
                    conn.authorize_result(token, verdict);
                }
                ServerEvent::Share { conn, share } => {
                    conn.share_result(share.token, ShareVerdict::Accepted)
                }
                _ => {}
            }
        }
    });

    // A miner, byte for byte as cpuminer speaks.
    let stream = TcpStream::connect(address).await?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"example/1.0\"]}\n\
              {\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"demo.rig\",\"x\"]}\n",
        )
        .await?;
    let mut lines = BufReader::new(read).lines();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("\"method\":\"mining.notify\""))
    {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .ok_or("the server closed the connection")?;
        println!("server: {line}");
        seen.push(line);
    }
    assert!(seen
        .iter()
        .any(|l| l.contains("\"id\":2") && l.contains("true")));
    let _ = stop_tx.send(true);
    serving.await?;
    decisions.abort();
    Ok(())
}
