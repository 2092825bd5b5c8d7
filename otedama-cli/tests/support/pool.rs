//! A pool process for tests, its stdout lines on a channel.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_otedama-cli")
}

pub fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otedama-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("pool.db")
}

/// The message of a log line: `2026-12-05T06:06:35.776982Z  INFO otedama pool: ...` becomes
/// `otedama pool: ...`; a line in another shape (JSON logs) is kept whole.
pub fn message(line: &str) -> &str {
    let Some((stamp, rest)) = line.split_once("Z ") else {
        return line;
    };
    if !stamp.starts_with(|c: char| c.is_ascii_digit()) || stamp.contains(' ') {
        return line;
    }
    let rest = rest.trim_start();
    match rest.split_once(' ') {
        Some((level, message)) if ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) => {
            message
        }
        _ => line,
    }
}

/// A sha256d devnet pool on the database `db` with a Stratum V2 port beside its v1 one,
/// shares at `difficulty` (fixed) and blocks at `devnet`; its `stratum2+tcp://` URL.
pub fn start_sv2(db: &std::path::Path, difficulty: f64, devnet: f64) -> (Pool, String) {
    let config = db.parent().expect("dir").join("pool.yaml");
    std::fs::write(
        &config,
        format!(
            "mining:\n  algorithm: sha256d\n  threads: 0\npool:\n  database: {db:?}\n  difficulty: {difficulty}\n  devnet_difficulty: {devnet}\n"
        ),
    )
    .expect("config");
    let mut pool = Pool::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--fixed-difficulty",
        "--sv2-listen",
        "127.0.0.1:0",
    ]);
    let line = pool.wait_for("stratum2+tcp://", Duration::from_secs(60));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("stratum2+tcp://"))
        .expect("the URL")
        .to_owned();
    (pool, url)
}

/// A running pool process whose stdout log messages arrive on a channel.
pub struct Pool {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub port: u16,
    pub seen: Vec<String>,
}

impl Pool {
    pub fn start(args: &[&str]) -> Pool {
        Pool::start_env(args, &[])
    }

    /// Starts a pool with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Pool {
        let child = Command::new(bin())
            .envs(env.iter().copied())
            .arg("pool")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pool starts");
        let mut pool = Pool::attach(child);
        let banner = pool.wait_for("stratum+tcp://", Duration::from_secs(60));
        let port = banner
            .split("stratum+tcp://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("listening port in the banner");
        pool.port = port;
        pool
    }

    /// Follows a pool process started with its stdout piped: its log messages arrive on
    /// `lines` (the port is the caller's to set).
    pub fn attach(mut child: Child) -> Pool {
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(message(&line).to_owned()).is_err() {
                    break;
                }
            }
        });
        Pool {
            child,
            lines,
            port: 0,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `needle`, counting lines already seen (the pool's
    /// threads print in whatever order they finish).
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the process to end on its own; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.seen.extend(self.lines.try_iter());
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the pool did not exit within {timeout:?}; saw {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("stratum+tcp://127.0.0.1:{}", self.port)
    }

    pub fn stop(mut self) -> Vec<String> {
        // SIGTERM: a graceful stop that flushes the share log.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.seen.extend(self.lines.try_iter());
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
