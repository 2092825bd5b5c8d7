//! The otedama command line: a Stratum pool, a CPU miner, hashing and benchmarks.

mod bench;
mod config;
mod devnet;
mod hash;
mod kernel;
mod limits;
mod local_miner;
mod logging;
mod mine;
mod pool;
mod pool_bench;
mod proxy;
mod reload;
mod serve;
mod signals;
mod soak;
mod status;
mod template_provider;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Otedama: proof-of-work kernels, a Stratum pool and a miner.
#[derive(Debug, Parser)]
#[command(name = "otedama-cli", version, about)]
struct Cli {
    /// How log lines are written: text for people, json for collectors (pool, serve and
    /// mine; overrides app.log_format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<logging::LogFormat>,
    /// Also write every log line to this file (overrides app.log_file).
    #[arg(long, global = true)]
    log_file: Option<std::path::PathBuf>,
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
    /// Run everything the configuration file enables: the pool, the built-in miner, the API
    /// with its dashboard, metrics and health.
    Serve(serve::ServeArgs),
    /// Run a pool on a node or the embedded devnet (Stratum v1, or the Monero dialect for
    /// randomx).
    Pool(pool::PoolArgs),
    /// Serve the embedded devnet over a node's JSON-RPC, so pools in several processes mine
    /// one chain.
    Devnet(devnet::DevnetArgs),
    /// Mine with the CPU on a Stratum v1 pool (sha256d, scrypt) or a Monero-dialect pool
    /// (randomx).
    Mine(mine::MineArgs),
    /// Serve Stratum v1 miners through one upstream channel: a Stratum V2 translator
    /// (`--upstream stratum2+tcp://...`) or a v1 proxy.
    Proxy(proxy::ProxyArgs),
    /// Measure share validation and submit latency with simulated miners.
    BenchPool(pool_bench::PoolBenchArgs),
    /// Run a real pool for an hour (by default) under thousands of hashing miners with
    /// vardiff and new blocks, and report its memory, latency and share log.
    Soak(soak::SoakArgs),
    /// Show a running pool's or miner's state, read from its API.
    Status(status::StatusArgs),
    /// Print a bearer token for the API of the pool a configuration runs.
    ApiToken(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = || logging::LogSettings {
        format: cli.log_format.unwrap_or_default(),
        file: cli.log_file.clone(),
        all_stderr: true,
    };
    let result = match cli.command {
        Command::Hash(ref args) => hash::run(args),
        Command::Bench(ref args) => bench::run(args),
        Command::Serve(ref args) => {
            serve::run(args.clone(), (cli.log_format, cli.log_file.clone()))
        }
        Command::Pool(ref args) => pool::run(args.clone(), (cli.log_format, cli.log_file.clone())),
        Command::Mine(ref args) => logging::init(&flags()).and_then(|()| mine::run(args.clone())),
        // A service, like the pool: its progress goes to stdout.
        Command::Proxy(ref args) => logging::init(&logging::LogSettings {
            all_stderr: false,
            ..flags()
        })
        .and_then(|()| proxy::run(args)),
        Command::BenchPool(ref args) => pool_bench::run(args),
        Command::Soak(ref args) => logging::init(&flags()).and_then(|()| soak::run(args)),
        Command::Devnet(ref args) => logging::init(&flags()).and_then(|()| devnet::run(args)),
        Command::Status(ref args) => status::run(args),
        Command::ApiToken(ref args) => token::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
