//! The otedama pool engine, embeddable: the job book, share validation, block assembly and
//! submission, the share log, and the accounting rules (maturity, crediting, orphan
//! reversal, PPS/FPPS share pay, payment planning and reconciliation). One [`Engine`] serves
//! the Bitcoin family (sha256d, scrypt) or Monero-layout RandomX work ([`monero`]) through
//! the same share path.
//!
//! Nothing here picks a runtime. Work comes in through narrow traits split by role
//! ([`TemplateSource`], [`BlockSubmitter`], [`ChainView`]; [`RxSource`] for RandomX), payments
//! go out through a [`Wallet`], and storage sits behind [`Store`]. Adapters live behind
//! additive features:
//!
//! | feature | adds |
//! |---|---|
//! | `sqlite` | [`SqliteStore`](store::SqliteStore) (bundled SQLite) |
//! | `postgres` | [`PostgresStore`](store::PostgresStore) |
//! | `node-rpc` | [`NodeRpc`](source::node::NodeRpc): a Bitcoin-family node's templates, long-poll, `submitblock` and wallet |
//! | `devnet` | in-process chains ([`Devnet`](source::devnet::Devnet), [`RxDevnet`](source::devnet_rx::RxDevnet)) and the devnet's wallet, so a pool runs and pays with no node |
//! | `tokio` | [`PoolService`](service::PoolService): the engine behind `otedama-stratum`'s tokio server (Stratum v1 with its long-poll and template threads, or the Monero dialect with its tip watcher) |
//! | `p2p` | [`sharechain`]: the service mining on an `otedama-p2p` sharechain on the network, every coinbase paying the sharechain's window |
//! | `http` | [`http`]: the REST and WebSocket API with token auth, the dashboard, Prometheus metrics and health, as axum `Router`s |
//!
//! # Example
//!
//! A job book turns a template into a Stratum job, and a share rebuilt from it is judged
//! against the share and network targets:
//!
//! ```
//! use std::sync::Arc;
//! use otedama_core::bitcoin::ScriptBuf;
//! use otedama_core::{BlockTemplate, CompactTarget, DifficultyConvention, Share};
//! use otedama_hash::Sha256d;
//! use otedama_pool::{validate, JobBook, ShareError};
//!
//! let template = Arc::new(BlockTemplate {
//!     height: 1,
//!     version: 0x2000_0000,
//!     prev_hash: [7; 32],
//!     bits: CompactTarget::from_consensus(0x1d00_ffff),
//!     curtime: 1_700_000_000,
//!     mintime: 0,
//!     coinbase_value: 50 * 100_000_000,
//!     transactions: Vec::new(),
//!     witness_commitment: None,
//!     mweb: None,
//!     id: "1".into(),
//! });
//! let mut book = JobBook::default();
//! let job = book
//!     .make(template, &ScriptBuf::new(), b"/example/", true, 1_700_000_000)
//!     .expect("job");
//! let share = Share {
//!     job_id: job.job.id.clone(),
//!     extranonce1: vec![0; 4],
//!     extranonce2: vec![0; 4],
//!     ntime: job.job.time,
//!     nonce: 0,
//!     version_bits: None,
//!     worker: "miner".into(),
//! };
//! // A share difficulty of a million is out of reach for one nonce.
//! let outcome = validate(&job, &share, 0, 1e6, &Sha256d::new(), DifficultyConvention::Bitcoin);
//! assert!(matches!(outcome, Err(ShareError::LowDifficulty)));
//! ```

pub mod accounting;
pub mod activity;
pub mod auth;
pub mod engine;
#[cfg(feature = "http")]
pub mod http;
mod identity;
mod jobs;
pub mod monero;
#[cfg(feature = "tokio")]
pub mod service;
#[cfg(feature = "p2p")]
pub mod sharechain;
pub mod source;
pub mod store;
pub mod telemetry;
mod validate;
pub mod wallet;
pub mod xmr_address;

pub use engine::{
    Action, AuthorizeError, CheckedShare, Deadlines, Engine, EngineConfig, EngineStats, FoundBlock,
    JobError, Now, Report, ShareCheck, ShareId, Submission, Tip,
};
pub use identity::{Identity, IdentityError, MAX_IDENTITY_LEN};
pub use jobs::{JobBook, PoolJob, SideJob, EXTRANONCE1_SIZE, EXTRANONCE2_SIZE};
pub use monero::{
    rx_block_id, RxConfig, RxJob, RxJobError, RxKernelMaker, RxKeys, RxSource, RxSubmission,
    RxWork, RX_ALGO, RX_KEYS_KEPT,
};
pub use source::{
    BlockRejection, BlockSubmitter, ChainView, RpcError, SourceError, SubmitError, TemplateSource,
};
pub use store::{
    AuditEntry, AuditStore, BanStore, BlockCredit, LedgerStore, PaymentStore, Refusal, Rows,
    ShareLog, ShareStore, Store, StoreError,
};
pub use validate::{share_of, validate, Outcome, ShareError, Stage};
pub use wallet::Wallet;

/// Shows an error with every source under it, `outer: inner: innermost`: the errors here
/// keep their causes as sources, and a log line or note wants them all.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

/// The litecoind regtest harness, shared with the integration tests.
#[cfg(test)]
#[allow(unreachable_pub)]
#[path = "../tests/support/litecoind.rs"]
mod litecoind_support;

/// The monerod regtest harness, shared with the integration tests.
#[cfg(all(test, feature = "node-rpc"))]
#[allow(unreachable_pub)]
#[path = "../tests/support/monerod.rs"]
mod monerod_support;

/// The PostgreSQL harness, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/support/postgres.rs"]
mod postgres_support;
