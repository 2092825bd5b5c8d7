//! The recommended high-availability layout, end to end: two `otedama-cli pool` processes
//! (A and B) on one PostgreSQL database and one litecoind (regtest), and one miner given both
//! (`-o A -o B`). It proves that:
//! - while A holds the payer claim, A pays and B, on the same database, does not;
//! - A killed with SIGKILL mid-stream, the miner fails over to B, whose shares keep being
//!   accepted, and every share the miner saw acknowledged, by either pool, is in the database;
//! - B takes the payer claim over once A's lapses (settling first any payment A left open),
//!   and pays;
//! - across both pools nothing is paid twice: each payment has its own txid, a real wallet
//!   transaction paying exactly the recorded outputs; the wallet sent the miner nothing else;
//!   each payment's ledger debits belong to that one payment; each block is credited once; no
//!   balance ever goes negative, and the balances are the ledger's sums.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::litecoind::{self, Litecoind};
use support::pool::{bin, Pool};

/// Rows of `sql` on `url`, every column `CAST(... AS TEXT)`.
fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                .collect()
        })
        .collect()
}

fn count(url: &str, sql: &str) -> i64 {
    rows(url, &format!("SELECT CAST(({sql}) AS TEXT)"))[0][0]
        .parse()
        .expect("a count")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock")
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A pool on its own fixed port, as operators run them: the payer claim names a pool by host
/// and listen address.
fn start_pool(node: &Litecoind, database: &str, payout: &str) -> Pool {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = node.url();
    let child = Command::new(bin())
        .args(["pool", "--listen", &listen, "--algo", "scrypt"])
        .args(["--chain", "litecoin-regtest", "--node-url", &url])
        .args(["--node-user", &node.user, "--node-password", &node.password])
        .args([
            "--address",
            payout,
            "--database",
            database,
            "--threads",
            "0",
        ])
        .args([
            "--difficulty",
            "0.5",
            "--fixed-difficulty",
            "--maturity",
            "2",
        ])
        .args(["--block-check-interval", "1", "--payments-enabled", "true"])
        .args(["--payment-threshold", "1", "--payment-interval", "5s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pool starts");
    let mut pool = Pool::attach(child);
    pool.port = port;
    pool.wait_for(&format!("stratum+tcp://{listen}"), Duration::from_secs(60));
    pool
}

/// The outputs of wallet transaction `txid`, smallest unit, by address.
fn tx_outputs(node: &Litecoind, txid: &str) -> BTreeMap<String, i64> {
    let tx = node.rpc("gettransaction", json!([txid]));
    let decoded = node.rpc("decoderawtransaction", json!([tx["hex"]]));
    let mut outputs = BTreeMap::new();
    for out in decoded["vout"].as_array().expect("outputs") {
        let spk = &out["scriptPubKey"];
        let address = spk.get("address").unwrap_or(&spk["addresses"][0]);
        if let Some(a) = address.as_str() {
            let value = (out["value"].as_f64().expect("value") * 1e8).round() as i64;
            outputs.insert(a.to_owned(), value);
        }
    }
    outputs
}

#[test]
fn two_pools_on_one_database_fail_over_and_pay_once() {
    if !litecoind::available() || !support::postgres::available() {
        return;
    }
    let started = Instant::now();
    let node = Litecoind::start();
    let server = support::postgres::Postgres::start();
    let db = server.database("ha");
    let payout = node.new_address("bech32");
    let alice = node.new_address("bech32");
    let filler = node.new_address("bech32");
    // A hundred mature coinbases in the wallet: the payments need no wait for the pool's own.
    node.rpc("generatetoaddress", json!([200, filler]));

    // A first, holding the payer claim; then B on the same database and node.
    let mut a = start_pool(&node, &db, &payout);
    let a_port = format!(":{}", a.port);
    wait_until("A's payer claim", Duration::from_secs(30), || {
        rows(&db, "SELECT owner FROM payers WHERE coin = 'scrypt'")
            .iter()
            .any(|r| r[0].ends_with(&a_port))
    });
    let mut b = start_pool(&node, &db, &payout);
    let (a_url, b_port) = (a.url(), format!(":{}", b.port));
    let mut miner = Command::new(bin())
        .args(["mine", "-o", &a_url, "-o", &b.url(), "--algo", "scrypt"])
        .args(["--threads", "1", "-u", &format!("{alice}.ha")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("miner starts");
    let mut stderr = miner.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // On regtest every share is a block: A accepts the miner's shares, credits them, pays.
    let found = format!("by {alice}: accepted");
    a.wait_for(&found, Duration::from_secs(60));
    let paid_by_a = a.wait_for(": sent ", Duration::from_secs(120));
    b.seen.extend(b.lines.try_iter());
    assert!(
        b.seen
            .iter()
            .any(|l| l.contains("another pool on this database pays scrypt")),
        "B defers to A's claim: {:#?}",
        b.seen
    );
    assert!(
        !b.seen.iter().any(|l| l.contains(": sent ")),
        "{:#?}",
        b.seen
    );

    // A dies without a goodbye; the miner must carry on at B.
    let _ = Command::new("kill")
        .args(["-KILL", &a.child.id().to_string()])
        .status();
    let _ = a.child.wait();
    let killed_ms = now_ms();
    let after_kill =
        format!("SELECT COUNT(*) FROM shares WHERE address = '{alice}' AND time_ms > {killed_ms}");
    wait_until("shares accepted by B", Duration::from_secs(60), || {
        count(&db, &after_kill) >= 3
    });
    b.wait_for(&found, Duration::from_secs(10));
    // A's claim lapses (a minute at most); B settles what A left open and pays.
    let paid_by_b = b.wait_for(": sent ", Duration::from_secs(150));

    let _ = Command::new("kill")
        .args(["-TERM", &miner.id().to_string()])
        .status();
    let _ = miner.wait();
    let err = reader.join().expect("miner's stderr");
    let b_lines = b.stop();
    drop(a);
    let done = err
        .lines()
        .find_map(|l| l.split("] done: ").nth(1))
        .unwrap_or_else(|| panic!("the miner's done line: {err}"));
    let acknowledged: i64 = done
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    eprintln!("A: {paid_by_a}\nB: {paid_by_b}\nminer: done: {done}");

    // (a) Nothing acknowledged was lost across the kill; (b) both pools stored shares.
    let stored = count(
        &db,
        &format!("SELECT COUNT(*) FROM shares WHERE address = '{alice}'"),
    );
    assert!(
        stored >= acknowledged,
        "{stored} stored < {acknowledged} acknowledged: {err}"
    );
    let before =
        format!("SELECT COUNT(*) FROM shares WHERE address = '{alice}' AND time_ms < {killed_ms}");
    assert!(count(&db, &before) >= 1, "shares through A");
    assert!(count(&db, &after_kill) >= 3, "shares through B");
    assert!(
        err.lines()
            .any(|l| l.contains("WARN") && l.contains(&a_url)),
        "the miner saw A go: {err}"
    );
    let owner = rows(&db, "SELECT owner FROM payers WHERE coin = 'scrypt'");
    assert!(
        owner[0][0].ends_with(&b_port),
        "B took the claim: {owner:?}"
    );

    // (c) No payment twice. Each payment: its own txid, a wallet transaction of the node paying
    // exactly its recorded outputs.
    let payments = rows(
        &db,
        "SELECT CAST(id AS TEXT), status, COALESCE(txid, '') FROM payments ORDER BY payments.id",
    );
    // (d) Payments were made, by A and then by B.
    assert!(payments.len() >= 2, "{payments:?}");
    let txids: BTreeSet<&str> = payments.iter().map(|p| p[2].as_str()).collect();
    assert_eq!(txids.len(), payments.len(), "distinct txids: {payments:?}");
    for line in [&paid_by_a, &paid_by_b] {
        assert!(txids.iter().any(|t| line.contains(t)), "{line} recorded");
    }
    for p in &payments {
        assert!(!p[2].is_empty() && p[1] != "failed", "{p:?}");
        let recorded: BTreeMap<String, i64> = rows(
            &db,
            &format!(
                "SELECT address, CAST(amount AS TEXT) FROM payment_outputs WHERE payment_id = {}",
                p[0]
            ),
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().expect("amount")))
        .collect();
        assert_eq!(recorded.keys().collect::<Vec<_>>(), [&alice], "{p:?}");
        let mut sent = tx_outputs(&node, &p[2]);
        sent.retain(|a, _| recorded.contains_key(a));
        assert_eq!(sent, recorded, "payment {p:?} on chain");
        // Its ledger debits: one line per output, each for exactly the output.
        let debits: BTreeMap<String, i64> = rows(
            &db,
            &format!(
                "SELECT address, CAST(-SUM(amount) AS TEXT) FROM ledger WHERE kind = 'payment'
                 AND payment_id = {} AND address != '{payout}' GROUP BY address",
                p[0]
            ),
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().expect("amount")))
        .collect();
        assert_eq!(debits, recorded, "ledger debits of payment {p:?}");
    }
    let stray = "SELECT COUNT(*) FROM ledger WHERE kind = 'payment' AND (payment_id IS NULL
                 OR payment_id NOT IN (SELECT id FROM payments))";
    assert_eq!(count(&db, stray), 0, "every payment line has its payment");
    let doubled = format!(
        "SELECT COUNT(*) FROM (SELECT payment_id FROM ledger WHERE kind = 'payment'
         AND address = '{alice}' GROUP BY payment_id HAVING COUNT(*) > 1) d"
    );
    assert_eq!(count(&db, &doubled), 0, "one debit of alice per payment");
    // The wallet sent alice nothing but the recorded payments.
    let list = node.rpc("listtransactions", json!(["*", 10000, 0, true]));
    let wallet_sends: BTreeSet<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|t| t["category"] == "send" && t["address"] == *alice)
        .filter_map(|t| t["txid"].as_str())
        .collect();
    assert_eq!(wallet_sends, txids, "the wallet's sends to alice");

    // Each block credited at most once, in full: confirmed blocks carry their reward.
    for blk in rows(
        &db,
        "SELECT b.hash, b.status, CAST(b.reward AS TEXT), CAST(COALESCE(SUM(l.amount), 0) AS TEXT)
         FROM blocks b LEFT JOIN ledger l ON l.block_hash = b.hash GROUP BY b.hash, b.status, b.reward",
    ) {
        let expected = if blk[1] == "confirmed" { blk[2].as_str() } else { "0" };
        assert_eq!(blk[3], expected, "block credits: {blk:?}");
    }
    // No balance ever negative, line by line; the balances are the ledger's sums.
    let mut running: BTreeMap<String, i64> = BTreeMap::new();
    let ledger = "SELECT address, CAST(amount AS TEXT), CAST(id AS TEXT), kind FROM ledger
                  ORDER BY ledger.id";
    for line in rows(&db, ledger) {
        let balance = running.entry(line[0].clone()).or_default();
        *balance += line[1].parse::<i64>().expect("amount");
        assert!(*balance >= 0, "negative after ledger line {line:?}");
    }
    running.retain(|_, v| *v != 0);
    let balances: BTreeMap<String, i64> = rows(
        &db,
        "SELECT address, CAST(amount AS TEXT) FROM balances WHERE amount != 0",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().expect("amount")))
    .collect();
    assert_eq!(balances, running, "balances = ledger sums");
    eprintln!(
        "{} payments, {stored} shares stored ({acknowledged} acknowledged), {:?}; B's last: {:?}",
        payments.len(),
        started.elapsed(),
        b_lines.last()
    );
}
