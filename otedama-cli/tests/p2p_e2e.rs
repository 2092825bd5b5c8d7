//! Three `otedama-cli pool --p2p` processes on one `otedama-cli devnet`, each with its own
//! miner process: they agree on one sharechain, every block any of them finds pays the whole
//! window exactly as another node computes it, a killed node's miner fails over to another
//! node, and the restarted node loads its chain and catches up.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otedama_core::bitcoin::bech32::{segwit, Hrp};
use otedama_core::bitcoin::consensus::encode::deserialize_hex;
use otedama_core::bitcoin::Transaction;
use otedama_core::{AddressParams, Difficulty, DifficultyConvention};
use otedama_hash::Algorithm;
use otedama_p2p::{ChainParams, Share, ShareStore, Sharechain};
use serde_json::{json, Value};
use support::pool::{bin, temp_db, Pool};

/// The chains the pools below run: the main tier at 2 s shares with the easiest share at
/// `min_difficulty`, on a node's main chain ("node": the devnet is reached over RPC too). The
/// pools pay no one from their ledgers here (the devnet's RPC has no wallet).
fn config(min_difficulty: f64) -> String {
    format!(
        "p2p:\n  share_interval: 2\n  min_difficulty: {min_difficulty}\n  handshake_pow_bits: 8\npool:\n  payments:\n    enabled: false\n"
    )
}

/// What `config` makes of a main chain: the sharechain's rules, as every node derives them.
fn params(coin: &str, algorithm: Algorithm, min_difficulty: f64) -> ChainParams {
    let convention = match algorithm {
        Algorithm::Scrypt => DifficultyConvention::Scrypt,
        _ => DifficultyConvention::Bitcoin,
    };
    let easiest = convention.target_for(Difficulty::new(min_difficulty).expect("d"));
    let mut p = ChainParams::main(coin, algorithm, "node", easiest);
    p.share_interval_secs = 2;
    p.half_life_secs = 120;
    p
}

/// A JSON-RPC call to a devnet on `port`.
fn rpc(port: u16, method: &str, params: Value) -> Value {
    rpc_at(&format!("http://127.0.0.1:{port}/"), method, params)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

fn address(n: u8) -> String {
    segwit::encode(
        Hrp::parse("bcrt").expect("hrp"),
        segwit::VERSION_0,
        &[n; 20],
    )
    .expect("address")
}

fn rpc_at(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"id": 1, "method": method, "params": params}).to_string();
    let text = ureq::post(url)
        .send(body.as_bytes())
        .expect("devnet answers")
        .into_body()
        .read_to_string()
        .expect("body");
    let reply: Value = serde_json::from_str(&text).expect("json");
    assert!(reply["error"].is_null(), "{method}: {reply}");
    reply["result"].clone()
}

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An `otedama-cli devnet` process on a free port, once it listens.
fn devnet(args: &[&str]) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(bin())
        .args(["devnet", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("devnet starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the devnet did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, port)
}

fn wait_blocks(devnet: u16, at_least: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while rpc(devnet, "getblockcount", json!([]))
        .as_u64()
        .unwrap_or(0)
        < at_least
    {
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} blocks after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Node {
    dir: PathBuf,
    p2p: u16,
    /// Where its operator API listens, when it serves one.
    api: Option<u16>,
}

impl Node {
    fn new(name: &str, min_difficulty: f64) -> Node {
        let db = temp_db(&format!("p2p-{name}"));
        let dir = db.parent().expect("dir").to_path_buf();
        std::fs::write(dir.join("config.yaml"), config(min_difficulty)).expect("config");
        Node {
            dir,
            p2p: free_port(),
            api: None,
        }
    }

    fn start(&self, devnet: u16, payout: &str, peers: &[&Node]) -> Pool {
        let url = format!("http://127.0.0.1:{devnet}");
        let node = [
            "--node-url",
            &url,
            "--node-user",
            "devnet",
            "--node-password",
            "devnet",
        ];
        self.start_on(&node, payout, peers)
    }

    /// Starts the pool on the main-chain node `node` names (its flags).
    fn start_on(&self, node: &[&str], payout: &str, peers: &[&Node]) -> Pool {
        let path = |f: &str| self.dir.join(f).to_str().expect("utf-8").to_owned();
        let listen = format!("127.0.0.1:{}", self.p2p);
        let mut args = vec![
            "--config".to_owned(),
            path("config.yaml"),
            "--p2p".into(),
            "--p2p-listen".into(),
            listen,
        ];
        args.extend(node.iter().map(|a| (*a).to_owned()));
        args.extend([
            "--address".into(),
            payout.into(),
            "--threads".into(),
            "0".into(),
            "--database".into(),
            path("pool.db"),
            "--stats-interval".into(),
            "2".into(),
            "--api-enabled".into(),
        ]);
        match self.api {
            Some(port) => args.extend([
                "true".into(),
                "--api-listen".into(),
                format!("127.0.0.1:{port}"),
            ]),
            None => args.push("false".into()),
        }
        for peer in peers {
            args.push("--p2p-peer".into());
            args.push(format!("127.0.0.1:{}", peer.p2p));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Pool::start(&args)
    }

    fn store(&self) -> PathBuf {
        self.dir.join("sharechain.sqlite")
    }
}

fn miner(urls: &[String], user: &str, seconds: u64, log: &Path) -> Killed {
    miner_of("sha256d", urls, user, seconds, log)
}

fn miner_of(algo: &str, urls: &[String], user: &str, seconds: u64, log: &Path) -> Killed {
    let mut cmd = Command::new(bin());
    cmd.arg("mine");
    for url in urls {
        cmd.args(["-o", url]);
    }
    cmd.args(["-u", user, "--algo", algo, "--threads", "1"])
        .args(["--seconds", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("miner log"))
        .spawn()
        .map(Killed)
        .expect("miner starts")
}

/// The chain a node kept under `p`, loaded as a restarted node would.
fn load(store: &Path, p: ChainParams) -> Sharechain {
    let store = ShareStore::open(store, &p.consensus_id()).expect("store");
    let mut chain = Sharechain::new(p);
    let (loaded, skipped) = store.load_into(&mut chain, u64::MAX / 2).expect("load");
    assert!(
        loaded > 0,
        "the node kept no share under the expected chain"
    );
    assert_eq!(skipped, 0);
    chain
}

/// How many shares of `address` a pool's share log holds (read while the pool runs).
fn shares_of(db: &Path, address: &str) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return 0;
    };
    conn.query_row(
        "SELECT COUNT(*) FROM shares WHERE address = ?1",
        [address],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// The latest sharechain height a pool's status line shows.
fn height_of(pool: &mut Pool) -> Option<u64> {
    pool.seen.extend(pool.lines.try_iter());
    pool.seen.iter().rev().find_map(|l| {
        l.split("sharechain height ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

fn wait_height(pool: &mut Pool, at_least: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while height_of(pool).is_none_or(|h| h < at_least) {
        assert!(
            Instant::now() < deadline,
            "sharechain below {at_least} after {timeout:?}: {:#?}",
            pool.seen
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn three_nodes_share_one_chain_and_every_block_pays_the_window() {
    let (_devnet, devnet_port) = devnet(&["--difficulty", "0.02", "--seconds", "600"]);

    let (a, mut b, c) = (
        Node::new("a", 0.002),
        Node::new("b", 0.002),
        Node::new("c", 0.002),
    );
    b.api = Some(free_port());
    let p = params("bitcoin-regtest", Algorithm::Sha256d, 0.002);
    let payouts = [address(1), address(2), address(3)];
    let mut pa = a.start(devnet_port, &address(11), &[]);
    let mut pb = b.start(devnet_port, &address(12), &[&a]);
    let mut pc = c.start(devnet_port, &address(13), &[&a, &b]);
    for p in [&mut pb, &mut pc] {
        p.wait_for("sharechain synced", Duration::from_secs(60));
    }
    let miners = vec![
        miner(&[pa.url()], &payouts[0], 120, &a.dir.join("miner.log")),
        miner(&[pb.url()], &payouts[1], 120, &b.dir.join("miner.log")),
        // C's miner falls back to A when C goes away.
        miner(
            &[pc.url(), pa.url()],
            &payouts[2],
            120,
            &c.dir.join("miner.log"),
        ),
    ];

    // The chain grows on every node, and the main chain finds blocks.
    wait_height(&mut pa, 10, Duration::from_secs(120));
    wait_height(&mut pc, 10, Duration::from_secs(60));
    wait_blocks(devnet_port, 2, Duration::from_secs(180));

    // C dies; its miner moves to A and the others go on.
    let c_port = pc.port;
    let _ = pc.child.kill();
    let _ = pc.child.wait();
    drop(pc);
    let before = height_of(&mut pa).expect("height");
    wait_height(&mut pa, before + 5, Duration::from_secs(60));
    wait_height(&mut pb, before + 5, Duration::from_secs(60));
    // B's operator sees its node: synced, its peer A (C is gone), and a window paying miners.
    let api = format!("http://127.0.0.1:{}/api/sharechain", b.api.expect("api"));
    let view: Value = serde_json::from_str(
        &ureq::get(&api)
            .call()
            .expect("GET /api/sharechain")
            .into_body()
            .read_to_string()
            .expect("body"),
    )
    .expect("json");
    assert_eq!(view["synced"], json!(true), "{view}");
    assert!(view["height"].as_u64().unwrap_or(0) >= before, "{view}");
    assert!(
        view["peers"].as_array().is_some_and(|p| !p.is_empty()),
        "{view}"
    );
    let window = view["window"].as_array().cloned().unwrap_or_default();
    assert!(
        window
            .iter()
            .any(|o| payouts.iter().any(|p| o["address"] == json!(p))),
        "the window pays no miner: {view}"
    );
    let paid: u64 = window.iter().filter_map(|o| o["amount"].as_u64()).sum();
    assert!(paid > 0, "{view}");

    // C's miner now mines on A: A's share log holds its shares.
    let deadline = Instant::now() + Duration::from_secs(60);
    while shares_of(&a.dir.join("pool.db"), &payouts[2]) == 0 {
        assert!(
            Instant::now() < deadline,
            "C's miner did not fail over to A"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // C comes back on its own data, loads its chain and catches up.
    let mut pc = c.start(devnet_port, &address(13), &[&a, &b]);
    let loaded = pc.wait_for("shares loaded from", Duration::from_secs(30));
    let count: u64 = loaded
        .split("sharechain main, ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("count of shares loaded");
    assert!(count >= 10, "{loaded}");
    pc.wait_for("sharechain synced", Duration::from_secs(60));
    let now = height_of(&mut pa).expect("height");
    wait_height(&mut pc, now, Duration::from_secs(60));
    let _ = c_port;
    let blocks = rpc(devnet_port, "getblockcount", json!([]))
        .as_u64()
        .unwrap_or(0);
    wait_blocks(devnet_port, blocks + 2, Duration::from_secs(180));

    // Mining stops; once quiet, every node holds the same tip.
    drop(miners);
    std::thread::sleep(Duration::from_secs(4));
    for p in [pa, pb, pc] {
        let lines = p.stop();
        assert!(
            lines.iter().any(|l| l.starts_with("pool stopped:")),
            "{lines:#?}"
        );
    }
    let chains = [
        load(&a.store(), p.clone()),
        load(&b.store(), p.clone()),
        load(&c.store(), p),
    ];
    let tips: Vec<_> = chains
        .iter()
        .map(|c| c.tip().expect("tip").share.id())
        .collect();
    assert_eq!(tips[0], tips[1], "A and B disagree");
    assert_eq!(tips[0], tips[2], "A and C disagree");

    // Every main-chain block: its coinbase pays exactly the window B computes for the share
    // it is, to the unit, and the three miners are in it.
    let devnet_url = format!("http://127.0.0.1:{devnet_port}/");
    let height = rpc(devnet_port, "getblockcount", json!([]))
        .as_u64()
        .expect("height");
    let seen = check_blocks(
        &|m, p| rpc_at(&devnet_url, m, p),
        1..=height,
        &chains[1],
        &payouts,
        AddressParams::BITCOIN_REGTEST,
    );
    assert!(
        seen.blocks >= 3,
        "only {} blocks were the chain's shares",
        seen.blocks
    );
    assert_eq!(
        seen.paid.len(),
        3,
        "every miner is paid in some block: {:?}",
        seen.paid
    );
}

/// What [`check_blocks`] saw: how many blocks were checked, which of the payouts were paid in
/// any, and whose shares (which of the payouts') the blocks were.
struct Checked {
    blocks: usize,
    paid: std::collections::BTreeSet<usize>,
    found_by: std::collections::BTreeSet<usize>,
}

/// Checks every block in `heights` that is one of `chain`'s shares: its coinbase pays exactly
/// the window `chain` computes for that share, to the unit, and the whole reward.
fn check_blocks(
    rpc: &dyn Fn(&str, Value) -> Value,
    heights: std::ops::RangeInclusive<u64>,
    chain: &Sharechain,
    payouts: &[String],
    addresses: AddressParams,
) -> Checked {
    let shares: Vec<Share> = chain
        .best_chain(usize::MAX)
        .iter()
        .filter_map(|id| chain.get(id).map(|e| e.share.clone()))
        .collect();
    let scripts: Vec<_> = payouts
        .iter()
        .map(|a| addresses.script_pubkey(a).expect("script"))
        .collect();
    let mut checked = 0;
    let mut paid_miners = std::collections::BTreeSet::new();
    let mut found_by = std::collections::BTreeSet::new();
    for h in heights {
        let hash = rpc("getblockhash", json!([h]));
        let block = rpc("getblock", json!([hash, 2]));
        let coinbase: Transaction =
            deserialize_hex(block["tx"][0]["hex"].as_str().expect("hex")).expect("coinbase");
        // The share whose header is this block.
        let Some(share) = shares.iter().find(|s| {
            otedama_core::encode_hex(&otedama_core::reverse_hash(&otedama_core::sha256d(
                &s.pow_input(),
            ))) == hash.as_str().unwrap_or_default()
        }) else {
            continue;
        };
        let target = share.main_target().expect("bits");
        let expected = chain.outputs_for(&share.info, &target).expect("window");
        let paid: Vec<_> = coinbase
            .output
            .iter()
            .filter(|o| !o.script_pubkey.is_op_return())
            .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
            .collect();
        assert_eq!(paid, expected, "block at height {h}");
        assert_eq!(
            paid.iter().map(|(_, v)| v).sum::<u64>(),
            share.info.reward,
            "block at height {h} pays the whole reward"
        );
        for (i, s) in scripts.iter().enumerate() {
            if paid.iter().any(|(p, _)| p == s) {
                paid_miners.insert(i);
            }
            if share.info.payout == s.as_bytes() {
                found_by.insert(i);
            }
        }
        checked += 1;
    }
    Checked {
        blocks: checked,
        paid: paid_miners,
        found_by,
    }
}

#[test]
fn two_nodes_on_litecoind_islands_relay_their_blocks_and_pay_their_miners() {
    if !support::litecoind::available() {
        return;
    }
    // Two litecoind islands of one chain with no link between them: a block crosses only
    // through the sharechain's relay.
    let ltc = support::litecoind::Litecoind::start_islands();
    let on = |url: &str| -> Vec<String> {
        [
            "--algo",
            "scrypt",
            "--chain",
            "litecoin-regtest",
            "--node-url",
            url,
            "--node-user",
            &ltc.user,
            "--node-password",
            &ltc.password,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let (first, second) = (on(&ltc.url()), on(&ltc.island_url()));
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let (a, b) = (Node::new("ltc-a", 0.25), Node::new("ltc-b", 0.25));
    let payouts = [ltc.new_address("bech32"), ltc.new_address("bech32")];
    let start = ltc.height();
    let island_height = || {
        ltc.island_rpc("getblockcount", json!([]))
            .as_u64()
            .expect("height")
    };
    let pa = a.start_on(&args(&first), &ltc.new_address("bech32"), &[]);
    let mut pb = b.start_on(&args(&second), &ltc.new_address("bech32"), &[&a]);
    pb.wait_for("sharechain synced", Duration::from_secs(60));
    let miners = [
        miner_of(
            "scrypt",
            &[pa.url()],
            &payouts[0],
            300,
            &a.dir.join("miner.log"),
        ),
        miner_of(
            "scrypt",
            &[pb.url()],
            &payouts[1],
            300,
            &b.dir.join("miner.log"),
        ),
    ];
    // On regtest nearly every share is a block: wait for a score on both islands, enough that
    // each island has taken blocks of the other's miner (with a dozen, once in a few dozen
    // runs one had not).
    let deadline = Instant::now() + Duration::from_secs(360);
    while ltc.height() < start + 20 || island_height() < start + 20 {
        assert!(
            Instant::now() < deadline,
            "litecoind stayed at {} and {}",
            ltc.height(),
            island_height()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(miners);
    std::thread::sleep(Duration::from_secs(4));
    for p in [pa, pb] {
        p.stop();
    }
    let p = params("litecoin-regtest", Algorithm::Scrypt, 0.25);
    let (ca, cb) = (load(&a.store(), p.clone()), load(&b.store(), p));
    assert_eq!(
        ca.tip().expect("tip").share.id(),
        cb.tip().expect("tip").share.id(),
        "the nodes disagree"
    );
    let first_island = check_blocks(
        &|m, params| ltc.rpc(m, params),
        start + 1..=ltc.height(),
        &cb,
        &payouts,
        AddressParams::LITECOIN_REGTEST,
    );
    assert!(
        first_island.blocks >= 5,
        "only {} litecoind blocks were the chain's shares",
        first_island.blocks
    );
    assert_eq!(
        first_island.paid.len(),
        2,
        "both miners are paid: {:?}",
        first_island.paid
    );
    let second_island = check_blocks(
        &|m, params| ltc.island_rpc(m, params),
        start + 1..=island_height(),
        &ca,
        &payouts,
        AddressParams::LITECOIN_REGTEST,
    );
    // Each island holds blocks the other island's miner found: relayed by the sharechain.
    assert!(
        first_island.found_by.contains(&1) && second_island.found_by.contains(&0),
        "blocks did not cross: the first island holds blocks of {:?}, the second of {:?}",
        first_island.found_by,
        second_island.found_by
    );
}

/// The latest count of shares a pool's node refused, from its status line.
fn refused_of(pool: &mut Pool) -> u64 {
    pool.seen.extend(pool.lines.try_iter());
    pool.seen
        .iter()
        .rev()
        .find_map(|l| l.split("refused ").nth(1)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_peer_that_sends_a_share_without_its_work_is_refused_and_banned() {
    use otedama_p2p::{MainWork, NetConfig, NodeKey, P2pService, PeerLimits, PowPolicy};

    let (_devnet, devnet_port) = devnet(&["--seconds", "300"]);
    let honest = Node::new("honest", 0.002);
    let mut pool = honest.start(devnet_port, &address(21), &[]);

    // A rogue node on the same chain rules: its share claims the chain's target, but its
    // header was never mined. Its own node takes it on trust (a simulation policy).
    let p = params("bitcoin-regtest", Algorithm::Sha256d, 0.002);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let main = MainWork {
        header: otedama_core::BlockHeader {
            version: 0x2000_0000,
            prev_blockhash: [3; 32],
            merkle_root: [0; 32],
            time: now as u32,
            bits: otedama_core::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        height: 1,
        reward: 50 * 100_000_000,
        witness_root: None,
        branch: otedama_core::MerkleBranch::default(),
    };
    let chain = Sharechain::new(p.clone());
    let t = chain.template(&[0x51], main, now, 8).expect("template");
    let header = t.header(&[0; 8]).expect("header");
    let forged = t.finish(header, &[0; 8]);
    assert!(
        forged.check_pow(&otedama_hash::Sha256d::new()).is_err(),
        "the forged share must miss its target"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let rogue = runtime.block_on(async {
        let mut node = otedama_p2p::Node::new(
            Sharechain::new(p),
            PowPolicy::Simulated,
            PeerLimits::default(),
        );
        node.start_alone();
        let config = NetConfig {
            peers: vec![format!("127.0.0.1:{}", honest.p2p)],
            pow_bits: 8,
            ..NetConfig::default()
        };
        let rogue = P2pService::start(node, NodeKey::generate().expect("key"), config)
            .await
            .expect("rogue starts");
        rogue
            .submit(forged)
            .await
            .expect("running")
            .expect("taken on trust");
        rogue
    });

    // The honest node refuses the share, never holds it, and bans the address: the rogue
    // keeps redialling and never gets a connection again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while refused_of(&mut pool) < 1 {
        assert!(Instant::now() < deadline, "no refusal: {:#?}", pool.seen);
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..10 {
        let peers = runtime.block_on(rogue.peers()).expect("running");
        assert!(peers.is_empty(), "the banned rogue is connected: {peers:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        height_of(&mut pool),
        None,
        "the forged share entered the chain"
    );
    rogue.shutdown();
    pool.stop();
}

/// xmrig's wallet in the captured session.
const XMRIG_WALLET: &str = "44vBLPTgU6EC6mhtnoJ2HM7YnPCRmX2o6jRquBnLieg44qfmsUVgr3oJSXxZcHJfPWbnNjEftdiYVYQ23eHWb78MENjm2cC";

/// A RandomX pool on its embedded devnet mines a sharechain: two miners' shares fill the
/// window `/api/sharechain` shows, every block the devnet took commits to a coinbase paying
/// the window as the kept chain rebuilds it, and the chain reloads under the rules the
/// configuration names.
#[test]
fn a_randomx_pool_mines_a_sharechain_whose_window_each_devnet_block_pays() {
    let mut node = Node::new("rx", 2.0);
    node.api = Some(free_port());
    let wallets = [
        XMRIG_WALLET.to_owned(),
        otedama_pool::xmr_address::standard_address(&[3; 32], &[4; 32]),
    ];
    let pool_wallet = otedama_pool::xmr_address::standard_address(&[5; 32], &[6; 32]);
    let mut pool = node.start_on(
        &[
            "--algo",
            "randomx",
            "--difficulty",
            "2",
            "--devnet-difficulty",
            "20",
        ],
        &pool_wallet,
        &[],
    );
    let miners: Vec<Killed> = wallets
        .iter()
        .enumerate()
        .map(|(i, wallet)| {
            Command::new(bin())
                .args(["mine", "-o", &pool.url(), "-u", wallet])
                .args(["--algo", "randomx", "--randomx-mode", "light"])
                .args(["--threads", "1", "--seconds", "120"])
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(node.dir.join(format!("miner-{i}.log"))).expect("log"),
                )
                .spawn()
                .map(Killed)
                .expect("miner starts")
        })
        .collect();

    // The window pays both miners, the whole reward, and the devnet took blocks.
    let api = format!("http://127.0.0.1:{}/api/sharechain", node.api.expect("api"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let view = loop {
        let view: Value = ureq::get(&api)
            .call()
            .ok()
            .and_then(|r| r.into_body().read_to_string().ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let window = view["window"].as_array().cloned().unwrap_or_default();
        let paid = |w: &str| window.iter().any(|o| o["address"] == json!(w));
        pool.seen.extend(pool.lines.try_iter());
        let blocks = pool
            .seen
            .iter()
            .filter(|l| l.contains("BLOCK") && l.ends_with("accepted"))
            .count();
        if paid(&wallets[0]) && paid(&wallets[1]) && blocks >= 3 {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "{view}\n{blocks} blocks\n{:#?}",
            pool.seen
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(view["synced"], json!(true), "{view}");
    let total: u64 = view["window"]
        .as_array()
        .expect("window")
        .iter()
        .filter_map(|o| o["amount"].as_u64())
        .sum();
    assert_eq!(total, 600_000_000_000, "{view}");
    drop(miners);
    let _ = pool.child.kill();
    let _ = pool.child.wait();

    // The chain as a restarted node loads it, under the rules `config` and the pool's share
    // difficulty name.
    let easiest = DifficultyConvention::Monero.target_for(Difficulty::new(2.0).expect("d"));
    let mut p = ChainParams::main("devnet", Algorithm::RandomX, "devnet", easiest);
    p.share_interval_secs = 2;
    p.half_life_secs = 120;
    let chain = load(&node.store(), p.clone());
    let db = rusqlite::Connection::open(node.dir.join("pool.db")).expect("db");
    let accepted: Vec<String> = db
        .prepare("SELECT hash FROM blocks WHERE status != 'orphaned'")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("hashes");
    let mut checked = 0;
    for entry in chain.iter() {
        let otedama_p2p::MainProof::RandomX(proof) = &entry.share.main else {
            panic!("a randomx chain holds randomx shares");
        };
        let id = otedama_core::encode_hex(&otedama_core::monero::block_id(&proof.blob));
        if !accepted.contains(&id) {
            continue;
        }
        let target = entry.share.main_target().expect("target");
        let Some(outputs) = chain.outputs_for(&entry.share.info, &target) else {
            continue;
        };
        assert_eq!(outputs.iter().map(|(_, v)| v).sum::<u64>(), 600_000_000_000);
        let coinbase = otedama_p2p::rx_coinbase(
            &entry.share.info,
            &p.consensus_id(),
            &outputs,
            proof.reserved,
            proof.difficulty,
        );
        let blob = otedama_core::rx::RxBlob::parse(&proof.blob).expect("blob");
        assert_eq!(
            blob.tree_root,
            otedama_core::sha256d(&coinbase.to_bytes()),
            "block {id}"
        );
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no recorded block is a share of the kept chain"
    );
}
