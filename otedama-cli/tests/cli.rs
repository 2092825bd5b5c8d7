//! The `otedama-cli` binary, run as a user would.

use std::process::{Command, Output};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
const LTC_GENESIS: &str = "010000000000000000000000000000000000000000000000000000000000000000000000d9ced4ed1130f7b7faad9be25323ffafa33232a17c3edf6cfd97bee6bafbdd97b9aa8e4ef0ff0f1ecd513f7c";

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otedama-cli"))
        .args(args)
        .output()
        .expect("run otedama-cli")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn hash_sha256d_raw_and_display() {
    let raw = cli(&["hash", "sha256d", GENESIS]);
    assert!(raw.status.success(), "{}", stderr(&raw));
    assert_eq!(
        stdout(&raw),
        "6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000"
    );
    let display = cli(&["hash", "sha256d", GENESIS, "--display"]);
    assert_eq!(
        stdout(&display),
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    );
}

#[test]
fn hash_scrypt_litecoin_genesis() {
    let out = cli(&["hash", "scrypt", LTC_GENESIS, "--display"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "0000050c34a64b415b6b15b37f2216634b5b1669cb9a2e38d76f7213b0671e00"
    );
}

#[test]
fn hash_randomx_vector() {
    let out = cli(&[
        "hash",
        "randomx",
        "5468697320697320612074657374",
        "--key",
        "74657374206b657920303030",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f"
    );
}

#[test]
fn hash_errors_are_clear() {
    let cases: [(&[&str], &str); 6] = [
        (&["hash", "sha256d", "zz"], "not valid hex"),
        (&["hash", "sha256d", ""], "empty"),
        (&["hash", "md5", "00"], "unknown algorithm"),
        (&["hash", "randomx", "00"], "needs --key"),
        (
            &["hash", "sha256d", "00", "--key", "00"],
            "only applies to randomx",
        ),
        (
            &["hash", "randomx", "00", "--key", "0g"],
            "--key is not valid hex",
        ),
    ];
    for (args, message) in cases {
        let out = cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bench_json_reports_a_rate() {
    let out = cli(&[
        "bench",
        "--algo",
        "sha256d",
        "--threads",
        "1",
        "--seconds",
        "0.3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one json object");
    assert_eq!(v["algo"], "sha256d");
    assert_eq!(v["threads"], 1);
    assert!(
        v["hashes_per_second"].as_f64().is_some_and(|r| r > 0.0),
        "{v}"
    );
}

#[test]
fn bench_rejects_bad_arguments() {
    let out = cli(&["bench", "--algo", "sha256d", "--threads", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--threads"), "{}", stderr(&out));
    let out = cli(&["bench", "--algo", "sha256d", "--seconds", "-1"]);
    assert!(!out.status.success());
}

/// A pool database in a fresh directory, created and migrated by a short pool run.
fn fresh_database(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("otedama-{name}-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("pool.db");
    let run = cli(&[
        "pool",
        "--threads",
        "0",
        "--listen",
        "127.0.0.1:0",
        "--seconds",
        "0.5",
        "--database",
        path.to_str().expect("utf-8"),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    (dir, path)
}

#[test]
fn the_ledger_command_explains_missing_databases_and_empty_ledgers() {
    let out = cli(&[
        "pool",
        "ledger",
        "--address",
        "rltc1qexample",
        "--database",
        "/nonexistent/otedama.db",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no database at /nonexistent/otedama.db"),
        "{}",
        stderr(&out)
    );
    let out = cli(&[
        "pool",
        "ledger",
        "--address",
        "x",
        "--database",
        "postgres://nobody:secret@127.0.0.1:1/none",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot open postgres://nobody:***@"), "{err}");
    assert!(!err.contains("secret"), "{err}");

    let (dir, path) = fresh_database("ledger");
    let db = path.to_str().expect("utf-8");
    let out = cli(&[
        "pool",
        "ledger",
        "--address",
        "rltc1qexample",
        "--database",
        db,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no ledger lines"), "{}", stdout(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_open_payment_is_settled_by_hand() {
    let (dir, path) = fresh_database("settle");
    let db = path.to_str().expect("utf-8");
    // A payment left open, its amount already debited, as the pool writes one.
    rusqlite::Connection::open(&path)
        .expect("database")
        .execute_batch(
            "INSERT INTO payments (id, coin, time_ms, status, txid, tx_fee, tx_hex)
                 VALUES (7, 'scrypt', 1, 'sending', 'aa', 0, '00');
             INSERT INTO payment_outputs VALUES (7, 'rltc1qexample', 1500);
             INSERT INTO ledger (time_ms, coin, address, amount, kind, payment_id, memo)
                 VALUES (1, 'scrypt', 'rltc1qexample', -1500, 'payment', 7, 'payment 7');
             INSERT INTO balances VALUES ('scrypt', 'rltc1qexample', -1500);",
        )
        .expect("seed");
    let out = cli(&[
        "pool",
        "payment",
        "--id",
        "7",
        "--mark",
        "failed",
        "--by",
        "alice",
        "--database",
        db,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Who settled it, and how, is in the audit log.
    let out = cli(&["pool", "audit", "--database", db]);
    assert!(out.status.success(), "{}", stderr(&out));
    let audit = stdout(&out);
    assert!(
        audit.contains("alice") && audit.contains("payment-settled"),
        "{audit}"
    );
    assert!(audit.contains("payment 7 marked failed"), "{audit}");
    assert!(
        stdout(&out).contains("payment 7 marked failed"),
        "{}",
        stdout(&out)
    );
    let out = cli(&[
        "pool",
        "ledger",
        "--address",
        "rltc1qexample",
        "--database",
        db,
    ]);
    assert!(
        stdout(&out).contains("balance scrypt: 0 "),
        "{}",
        stdout(&out)
    );
    // Settled once: marking it again is an error, not a second return.
    let out = cli(&[
        "pool",
        "payment",
        "--id",
        "7",
        "--mark",
        "sent",
        "--database",
        db,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("payment 7"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
