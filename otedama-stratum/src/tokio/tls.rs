//! Stratum over TLS (feature `tls`): the pool's rustls configuration from a PEM certificate
//! and key, the miner's, and certificate fingerprints.
//!
//! Pools mostly serve self-signed certificates (there is no name a miner could check one
//! against), so a miner takes any certificate unless told the fingerprint to insist on, as
//! xmrig's `--tls-fingerprint` does; the connection is encrypted either way.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The certificate PEM holds no certificate, or one that does not read.
    #[error("the certificate PEM holds no usable certificate")]
    Certificate(#[source] Option<rustls::pki_types::pem::Error>),
    /// The key PEM holds no private key that reads.
    #[error("the key PEM holds no usable private key")]
    Key(#[source] rustls::pki_types::pem::Error),
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("rustls refused the certificate and key")]
    Rustls(#[from] rustls::Error),
}

/// The certificate a pool presented is not the one the miner was told to expect.
#[derive(Debug, thiserror::Error)]
#[error("the pool's certificate has fingerprint {got}, not the expected {expected}")]
pub struct FingerprintMismatch {
    /// The expected fingerprint, hex.
    pub expected: String,
    /// The presented certificate's, hex.
    pub got: String,
}

/// rustls on *ring*: a pure-Rust-and-assembly build (aws-lc-rs would add a C library
/// built with cmake to every embedder's build). rustls marks it deprecated only for lacking
/// post-quantum key exchange, which a mining connection (shares valid for seconds) does not
/// need.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// A pool's TLS configuration from its certificate chain and private key, both PEM.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Certificate(Some(e)))?;
    if certs.is_empty() {
        return Err(TlsConfigError::Certificate(None));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsConfigError::Key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// The fingerprint of the first certificate in a PEM chain.
pub fn pem_fingerprint(cert_pem: &[u8]) -> Result<[u8; 32], TlsConfigError> {
    let first = CertificateDer::pem_slice_iter(cert_pem)
        .next()
        .ok_or(TlsConfigError::Certificate(None))?
        .map_err(|e| TlsConfigError::Certificate(Some(e)))?;
    Ok(fingerprint(first.as_ref()))
}

/// Takes the pool's certificate: any, or only the one with the pinned fingerprint. The
/// handshake's signatures are checked either way, so the pool holds the certificate's key.
#[derive(Debug)]
struct PoolCertificate {
    pinned: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ServerCertVerifier for PoolCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(expected) = self.pinned {
            let got = fingerprint(end_entity.as_ref());
            if got != expected {
                let mismatch = FingerprintMismatch {
                    expected: hex(&expected),
                    got: hex(&got),
                };
                return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(mismatch)),
                )));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A miner's TLS session with the pool at `host`.
pub(crate) fn client_session(
    host: &str,
    pinned: Option<[u8; 32]>,
) -> Result<rustls::ClientConnection, rustls::Error> {
    let provider = provider();
    let verifier = PoolCertificate {
        pinned,
        provider: Arc::clone(&provider),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| rustls::Error::General(format!("{host:?} is not a usable server name")))?;
    rustls::ClientConnection::new(Arc::new(config), name)
}

/// Why ciphertext from the peer could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError<E> {
    /// The peer ended the TLS session.
    Closed,
    /// Reading the records failed.
    Io(std::io::Error),
    /// The records broke the protocol, or the handshake failed.
    Tls(rustls::Error),
    /// The plaintext's taker refused it.
    Taker(E),
}

/// Passes ciphertext from the peer through `tls`, one side of the connection or the other:
/// what the session answers (handshake records, or the alert that explains a failure) is
/// queued on `out` before a failure is reported, and the plaintext goes to `take` piece by
/// piece as records open.
pub(crate) fn open_records<S: rustls::SideData, E>(
    tls: &mut rustls::ConnectionCommon<S>,
    mut raw: &[u8],
    out: &mut Vec<u8>,
    take: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), OpenError<E>> {
    use std::io::Read;
    let mut plain = [0u8; 4096];
    while !raw.is_empty() {
        tls.read_tls(&mut raw).map_err(OpenError::Io)?;
        let processed = tls.process_new_packets();
        while tls.wants_write() {
            tls.write_tls(out).map_err(OpenError::Io)?;
        }
        processed.map_err(OpenError::Tls)?;
        loop {
            match tls.reader().read(&mut plain) {
                Ok(0) => return Err(OpenError::Closed),
                Ok(n) => take(plain.get(..n).unwrap_or_default()).map_err(OpenError::Taker)?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(OpenError::Io(e)),
            }
        }
    }
    Ok(())
}

/// Queues `plaintext` sealed in records on `out`, with whatever else the session has to
/// send (a client's hello when `plaintext` is empty).
pub(crate) fn seal_records<S: rustls::SideData>(
    tls: &mut rustls::ConnectionCommon<S>,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::io::Write;
    if !plaintext.is_empty() {
        tls.writer().write_all(plaintext)?;
    }
    while tls.wants_write() {
        tls.write_tls(out)?;
    }
    Ok(())
}

/// Queues the alert that ends the TLS session on `out`.
pub(crate) fn close_records<S: rustls::SideData>(
    tls: &mut rustls::ConnectionCommon<S>,
    out: &mut Vec<u8>,
) {
    tls.send_close_notify();
    let _ = seal_records(tls, &[], out);
}
