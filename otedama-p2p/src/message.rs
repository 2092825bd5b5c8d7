//! The gossip messages nodes exchange once connected, and their bounded binary encoding.
//!
//! A message is one type byte and its body; the transport frames it (length first) and caps
//! it at [`MAX_MESSAGE`]. Only a relayed main-chain block may be that large; every other
//! message stays under [`MAX_GOSSIP`]. Decoding never allocates more than the bytes at hand
//! justify.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::DecodeError;
use crate::share::{Layout, Reader, Share, ShareId};

/// The largest main-chain block a node relays, in bytes (Bitcoin's block weight limit in
/// serialized bytes).
pub const MAX_BLOCK: usize = 4_000_000;
/// The largest message, in bytes: a block and its type byte.
pub const MAX_MESSAGE: usize = MAX_BLOCK + 1;
/// The largest message other than a block, in bytes.
pub const MAX_GOSSIP: usize = 256 * 1024;
/// The most addresses one [`Message::Peers`] may carry.
pub const MAX_PEER_ADDRS: usize = 32;
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
    /// Shares answering a request, parents before children, all in one layout (the first
    /// share's: shares of another layout are left out, as no chain holds both).
    Shares(Vec<Share>),
    /// The sender holds none of these.
    NotFound(Vec<ShareId>),
    /// A main-chain block a node of the sharechain found, whole, so every node can hand it
    /// to its own main-chain node at once.
    Block(Vec<u8>),
    /// The port the sender accepts peers on (at the address it connected from).
    Listening(u16),
    /// Asks for addresses of other nodes.
    GetPeers,
    /// Addresses of nodes that accept peers, at most [`MAX_PEER_ADDRS`].
    Peers(Vec<SocketAddr>),
}

const ANNOUNCE: u8 = 1;
const GET_SHARES: u8 = 2;
const GET_ANCESTORS: u8 = 3;
const SHARES: u8 = 4;
const NOT_FOUND: u8 = 5;
const BLOCK: u8 = 6;
const LISTENING: u8 = 7;
const GET_PEERS: u8 = 8;
const PEERS: u8 = 9;
const ANNOUNCE_RX: u8 = 10;
const SHARES_RX: u8 = 11;

impl Message {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        match self {
            Message::Announce(share) => {
                out.push(match share.layout() {
                    Layout::Bitcoin => ANNOUNCE,
                    Layout::RandomX => ANNOUNCE_RX,
                });
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
                let layout = shares.first().map_or(Layout::Bitcoin, Share::layout);
                out.push(match layout {
                    Layout::Bitcoin => SHARES,
                    Layout::RandomX => SHARES_RX,
                });
                let same: Vec<&Share> = shares
                    .iter()
                    .filter(|s| s.layout() == layout)
                    .take(usize::from(u16::MAX))
                    .collect();
                out.extend_from_slice(&(same.len() as u16).to_le_bytes());
                for s in same {
                    s.encode(&mut out);
                }
            }
            Message::NotFound(ids) => {
                out.push(NOT_FOUND);
                encode_ids(ids, &mut out);
            }
            Message::Block(raw) => {
                out.push(BLOCK);
                out.extend_from_slice(raw);
            }
            Message::Listening(port) => {
                out.push(LISTENING);
                out.extend_from_slice(&port.to_le_bytes());
            }
            Message::GetPeers => out.push(GET_PEERS),
            Message::Peers(addrs) => {
                out.push(PEERS);
                out.push(addrs.len().min(MAX_PEER_ADDRS) as u8);
                for addr in addrs.iter().take(MAX_PEER_ADDRS) {
                    match addr.ip() {
                        IpAddr::V4(ip) => {
                            out.push(4);
                            out.extend_from_slice(&ip.octets());
                        }
                        IpAddr::V6(ip) => {
                            out.push(6);
                            out.extend_from_slice(&ip.octets());
                        }
                    }
                    out.extend_from_slice(&addr.port().to_le_bytes());
                }
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
        if bytes.len() > MAX_GOSSIP && bytes.first() != Some(&BLOCK) {
            return Err(DecodeError::TooLong {
                what: "message",
                len: bytes.len(),
                max: MAX_GOSSIP,
            });
        }
        let mut r = Reader::new(bytes);
        let msg = match r.u8("message type")? {
            ANNOUNCE => Message::Announce(Box::new(Share::decode(&mut r, Layout::Bitcoin)?)),
            ANNOUNCE_RX => Message::Announce(Box::new(Share::decode(&mut r, Layout::RandomX)?)),
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
            kind @ (SHARES | SHARES_RX) => {
                let layout = if kind == SHARES {
                    Layout::Bitcoin
                } else {
                    Layout::RandomX
                };
                let count = usize::from(r.u16("share count")?);
                // An empty list is written with the Bitcoin-family type alone: one encoding
                // per message.
                if count == 0 && layout == Layout::RandomX {
                    return Err(DecodeError::Invalid {
                        what: "empty randomx share list",
                    });
                }
                // A share takes at least 99 bytes: never reserve more than the input holds.
                let mut shares = Vec::with_capacity(count.min(r.remaining() / 99));
                for _ in 0..count {
                    shares.push(Share::decode(&mut r, layout)?);
                }
                Message::Shares(shares)
            }
            NOT_FOUND => Message::NotFound(decode_ids(&mut r)?),
            BLOCK => {
                let raw = bytes.get(1..).unwrap_or_default();
                // A header and at least the coinbase's count byte.
                if raw.len() < 81 {
                    return Err(DecodeError::Invalid { what: "block" });
                }
                return Ok(Message::Block(raw.to_vec()));
            }
            LISTENING => Message::Listening(r.u16("port")?),
            GET_PEERS => Message::GetPeers,
            PEERS => {
                let count = usize::from(r.u8("address count")?);
                if count > MAX_PEER_ADDRS {
                    return Err(DecodeError::TooLong {
                        what: "address list",
                        len: count,
                        max: MAX_PEER_ADDRS,
                    });
                }
                let mut addrs = Vec::with_capacity(count);
                for _ in 0..count {
                    let ip = match r.u8("address family")? {
                        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>("IPv4 address")?)),
                        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>("IPv6 address")?)),
                        _ => {
                            return Err(DecodeError::Invalid {
                                what: "address family",
                            })
                        }
                    };
                    addrs.push(SocketAddr::new(ip, r.u16("port")?));
                }
                Message::Peers(addrs)
            }
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
            proptest::collection::vec(arb_share(), 0..5).prop_map(|mut shares| {
                let layout = shares.first().map(Share::layout);
                shares.retain(|s| Some(s.layout()) == layout);
                Message::Shares(shares)
            }),
            arb_ids().prop_map(Message::NotFound),
            proptest::collection::vec(any::<u8>(), 81..400).prop_map(Message::Block),
            any::<u16>().prop_map(Message::Listening),
            Just(Message::GetPeers),
            proptest::collection::vec(
                prop_oneof![
                    (any::<[u8; 4]>(), any::<u16>())
                        .prop_map(|(ip, port)| SocketAddr::new(Ipv4Addr::from(ip).into(), port)),
                    (any::<[u8; 16]>(), any::<u16>())
                        .prop_map(|(ip, port)| SocketAddr::new(Ipv6Addr::from(ip).into(), port)),
                ],
                0..=MAX_PEER_ADDRS
            )
            .prop_map(Message::Peers),
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
    fn an_empty_share_list_has_one_encoding() {
        // Found by the p2p_message fuzz target: an empty list in the RandomX type re-encoded
        // in the other.
        assert_eq!(
            Message::decode(&[SHARES_RX, 0, 0]),
            Err(DecodeError::Invalid {
                what: "empty randomx share list"
            })
        );
        assert_eq!(Message::Shares(Vec::new()).encode(), vec![SHARES, 0, 0]);
    }

    #[test]
    fn only_a_block_may_be_larger_than_gossip() {
        let mut big = vec![SHARES];
        big.resize(MAX_GOSSIP + 1, 0);
        assert!(matches!(
            Message::decode(&big),
            Err(DecodeError::TooLong { .. })
        ));
        big[0] = BLOCK;
        assert_eq!(
            Message::decode(&big),
            Ok(Message::Block(vec![0; MAX_GOSSIP]))
        );
        let mut huge = vec![BLOCK];
        huge.resize(MAX_MESSAGE + 1, 0);
        assert!(matches!(
            Message::decode(&huge),
            Err(DecodeError::TooLong { .. })
        ));
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
