//! Payments go out through a [`Wallet`]: a node's wallet over RPC, or the devnet's.
//!
//! The accounting rules sign a payment first, record its txid while the balances are debited,
//! and only then broadcast it; the wallet is what makes each of those steps possible.

/// Why a payment transaction could not be prepared (nothing was broadcast either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The wallet answered with an error (an invalid address, too little money).
    Refused(String),
    /// No usable answer (timeout, connection lost).
    Unknown(String),
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The wallet cannot be reached, or gave no usable answer.
    #[error("wallet unavailable: {0}")]
    Unavailable(String),
    /// The wallet answered with something it should not have.
    #[error("wallet answered badly: {0}")]
    BadAnswer(String),
}

impl From<crate::source::SourceError> for WalletError {
    fn from(e: crate::source::SourceError) -> WalletError {
        match e {
            crate::source::SourceError::BadTemplate(m) => WalletError::BadAnswer(m),
            other => WalletError::Unavailable(other.to_string()),
        }
    }
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
