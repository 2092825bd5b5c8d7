//! The otedama command line: hashing, benchmarks, and (in later releases) the pool and miner.

mod bench;
#[allow(dead_code)] // wired into `pool` next
mod config;
mod hash;
mod kernel;
#[allow(dead_code)] // wired into the `pool` command next
mod pool;
#[allow(dead_code)] // wired into `pool` next
mod store;
#[allow(dead_code)] // wired into `pool` next
mod work;

/// The litecoind regtest harness, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/support/litecoind.rs"]
mod litecoind_support;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Otedama: proof-of-work kernels, a Stratum pool and a miner.
#[derive(Debug, Parser)]
#[command(name = "otedama-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Hash one input and print the result in hex.
    Hash(hash::HashArgs),
    /// Measure a mining kernel's speed over a nonce range.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => hash::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
