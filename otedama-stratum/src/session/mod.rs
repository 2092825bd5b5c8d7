//! What the three pool-side dialects share: the [`PoolProtocol`] trait they implement, the
//! event, token, verdict and close-reason types they all speak, and the session core that
//! keeps their common state. The miner side's [`MinerProtocol`] lives here too.
//!
//! Stratum v1 ([`PoolSession`](crate::PoolSession)), the Monero dialect
//! ([`MoneroPoolSession`](crate::MoneroPoolSession)) and EthereumStratum
//! ([`EthPoolSession`](crate::EthPoolSession)) differ in their messages, their jobs and the
//! checks a share goes through; they do not differ in the rest. Each keeps a [`SessionCore`]
//! for the lines to write, the events for the caller, the authorizations and shares awaiting
//! a verdict, the login and idle clocks, the ban score and the share counters, and each checks
//! duplicates with a bounded [`SeenShares`].

pub(crate) mod liveness;
mod miner;
mod state;

use std::sync::Arc;
use std::time::Instant;

use crate::ExtranonceAllocator;

#[cfg(feature = "noise")]
pub(crate) use liveness::Liveness;
pub use miner::{MinerProtocol, PoolLink};
pub(crate) use state::{SeenShares, SessionCore, SessionEvents, PENALTY};

/// Identifies an authorization (or a Monero login) awaiting the caller's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorizeToken(pub(crate) u64);

/// Identifies a share awaiting the caller's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareToken(pub(crate) u64);

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// No subscribe (Monero: no accepted login) within the allowed time.
    SubscribeTimeout,
    /// Silent for too long.
    Idle,
    /// Too many bad shares or lines.
    Banned,
    /// The line was not Stratum at all (TLS, HTTP, binary) before any subscribe or login.
    NotStratum,
    /// Every extranonce1 (Monero: every session id) is in use.
    PoolFull,
    /// Closed by the caller.
    Requested,
}

/// The caller's verdict on a share.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ShareVerdict {
    /// Valid and recorded.
    Accepted,
    /// The hash misses the share difficulty.
    LowDifficulty,
    /// The job went stale while the share was being checked.
    Stale,
    /// Invalid for another reason.
    Invalid(String),
    /// The pool could not judge or record the share (its storage or a check thread failed,
    /// or did not finish in time): no fault of the miner's, so it costs no ban score. The
    /// share is not credited.
    PoolError(String),
}

impl ShareVerdict {
    /// Ban-score points a rejection costs: stale shares happen to honest miners around block
    /// changes, so they cost little.
    pub(crate) fn penalty(&self) -> i32 {
        match self {
            ShareVerdict::Accepted | ShareVerdict::PoolError(_) => 0,
            ShareVerdict::Stale => 1,
            ShareVerdict::LowDifficulty | ShareVerdict::Invalid(_) => 5,
        }
    }
}

/// What a pool session needs the caller to decide, in the shape every dialect shares; `S` is
/// the dialect's share ([`ShareSubmission`](crate::ShareSubmission),
/// [`MoneroShareSubmission`](crate::MoneroShareSubmission),
/// [`EthShareSubmission`](crate::EthShareSubmission)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent<S> {
    /// A worker asks to be authorized (Monero: logs in); answer with the session's
    /// `authorize_result` ([`PoolProtocol::authorize_result`]).
    Authorize {
        /// The request to answer.
        token: AuthorizeToken,
        /// `address` or `address.worker` (Monero: the `login` field).
        username: String,
        /// The password, if sent.
        password: Option<String>,
    },
    /// A share that passed the session's checks, to validate; answer with the session's
    /// `share_result` ([`PoolProtocol::share_result`]).
    Share(S),
    /// The session ended; close the connection.
    Closed(CloseReason),
}

/// What generic code can read of any dialect's share: enough to answer it and say whose it
/// is. The dialect's own type holds the rest (nonce, extranonce, blob, ..).
pub trait SubmittedShare {
    /// The token to answer the share with.
    fn token(&self) -> ShareToken;
    /// The authorized worker (Monero: the login) it was submitted under.
    fn worker(&self) -> &str;
    /// The job it was mined on.
    fn job_id(&self) -> &str;
}

/// How a dialect's bytes are cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Lines ending in `\n` (Stratum v1, the Monero dialect, EthereumStratum): the server
    /// cuts them and hands each to [`PoolProtocol::handle_line`].
    Lines,
    /// A binary stream (Stratum V2): the server hands bytes as they arrive to
    /// [`PoolProtocol::handle_bytes`].
    Binary,
}

/// The pool side of one miner connection in any dialect, sans-IO: what a server needs to
/// drive a session without knowing its wire format.
///
/// [`PoolSession`](crate::PoolSession) (Stratum v1),
/// [`MoneroPoolSession`](crate::MoneroPoolSession) (xmrig's dialect) and
/// [`EthPoolSession`](crate::EthPoolSession) (EthereumStratum/1.0.0) implement it; the tokio
/// server (feature `tokio`) drives any of them. Lines come in with [`handle_line`], lines to
/// write come out of [`poll_output`], decisions come out of [`poll_event`] in one
/// [`SessionEvent`] shape and go back in with [`authorize_result`] and [`share_result`], jobs
/// go in with [`send_job`] once [`wants_jobs`] says so, and time only moves through the `now`
/// arguments and [`handle_timeout`].
///
/// The sessions keep their own inherent methods, which take the same arguments except where
/// a dialect needs more (the Monero session's `login_result` takes the first job, its
/// `send_job` no time). Where a method here behaves differently from the inherent one of the
/// same name, its documentation says so.
///
/// [`handle_line`]: PoolProtocol::handle_line
/// [`poll_output`]: PoolProtocol::poll_output
/// [`poll_event`]: PoolProtocol::poll_event
/// [`authorize_result`]: PoolProtocol::authorize_result
/// [`share_result`]: PoolProtocol::share_result
/// [`send_job`]: PoolProtocol::send_job
/// [`wants_jobs`]: PoolProtocol::wants_jobs
/// [`handle_timeout`]: PoolProtocol::handle_timeout
pub trait PoolProtocol: Sized + Send + 'static {
    /// The dialect's settings, shared by every session of a server.
    type Config: std::fmt::Debug + Send + Sync + 'static;
    /// A job as the pool announces it to every session.
    type Job: std::fmt::Debug + Send + Sync + 'static;
    /// A share that passed the session's checks, for the caller to validate.
    type Share: SubmittedShare + std::fmt::Debug + Send + 'static;
    /// Why [`open`](PoolProtocol::open) cannot serve a configuration.
    type OpenError: std::error::Error + Send + Sync + 'static;
    /// What the session writes: lines (`String`) or bytes.
    type Output: AsRef<[u8]> + Send + 'static;
    /// How the dialect's input is cut into messages.
    const FRAMING: Framing = Framing::Lines;

    /// A session for a new connection at `now`, drawing what makes it unique from
    /// `allocator` (the extranonce of Stratum v1 and EthereumStratum, the session id of the
    /// Monero dialect).
    fn open(
        config: Arc<Self::Config>,
        allocator: Arc<ExtranonceAllocator>,
        now: Instant,
    ) -> Result<Self, Self::OpenError>;

    /// Handles one line from the miner, without its newline.
    fn handle_line(&mut self, line: &[u8], now: Instant);

    /// Handles bytes from the miner as they arrive, for a [`Framing::Binary`] dialect (a
    /// line dialect gets whole lines through [`handle_line`](PoolProtocol::handle_line)
    /// instead); returns how many messages they completed, which the server's message rate
    /// limit counts.
    fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> usize {
        self.handle_line(bytes, now);
        1
    }

    /// The next output to write to the miner (a line with its newline, or bytes).
    fn poll_output(&mut self) -> Option<Self::Output>;

    /// The next decision needed from the caller.
    fn poll_event(&mut self) -> Option<SessionEvent<Self::Share>>;

    /// Answers a [`SessionEvent::Authorize`]: `Ok` authorizes the worker, `Err` refuses it
    /// with the reason (e.g. "invalid payout address").
    fn authorize_result(&mut self, token: AuthorizeToken, result: Result<(), String>);

    /// Answers a [`SessionEvent::Share`]. Accept only once the share is durably recorded.
    fn share_result(&mut self, token: ShareToken, verdict: ShareVerdict);

    /// Whether the session is ready for work: from then on it should get the current job and
    /// every new one through [`send_job`](PoolProtocol::send_job).
    fn wants_jobs(&self) -> bool;

    /// The worker to tailor jobs for: the first one authorized (or the one being logged in).
    fn worker(&self) -> Option<&str>;

    /// Announces a job; ignored until the session [wants jobs](PoolProtocol::wants_jobs).
    fn send_job(&mut self, job: &Self::Job, now: Instant);

    /// The instant by which [`handle_timeout`](PoolProtocol::handle_timeout) must be called
    /// next; `None` once closed.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Checks the timeouts at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Ends the session; authorizations and shares still awaiting a verdict are forgotten.
    fn close(&mut self, reason: CloseReason);

    /// Whether the session has ended.
    fn is_closed(&self) -> bool;
}
