//! The otedama command line: a Stratum pool, a CPU miner, hashing and benchmarks.

mod bench;
mod config;
mod hash;
mod kernel;
mod limits;
mod mine;
mod pool;
mod pool_bench;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Otedama: proof-of-work kernels, a Stratum pool and a miner.
#[derive(Debug, Parser)]
#[command(name = "otedama-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Hash one input and print the result in hex.
    Hash(hash::HashArgs),
    /// Measure a mining kernel's speed over a nonce range.
    Bench(bench::BenchArgs),
    /// Run a pool on a node or the embedded devnet (Stratum v1, or the Monero dialect for
    /// randomx).
    Pool(pool::PoolArgs),
    /// Mine with the CPU on a Stratum v1 pool (sha256d, scrypt) or a Monero-dialect pool
    /// (randomx).
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
