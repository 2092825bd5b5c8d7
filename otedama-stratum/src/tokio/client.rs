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
        }
    }
}

/// A pool address: `stratum+tcp://host:port`, or just `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolUrl {
    /// Host name or IP address (IPv6 without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl PoolUrl {
    /// Parses a pool URL. Only plain TCP Stratum is accepted (of any dialect: xmrig's pools
    /// use the same scheme): `stratum+ssl`, `stratum2+tcp` and the like are refused rather
    /// than spoken to in the wrong protocol.
    pub fn parse(url: &str) -> Result<PoolUrl, ClientError> {
        let bad = |reason: &'static str| ClientError::Url {
            url: url.to_owned(),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) => {
                if !scheme.eq_ignore_ascii_case("stratum+tcp") {
                    return Err(bad("the scheme is not stratum+tcp"));
                }
                rest
            }
            None => url,
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
        })
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "stratum+tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "stratum+tcp://{}:{}", self.host, self.port)
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
        let session = P::open(config.miner, &link, now());
        Ok(ProtocolClient {
            stream,
            session,
            url,
            lines: LineBuffer::new(config.max_line),
            max_line: config.max_line,
            out: Vec::new(),
            written: 0,
            failed: false,
        })
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
        self.flush().await.ok();
        self.stream.shutdown().await.ok();
    }

    fn queue_output(&mut self) {
        while let Some(line) = self.session.poll_output() {
            self.out.extend_from_slice(line.as_bytes());
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
        self.lines
            .feed(buf.get(..n).unwrap_or_default())
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
