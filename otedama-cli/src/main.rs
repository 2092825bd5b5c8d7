//! The otedama command line: a Stratum pool, a CPU miner, hashing and benchmarks.

mod bench;
mod config;
mod hash;
mod kernel;
mod mine;
mod pool;
mod pool_bench;
mod signals;
mod store;
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
    /// Run a Stratum v1 pool on a node or the embedded devnet.
    Pool(pool::PoolArgs),
    /// Mine on a Stratum v1 pool with the CPU.
    Mine(mine::MineArgs),
    /// Measure share validation and submit latency with simulated miners.
    BenchPool(pool_bench::PoolBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => hash::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Pool(args) => pool::run(args),
        Command::Mine(args) => mine::run(args),
        Command::BenchPool(args) => pool_bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
