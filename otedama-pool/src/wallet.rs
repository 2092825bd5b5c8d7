//! Payments go out through a [`Wallet`]: a node's wallet over RPC, or the devnet's.
//!
//! The accounting rules sign a payment first, record its txid while the balances are debited,
//! and only then broadcast it; the wallet is what makes each of those steps possible.

use crate::source::{RpcError, SourceError};

/// Why a payment transaction could not be prepared (nothing was broadcast either way).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The node's wallet answered with an error (an invalid address, too little money).
    #[error(transparent)]
    Node(#[from] RpcError),
    /// An output's address is not one the wallet can pay.
    #[error("cannot pay {address}")]
    BadAddress {
        /// The address.
        address: String,
        /// Why not.
        #[source]
        source: otedama_core::AddressError,
    },
    /// An output is too small to be worth sending (dust).
    #[error("transaction amount too small: {amount} to {address}")]
    TooSmall {
        /// The address.
        address: String,
        /// The amount, smallest unit.
        amount: u64,
    },
    /// The outputs and fee add up to more than the wallet can spend.
    #[error("insufficient funds: {needed} needed, {available} spendable")]
    InsufficientFunds {
        /// Outputs plus fee, smallest unit.
        needed: u64,
        /// What the wallet can spend, smallest unit.
        available: u64,
    },
    /// The outputs add up to more than any amount can hold.
    #[error("the outputs add up to more than an amount can hold")]
    Overflow,
    /// The wallet could not sign the transaction.
    #[error("the wallet could not sign the transaction")]
    Unsigned,
    /// The network would refuse the transaction (dust, too low a fee, a rule it breaks).
    #[error("the network would refuse the transaction: {reason}")]
    NetworkWouldRefuse {
        /// The node's reject reason.
        reason: String,
    },
    /// No usable answer (timeout, connection lost): the wallet may or may not have built it.
    #[error("no usable answer from the wallet")]
    Unknown(#[source] SourceError),
}

impl SendError {
    /// Whether the wallet answered and refused (a payment without the refused outputs may
    /// still go out), as opposed to giving no usable answer.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, SendError::Unknown(_))
    }
}

/// A signed payment transaction, ready to broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPayment {
    /// Its id, known before it is sent.
    pub txid: String,
    /// The signed transaction.
    pub hex: String,
    /// The network fee it pays, smallest unit.
    pub fee: u64,
}

/// A wallet transaction as the wallet sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletTransaction {
    /// Its confirmations; negative when a conflicting transaction is in the chain (minus that
    /// one's depth).
    pub confirmations: i64,
    /// The wallet transactions spending any of the same inputs.
    pub conflicts: Vec<String>,
}

/// What the network made of a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    /// Sent, or already in the mempool or the chain.
    Sent,
    /// Refused for good: its inputs are spent elsewhere, or it breaks a rule.
    Refused(String),
}

/// Why the wallet could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The wallet cannot be reached, gave no usable answer, or answered with an error.
    #[error("wallet unavailable")]
    Unavailable(#[from] SourceError),
    /// A transaction handed to the wallet does not decode.
    #[error("the transaction does not decode")]
    BadTransaction(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

/// What the payment rules need of a wallet. Calls may block on the network; the accounting
/// runs them off any event loop.
pub trait Wallet: Send {
    /// Builds and signs, without broadcasting, one transaction paying every
    /// `(address, amount)` (smallest unit); its inputs stay locked until it is broadcast or
    /// released. With `fee_from_outputs` the network fee comes out of the outputs instead of
    /// the change.
    fn prepare_payment(
        &mut self,
        outputs: &[(String, u64)],
        fee_from_outputs: bool,
    ) -> Result<PreparedPayment, SendError>;
    /// Sends a signed transaction to the network.
    fn broadcast(&mut self, hex: &str) -> Result<Broadcast, WalletError>;
    /// Unlocks the inputs of a prepared transaction that will not be broadcast.
    fn release(&mut self, hex: &str) -> Result<(), WalletError>;
    /// The wallet's view of `txid`, or `None` when it does not know it.
    fn wallet_transaction(&mut self, txid: &str) -> Result<Option<WalletTransaction>, WalletError>;
    /// Whether transaction `txid` pays any of `addresses`.
    fn pays_any(&mut self, txid: &str, addresses: &[&str]) -> Result<bool, WalletError>;
    /// Whether the wallet can pay to `address`.
    fn is_valid_address(&mut self, address: &str) -> Result<bool, WalletError>;
    /// What the wallet can spend now, smallest unit.
    fn spendable(&mut self) -> Result<u64, WalletError>;
}
