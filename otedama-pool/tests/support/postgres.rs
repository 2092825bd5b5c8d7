//! A throwaway PostgreSQL server for tests: its own data directory, bound to 127.0.0.1 on a
//! free port, trust authentication, stopped and deleted when dropped. As root it runs the
//! server as the `postgres` system user, since PostgreSQL refuses to run as root.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A running server.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Whether a server can be started; on CI (CI=true) its absence is a failure, not a skip.
pub fn available() -> bool {
    let found = bin_dir().is_some();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "PostgreSQL server binaries are not installed on CI; .ci/run must install postgresql"
        );
    }
    if !found {
        eprintln!("PostgreSQL not installed: skipping (apt-get install postgresql)");
    }
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(bin: &Path, tool: &str, args: &[&str]) {
    let program = bin.join(tool);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
    } else {
        Command::new(&program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
    }
    .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(status.success(), "{tool} {args:?} failed: {status}");
}

impl Postgres {
    /// Initialises and starts a server.
    pub fn start() -> Postgres {
        let bin = bin_dir().expect("postgresql binaries");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!(
            "otedama-pg-{}-{port}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the test data directory");
        }
        let data = dir.join("data");
        let data_s = data.to_str().expect("utf-8 path");
        let dir_s = dir.to_str().expect("utf-8 path");
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data_s,
                "-U",
                "otedama",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let options = format!("-p {port} -k {dir_s} -c listen_addresses=127.0.0.1");
        let log = dir.join("server.log");
        run(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data_s,
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        Postgres { dir, bin, port }
    }

    /// A URL for the server's default database.
    pub fn url(&self) -> String {
        format!("postgres://otedama@127.0.0.1:{}/postgres", self.port)
    }

    /// A fresh database on this server, and its URL.
    pub fn database(&self, name: &str) -> String {
        run(
            &self.bin,
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "otedama",
                name,
            ],
        );
        format!("postgres://otedama@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if let Some(data) = data.to_str() {
            let program = self.bin.join("pg_ctl");
            let args = ["-D", data, "-m", "immediate", "-w", "stop"];
            let _ = if is_root() {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&program)
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
            } else {
                Command::new(&program)
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
            };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
