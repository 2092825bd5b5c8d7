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
#![forbid(unsafe_code)]

mod liveness;
mod v1;

pub use v1::error::{ErrorCode, StratumError};
pub use v1::extranonce::{Extranonce1, ExtranonceAllocator, ExtranonceConfigError};
pub use v1::frame::{FrameError, LineBuffer};
pub use v1::message::{
    difficulty_json, format_hex_u32, parse_hex_u32, Authorize, ClientRequest, Configure, Message,
    Notify, ParamsError, ParseError, Reconnect, Request, RequestId, Response, ServerRequest,
    Submit, Subscribe, SubscribeResult, VersionRollingRequest,
};
pub use v1::pool::{
    AuthorizeToken, CloseReason, JobAnnouncement, PoolConfig, PoolEvent, PoolSession,
    ShareSubmission, ShareToken, ShareVerdict,
};
pub use v1::vardiff::{Vardiff, VardiffConfig};

#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tokio")]
pub use self::tokio::{client, server};

mod ethereum;
mod monero;

pub use ethereum::{
    eth_share_target, EthAuthorizeToken, EthClientRequest, EthConfigError, EthNotify,
    EthPoolConfig, EthPoolEvent, EthPoolSession, EthServerRequest, EthShareSubmission,
    EthShareToken, EthSubmit, EthSubscribe, EthSubscribeResult, KawpowNotify, ETH_MAX_EXTRANONCE,
    ETH_STRATUM_PROTOCOL,
};
pub use monero::{
    monero_status, MoneroClientRequest, MoneroError, MoneroJob, MoneroLogin, MoneroLoginResult,
    MoneroLoginToken, MoneroMessage, MoneroMinerConfig, MoneroMinerError, MoneroMinerEvent,
    MoneroMinerSession, MoneroMinerShare, MoneroPoolConfig, MoneroPoolEvent, MoneroPoolSession,
    MoneroResponse, MoneroServerRequest, MoneroShareSubmission, MoneroShareToken, MoneroSubmit,
    MONERO_MAX_BLOB, MONERO_NONCE_OFFSET, MONERO_STATUS_KEEPALIVED, MONERO_STATUS_OK,
};
pub use v1::miner::{
    Extranonce2Iter, MinerCloseReason, MinerConfig, MinerError, MinerEvent, MinerJob,
    MinerJobError, MinerSession, MinerShare, MAX_MERKLE_BRANCH,
};
