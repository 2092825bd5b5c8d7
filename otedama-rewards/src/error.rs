//! Why a reward computation failed.

/// Why a payout could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RewardError {
    /// The fee is not between 0 and 100 %.
    #[error("fee of {0} % is not between 0 and 100")]
    FeeOutOfRange(f64),
    /// No share with work falls in the window or round: nobody to pay.
    #[error("no shares with work in the window ending at {block_time_ms} ms")]
    NoShares {
        /// The block's time.
        block_time_ms: i64,
    },
    /// The network's work per block is zero.
    #[error("network work per block is zero")]
    ZeroNetworkWork,
}
