//! The gossip messages nodes exchange once connected, and their bounded binary encoding.
//!
//! A message is one type byte and its body; the transport frames it (length first) and caps
//! it at [`MAX_MESSAGE`]. Decoding never allocates more than the bytes at hand justify.

use crate::error::DecodeError;
use crate::share::{Reader, Share, ShareId};

/// The largest message, in bytes.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// The most ids one request may name.
pub const MAX_REQUEST_IDS: usize = 64;
/// The most ancestors one request may ask for.
pub const MAX_ANCESTORS: u16 = 200;

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A new share (found here or relayed).
    Announce(Box<Share>),
    /// Asks for these shares.
    GetShares(Vec<ShareId>),
    /// Asks for `from` and up to `count - 1` of its parents, with the uncles they include.
    GetAncestors {
        /// The newest share wanted.
        from: ShareId,
        /// How many chain shares, at most [`MAX_ANCESTORS`].
        count: u16,
    },
    /// Shares answering a request, parents before children.
    Shares(Vec<Share>),
    /// The sender holds none of these.
    NotFound(Vec<ShareId>),
}

const ANNOUNCE: u8 = 1;
const GET_SHARES: u8 = 2;
const GET_ANCESTORS: u8 = 3;
const SHARES: u8 = 4;
const NOT_FOUND: u8 = 5;

impl Message {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        match self {
            Message::Announce(share) => {
                out.push(ANNOUNCE);
                share.encode(&mut out);
            }
            Message::GetShares(ids) => {
                out.push(GET_SHARES);
                encode_ids(ids, &mut out);
            }
            Message::GetAncestors { from, count } => {
                out.push(GET_ANCESTORS);
                out.extend_from_slice(&from.0);
                out.extend_from_slice(&count.to_le_bytes());
            }
            Message::Shares(shares) => {
                out.push(SHARES);
                out.extend_from_slice(&(shares.len() as u16).to_le_bytes());
                for s in shares {
                    s.encode(&mut out);
                }
            }
            Message::NotFound(ids) => {
                out.push(NOT_FOUND);
                encode_ids(ids, &mut out);
            }
        }
        out
    }

    /// Parses one message.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(DecodeError::TooLong {
                what: "message",
                len: bytes.len(),
                max: MAX_MESSAGE,
            });
        }
        let mut r = Reader::new(bytes);
        let msg = match r.u8("message type")? {
            ANNOUNCE => Message::Announce(Box::new(Share::decode(&mut r)?)),
            GET_SHARES => Message::GetShares(decode_ids(&mut r)?),
            GET_ANCESTORS => {
                let from = ShareId(r.array("share id")?);
                let count = r.u16("count")?;
                if count == 0 || count > MAX_ANCESTORS {
                    return Err(DecodeError::Invalid {
                        what: "ancestor count",
                    });
                }
                Message::GetAncestors { from, count }
            }
            SHARES => {
                let count = usize::from(r.u16("share count")?);
                // A share takes at least 150 bytes: never reserve more than the input holds.
                let mut shares = Vec::with_capacity(count.min(r.remaining() / 150));
                for _ in 0..count {
                    shares.push(Share::decode(&mut r)?);
                }
                Message::Shares(shares)
            }
            NOT_FOUND => Message::NotFound(decode_ids(&mut r)?),
            _ => {
                return Err(DecodeError::Invalid {
                    what: "message type",
                })
            }
        };
        r.finish("message")?;
        Ok(msg)
    }
}

fn encode_ids(ids: &[ShareId], out: &mut Vec<u8>) {
    out.push(ids.len() as u8);
    for id in ids {
        out.extend_from_slice(&id.0);
    }
}

fn decode_ids(r: &mut Reader<'_>) -> Result<Vec<ShareId>, DecodeError> {
    let count = usize::from(r.u8("id count")?);
    if count > MAX_REQUEST_IDS {
        return Err(DecodeError::TooLong {
            what: "id list",
            len: count,
            max: MAX_REQUEST_IDS,
        });
    }
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(ShareId(r.array("share id")?));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::tests::arb_share;
    use proptest::prelude::*;

    fn arb_ids() -> impl Strategy<Value = Vec<ShareId>> {
        proptest::collection::vec(any::<[u8; 32]>().prop_map(ShareId), 0..=MAX_REQUEST_IDS)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            arb_share().prop_map(|s| Message::Announce(Box::new(s))),
            arb_ids().prop_map(Message::GetShares),
            (any::<[u8; 32]>(), 1..=MAX_ANCESTORS).prop_map(|(f, count)| Message::GetAncestors {
                from: ShareId(f),
                count
            }),
            proptest::collection::vec(arb_share(), 0..5).prop_map(Message::Shares),
            arb_ids().prop_map(Message::NotFound),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip(msg in arb_message()) {
            prop_assert_eq!(Message::decode(&msg.encode()), Ok(msg));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::decode(&bytes);
        }
    }

    #[test]
    fn a_huge_share_count_in_a_small_message_is_truncated_not_allocated() {
        let bytes = [SHARES, 0xff, 0xff, 0x00];
        assert!(matches!(
            Message::decode(&bytes),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
