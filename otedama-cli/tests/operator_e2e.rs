//! The operator surface end to end, on real sockets: `otedama-cli serve` with the documented
//! configuration file (its addresses moved to free local ports), the API's token rules, the
//! WebSocket feed, metrics and health on their own ports, `status`, `api-token`, log files and
//! JSON logs, and a miner's own API.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::pool::{bin, temp_db, Pool};

/// The configuration users were given.
const DOCUMENTED: &str = include_str!("../../docs/config.yaml");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `serve` process whose stdout and stderr lines arrive on one channel.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Serve {
    fn start(config: &Path) -> Serve {
        let mut child = Command::new(bin())
            .args(["serve", "--config", config.to_str().expect("utf-8")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(out) as Box<dyn Read + Send>,
            Box::new(err) as Box<dyn Read + Send>,
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Serve {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
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
                Err(_) => panic!("no line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(200));
        self.seen.extend(self.lines.try_iter());
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request a browser sends from a page of `origin`: its status.
fn status_from_origin(method: &str, port: u16, path: &str, origin: &str, upgrade: bool) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let upgrade = if upgrade {
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        "Content-Length: 0\r\nConnection: close\r\n"
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\n{upgrade}\r\n"
    )
    .expect("request");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("status line");
    String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0)
}

/// One HTTP request; the status and the body.
fn http(method: &str, port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn cli(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("runs")
}

/// A WebSocket client of the API, enough to read the server's text frames.
struct Ws(TcpStream);

impl Ws {
    fn connect(port: u16) -> Ws {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            s,
            "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).expect("handshake answer");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "the accept key of RFC 6455's example: {head}"
        );
        Ws(s)
    }

    /// The next text message.
    fn next(&mut self) -> Value {
        loop {
            let mut h = [0u8; 2];
            self.0.read_exact(&mut h).expect("frame");
            assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.0.read_exact(&mut b).expect("len");
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.0.read_exact(&mut b).expect("len");
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).expect("size")];
            self.0.read_exact(&mut payload).expect("payload");
            match h[0] & 0x0f {
                1 => return json(&String::from_utf8_lossy(&payload)),
                8 => panic!("closed: {}", String::from_utf8_lossy(&payload)),
                _ => {}
            }
        }
    }

    /// Reads until a message of `kind` (and `pred`), within `timeout`.
    fn until(&mut self, kind: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(Instant::now() < deadline, "no {kind} message");
            let m = self.next();
            if m["type"] == kind && pred(&m) {
                return m;
            }
        }
    }
}

/// The documented file with its addresses on free local ports, and the given changes.
struct Setup {
    dir: PathBuf,
    stratum: u16,
    api: u16,
    metrics: u16,
    health: u16,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let db = temp_db(name);
        Setup {
            dir: db.parent().expect("dir").to_owned(),
            stratum: free_port(),
            api: free_port(),
            metrics: free_port(),
            health: free_port(),
        }
    }

    fn write(&self, name: &str, extra: &[(&str, &str)]) -> PathBuf {
        let mut text = DOCUMENTED
            .replace("0.0.0.0:3333", &format!("127.0.0.1:{}", self.stratum))
            .replace("0.0.0.0:8080", &format!("127.0.0.1:{}", self.api))
            .replace("0.0.0.0:9090", &format!("127.0.0.1:{}", self.metrics))
            .replace("0.0.0.0:8081", &format!("127.0.0.1:{}", self.health))
            .replace("threads: 0 # auto-detect", "threads: 1");
        for (from, to) in extra {
            assert!(text.contains(from), "{from}");
            text = text.replacen(from, to, 1);
        }
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write config");
        path
    }
}

#[test]
fn the_documented_configuration_serves_pool_miner_api_metrics_and_health() {
    let setup = Setup::new("operator");
    let db = setup.dir.join("pool.db");
    let log_file = setup.dir.join("logs").join("otedama.log");

    // The file as given loads; production mode on no node refuses to start the devnet.
    let as_given = setup.write("as-given.yaml", &[]);
    let printed = cli(&[
        "serve",
        "--config",
        as_given.to_str().expect("utf-8"),
        "--print-config",
    ]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let refused = cli(&[
        "serve",
        "--config",
        as_given.to_str().expect("utf-8"),
        "--seconds",
        "5",
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("pool.node: app.mode production needs a node"),
        "{err}"
    );

    let config = setup.write(
        "serve.yaml",
        &[
            (
                "  mode: \"production\"",
                &format!(
                    "  mode: \"production\"\n  log_file: {:?}",
                    log_file.to_str().expect("utf-8")
                ),
            ),
            (
                "  enable: true\n  address: \"127",
                &format!(
                    "  enable: true\n  devnet: true\n  difficulty: 0.0005\n  database: {:?}\n  address: \"127",
                    db.to_str().expect("utf-8")
                ),
            ),
        ],
    );
    let config_arg = config.to_str().expect("utf-8");
    let mut serve = Serve::start(&config);
    serve.wait_for(
        &format!(
            "otedama pool: sha256d on stratum+tcp://127.0.0.1:{}",
            setup.stratum
        ),
        Duration::from_secs(60),
    );
    serve.wait_for(
        &format!("otedama api: http://127.0.0.1:{} (api)", setup.api),
        Duration::from_secs(30),
    );
    serve.wait_for(
        &format!("otedama http: http://127.0.0.1:{} (metrics)", setup.metrics),
        Duration::from_secs(30),
    );
    serve.wait_for(
        &format!("otedama http: http://127.0.0.1:{} (health)", setup.health),
        Duration::from_secs(30),
    );
    // Devices this build cannot drive are named once, and nothing starts for them.
    serve.wait_for(
        "mining.enable_gpu: no GPU is driven",
        Duration::from_secs(5),
    );
    serve.wait_for(
        "mining.enable_asic: no ASIC is driven",
        Duration::from_secs(5),
    );

    // The built-in miner's worker shows with a hashrate above zero.
    let deadline = Instant::now() + Duration::from_secs(120);
    let worker = loop {
        let (status, body) = http("GET", setup.api, "/api/workers", None);
        assert_eq!(status, 200, "{body}");
        let workers = json(&body);
        if let Some(w) = workers.as_array().and_then(|a| a.first()) {
            if w["accepted"].as_u64().unwrap_or(0) > 0 && w["hashrate"]["1m"].as_f64() > Some(0.0) {
                break w.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no worker with shares: {workers}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let worker_name = worker["name"].as_str().expect("name").to_owned();
    assert!(worker_name.ends_with(".builtin"), "{worker}");
    let (status, body) = http("GET", setup.api, "/api/status", None);
    assert_eq!(status, 200, "{body}");
    let s = json(&body);
    assert_eq!(s["role"], "pool");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["algorithms"][0]["node"], "devnet");
    assert_eq!(s["miner"]["running"], true, "{s}");
    let (_, body) = http("GET", setup.api, "/api/stats", None);
    let stats = json(&body);
    assert!(stats["hashrate"]["5m"].as_f64() > Some(0.0), "{stats}");
    assert!(stats["network_difficulty"].as_f64() > Some(0.0), "{stats}");

    // Mutations need a valid, unexpired token; every refusal is JSON.
    let (status, body) = http("POST", setup.api, "/api/mining/stop", None);
    assert_eq!(status, 401, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("bearer"),
        "{body}"
    );
    let (status, body) = http("POST", setup.api, "/api/mining/stop", Some("otd1.1.abc"));
    assert_eq!(status, 401, "{body}");
    let expired = cli(&["api-token", "--config", config_arg, "--expiry", "1s"]);
    assert!(
        expired.status.success(),
        "{}",
        String::from_utf8_lossy(&expired.stderr)
    );
    let expired = String::from_utf8_lossy(&expired.stdout).trim().to_owned();
    let token = cli(&["api-token", "--config", config_arg]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    assert!(token.starts_with("otd1."), "{token}");
    std::thread::sleep(Duration::from_millis(2100));
    let (status, body) = http("POST", setup.api, "/api/mining/stop", Some(&expired));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");

    // A page of another site cannot throw the switch or read the feed, even with a token
    // (browsers send the Origin); the dashboard's own origin can.
    assert_eq!(
        status_from_origin(
            "POST",
            setup.api,
            "/api/mining/stop",
            "http://evil.example",
            false
        ),
        403
    );
    assert_eq!(
        status_from_origin("GET", setup.api, "/api/ws", "http://evil.example", true),
        403
    );
    let own = format!("http://127.0.0.1:{}", setup.api);
    assert_eq!(
        status_from_origin("GET", setup.api, "/api/ws", &own, true),
        101
    );

    // Stopping and starting the miner shows on the WebSocket feed.
    let mut ws = Ws::connect(setup.api);
    ws.until("share", Duration::from_secs(60), |m| m["accepted"] == true);
    let (status, body) = http("POST", setup.api, "/api/mining/stop", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["running"], false, "{body}");
    ws.until("worker_disconnected", Duration::from_secs(30), |m| {
        m["worker"] == worker_name.as_str()
    });
    let (status, body) = http("POST", setup.api, "/api/mining/start", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["running"], true, "{body}");
    ws.until("worker_connected", Duration::from_secs(30), |m| {
        m["worker"] == worker_name.as_str()
    });
    let stats = ws.until("stats", Duration::from_secs(15), |_| true);
    assert_eq!(stats["algorithm"], "sha256d");

    // Bad input gets a 4xx with a JSON error.
    for (path, code) in [
        ("/api/payments", 400),
        ("/api/payments?address=not%20an%20address", 400),
        ("/api/stats?algorithm=md5", 404),
        ("/api/nothing", 404),
    ] {
        let (status, body) = http("GET", setup.api, path, None);
        assert_eq!(status, code, "{path}: {body}");
        assert!(json(&body)["error"].is_string(), "{path}: {body}");
    }
    let payout = worker_name.trim_end_matches(".builtin");
    let (status, body) = http(
        "GET",
        setup.api,
        &format!("/api/payments?address={payout}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["address"], payout);
    let (status, body) = http("GET", setup.api, "/api/blocks", None);
    assert_eq!(status, 200, "{body}");
    assert!(json(&body).is_array());
    let (status, body) = http("GET", setup.api, "/api/openapi.json", None);
    assert_eq!(status, 200);
    let doc = json(&body);
    for path in [
        "/api/status",
        "/api/stats",
        "/api/workers",
        "/api/blocks",
        "/api/payments",
        "/api/mining/start",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Metrics and health on their own ports, not on the API's.
    let (status, metrics) = http("GET", setup.metrics, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("otedama_hashrate{algorithm=\"sha256d\",window=\"5m\"}"),
        "{metrics}"
    );
    assert_eq!(http("GET", setup.api, "/metrics", None).0, 404);
    let (status, ready) = http("GET", setup.health, "/health/ready", None);
    assert_eq!(status, 200, "{ready}");

    // `status` reads the same API.
    let api_url = format!("http://127.0.0.1:{}", setup.api);
    let out = cli(&["status", "--url", &api_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("pool http://127.0.0.1:"), "{text}");
    assert!(
        text.contains("hashrate") && text.contains(&worker_name),
        "{text}"
    );
    let out = cli(&["status", "--url", &api_url, "--json"]);
    assert!(out.status.success());
    let all = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(all["status"]["role"], "pool");
    let out = cli(&["status", "--url", "http://127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));

    let (status, lines) = serve.stop();
    assert!(status.success(), "{lines:#?}");
    // The switches are in the audit log, with the token that threw them.
    let audit = cli(&["pool", "audit", "--database", db.to_str().expect("utf-8")]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let audit = String::from_utf8_lossy(&audit.stdout);
    let id = &token[token.len() - 64..token.len() - 56];
    for action in ["mining-stop", "mining-start"] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(action) && l.contains(&format!("token {id}"))),
            "{action} by token {id}: {audit}"
        );
    }
    let logged = std::fs::read_to_string(&log_file).expect("the log file");
    assert!(logged.contains("otedama pool: sha256d"), "{logged}");
    assert!(logged.contains("shutting down"), "{logged}");
}

#[test]
fn json_logs_and_the_miners_own_api() {
    let db = temp_db("json-logs");
    let pool = Pool::start(&[
        "--threads",
        "0",
        "--difficulty",
        "0.0005",
        "--database",
        db.to_str().expect("utf-8"),
        "--log-format",
        "json",
    ]);
    // Every stdout line is one JSON object.
    let line = pool.seen.first().cloned().expect("a line");
    let object = json(&line);
    assert_eq!(object["level"], "INFO", "{line}");
    assert!(object["fields"]["message"].is_string(), "{line}");
    let api = free_port();
    let mut miner = Command::new(bin())
        .args([
            "mine",
            "-o",
            &pool.url(),
            "-u",
            "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.rig",
            "--algo",
            "sha256d",
            "--threads",
            "1",
            "--seconds",
            "60",
            "--api-address",
            &format!("127.0.0.1:{api}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("miner");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stats = loop {
        if TcpStream::connect(("127.0.0.1", api)).is_ok() {
            let (status, body) = http("GET", api, "/api/stats", None);
            if status == 200 {
                let stats = json(&body);
                if stats["hashrate"]["1m"].as_f64() > Some(0.0)
                    && stats["shares"]["accepted"].as_u64() > Some(0)
                {
                    break stats;
                }
            }
        }
        assert!(Instant::now() < deadline, "the miner's API showed no work");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(stats["algorithm"], "sha256d");
    let (status, body) = http("GET", api, "/api/status", None);
    assert_eq!(status, 200);
    let s = json(&body);
    assert_eq!(s["role"], "miner");
    assert_eq!(s["state"], "running");
    assert_eq!(s["miner"]["pool"], pool.url().as_str());
    // A miner run from the command line is not switched over the API.
    assert_eq!(http("POST", api, "/api/mining/stop", None).0, 409);
    let _ = miner.kill();
    let _ = miner.wait();
    drop(pool);
}

/// Opens a Stratum connection and says whether the pool served it: a subscribe answered,
/// rather than the connection closed unanswered (refused at the edge).
fn served(port: u16) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    if s.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    matches!(BufReader::new(s).read_line(&mut line), Ok(n) if n > 0 && line.contains("\"id\":1"))
}

/// The pool's file as this test writes it, with `limits` under `pool.limits` and the fee given.
fn reload_config(path: &Path, db: &Path, api: u16, limits: &str, fee: &str) {
    let text = format!(
        "mining:\n  algorithm: sha256d\n  threads: 0\npool:\n  database: {db:?}\n  fee_percentage: {fee}\n  limits:\n{limits}\napi:\n  enabled: true\n  listen: \"127.0.0.1:{api}\"\n  auth:\n    enabled: true\n",
    );
    std::fs::write(path, text).expect("write config");
}

#[test]
fn a_reload_puts_new_edge_limits_in_force_and_the_audit_log_names_who_asked() {
    let db = temp_db("reload");
    let dir = db.parent().expect("dir").to_owned();
    let path = dir.join("pool.yaml");
    let api = free_port();
    reload_config(&path, &db, api, "    exempt_loopback: true", "1.0");
    let path_arg = path.to_str().expect("utf-8");
    let mut pool = Pool::start(&["--config", path_arg]);
    pool.wait_for("otedama api:", Duration::from_secs(30));
    // Loopback is exempt: a burst of connections is served.
    assert!((0..6).all(|_| served(pool.port)));

    // SIGHUP: the new limits hold loopback to a burst of 2; the fee takes a restart.
    reload_config(
        &path,
        &db,
        api,
        "    exempt_loopback: false\n    connections_per_ip_per_second: 0.01\n    connection_burst: 2",
        "2.0",
    );
    let _ = Command::new("kill")
        .args(["-HUP", &pool.child.id().to_string()])
        .status();
    let line = pool.wait_for(
        "configuration reloaded by signal SIGHUP",
        Duration::from_secs(20),
    );
    assert!(
        line.contains("pool.limits.connection_burst: 500 -> 2"),
        "{line}"
    );
    assert!(
        line.contains("pool.fee_percentage: 1.0 -> 2.0 (takes a restart)"),
        "{line}"
    );
    assert!(served(pool.port));
    assert!(served(pool.port));
    assert!(
        !served(pool.port),
        "the third connection is past the new burst"
    );

    // Through the API: a token is needed, and a file unchanged since changes nothing more.
    let (status, body) = http("POST", api, "/api/config/reload", None);
    assert_eq!(status, 401, "{body}");
    let token = cli(&["api-token", "--config", path_arg]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let (status, body) = http("POST", api, "/api/config/reload", Some(&token));
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    assert_eq!(answer["applied"], serde_json::json!([]), "{answer}");
    assert_eq!(
        answer["needs_restart"],
        serde_json::json!(["pool.fee_percentage: 1.0 -> 2.0"]),
        "{answer}"
    );
    // A broken file changes nothing and says why.
    std::fs::write(&path, "pool: [").expect("write");
    let (status, body) = http("POST", api, "/api/config/reload", Some(&token));
    assert_eq!(status, 422, "{body}");
    assert!(
        !served(pool.port),
        "the limits in force are still the reloaded ones"
    );

    pool.stop();
    let audit = cli(&["pool", "audit", "--database", db.to_str().expect("utf-8")]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let audit = String::from_utf8_lossy(&audit.stdout);
    let id = &token[token.len() - 64..token.len() - 56];
    let reloads: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("config-reload"))
        .collect();
    assert_eq!(reloads.len(), 2, "{audit}");
    assert!(
        reloads.iter().any(|l| l.contains("signal SIGHUP")
            && l.contains("pool.limits.exempt_loopback: true -> false")),
        "{audit}"
    );
    assert!(
        reloads
            .iter()
            .any(|l| l.contains(&format!("token {id}")) && l.contains("pool.fee_percentage")),
        "{audit}"
    );
}
