//! `otedama-cli hash`: one input in, one hash out.

use anyhow::{bail, Result};
use clap::Args;
use otedama_hash::{Algorithm, RandomXMode};

use crate::kernel::{build, parse_hex};

/// Arguments of `otedama-cli hash`.
#[derive(Debug, Args)]
pub(crate) struct HashArgs {
    /// The algorithm: sha256d, scrypt or randomx.
    algo: Algorithm,
    /// The input bytes in hex (an 80-byte header for sha256d and scrypt, the hashing blob for
    /// RandomX).
    input: String,
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
    let kernel = build(args.algo, None, key.as_deref(), RandomXMode::Light, 1)?;
    let mut hash = kernel.hash(&input)?.hash;
    if args.display {
        hash.reverse();
    }
    println!("{}", hex::encode(hash));
    Ok(())
}
