//! The pool's TLS port: its certificate from the config, or one made on the first run and
//! kept beside the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::Tls;

/// What the TLS port serves with.
pub(crate) struct TlsPort {
    /// rustls' server settings.
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// The certificate's SHA-256 fingerprint, for miners to pin.
    pub(crate) fingerprint: [u8; 32],
    /// Where the certificate came from.
    pub(crate) cert: PathBuf,
}

/// Where a generated certificate and key live: beside a SQLite database, or in the working
/// directory for PostgreSQL.
pub(crate) fn data_dir(database: &str) -> PathBuf {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return PathBuf::from(".");
    }
    Path::new(database)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Loads the configured certificate and key, or makes a self-signed pair on the first run
/// (and reuses it after, so pinned fingerprints stay valid).
pub(crate) fn tls_port(tls: &Tls, database: &str) -> Result<TlsPort> {
    let (cert, key) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => (PathBuf::from(cert), PathBuf::from(key)),
        _ => {
            let dir = data_dir(database);
            (dir.join("tls-cert.pem"), dir.join("tls-key.pem"))
        }
    };
    if tls.cert.is_none() && !cert.exists() {
        generate(&cert, &key)?;
    }
    let cert_pem =
        std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let key_pem = std::fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?;
    let config = otedama_stratum::tls::server_config(&cert_pem, &key_pem).with_context(|| {
        format!(
            "cannot serve TLS with {} and {}",
            cert.display(),
            key.display()
        )
    })?;
    let fingerprint = otedama_stratum::tls::pem_fingerprint(&cert_pem)?;
    Ok(TlsPort {
        config,
        fingerprint,
        cert,
    })
}

fn generate(cert: &Path, key: &Path) -> Result<()> {
    let names = vec!["localhost".to_owned(), "otedama-pool".to_owned()];
    let made = rcgen::generate_simple_self_signed(names)
        .context("cannot make a self-signed certificate")?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, made.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(())
}

/// Writes the key readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A fingerprint as miners pass it (`--tls-fingerprint`): lowercase hex.
pub(crate) fn hex(fingerprint: &[u8; 32]) -> String {
    otedama_core::encode_hex(fingerprint)
}
