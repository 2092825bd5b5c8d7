//! The pool and the miner as separate processes, as an operator runs them: on the embedded
//! devnet for sha256d and scrypt, against litecoind regtest, killed mid-stream, and fed bad
//! input over a raw socket.

mod support;

use support::pool::{bin, temp_db, Pool};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn count(db: &PathBuf, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("database");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

fn devnet_finds_blocks(algo: &str) {
    let db = temp_db(algo);
    // Easier than the defaults, so that a test sharing two cores with others still sees
    // blocks within seconds.
    let devnet_difficulty = if algo == "scrypt" { "0.5" } else { "0.01" };
    let mut pool = Pool::start(&[
        "--algo",
        algo,
        "--devnet-difficulty",
        devnet_difficulty,
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
    let acknowledged = killed_pool_acknowledged(&dbs);
    let stored = count(&db, "SELECT COUNT(*) FROM shares");
    assert!(
        stored >= acknowledged,
        "{stored} stored < {acknowledged} acknowledged"
    );
}

fn pg_count(url: &str, sql: &str) -> i64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client.query_one(sql, &[]).expect("query").get(0)
}

#[test]
fn a_killed_pool_on_postgresql_keeps_every_acknowledged_share() {
    if !support::postgres::available() {
        return;
    }
    let server = support::postgres::Postgres::start();
    let url = server.database("kill");
    let acknowledged = killed_pool_acknowledged(&url);
    let stored = pg_count(&url, "SELECT COUNT(*) FROM shares");
    assert!(
        stored >= acknowledged,
        "{stored} stored < {acknowledged} acknowledged"
    );
}

#[test]
fn the_devnet_pool_records_into_postgresql() {
    if !support::postgres::available() {
        return;
    }
    let server = support::postgres::Postgres::start();
    let url = server.database("devnet");
    let mut pool = Pool::start(&[
        "--threads",
        "1",
        "--devnet-difficulty",
        "0.01",
        "--database",
        &url,
    ]);
    pool.wait_for("BLOCK height 1", Duration::from_secs(120));
    let lines = pool.stop();
    assert!(
        lines.iter().any(|l| l.starts_with("pool stopped:")),
        "{lines:#?}"
    );
    assert!(
        pg_count(
            &url,
            "SELECT COUNT(*) FROM shares WHERE algorithm = 'sha256d'"
        ) >= 1
    );
    assert!(
        pg_count(
            &url,
            "SELECT COUNT(*) FROM blocks WHERE status = 'accepted'"
        ) >= 1
    );
}

/// Runs a pool on `database` with a miner pushing many shares a second, kills the pool with
/// SIGKILL, and returns how many shares the miner had seen acknowledged.
fn killed_pool_acknowledged(dbs: &str) -> i64 {
    // A very low share difficulty: shares arrive many times a second.
    let pool = Pool::start(&[
        "--threads",
        "0",
        "--database",
        dbs,
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
    acknowledged
}

fn pool_on(node: &support::litecoind::Litecoind, payout: &str, db: &Path) -> Pool {
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
    // The first two blocks are over 100 deep by now: confirmed, no longer merely accepted.
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM blocks WHERE status IN ('accepted', 'confirmed')"
        ) >= 4
    );
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

/// Waits for `needle` unless an earlier line already had it (the tip announcement and the
/// block line come from different tasks, in either order).
fn seen_or_wait(pool: &mut Pool, needle: &str, timeout: Duration) {
    if !pool.seen.iter().any(|l| l.contains(needle)) {
        pool.wait_for(needle, timeout);
    }
}

#[test]
fn devnet_randomx_pool_with_its_miner_finds_blocks() {
    let db = temp_db("randomx");
    let started = Instant::now();
    // Light mode hashes at about 40 H/s a thread: a block every few seconds at 150.
    let mut pool = Pool::start(&[
        "--algo",
        "randomx",
        "--threads",
        "1",
        "--randomx-mode",
        "light",
        "--devnet-difficulty",
        "150",
        "--difficulty",
        "15",
        "--stats-interval",
        "2",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    let block = pool.wait_for("BLOCK height 1", Duration::from_secs(150));
    assert!(block.ends_with("accepted"), "{block}");
    seen_or_wait(
        &mut pool,
        "new block to mine: height 2",
        Duration::from_secs(30),
    );
    let lines = pool.stop();
    assert!(
        lines.iter().any(|l| l.starts_with("pool stopped:")),
        "{lines:#?}"
    );
    let shares = count(&db, "SELECT COUNT(*) FROM shares");
    let blocks = count(&db, "SELECT COUNT(*) FROM blocks WHERE status = 'accepted'");
    eprintln!(
        "randomx devnet: {shares} shares, {blocks} blocks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(blocks >= 1);
    assert!(shares >= 1);
    assert!(count(&db, "SELECT COUNT(*) FROM shares WHERE is_block = 1") >= 1);
}

/// The first nonce from `start` whose RandomX hash of `blob` meets `target`, and the hash.
fn randomx_share(
    kernel: &otedama_hash::RandomX,
    blob: &[u8],
    target: otedama_core::MoneroTarget,
) -> (u32, [u8; 32]) {
    use otedama_hash::PowAlgorithm;
    let mut blob = blob.to_vec();
    for nonce in 0u32.. {
        blob[39..43].copy_from_slice(&nonce.to_le_bytes());
        let hash = kernel.hash(&blob).expect("hash").hash;
        if target.is_met_by(&hash) {
            return (nonce, hash);
        }
    }
    unreachable!("some nonce meets the target")
}

#[test]
fn the_randomx_pool_answers_xmrig_as_xmrig_expects() {
    let db = temp_db("randomx-xmrig");
    let pool = Pool::start(&[
        "--algo",
        "randomx",
        "--threads",
        "0",
        "--difficulty",
        "2",
        "--devnet-difficulty",
        "1000000000",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    let mut c = Raw::connect(pool.port);
    let mut notes = Vec::new();
    // A mistyped address (the last character changed) is refused.
    c.send(r#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cD","pass":"x","agent":"XMRig/6.26.0","algo":["rx/0"]}}"#);
    let refused = c.response(1, &mut notes);
    assert!(refused["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("checksum")));

    // xmrig's login line, byte for byte from shared/captures/xmrig-rx0.txt (algo list cut).
    let login = r#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC","pass":"x","agent":"XMRig/6.26.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["cn/0","cn/1","rx/0","rx/wow","argon2/chukwa","ghostrider"]}}"#;
    let mut c = Raw::connect(pool.port);
    c.send(login);
    let answer = c.response(1, &mut notes);
    assert_eq!(answer["error"], Value::Null, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["status"], json!("OK"));
    let sid = result["id"].as_str().expect("session id").to_owned();
    let job = &result["job"];
    assert_eq!(job["algo"], json!("rx/0"));
    assert_eq!(job["height"], json!(1));
    let blob = hex::decode(job["blob"].as_str().expect("blob")).expect("hex");
    assert_eq!(blob.len(), 76);
    assert_eq!(&blob[..2], &[16, 16]);
    let target_hex = job["target"].as_str().expect("target");
    assert_eq!(target_hex.len(), 8, "xmrig's 4-byte target form");
    let target = otedama_core::MoneroTarget::from_hex(target_hex).expect("target");
    let seed = hex::decode(job["seed_hash"].as_str().expect("seed")).expect("hex");
    let job_id = job["job_id"].as_str().expect("job id").to_owned();

    let kernel =
        otedama_hash::RandomX::new(&seed, otedama_hash::RandomXMode::Light, 1).expect("randomx");
    let (nonce, hash) = randomx_share(&kernel, &blob, target);
    let submit = |id: u64, nonce: u32, result: &[u8; 32]| {
        format!(
            r#"{{"id":{id},"jsonrpc":"2.0","method":"submit","params":{{"id":"{sid}","job_id":"{job_id}","nonce":"{}","result":"{}","algo":"rx/0"}}}}"#,
            hex::encode(nonce.to_le_bytes()),
            hex::encode(result)
        )
    };
    c.send(&submit(2, nonce, &hash));
    let ok = c.response(2, &mut notes);
    assert_eq!(ok["result"], json!({"status": "OK"}), "{ok}");
    // The same share again is a duplicate.
    c.send(&submit(3, nonce, &hash));
    let dup = c.response(3, &mut notes);
    assert!(dup["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Duplicate")));
    // A claimed hash that meets the target but is not the blob's hash.
    c.send(&submit(4, nonce.wrapping_add(1_000_000), &[0u8; 32]));
    let forged = c.response(4, &mut notes);
    assert!(
        forged["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not the hash")),
        "{forged}"
    );
    c.send(r#"{"id":5,"jsonrpc":"2.0","method":"keepalived","params":{"id":"x"}}"#);
    let alive = c.response(5, &mut notes);
    assert_eq!(alive["result"]["status"], json!("KEEPALIVED"));
    drop(c);
    let lines = pool.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pool stopped: 1 shares accepted")),
        "{lines:#?}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM shares"), 1);
}

#[test]
fn the_randomx_miner_fails_over_and_stops_at_max_shares() {
    let db = temp_db("randomx-miner");
    let pool = Pool::start(&[
        "--algo",
        "randomx",
        "--threads",
        "0",
        "--difficulty",
        "4",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
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
            "-u",
            "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC.rig",
            "--algo",
            "randomx",
            "--randomx-mode",
            "light",
        ])
        .args(["--threads", "1", "--max-shares", "3", "--seconds", "120"])
        .output()
        .expect("miner runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{dead}")), "{err}");
    assert!(err.contains("[mine randomx] done: 3 accepted"), "{err}");
    drop(pool);
    let conn = rusqlite::Connection::open(&db).expect("database");
    let worker: String = conn
        .query_row("SELECT worker FROM shares LIMIT 1", [], |r| r.get(0))
        .expect("a share");
    assert_eq!(worker, "rig");
}

#[test]
fn a_pool_whose_node_is_down_keeps_serving_and_retrying() {
    let db = temp_db("node-down");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{dead}");
    let mut pool = Pool::start(&[
        "--algo",
        "scrypt",
        "--chain",
        "litecoin-regtest",
        "--address",
        "rltc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnmxrc5",
        "--node-url",
        &url,
        "--node-user",
        "u",
        "--node-password",
        "p",
        "--threads",
        "0",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        pool.child.try_wait().expect("status").is_none(),
        "the pool must not exit when the node is down"
    );
    let mut c = Raw::connect(pool.port);
    let mut notes = Vec::new();
    c.send(r#"{"id": 1, "method": "mining.subscribe", "params": []}"#);
    assert!(
        c.response(1, &mut notes)["result"].is_array(),
        "miners can still connect"
    );
    let lines = pool.stop();
    assert!(
        lines.iter().any(|l| l.starts_with("pool stopped:")),
        "{lines:#?}"
    );
}

#[test]
fn a_share_for_a_job_before_the_last_block_is_stale() {
    let db = temp_db("stale");
    // The built-in miner finds devnet blocks every second or two.
    let pool = Pool::start(&[
        "--threads",
        "1",
        "--devnet-difficulty",
        "0.005",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    let mut c = Raw::connect(pool.port);
    let mut notes = Vec::new();
    c.send(r#"{"id": 1, "method": "mining.subscribe", "params": []}"#);
    c.response(1, &mut notes);
    c.send(r#"{"id": 2, "method": "mining.authorize", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.stale", "x"]}"#);
    assert_eq!(c.response(2, &mut notes)["result"], json!(true));
    let read_notify = |c: &mut Raw, notes: &mut Vec<Value>| loop {
        if let Some(i) = notes.iter().position(|n| n["method"] == "mining.notify") {
            break notes.remove(i);
        }
        let mut line = String::new();
        assert!(c.reader.read_line(&mut line).expect("read") > 0, "closed");
        notes.push(serde_json::from_str(&line).expect("json"));
    };
    let first = read_notify(&mut c, &mut notes);
    let old_job = first["params"][0].as_str().expect("job id").to_owned();
    let ntime = first["params"][7].as_str().expect("ntime").to_owned();
    // Wait for a job on a new tip: clean_jobs is set.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no new block within two minutes");
        let n = read_notify(&mut c, &mut notes);
        if n["params"][8] == json!(true) && n["params"][0] != json!(old_job) {
            break;
        }
    }
    c.send(&format!(
        r#"{{"id": 3, "method": "mining.submit", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.stale", "{old_job}", "00000000", "{ntime}", "00000001"]}}"#
    ));
    let stale = c.response(3, &mut notes);
    assert_eq!(stale["error"][0], json!(21), "{stale}");
    drop(pool);
}

#[test]
fn one_process_serves_several_algorithms_on_their_own_ports() {
    let db = temp_db("ports");
    let config = db.with_file_name("ports.yaml");
    std::fs::write(
        &config,
        format!(
            "mining:\n  threads: 1\npool:\n  database: {}\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:0\n      devnet_difficulty: 0.01\n    - algorithm: scrypt\n      listen: 127.0.0.1:0\n      devnet_difficulty: 0.5\n",
            db.display()
        ),
    )
    .expect("config");
    let mut pool = Pool::start(&["--config", config.to_str().expect("utf-8")]);
    pool.wait_for("[sha256d] BLOCK height 1", Duration::from_secs(120));
    pool.wait_for("[scrypt] BLOCK height 1", Duration::from_secs(120));
    let banners = pool
        .seen
        .iter()
        .filter(|l| l.starts_with("otedama pool:"))
        .count();
    assert_eq!(banners, 2, "{:#?}", pool.seen);
    let lines = pool.stop();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("pool stopped:"))
            .count(),
        2,
        "{lines:#?}"
    );
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM shares WHERE algorithm = 'sha256d'"
        ) >= 1
    );
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM shares WHERE algorithm = 'scrypt'"
        ) >= 1
    );
    assert!(count(&db, "SELECT COUNT(DISTINCT algorithm) FROM blocks") == 2);
}

#[test]
fn found_blocks_are_confirmed_at_maturity_and_orphaned_when_invalidated() {
    if !support::litecoind::available() {
        return;
    }
    let node = support::litecoind::Litecoind::start();
    let payout = node.new_address("bech32");
    let db = temp_db("maturity");
    let start = node.height();
    let url = node.url();
    let mut pool = Pool::start(&[
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
        &payout,
        "--threads",
        "1",
        "--maturity",
        "2",
        "--block-check-interval",
        "1",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    let first = pool.wait_for(
        &format!("BLOCK height {} ", start + 1),
        Duration::from_secs(120),
    );
    let hash = first
        .split_whitespace()
        .nth(4)
        .expect("block hash")
        .to_owned();
    pool.wait_for(
        &format!("block height {} {hash} confirmed", start + 1),
        Duration::from_secs(120),
    );
    // Take the block out of the main chain: the pool must see it leave.
    node.rpc("invalidateblock", json!([hash]));
    pool.wait_for(
        &format!("block height {} {hash} orphaned", start + 1),
        Duration::from_secs(60),
    );
    pool.stop();
    let conn = rusqlite::Connection::open(&db).expect("database");
    let status: String = conn
        .query_row("SELECT status FROM blocks WHERE hash = ?1", [&hash], |r| {
            r.get(0)
        })
        .expect("the block is recorded");
    assert_eq!(status, "orphaned");
}

/// PPS on the devnet: every accepted share is paid its expected value of the subsidy, once,
/// whether or not it found a block; the pool keeps its blocks.
#[test]
fn pps_pays_every_share_its_expected_value() {
    use otedama_core::{Difficulty, DifficultyConvention};
    let db = temp_db("pps");
    let mut pool = Pool::start(&[
        "--threads",
        "1",
        "--rewards-system",
        "pps",
        "--fee",
        "2",
        "--maturity",
        "1",
        "--block-check-interval",
        "1",
        "--database",
        db.to_str().expect("utf-8"),
    ]);
    pool.wait_for("BLOCK height", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(4));
    pool.stop();
    let conn = rusqlite::Connection::open(&db).expect("database");
    let work = |d: f64| {
        DifficultyConvention::Bitcoin
            .expected_hashes(Difficulty::new(d).expect("difficulty"))
            .round() as u128
    };
    let mut stmt = conn
        .prepare(
            "SELECT address, difficulty, network_difficulty, block_value, tx_fees FROM shares WHERE paid = 1",
        )
        .expect("query");
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .expect("rows");
    let mut paid = 0;
    for row in rows {
        let (address, d, network, value, fees) = row.expect("row");
        let subsidy = (value - fees) as u128;
        let v = subsidy * work(d) * (1_000_000 - 20_000) / (work(network) * 1_000_000);
        *expected.entry(address).or_default() += v as i64;
        paid += 1;
    }
    assert!(paid > 0, "shares were paid while the pool ran");
    let mut stmt = conn
        .prepare("SELECT address, SUM(amount) FROM ledger WHERE kind = 'shares' GROUP BY address")
        .expect("query");
    let got: BTreeMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(got, expected);
    // Blocks buried past maturity are the pool's under PPS.
    let kept: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM ledger WHERE kind = 'fee' AND memo LIKE '%kept by the pool%'",
            [],
            |r| r.get(0),
        )
        .expect("fees");
    let confirmed = count(
        &db,
        "SELECT COUNT(*) FROM blocks WHERE status = 'confirmed'",
    );
    assert_eq!(kept, confirmed);
}

#[test]
fn a_burst_of_nine_thousand_miners_connects_without_a_reset() {
    // Every simulated miner connects at the same moment, as after a pool restart: the listen
    // backlog and the accept loop must take them all, each then subscribing, authorizing and
    // getting its shares answered.
    let out = Command::new(bin())
        .args([
            "bench-pool",
            "--connections",
            "9000",
            "--seconds",
            "2",
            "--rate",
            "0.5",
            "--json",
        ])
        .output()
        .expect("bench-pool runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(report["connections"], 9000);
    assert_eq!(report["failed_connections"], 0, "{report}\n{stderr}");
    assert!(
        report["shares_accepted"].as_u64().unwrap_or(0) >= 9000,
        "every miner had a share answered: {report}"
    );
}

#[test]
fn a_banned_address_stays_banned_across_a_restart() {
    let db = temp_db("bans");
    let config = db.with_file_name("config.yaml");
    // Loopback is exempt by default (local balancers, benchmarks): not here.
    std::fs::write(
        &config,
        "pool:\n  limits:\n    exempt_loopback: false\n    ban: 1h\n",
    )
    .expect("config");
    let args = [
        "--config",
        config.to_str().expect("utf-8"),
        "--threads",
        "0",
        "--database",
        db.to_str().expect("utf-8"),
    ];
    let pool = Pool::start(&args);
    let mut c = Raw::connect(pool.port);
    let mut notes = Vec::new();
    c.send(r#"{"id": 1, "method": "mining.subscribe", "params": ["e2e/1.0"]}"#);
    c.response(1, &mut notes);
    c.send(r#"{"id": 2, "method": "mining.authorize", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.rig", "x"]}"#);
    assert_eq!(c.response(2, &mut notes)["result"], json!(true));
    let job = loop {
        if let Some(n) = notes.iter().find(|n| n["method"] == "mining.notify") {
            break n.clone();
        }
        let mut line = String::new();
        c.reader.read_line(&mut line).expect("read");
        notes.push(serde_json::from_str(&line).expect("json"));
    };
    let (job_id, ntime) = (job["params"][0].clone(), job["params"][7].clone());
    // Shares far below the difficulty, until the session bans the miner and hangs up.
    let mut closed = false;
    for nonce in 0..50u32 {
        let line = format!(
            r#"{{"id": {}, "method": "mining.submit", "params": ["bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.rig", {job_id}, "00000000", {ntime}, "{nonce:08x}"]}}"#,
            100 + nonce
        );
        if c.writer.write_all(format!("{line}\n").as_bytes()).is_err() {
            closed = true;
            break;
        }
        let mut answer = String::new();
        if c.reader.read_line(&mut answer).map_or(true, |n| n == 0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "banned and disconnected");
    // Refused: the pool hangs up at once, before or after the subscribe goes out.
    let refused = |port: u16| {
        let mut again = Raw::connect(port);
        let subscribe = b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": []}\n";
        if again.writer.write_all(subscribe).is_err() {
            return true;
        }
        let mut line = String::new();
        again.reader.read_line(&mut line).map_or(true, |n| n == 0)
    };
    // The ban is written on its own thread: give it a moment before the restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refused(pool.port) {
        assert!(
            Instant::now() < deadline,
            "the banned address is still served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // An orderly stop: the ban's write was queued before it.
    pool.stop();

    let mut pool = Pool::start(&args);
    pool.wait_for("1 stored bans still in force", Duration::from_secs(30));
    assert!(refused(pool.port), "the ban survived the restart");
    drop(pool);
    let conn = rusqlite::Connection::open(&db).expect("database");
    let reason: String = conn
        .query_row("SELECT reason FROM bans WHERE ip = '127.0.0.1'", [], |r| {
            r.get(0)
        })
        .expect("the ban is stored");
    assert!(reason.contains("bad shares"), "{reason}");
    // The ban is in the audit log, decided by the Stratum port.
    let out = Command::new(bin())
        .args(["pool", "audit", "--database", db.to_str().expect("utf-8")])
        .output()
        .expect("audit runs");
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(
        audit.contains("stratum") && audit.contains("ban") && audit.contains("127.0.0.1"),
        "{audit}"
    );
}

#[test]
fn a_miner_mines_over_tls_pinned_to_the_certificate_the_pool_made() {
    let db = temp_db("tls");
    let config = db.with_file_name("config.yaml");
    std::fs::write(&config, "pool:\n  tls:\n    listen: 127.0.0.1:0\n").expect("config");
    let args = [
        "--config",
        config.to_str().expect("utf-8"),
        "--threads",
        "0",
        "--database",
        db.to_str().expect("utf-8"),
        "--difficulty",
        "0.0005",
    ];
    let mut pool = Pool::start(&args);
    let banner = pool.wait_for("stratum+ssl://", Duration::from_secs(30));
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("stratum+ssl://"))
        .expect("tls url")
        .to_owned();
    let fingerprint = banner
        .split("sha256 fingerprint ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("fingerprint")
        .to_owned();
    assert_eq!(fingerprint.len(), 64, "{banner}");
    // Made on the first run, beside the database.
    assert!(db.with_file_name("tls-cert.pem").exists());
    let mine = |pin: &str, extra: &[&str]| {
        Command::new(bin())
            .args(["mine", "-o", &url, "--tls-fingerprint", pin])
            .args(["-u", "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.tls"])
            .args(["--algo", "sha256d", "--threads", "1"])
            .args(extra)
            .output()
            .expect("miner runs")
    };
    let out = mine(&fingerprint, &["--max-shares", "2", "--seconds", "120"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("fingerprint {fingerprint}")), "{err}");
    assert!(
        err.contains("done: 2 accepted") || err.contains("done: 3 accepted"),
        "{err}"
    );
    // Another certificate than the pinned one: nothing is mined.
    let out = mine(&"ab".repeat(32), &["--seconds", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("done: 0 accepted"), "{err}");
    assert!(err.contains("TLS"), "{err}");
    pool.stop();

    // A restart keeps the certificate, so pinned miners keep working.
    let mut pool = Pool::start(&args);
    let again = pool.wait_for("stratum+ssl://", Duration::from_secs(30));
    assert!(again.contains(&fingerprint), "{again}");
    drop(pool);
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn health_metrics_and_stats_are_served_over_http() {
    let db = temp_db("http");
    let mut pool = Pool::start(&[
        "--threads",
        "1",
        "--difficulty",
        "0.0005",
        "--database",
        db.to_str().expect("utf-8"),
        "--api-enabled",
        "true",
        "--api-listen",
        "127.0.0.1:0",
        "--metrics",
        "true",
    ]);
    let banner = pool.wait_for("otedama api: http://", Duration::from_secs(30));
    let port: u16 = banner
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("api port");
    assert_eq!(http_get(port, "/health/live").0, 200);
    // Ready once the first job is made (until then a 503 says why).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, ready) = http_get(port, "/health/ready");
        if status == 200 {
            assert!(ready.contains("\"ready\":true"), "{ready}");
            break;
        }
        assert_eq!(status, 503, "{ready}");
        assert!(ready.contains("problems"), "{ready}");
        assert!(Instant::now() < deadline, "never ready: {ready}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The built-in miner's shares show in the counters.
    let deadline = Instant::now() + Duration::from_secs(120);
    let stats = loop {
        let (status, body) = http_get(port, "/api/stats");
        assert_eq!(status, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).expect("json");
        if stats["shares"]["accepted"].as_u64().unwrap_or(0) > 0 {
            break stats;
        }
        assert!(Instant::now() < deadline, "no accepted share: {stats}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(stats["algorithm"], "sha256d");
    assert!(
        stats["connections"]["live"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    let (status, metrics) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("otedama_shares_total{algorithm=\"sha256d\",result=\"accepted\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("otedama_connections{algorithm=\"sha256d\"} "),
        "{metrics}"
    );
    for family in [
        "otedama_hashrate{algorithm=\"sha256d\",window=\"1m\"}",
        "otedama_workers{algorithm=\"sha256d\"} 1",
        "# TYPE otedama_commit_latency_seconds histogram",
        "otedama_job_latency_seconds_count{algorithm=\"sha256d\"}",
        "otedama_node_errors_total{algorithm=\"sha256d\"} 0",
    ] {
        assert!(metrics.contains(family), "{family} missing: {metrics}");
    }
    assert!(
        metrics.contains("# TYPE otedama_shares_total counter"),
        "the classic text format unless OpenMetrics is asked for: {metrics}"
    );
    // Prometheus' own checker takes the exposition.
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match promtool {
        Ok(mut child) => {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(metrics.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("promtool is missing on CI: .ci/run must install prometheus")
        }
        Err(_) => eprintln!("promtool not installed: the exposition is not checked by it"),
    }
    assert_eq!(http_get(port, "/nope").0, 404);
    drop(pool);
}
