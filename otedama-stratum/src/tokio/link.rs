//! A server connection's byte pipe: plain TCP, or TLS (feature `tls`) driven sans-IO over the
//! same socket, so that the server's readiness-based loop (no read buffer kept per idle
//! connection) is the same for both.

use std::io;

use ::tokio::io::AsyncWriteExt;
use ::tokio::net::TcpStream;

#[cfg(feature = "tls")]
type TlsSession = rustls::ServerConnection;

/// Without the `tls` feature a link is always plain.
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
enum TlsSession {}

/// Why a link failed.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The peer closed the connection.
    Closed,
    /// A socket error.
    Io(io::ErrorKind),
    /// The TLS layer refused what the peer sent.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(String),
}

/// A connection's socket, with its TLS session when the port speaks TLS.
#[derive(Debug)]
pub(crate) struct Link {
    tcp: TcpStream,
    tls: Option<Box<TlsSession>>,
    /// Ciphertext the TLS session produced and the socket has not taken yet.
    pending: Vec<u8>,
}

impl Link {
    /// A plain TCP link.
    pub(crate) fn plain(tcp: TcpStream) -> Link {
        Link {
            tcp,
            tls: None,
            pending: Vec::new(),
        }
    }

    /// A TLS link: the handshake runs as bytes come in.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<Link, LinkError> {
        let session =
            rustls::ServerConnection::new(config).map_err(|e| LinkError::Tls(e.to_string()))?;
        Ok(Link {
            tcp,
            tls: Some(Box::new(session)),
            pending: Vec::new(),
        })
    }

    /// Waits until the socket has bytes (or an error, or the end) to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.tcp.readable().await
    }

    /// Reads what the socket has and hands the plaintext to `sink`. A spurious readiness
    /// reads nothing. Synchronous, so the buffer lives only for the call.
    pub(crate) fn read(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), LinkError>,
    ) -> Result<(), LinkError> {
        let mut buf = [0u8; 4096];
        let n = match self.tcp.try_read(&mut buf) {
            Ok(0) => return Err(LinkError::Closed),
            Ok(n) => n,
            // tokio has cleared the readiness; the next `readable` waits again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(LinkError::Io(e.kind())),
        };
        self.ingest(buf.get(..n).unwrap_or_default(), sink)
    }

    /// Hands bytes already read from the socket (those behind a PROXY header) through the
    /// link, as [`read`](Link::read) does.
    pub(crate) fn take_early(
        &mut self,
        raw: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), LinkError>,
    ) -> Result<(), LinkError> {
        self.ingest(raw, sink)
    }

    fn ingest(
        &mut self,
        raw: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), LinkError>,
    ) -> Result<(), LinkError> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return sink(raw);
        };
        decrypt(tls, raw, &mut self.pending, sink)
    }

    /// Writes `plaintext` (and whatever the TLS session still has to send), within `limit`.
    pub(crate) async fn write(
        &mut self,
        plaintext: &[u8],
        limit: std::time::Duration,
    ) -> Result<(), WriteError> {
        let out = match self.tls.as_deref_mut() {
            None => plaintext.to_vec(),
            Some(tls) => {
                encrypt(tls, plaintext, &mut self.pending).map_err(WriteError::Io)?;
                std::mem::take(&mut self.pending)
            }
        };
        if out.is_empty() {
            return Ok(());
        }
        match ::tokio::time::timeout(limit, self.tcp.write_all(&out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Io(e.kind())),
            Err(_) => Err(WriteError::TimedOut),
        }
    }

    /// Whether the TLS session has bytes to send (handshake records, an alert).
    pub(crate) fn wants_write(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the connection: TLS says so first.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            close_notify(tls, &mut self.pending);
            let out = std::mem::take(&mut self.pending);
            self.tcp.write_all(&out).await.ok();
        }
        self.tcp.shutdown().await.ok();
    }
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    Io(io::ErrorKind),
    TimedOut,
}

#[cfg(feature = "tls")]
fn decrypt(
    tls: &mut TlsSession,
    raw: &[u8],
    pending: &mut Vec<u8>,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), LinkError>,
) -> Result<(), LinkError> {
    use super::tls::OpenError;
    super::tls::open_records(tls, raw, pending, sink).map_err(|e| match e {
        OpenError::Closed => LinkError::Closed,
        OpenError::Io(e) => LinkError::Io(e.kind()),
        OpenError::Tls(e) => LinkError::Tls(e.to_string()),
        OpenError::Taker(e) => e,
    })
}

#[cfg(feature = "tls")]
fn encrypt(
    tls: &mut TlsSession,
    plaintext: &[u8],
    pending: &mut Vec<u8>,
) -> Result<(), io::ErrorKind> {
    super::tls::seal_records(tls, plaintext, pending).map_err(|e| e.kind())
}

#[cfg(feature = "tls")]
fn close_notify(tls: &mut TlsSession, pending: &mut Vec<u8>) {
    super::tls::close_records(tls, pending);
}

#[cfg(not(feature = "tls"))]
fn decrypt(
    tls: &mut TlsSession,
    _: &[u8],
    _: &mut Vec<u8>,
    _: &mut dyn FnMut(&[u8]) -> Result<(), LinkError>,
) -> Result<(), LinkError> {
    match *tls {}
}

#[cfg(not(feature = "tls"))]
fn encrypt(tls: &mut TlsSession, _: &[u8], _: &mut Vec<u8>) -> Result<(), io::ErrorKind> {
    match *tls {}
}

#[cfg(not(feature = "tls"))]
fn close_notify(tls: &mut TlsSession, _: &mut Vec<u8>) {
    match *tls {}
}
