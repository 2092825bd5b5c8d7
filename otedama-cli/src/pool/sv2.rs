//! Stratum V2 for `otedama-cli pool`: the authority key pair that signs each connection's
//! certificate, read from its file or made on the first run and kept (so the URL miners were
//! given stays valid), and the port's server settings.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use otedama_core::DifficultyConvention;
use otedama_stratum::server::{ProtocolServerConfig, ServerConfig};
use otedama_stratum::sv2::noise::AuthorityKeypair;
use otedama_stratum::sv2::pool::{Sv2PoolConfig, Sv2PoolSession};

use crate::config::Sv2;

/// The authority key pair, and the file it lives in.
pub(crate) fn authority(sv2: &Sv2, database: &str) -> Result<(AuthorityKeypair, PathBuf)> {
    let path = sv2
        .authority_key_file
        .clone()
        .unwrap_or_else(|| super::tls::data_dir(database).join("sv2-authority.key"));
    if !path.exists() {
        let made = AuthorityKeypair::generate().context("cannot make an authority key")?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        super::tls::write_private(&path, format!("{}\n", made.secret_base58()).as_bytes())?;
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let pair = AuthorityKeypair::from_secret_base58(&text).with_context(|| {
        format!(
            "{}: not an authority secret key (base58check of 32 bytes)",
            path.display()
        )
    })?;
    Ok((pair, path))
}

/// The SV2 port's settings: the v1 port's session settings, limits and edge, with the
/// authority's certificates.
pub(crate) fn server(
    v1: &ServerConfig,
    authority: AuthorityKeypair,
    validity: u32,
    convention: DifficultyConvention,
) -> ProtocolServerConfig<Sv2PoolSession> {
    let mut pool = Sv2PoolConfig::new(authority);
    pool.pool = (*v1.pool).clone();
    pool.certificate_validity = validity;
    pool.convention = convention;
    ProtocolServerConfig {
        pool: Arc::new(pool),
        max_connections: v1.max_connections,
        max_connections_per_ip: v1.max_connections_per_ip,
        max_line: v1.max_line,
        write_timeout: v1.write_timeout,
        tailor: None,
        edge: v1.edge.clone(),
        tls: None,
    }
}
