//! A Stratum v1 TCP client driving a [`MinerSession`].
//!
//! [`Client::connect`] dials `stratum+tcp://host:port` and sends the opening requests;
//! [`Client::next_event`] then moves bytes both ways and returns the session's events one at a
//! time. It spawns nothing: the miner's own loop owns the client and polls it, typically in a
//! `select!` beside the channel its hashing threads report solutions on, and hands those to
//! [`Client::submit`]. `next_event` is cancel-safe, so losing such a race loses nothing.
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

use std::fmt;
use std::io;
use std::time::Duration;

use ::tokio::io::AsyncWriteExt;
use ::tokio::net::TcpStream;
use ::tokio::time::{sleep_until, timeout, Instant};

use crate::{LineBuffer, MinerConfig, MinerEvent, MinerSession, MinerShare};

/// Client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The session's settings: worker, password, user agent, version rolling.
    pub miner: MinerConfig,
    /// A session id to resume (the `session_id` of an earlier [`MinerEvent::Subscribed`]).
    pub resume: Option<String>,
    /// Whether `client.reconnect` may name another host (see [`MinerSession::allow_redirects`]).
    pub allow_redirects: bool,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// The longest line accepted from the pool.
    pub max_line: usize,
}

impl ClientConfig {
    /// Defaults around a session's settings.
    pub fn new(miner: MinerConfig) -> Self {
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
    /// Parses a pool URL. Only plain TCP Stratum v1 is accepted: `stratum+ssl`, `stratum2+tcp`
    /// and the like are refused rather than spoken to in the wrong protocol.
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

/// Why the client cannot go on.
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
    #[error("could not connect to {url}: {source}")]
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
    #[error("connection to the pool failed: {0}")]
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
    /// The session has ended ([`MinerEvent::Closed`] was returned, or an error above).
    #[error("the session is closed")]
    Closed,
}

/// One connection to a pool.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    session: MinerSession,
    url: PoolUrl,
    lines: LineBuffer,
    max_line: usize,
    /// Bytes queued for the pool, from `written` on.
    out: Vec<u8>,
    written: usize,
    done: bool,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Client {
    /// Connects to `url` and queues `mining.configure` (if version rolling is configured),
    /// `mining.subscribe` and `mining.authorize`; they go out with the first
    /// [`next_event`](Client::next_event).
    pub async fn connect(url: &str, config: ClientConfig) -> Result<Client, ClientError> {
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
        stream.set_nodelay(true).ok();
        let mut session = MinerSession::new(config.miner, now())
            .with_pool_host(url.host.clone())
            .allow_redirects(config.allow_redirects);
        if let Some(resume) = config.resume {
            session = session.with_resume(resume);
        }
        session.start();
        Ok(Client {
            stream,
            session,
            url,
            lines: LineBuffer::new(config.max_line),
            max_line: config.max_line,
            out: Vec::new(),
            written: 0,
            done: false,
        })
    }

    /// The pool this client is connected to.
    pub fn url(&self) -> &PoolUrl {
        &self.url
    }

    /// The session, for its state (extranonce, difficulty, session id).
    pub fn session(&self) -> &MinerSession {
        &self.session
    }

    /// Queues a share; it goes out with the next [`next_event`](Client::next_event) or
    /// [`flush`](Client::flush), and its [`MinerEvent::ShareResult`] carries the returned
    /// sequence number.
    pub fn submit(&mut self, share: MinerShare) -> u64 {
        self.session.submit(share)
    }

    /// Drives the connection until the session has an event, and returns it. After
    /// [`MinerEvent::Closed`] or an error, every call returns [`ClientError::Closed`].
    ///
    /// Cancel-safe: dropping the future before it completes loses no bytes and no events.
    pub async fn next_event(&mut self) -> Result<MinerEvent, ClientError> {
        loop {
            if let Some(event) = self.session.poll_event() {
                if matches!(event, MinerEvent::Closed(_)) {
                    self.done = true;
                }
                return Ok(event);
            }
            if self.done {
                return Err(ClientError::Closed);
            }
            let result = self.step().await;
            if result.is_err() {
                self.done = true;
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
