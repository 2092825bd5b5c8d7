//! `otedama-cli hash` and `bench` for Ethash and KawPow, run as a user would.

use std::process::{Command, Output};

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

/// Ethash block 22 of the PoC-9 testnet (ethash.json), nonce in hex.
#[test]
fn hash_ethash_vector() {
    let out = cli(&[
        "hash",
        "ethash",
        "372eca2454ead349c3df0ab5d00b0b706b23e49d469387db91811cee0358fc6d",
        "--nonce",
        "0x495732e0ed7a801c",
        "--height",
        "22",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "mix=2f74cdeb198af0b9abe65d22d372e22fb2d474371774a9583c1cc427a07939f5 \
         final=00000b184f1fdd88bfd94c86c39e65db0c36144d5e43f745f722196e730cb614"
    );
}

/// KawPow block 49 (kawpow.json, Ravencoin's test vectors), nonce in decimal.
#[test]
fn hash_kawpow_vector() {
    let out = cli(&[
        "hash",
        "kawpow",
        "63155f732f2bf556967f906155b510c917e48e99685ead76ea83f4eca03ab12b",
        "--nonce",
        "117914631",
        "--height",
        "49",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "mix=d36f7e815ee09e74eceb9c96993a3d681edf2bf0921fc7bb710364042db99777 \
         final=e7ced124598fd2500a55ad9f9f48e3569327fe50493c77a4ac9799b96efb9463"
    );
}

#[test]
fn hash_errors_are_clear() {
    const ZERO32: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    let cases: [(&[&str], &str); 10] = [
        (
            &["hash", "ethash", "0011", "--nonce", "1", "--height", "0"],
            "must be 32 bytes",
        ),
        (
            &[
                "hash",
                "kawpow",
                &[ZERO32, "00"].concat(),
                "--nonce",
                "1",
                "--height",
                "0",
            ],
            "got 33 bytes",
        ),
        (
            &["hash", "ethash", ZERO32, "--height", "0"],
            "needs --nonce",
        ),
        (
            &["hash", "kawpow", ZERO32, "--nonce", "5"],
            "needs --height",
        ),
        (
            &["hash", "ethash", ZERO32, "--nonce", "x1", "--height", "0"],
            "not a 64-bit nonce",
        ),
        (
            &["hash", "sha256d", "00", "--nonce", "1"],
            "only apply to ethash and kawpow",
        ),
        (
            &["hash", "randomx", "00", "--key", "00", "--height", "1"],
            "only apply to ethash and kawpow",
        ),
        (
            &[
                "hash", "ethash", ZERO32, "--nonce", "1", "--height", "0", "--key", "00",
            ],
            "only applies to randomx",
        ),
        (
            &[
                "hash",
                "ethash",
                ZERO32,
                "--nonce",
                "1",
                "--height",
                "0",
                "--display",
            ],
            "--display does not apply",
        ),
        (
            &[
                "hash",
                "kawpow",
                ZERO32,
                "--nonce",
                "1",
                "--height",
                "18446744073709551615",
            ],
            "past the last supported epoch",
        ),
    ];
    for (args, message) in cases {
        let out = cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bench_verify_mode_reports_verifications() {
    for algo in ["ethash", "kawpow"] {
        let out = cli(&[
            "bench",
            "--algo",
            algo,
            "--mode",
            "verify",
            "--seconds",
            "0.5",
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one json object");
        assert_eq!(v["algo"], algo);
        assert_eq!(v["mode"], "verify");
        assert!(
            v["verifications_per_second"]
                .as_f64()
                .is_some_and(|r| r > 0.0),
            "{v}"
        );
    }
    // `light` is the same mode under RandomX's name, and text output names the unit.
    let out = cli(&[
        "bench",
        "--algo",
        "ethash",
        "--mode",
        "light",
        "--seconds",
        "0.3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("verifications/s"), "{}", stdout(&out));
}

#[test]
fn bench_rejects_modes_an_algorithm_lacks() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["bench", "--algo", "sha256d", "--mode", "verify"],
            "sha256d has no --mode",
        ),
        (
            &["bench", "--algo", "scrypt", "--mode", "search"],
            "scrypt has no --mode",
        ),
        (
            &["bench", "--algo", "randomx", "--height", "5"],
            "--height only applies to ethash and kawpow",
        ),
    ];
    for (args, message) in cases {
        let out = cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let out = cli(&["bench", "--algo", "ethash", "--mode", "mine"]);
    assert!(!out.status.success());
}
