//! The pool and the miner as separate processes, as an operator runs them: on the embedded
//! devnet for sha256d and scrypt, against litecoind regtest, killed mid-stream, and fed bad
//! input over a raw socket.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_otedama-cli")
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otedama-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("pool.db")
}

/// A running pool process whose stdout lines arrive on a channel.
struct Pool {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    seen: Vec<String>,
}

impl Pool {
    fn start(args: &[&str]) -> Pool {
        let mut child = Command::new(bin())
            .arg("pool")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pool starts");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pool = Pool {
            child,
            lines,
            port: 0,
            seen: Vec::new(),
        };
        let banner = pool.wait_for("stratum+tcp://", Duration::from_secs(60));
        let port = banner
            .split("stratum+tcp://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("listening port in the banner");
        pool.port = port;
        pool
    }

    /// Waits for a stdout line containing `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn url(&self) -> String {
        format!("stratum+tcp://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) -> Vec<String> {
        // SIGTERM: a graceful stop that flushes the share log.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.seen.extend(self.lines.try_iter());
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(db: &PathBuf, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("database");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

fn devnet_finds_blocks(algo: &str) {
    let db = temp_db(algo);
    let mut pool = Pool::start(&[
        "--algo",
        algo,
        "--threads",
        "1",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    let block = pool.wait_for("BLOCK height 1", Duration::from_secs(180));
    assert!(block.ends_with("accepted"), "{block}");
    pool.wait_for("new block to mine: height 2", Duration::from_secs(30));
    let lines = pool.stop();
    assert!(
        lines.iter().any(|l| l.starts_with("pool stopped:")),
        "{lines:#?}"
    );
    assert!(count(&db, "SELECT COUNT(*) FROM blocks WHERE status = 'accepted'") >= 1);
    assert!(count(&db, "SELECT COUNT(*) FROM shares") >= 1);
    assert!(count(&db, "SELECT COUNT(*) FROM shares WHERE is_block = 1") >= 1);
}

#[test]
fn devnet_sha256d_pool_with_its_miner_finds_blocks() {
    devnet_finds_blocks("sha256d");
}

#[test]
fn devnet_scrypt_pool_with_its_miner_finds_blocks() {
    devnet_finds_blocks("scrypt");
}

/// A raw Stratum client.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Raw {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).expect("write");
        self.writer.write_all(b"\n").expect("write");
    }

    /// Reads lines until the response with `id`, keeping notifications.
    fn response(&mut self, id: u64, notes: &mut Vec<Value>) -> Value {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read");
            assert!(n > 0, "the pool closed the connection");
            let v: Value = serde_json::from_str(&line).expect("json");
            if v["id"] == json!(id) {
                return v;
            }
            notes.push(v);
        }
    }
}

#[test]
fn bad_input_gets_the_right_answers() {
    let db = temp_db("bad-input");
    let pool = Pool::start(&["--threads", "0", "--database", db.to_str().expect("utf-8")]);
    let mut c = Raw::connect(pool.port);
    let mut notes = Vec::new();
    c.send(r#"{"id": 1, "method": "mining.subscribe", "params": ["e2e/1.0"]}"#);
    let sub = c.response(1, &mut notes);
    assert_eq!(sub["result"][2], json!(4), "extranonce2 size");

    c.send(r#"{"id": 2, "method": "mining.authorize", "params": ["not-an-address", "x"]}"#);
    let refused = c.response(2, &mut notes);
    assert_eq!(refused["error"][0], json!(24), "{refused}");
    assert!(
        refused["error"][1]
            .as_str()
            .is_some_and(|m| m.contains("not-an-address")),
        "{refused}"
    );

    c.send(r#"{"id": 3, "method": "mining.authorize", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.rig", "x"]}"#);
    assert_eq!(c.response(3, &mut notes)["result"], json!(true));
    // The job arrives after authorization.
    let job = loop {
        if let Some(n) = notes.iter().find(|n| n["method"] == "mining.notify") {
            break n.clone();
        }
        let mut line = String::new();
        c.reader.read_line(&mut line).expect("read");
        notes.push(serde_json::from_str(&line).expect("json"));
    };
    let job_id = job["params"][0].as_str().expect("job id").to_owned();
    let ntime = job["params"][7].as_str().expect("ntime").to_owned();

    let submit = |id: u64, job: &str, nonce: &str| {
        format!(
            r#"{{"id": {id}, "method": "mining.submit", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.rig", "{job}", "00000000", "{ntime}", "{nonce}"]}}"#
        )
    };
    // A random nonce is far below the share difficulty.
    c.send(&submit(4, &job_id, "12345678"));
    assert_eq!(
        c.response(4, &mut notes)["error"][0],
        json!(23),
        "low difficulty"
    );
    // The same share again, in other hex case: a duplicate.
    c.send(&submit(5, &job_id.to_uppercase(), "12345678").replace(&job_id.to_uppercase(), &job_id));
    assert_eq!(
        c.response(5, &mut notes)["error"][0],
        json!(22),
        "duplicate"
    );
    c.send(&submit(6, "nope", "12345679"));
    assert_eq!(
        c.response(6, &mut notes)["error"][0],
        json!(21),
        "unknown job"
    );
    c.send(r#"{"id": 7, "method": "mining.submit", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.rig", 7, null]}"#);
    assert_eq!(
        c.response(7, &mut notes)["error"][0],
        json!(20),
        "wrong types"
    );
    c.send(r#"{"id": "x", "method": "mining.nonsense", "params": []}"#);
    let mut line = String::new();
    c.reader.read_line(&mut line).expect("read");
    let unknown: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(unknown["id"], json!("x"), "string ids are echoed");
    drop(pool);
}

#[test]
fn config_errors_name_file_key_and_reason() {
    let dir = temp_db("config");
    let path = dir.with_file_name("bad.yaml");
    std::fs::write(&path, "pool:\n  fee_percentage: 150\n").expect("write");
    let out = Command::new(bin())
        .args(["pool", "--config", path.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml: pool.fee_percentage: 150 is not between 0 and 100"),
        "{err}"
    );
    std::fs::write(&path, "pool:\n  listen: 127.0.0.1:1\n  bogus: 1\n").expect("write");
    let out = Command::new(bin())
        .args(["pool", "--config", path.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml: pool.bogus: unknown field `bogus`"),
        "{err}"
    );
    let out = Command::new(bin())
        .args([
            "pool",
            "--config",
            path.to_str().expect("utf-8"),
            "--print-config",
        ])
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "a bad file is refused even for --print-config"
    );
    std::fs::write(
        &path,
        "mining:\n  algorithm: scrypt\npool:\n  rewards:\n    window: 2h\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args([
            "pool",
            "--config",
            path.to_str().expect("utf-8"),
            "--print-config",
            "--fee",
            "2.5",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("algorithm: scrypt")
            && printed.contains("fee_percentage: 2.5")
            && printed.contains("window: 2h"),
        "{printed}"
    );
}

#[test]
fn a_killed_pool_keeps_every_acknowledged_share() {
    let db = temp_db("kill");
    let dbs = db.to_str().expect("utf-8").to_owned();
    // A very low share difficulty: shares arrive many times a second.
    let pool = Pool::start(&[
        "--threads",
        "0",
        "--database",
        &dbs,
        "--difficulty",
        "0.00005",
    ]);
    let mut miner = Command::new(bin())
        .args([
            "mine",
            "-o",
            &pool.url(),
            "-u",
            "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.kill",
            "--algo",
            "sha256d",
        ])
        .args(["--threads", "1", "--stats-interval", "0.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("miner starts");
    std::thread::sleep(Duration::from_secs(5));
    // SIGKILL: no flush, no goodbye.
    let pid = pool.child.id();
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-TERM", &miner.id().to_string()])
        .status();
    let _ = miner.wait();
    let mut err = String::new();
    miner
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let acknowledged: i64 = err
        .lines()
        .filter_map(|l| {
            l.split(" accepted")
                .next()?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .max()
        .expect("the miner reported accepted shares");
    assert!(acknowledged > 10, "too few shares to mean anything: {err}");
    drop(pool);
    let stored = count(&db, "SELECT COUNT(*) FROM shares");
    assert!(
        stored >= acknowledged,
        "{stored} stored < {acknowledged} acknowledged"
    );
}

fn pool_on(node: &support::litecoind::Litecoind, payout: &str, db: &PathBuf) -> Pool {
    let url = node.url();
    Pool::start(&[
        "--algo",
        "scrypt",
        "--chain",
        "litecoin-regtest",
        "--node-url",
        &url,
        "--node-user",
        &node.user,
        "--node-password",
        &node.password,
        "--address",
        payout,
        "--threads",
        "1",
        "--database",
        db.to_str().expect("utf-8"),
    ])
}

fn coinbase_address(node: &support::litecoind::Litecoind, height: u64) -> Value {
    let hash = node.rpc("getblockhash", json!([height]));
    let block = node.rpc("getblock", json!([hash, 2]));
    let spk = &block["tx"][0]["vout"][0]["scriptPubKey"];
    spk.get("address")
        .cloned()
        .unwrap_or_else(|| spk["addresses"][0].clone())
}

#[test]
fn litecoind_pool_mines_blocks_through_its_own_miner_before_and_after_mweb() {
    if !support::litecoind::available() {
        return;
    }
    let node = support::litecoind::Litecoind::start();
    let payout = node.new_address("bech32");
    let db = temp_db("litecoind");
    let start = node.height();
    let mut pool = pool_on(&node, &payout, &db);
    pool.wait_for(
        &format!("BLOCK height {}", start + 1),
        Duration::from_secs(120),
    );
    pool.wait_for(
        &format!("BLOCK height {}", start + 2),
        Duration::from_secs(120),
    );
    pool.stop();
    assert!(node.height() >= start + 2);
    assert_eq!(
        coinbase_address(&node, start + 1),
        json!(payout),
        "the pool's coinbase"
    );

    // Up to the eve of MWEB activation (height 432), with the peg-in block 432 needs.
    let filler = node.new_address("bech32");
    node.rpc("generatetoaddress", json!([431 - node.height(), filler]));
    node.rpc("sendtoaddress", json!([node.new_address("mweb"), 1]));
    let mut pool = pool_on(&node, &payout, &db);
    let first = pool.wait_for("BLOCK height 432", Duration::from_secs(120));
    assert!(first.ends_with("accepted"), "{first}");
    pool.wait_for("BLOCK height 433", Duration::from_secs(120));
    pool.stop();
    assert!(node.height() >= 433);
    assert_eq!(coinbase_address(&node, 432), json!(payout));
    assert_eq!(coinbase_address(&node, 433), json!(payout));
    assert!(count(&db, "SELECT COUNT(*) FROM blocks WHERE status = 'accepted'") >= 4);
}

#[test]
fn the_miner_fails_over_to_a_backup_pool() {
    let db = temp_db("failover");
    let pool = Pool::start(&[
        "--threads",
        "0",
        "--database",
        db.to_str().expect("utf-8"),
        "--difficulty",
        "0.0005",
    ]);
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let out = Command::new(bin())
        .args([
            "mine",
            "-o",
            &format!("stratum+tcp://127.0.0.1:{dead}"),
            "-o",
            &pool.url(),
        ])
        .args([
            "-u",
            "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.backup",
            "--algo",
            "sha256d",
        ])
        .args(["--threads", "1", "--max-shares", "3", "--seconds", "120"])
        .output()
        .expect("miner runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{dead}")),
        "the dead pool was tried first: {err}"
    );
    assert!(
        err.contains("done: 3 accepted") || err.contains("done: 4 accepted"),
        "{err}"
    );
    drop(pool);
}
