//! The money path end to end, against litecoind regtest: two miners of different hashrates
//! find blocks through the pool; the blocks mature and are credited by PPLNS to the unit; an
//! invalidated block has its credits reversed; a payment round pays both miners in one wallet
//! transaction, with the pool killed before and after broadcasting. On SQLite and on PostgreSQL.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otedama_core::{Difficulty, DifficultyConvention};
use serde_json::json;
use support::litecoind::{self, Litecoind};
use support::pool::{bin, temp_db, Pool};

/// Where the pool keeps its books, and how the test reads them.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn arg(&self) -> String {
        match self {
            Db::Sqlite(path) => path.display().to_string(),
            Db::Postgres(url) => url.clone(),
        }
    }

    /// Rows of `sql`, whose columns are all `CAST(... AS TEXT)`.
    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Db::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("database");
                let mut stmt = conn.prepare(sql).expect("query");
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
                        .collect::<Result<Vec<_>, _>>()
                })
                .expect("rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("rows")
            }
            Db::Postgres(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                client
                    .query(sql, &[])
                    .expect("query")
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                            .collect()
                    })
                    .collect()
            }
        }
    }

    fn balances(&self) -> BTreeMap<String, i64> {
        self.rows(
            "SELECT address, CAST(amount AS TEXT) FROM balances WHERE coin = 'scrypt' AND amount != 0",
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().expect("amount")))
        .collect()
    }

    /// (hash, time_ms, reward, status) of every block.
    fn blocks(&self) -> Vec<(String, i64, u64, String)> {
        self.rows(
            "SELECT hash, CAST(time_ms AS TEXT), CAST(reward AS TEXT), status FROM blocks ORDER BY id",
        )
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].parse().expect("time"),
                r[2].parse().expect("reward"),
                r[3].clone(),
            )
        })
        .collect()
    }

    /// (address, amount, kind) of the ledger lines of `block`.
    fn block_lines(&self, block: &str) -> Vec<(String, i64, String)> {
        self.rows(&format!(
            "SELECT address, CAST(amount AS TEXT), kind FROM ledger WHERE block_hash = '{block}' ORDER BY id"
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().expect("amount"), r[2].clone()))
        .collect()
    }

    /// (id, status, txid) of every payment.
    fn payments(&self) -> Vec<(i64, String, String)> {
        self.rows("SELECT CAST(id AS TEXT), status, COALESCE(txid, '') FROM payments ORDER BY id")
            .into_iter()
            .map(|r| (r[0].parse().expect("id"), r[1].clone(), r[2].clone()))
            .collect()
    }
}

const WINDOW_MS: i64 = 3_600_000;
const FEE_PPM: u128 = 10_000;
const MATURITY: u64 = 3;

/// The PPLNS split written out independently of the pool: the fee floored, each address the
/// floor of its exact part of the rest, the units left over one each to the largest
/// remainders (ties to the smaller address).
fn expected_pplns(db: &Db, block_time: i64, reward: u64) -> BTreeMap<String, i64> {
    let shares = db.rows(&format!(
        "SELECT address, CAST(difficulty AS TEXT) FROM shares
         WHERE algorithm = 'scrypt' AND time_ms > {} AND time_ms <= {block_time}",
        block_time - WINDOW_MS
    ));
    let mut weights: BTreeMap<String, u128> = BTreeMap::new();
    for s in &shares {
        let d: f64 = s[1].parse().expect("difficulty");
        let work = DifficultyConvention::Scrypt
            .expected_hashes(Difficulty::new(d).expect("difficulty"))
            .round() as u128;
        *weights.entry(s[0].clone()).or_default() += work;
    }
    let total: u128 = weights.values().sum();
    assert!(total > 0, "a credited block has shares in its window");
    let fee = u128::from(reward) * FEE_PPM / 1_000_000;
    let rest = u128::from(reward) - fee;
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    let mut remainders: Vec<(u128, String)> = Vec::new();
    let mut given = 0u128;
    for (address, w) in &weights {
        let part = rest * w / total;
        given += part;
        out.insert(address.clone(), part as i64);
        remainders.push((rest * w % total, address.clone()));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, address) in remainders.iter().take((rest - given) as usize) {
        *out.get_mut(address).expect("address") += 1;
    }
    out.insert("fee".into(), fee as i64);
    out
}

fn miner(pool: &Pool, user: &str, backend: Option<&str>) -> Child {
    let mut cmd = Command::new(bin());
    cmd.args(["mine", "-o", &pool.url(), "-u", user, "--algo", "scrypt"])
        .args(["--threads", "1"]);
    if let Some(b) = backend {
        cmd.args(["--backend", b]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("miner starts")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The wallet's transactions paying any of `to`: their txids.
fn sends_to(node: &Litecoind, to: &[&str]) -> Vec<String> {
    let list = node.rpc("listtransactions", json!(["*", 1000, 0, true]));
    let mut out: Vec<String> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|t| t["category"] == "send" && to.iter().any(|a| t["address"] == *a))
        .filter_map(|t| t["txid"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn pool_args<'a>(node: &'a Litecoind, url: &'a str, address: &'a str, db: &'a str) -> Vec<&'a str> {
    vec![
        "--algo",
        "scrypt",
        "--chain",
        "litecoin-regtest",
        "--node-url",
        url,
        "--node-user",
        &node.user,
        "--node-password",
        &node.password,
        "--address",
        address,
        "--threads",
        "0",
        "--database",
        db,
        "--fee",
        "1",
        "--rewards-system",
        "pplns",
        "--rewards-window",
        "1h",
        "--maturity",
        "3",
        "--block-check-interval",
        "1",
        "--difficulty",
        "0.25",
        "--fixed-difficulty",
        "--payment-threshold",
        "1",
        "--payment-interval",
        "1",
    ]
}

fn money_path(db: Db) {
    let node = Litecoind::start();
    let pool_address = node.new_address("bech32");
    let alice = node.new_address("bech32");
    let bob = node.new_address("bech32");
    let filler = node.new_address("bech32");
    let url = node.url();
    let database = db.arg();
    let base = pool_args(&node, &url, &pool_address, &database);

    // Mining: two miners, the fastest kernel against the portable one. On regtest every
    // share meets the network target, so every share is a block.
    let mut args = base.clone();
    args.extend(["--payments-enabled", "false"]);
    let mut pool = Pool::start(&args);
    let fast = miner(&pool, &format!("{alice}.fast"), None);
    let slow = miner(&pool, &format!("{bob}.slow"), Some("portable"));
    for who in [&alice, &bob] {
        for _ in 0..2 {
            let line = pool.wait_for(&format!("by {who}: accepted"), Duration::from_secs(240));
            // Counted once: the next wait must find a new line.
            pool.seen.retain(|l| *l != line);
        }
    }
    stop(fast);
    stop(slow);
    std::thread::sleep(Duration::from_secs(2));

    // Maturity: every accepted block is buried and credited, or orphaned.
    node.rpc("generatetoaddress", json!([MATURITY, filler]));
    wait_until(
        "every block credited or orphaned",
        Duration::from_secs(60),
        || {
            db.blocks()
                .iter()
                .all(|b| b.3 == "confirmed" || b.3 == "orphaned" || b.3 == "rejected")
        },
    );
    let blocks = db.blocks();
    let confirmed: Vec<_> = blocks.iter().filter(|b| b.3 == "confirmed").collect();
    assert!(confirmed.len() >= 3, "blocks: {blocks:?}");
    let mut expected_balances: BTreeMap<String, i64> = BTreeMap::new();
    for (hash, time, reward, _) in &confirmed {
        let lines = db.block_lines(hash);
        let expected = expected_pplns(&db, *time, *reward);
        let mut got: BTreeMap<String, i64> = BTreeMap::new();
        for (address, amount, kind) in &lines {
            let key = if kind == "fee" {
                assert_eq!(*address, pool_address, "the fee goes to the pool");
                "fee".to_owned()
            } else {
                assert_eq!(kind, "credit");
                address.clone()
            };
            *got.entry(key).or_default() += amount;
            *expected_balances.entry(address.clone()).or_default() += amount;
        }
        assert_eq!(got, expected, "block {hash}: PPLNS to the unit");
        assert_eq!(got.values().sum::<i64>(), *reward as i64, "block {hash}");
    }
    assert_eq!(db.balances(), expected_balances);
    assert!(expected_balances[&alice] > 0 && expected_balances[&bob] > 0);

    // A reorganisation: the newest credited block leaves the main chain; its credits go.
    let (last, _, last_reward, _) = (*confirmed.last().expect("a block")).clone();
    node.rpc("invalidateblock", json!([last]));
    pool.wait_for(&format!("{last} orphaned"), Duration::from_secs(60));
    let lines = db.block_lines(&last);
    let reversed: i64 = lines
        .iter()
        .filter(|l| l.2 == "reversal")
        .map(|l| l.1)
        .sum();
    assert_eq!(reversed, -(last_reward as i64), "{lines:?}");
    for (address, amount, kind) in &lines {
        if kind != "reversal" {
            *expected_balances.get_mut(address).expect("credited") -= amount;
        }
    }
    expected_balances.retain(|_, v| *v != 0);
    assert_eq!(db.balances(), expected_balances);

    // The reorganisation undone: the block is back, buried as deep as before, and credited
    // again with the same split.
    let credited_before: Vec<(String, i64, String)> = lines
        .iter()
        .filter(|l| l.2 != "reversal")
        .cloned()
        .collect();
    pool.seen.clear();
    node.rpc("reconsiderblock", json!([last]));
    pool.wait_for(&format!("{last} confirmed"), Duration::from_secs(60));
    let lines = db.block_lines(&last);
    let credited_again: Vec<(String, i64, String)> =
        lines[lines.len() - credited_before.len()..].to_vec();
    assert_eq!(credited_again, credited_before, "{lines:?}");
    for (address, amount, _) in &credited_again {
        *expected_balances.entry(address.clone()).or_default() += amount;
    }
    assert_eq!(db.balances(), expected_balances);
    pool.stop();

    // The coinbases mature; payments start.
    node.rpc("generatetoaddress", json!([101, filler]));
    let owed: BTreeMap<String, i64> = expected_balances
        .iter()
        .filter(|(a, _)| **a != pool_address)
        .map(|(a, v)| (a.clone(), *v))
        .collect();
    assert_eq!(owed.len(), 2);

    // Killed after broadcasting the payment, before recording that it went out: the
    // transaction was recorded with its txid, and the balances debited, before the broadcast.
    let mut pool = Pool::start_env(&base, &[("OTEDAMA_FAULT", "payment-after-send")]);
    assert!(!pool.wait_exit(Duration::from_secs(60)).success());
    let payments = db.payments();
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0].1, "sending");
    let txid = payments[0].2.clone();
    assert_eq!(
        sends_to(&node, &[&alice, &bob]),
        std::slice::from_ref(&txid),
        "sent once"
    );
    let debited = db.balances();
    assert!(!debited.contains_key(&alice) && !debited.contains_key(&bob));

    // Restarted: the wallet has it, so it is recorded as sent; nothing is paid twice.
    let mut pool = Pool::start(&base);
    pool.wait_for(
        &format!("payment 1: {txid} is in the wallet; recorded as sent"),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(3));
    // Buried: the payment is confirmed.
    node.rpc("generatetoaddress", json!([MATURITY, filler]));
    pool.wait_for(
        &format!("payment 1: {txid} confirmed"),
        Duration::from_secs(60),
    );
    pool.stop();
    let payments = db.payments();
    assert_eq!(payments.len(), 1, "no new payment: {payments:?}");
    assert_eq!(payments[0].1, "confirmed");
    assert_eq!(
        sends_to(&node, &[&alice, &bob]),
        std::slice::from_ref(&txid),
        "paid once"
    );
    let sent = [txid];

    // The transaction pays each miner exactly its balance.
    let mut outputs = tx_outputs(&node, &sent[0]);
    outputs.retain(|a, _| owed.contains_key(a));
    assert_eq!(outputs, owed, "the payment's outputs");
    let after = db.balances();
    assert!(
        !after.contains_key(&alice) && !after.contains_key(&bob),
        "{after:?}"
    );
    // The pool paid the network fee, out of its own account.
    let fee: i64 = db.rows("SELECT CAST(tx_fee AS TEXT) FROM payments WHERE id = 1")[0][0]
        .parse()
        .expect("fee");
    assert!(fee > 0);
    assert_eq!(
        after.get(&pool_address).copied(),
        expected_balances.get(&pool_address).map(|b| b - fee)
    );

    // The ledger explains alice's zero balance line by line.
    let out = Command::new(bin())
        .args([
            "pool",
            "ledger",
            "--address",
            &alice,
            "--database",
            &database,
        ])
        .output()
        .expect("ledger");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{} blocks credited; {text}", confirmed.len());
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("credit") && text.contains("reversal") && text.contains("payment"),
        "{text}"
    );
    assert!(text.contains("balance scrypt: 0 "), "{text}");
}

#[test]
fn pplns_credits_reversal_and_crash_safe_payments_on_sqlite() {
    if !litecoind::available() {
        return;
    }
    money_path(Db::Sqlite(temp_db("money-sqlite")));
}

#[test]
fn pplns_credits_reversal_and_crash_safe_payments_on_postgresql() {
    if !litecoind::available() || !support::postgres::available() {
        return;
    }
    let server = support::postgres::Postgres::start();
    money_path(Db::Postgres(server.database("money")));
}

/// SOLO: the finder's own address is in the coinbase, for the reward less the fee; the pool's
/// fee is the coinbase's second output. The ledger shows the credit and that it was paid.
fn solo_through_the_coinbase(db: Db) {
    let node = Litecoind::start();
    let pool_address = node.new_address("bech32");
    let alice = node.new_address("bech32");
    let filler = node.new_address("bech32");
    let url = node.url();
    let database = db.arg();
    let mut args = pool_args(&node, &url, &pool_address, &database);
    let system = args
        .iter()
        .position(|a| *a == "--rewards-system")
        .expect("flag");
    args[system + 1] = "solo";
    args.extend(["--payments-enabled", "false"]);
    let mut pool = Pool::start(&args);
    let fast = miner(&pool, &format!("{alice}.rig"), None);
    let found = pool.wait_for(&format!("by {alice}: accepted"), Duration::from_secs(240));
    stop(fast);
    let hash = found.split_whitespace().nth(4).expect("hash").to_owned();
    node.rpc("generatetoaddress", json!([MATURITY, filler]));
    pool.wait_for(&format!("{hash} confirmed"), Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    pool.stop();

    let block = node.rpc("getblock", json!([hash, 2]));
    let reward: i64 = db
        .blocks()
        .iter()
        .find(|b| b.0 == hash)
        .map(|b| b.2 as i64)
        .expect("recorded");
    let fee = reward * FEE_PPM as i64 / 1_000_000;
    let paid = outputs_of(&block["tx"][0]);
    assert_eq!(paid.get(&alice), Some(&(reward - fee)), "{paid:?}");
    assert_eq!(paid.get(&pool_address), Some(&fee), "{paid:?}");

    let mut lines = db.block_lines(&hash);
    lines.sort();
    let mut expected = vec![
        (alice.clone(), reward - fee, "credit".to_owned()),
        (alice.clone(), -(reward - fee), "coinbase".to_owned()),
        (pool_address.clone(), fee, "fee".to_owned()),
    ];
    expected.sort();
    assert_eq!(lines, expected);
    let balances = db.balances();
    assert!(
        !balances.contains_key(&alice),
        "paid in the coinbase: {balances:?}"
    );
    assert!(balances[&pool_address] >= fee);
}

#[test]
fn solo_pays_the_finder_in_the_coinbase_on_sqlite() {
    if !litecoind::available() {
        return;
    }
    solo_through_the_coinbase(Db::Sqlite(temp_db("solo-sqlite")));
}

#[test]
fn solo_pays_the_finder_in_the_coinbase_on_postgresql() {
    if !litecoind::available() || !support::postgres::available() {
        return;
    }
    let server = support::postgres::Postgres::start();
    solo_through_the_coinbase(Db::Postgres(server.database("solo")));
}

/// Balances written straight into the books, as if credited.
fn seed(db: &Db, balances: &[(&str, i64)]) {
    let mut sql = String::new();
    for (address, amount) in balances {
        sql.push_str(&format!(
            "INSERT INTO ledger (time_ms, coin, address, amount, kind, memo)
             VALUES (1, 'scrypt', '{address}', {amount}, 'credit', 'seeded');
             INSERT INTO balances (coin, address, amount) VALUES ('scrypt', '{address}', {amount});"
        ));
    }
    match db {
        Db::Sqlite(path) => rusqlite::Connection::open(path)
            .expect("database")
            .execute_batch(&sql)
            .expect("seed"),
        Db::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
            .expect("connect")
            .batch_execute(&sql)
            .expect("seed"),
    }
}

/// Outputs of a wallet transaction, smallest unit, by address.
fn tx_outputs(node: &Litecoind, txid: &str) -> BTreeMap<String, i64> {
    let tx = node.rpc("gettransaction", json!([txid]));
    outputs_of(&node.rpc("decoderawtransaction", json!([tx["hex"]])))
}

/// The outputs of a decoded transaction, smallest unit, by address.
fn outputs_of(decoded: &serde_json::Value) -> BTreeMap<String, i64> {
    let mut outputs = BTreeMap::new();
    for out in decoded["vout"].as_array().expect("outputs") {
        let spk = &out["scriptPubKey"];
        let address = spk
            .get("address")
            .cloned()
            .unwrap_or_else(|| spk["addresses"][0].clone());
        if let Some(a) = address.as_str() {
            outputs.insert(
                a.to_owned(),
                (out["value"].as_f64().expect("value") * 1e8).round() as i64,
            );
        }
    }
    outputs
}

/// The threshold, the size limit (largest balances first, the rest next round) and the fee
/// taken from the miners' outputs when configured so.
fn payment_rules(db: Db) {
    let node = Litecoind::start();
    let pool_address = node.new_address("bech32");
    node.rpc("generatetoaddress", json!([101, pool_address]));
    let (alice, bob, carol) = (
        node.new_address("bech32"),
        node.new_address("bech32"),
        node.new_address("bech32"),
    );
    let url = node.url();
    let database = db.arg();
    let mut base = pool_args(&node, &url, &pool_address, &database);
    let threshold = base
        .iter()
        .position(|a| *a == "--payment-threshold")
        .expect("flag");
    base[threshold + 1] = "100000000";

    let mut args = base.clone();
    args.extend(["--payments-enabled", "false"]);
    Pool::start(&args).stop();
    seed(
        &db,
        &[
            (&alice, 300_000_000),
            (&bob, 200_000_000),
            (&carol, 50_000_000),
        ],
    );

    let mut args = base.clone();
    args.extend(["--payment-max-outputs", "1"]);
    // Killed after recording the signed payment, before broadcasting it.
    let mut pool = Pool::start_env(&args, &[("OTEDAMA_FAULT", "payment-before-send")]);
    assert!(!pool.wait_exit(Duration::from_secs(60)).success());
    let recorded = db.payments();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1, "sending");
    assert!(
        node.try_rpc("gettransaction", json!([recorded[0].2]))
            .is_err(),
        "not broadcast"
    );
    assert!(!db.balances().contains_key(&alice), "debited when recorded");
    // Restarted: the recorded transaction itself is broadcast, then the round goes on.
    let mut pool = Pool::start(&args);
    pool.wait_for(
        &format!(
            "payment 1: {} broadcast again; recorded as sent",
            recorded[0].2
        ),
        Duration::from_secs(60),
    );
    pool.wait_for("payment 2: sent", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    pool.stop();
    let payments = db.payments();
    assert_eq!(
        payments.len(),
        2,
        "carol is under the threshold: {payments:?}"
    );
    assert_eq!(
        payments[0].2, recorded[0].2,
        "the transaction recorded before the crash"
    );
    assert_eq!(
        sends_to(&node, &[&alice]),
        [payments[0].2.clone()],
        "alice paid once"
    );
    let first = tx_outputs(&node, &payments[0].2);
    let second = tx_outputs(&node, &payments[1].2);
    assert_eq!(
        first.get(&alice),
        Some(&300_000_000),
        "largest first: {first:?}"
    );
    assert!(!first.contains_key(&bob), "one output per transaction");
    assert_eq!(second.get(&bob), Some(&200_000_000), "{second:?}");
    assert_eq!(db.balances().get(&carol), Some(&50_000_000));

    // The miners pay the network fee: carol's output is her balance less the fee.
    base[threshold + 1] = "10000000";
    let mut args = base.clone();
    args.extend(["--payment-fee-from-miners", "true"]);
    let mut pool = Pool::start(&args);
    pool.wait_for("payment 3: sent", Duration::from_secs(60));
    pool.stop();
    let payments = db.payments();
    let fee: i64 = db.rows("SELECT CAST(tx_fee AS TEXT) FROM payments WHERE id = 3")[0][0]
        .parse()
        .expect("fee");
    assert!(fee > 0);
    let third = tx_outputs(&node, &payments[2].2);
    assert_eq!(third.get(&carol), Some(&(50_000_000 - fee)), "{third:?}");
    assert!(
        !db.balances().contains_key(&carol),
        "debited her whole balance"
    );

    // An output the network would refuse (dust) is set aside; the others are paid.
    let (dave, erin) = (node.new_address("bech32"), node.new_address("bech32"));
    seed(&db, &[(&dave, 100), (&erin, 100_000_000)]);
    base[threshold + 1] = "1";
    let mut pool = Pool::start(&base);
    pool.wait_for("payment 4: sent", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    pool.stop();
    let payments = db.payments();
    assert_eq!(payments.len(), 4, "{payments:?}");
    let fourth = tx_outputs(&node, &payments[3].2);
    assert_eq!(fourth.get(&erin), Some(&100_000_000), "{fourth:?}");
    assert!(!fourth.contains_key(&dave));
    assert_eq!(db.balances().get(&dave), Some(&100), "dust stays owed");
}

#[test]
fn payments_respect_threshold_size_limit_and_fee_policy_on_sqlite() {
    if !litecoind::available() {
        return;
    }
    payment_rules(Db::Sqlite(temp_db("payment-rules")));
}

#[test]
fn payments_respect_threshold_size_limit_and_fee_policy_on_postgresql() {
    if !litecoind::available() || !support::postgres::available() {
        return;
    }
    let server = support::postgres::Postgres::start();
    payment_rules(Db::Postgres(server.database("rules")));
}
