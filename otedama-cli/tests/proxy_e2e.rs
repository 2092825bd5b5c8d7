//! Stratum v1 miners through a translator onto `otedama-cli pool`'s Stratum V2 port:
//! `otedama-cli proxy` (one extended channel, its extranonce split among the miners), and
//! the reference implementation's own translator, `translator_sv2`, as an independent peer.
//! The shares the upstream pool accepted are the ones in its share log, under the
//! translator's identity, and they find devnet blocks.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::pool::{bin, temp_db, Pool};

/// The identity every translator in these tests mines for upstream.
const ADDRESS: &str = "bcrt1qqurswpc8qurswpc8qurswpc8qurswpc8dxm0gk";

/// A devnet pool with an SV2 port, shares at difficulty 0.001 and blocks at `blocks`; its
/// `stratum2+tcp://` URL.
fn sv2_pool(name: &str, blocks: f64) -> (Pool, std::path::PathBuf, String) {
    let db = temp_db(name);
    let (pool, url) = support::pool::start_sv2(&db, 0.001, blocks);
    (pool, db, url)
}

/// Runs `otedama-cli mine` on `url` until it has `shares` accepted; its log.
fn mine(url: &str, worker: &str, shares: u64) -> String {
    let out = Command::new(bin())
        .args([
            "mine",
            "-o",
            url,
            "-u",
            worker,
            "--algo",
            "sha256d",
            "--threads",
            "1",
            "--max-shares",
            &shares.to_string(),
            "--seconds",
            "120",
        ])
        .output()
        .expect("the miner runs");
    let log =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("done: {shares} accepted")),
        "the miner got {shares} shares accepted: {log}"
    );
    log
}

/// The shares in the pool's log under a worker of [`ADDRESS`] that `worker` picks, and
/// whether one was a block.
fn logged(db: &std::path::Path, worker: impl Fn(&str) -> bool) -> (usize, bool) {
    let mut store = otedama_pool::store::open(db.to_str().expect("utf-8")).expect("the share log");
    let shares = store.shares(100_000).expect("shares");
    let ours: Vec<_> = shares
        .iter()
        .filter(|s| s.address == ADDRESS && worker(&s.worker))
        .collect();
    (ours.len(), ours.iter().any(|s| s.is_block))
}

fn number_after(line: &str, key: &str) -> u64 {
    line.split(key)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| {
            n.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

#[test]
fn v1_miners_share_one_sv2_channel_through_otedama_proxy() {
    // A block about every four shares: twenty shares find one but for a 0.3 % chance.
    let (pool, db, url) = sv2_pool("proxy", 0.004);
    // Its warnings (stderr) and progress (stdout) in one stream.
    let proxy = Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" \"$@\" 2>&1",
            bin(),
            "proxy",
            "--upstream",
            &url,
            "--listen",
            "127.0.0.1:0",
            "-u",
            &format!("{ADDRESS}.proxy"),
            "--difficulty",
            "0.001",
            "--stats-interval",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the proxy starts");
    let mut proxy = Pool::attach(proxy);
    let ready = proxy.wait_for("v1 miners on stratum+tcp://", Duration::from_secs(60));
    let downstream = ready
        .split_whitespace()
        .find(|w| w.starts_with("stratum+tcp://"))
        .expect("the downstream URL")
        .trim_end_matches(',')
        .to_owned();
    assert!(
        ready.contains("extranonce2 of 3 bytes"),
        "the pool's 4-byte extranonce: one byte numbers the miners, three are rolled: {ready}"
    );

    // Two miners at once, on one upstream channel.
    let miners: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|rig| {
            let downstream = downstream.clone();
            std::thread::spawn(move || mine(&downstream, &format!("anyone.{rig}"), 10))
        })
        .collect();
    for miner in miners {
        miner.join().expect("the miner thread");
    }

    // The pool goes away: the proxy lets its miners go and tries again.
    let lines = pool.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BLOCK height") && l.contains("accepted")),
        "shares through the proxy found devnet blocks: {lines:#?}"
    );
    proxy.wait_for("connecting again", Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status();
    proxy.wait_exit(Duration::from_secs(30));
    let done = proxy.wait_for("[proxy] done:", Duration::from_secs(5));
    let forwarded = number_after(&done, "upstream forwarded");
    let upstream_accepted = number_after(&done, "accepted");
    assert!(upstream_accepted > 0, "{done}");
    assert!(forwarded >= upstream_accepted, "{done}");
    assert!(number_after(&done, "shares valid") >= 20, "{done}");

    let (in_log, block) = logged(&db, |w| w == "proxy");
    assert_eq!(
        in_log as u64, upstream_accepted,
        "every share the pool accepted from the proxy is in its log: {done}"
    );
    assert!(block, "a proxied share was a block");
}

/// The reference translator's configuration: downstream on `port`, upstream our pool.
fn translator_config(port: u16, url: &str, worker: &str, aggregate: bool, en2: u16) -> String {
    let rest = url.trim_start_matches("stratum2+tcp://");
    let (address, key) = rest.split_once('/').expect("host:port/key");
    let (host, upstream_port) = address.rsplit_once(':').expect("host:port");
    format!(
        r#"downstream_address = "127.0.0.1"
downstream_port = {port}
max_supported_version = 2
min_supported_version = 2
downstream_extranonce2_size = {en2}
verify_payout = false
aggregate_channels = {aggregate}
supported_extensions = []

[downstream_difficulty_config]
min_individual_miner_hashrate = 10_000_000.0
shares_per_minute = 30.0
enable_vardiff = true
job_keepalive_interval_secs = 60

[[upstreams]]
address = "{host}"
port = {upstream_port}
authority_pubkey = "{key}"
user_identity = "{ADDRESS}.{worker}"
"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The shares `translator_sv2` saw accepted upstream (summed from its
/// `SubmitSharesSuccess` lines) and the errors it was sent.
fn translator_tally(lines: &[String]) -> (u64, Vec<String>) {
    let accepted = lines
        .iter()
        .filter(|l| l.contains("SubmitSharesSuccess"))
        .map(|l| number_after(l, "new_submits_accepted_count="))
        .sum();
    let errors = lines
        .iter()
        .filter(|l| l.contains("SubmitSharesError"))
        .cloned()
        .collect();
    (accepted, errors)
}

#[test]
#[ignore = "needs the reference translator: set OTEDAMA_TRANSLATOR_SV2 to its binary (scripts/otedama.sh test builds it and runs this test)"]
fn the_reference_translator_sv2_mines_on_our_sv2_port() {
    let translator = std::env::var("OTEDAMA_TRANSLATOR_SV2").expect(
        "OTEDAMA_TRANSLATOR_SV2 names the translator_sv2 binary (cargo install translator_sv2 --version 0.6.0 --locked --no-default-features)",
    );
    let (pool, db, url) = sv2_pool("translator", 0.004);
    let dir = db.parent().expect("dir").to_owned();

    // Both of its modes: every miner on one aggregated channel (its own 2-byte index in the
    // channel's extranonce; the translator names that channel `<address>.translator-proxy`),
    // and a channel per miner (`<address>.<worker>.<miner's worker>`).
    let mut runs = Vec::new();
    for (worker, aggregate, en2) in [("aggregated", true, 2u16), ("per-miner", false, 4)] {
        let port = free_port();
        let config = dir.join(format!("{worker}.toml"));
        std::fs::write(
            &config,
            translator_config(port, &url, worker, aggregate, en2),
        )
        .expect("translator config");
        let child = Command::new(&translator)
            .args(["-c", config.to_str().expect("utf-8")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("translator_sv2 starts");
        let mut process = Pool::attach(child);
        process.wait_for("listening on", Duration::from_secs(60));
        runs.push((worker, process, port));
    }
    for (worker, process, port) in &mut runs {
        mine(
            &format!("stratum+tcp://127.0.0.1:{port}"),
            &format!("anyone.{worker}"),
            5,
        );
        // Its last answers are in.
        std::thread::sleep(Duration::from_secs(2));
        process.seen.extend(process.lines.try_iter());
    }
    let lines = pool.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BLOCK height") && l.contains("accepted")),
        "shares through the reference translator found devnet blocks: {lines:#?}"
    );
    for (worker, process, _) in runs {
        let seen = process.seen.clone();
        drop(process);
        let (accepted, errors) = translator_tally(&seen);
        assert!(
            accepted > 0,
            "{worker}: no share accepted upstream: {seen:#?}"
        );
        assert!(
            errors.iter().all(|e| e.contains("stale-share")),
            "{worker}: our pool refused only stale shares: {errors:#?}"
        );
        let (in_log, _) = if worker == "aggregated" {
            logged(&db, |w| w == "translator-proxy")
        } else {
            logged(&db, |w| w.starts_with(&format!("{worker}.")))
        };
        assert_eq!(
            in_log as u64, accepted,
            "{worker}: every share our pool acknowledged to the translator is in its log"
        );
    }
}

#[test]
fn pool_ports_serve_v1_and_sv2_miners_into_one_share_log() {
    let db = temp_db("ports-sv2");
    let config = db.parent().expect("dir").join("pool.yaml");
    std::fs::write(
        &config,
        format!(
            "mining:\n  algorithm: sha256d\n  threads: 0\npool:\n  database: {db:?}\n  difficulty: 0.001\n  devnet_difficulty: 0.01\n  ports:\n    - algorithm: sha256d\n      listen: 127.0.0.1:0\n    - algorithm: sha256d\n      listen: 127.0.0.1:0\n      protocol: sv2\n"
        ),
    )
    .expect("config");
    let mut pool = Pool::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--fixed-difficulty",
    ]);
    let line = pool.wait_for("stratum2+tcp://", Duration::from_secs(60));
    let sv2 = line
        .split_whitespace()
        .find(|w| w.starts_with("stratum2+tcp://"))
        .expect("the SV2 URL")
        .to_owned();
    let v1 = pool.url();
    mine(&v1, &format!("{ADDRESS}.v1"), 3);
    mine(&sv2, &format!("{ADDRESS}.v2"), 3);
    pool.stop();
    assert_eq!(logged(&db, |w| w == "v1").0, 3);
    assert_eq!(logged(&db, |w| w == "v2").0, 3);
}

#[test]
#[ignore = "needs the reference pool: set OTEDAMA_POOL_SV2 to its binary (scripts/otedama.sh test builds it and runs this test)"]
fn our_sv2_miner_mines_on_the_reference_pool_fed_by_our_template_provider() {
    let reference = std::env::var("OTEDAMA_POOL_SV2").expect(
        "OTEDAMA_POOL_SV2 names the pool_sv2 binary (cargo install pool_sv2 --version 0.7.0 --locked --no-default-features)",
    );
    let dir = temp_db("pool-sv2").parent().expect("dir").to_owned();

    // The devnet, serving template distribution: a block about every four shares.
    let devnet = Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" \"$@\" 2>&1",
            bin(),
            "devnet",
            "--listen",
            "127.0.0.1:0",
            "--difficulty",
            "0.001",
            "--sv2-tp-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the devnet starts");
    let mut devnet = Pool::attach(devnet);
    let line = devnet.wait_for("template distribution on", Duration::from_secs(60));
    let provider = line
        .split("template distribution on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the provider's address")
        .to_owned();
    let provider_key = line
        .split("authority key ")
        .nth(1)
        .map(|rest| rest.trim_end_matches(')'))
        .expect("the provider's key")
        .to_owned();

    // The reference pool, checking our provider's certificate against its key.
    let authority = otedama_stratum::sv2::noise::AuthorityKeypair::generate().expect("key");
    let port = free_port();
    let config = dir.join("pool_sv2.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen_address = "127.0.0.1:{port}"
authority_public_key = "{public}"
authority_secret_key = "{secret}"
cert_validity_sec = 3600
coinbase_reward_script = "addr({ADDRESS})"
pool_signature = "otedama-interop"
shares_per_minute = 60.0
share_batch_size = 1

[template_provider_type.Sv2Tp]
address = "{provider}"
public_key = "{provider_key}"
"#,
            public = authority.public().to_base58(),
            secret = authority.secret_base58(),
        ),
    )
    .expect("pool_sv2 config");
    let pool = Command::new(&reference)
        .args(["-c", config.to_str().expect("utf-8")])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("pool_sv2 starts");
    let mut pool = Pool::attach(pool);
    pool.wait_for("ready to accept connections", Duration::from_secs(60));

    // Our SV2 miner on it.
    let url = format!(
        "stratum2+tcp://127.0.0.1:{port}/{}",
        authority.public().to_base58()
    );
    mine(&url, &format!("{ADDRESS}.ours"), 60);

    // The blocks the reference pool built on our templates, accepted by the devnet.
    let block = devnet.wait_for("[devnet tp] BLOCK height", Duration::from_secs(30));
    assert!(block.ends_with("accepted"), "{block}");
    pool.seen.extend(pool.lines.try_iter());
    assert!(
        pool.seen.iter().any(|l| l.contains("Block Found")),
        "the reference pool saw a block: {:#?}",
        pool.seen
    );
    drop(pool);
    let _ = Command::new("kill")
        .args(["-TERM", &devnet.child.id().to_string()])
        .status();
    devnet.wait_exit(Duration::from_secs(30));
    let stopped = devnet.wait_for("devnet stopped at height", Duration::from_secs(5));
    assert!(
        number_after(&stopped, "at height") >= 1,
        "the devnet's chain grew: {stopped}"
    );
}
