//! `otedama-cli hash`: one input in, one hash out.

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_hash::{Algorithm, DagAlgorithm, EpochContext, RandomXMode};

use crate::kernel::{build, parse_hex};

/// Arguments of `otedama-cli hash`.
#[derive(Debug, Args)]
pub(crate) struct HashArgs {
    /// The algorithm: sha256d, scrypt, randomx, ethash or kawpow.
    algo: Algorithm,
    /// The input bytes in hex (an 80-byte header for sha256d and scrypt, the hashing blob for
    /// RandomX, the 32-byte header hash for ethash and kawpow).
    input: String,
    /// The nonce, for ethash and kawpow (decimal, or hex with 0x).
    #[arg(long, value_parser = parse_nonce)]
    nonce: Option<u64>,
    /// The block height, for ethash and kawpow (it picks the epoch, and kawpow's program).
    #[arg(long)]
    height: Option<u64>,
    /// The RandomX key (the seed hash), in hex.
    #[arg(long)]
    key: Option<String>,
    /// Print the hash reversed, as block explorers show it.
    #[arg(long)]
    display: bool,
}

/// Runs the command.
pub(crate) fn run(args: &HashArgs) -> Result<()> {
    let input = parse_hex("the input", &args.input)?;
    if input.is_empty() {
        bail!("the input is empty");
    }
    let key = match (&args.key, args.algo) {
        (Some(k), Algorithm::RandomX) => Some(parse_hex("--key", k)?),
        (None, Algorithm::RandomX) => bail!("randomx needs --key <hex> (the seed hash)"),
        (Some(_), other) => bail!("--key only applies to randomx, not {other}"),
        (None, _) => None,
    };
    if key.as_ref().is_some_and(|k| k.is_empty()) {
        bail!("--key is empty");
    }
    if let Ok(dag) = DagAlgorithm::try_from(args.algo) {
        return run_dag(args, dag, &input);
    }
    if args.nonce.is_some() || args.height.is_some() {
        bail!(
            "--nonce and --height only apply to ethash and kawpow, not {}",
            args.algo
        );
    }
    let kernel = build(args.algo, None, key.as_deref(), RandomXMode::Light, 1, true)?;
    let mut hash = kernel.hash(&input)?.hash;
    if args.display {
        hash.reverse();
    }
    println!("{}", hex::encode(hash));
    Ok(())
}

/// A nonce in decimal, or in hex after `0x`.
fn parse_nonce(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(digits) => u64::from_str_radix(digits, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| format!("not a 64-bit nonce ({e})"))
}

/// Ethash or KawPow: the header hash and nonce at a height, from the epoch's light cache.
fn run_dag(args: &HashArgs, algo: DagAlgorithm, input: &[u8]) -> Result<()> {
    let header: [u8; 32] = input.try_into().map_err(|_| {
        anyhow::anyhow!(
            "the {algo} header hash must be 32 bytes (64 hex digits), got {} bytes",
            input.len()
        )
    })?;
    let Some(nonce) = args.nonce else {
        bail!("{algo} needs --nonce <u64>");
    };
    let Some(height) = args.height else {
        bail!("{algo} needs --height <block number>");
    };
    if args.display {
        bail!("--display does not apply to {algo}: it prints mix= and final= in hash order");
    }
    let epoch = algo.epoch_of(height)?;
    let context = EpochContext::build(algo, epoch)
        .with_context(|| format!("could not build the {algo} light cache of epoch {epoch}"))?;
    let out = context.hash(height, &header, nonce)?;
    let mix = out
        .mix
        .ok_or_else(|| anyhow::anyhow!("{algo} gave no mix hash"))?;
    println!("mix={} final={}", hex::encode(mix), hex::encode(out.hash));
    Ok(())
}
