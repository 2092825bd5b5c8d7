//! A pair of litecoind regtest nodes for tests: the first with a wallet, the second only its
//! peer (getblocktemplate refuses to work without one). Both bind to 127.0.0.1 on free ports,
//! live in a temporary directory, and stop when dropped.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running regtest pair.
pub struct Litecoind {
    nodes: Vec<(Child, PathBuf, u16)>,
    pub rpc_port: u16,
    pub dir: PathBuf,
    pub user: String,
    pub password: String,
    p2p_ports: Vec<u16>,
    island: Option<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether litecoind is installed; on CI (CI=true) its absence is a failure, not a skip.
pub fn available() -> bool {
    let found = Command::new("litecoind")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("litecoind is not installed on CI; .ci/run must install it");
    }
    if !found {
        eprintln!("litecoind not installed: skipping (install it with apt-get install litecoind)");
    }
    found
}

impl Litecoind {
    /// Starts the pair, mines one block to leave initial sync, and creates wallet `w`.
    pub fn start() -> Litecoind {
        let dir = std::env::temp_dir().join(format!(
            "otedama-ltc-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ (free_port() as u128)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let user = "otedama".to_owned();
        let password = "regtest-password".to_owned();
        let p2p_a = free_port();
        let rpc_a = free_port();
        let mut ltc = Litecoind {
            nodes: Vec::new(),
            rpc_port: rpc_a,
            dir: dir.clone(),
            user,
            password,
            p2p_ports: Vec::new(),
            island: None,
        };
        ltc.spawn("a", rpc_a, p2p_a, &[]);
        let rpc_b = free_port();
        let p2p_b = free_port();
        ltc.spawn(
            "b",
            rpc_b,
            p2p_b,
            &[
                format!("-connect=127.0.0.1:{p2p_a}"),
                "-disablewallet=1".into(),
            ],
        );
        ltc.wait_ready(rpc_a);
        ltc.wait_ready(rpc_b);
        ltc.rpc("createwallet", json!(["w"]));
        let address = ltc.new_address("bech32");
        ltc.rpc("generatetoaddress", json!([1, address]));
        let deadline = Instant::now() + Duration::from_secs(60);
        while ltc.rpc("getconnectioncount", json!([])).as_u64() == Some(0) {
            assert!(
                Instant::now() < deadline,
                "the regtest nodes never connected"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        ltc
    }

    /// [`Litecoind::start`] and a second pair that shares its first block and is then cut
    /// off from it: two islands of one chain, whose blocks cross only if something carries
    /// them across. [`Litecoind::url`] and [`Litecoind::rpc`] reach the first island;
    /// [`Litecoind::island_url`] and [`Litecoind::island_rpc`] the second.
    pub fn start_islands() -> Litecoind {
        let mut ltc = Litecoind::start();
        let (rpc_c, p2p_c) = (free_port(), free_port());
        let (rpc_d, p2p_d) = (free_port(), free_port());
        ltc.spawn("c", rpc_c, p2p_c, &[]);
        ltc.wait_ready(rpc_c);
        let a_p2p = ltc.p2p_ports[0];
        let bridge = format!("127.0.0.1:{a_p2p}");
        ltc.rpc_on(rpc_c, "addnode", json!([bridge, "onetry"]));
        let deadline = Instant::now() + Duration::from_secs(60);
        while ltc.rpc_on(rpc_c, "getblockcount", json!([])).as_u64() != Some(ltc.height()) {
            assert!(
                Instant::now() < deadline,
                "the second island never synced: {} {}",
                ltc.rpc_on(rpc_c, "getpeerinfo", json!([])),
                ltc.rpc_on(rpc_c, "getblockchaininfo", json!([]))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        ltc.rpc_on(rpc_c, "disconnectnode", json!([bridge]));
        // Its own peer only now: a node in initial sync asks one peer for headers, and an
        // empty one would stall it.
        ltc.spawn(
            "d",
            rpc_d,
            p2p_d,
            &[
                format!("-connect=127.0.0.1:{p2p_c}"),
                "-disablewallet=1".into(),
            ],
        );
        ltc.wait_ready(rpc_d);
        loop {
            let peers = ltc.rpc_on(rpc_c, "getpeerinfo", json!([]));
            let ports: Vec<String> = peers
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["addr"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let bridged = ports.iter().any(|a| a.ends_with(&format!(":{a_p2p}")));
            if !bridged && !ports.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the islands stayed bridged: {ports:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        ltc.island = Some(rpc_c);
        ltc
    }

    /// The second island's RPC URL ([`Litecoind::start_islands`]).
    pub fn island_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.island.expect("islands"))
    }

    /// Calls the second island's node, panicking on error.
    pub fn island_rpc(&self, method: &str, params: Value) -> Value {
        self.rpc_on(self.island.expect("islands"), method, params)
    }

    fn rpc_on(&self, port: u16, method: &str, params: Value) -> Value {
        self.try_rpc_on(port, method, params)
            .unwrap_or_else(|e| panic!("{method} on {port}: {e}"))
    }

    fn spawn(&mut self, name: &str, rpc: u16, p2p: u16, extra: &[String]) {
        self.p2p_ports.push(p2p);
        let datadir = self.dir.join(name);
        std::fs::create_dir_all(&datadir).expect("datadir");
        let child = Command::new("litecoind")
            .args([
                "-regtest",
                "-server=1",
                &format!("-rpcuser={}", self.user),
                &format!("-rpcpassword={}", self.password),
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-bind=127.0.0.1",
                "-listen=1",
                "-discover=0",
                "-dnsseed=0",
                "-upnp=0",
                "-fallbackfee=0.0001",
                // Every pool process a test starts leaves a long-poll parked in the node until
                // the next block; the default of 4 RPC threads runs out after a few restarts.
                "-rpcthreads=16",
                "-printtoconsole=0",
                &format!("-datadir={}", datadir.display()),
                &format!("-pid={}", datadir.join("litecoind.pid").display()),
                &format!("-rpcport={rpc}"),
                &format!("-port={p2p}"),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("litecoind starts");
        self.nodes.push((child, datadir, rpc));
    }

    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .try_rpc_on(port, "getblockchaininfo", json!([]))
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "litecoind on port {port} never answered"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The first node's RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    fn try_rpc_on(&self, port: u16, method: &str, params: Value) -> Result<Value, String> {
        self.try_rpc_at(&format!("http://127.0.0.1:{port}"), method, params)
    }

    fn try_rpc_at(&self, url: &str, method: &str, params: Value) -> Result<Value, String> {
        let body =
            json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}).to_string();
        let token = base64(&format!("{}:{}", self.user, self.password));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(url)
            .header("Authorization", &format!("Basic {token}"))
            .send(body.as_bytes())
            .map_err(|e| e.to_string())?;
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if !v["error"].is_null() {
            return Err(v["error"].to_string());
        }
        Ok(v["result"].clone())
    }

    /// Calls the first node's wallet-aware RPC, panicking on error.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Calls the first node, returning its error.
    pub fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let wallet_methods = [
            "getnewaddress",
            "sendtoaddress",
            "getbalance",
            "generatetoaddress",
            "listunspent",
            "listtransactions",
            "gettransaction",
            "sendmany",
        ];
        if wallet_methods.contains(&method) {
            self.try_rpc_at(&format!("{}/wallet/w", self.url()), method, params)
        } else {
            self.try_rpc_at(&self.url(), method, params)
        }
    }

    /// A new wallet address of `kind` (bech32, legacy, mweb, ...).
    pub fn new_address(&self, kind: &str) -> String {
        self.rpc("getnewaddress", json!(["", kind]))
            .as_str()
            .expect("address")
            .to_owned()
    }

    /// The current height.
    pub fn height(&self) -> u64 {
        self.rpc("getblockcount", json!([]))
            .as_u64()
            .expect("height")
    }

    /// The data directory of the first node.
    pub fn datadir(&self) -> &Path {
        &self.nodes[0].1
    }
}

impl Drop for Litecoind {
    fn drop(&mut self) {
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.2).collect();
        for port in ports {
            let _ = self.try_rpc_on(port, "stop", json!([]));
        }
        for (child, _, _) in &mut self.nodes {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn base64(input: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() {
                TABLE[((n >> shift) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
