//! A monerod regtest node for tests: fixed difficulty, bound to 127.0.0.1 on free ports, in
//! a temporary directory, stopped when dropped.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A real, mainnet-format address whose keys are curve points (monerod builds its coinbase
/// from them): the one xmrig logged in with in `shared/captures/xmrig-rx0.txt`.
pub const POOL_ADDRESS: &str =
    "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

/// A running regtest daemon.
pub struct Monerod {
    pub rpc_port: u16,
    pub dir: PathBuf,
    pid: Option<u32>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether monerod is installed; on CI (CI=true) its absence is a failure, not a skip.
pub fn available() -> bool {
    let found = Command::new("monerod")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("monerod is not installed on CI; .ci/run must install it (apt-get install monero)");
    }
    if !found {
        eprintln!("monerod not installed: skipping (install it with apt-get install monero)");
    }
    found
}

impl Monerod {
    /// Starts a daemon whose blocks must meet `difficulty`, and waits until it answers.
    pub fn start(difficulty: u64) -> Monerod {
        let dir = std::env::temp_dir().join(format!(
            "otedama-xmr-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let rpc_port = free_port();
        let p2p_port = free_port();
        let pidfile = dir.join("monerod.pid");
        let status = Command::new("monerod")
            // RandomX without its 2 GiB dataset (flag 4, full memory, masked off): the daemon
            // checks blocks with the 256 MiB cache, as a pool does, and a seed change costs
            // it a second, not minutes of dataset building on a busy 2-core machine.
            .env("MONERO_RANDOMX_UMASK", "4")
            .args(["--regtest", "--offline", "--keep-fakechain"])
            .arg(format!("--fixed-difficulty={difficulty}"))
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .args(["--rpc-bind-ip=127.0.0.1", "--p2p-bind-ip=127.0.0.1"])
            .arg(format!("--rpc-bind-port={rpc_port}"))
            .arg(format!("--p2p-bind-port={p2p_port}"))
            .args([
                "--no-igd",
                "--no-zmq",
                "--disable-dns-checkpoints",
                "--check-updates=disabled",
                "--non-interactive",
                "--detach",
            ])
            .arg(format!("--log-file={}", dir.join("monerod.log").display()))
            .arg(format!("--pidfile={}", pidfile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("monerod starts");
        assert!(status.success(), "monerod --detach failed: {status}");
        let mut node = Monerod {
            rpc_port,
            dir,
            pid: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(count) = node.try_rpc("get_block_count", json!({})) {
                if count["count"].as_u64().is_some() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "monerod never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        node.pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        node
    }

    /// The daemon's RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    fn post(&self, path: &str, body: Value) -> Option<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        let text = agent
            .post(&format!("{}{path}", self.url()))
            .send(body.to_string().as_bytes())
            .ok()?
            .into_body()
            .read_to_string()
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    fn try_rpc(&self, method: &str, params: Value) -> Option<Value> {
        let v = self.post(
            "/json_rpc",
            json!({"jsonrpc": "2.0", "id": "0", "method": method, "params": params}),
        )?;
        v.get("result").cloned()
    }

    /// Calls a JSON-RPC method; panics on an error answer.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params.clone())
            .unwrap_or_else(|| panic!("monerod {method} {params} failed"))
    }

    /// The tip's height.
    pub fn height(&self) -> u64 {
        self.rpc("get_block_count", json!({}))["count"]
            .as_u64()
            .expect("count")
            - 1
    }

    /// The header of the block with id `hash` (hex), `None` when the daemon does not know it.
    pub fn header(&self, hash: &str) -> Option<Value> {
        self.try_rpc("get_block_header_by_hash", json!({ "hash": hash }))
            .map(|r| r["block_header"].clone())
    }

    /// Mines `n` blocks paying `address` with the daemon's own miner (quick only at a low
    /// fixed difficulty).
    pub fn generate(&self, n: u64, address: &str) {
        let mut left = n;
        while left > 0 {
            // In steps that each answer well within a call's timeout.
            let step = left.min(100);
            let v = self.rpc(
                "generateblocks",
                json!({ "amount_of_blocks": step, "wallet_address": address }),
            );
            assert_eq!(v["status"], "OK", "{v}");
            left -= step;
        }
    }

    /// Takes the top `n` blocks off the chain (they are forgotten, as after a reorganisation
    /// that replaced them).
    pub fn pop_blocks(&self, n: u64) {
        let v = self
            .post("/pop_blocks", json!({ "nblocks": n }))
            .expect("pop_blocks answers");
        assert_eq!(v["status"], "OK", "{v}");
    }
}

impl Drop for Monerod {
    fn drop(&mut self) {
        let _ = self.post("/stop_daemon", json!({}));
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some(pid) = self.pid {
            while std::path::Path::new(&format!("/proc/{pid}")).exists()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
