//! `otedama-cli api-token`, and the secret API tokens are signed with: a random file made on
//! first use, readable by its owner only, beside the database unless
//! `api.auth.secret_file` names one. The pool and this command read the same file, so a
//! token printed here is valid for the pool that the same configuration runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clap::Args;
use otedama_pool::http::TokenAuth;

use crate::config::{Config, Span};

/// Bytes of a new secret.
const SECRET_LEN: usize = 32;

/// Arguments of `otedama-cli api-token`.
#[derive(Debug, Clone, Args)]
pub(crate) struct TokenArgs {
    /// The YAML configuration file of the pool the token is for.
    #[arg(long)]
    config: Option<PathBuf>,
    /// How long the token is valid, e.g. 24h (api.auth.token_expiry when absent).
    #[arg(long)]
    expiry: Option<String>,
}

/// Where the secret of `config` is kept.
pub(crate) fn secret_path(config: &Config) -> PathBuf {
    if let Some(path) = &config.api.auth.secret_file {
        return path.clone();
    }
    let database = &config.pool.database;
    if otedama_pool::store::is_postgres_url(database) {
        return PathBuf::from("api-secret");
    }
    Path::new(database)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("api-secret"), |d| d.join("api-secret"))
}

/// The secret at `path`, made first when there is none.
fn secret(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .ok()
                .and_then(|t| hex::decode(t.trim()).ok())
                .with_context(|| format!("{}: not a hex secret", path.display()))?;
            if text.len() < otedama_pool::http::MIN_SECRET_LEN {
                bail!(
                    "{}: the secret is {} bytes, at least {} are needed",
                    path.display(),
                    text.len(),
                    otedama_pool::http::MIN_SECRET_LEN
                );
            }
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => make_secret(path),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn make_secret(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; SECRET_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read random bytes for the API secret")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(hex::encode(&bytes).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(bytes)
        }
        // Another process made it first: theirs counts.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => secret(path),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The token checker of `config`'s API.
pub(crate) fn auth(config: &Config) -> Result<TokenAuth> {
    let path = secret_path(config);
    let secret = secret(&path)?;
    TokenAuth::new(secret).with_context(|| format!("{}", path.display()))
}

/// Prints a token for the API of the pool `args.config` configures.
pub(crate) fn run(args: &TokenArgs) -> Result<()> {
    let config = Config::open(args.config.as_deref())?;
    let expiry = match &args.expiry {
        Some(text) => Span::parse(text).map_err(|e| anyhow::anyhow!("--expiry: {e}"))?,
        None => config.api.auth.token_expiry,
    };
    if expiry.0.is_zero() {
        bail!("--expiry: must be longer than zero");
    }
    let token = auth(&config)?.issue(SystemTime::now(), expiry.0);
    println!("{token}");
    if !config.api.auth.enabled {
        eprintln!(
            "note: api.auth.enabled is off in this configuration: the API takes no token yet"
        );
    }
    Ok(())
}
