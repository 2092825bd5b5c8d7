//! The Monero-layout hashing blob and the coinbase of the RandomX devnet.
//!
//! A RandomX miner hashes a blob in Monero's layout: varint major version, varint minor
//! version, varint timestamp, previous block id (32), nonce (4, little-endian), transaction
//! tree root (32), varint transaction count. The devnet's tree root is sha256d of its
//! coinbase, a byte string in one of two forms:
//!
//! - v1, one payee: height (8 bytes little-endian), 8 bytes reserved for the pool, then the
//!   payout address as text (never starting with a zero byte);
//! - v2, many payees: height, 8 reserved bytes, `00 02`, a varint count of outputs, each a
//!   varint amount, a one-byte length and the payout's bytes, then a varint length and that
//!   many bytes of extra data (a sharechain writes its commitment there).
//!
//! ```
//! use otedama_core::rx::{RxCoinbase, RxPayees};
//!
//! let coinbase = RxCoinbase {
//!     height: 7,
//!     reserved: [1; 8],
//!     payees: RxPayees::Outputs {
//!         outputs: vec![(b"alice".to_vec(), 400), (b"bob".to_vec(), 200)],
//!         extra: b"OTDM".to_vec(),
//!     },
//! };
//! let bytes = coinbase.to_bytes();
//! let back = RxCoinbase::parse(&bytes)?;
//! assert_eq!(back, coinbase);
//! assert_eq!(back.payees.total(), Some(600));
//! # Ok::<(), otedama_core::rx::RxFormatError>(())
//! ```

/// Length of a hashing blob whose timestamp takes five varint bytes (any unix time from 2^28
/// to 2^35).
pub const RX_BLOB_LEN: usize = 76;

/// Where the nonce sits in a hashing blob with a five-byte timestamp (as in Monero).
pub const RX_NONCE_OFFSET: usize = 39;

/// Bytes of a devnet coinbase before its payees: height (8) and reserved (8).
pub const RX_COINBASE_FIXED: usize = 16;

/// The marker of a v2 (many-payee) devnet coinbase, right after the fixed bytes.
pub const RX_COINBASE_V2: [u8; 2] = [0x00, 0x02];

/// The most outputs a devnet coinbase may carry.
pub const RX_MAX_OUTPUTS: usize = 4_096;

/// The most bytes of extra data a devnet coinbase may carry.
pub const RX_MAX_EXTRA: usize = 255;

/// Why a blob or a devnet coinbase could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RxFormatError {
    /// The bytes end inside a field.
    #[error("ends inside the {0}")]
    Truncated(&'static str),
    /// A varint runs past 64 bits.
    #[error("varint longer than 64 bits")]
    VarintTooLong,
    /// Bytes follow the last field.
    #[error("{0} bytes after the last field")]
    Trailing(usize),
    /// A field is out of its bounds.
    #[error("{what}: {len} exceeds {max}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// Its length or count.
        len: u64,
        /// The most allowed.
        max: usize,
    },
    /// A v1 coinbase names no payout address, or a v2 marker is unknown.
    #[error("bad coinbase payees: {0}")]
    Payees(&'static str),
}

/// Appends `value` as a Monero varint (7 bits a byte, low first).
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint at `*pos`, moving past it.
pub fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, RxFormatError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos).ok_or(RxFormatError::Truncated("varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RxFormatError::VarintTooLong)
}

fn take<'a>(
    bytes: &'a [u8],
    pos: &mut usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], RxFormatError> {
    let end = pos.checked_add(n).ok_or(RxFormatError::Truncated(what))?;
    let out = bytes.get(*pos..end).ok_or(RxFormatError::Truncated(what))?;
    *pos = end;
    Ok(out)
}

fn take32(bytes: &[u8], pos: &mut usize, what: &'static str) -> Result<[u8; 32], RxFormatError> {
    let mut out = [0u8; 32];
    out.copy_from_slice(take(bytes, pos, 32, what)?);
    Ok(out)
}

/// The fields of a hashing blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxBlob {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Unix time.
    pub timestamp: u64,
    /// The parent block's id.
    pub prev_id: [u8; 32],
    /// The nonce.
    pub nonce: u32,
    /// The transaction tree root.
    pub tree_root: [u8; 32],
    /// Transactions in the block (the coinbase included).
    pub tx_count: u64,
}

impl RxBlob {
    /// Writes the blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RX_BLOB_LEN);
        write_varint(&mut out, self.major);
        write_varint(&mut out, self.minor);
        write_varint(&mut out, self.timestamp);
        out.extend_from_slice(&self.prev_id);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.tree_root);
        write_varint(&mut out, self.tx_count);
        out
    }

    /// Reads a blob; trailing bytes are an error.
    pub fn parse(bytes: &[u8]) -> Result<RxBlob, RxFormatError> {
        let mut pos = 0;
        let major = read_varint(bytes, &mut pos)?;
        let minor = read_varint(bytes, &mut pos)?;
        let timestamp = read_varint(bytes, &mut pos)?;
        let prev_id = take32(bytes, &mut pos, "previous block id")?;
        let mut nonce = [0u8; 4];
        nonce.copy_from_slice(take(bytes, &mut pos, 4, "nonce")?);
        let tree_root = take32(bytes, &mut pos, "tree root")?;
        let tx_count = read_varint(bytes, &mut pos)?;
        if pos != bytes.len() {
            return Err(RxFormatError::Trailing(bytes.len() - pos));
        }
        Ok(RxBlob {
            major,
            minor,
            timestamp,
            prev_id,
            nonce: u32::from_le_bytes(nonce),
            tree_root,
            tx_count,
        })
    }
}

/// Who a devnet coinbase pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxPayees {
    /// v1: the whole reward to one address, as text.
    Address(Vec<u8>),
    /// v2: outputs in the coinbase's order (payout bytes and amount), and extra data.
    Outputs {
        /// Each output's payout bytes and amount, in the smallest unit.
        outputs: Vec<(Vec<u8>, u64)>,
        /// Extra data (a sharechain's commitment).
        extra: Vec<u8>,
    },
}

impl RxPayees {
    /// The sum of the outputs (`None` when it overflows); a v1 coinbase pays the block's
    /// reward, which the coinbase does not name, so `Some(0)`.
    pub fn total(&self) -> Option<u64> {
        match self {
            RxPayees::Address(_) => Some(0),
            RxPayees::Outputs { outputs, .. } => outputs
                .iter()
                .try_fold(0u64, |sum, (_, amount)| sum.checked_add(*amount)),
        }
    }
}

/// A devnet coinbase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxCoinbase {
    /// The height of the block.
    pub height: u64,
    /// The bytes a pool writes per session.
    pub reserved: [u8; 8],
    /// Who it pays.
    pub payees: RxPayees,
}

impl RxCoinbase {
    /// Writes the coinbase.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.reserved);
        match &self.payees {
            RxPayees::Address(address) => out.extend_from_slice(address),
            RxPayees::Outputs { outputs, extra } => {
                out.extend_from_slice(&RX_COINBASE_V2);
                write_varint(&mut out, outputs.len() as u64);
                for (payout, amount) in outputs {
                    write_varint(&mut out, *amount);
                    out.push(payout.len().min(255) as u8);
                    out.extend_from_slice(&payout[..payout.len().min(255)]);
                }
                write_varint(&mut out, extra.len() as u64);
                out.extend_from_slice(extra);
            }
        }
        out
    }

    /// Reads a coinbase of either form; trailing bytes after a v2 coinbase are an error.
    pub fn parse(bytes: &[u8]) -> Result<RxCoinbase, RxFormatError> {
        let mut pos = 0;
        let mut height = [0u8; 8];
        height.copy_from_slice(take(bytes, &mut pos, 8, "coinbase height")?);
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(take(bytes, &mut pos, 8, "reserved bytes")?);
        let rest = &bytes[pos..];
        let payees = match rest.first() {
            None => return Err(RxFormatError::Payees("no payout address")),
            Some(0) => {
                if rest.get(1) != Some(&RX_COINBASE_V2[1]) {
                    return Err(RxFormatError::Payees("unknown coinbase version"));
                }
                pos += 2;
                let count = read_varint(bytes, &mut pos)?;
                if count > RX_MAX_OUTPUTS as u64 {
                    return Err(RxFormatError::TooLong {
                        what: "output count",
                        len: count,
                        max: RX_MAX_OUTPUTS,
                    });
                }
                // Each output takes at least two bytes: reserve no more than the input holds.
                let mut outputs =
                    Vec::with_capacity((count as usize).min(bytes.len().saturating_sub(pos) / 2));
                for _ in 0..count {
                    let amount = read_varint(bytes, &mut pos)?;
                    let len = take(bytes, &mut pos, 1, "payout length")?[0];
                    let payout = take(bytes, &mut pos, usize::from(len), "payout")?.to_vec();
                    outputs.push((payout, amount));
                }
                let len = read_varint(bytes, &mut pos)?;
                if len > RX_MAX_EXTRA as u64 {
                    return Err(RxFormatError::TooLong {
                        what: "extra data",
                        len,
                        max: RX_MAX_EXTRA,
                    });
                }
                let extra = take(bytes, &mut pos, len as usize, "extra data")?.to_vec();
                if pos != bytes.len() {
                    return Err(RxFormatError::Trailing(bytes.len() - pos));
                }
                RxPayees::Outputs { outputs, extra }
            }
            Some(_) => RxPayees::Address(rest.to_vec()),
        };
        Ok(RxCoinbase {
            height: u64::from_le_bytes(height),
            reserved,
            payees,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_coinbase() -> impl Strategy<Value = RxCoinbase> {
        let outputs = proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..100), any::<u64>()),
            0..20,
        );
        let extra = proptest::collection::vec(any::<u8>(), 0..=RX_MAX_EXTRA);
        (any::<u64>(), any::<[u8; 8]>(), outputs, extra).prop_map(
            |(height, reserved, outputs, extra)| RxCoinbase {
                height,
                reserved,
                payees: RxPayees::Outputs { outputs, extra },
            },
        )
    }

    proptest! {
        #[test]
        fn v2_coinbases_round_trip_and_refuse_any_cut(cb in arb_coinbase(), cut in 0usize..4000) {
            let bytes = cb.to_bytes();
            prop_assert_eq!(RxCoinbase::parse(&bytes), Ok(cb));
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(RxCoinbase::parse(&bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_eq!(RxCoinbase::parse(&longer), Err(RxFormatError::Trailing(1)));
        }

        #[test]
        fn blobs_round_trip(major in 0u64..300, ts in any::<u64>(), prev in any::<[u8; 32]>(),
                            nonce in any::<u32>(), root in any::<[u8; 32]>(), count in any::<u64>()) {
            let blob = RxBlob { major, minor: major, timestamp: ts, prev_id: prev, nonce, tree_root: root, tx_count: count };
            prop_assert_eq!(RxBlob::parse(&blob.to_bytes()), Ok(blob));
        }

        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RxCoinbase::parse(&bytes);
            let _ = RxBlob::parse(&bytes);
        }
    }

    #[test]
    fn v1_coinbases_pay_an_address() {
        let mut bytes = 9u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[5; 8]);
        bytes.extend_from_slice(b"44address");
        let cb = RxCoinbase::parse(&bytes).expect("v1");
        assert_eq!(cb.height, 9);
        assert_eq!(cb.payees, RxPayees::Address(b"44address".to_vec()));
        assert_eq!(cb.to_bytes(), bytes);
        // The fixed bytes alone name nobody; a zero byte not followed by 2 is no known form.
        assert!(RxCoinbase::parse(&bytes[..16]).is_err());
        let mut unknown = bytes[..16].to_vec();
        unknown.extend_from_slice(&[0, 3, 0, 0]);
        assert_eq!(
            RxCoinbase::parse(&unknown),
            Err(RxFormatError::Payees("unknown coinbase version"))
        );
    }

    #[test]
    fn pinned_v2_bytes() {
        let cb = RxCoinbase {
            height: 1,
            reserved: [0xaa; 8],
            payees: RxPayees::Outputs {
                outputs: vec![(b"ab".to_vec(), 300)],
                extra: vec![0xee],
            },
        };
        assert_eq!(
            crate::encode_hex(&cb.to_bytes()),
            "0100000000000000aaaaaaaaaaaaaaaa000201ac0202616201ee"
        );
        let huge = RxCoinbase {
            payees: RxPayees::Outputs {
                outputs: vec![(vec![], u64::MAX), (vec![], 1)],
                extra: vec![],
            },
            ..cb
        };
        assert_eq!(huge.payees.total(), None);
    }
}
