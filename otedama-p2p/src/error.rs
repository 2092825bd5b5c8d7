//! The crate's errors, one enum per operation.

use thiserror::Error;

use crate::share::ShareId;

/// Chain parameters that cannot make a working chain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A parameter is out of range.
    #[error("invalid sharechain parameters: {what}")]
    Invalid {
        /// Which rule the parameters break.
        what: &'static str,
    },
}

/// Bytes that are not a valid encoding of a message or share.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// A length or count exceeds its bound.
    #[error("{what} too long: {len} (at most {max})")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {what}")]
    Invalid {
        /// The field.
        what: &'static str,
    },
    /// Bytes follow the end of the encoding.
    #[error("{len} bytes after the end of a {what}")]
    Trailing {
        /// What was decoded.
        what: &'static str,
        /// How many bytes were left.
        len: usize,
    },
}

/// Why a share was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The share is already in the chain.
    #[error("share {id} is already known")]
    Duplicate {
        /// The share.
        id: ShareId,
    },
    /// The share's parent (or an uncle) is not known yet; fetch it and try again.
    #[error("share {id} needs {missing} first")]
    Missing {
        /// The share.
        id: ShareId,
        /// The first unknown share it refers to.
        missing: ShareId,
    },
    /// The header's hash does not meet the share target.
    #[error("share {id} does not meet its target")]
    InsufficientWork {
        /// The share.
        id: ShareId,
    },
    /// The share breaks a chain rule.
    #[error("share {id} is invalid: {reason}")]
    Invalid {
        /// The share.
        id: ShareId,
        /// The rule it breaks.
        reason: String,
    },
}

impl ShareError {
    /// Whether the sender is at fault (an invalid share), as opposed to the share being
    /// early (missing parents) or already known.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            ShareError::InsufficientWork { .. } | ShareError::Invalid { .. }
        )
    }
}
