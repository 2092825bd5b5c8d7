//! Where work comes from and where blocks go, split by role so that each caller holds only
//! what it uses: templates and long-polls ([`TemplateSource`]), block submission
//! ([`BlockSubmitter`]) and the main chain's view of found blocks ([`ChainView`]).
//!
//! Every call may block on the network; a pool runs them on threads of its own choosing (the
//! engine itself never calls them). A node holds a long-poll until its template changes, so a
//! pool opens one source for long-polls and another for submissions, and a block never waits
//! behind a long-poll.

#[cfg(feature = "devnet")]
pub mod devnet;
#[cfg(feature = "devnet")]
pub mod devnet_rx;
#[cfg(feature = "node-rpc")]
pub mod monerod;
#[cfg(feature = "node-rpc")]
pub mod node;

use std::time::Duration;

use otedama_core::BlockTemplate;

/// The error a transport (an HTTP client, a socket) failed with, kept as the source of a
/// [`SourceError`]; shared so the error stays cheap to clone into reports.
pub type TransportError = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Why a source could not serve a template or answer about the chain.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The call did not reach the source, or its answer was lost; the caller keeps its last
    /// job and retries.
    #[error("{call}: the work source cannot be reached")]
    Unreachable {
        /// The call (an RPC method).
        call: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// The source refused the pool's credentials.
    #[error("{call}: the node refused the rpc credentials (http {status})")]
    Credentials {
        /// The call.
        call: String,
        /// The HTTP status it answered with.
        status: u16,
    },
    /// The node's cookie file could not be read.
    #[error("cannot read the rpc cookie {path}")]
    Cookie {
        /// The cookie file.
        path: std::path::PathBuf,
        /// The reading error.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// The node's cookie file is not `user:password`.
    #[error("the rpc cookie {path} is not user:password")]
    BadCookie {
        /// The cookie file.
        path: std::path::PathBuf,
    },
    /// The source did not answer in time (a long-poll that saw no change ends this way).
    #[error("{call}: the work source did not answer in time")]
    TimedOut {
        /// The call.
        call: String,
    },
    /// The node answered the call with an error of its own.
    #[error("{call}: node error {}: {}", source.code, source.message)]
    Node {
        /// The call.
        call: String,
        /// The node's error.
        #[source]
        source: RpcError,
    },
    /// The work is not ready yet (a sharechain still syncing): no job is made until it is.
    #[error("the work is not ready: {what}")]
    NotReady {
        /// What it waits for.
        what: String,
    },
    /// The source answered with something unusable.
    #[error("{call}: unusable answer: {field} {problem}")]
    BadAnswer {
        /// The call.
        call: String,
        /// The part of the answer at fault.
        field: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl SourceError {
    /// A [`SourceError::BadAnswer`].
    pub fn bad_answer(call: &str, field: &str, problem: &'static str) -> SourceError {
        SourceError::BadAnswer {
            call: call.to_owned(),
            field: field.to_owned(),
            problem,
        }
    }

    /// Whether asking again later may succeed (the source is down or slow), as opposed to
    /// an answer that will stay wrong until someone fixes the configuration or the node.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Unreachable { .. }
                | SourceError::TimedOut { .. }
                | SourceError::Node { .. }
                | SourceError::NotReady { .. }
        )
    }
}

/// An error a node returned for a JSON-RPC call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node error {code}: {message}")]
pub struct RpcError {
    /// The JSON-RPC error code (`-5` not found, `-25`/`-26` refused, ...).
    pub code: i64,
    /// The node's message.
    pub message: String,
}

/// Why a node refused a block, as BIP22 names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockRejection {
    /// Valid, but another block at its height came first: it may still win a reorganisation,
    /// so it is watched like an accepted block.
    #[error("inconclusive")]
    Inconclusive,
    /// The node has this block already.
    #[error("duplicate")]
    Duplicate,
    /// Invalid, with the node's reason code (`bad-cb-height`, `high-hash`, ...).
    #[error("{0}")]
    Invalid(String),
}

impl BlockRejection {
    /// The rejection a BIP22 `submitblock` reason code stands for.
    pub fn from_reason(reason: &str) -> BlockRejection {
        match reason {
            "inconclusive" => BlockRejection::Inconclusive,
            "duplicate" => BlockRejection::Duplicate,
            other => BlockRejection::Invalid(other.to_owned()),
        }
    }

    /// Whether the block may still end up in the main chain.
    pub fn may_still_win(&self) -> bool {
        matches!(
            self,
            BlockRejection::Inconclusive | BlockRejection::Duplicate
        )
    }
}

/// Why a block submission did not end in the node's acceptance.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The node answered and refused the block.
    #[error("block rejected: {0}")]
    Rejected(BlockRejection),
    /// No answer came back: the node may or may not have the block.
    #[error("block submission unanswered")]
    Unanswered(#[source] SourceError),
    /// The submission was not answered within the engine's deadline
    /// ([`Deadlines::block`](crate::Deadlines::block)); the node may or may not have it.
    #[error("block submission not answered in time")]
    TimedOut,
    /// The block is of a family the submitter does not take (a RandomX block offered to a
    /// Bitcoin-family node); nothing was sent.
    #[error("no work source takes a block of this family")]
    WrongFamily,
}

/// Templates to mine, and the wait for the next one.
pub trait TemplateSource: Send {
    /// The current template.
    fn template(&mut self) -> Result<BlockTemplate, SourceError>;

    /// Waits up to `timeout` for a template that differs from the one with id `current_id`
    /// (a new block or new transactions), returning it, or `None` when nothing changed.
    fn wait_for_change(
        &mut self,
        current_id: &str,
        timeout: Duration,
    ) -> Result<Option<BlockTemplate>, SourceError>;
}

/// Where found blocks go.
pub trait BlockSubmitter: Send {
    /// Submits a solved block (its full serialization).
    fn submit_block(&mut self, block: &[u8]) -> Result<(), SubmitError>;
}

/// The main chain's view of blocks the pool found.
pub trait ChainView: Send {
    /// How deep the block with this hash (internal byte order) is in the main chain: 1 for
    /// the tip, `Some(-1)` when it is known but no longer on the main chain (orphaned), and
    /// `None` when the source does not know it.
    fn block_confirmations(&mut self, hash: &[u8; 32]) -> Result<Option<i64>, SourceError>;
}

impl<T: TemplateSource + ?Sized> TemplateSource for Box<T> {
    fn template(&mut self) -> Result<BlockTemplate, SourceError> {
        (**self).template()
    }

    fn wait_for_change(
        &mut self,
        current_id: &str,
        timeout: Duration,
    ) -> Result<Option<BlockTemplate>, SourceError> {
        (**self).wait_for_change(current_id, timeout)
    }
}

impl<T: BlockSubmitter + ?Sized> BlockSubmitter for Box<T> {
    fn submit_block(&mut self, block: &[u8]) -> Result<(), SubmitError> {
        (**self).submit_block(block)
    }
}

impl<T: ChainView + ?Sized> ChainView for Box<T> {
    fn block_confirmations(&mut self, hash: &[u8; 32]) -> Result<Option<i64>, SourceError> {
        (**self).block_confirmations(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip22_reasons_become_typed_rejections() {
        assert_eq!(
            BlockRejection::from_reason("inconclusive"),
            BlockRejection::Inconclusive
        );
        assert!(BlockRejection::from_reason("inconclusive").may_still_win());
        assert!(BlockRejection::from_reason("duplicate").may_still_win());
        let bad = BlockRejection::from_reason("bad-cb-height");
        assert_eq!(bad, BlockRejection::Invalid("bad-cb-height".into()));
        assert!(!bad.may_still_win());
        assert_eq!(bad.to_string(), "bad-cb-height");
    }
}
