//! Stratum mining protocols for otedama, sans-IO.
//!
//! Bytes go in, events and bytes come out; the caller owns sockets and the clock. The crate
//! holds:
//!
//! - Stratum v1 for the Bitcoin family: [`LineBuffer`] framing with a hard line limit,
//!   [`Message`] parsing that echoes request ids of any JSON type, typed [`ClientRequest`] and
//!   [`ServerRequest`] forms of every method in use (BIP310 `mining.configure` included), and
//!   errors in all three shapes seen in the wild ([`StratumError`]).
//! - [`PoolSession`]: the pool side of a connection (extranonce1 from a shared
//!   [`ExtranonceAllocator`], authorization, version rolling, vardiff, job announcement,
//!   share checks for stale, duplicate, ntime and version bits, ban score, timeouts). The
//!   session never validates proof of work itself: it hands each share to the caller as a
//!   [`PoolEvent::Share`] and answers when told the verdict.
//! - [`MinerSession`]: the miner side (configure, subscribe with resume, authorize,
//!   extranonce subscription, jobs carrying the difficulty and extranonce in force for them,
//!   submits matched to their results, same-host-only reconnects), and [`MinerJob`] helpers
//!   that build the 80-byte header and the share target and iterate extranonce2 values.
//! - The Monero (xmrig) dialect: typed `login`/`job`/`submit`/`keepalived` messages
//!   ([`MoneroClientRequest`], [`MoneroJob`], ..), the pool side [`MoneroPoolSession`] and the
//!   miner side [`MoneroMinerSession`].
//! - EthereumStratum/1.0.0 (NiceHash) and the kawpowminer variant: [`EthClientRequest`],
//!   [`EthServerRequest`], [`EthSubscribeResult`], and the pool side [`EthPoolSession`].
//! - [`PoolProtocol`]: the one trait the three pool sessions implement (lines in and out,
//!   events in one [`SessionEvent`] shape, verdicts as [`ShareVerdict`], jobs, timeouts), on
//!   one session core they share for what does not depend on the wire format: the
//!   [`AuthorizeToken`]s and [`ShareToken`]s awaiting a verdict, [`CloseReason`]s, the login
//!   and idle clocks, the ban score, and the bounded duplicate check.
//! - [`MinerProtocol`]: its miner-side mirror, implemented by [`MinerSession`] and
//!   [`MoneroMinerSession`] (lines in and out, the dialect's events, shares, timeouts), opened
//!   over a [`PoolLink`] (the pool's host, a session to resume, whether redirects are allowed).
//! - Stratum V2's binary protocol ([`sv2`]): its data types, framing, and every message of
//!   the common, mining, job declaration and template distribution protocols, bounded.
//! - With the feature `tokio`, the `server` module: one TCP server, generic over
//!   [`PoolProtocol`], for all three dialects (`Server` for v1, `MoneroServer`, `EthServer`);
//!   and the `client` module: one miner connection, generic over [`MinerProtocol`] (`Client`
//!   for v1, `MoneroClient`).
//!
//! # Example
//!
//! A pool session answering a miner's subscribe and authorize:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use otedama_stratum::{ExtranonceAllocator, PoolConfig, PoolEvent, PoolSession};
//!
//! let allocator = ExtranonceAllocator::new(&[], 4)?;
//! let now = Instant::now();
//! let mut session = PoolSession::new(Arc::new(PoolConfig::default()), allocator, now);
//! session.handle_line(br#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#, now);
//! let reply = session.poll_output().expect("subscribe result");
//! assert!(reply.contains(r#""id":1"#));
//!
//! session.handle_line(br#"{"id": 2, "method": "mining.authorize", "params": ["addr.rig1", "x"]}"#, now);
//! let Some(PoolEvent::Authorize { token, username, .. }) = session.poll_event() else { panic!() };
//! assert_eq!(username, "addr.rig1");
//! session.authorize_result(token, Ok(()));
//! assert_eq!(session.poll_output().as_deref(), Some("{\"error\":null,\"id\":2,\"result\":true}\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Code written once against [`PoolProtocol`] serves every dialect; here it logs in an xmrig
//! miner, whose login result carries the first job:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use otedama_stratum::{
//!     ExtranonceAllocator, MoneroJob, MoneroPoolConfig, MoneroPoolSession, PoolProtocol,
//!     SessionEvent, ShareVerdict, SubmittedShare,
//! };
//!
//! /// Accepts every worker and share, and hands out `job` once a session wants work.
//! fn serve<P: PoolProtocol>(session: &mut P, job: &P::Job, now: Instant) {
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             SessionEvent::Authorize { token, .. } => session.authorize_result(token, Ok(())),
//!             SessionEvent::Share(share) => session.share_result(share.token(), ShareVerdict::Accepted),
//!             _ => {}
//!         }
//!     }
//!     if session.wants_jobs() {
//!         session.send_job(job, now);
//!     }
//! }
//!
//! let now = Instant::now();
//! let allocator = ExtranonceAllocator::new(&[], 4)?;
//! let Ok(mut xmrig) = MoneroPoolSession::open(Arc::new(MoneroPoolConfig::default()), allocator, now);
//! xmrig.handle_line(br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4wallet","pass":"x"}}"#, now);
//! let job = MoneroJob::from_json(&serde_json::json!({
//!     "blob": "00".repeat(76), "job_id": "1", "target": "37894100", "height": 1
//! }))?;
//! serve(&mut xmrig, &job, now);
//! let login = xmrig.poll_output().expect("login result");
//! assert!(login.contains(r#""job_id":"1""#) && login.contains(r#""status":"OK""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod edge;
pub mod proxy;
mod session;
pub mod sv2;
mod v1;

pub use session::{
    AuthorizeToken, CloseReason, Framing, MinerProtocol, PoolLink, PoolProtocol, SessionEvent,
    ShareToken, ShareVerdict, SubmittedShare,
};

pub use v1::error::{ErrorCode, StratumError};
pub use v1::extranonce::{Extranonce1, ExtranonceAllocator, ExtranonceConfigError};
pub use v1::frame::{FrameError, LineBuffer};
pub use v1::message::{
    difficulty_json, format_hex_u32, parse_hex_u32, Authorize, ClientRequest, Configure, Message,
    Notify, ParamsError, ParseError, Reconnect, Request, RequestId, Response, ServerRequest,
    Submit, Subscribe, SubscribeResult, VersionRollingRequest,
};
pub use v1::pool::{JobAnnouncement, PoolConfig, PoolEvent, PoolSession, ShareSubmission};
pub use v1::vardiff::{Vardiff, VardiffConfig};

#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tls")]
pub use self::tokio::tls;
#[cfg(feature = "tokio")]
pub use self::tokio::{client, server};

mod ethereum;
mod monero;

pub use ethereum::message::{
    eth_share_target, EthClientRequest, EthNotify, EthServerRequest, EthSubmit, EthSubscribe,
    EthSubscribeResult, KawpowNotify, ETH_MAX_EXTRANONCE, ETH_STRATUM_PROTOCOL,
};
pub use ethereum::pool::{
    EthAuthorizeToken, EthConfigError, EthPoolConfig, EthPoolEvent, EthPoolSession,
    EthShareSubmission, EthShareToken,
};
pub use monero::message::{
    monero_status, MoneroClientRequest, MoneroError, MoneroJob, MoneroLogin, MoneroLoginResult,
    MoneroMessage, MoneroResponse, MoneroServerRequest, MoneroSubmit, MONERO_MAX_BLOB,
    MONERO_NONCE_OFFSET, MONERO_STATUS_KEEPALIVED, MONERO_STATUS_OK,
};
pub use monero::miner::{
    MoneroMinerConfig, MoneroMinerError, MoneroMinerEvent, MoneroMinerSession, MoneroMinerShare,
};
pub use monero::pool::{
    MoneroLoginToken, MoneroPoolConfig, MoneroPoolEvent, MoneroPoolSession, MoneroShareSubmission,
    MoneroShareToken,
};
pub use v1::miner::{
    Extranonce2Iter, MinerCloseReason, MinerConfig, MinerError, MinerEvent, MinerJob,
    MinerJobError, MinerSession, MinerShare, MAX_MERKLE_BRANCH,
};
