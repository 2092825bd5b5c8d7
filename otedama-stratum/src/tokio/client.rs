//! A Stratum TCP client: one connection to a pool, driving a miner session of any dialect
//! through [`MinerProtocol`].
//!
//! [`ProtocolClient<P>`] speaks the dialect of `P`: [`Client`] is the Stratum v1 client
//! (its session a [`MinerSession`]), [`MoneroClient`] speaks the Monero dialect
//! ([`MoneroMinerSession`]). The rest of this page reads the same for each.
//!
//! [`ProtocolClient::connect`] dials `stratum+tcp://host:port` and queues the session's
//! opening requests; [`ProtocolClient::next_event`] then moves bytes both ways and returns the
//! session's events one at a time, in the dialect's own event type. It spawns nothing: the
//! miner's own loop owns the client and polls it, typically in a `select!` beside the channel
//! its hashing threads report solutions on, and hands those to [`ProtocolClient::submit`].
//! `next_event` is cancel-safe, so losing such a race loses nothing. Once the session has
//! ended and its last events are taken, or the connection failed, `next_event` returns
//! [`ClientError::Closed`].
//!
//! A Stratum v1 miner:
//!
//! ```no_run
//! use otedama_stratum::client::{Client, ClientConfig};
//! use otedama_stratum::{MinerConfig, MinerEvent};
//!
//! # async fn mine() -> Result<(), otedama_stratum::client::ClientError> {
//! let config = ClientConfig::new(MinerConfig {
//!     user: "bc1qexample.rig1".into(),
//!     ..MinerConfig::default()
//! });
//! let mut client = Client::connect("stratum+tcp://pool.example:3333", config).await?;
//! loop {
//!     match client.next_event().await? {
//!         MinerEvent::NewJob(job) => { /* hand `job` to the hashing threads */ }
//!         MinerEvent::ShareResult { sequence, accepted, .. } => { /* count it */ }
//!         MinerEvent::Closed(reason) => break,
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The same for a Monero pool, and a loop written once for any dialect:
//!
//! ```no_run
//! use otedama_stratum::client::{ClientConfig, ClientError, MoneroClient, ProtocolClient};
//! use otedama_stratum::{MinerProtocol, MoneroMinerConfig, MoneroMinerEvent};
//!
//! /// Logs every event until the session ends.
//! async fn watch<P: MinerProtocol>(client: &mut ProtocolClient<P>) -> ClientError {
//!     loop {
//!         match client.next_event().await {
//!             Ok(event) => println!("{event:?}"),
//!             Err(e) => return e,
//!         }
//!     }
//! }
//!
//! # async fn mine() -> Result<(), ClientError> {
//! let config = ClientConfig::new(MoneroMinerConfig {
//!     login: "4wallet".into(),
//!     ..MoneroMinerConfig::default()
//! });
//! let mut client = MoneroClient::connect("stratum+tcp://pool.example:3333", config).await?;
//! if let MoneroMinerEvent::LoggedIn { session_id, .. } = client.next_event().await? {
//!     println!("logged in as {session_id}");
//! }
//! let why = watch(&mut client).await;
//! println!("pool gone: {why}");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::time::Duration;

use ::tokio::io::AsyncWriteExt;
use ::tokio::net::TcpStream;
use ::tokio::time::{sleep_until, timeout, Instant};

use crate::{
    LineBuffer, MinerConfig, MinerProtocol, MinerSession, MoneroMinerConfig, MoneroMinerSession,
    PoolLink,
};

/// Client settings around the session settings `C` ([`MinerConfig`] unless said otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig<C = MinerConfig> {
    /// The session's settings (v1: worker, password, user agent, version rolling; Monero:
    /// wallet, password, agent, algorithms, keep-alive).
    pub miner: C,
    /// A session id to resume (v1: the `session_id` of an earlier
    /// [`MinerEvent::Subscribed`](crate::MinerEvent::Subscribed)); the Monero dialect has no
    /// resumption and ignores it.
    pub resume: Option<String>,
    /// Whether the pool may send the miner to another host (v1: `client.reconnect`, see
    /// [`MinerSession::allow_redirects`]); the Monero dialect has no redirects and ignores it.
    pub allow_redirects: bool,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// The longest line accepted from the pool.
    pub max_line: usize,
    /// Over TLS (`stratum+ssl://`): the SHA-256 fingerprint of the pool's certificate to
    /// insist on. Pools mostly run self-signed certificates, so without one any certificate
    /// is taken (the connection is still encrypted) and
    /// [`peer_fingerprint`](ProtocolClient::peer_fingerprint) tells which one it was.
    #[cfg(feature = "tls")]
    pub tls_fingerprint: Option<[u8; 32]>,
}

/// The settings of a [`MoneroClient`].
pub type MoneroClientConfig = ClientConfig<MoneroMinerConfig>;

impl<C> ClientConfig<C> {
    /// Defaults around a session's settings: nothing to resume, no redirects, 10 s to
    /// connect, [`LineBuffer::DEFAULT_MAX_LINE`].
    pub fn new(miner: C) -> Self {
        ClientConfig {
            miner,
            resume: None,
            allow_redirects: false,
            connect_timeout: Duration::from_secs(10),
            max_line: LineBuffer::DEFAULT_MAX_LINE,
            #[cfg(feature = "tls")]
            tls_fingerprint: None,
        }
    }
}

/// A pool address: `stratum+tcp://host:port`, `stratum+ssl://host:port` (TLS), or just
/// `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolUrl {
    /// Host name or IP address (IPv6 without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the pool speaks Stratum over TLS (`stratum+ssl://`, also written
    /// `stratum+tls://`).
    pub tls: bool,
    /// For a Stratum V2 pool (`stratum2+tcp://host:port/<key>`), its authority key.
    pub authority: Option<String>,
}

impl PoolUrl {
    /// Parses a pool URL: Stratum over plain TCP (of any dialect: xmrig's pools use the same
    /// scheme) or over TLS (`stratum+ssl`, `stratum+tls`; with the `tls` feature).
    /// `stratum2+tcp` and the like are refused rather than spoken to in the wrong protocol.
    pub fn parse(url: &str) -> Result<PoolUrl, ClientError> {
        let bad = |reason: &'static str| ClientError::Url {
            url: url.to_owned(),
            reason,
        };
        let mut authority = None;
        let (rest, tls) = match url.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                match scheme.as_str() {
                    "stratum+tcp" => (rest, false),
                    "stratum2+tcp" if cfg!(feature = "noise") => {
                        let (rest, key) = rest
                            .split_once('/')
                            .filter(|(_, key)| !key.is_empty())
                            .ok_or_else(|| {
                            bad("the pool's authority key must follow host:port/")
                        })?;
                        authority = Some(key.trim_end_matches('/').to_owned());
                        (rest, false)
                    }
                    "stratum2+tcp" => {
                        return Err(bad("Stratum V2 needs otedama-stratum's noise feature"))
                    }
                    "stratum+ssl" | "stratum+tls" if cfg!(feature = "tls") => (rest, true),
                    "stratum+ssl" | "stratum+tls" => {
                        return Err(bad("TLS needs otedama-stratum's tls feature"))
                    }
                    _ => {
                        return Err(bad(
                            "the scheme is not stratum+tcp, stratum+ssl or stratum2+tcp",
                        ))
                    }
                }
            }
            None => (url, false),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', '#']) || rest.chars().any(char::is_whitespace) {
            return Err(bad("only host:port may follow the scheme"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("the port is missing"))?;
            (host, port)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| bad("the port is missing"))?
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        if !rest.starts_with('[') && host.contains(':') {
            return Err(bad("an IPv6 address needs brackets"));
        }
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(PoolUrl {
            host: host.to_owned(),
            port,
            tls,
            authority,
        })
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.tls, &self.authority) {
            (_, Some(_)) => "stratum2+tcp",
            (true, None) => "stratum+ssl",
            (false, None) => "stratum+tcp",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)?;
        }
        match &self.authority {
            Some(key) => write!(f, "/{key}"),
            None => Ok(()),
        }
    }
}

/// Why the client cannot go on. The variants that wrap a socket error keep it as their
/// [`source`](std::error::Error::source) rather than repeating it in their message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The pool URL is unusable.
    #[error("bad pool url {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TCP connection failed.
    // The socket error is the source, not part of the message: error-chain printers (anyhow's
    // `{:#}`) would show it twice.
    #[error("could not connect to {url}")]
    Connect {
        /// The pool.
        url: PoolUrl,
        /// The socket error.
        source: io::Error,
    },
    /// The TCP connection took longer than [`ClientConfig::connect_timeout`].
    #[error("timed out connecting to {url}")]
    ConnectTimeout {
        /// The pool.
        url: PoolUrl,
    },
    /// A socket error on the established connection.
    #[error("connection to the pool failed")]
    Io(#[from] io::Error),
    /// The pool closed the connection.
    #[error("the pool closed the connection")]
    Disconnected,
    /// The pool sent a line longer than [`ClientConfig::max_line`].
    #[error("the pool sent a line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The TLS layer failed: a failed handshake (a certificate that does not match
    /// [`ClientConfig::tls_fingerprint`] among the reasons), or a bad record.
    #[cfg(feature = "tls")]
    #[error("TLS with the pool failed")]
    Tls(#[from] rustls::Error),
    /// The session has ended and its last events were returned (v1:
    /// [`MinerEvent::Closed`](crate::MinerEvent::Closed), Monero:
    /// [`MoneroMinerEvent::Closed`](crate::MoneroMinerEvent::Closed)), or an error above
    /// ended the connection.
    #[error("the session is closed")]
    Closed,
}

/// One connection to a pool, speaking the dialect of `P`.
#[derive(Debug)]
pub struct ProtocolClient<P: MinerProtocol> {
    stream: TcpStream,
    /// The TLS session over `stream`, for a `stratum+ssl://` pool; `out` then holds
    /// ciphertext.
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    session: P,
    url: PoolUrl,
    lines: LineBuffer,
    max_line: usize,
    /// Bytes queued for the pool, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// The connection failed; the session itself may not know.
    failed: bool,
}

/// The Stratum v1 client: a [`MinerSession`], [`MinerEvent`](crate::MinerEvent)s,
/// [`MinerShare`](crate::MinerShare)s.
pub type Client = ProtocolClient<MinerSession>;

/// The Monero-dialect client (as xmrig speaks it): a [`MoneroMinerSession`],
/// [`MoneroMinerEvent`](crate::MoneroMinerEvent)s, [`MoneroMinerShare`](crate::MoneroMinerShare)s.
pub type MoneroClient = ProtocolClient<MoneroMinerSession>;

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Where decrypted bytes go: the client itself, with the plaintext.
type PlainSink<C> = dyn FnMut(&mut C, &[u8]) -> Result<(), ClientError>;

impl<P: MinerProtocol> ProtocolClient<P> {
    /// Connects to `url` and opens the session, whose opening requests (v1: configure if
    /// version rolling is configured, subscribe, authorize; Monero: login) go out with the
    /// first [`next_event`](ProtocolClient::next_event).
    pub async fn connect(url: &str, config: ClientConfig<P::Config>) -> Result<Self, ClientError> {
        let url = PoolUrl::parse(url)?;
        let stream = match timeout(
            config.connect_timeout,
            TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ClientError::Connect { url, source }),
            Err(_) => return Err(ClientError::ConnectTimeout { url }),
        };
        // Shares are small and late ones are worth less: no Nagle delay.
        stream.set_nodelay(true).ok();
        let mut link = PoolLink::new(url.host.clone()).allow_redirects(config.allow_redirects);
        if let Some(resume) = config.resume {
            link = link.with_resume(resume);
        }
        if let Some(key) = &url.authority {
            link = link.with_authority(key.clone());
        }
        #[cfg(feature = "tls")]
        let tls = if url.tls {
            Some(Box::new(super::tls::client_session(
                &url.host,
                config.tls_fingerprint,
            )?))
        } else {
            None
        };
        let session = P::open(config.miner, &link, now());
        let mut client = ProtocolClient {
            stream,
            #[cfg(feature = "tls")]
            tls,
            session,
            url,
            lines: LineBuffer::new(config.max_line),
            max_line: config.max_line,
            out: Vec::new(),
            written: 0,
            failed: false,
        };
        // A TLS client speaks first: its hello goes out with the opening requests.
        client.seal(&[])?;
        Ok(client)
    }

    /// The SHA-256 fingerprint of the pool's certificate, once a TLS handshake has shown it.
    #[cfg(feature = "tls")]
    pub fn peer_fingerprint(&self) -> Option<[u8; 32]> {
        let cert = self.tls.as_ref()?.peer_certificates()?.first()?;
        Some(super::tls::fingerprint(cert.as_ref()))
    }

    /// Queues `plaintext` for the pool: as it is, or through the TLS session.
    fn seal(&mut self, plaintext: &[u8]) -> Result<(), ClientError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            super::tls::seal_records(tls, plaintext, &mut self.out)?;
            return Ok(());
        }
        self.out.extend_from_slice(plaintext);
        Ok(())
    }

    /// Turns bytes from the pool into plaintext for `sink`: as they are, or through the TLS
    /// session (whose answers, handshake records among them, are queued).
    fn open_bytes(&mut self, raw: &[u8], sink: &mut PlainSink<Self>) -> Result<(), ClientError> {
        #[cfg(feature = "tls")]
        if let Some(mut tls) = self.tls.take() {
            use super::tls::OpenError;
            // The taker needs the whole client, so the session's answers wait aside; the
            // taker queues nothing itself.
            let mut answers = Vec::new();
            let result = super::tls::open_records(&mut tls, raw, &mut answers, &mut |plain| {
                sink(self, plain)
            });
            self.out.extend_from_slice(&answers);
            self.tls = Some(tls);
            return result.map_err(|e| match e {
                OpenError::Closed => ClientError::Disconnected,
                OpenError::Io(e) => e.into(),
                OpenError::Tls(e) => e.into(),
                OpenError::Taker(e) => e,
            });
        }
        sink(self, raw)
    }

    /// The pool this client is connected to.
    pub fn url(&self) -> &PoolUrl {
        &self.url
    }

    /// The session, for its state (v1: extranonce, difficulty, session id; Monero: session
    /// id, extensions).
    pub fn session(&self) -> &P {
        &self.session
    }

    /// Queues a share; it goes out with the next [`next_event`](ProtocolClient::next_event)
    /// or [`flush`](ProtocolClient::flush), and its result event carries the returned
    /// sequence number.
    pub fn submit(&mut self, share: P::Share) -> u64 {
        self.session.submit(share)
    }

    /// Drives the connection until the session has an event, and returns it. Once the
    /// session has ended and its events are all returned, or after an error, every call
    /// returns [`ClientError::Closed`].
    ///
    /// Cancel-safe: dropping the future before it completes loses no bytes and no events.
    pub async fn next_event(&mut self) -> Result<P::Event, ClientError> {
        loop {
            if let Some(event) = self.session.poll_event() {
                return Ok(event);
            }
            if self.failed || self.session.is_closed() {
                return Err(ClientError::Closed);
            }
            let result = self.step().await;
            if result.is_err() {
                self.failed = true;
            }
            result?;
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.queue_output();
        while self.written < self.out.len() {
            self.stream.writable().await?;
            self.try_write()?;
        }
        Ok(())
    }

    /// Writes what is queued, then closes the connection.
    pub async fn close(mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            super::tls::close_records(tls, &mut self.out);
        }
        self.flush().await.ok();
        self.stream.shutdown().await.ok();
    }

    fn queue_output(&mut self) {
        let mut plaintext = Vec::new();
        while let Some(output) = self.session.poll_output() {
            plaintext.extend_from_slice(output.as_ref());
        }
        // A TLS failure here surfaces on the next read as the session's end.
        if self.seal(&plaintext).is_err() {
            self.failed = true;
        }
    }

    /// One wait: for the socket to take our bytes, for bytes from the pool, or for the
    /// session's next deadline. Every branch does its work after its only await point.
    async fn step(&mut self) -> Result<(), ClientError> {
        self.queue_output();
        let writing = self.written < self.out.len();
        let deadline = self.session.poll_timeout().map(Instant::from_std);
        ::tokio::select! {
            biased;
            ready = self.stream.writable(), if writing => {
                ready?;
                self.try_write()
            }
            ready = self.stream.readable() => {
                ready?;
                self.try_read()
            }
            () = sleep_or_never(deadline) => {
                self.session.handle_timeout(now());
                Ok(())
            }
        }
    }

    fn try_write(&mut self) -> Result<(), ClientError> {
        let pending = self.out.get(self.written..).unwrap_or_default();
        match self.stream.try_write(pending) {
            Ok(n) => {
                self.written += n;
                if self.written >= self.out.len() {
                    self.out.clear();
                    self.written = 0;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn try_read(&mut self) -> Result<(), ClientError> {
        let mut buf = [0u8; 4096];
        let n = match self.stream.try_read(&mut buf) {
            Ok(0) => return Err(ClientError::Disconnected),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.open_bytes(buf.get(..n).unwrap_or_default(), &mut |client, plain| {
            client.take_lines(plain)
        })
    }

    fn take_lines(&mut self, plain: &[u8]) -> Result<(), ClientError> {
        if P::FRAMING == crate::Framing::Binary {
            self.session.handle_bytes(plain, now());
            return Ok(());
        }
        self.lines
            .feed(plain)
            .map_err(|_| ClientError::LineTooLong {
                limit: self.max_line,
            })?;
        let at = now();
        while let Some(line) = self.lines.next_line() {
            self.session.handle_line(line, at);
        }
        Ok(())
    }
}

async fn sleep_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
