//! The pool's web dashboard in a real browser: `otedama-cli serve` with the API enabled, on
//! the embedded devnet with its built-in miner, serves the page at `/`; headless Chromium,
//! driven over the W3C WebDriver protocol through `chromedriver`, shows a hashrate above
//! zero, at least one worker row and a live WebSocket, logs no error or warning to its
//! console, and leaves a screenshot (`$OTEDAMA_ARTIFACTS/dashboard.png`, else in Cargo's
//! target tmp dir).
//!
//! Needs `chromedriver` and Chromium (Debian: `chromium` and `chromium-driver`); without them
//! the test fails, it does not skip.

mod support;

use support::pool::{bin, temp_db};

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A child process killed when dropped, also when the test panics.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("--- {} ---\n{}", path.display(), lines[from..].join("\n"))
}

/// Runs `program` with stdout and stderr in `log`.
fn spawn_logged(program: &str, args: &[&str], log: &Path) -> std::io::Result<Killed> {
    let out = File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map(Killed)
}

/// An HTTP client that never goes through a proxy and returns every status as an answer.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// Sends one request; the status and the body as JSON (`Null` when it is not JSON).
fn request(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let sent = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("POST", body) => agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .send(body.unwrap_or(&json!({})).to_string().as_bytes()),
        _ => panic!("unsupported method {method}"),
    };
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        // No answer at all: status 0, the transport error as the body.
        Err(e) => (0, json!(e.to_string())),
    }
}

/// Polls `ready` every 250 ms until it is true; after `timeout` panics saying `what` did not
/// happen, with the end of `log`.
fn wait_for(what: &str, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A WebDriver session, deleted when dropped.
struct Session {
    agent: ureq::Agent,
    base: String,
}

impl Session {
    /// A W3C command on the session; its `value`, panicking on an error answer.
    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let (status, answer) = request(&self.agent, method, &url, body);
        assert_eq!(status, 200, "{method} {url}: {answer}");
        answer["value"].clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = request(&self.agent, "DELETE", &self.base, None);
    }
}

/// The pool's configuration: the devnet, one built-in miner thread, the API on `api_port`.
/// In `otedama-cli`'s schema (unknown keys are refused): the Stratum address is
/// `pool.listen`, the API's `api.enabled` and `api.listen`, the miner's `mining.threads`.
fn pool_config(stratum_port: u16, api_port: u16, db: &Path) -> String {
    format!(
        "app:
  mode: development
mining:
  algorithm: sha256d
  enable_cpu: true
  cpu:
    threads: 1
pool:
  address: \"127.0.0.1:{stratum_port}\"
  database: {db:?}
api:
  enable: true
  address: \"127.0.0.1:{api_port}\"
monitoring:
  metrics:
    enabled: true
  health:
    enabled: true
",
        db = db.to_str().expect("utf-8 temp path"),
    )
}

/// Decodes standard base64 (with or without padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:#04x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn the_dashboard_shows_the_live_pool_in_a_browser_without_console_errors() {
    let db = temp_db("dashboard");
    let dir = db.parent().expect("temp dir").to_path_buf();
    let config = dir.join("pool.yaml");
    let api_port = free_port();
    std::fs::write(&config, pool_config(free_port(), api_port, &db)).expect("write config");
    let pool_log = dir.join("pool.log");
    let mut pool = spawn_logged(
        bin(),
        &["serve", "--config", config.to_str().expect("utf-8")],
        &pool_log,
    )
    .expect("otedama-cli starts");
    let http = agent();
    let api = format!("http://127.0.0.1:{api_port}");
    let status_url = format!("{api}/api/status");
    wait_for(
        "200 from GET /api/status",
        &pool_log,
        Duration::from_secs(60),
        || {
            if let Ok(Some(exit)) = pool.0.try_wait() {
                panic!("otedama-cli exited early ({exit})\n{}", tail(&pool_log));
            }
            request(&http, "GET", &status_url, None).0 == 200
        },
    );

    let driver_port = free_port();
    let driver_log = dir.join("chromedriver.log");
    let _driver = match spawn_logged(
        "chromedriver",
        &[&format!("--port={driver_port}")],
        &driver_log,
    ) {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "chromedriver is not installed (not on PATH): this test needs Chromium and its \
             driver, on Debian `apt-get install chromium chromium-driver`"
        ),
        Err(e) => panic!("chromedriver does not start: {e}"),
    };
    let driver = format!("http://127.0.0.1:{driver_port}");
    let driver_status = format!("{driver}/status");
    wait_for(
        "ready chromedriver",
        &driver_log,
        Duration::from_secs(30),
        || {
            let (status, body) = request(&http, "GET", &driver_status, None);
            status == 200 && body["value"]["ready"] == json!(true)
        },
    );

    let mut chrome = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1280,900"
    ]});
    if Path::new("/usr/bin/chromium").exists() {
        chrome["binary"] = json!("/usr/bin/chromium");
    }
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        "goog:loggingPrefs": {"browser": "ALL"}
    }}});
    let (status, created) = request(
        &http,
        "POST",
        &format!("{driver}/session"),
        Some(&capabilities),
    );
    assert_eq!(status, 200, "new session: {created}\n{}", tail(&driver_log));
    let id = created["value"]["sessionId"]
        .as_str()
        .expect("a session id in the new session's answer");
    let session = Session {
        agent: http.clone(),
        base: format!("{driver}/session/{id}"),
    };

    session.cmd("POST", "/url", Some(&json!({"url": format!("{api}/")})));
    let probe = json!({"args": [], "script": "return {
        hashrate: document.getElementById('hashrate').textContent,
        rows: document.querySelectorAll('#workers tbody tr').length,
        ws: document.getElementById('ws-state').textContent };"});
    let mut last = Value::Null;
    let shown = wait_for_page(&session, &probe, &mut last);
    assert!(
        shown,
        "the page never showed a hashrate > 0, a worker and a live socket in 90 s; last \
         {last}\n{}",
        tail(&pool_log)
    );
    println!("dashboard: {last}");

    let png = base64_decode(
        session
            .cmd("GET", "/screenshot", None)
            .as_str()
            .expect("the screenshot as a base64 string"),
    );
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let shots = std::env::var_os("OTEDAMA_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let shot = shots.join("dashboard.png");
    std::fs::write(&shot, &png).expect("write the screenshot");
    println!("screenshot: {}", shot.display());

    let log = session.cmd("POST", "/se/log", Some(&json!({"type": "browser"})));
    let entries = log.as_array().expect("the browser log as a list");
    let bad: Vec<&Value> = entries
        .iter()
        .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
        .collect();
    assert!(
        bad.is_empty(),
        "the browser logged errors or warnings:\n{}",
        bad.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(session);
}

/// Polls the page for up to 90 s until it shows a hashrate above zero, a worker row and a
/// live socket; keeps the last probe's answer in `last`.
fn wait_for_page(session: &Session, probe: &Value, last: &mut Value) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        *last = session.cmd("POST", "/execute/sync", Some(probe));
        let hashrate = last["hashrate"]
            .as_str()
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        if hashrate > 0.0 && last["rows"].as_u64().unwrap_or(0) >= 1 && last["ws"] == json!("live")
        {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}
