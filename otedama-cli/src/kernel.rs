//! Turning command-line choices into a kernel.

use anyhow::{bail, Context, Result};
use std::sync::atomic::AtomicBool;

use otedama_hash::{
    Algorithm, DagAlgorithm, EpochCache, Ethash, KawPow, PowAlgorithm, RandomX, RandomXMode,
    Scrypt, ScryptBackend, Sha256d, Sha256dBackend,
};

/// The RandomX key used when none is given: an arbitrary fixed seed, so runs are comparable.
pub(crate) const DEFAULT_RANDOMX_KEY: &[u8] = b"otedama benchmark key";

/// Parses hex that may carry a `0x` prefix, naming `what` in the error.
pub(crate) fn parse_hex(what: &str, text: &str) -> Result<Vec<u8>> {
    let digits = text.trim().trim_start_matches("0x");
    hex::decode(digits).with_context(|| format!("{what} is not valid hex: {text:?}"))
}

/// Picks a backend by name from `all`, or the detected one when no name is given.
fn pick<B: Copy>(
    algo: Algorithm,
    wanted: Option<&str>,
    all: &[B],
    name: fn(B) -> &'static str,
) -> Result<Option<B>> {
    let Some(wanted) = wanted else {
        return Ok(None);
    };
    match all.iter().find(|b| name(**b) == wanted) {
        Some(b) => Ok(Some(*b)),
        None => {
            let names: Vec<_> = all.iter().map(|b| name(*b)).collect();
            bail!(
                "{algo} has no backend {wanted:?} (choose from {})",
                names.join(", ")
            )
        }
    }
}

/// Builds the kernel for `algo`, on a named SIMD backend or the fastest detected one. RandomX
/// needs a key and a mode; fast mode reports dataset progress on stderr, and uses huge pages
/// unless `huge_pages` is false.
pub(crate) fn build(
    algo: Algorithm,
    backend: Option<&str>,
    key: Option<&[u8]>,
    randomx_mode: RandomXMode,
    init_threads: usize,
    huge_pages: bool,
) -> Result<Box<dyn PowAlgorithm>> {
    if backend.is_some() && !matches!(algo, Algorithm::Sha256d | Algorithm::Scrypt) {
        bail!("--backend only applies to sha256d and scrypt");
    }
    Ok(match algo {
        Algorithm::Sha256d => Box::new(
            match pick(algo, backend, &Sha256dBackend::ALL, Sha256dBackend::name)? {
                Some(b) => Sha256d::with_backend(b)?,
                None => Sha256d::new(),
            },
        ),
        Algorithm::Scrypt => Box::new(
            match pick(algo, backend, &ScryptBackend::ALL, ScryptBackend::name)? {
                Some(b) => Scrypt::with_backend(b)?,
                None => Scrypt::new(),
            },
        ),
        Algorithm::RandomX => {
            let key = key.unwrap_or(DEFAULT_RANDOMX_KEY);
            let progress = |done: u64, total: u64| {
                if done == total || done % (1 << 20) < (1 << 16) {
                    eprint!(
                        "\rbuilding RandomX dataset: {:5.1}%",
                        100.0 * done as f64 / total as f64
                    );
                }
            };
            let kernel =
                RandomX::with_pages(key, randomx_mode, init_threads, &progress, huge_pages)
                    .context("could not set up RandomX")?;
            if randomx_mode == RandomXMode::Fast {
                eprintln!();
                eprintln!("RandomX dataset: {}", kernel.dataset_pages().describe());
            }
            Box::new(kernel)
        }
        other => bail!("the {other} kernel is not part of this build yet"),
    })
}

/// Builds an Ethash or KawPow kernel in search mode at block `height`, its epoch's full
/// dataset built first by `threads` threads (progress on stderr).
pub(crate) fn build_dag_search(
    algo: DagAlgorithm,
    height: u64,
    threads: usize,
) -> Result<Box<dyn PowAlgorithm>> {
    let epochs = EpochCache::new(1);
    let progress = |done: u64, total: u64| {
        if done == total || done % (1 << 18) < (1 << 12) {
            eprint!(
                "\rbuilding {algo} dataset: {:5.1}%",
                100.0 * done as f64 / total as f64
            );
        }
    };
    let never = AtomicBool::new(false);
    let kernel: Box<dyn PowAlgorithm> = match algo {
        DagAlgorithm::Ethash => Box::new(
            Ethash::with_dataset(height, &epochs, threads, &progress, &never)
                .context("could not build the ethash dataset")?,
        ),
        DagAlgorithm::KawPow => Box::new(
            KawPow::with_dataset(height, &epochs, threads, &progress, &never)
                .context("could not build the kawpow dataset")?,
        ),
    };
    eprintln!();
    Ok(kernel)
}
